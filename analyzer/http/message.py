"""Values for parsed HTTP/1.x message heads, kept as close to the wire as possible.

The parser is tolerant: it keeps the original case, the order and the duplicates of header
fields and records anomalies in ``problems`` instead of refusing the message. Judging is done
elsewhere (analyzer/checks).
"""

from __future__ import annotations

from collections.abc import KeysView
from dataclasses import dataclass, field

from analyzer.remembered import Remembered


@dataclass(frozen=True, slots=True)
class Header:
    """One field line of a head."""
    name: str  # as sent, original case (bytes decoded as latin-1)
    value: str  # as sent, leading/trailing whitespace removed (latin-1)


# The plain head parser makes one Header per field line, ~9 per head. A frozen dataclass's
# __init__ stores each field through object.__setattr__, ≈ 4.2 k instructions per Header;
# storing through the slots' own descriptors gives the same value for ≈ 2.3 k (callgrind).
_new_object = object.__new__
_set_name = Header.__dict__["name"].__set__
_set_value = Header.__dict__["value"].__set__


def header(name: str, value: str) -> Header:
    """``Header(name, value)``, built without the frozen ``__init__`` (its plain twin; equal and
    of equal hash, tests/test_http_head.py)."""
    made = _new_object(Header)
    _set_name(made, name)
    _set_value(made, value)
    return made


@dataclass(frozen=True, slots=True)
class Headers:
    """Header fields in wire order; look-ups are case-insensitive."""

    fields: tuple[Header, ...]
    # Lowercased name -> values in wire order, built once: the checks look fields up dozens of
    # times per attempt, and a hostile head can carry ten thousand fields.
    _index: dict[str, list[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[str, list[str]] = {}
        for f in self.fields:
            index.setdefault(f.name.lower(), []).append(f.value)
        object.__setattr__(self, "_index", index)

    @classmethod
    def indexed(cls, fields: tuple[Header, ...], index: dict[str, list[str]]) -> Headers:
        """Headers whose index the caller built in the same pass as ``fields`` (the plain
        parser, `head._plain_headers`): skips `__post_init__`'s second walk and the frozen
        ``__init__``. ``index`` must be what `__post_init__` would build (tests/test_http_head.py
        compares the two)."""
        headers = object.__new__(cls)
        object.__setattr__(headers, "fields", fields)
        object.__setattr__(headers, "_index", index)
        return headers

    # get/count/has/all/tokens try the name as given first: the callers ask in lowercase (the
    # index's own spelling), and a lowered copy is a new string to make and hash, ≈ 0.5 k
    # instructions a look-up, ≈ 15 look-ups an attempt. A name found as given is already
    # lowercase (the index's keys are), so the answer is the same.
    def all(self, name: str) -> list[str]:
        """Every value of the field ``name``, in wire order."""
        index = self._index
        values = index.get(name)
        if values is None:
            values = index.get(name.lower())
        return list(values) if values else []

    # get/count/has/tokens read the index directly: `all` copies the list, and the checks and the
    # relevance test call these several times per message.
    def get(self, name: str) -> str | None:
        """The first value of ``name``, or None when the field is absent."""
        index = self._index
        values = index.get(name)
        if values is None:
            values = index.get(name.lower())
        return values[0] if values else None

    def count(self, name: str) -> int:
        index = self._index
        values = index.get(name)
        if values is None:
            values = index.get(name.lower())
        return len(values) if values else 0

    def has(self, name: str) -> bool:
        index = self._index
        return name in index or name.lower() in index

    def names(self) -> KeysView[str]:
        """The lowercased names of the fields present: a walk of ``fields`` for a few names
        (the checks', the redaction's) is skipped when none of them is here."""
        return self._index.keys()

    def tokens(self, name: str) -> list[str]:
        """Comma-separated list elements of every ``name`` field, lowercased (RFC 9110 §5.6.1)."""
        index = self._index
        values = index.get(name)
        if values is None:
            values = index.get(name.lower())
            if values is None:
                return []
        if len(values) == 1:  # the usual field: its value's tokens, remembered
            return list(_value_tokens(values[0]))
        out: list[str] = []
        for value in values:
            out += _value_tokens(value)
        return out

    def tokens_plain(self, name: str) -> list[str]:
        """`tokens` without the remembered values (its plain twin, tests/test_http_head.py)."""
        out: list[str] = []
        for value in self._index.get(name.lower(), ()):
            out += _split_tokens(value)
        return out


def _split_tokens(value: str) -> tuple[str, ...]:
    """The comma-separated list elements of one field value, lowercased (RFC 9110 §5.6.1)."""
    out: list[str] = []
    for item in value.split(","):
        # OWS is space and tab only (RFC 9110 §5.6.3): str.strip() would also eat bytes
        # such as 0xA0 and read a mangled "\xa0Upgrade" as the token "upgrade"
        token = item.strip(" \t")
        if token:
            out.append(token.lower())
    return tuple(out)


# `_split_tokens` by value: the fields read as lists (Upgrade, Connection, the WebSocket
# extensions and subprotocols) repeat their values across a run's heads, and splitting one
# again cost ≈ 3 k instructions, ≈ 5 times an attempt. Short values only (a hostile head's
# long one is split each time), bounded.
_TOKENS: Remembered[str, tuple[str, ...]] = Remembered(longest=256)


def _value_tokens(value: str) -> tuple[str, ...]:
    """`_split_tokens(value)`, remembered for short values."""
    tokens = _TOKENS.get(value)
    if tokens is None:
        tokens = _split_tokens(value)
        _TOKENS.keep(value, tokens, len(value))
    return tokens


@dataclass(frozen=True, slots=True)
class RequestHead:
    """A parsed HTTP/1 request head (start line and fields)."""
    method: str
    target: str
    version: str  # e.g. "HTTP/1.1", as sent
    headers: Headers
    raw: bytes  # the head exactly as captured, including the final empty line
    problems: tuple[str, ...] = ()  # parse anomalies, e.g. "bare LF line ending"


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """A parsed HTTP/1 response head (status line and fields)."""
    version: str
    status: int
    reason: str
    headers: Headers
    raw: bytes
    problems: tuple[str, ...] = ()
