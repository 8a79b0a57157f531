"""`Remembered`: the one bounded memory of values made from their keys (a cleaned text, an
address's text, a Close's parse), shared by every stage that keeps a pure function's results.

Why not `functools.lru_cache`: the callers build the key from part of their arguments (a
report line's cleaner is not in it) and decide per call whether a value may be kept at all
(only for an attempt without secret values, only short texts, so a hostile capture's long
values are never kept). Why emptied all at once rather than one value at a time: the values
that repeat in a run (a handful of paths, statuses, Close payloads) come back within a few
thousand look-ups, so an emptied memory refills at once, and keeping no order costs nothing
per hit; the bound is what matters, for memory however large the capture. Both of its
parts: how many values (`limit`) and how long each (`longest`: a value whose text is longer
is returned without being kept, as a hostile capture's 64 KiB request target would be, and
such texts rarely repeat anyway), so a memory holds at most about ``limit * longest``
characters of values and as many of keys (their texts are in the values).
"""

from __future__ import annotations

from typing import TypeVar

Key = TypeVar("Key")
Value = TypeVar("Value")

DEFAULT_LIMIT = 4096  # values
DEFAULT_LONGEST = 1024  # characters of one value's text


def digest_key(text: str) -> str:
    """A key that tells long texts apart without keeping them (32 hex digits): for tables
    whose keys are a capture's texts (paths, request lines), kept for many attempts."""
    import hashlib  # here: only a long text needs it, and importing it costs every start-up

    return hashlib.blake2b(text.encode(errors="surrogateescape"), digest_size=16).hexdigest()


class Remembered(dict[Key, Value]):
    """A dict of at most ``limit`` values, each of at most ``longest`` characters: `keep`
    empties it when it is full. Read it with ``get`` (the dict's own, so a hit costs what a
    dict's look-up costs)."""

    __slots__ = ("limit", "longest")

    def __init__(self, limit: int = DEFAULT_LIMIT, longest: int = DEFAULT_LONGEST) -> None:
        super().__init__()
        self.limit = limit
        self.longest = longest

    def keep(self, key: Key, value: Value, length: int = 0) -> Value:
        """Keeps ``value`` for ``key``, unless ``length`` (the characters of its text, which
        the caller measures; 0 for values of a small fixed size) is over `longest`, and
        returns it."""
        if length <= self.longest:
            if len(self) >= self.limit:
                self.clear()
            self[key] = value
        return value
