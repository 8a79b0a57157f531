"""WebSocket frames (RFC 6455 §5.2) as an observer sees them in one direction after the switch.

How it works: ``WsFrameParser`` is fed the bytes of one TCP direction that follow the 101 response
and returns a ``WsFrame`` as soon as a frame's header and the beginning of its payload (at most
``PAYLOAD_PREFIX_LIMIT`` bytes, which holds any valid control frame) are in. Payload bytes beyond
that are skipped by counting, so memory stays bounded whatever the frame sizes. Nothing is refused:
a reserved opcode, set RSV bits, a 64-bit length with its top bit set or a masked server frame all
still give a frame, and the checks judge them. Unlike an endpoint, the parser does not stop at the
first violation.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum

PAYLOAD_PREFIX_LIMIT = 125  # RFC 6455 §5.5: "All control frames MUST have a payload length of 125
#                             bytes or less", so a control frame is always kept whole.
DEFAULT_MAX_FRAMES = 10_000


class Opcode(IntEnum):
    """RFC 6455 §5.2 opcodes; 0x3-0x7 and 0xB-0xF are reserved and still reported as ints."""

    CONTINUATION = 0x0  # continues a fragmented message (§5.4)
    TEXT = 0x1  # UTF-8 text; an invalid payload earns Close 1007 (§8.1)
    BINARY = 0x2
    CLOSE = 0x8  # control: optional 2-byte code + UTF-8 reason (§5.5.1)
    PING = 0x9  # control: the peer must answer with a Pong (§5.5.2)
    PONG = 0xA  # control: answer to a Ping, or unsolicited heartbeat (§5.5.3)


def is_control(opcode: int) -> bool:
    """RFC 6455 §5.5: "Control frames are identified by opcodes where the most significant bit of
    the opcode is 1." Control frames MUST NOT be fragmented and carry at most 125 bytes."""
    return bool(opcode & 0x8)


class CloseCode(IntEnum):
    """Close status codes (RFC 6455 §7.4.1 and the IANA "WebSocket Close Code Number" registry).

    ``meaning`` holds what the code says, in the words a user needs in a report.
    """

    meaning: str

    def __new__(cls, value: int, meaning: str = "") -> CloseCode:
        member = int.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        return member

    NORMAL_CLOSURE = 1000, "normal closure: the purpose of the connection was fulfilled"
    GOING_AWAY = 1001, "going away: server shutting down or browser leaving the page"
    PROTOCOL_ERROR = 1002, "protocol error (e.g. unmasked client frame, bad RSV bits or opcode)"
    UNSUPPORTED_DATA = 1003, "unsupported data: a data type the endpoint cannot accept"
    RESERVED = 1004, "reserved: no meaning defined yet; must not be sent"
    # 1005, 1006 and 1015 are what an application reports, never what is sent.
    NO_STATUS_RCVD = 1005, "no status code: the Close frame had none; never sent on the wire"
    ABNORMAL_CLOSURE = 1006, "closed without a Close frame (TCP FIN/RST); never sent on the wire"
    INVALID_FRAME_PAYLOAD_DATA = 1007, "invalid payload: data not matching its type (bad UTF-8)"
    POLICY_VIOLATION = 1008, "policy violation (generic; often authentication after the upgrade)"
    MESSAGE_TOO_BIG = 1009, "message too big to process"
    MANDATORY_EXTENSION = 1010, "an extension the client requires was not negotiated by the server"
    INTERNAL_ERROR = 1011, "internal error: an unexpected condition prevented the request"
    SERVICE_RESTART = 1012, "service restart (IANA registry, not in RFC 6455)"
    TRY_AGAIN_LATER = 1013, "try again later: temporary overload (IANA registry, not in RFC 6455)"
    BAD_GATEWAY = 1014, "bad gateway: invalid response from upstream (IANA, not in RFC 6455)"
    TLS_HANDSHAKE = 1015, "TLS handshake failed (wss); never sent on the wire"


# RFC 6455 §7.4.1: 1005, 1006 and 1015 "MUST NOT be set as a status code in a Close control frame
# by an endpoint"; 1004 is reserved.
NEVER_ON_WIRE = frozenset(
    {CloseCode.NO_STATUS_RCVD, CloseCode.ABNORMAL_CLOSURE, CloseCode.TLS_HANDSHAKE}
)


_REGISTERED = frozenset(int(c) for c in CloseCode)


def describe(code: int) -> str:
    """What a close code means, for registered codes and for the ranges of RFC 6455 §7.4.2."""
    try:
        return CloseCode(code).meaning
    except ValueError:
        pass
    # RFC 6455 §7.4.2 ranges.
    if 0 <= code <= 999:
        return "invalid: status codes 0-999 are not used"
    if 1000 <= code <= 2999:
        return "unassigned: reserved for this protocol, its revisions and extensions"
    if 3000 <= code <= 3999:
        return "registered with IANA for libraries, frameworks and applications"
    if 4000 <= code <= 4999:
        return "private use: its meaning is agreed by the application"
    return "invalid: outside the range of close codes"


