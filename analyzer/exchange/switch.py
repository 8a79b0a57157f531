"""The first moments after a switch: what each side sent, watched for a bounded window.

Enough to see a hang-up, a Close or a broken preface right after a 101 (or a CONNECT 2xx),
and bounded in time, frames and bytes so that a long-lived WebSocket costs nothing more.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from analyzer.exchange.model import AfterSwitch, SeenFrame, TcpEvent
from analyzer.websocket.frames import WsFrameParser, usual_frame

if TYPE_CHECKING:
    from analyzer.http2.reader import H2Reader

PREFIX_BYTES = 256  # first bytes of a new protocol kept for its checks (h2c preface, SETTINGS)
_SIDES = ("client", "server")


@dataclass(frozen=True, slots=True)
class ObservationWindow:
    """How long the first moments after a switch are watched before an attempt is handed on."""

    seconds: float = 2.0
    frames: int = 16


DEFAULT_WINDOW = ObservationWindow()


class SwitchWatch:
    """Collects both sides' first bytes (and WebSocket frames) after one switch."""

    def __init__(self, switch_time: float, seen_at: float, websocket: bool,
                 window: ObservationWindow, h2c: bool = False,
                 parser: Callable[..., WsFrameParser] = WsFrameParser) -> None:
        # switch_time: the 101's first byte; seen_at: when its head was complete, which is
        # when watching starts
        self.switch_time = switch_time
        self.websocket = websocket
        self.deadline = seen_at + window.seconds
        self._frame_limit = 2 * window.frames
        self._parsers = (
            (parser(max_frames=window.frames), parser(max_frames=window.frames))
            if websocket else None
        )
        self._frames: list[SeenFrame] = []
        self._prefixes = (bytearray(), bytearray())
        self._first: list[TcpEvent | None] = [None, None]
        self.last_seen = [0.0, 0.0]  # time of each side's last bytes (client, server)
        self._early_bytes = 0
        self._early_frame = 0
        self.complete = True  # False once a hole cut the observation short
        # h2c (RFC 7540 §3.2): HTTP/2 is read until the answer to the upgraded request, which
        # the server sends on stream 1. Imported here: hpack is dear to import, and rare.
        self._h2: H2Reader | None = None
        self._h2_status: TcpEvent | None = None
        self.h2_status = 0
        if h2c:
            from analyzer.http2.reader import H2Reader

            self._h2 = H2Reader()

    def early(self, length: int, frame: int) -> None:
        """The client sent these bytes before the switch was answered (RFC 6455 §4.1)."""
        if self._early_frame == 0:
            self._early_frame = frame
        self._early_bytes += length

    @property
    def client_seen(self) -> bool:
        """Whether any client byte after the switch was seen (or lost in a hole)."""
        return self._first[0] is not None

    def lost(self, client: bool, frame: int, time: float) -> None:
        """A hole in one side's bytes: it sent something (so it did not hang up without a
        word), and what it was cannot be read."""
        self.complete = False
        index = 0 if client else 1
        if self._first[index] is None:
            self._first[index] = TcpEvent(frame, time)

    def observe(self, client: bool, data: bytes, frame: int, time: float) -> bool:
        """Takes bytes of one side; True once the window is full (nothing more is needed)."""
        index = 0 if client else 1
        if self._first[index] is None:
            self._first[index] = TcpEvent(frame, time)
        self.last_seen[index] = time
        prefix = self._prefixes[index]
        if len(prefix) < PREFIX_BYTES:
            prefix += data[: PREFIX_BYTES - len(prefix)]
        if self._h2 is not None:
            return self._h2c(index, data, frame, time)
        if self._parsers is not None:
            for ws in self._parsers[index].feed(data):
                self._frames.append(SeenFrame(_SIDES[index], frame, time, ws))
            return len(self._frames) >= self._frame_limit
        return all(len(p) >= PREFIX_BYTES for p in self._prefixes)

    def _h2c(self, index: int, data: bytes, frame: int, time: float) -> bool:
        from analyzer.http2.events import HeaderBlock

        assert self._h2 is not None
        if self._h2_status is None:
            for event in self._h2.feed(index, data, frame, time):
                if isinstance(event, HeaderBlock) and event.side == 1 and event.stream_id == 1:
                    status = dict(event.fields).get(":status", "")
                    if status.isdigit() and not 100 <= int(status) < 200:
                        self.h2_status = int(status)
                        self._h2_status = TcpEvent(event.first_frame, event.time)
        # done once the answer is in and the client's preface could be checked
        return self._h2_status is not None and len(self._prefixes[0]) >= 24

    def room(self, client: bool) -> int:
        """Bytes of one side that may go by unread (tls/passing.py): the rest of a WebSocket
        frame's payload, once that side's first bytes and prefix are kept."""
        index = 0 if client else 1
        if (self._parsers is None or self._h2 is not None or self._first[index] is None
                or len(self._prefixes[index]) < PREFIX_BYTES):
            return 0
        return self._parsers[index].room()

    def pass_bytes(self, client: bool, count: int) -> None:
        assert self._parsers is not None
        self._parsers[0 if client else 1].pass_bytes(count)

    def result(self, time: float) -> AfterSwitch:
        return AfterSwitch(
            switch_time=self.switch_time,
            frames=tuple(self._frames),
            client_prefix=bytes(self._prefixes[0]),
            server_prefix=bytes(self._prefixes[1]),
            client_first=self._first[0],
            server_first=self._first[1],
            early_client_bytes=self._early_bytes,
            early_client_frame=self._early_frame,
            complete=self.complete,
            h2c_status=self.h2_status,
            h2c_status_event=self._h2_status,
            looked=unusual_frames(self._frames),
        )


