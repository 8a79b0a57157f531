"""What the HTTP/2 reader reports: one value per frame (or header block), and the problems.

Every event carries the side that sent it (0 = client, 1 = server), the capture frame numbers
that carried its first and last byte, and the time of its first byte, so a report can point at
the packets as it does for HTTP/1 heads.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ErrorCode(IntEnum):
    """RFC 9113 §7 error codes (RST_STREAM and GOAWAY)."""

    NO_ERROR = 0x0  # graceful shutdown, or a stream no longer needed
    PROTOCOL_ERROR = 0x1
    INTERNAL_ERROR = 0x2
    FLOW_CONTROL_ERROR = 0x3
    SETTINGS_TIMEOUT = 0x4
    STREAM_CLOSED = 0x5
    FRAME_SIZE_ERROR = 0x6
    REFUSED_STREAM = 0x7  # "the stream was refused before any application processing" (§8.7)
    CANCEL = 0x8
    COMPRESSION_ERROR = 0x9
    CONNECT_ERROR = 0xA  # the TCP connection of a CONNECT was reset or closed abnormally
    ENHANCE_YOUR_CALM = 0xB
    INADEQUATE_SECURITY = 0xC
    HTTP_1_1_REQUIRED = 0xD


def error_name(code: int) -> str:
    """The RFC name of an error code; unknown codes (§7: "MUST NOT trigger any special
    behavior") as hex."""
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"0x{code:x}"


class Setting(IntEnum):
    """SETTINGS identifiers (RFC 9113 §6.5.2, RFC 8441 §3)."""

    HEADER_TABLE_SIZE = 0x1
    ENABLE_PUSH = 0x2
    MAX_CONCURRENT_STREAMS = 0x3
    INITIAL_WINDOW_SIZE = 0x4
    MAX_FRAME_SIZE = 0x5
    MAX_HEADER_LIST_SIZE = 0x6
    ENABLE_CONNECT_PROTOCOL = 0x8  # RFC 8441 §3: 1 allows extended CONNECT (:protocol)


def setting_name(identifier: int) -> str:
    try:
        return Setting(identifier).name
    except ValueError:
        return f"0x{identifier:x}"


@dataclass(frozen=True, slots=True)
class H2Event:
    """An HTTP/2 frame's event: which side sent it, the frames that carried it, when."""
    side: int  # 0 client, 1 server
    first_frame: int  # capture frame that carried the first byte
    last_frame: int  # capture frame that carried the last byte
    time: float  # time of the first byte


@dataclass(frozen=True, slots=True)
class Preface(H2Event):
    """The client connection preface (RFC 9113 §3.4)."""


@dataclass(frozen=True, slots=True)
class Settings(H2Event):
    """A SETTINGS frame (RFC 9113 §6.5)."""
    ack: bool
    values: tuple[tuple[int, int], ...]  # (identifier, value) in the order sent


@dataclass(frozen=True, slots=True)
class HeaderBlock(H2Event):
    """A HEADERS frame and its CONTINUATION frames, decoded (or a PUSH_PROMISE's block)."""

    stream_id: int
    fields: tuple[tuple[str, str], ...]  # names and values as sent (latin-1), pseudo first
    end_stream: bool
    promised_stream_id: int = 0  # a PUSH_PROMISE: the stream it reserves
    decoded: bool = True  # False when the HPACK state was lost (fields then empty)


@dataclass(frozen=True, slots=True)
class Data(H2Event):
    """Payload of a DATA frame (padding removed), in pieces of at most ``DATA_PIECE`` bytes at
    fixed offsets of the frame, so the pieces do not depend on how the bytes were segmented."""

    stream_id: int
    data: bytes
    frame_length: int  # the frame's declared length (padding included)
    end_stream: bool  # set on the frame's last piece only
    last_piece: bool
    skipped: int = 0  # payload bytes counted but not passed on (H2Reader keep_data)


@dataclass(frozen=True, slots=True)
class RstStream(H2Event):
    """An RST_STREAM frame (RFC 9113 §6.4)."""
    stream_id: int
    code: int


@dataclass(frozen=True, slots=True)
class GoAway(H2Event):
    """A GOAWAY frame (RFC 9113 §6.8)."""
    last_stream_id: int
    code: int
    debug: bytes  # the first bytes of the additional debug data


@dataclass(frozen=True, slots=True)
class Ping(H2Event):
    """A PING frame (RFC 9113 §6.7)."""
    ack: bool


@dataclass(frozen=True, slots=True)
class WindowUpdate(H2Event):
    """A WINDOW_UPDATE frame (RFC 9113 §6.9)."""
    stream_id: int
    increment: int


@dataclass(frozen=True, slots=True)
class Priority(H2Event):
    """A PRIORITY frame (RFC 9113 §6.3)."""
    stream_id: int
    depends_on: int


@dataclass(frozen=True, slots=True)
class OtherFrame(H2Event):
    """A frame of a type this reader does not interpret (extension frames, RFC 9113 §5.5)."""

    stream_id: int
    type: int
    length: int


@dataclass(frozen=True, slots=True)
class Problem(H2Event):
    """Something an endpoint would treat as an error (the kind is a stable word; the checks
    turn it into a catalogue finding)."""

    kind: str  # see PROBLEM_KINDS
    detail: str
    stream_id: int = 0  # the stream of the frame or header block at fault (0: the connection)


PROBLEM_KINDS = (
    "no_preface",  # the client did not start with the connection preface
    "frame_too_large",  # longer than the receiver's SETTINGS_MAX_FRAME_SIZE (or the hard cap)
    "frame_malformed",  # hyperframe refused the frame (wrong stream id for the type, bad size)
    "padding_invalid",  # the pad length is not smaller than the payload
    "continuation_expected",  # a frame other than CONTINUATION inside a header block
    "hpack_error",  # the header block does not decode: the HPACK state is lost
    "header_list_too_large",  # the decoded header list exceeds the bound
    "truncated",  # the direction ended inside a frame
    "hole",  # bytes missing from the capture: the direction is no longer read
)