def may_be_sent(code: int) -> bool:
    """Whether a Close frame may carry ``code`` on the wire (RFC 6455 §7.4)."""
    if code in NEVER_ON_WIRE or code == CloseCode.RESERVED:
        return False
    if 1000 <= code <= 2999:
        return code in _REGISTERED
    return 3000 <= code <= 4999


@dataclass(frozen=True, slots=True)
class CloseInfo:
    """What a Close frame's payload says (RFC 6455 §5.5.1), with what is wrong in it."""
    code: int | None  # None: no status code in the frame (the peer reports 1005)
    reason: str
    problems: tuple[str, ...] = ()


def parse_close(payload: bytes) -> CloseInfo:
    """The status code and reason of a Close frame payload (RFC 6455 §5.5.1), tolerantly.

    Problems: ``close_payload_one_byte``, ``close_reason_invalid_utf8``,
    ``close_code_never_on_wire`` (1005, 1006, 1015), ``close_code_invalid`` (any other code that
    may not be sent).
    """
    # RFC 6455 §5.5.1: "If there is a body, the first two bytes of the body MUST be a 2-byte
    # unsigned integer (in network byte order) representing a status code".
    if not payload:
        return CloseInfo(None, "")
    if len(payload) == 1:
        return CloseInfo(None, "", ("close_payload_one_byte",))
    problems: list[str] = []
    code = int.from_bytes(payload[:2], "big")
    if code in NEVER_ON_WIRE:
        problems.append("close_code_never_on_wire")
    elif not may_be_sent(code):
        problems.append("close_code_invalid")
    raw_reason = payload[2:]
    # "the body [...] MAY contain UTF-8-encoded data with value /reason/" and §8.1 makes invalid
    # UTF-8 a failure; the reason is still shown, with the bad bytes replaced.
    try:
        reason = raw_reason.decode("utf-8")
    except UnicodeDecodeError:
        problems.append("close_reason_invalid_utf8")
        reason = raw_reason.decode("utf-8", errors="replace")
    return CloseInfo(code, reason, tuple(problems))


@dataclass(frozen=True, slots=True)
class WsFrame:
    """One WebSocket frame's header as it was on the wire (RFC 6455 §5.2)."""
    fin: bool
    rsv: int  # RSV1-RSV3 as 0-7 (RSV1 = 4); non-zero needs a negotiated extension
    opcode: int  # an Opcode value, or a reserved one kept as is
    masked: bool
    length: int  # payload length as declared (up to 2**64 - 1, even with the top bit set)
    header_length: int  # 2 to 14 bytes, masking key included
    payload_prefix: bytes  # first min(length, 125) payload bytes, unmasked
    offset: int  # where the frame starts in this direction's stream after the switch

    @property
    def end(self) -> int:
        """Stream offset just past the frame, to compare with how much of the stream was seen."""
        return self.offset + self.header_length + self.length


_TOP_BIT = 1 << 63  # of a 64-bit length: "the most significant bit MUST be 0"


def usual_frame(ws: WsFrame, from_client: bool) -> bool:
    """Whether ``ws`` is a frame that none of the frame rules of checks/after_switch.py
    reads: a data frame (continuation, text, binary) with RSV 0, masked exactly when the
    client sent it (RFC 6455 §5.1), its length in the fewest bytes (§5.2), and, when text,
    in ASCII (text that is not is read for its UTF-8). Nearly every frame of a WebSocket is
    one: the rules read only the others (`AfterSwitch.looked`). The compiled watch's twin:
    decode/_switch_watch.pxi `_usual`."""
    if ws.opcode > 2 or ws.rsv or ws.masked != from_client:
        return False
    form = ws.header_length - 4 if ws.masked else ws.header_length
    if not (form == 2 or (ws.length > 125 if form == 4 else
                          form == 10 and 65535 < ws.length < _TOP_BIT)):
        return False
    return ws.opcode != 1 or ws.payload_prefix.isascii()


class _Stage(Enum):
    HEADER = "header"
    PREFIX = "prefix"  # collecting the kept beginning of the payload
    SKIP = "skip"  # counting the rest of the payload
    STOPPED = "stopped"  # max_frames reached


# Module names for the stages, compared several times per fed piece: on Python 3.11 each
# `_Stage.X` goes through the Enum metaclass's __getattr__ hook (~900 machine instructions).
_HEADER, _PREFIX, _SKIP, _STOPPED = _Stage.HEADER, _Stage.PREFIX, _Stage.SKIP, _Stage.STOPPED
# Extended payload length bytes for the 7-bit length values that announce one (RFC 6455 §5.2).
_EXTENDED_LENGTH = {126: 2, 127: 8}