def unusual_frames(frames: Sequence[SeenFrame]) -> tuple[int, ...]:
    """The indexes of ``frames`` that are not usual (`usual_frame`), in order: what
    `AfterSwitch.looked` holds."""
    return tuple(i for i, seen in enumerate(frames) if not usual_frame(seen.ws,
                                                                      seen.side == "client"))


def looked_frames(after: AfterSwitch) -> tuple[int, ...]:
    """``after.looked``, or worked out for an AfterSwitch made without it: the frames the
    rules read (every Close, Ping and Pong among them, in order)."""
    return after.looked if after.looked is not None else unusual_frames(after.frames)



def _compiled() -> tuple[object, ...] | None:
    """The compiled frame parser and watch, once (None in the pure-Python install)."""
    global _COMPILED
    if _COMPILED is None:
        try:
            from analyzer.decode._fastpath import CompiledFrameParser, CompiledSwitchWatch
        except ImportError:  # pragma: no cover - the pure-Python install
            _COMPILED = ()
        else:
            _COMPILED = (CompiledFrameParser, CompiledSwitchWatch)
    return _COMPILED or None


_COMPILED: tuple[object, ...] | None = None


def switch_watch(switch_time: float, seen_at: float, websocket: bool,
                 window: ObservationWindow, h2c: bool = False,
                 parser: Callable[..., WsFrameParser] = WsFrameParser) -> SwitchWatch:
    """The watch of one switch: the compiled twin of `SwitchWatch`
    (`_fastpath.CompiledSwitchWatch`, the same state and results, tests/test_switch_watch.py)
    for a WebSocket switch of a run whose frame parser is the compiled one, else `SwitchWatch`."""
    if websocket and not h2c and parser is not WsFrameParser:
        compiled = _compiled()
        if compiled is not None and parser is compiled[0]:
            watch: SwitchWatch = compiled[1](  # type: ignore[operator]
                switch_time, seen_at, window)
            return watch
    return SwitchWatch(switch_time, seen_at, websocket, window, h2c, parser)
