"""Where an HTTP/1.x message body ends (RFC 9112 §6), found without keeping the body.

How it works: ``body_framing`` reads the head and says how the body is delimited; a ``BodyReader``
built from that framing is then fed the bytes that follow the head and tells how many of them
belong to the body, keeping only its first ``PREFIX_LIMIT`` bytes (enough to recognise the error
text of a 400 page). Anything the reader does not consume belongs to the next message, or, after a
101, to the new protocol.

Framing problem names (stable, snake_case): ``content_length_not_allowed``,
``transfer_encoding_not_allowed`` (in 1xx, 204 or a 2xx to CONNECT),
``transfer_encoding_with_content_length``, ``transfer_encoding_in_http10``, ``chunked_not_final``,
``chunked_repeated``, ``invalid_content_length``, ``conflicting_content_length``,
``duplicate_content_length``.

Reader problem names: ``bare_lf_in_chunked``. Reader errors (parsing stops): ``invalid_chunk_size``,
``chunk_size_too_large``, ``chunk_line_too_long``, ``missing_chunk_crlf``, ``body_truncated``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from analyzer.http.message import RequestHead, ResponseHead

PREFIX_LIMIT = 4096  # body bytes kept for fingerprinting error pages
MAX_CHUNK_LINE = 8192  # a chunk-size or trailer line longer than this is an error
_MAX_HEX_DIGITS = 16  # sizes beyond 2**64 are not lengths but garbage

_DIGITS = re.compile(r"[0-9]+")
_HEX = re.compile(rb"[0-9A-Fa-f]+")


class FramingKind(Enum):
    NONE = "none"  # no body at all: the next bytes are the next message (or the new protocol)
    LENGTH = "length"  # exactly Framing.length bytes
    CHUNKED = "chunked"  # chunked transfer coding (RFC 9112 §7.1)
    UNTIL_CLOSE = "until_close"  # everything until the sender closes the connection


# Enum members as module names for the code run per message, segment or chunk: on Python 3.11
# each `FramingKind.X` goes through the Enum metaclass's __getattr__ hook (~900 machine
# instructions, measured with callgrind), a module global costs next to nothing.
_NONE, _LENGTH, _CHUNKED, _UNTIL_CLOSE = (
    FramingKind.NONE, FramingKind.LENGTH, FramingKind.CHUNKED, FramingKind.UNTIL_CLOSE
)


@dataclass(frozen=True, slots=True)
class Framing:
    """How a message's body is delimited (RFC 9112 §6.3), with what is wrong in its fields."""
    kind: FramingKind
    length: int | None = None  # only for FramingKind.LENGTH
    problems: tuple[str, ...] = ()


# The framings without problems that body_framing gives most often, built once (they are frozen).
_FRAMING_NONE = Framing(_NONE)
_FRAMING_UNTIL_CLOSE = Framing(_UNTIL_CLOSE)
_FRAMING_CHUNKED = Framing(_CHUNKED)
# Content-Length framings without problems, one per length seen (a frozen dataclass costs
# ≈ 4 k machine instructions to build; the dense benchmark's bodies have a few hundred lengths).
_LENGTH_FRAMINGS: dict[int, Framing] = {}
_MAX_LENGTH_FRAMINGS = 4096  # lengths kept at most: a run of random lengths stops adding here


def _length_framing(length: int) -> Framing:
    framing = _LENGTH_FRAMINGS.get(length)
    if framing is None:
        framing = Framing(_LENGTH, length)
        if len(_LENGTH_FRAMINGS) < _MAX_LENGTH_FRAMINGS:
            _LENGTH_FRAMINGS[length] = framing
    return framing