class WsFrameParser:
    """Incremental frame parser for one direction; returns the same frames however fed."""

    def __init__(self, *, max_frames: int = DEFAULT_MAX_FRAMES) -> None:
        self.max_frames = max_frames
        self.frames_seen = 0
        self.offset = 0  # stream bytes consumed so far
        self._stage = _HEADER if max_frames > 0 else _STOPPED
        self._header = bytearray()  # at most 14 bytes
        self._prefix = bytearray()  # at most PAYLOAD_PREFIX_LIMIT bytes
        self._frame_offset = 0
        self._want_prefix = 0
        self._skip = 0
        self._fields: tuple[bool, int, int, bool, int, int, bytes] | None = None

    @property
    def stopped(self) -> bool:
        """True once ``max_frames`` frames were returned: later data is not looked at."""
        return self._stage is _STOPPED

    def feed(self, data: bytes | bytearray) -> list[WsFrame]:
        frames: list[WsFrame] = []
        pos, end = 0, len(data)
        while pos < end and self._stage is not _STOPPED:
            if self._stage is _HEADER:
                pos = self._read_header(data, pos)
                # A frame without payload is complete the moment its header is.
                if self._stage is _PREFIX and self._want_prefix == 0:
                    frames.append(self._emit())
            elif self._stage is _PREFIX:
                n = min(self._want_prefix - len(self._prefix), end - pos)
                self._prefix += data[pos : pos + n]
                pos += n
                if len(self._prefix) == self._want_prefix:
                    frames.append(self._emit())
            else:
                n = min(self._skip, end - pos)
                pos += n
                self._skip -= n
                if self._skip == 0:
                    self._stage = _HEADER
        self.offset += pos
        return frames

    def room(self) -> int:
        """Payload bytes of the current frame that may go by unread (past its kept prefix)."""
        return self._skip if self._stage is _SKIP else 0

    def pass_bytes(self, count: int) -> None:
        """``count`` payload bytes (fewer than `room`) went by unread: what `feed` counts."""
        self._skip -= count
        self.offset += count

    def flush(self) -> list[WsFrame]:
        """At the end of the capture: the frame whose header arrived but not all of its kept
        payload, with the bytes there are (``payload_prefix`` shorter than expected)."""
        if self._stage is _PREFIX:
            self._skip = 0
            return [self._emit()]
        return []

    def _read_header(self, data: bytes | bytearray, pos: int) -> int:
        if not self._header:
            self._frame_offset = self.offset + pos
        need = self._header_size()
        while len(self._header) < need and pos < len(data):
            take = need - len(self._header)
            self._header += data[pos : pos + take]
            pos += min(take, len(data) - pos)
            need = self._header_size()
        if len(self._header) < need:
            return pos
        h = self._header
        # RFC 6455 §5.2: FIN (1 bit), RSV1-3 (3 bits), opcode (4 bits), MASK (1 bit),
        # payload len (7 bits, then 16 or 64 bits), masking key (0 or 4 bytes).
        fin = bool(h[0] & 0x80)
        rsv = (h[0] >> 4) & 0x7
        opcode = h[0] & 0x0F
        masked = bool(h[1] & 0x80)
        length = h[1] & 0x7F
        ext = _EXTENDED_LENGTH.get(length, 0)
        if ext:
            # "the most significant bit MUST be 0" for the 64-bit form; kept as sent, the caller
            # judges (a huge length only means the rest of the stream is skipped).
            length = int.from_bytes(h[2 : 2 + ext], "big")
        key = bytes(h[2 + ext : 6 + ext]) if masked else b""
        self._fields = (fin, rsv, opcode, masked, length, len(h), key)
        self._header.clear()
        self._want_prefix = min(length, PAYLOAD_PREFIX_LIMIT)
        self._skip = length - self._want_prefix
        self._stage = _PREFIX
        return pos

    def _header_size(self) -> int:
        """Bytes of header needed, as far as the bytes already read tell."""
        if len(self._header) < 2:
            return 2
        second = self._header[1]
        size = 2 + _EXTENDED_LENGTH.get(second & 0x7F, 0)
        return size + 4 if second & 0x80 else size

    def _emit(self) -> WsFrame:
        assert self._fields is not None
        fin, rsv, opcode, masked, length, header_length, key = self._fields
        payload = bytes(self._prefix)
        if masked:
            # RFC 6455 §5.3: "Octet i of the transformed data is the XOR of octet i of the
            # original data with octet at index i modulo 4 of the masking key." The key is
            # repeated to the payload's length and both are XORed as one big integer, which
            # is that, without a Python step per byte.
            n = len(payload)
            mask = (key * (n // 4 + 1))[:n]
            unmasked = int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")
            payload = unmasked.to_bytes(n, "big")
        frame = WsFrame(
            fin, rsv, opcode, masked, length, header_length, payload, self._frame_offset
        )
        self._prefix.clear()
        self._fields = None
        self.frames_seen += 1
        if self.frames_seen >= self.max_frames:
            self._stage = _STOPPED
        else:
            self._stage = _SKIP if self._skip else _HEADER
        return frame


def frame_parser(compiled: bool = True) -> type[WsFrameParser]:
    """The frame parser for a run: the compiled twin (`_fastpath.CompiledFrameParser`, the same
    frames and state, tests/test_websocket_frames_compiled.py) when built and ``compiled``,
    else `WsFrameParser`."""
    if compiled:
        try:
            from analyzer.decode._fastpath import CompiledFrameParser
        except ImportError:  # pragma: no cover - the pure-Python install
            return WsFrameParser
        return CompiledFrameParser  # type: ignore[no-any-return, unused-ignore]
    return WsFrameParser
