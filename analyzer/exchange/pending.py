"""The values a ConnectionTracker keeps while it reads a connection: each side's reading state,
requests waiting for their answers, a response whose body is being read, a switch under watch."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, auto

from analyzer.exchange.handoff import ExchangeCounters, RunContext
from analyzer.exchange.model import Attempt, Message, OtherAnswer
from analyzer.exchange.switch import SwitchWatch
from analyzer.exchange.tcplog import TcpLog
from analyzer.http.body import BodyReader, Framing, FramingKind
from analyzer.http.message import RequestHead, ResponseHead
from analyzer.http.start import StartRead, classify_start
from analyzer.reassembly import Connection
from analyzer.slotted import slot_setters

MAX_HEAD_BYTES = 64 * 1024  # a head longer than this is not going to end (RFC 9112 sets no limit)
MAX_HELD_BYTES = 64 * 1024  # client bytes held while an upgrade request waits for its answer


class Mode(Enum):
    DETECT = auto()  # nothing seen yet on this side
    HEAD = auto()  # collecting a message head
    BODY = auto()  # skipping a body
    WAIT = auto()  # client: an upgrade request waits for its answer
    SWITCHED = auto()  # the new protocol runs on this side
    LOST = auto()  # after a hole: skipped until data begins a new message
    DEAD = auto()  # garbage: nothing more is interpreted here


HOLE = (b"", 0, 0.0)  # in Side.held: where a hole was, among the bytes held

# A Message (model.py) is frozen: its __init__ stores each of its 8 fields through
# object.__setattr__ (≈ 13 k machine instructions). `message` fills its slots through their own
# descriptors instead, as http/message.header does for a Header: the same value (equal, of equal
# hash; tests/test_pending.py), for the ≈ 3 Messages of each attempt the tracker makes; the
# compiled module fills them in C (`compiled_message`, decode/_made.pxi), ≈ 6 k fewer.
_MESSAGE_FIELDS = ("head", "first_frame", "last_frame", "time", "body_prefix", "body_length",
                   "body_complete", "head_complete")
assert Message.__slots__ == _MESSAGE_FIELDS, "message() below fills these slots"
_new_object = object.__new__
(_set_head, _set_first, _set_last, _set_time, _set_prefix, _set_length, _set_body_complete,
 _set_head_complete) = slot_setters(Message, _MESSAGE_FIELDS)


def message_plain(head: RequestHead | ResponseHead, first_frame: int, last_frame: int,
                  time: float, body_prefix: bytes = b"", body_length: int = 0,
                  body_complete: bool = True, head_complete: bool = True) -> Message:
    """``Message(...)`` of the same arguments (its plain twin), built without the frozen
    ``__init__``: `message` in the pure-Python install, and the twin of the compiled one
    (decode/_made.pxi, which fills the slots in C)."""
    made = _new_object(Message)
    _set_head(made, head)
    _set_first(made, first_frame)
    _set_last(made, last_frame)
    _set_time(made, time)
    _set_prefix(made, body_prefix)
    _set_length(made, body_length)
    _set_body_complete(made, body_complete)
    _set_head_complete(made, head_complete)
    return made


try:
    from analyzer.decode._fastpath import compiled_message as message
except ImportError:  # pragma: no cover - exercised by the pure-Python install
    message = message_plain

# module globals rather than FramingKind.X for speed (see the modes' aliases in tracker.py)
_LENGTH, _CHUNKED = FramingKind.LENGTH, FramingKind.CHUNKED


@dataclass(slots=True)
class Side:
    """What one side of a tracked connection is reading, and its bytes not yet read."""
    mode: Mode = Mode.DETECT
    buf: bytearray = field(default_factory=bytearray)
    buf_frame: int = 0  # frame of the first byte in buf
    buf_last: int = 0  # frame of the last byte in buf
    buf_time: float = 0.0
    scanned: int = 0  # find_head_end hint: how far a head was looked for in ``buf``
    # where a start line still growing in ``buf`` was left (http/start.py `read_start`), to
    # read on from there: the first bytes (tracker.py `_detect`), after a hole or behind a
    # 101 (holes.py); None when none is
    start_read: StartRead | None = None
    body: BodyReader | None = None
    held: list[tuple[bytes, int, float]] = field(default_factory=list)
    held_bytes: int = 0
    held_gap: bool = False


def joined(state: Side, data: bytes, frame: int, time: float) -> bytes | bytearray:
    """``data`` after the bytes ``state`` kept: joined in place (a copy of all of them at
    every segment was quadratic for bytes sent one at a time), or ``data`` itself when none
    were kept, its frame and time then the first byte's. The caller keeps ``data`` in the
    buffer itself when it was returned as it is and is to be kept."""
    if state.buf:
        state.buf += data
        return state.buf
    state.buf_frame, state.buf_time = frame, time
    return data


def side_plain() -> Side:
    """A side before its first byte: `new_side`'s plain twin (the compiled module fills the
    slots in C, decode/_made.pxi `FreshMaker`: two a connection, ≈ 3.5 k machine
    instructions each through the generated ``__init__``; tests/test_made_values.py)."""
    return Side()


try:
    from analyzer.decode._fastpath import FreshMaker
except ImportError:  # pragma: no cover - exercised by the pure-Python install
    new_side = side_plain
else:
    new_side = FreshMaker(Side, ())


@dataclass(slots=True)
class PendingRequest:
    """A request read and waiting for its response."""
    # What the request's Message holds; the Message itself (a frozen dataclass, ~13,000 machine
    # instructions to build) is made only for a request that becomes part of an attempt.
    head: RequestHead
    first_frame: int
    last_frame: int
    time: float
    sequence: int
    gap_before: bool
    # request_offers_upgrade, decided once when the head is parsed: an offering request is an
    # upgrade attempt whatever the answer (relevance.is_upgrade_attempt), else the answer decides
    offers: bool
    reported: bool = False  # already handed on as unanswered (live timeout); a late answer is not
    complete: bool = True  # False: the connection ended inside the head

    def message(self) -> Message:
        return message(self.head, self.first_frame, self.last_frame, self.time,
                       head_complete=self.complete)


@dataclass(slots=True)
class PendingResponse:
    """A final response whose body is still being read."""

    request: PendingRequest | None
    head: ResponseHead
    first_frame: int
    last_frame: int
    time: float
    interim: tuple[Message, ...]
    gap_before: bool = False  # a hole in the server's bytes before this response


@dataclass(slots=True)
class Switch:
    """A switched attempt under observation (the watching itself is `SwitchWatch`'s)."""

    request: PendingRequest | None
    response: Message
    interim: tuple[Message, ...]
    watch: SwitchWatch
    gap_before: bool = False  # a hole in the server's bytes before the 101
    request_after_hole: bool = False  # no request yet, and a hole in the client's bytes
    replaceable: bool = False  # the request was found late and offers nothing


# The tracker makes a PendingRequest per request head, a PendingResponse per final response
# whose body it reads and a Switch per switch; their generated ``__init__`` stores each field
# through its descriptor from Python. The compiled module fills the same slots in C
# (decode/_made.pxi `FreshMaker`, as `new_side`); these constructors' calls are its plain twins
# (tests/test_made_values.py compares them) and the pure-Python install's.
def pending_request_plain(head: RequestHead, first_frame: int, last_frame: int, time: float,
                          sequence: int, gap_before: bool, offers: bool) -> PendingRequest:
    return PendingRequest(head, first_frame, last_frame, time, sequence, gap_before, offers)


def pending_response_plain(request: PendingRequest | None, head: ResponseHead,
                           first_frame: int, last_frame: int, time: float,
                           interim: tuple[Message, ...], gap_before: bool) -> PendingResponse:
    return PendingResponse(request, head, first_frame, last_frame, time, interim, gap_before)


def switch_plain(request: PendingRequest | None, response: Message,
                 interim: tuple[Message, ...], watch: SwitchWatch, gap_before: bool) -> Switch:
    return Switch(request, response, interim, watch, gap_before)


try:
    from analyzer.decode._fastpath import FreshMaker as _FreshMaker
except ImportError:  # pragma: no cover - exercised by the pure-Python install
    new_pending_request, new_pending_response = pending_request_plain, pending_response_plain
    new_switch = switch_plain
else:
    new_pending_request = _FreshMaker(PendingRequest, (
        "head", "first_frame", "last_frame", "time", "sequence", "gap_before", "offers"))
    new_pending_response = _FreshMaker(PendingResponse, (
        "request", "head", "first_frame", "last_frame", "time", "interim", "gap_before"))
    new_switch = _FreshMaker(Switch, ("request", "response", "interim", "watch", "gap_before"))


class TrackerState:
    """The fields of a ConnectionTracker, declared once for it and its mixins (attempts.py,
    holes.py, switching.py); ConnectionTracker.__init__ sets them."""

    __slots__ = (
        "_conn", "_run", "_emit", "_counters", "_tcp", "_client", "_sides", "_requests",
        "_interim", "_response", "_switch", "_sequence", "_client_gap", "_server_gap",
        "_done", "_other",
    )

    _conn: Connection
    _run: RunContext
    _emit: Callable[[Attempt], None]
    _counters: ExchangeCounters
    _tcp: TcpLog
    _client: int | None
    _sides: tuple[Side, Side]
    _requests: deque[PendingRequest]
    _interim: list[Message]
    _response: PendingResponse | None
    _switch: Switch | None
    _sequence: int
    _client_gap: bool
    _server_gap: bool
    _done: bool
    _other: OtherAnswer | None


def holds_a_request(held: list[tuple[bytes, int, float]]) -> bool:
    """Whether bytes held behind an upgrade offer begin a request (at their start or after a
    hole), a start line split over segments included."""
    start = bytearray()
    for data, _, _ in [*held, HOLE]:
        if data and len(start) < 4096:
            start += data
            continue
        if not data:
            if start and classify_start(start) == "request":
                return True
            start.clear()
    return False


def has_body(framing: Framing) -> bool:
    """True when bytes of a body follow the head (a zero Content-Length has none)."""
    if framing.kind is _LENGTH:
        return bool(framing.length)
    return framing.kind is _CHUNKED
