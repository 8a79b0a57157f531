"""The life of the WebSocket (RFC 8441) and CONNECT streams of one HTTP/2 connection after
their watch window: each stream's DATA, its ends, the connection's ends, in `Life` terms.

A stream is not a TCP connection, so nothing in the reassembler follows it: the HTTP/2 stage
keeps reading the connection's frames (other streams may still start) and hands each live
stream's events here. What ends a stream's life (RFC 9113 §5.1, §6.4, §6.8):

- END_STREAM from both sides (its half-closes, as two FINs): the stream is closed;
- RST_STREAM from either side (as a TCP RST, by the side that sent it);
- a GOAWAY with an error code (the connection is going down: as a RST by its sender); a
  graceful GOAWAY (NO_ERROR) leaves open streams to finish;
- the TCP connection's FIN (that side can send no more) and RST, and the connection's end.
"""

from __future__ import annotations

from typing import TypeVar

from analyzer.exchange.model import Attempt
from analyzer.life.model import attempt_key
from analyzer.life.state import Life, Ping, Sink, start_stream_life
from analyzer.reassembly import Connection

STREAM_ENDED = "stream ended"
STREAM_RESET = "stream reset"
GOING_AWAY = "connection going away"


_T = TypeVar("_T")


def _by_side(client: int, pair: tuple[_T, _T]) -> tuple[_T, _T]:
    """An (HTTP/2 client, server) pair by reassembler side."""
    return pair if client == 0 else (pair[1], pair[0])


class StreamLives:
    """The live streams of one HTTP/2 connection (sans-IO: the HTTP/2 stage feeds it)."""

    __slots__ = ("_sink", "_conn", "_client", "_lives")

    def __init__(self, sink: Sink, conn: Connection, client: int) -> None:
        self._sink = sink
        self._conn = conn
        self._client = client  # the reassembler side of the HTTP/2 client
        # stream id -> its life and how far each reassembler side's DATA went
        self._lives: dict[int, tuple[Life, list[int]]] = {}

    def __bool__(self) -> bool:
        return bool(self._lives)

    def __contains__(self, stream_id: int) -> bool:
        return stream_id in self._lives

    def _side(self, h2_side: int) -> int:
        return self._client if h2_side == 0 else 1 - self._client

    def start(self, attempt: Attempt, stream_id: int, switch_time: float, target: str,
              websocket: bool, sent: tuple[int, int], first: tuple[float, float],
              last: tuple[float, float], tails: tuple[bytes, bytes],
              ends: tuple[tuple[int, float] | None, tuple[int, float] | None],
              pings: tuple[Ping | None, Ping | None] = (None, None)) -> None:
        """A stream whose watch is over goes into life (after its attempt was emitted). The
        tuples are by HTTP/2 side (client, server); ``pings``: `pending_pings`."""
        key = attempt_key(attempt.first_frame, attempt.sequence, attempt.stream_id)
        c = self._client
        life = start_stream_life(key, c, switch_time, target, websocket, _by_side(c, sent),
                                 _by_side(c, first), _by_side(c, last), _by_side(c, tails),
                                 _by_side(c, ends), self._sink, _by_side(c, pings))
        self._lives[stream_id] = (life, list(_by_side(c, sent)))

    def data(self, h2_side: int, stream_id: int, data: bytes, skipped: int, end_stream: bool,
             frame: int, time: float) -> None:
        life, sent = self._lives[stream_id]
        side = self._side(h2_side)
        life.take(side, sent[side], data, time, frame)
        sent[side] += len(data) + skipped
        if end_stream and life.fin(side, frame, time):
            self._end(stream_id, time, STREAM_ENDED)

    def reset(self, h2_side: int, stream_id: int, frame: int, time: float) -> None:
        life, _ = self._lives[stream_id]
        side = self._side(h2_side)
        life.take(side, 0, b"", time)
        life.rst(side, frame, time)
        self._end(stream_id, time, STREAM_RESET)

    def going_away(self, h2_side: int, frame: int, time: float) -> None:
        """A GOAWAY with an error code: every live stream ends, reset by its sender."""
        side = self._side(h2_side)
        for stream_id, (life, _) in list(self._lives.items()):
            life.rst(side, frame, time)
            self._end(stream_id, time, GOING_AWAY)

    def shutting_down(self, h2_side: int) -> None:
        """A graceful GOAWAY (NO_ERROR): no new streams; the live ones may finish, and a
        connection end that follows is its sender's shutdown (a server restarting)."""
        side = self._side(h2_side)
        for life, _ in self._lives.values():
            if life.shut_down is None:
                life.shut_down = side

    def tcp_fin(self, side: int, frame: int, time: float, lost: bool = False) -> None:
        """A FIN of reassembler side ``side`` (``lost``: the capture lost it, the reassembly
        told it at the frame that acknowledged it): its streams can carry no more."""
        for stream_id, (life, _) in list(self._lives.items()):
            life.take(side, 0, b"", time)
            if life.fin(side, frame, time, lost):
                self._end(stream_id, time, STREAM_ENDED)

    def tcp_rst(self, side: int, frame: int, time: float) -> None:
        for stream_id, (life, _) in list(self._lives.items()):
            life.take(side, 0, b"", time)
            life.rst(side, frame, time)
            self._end(stream_id, time, STREAM_RESET)

    def end_all(self, time: float, reason: str) -> None:
        """The connection ended (or the capture did): every stream still live ends."""
        for stream_id in list(self._lives):
            self._end(stream_id, time, reason)

    def _end(self, stream_id: int, time: float, reason: str) -> None:
        life, _ = self._lives.pop(stream_id)
        life.end(self._conn.addresses, time, reason)