def _content_length(values: list[str], problems: list[str]) -> int | None:
    """The single valid Content-Length, or None when the fields are invalid or disagree
    (the usual single number is read by body_framing before it comes here)."""
    # RFC 9110 §8.6: "a recipient MAY either reject the message as invalid or replace that invalid
    # field value with the single, valid Content-Length value" when a list repeats one value
    # (e.g. "42, 42" or two identical fields).
    elements = [e.strip(" \t") for v in values for e in v.split(",")]
    if not all(_DIGITS.fullmatch(e) for e in elements):
        problems.append("invalid_content_length")
        return None
    lengths = {int(e) for e in elements}
    if len(lengths) > 1:
        problems.append("conflicting_content_length")
        return None
    if len(elements) > 1:
        problems.append("duplicate_content_length")
    return lengths.pop()


def body_framing(head: RequestHead | ResponseHead, *, request_method: str | None = None) -> Framing:
    """How the body following ``head`` is delimited (RFC 9112 §6.3).

    ``request_method`` is the method of the request a response answers, when known: a response to
    HEAD has no body and a 2xx to CONNECT starts a tunnel.
    """
    problems: list[str] = []
    headers = head.headers
    names = headers.names()  # lowercased: one look-up each, without lowering the name
    has_te = "transfer-encoding" in names
    has_cl = "content-length" in names

    if isinstance(head, ResponseHead):
        status = head.status
        # RFC 9112 §6.3: "Any response to a HEAD request and any response with a 1xx
        # (Informational), 204 (No Content), or 304 (Not Modified) status code is always
        # terminated by the first empty line after the header fields". For 101 what follows is
        # the new protocol (RFC 9110 §15.2.2).
        # "Any 2xx (Successful) response to a CONNECT request implies that the connection will
        # become a tunnel immediately after the empty line that concludes the header fields."
        connect_tunnel = request_method == "CONNECT" and 200 <= status < 300
        if connect_tunnel or 100 <= status < 200 or status == 204:
            # RFC 9110 §8.6: "A server MUST NOT send a Content-Length header field in any response
            # with a status code of 1xx (Informational) or 204 (No Content). A server MUST NOT send
            # a Content-Length header field in any 2xx (Successful) response to a CONNECT request".
            # RFC 9112 §6.1 says the same of Transfer-Encoding.
            if has_cl:
                problems.append("content_length_not_allowed")
            if has_te:
                problems.append("transfer_encoding_not_allowed")
            return Framing(_NONE, problems=tuple(problems)) if problems else _FRAMING_NONE
        if request_method == "HEAD" or status == 304:
            return _FRAMING_NONE

    if has_te:
        codings = [t.split(";")[0].strip() for t in headers.tokens("transfer-encoding")]
        chunked_final = bool(codings) and codings[-1] == "chunked"
        if has_cl:
            # RFC 9112 §6.3: "If a message is received with both a Transfer-Encoding and a
            # Content-Length header field, the Transfer-Encoding overrides the Content-Length.
            # Such a message might indicate an attempt to perform request smuggling".
            problems.append("transfer_encoding_with_content_length")
        if head.version == "HTTP/1.0":
            # RFC 9112 §6.1: "A server or client that receives an HTTP/1.0 message containing a
            # Transfer-Encoding header field MUST treat the message as if the framing is faulty".
            problems.append("transfer_encoding_in_http10")
        if codings.count("chunked") > 1:
            # RFC 9112 §6.1: "A sender MUST NOT apply the chunked transfer coding more than once".
            problems.append("chunked_repeated")
        if chunked_final:
            return Framing(_CHUNKED, problems=tuple(problems)) if problems else _FRAMING_CHUNKED
        # RFC 9112 §6.3: in a response "the message body length is determined by reading the
        # connection until it is closed by the server"; in a request "the message body length
        # cannot be determined reliably; the server MUST respond with the 400 (Bad Request)
        # status code and then close the connection", so here too nothing after it is a message.
        if isinstance(head, RequestHead) or "chunked" in codings:
            problems.append("chunked_not_final")
        return Framing(_UNTIL_CLOSE, problems=tuple(problems))

    if has_cl:
        values = headers.all("content-length")
        if len(values) == 1:
            # The usual body: one field of digits, a framing from the kept ones (what
            # _content_length and _length_framing make of it, two calls fewer per message).
            # isascii: str.isdigit would also take digits such as "²" that the grammar does not.
            value = values[0].strip(" \t")
            if value.isdigit() and value.isascii():
                single = int(value)
                framing = _LENGTH_FRAMINGS.get(single)
                return framing if framing is not None else _length_framing(single)
        length = _content_length(values, problems)
        if length is None:
            # RFC 9112 §6.3: "If a message is received without Transfer-Encoding and with an
            # invalid Content-Length header field, then the message framing is invalid and the
            # recipient MUST treat it as an unrecoverable error" (the connection ends there).
            return Framing(_UNTIL_CLOSE, problems=tuple(problems))
        return Framing(_LENGTH, length, tuple(problems)) if problems else _length_framing(length)

    # RFC 9112 §6.3: "If this is a request message and none of the above are true, then the message
    # body length is zero"; "Otherwise, this is a response message without a declared message body
    # length, so the message body length is determined by the number of octets received prior to
    # the server closing the connection."
    if isinstance(head, RequestHead):
        return _FRAMING_NONE
    return _FRAMING_UNTIL_CLOSE


class _Chunk(Enum):
    SIZE = "size"  # reading a chunk-size line
    DATA = "data"
    DATA_CR = "data_cr"  # expecting the CRLF after chunk-data
    DATA_LF = "data_lf"
    TRAILER = "trailer"  # reading trailer lines until the empty one


_SIZE, _DATA, _DATA_CR, _DATA_LF, _TRAILER = (  # module names, as for FramingKind
    _Chunk.SIZE, _Chunk.DATA, _Chunk.DATA_CR, _Chunk.DATA_LF, _Chunk.TRAILER
)


UNTIL_CLOSE_ROOM = 1 << 62  # `room` of a body that ends with the connection


class BodyReader:
    """Follows one message body as its bytes arrive, whatever their segmentation.

    ``feed`` returns how many of the given bytes belong to the body; the rest (if any) is what
    follows the message. Once ``done`` is true, or ``error`` is set, nothing more is consumed.
    """

    __slots__ = ("framing", "done", "error", "size", "trailer_fields", "_keep", "_prefix",
                 "_problems", "_remaining", "_state", "_line")

    def __init__(self, framing: Framing, *, keep: int = PREFIX_LIMIT) -> None:
        self.framing = framing
        self.done = framing.kind is _NONE or (
            framing.kind is _LENGTH and not framing.length
        )
        self.error: str | None = None
        self.size = 0  # body bytes seen, without chunk framing
        self.trailer_fields = 0
        self._keep = keep
        self._prefix = bytearray()
        self._problems: list[str] = []
        self._remaining = framing.length or 0  # of the Content-Length body or the current chunk
        self._state = _SIZE
        self._line = bytearray()

    @property
    def prefix(self) -> bytes:
        """The first body bytes (at most ``keep``), chunk framing removed."""
        return bytes(self._prefix)

    @property
    def problems(self) -> tuple[str, ...]:
        return tuple(self._problems)

    def feed(self, data: bytes | bytearray) -> int:
        if self.done or self.error is not None:
            return 0
        kind = self.framing.kind
        if kind is _UNTIL_CLOSE:
            self._take(data)
            return len(data)
        if kind is _LENGTH:
            # `_take` inline: a Content-Length body is most of what is fed
            remaining = self._remaining
            n = remaining if remaining < len(data) else len(data)
            self.size += n
            room = self._keep - len(self._prefix)
            if room > 0:
                self._prefix += data[:n if n < room else room]
            self._remaining = remaining = remaining - n
            self.done = remaining == 0
            return n
        return self._feed_chunked(data)

    def room(self) -> int:
        """Body bytes that may go by unread (tls/passing.py): past the kept prefix, of a
        Content-Length body or one that runs until the close; 0 otherwise."""
        if self.done or self.error is not None or len(self._prefix) < self._keep:
            return 0
        kind = self.framing.kind
        if kind is _LENGTH:
            return self._remaining
        return UNTIL_CLOSE_ROOM if kind is _UNTIL_CLOSE else 0

    def pass_bytes(self, count: int) -> None:
        """``count`` body bytes (fewer than `room`) went by unread: what `feed` would count."""
        self.size += count
        if self.framing.kind is _LENGTH:
            self._remaining -= count

    def feed_eof(self) -> None:
        """The sender closed its direction: the end of an until-close body, or a cut one."""
        if self.done or self.error is not None:
            return
        if self.framing.kind is _UNTIL_CLOSE:
            self.done = True
        else:
            self.error = "body_truncated"

    def _take(self, data: bytes | bytearray) -> None:
        self.size += len(data)
        room = self._keep - len(self._prefix)
        if room > 0:
            self._prefix += data[:room]

    def _note(self, name: str) -> None:
        if name not in self._problems:
            self._problems.append(name)

    def _feed_chunked(self, data: bytes | bytearray) -> int:
        # RFC 9112 §7.1: chunked-body = *chunk last-chunk trailer-section CRLF
        #   chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
        pos = 0
        end = len(data)
        while pos < end and not self.done and self.error is None:
            state = self._state
            if state is _DATA:
                n = min(self._remaining, end - pos)
                self._take(data[pos : pos + n])
                pos += n
                self._remaining -= n
                if self._remaining == 0:
                    self._state = _DATA_CR
            elif state is _DATA_CR or state is _DATA_LF:
                byte = data[pos]
                if byte == 0x0D and state is _DATA_CR:
                    self._state = _DATA_LF
                elif byte == 0x0A:
                    if state is _DATA_CR:
                        self._note("bare_lf_in_chunked")
                    self._state = _SIZE
                else:
                    self.error = "missing_chunk_crlf"
                    break
                pos += 1
            else:
                pos = self._feed_line(data, pos)
        return pos

    def _feed_line(self, data: bytes | bytearray, pos: int) -> int:
        """Collect a chunk-size or trailer line; handle it once its LF is there."""
        nl = data.find(b"\n", pos)
        stop = len(data) if nl < 0 else nl
        # The limit is applied at the same byte whatever the segmentation.
        room = MAX_CHUNK_LINE - len(self._line)
        if stop - pos > room:
            self._line += data[pos : pos + room + 1]
            self.error = "chunk_line_too_long"
            return pos + room + 1
        if nl < 0:
            self._line += data[pos:stop]
            return len(data)
        if self._line:
            self._line += data[pos:stop]
            line = bytes(self._line)
            self._line.clear()
        else:  # the usual line, whole in this data: taken from it, not through the buffer
            line = bytes(data[pos:stop])
        if line.endswith(b"\r"):
            line = line[:-1]
        else:
            self._note("bare_lf_in_chunked")
        if self._state is _TRAILER:
            if line:
                self.trailer_fields += 1
            else:
                self.done = True
        else:
            self._chunk_size(line)
        return nl + 1

    def _chunk_size(self, line: bytes) -> None:
        # RFC 9112 §7.1.1: chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
        # Extensions carry nothing we need; "A recipient MUST ignore unrecognized chunk extensions."
        size_field = line.split(b";", 1)[0].rstrip(b" \t")
        if not _HEX.fullmatch(size_field):
            self.error = "invalid_chunk_size"
            return
        if len(size_field.lstrip(b"0")) > _MAX_HEX_DIGITS:
            self.error = "chunk_size_too_large"
            return
        size = int(size_field, 16)
        if size == 0:
            # last-chunk: what follows is the trailer section, ended by an empty line.
            self._state = _TRAILER
        else:
            self._state = _DATA
            self._remaining = size
