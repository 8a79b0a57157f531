"""The life state: what a switched connection costs after its watch window, until its end.

How it works
------------
When the watch window after a switch ends and the connection is still open, the tracker lets
it go through `RunContext.let_go` with a `Life`. The reassembler then stops reassembling it
(its listener, buffers and the 16 KiB overlap-compare bytes go) and hands each of its segments
to `Life.take` instead: no frame parsing, no ordering. Per direction it keeps the first and
last packet times, the time of the last new byte, how far the stream went (unwrapped from
sequence numbers, so retransmissions are not counted twice), its FIN or RST, and the bytes
a Close frame sent just before the end could be read from (`keep_tail`: from the first Close
byte among the last `TAIL_BYTES`, usually none). At the end (both FINs, a RST, the capture's
end, or `LIFE_IDLE_TIMEOUT` of silence) it builds a `Lifetime` and gives it to its sink.

Once its attempt is judged (at its next segment or the reassembler's next sweep) a
connection in life moves into the run's life table
(`analyzer/life/table.py`; compiled: `LifeTable` in decode/_life_table.pxi), which keeps the
same fields in C (about 300 bytes a connection with its table slots, tests/test_life.py) and
whose segments the compiled skip takes without a Python call; it gives the `Life` back when
the connection ends, so the end is computed here either way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from analyzer.exchange.model import Endpoint
from analyzer.life.close import close_at_end
from analyzer.life.model import CLOSE_FRAME, CLOSE_HANDSHAKE, FIN, OPEN, RST, Lifetime
from analyzer.reassembly.connection import LIFE_IDLE_TIMEOUT  # the reassembler's, one value
from analyzer.websocket.keepalive import engineio_pinger, is_keepalive_ping

if TYPE_CHECKING:
    from analyzer.exchange.model import AfterSwitch
    from analyzer.exchange.tcplog import TcpLog
    from analyzer.reassembly import Connection

# A Close frame is at most 2 + 4 + 125 = 131 bytes (RFC 6455 §5.5), so one that ends where a
# direction's bytes end starts within its last 131 bytes (the decisions page said 256: 1.1 KB
# per connection), and `close.close_at_end` reads nothing before its first byte.
TAIL_BYTES = 131
_CLOSE = b"\x88"
_MASK = 0xFFFFFFFF
_HALF = 0x80000000
_EMPTY = b""

# What one segment's new bytes are when they are exactly one small frame (`lone_frame`): a
# keepalive ping (a Ping, or Engine.IO's "2" where that side pings) or a Close. Keepalive
# pings and Closes go in segments of their own (each is one write, and the libraries turn
# Nagle off), so a direction's frames need not be walked to find them.
PING, CLOSE = 1, 2
_PING_OPCODE, _CLOSE_OPCODE, _TEXT_OPCODE = 0x9, 0x8, 0x1
_EIO_PING = 0x32  # Engine.IO's ping packet: the text "2"


def lone_frame(data: bytes, eio: bool) -> int:
    """PING or CLOSE when ``data`` is exactly one final Ping (``eio``: or one text frame
    "2", Engine.IO's ping) or Close frame with a 7-bit length, else 0."""
    size = len(data)
    if size < 2 or size > 131 or not data[0] & 0x80:
        return 0
    opcode = data[0] & 0x0F
    masked, length = data[1] & 0x80, data[1] & 0x7F
    if length > 125 or size != 2 + (4 if masked else 0) + length:
        return 0
    if opcode == _PING_OPCODE:
        return PING
    if opcode == _CLOSE_OPCODE:
        return CLOSE
    if eio and opcode == _TEXT_OPCODE and length == 1 and not data[0] & 0x70:
        return PING if (data[6] ^ data[2] if masked else data[2]) == _EIO_PING else 0
    return 0


# A keepalive gives up after its timeout; a close that comes sooner after the ping (the side
# pinged and closed for its own reasons) says nothing of the ping. aiohttp's heartbeat waits
# half its interval (0.5 s for heartbeat=1), the shortest seen; a Pong on a LAN comes in ms.
KEEPALIVE_MIN_WAIT = 0.25


def keep_tail(tail: bytes, new: bytes) -> bytes:
    """What a direction keeps after ``new`` follows ``tail``: from the first Close byte (0x88)
    among the last TAIL_BYTES bytes to the end, or nothing. `close_at_end` gives the same
    answer on it as on every byte so far (a candidate starts at a 0x88 within the last 131
    bytes; the bytes before the first such byte are never read), and a quiet connection,
    whose last bytes are its handshake's text, keeps none."""
    both = tail + new if len(new) < TAIL_BYTES else new
    at = both.find(_CLOSE, max(len(both) - TAIL_BYTES, 0))
    return both[at:] if at >= 0 else _EMPTY


class _Flow:
    """One direction of a connection in life."""

    __slots__ = ("base", "sent", "first", "last", "data", "tail", "end", "end_frame", "reset",
                 "proof", "lost", "data_frame", "ping", "ping_frame", "ping_held", "eio")

    def __init__(self, base: int, sent: int, first: float, last: float) -> None:
        self.base = base  # sequence number of stream offset 0
        self.sent = sent  # stream offset reached (bytes sent so far)
        self.first = first  # time of the first and last packet
        self.last = last
        self.data = last  # time of the last new byte
        self.tail = _EMPTY  # the bytes a final Close frame may be in (`keep_tail`)
        self.end = 0.0  # time of its FIN or RST (0: none yet)
        self.end_frame = 0
        self.reset = False
        # Before any end: the (frame, time) of the first segment whose ACK was one number
        # past this direction's bytes, a lost FIN's proof (`Life.acked`), until new bytes.
        self.proof: tuple[int, float] | None = None
        # Its end is a FIN the capture lost, told from its proof: it came before its frame,
        # which acknowledged it (so it ended first at a tie, as `model.came_first` has it).
        self.lost = False
        self.data_frame = 0  # the frame of the last new byte (0: not known)
        # Its first keepalive ping the other side has not answered with any byte yet (time
        # 0.0: none), and whether that is for good (``ping_held``: this side closed, by a
        # Close frame or its end, while it waited, so later bytes of the other side do not
        # answer it).
        self.ping = 0.0
        self.ping_frame = 0
        self.ping_held = False
        self.eio = False  # its text "2" is a ping (Engine.IO, `engineio_pinger`)


class Sink(Protocol):
    """Where lives are announced and their ends go (`analyzer/life/stage.py`)."""

    def started(self, life: Life) -> None: ...

    def ended(self, life: Life, lifetime: Lifetime,
              addresses: tuple[bytes, int, bytes, int]) -> None: ...


class Life:
    """A switched connection past its watch window (sans-IO: the reassembler feeds it)."""

    __slots__ = ("key", "client", "switch_time", "target", "websocket", "flows", "sink",
                 "decided", "ended", "shut_down")

    def __init__(self, key: tuple[int, int, int], client: int, switch_time: float, target: str,
                 websocket: bool, flows: tuple[_Flow, _Flow], sink: Sink) -> None:
        self.key = key  # the attempt decided at the watch's end (model.attempt_key)
        self.client = client  # the reassembler side of the HTTP client
        self.switch_time = switch_time
        self.target = target
        self.websocket = websocket  # a Close frame is looked for only then
        self.flows = flows  # by reassembler side
        self.sink = sink
        self.decided: object = None  # the verdict at the watch's end (set by the pipeline)
        self.ended = False
        # the reassembler side that shut an HTTP/2 connection down under this stream (a
        # graceful GOAWAY: no new streams, then the connection's end), None without one
        self.shut_down: int | None = None

    def take(self, side: int, seq: int, payload: bytes, time: float, frame: int = 0) -> None:
        """A segment of ``side`` (frame ``frame``): its time, and its bytes if they are new."""
        flow = self.flows[side]
        flow.last = time
        if not payload:
            return
        # how far this segment's end is past what was sent, modulo 2**32: new bytes when
        # below half the sequence space (else a retransmission or an old segment)
        ahead = (seq + len(payload) - flow.base - flow.sent) & _MASK
        if not ahead or ahead >= _HALF:
            return
        flow.sent += ahead
        flow.data = time
        flow.data_frame = frame
        flow.proof = None  # the number acknowledged was a byte (or came before these)
        new = payload if ahead >= len(payload) else payload[len(payload) - ahead:]
        flow.tail = keep_tail(flow.tail, new)
        self._pinged(side, new, frame, time)

    def _pinged(self, side: int, new: bytes, frame: int, time: float) -> None:
        """New bytes of ``side``: they answer the other side's waiting ping (any byte shows
        the peer alive), and may be a keepalive ping of its own or the Close that ends its
        wait (`lone_frame`)."""
        other = self.flows[1 - side]
        if other.ping and not other.ping_held and not other.end:
            other.ping = 0.0
            other.ping_frame = 0
        flow = self.flows[side]
        if flow.ping_held or not frame or len(new) > 131:
            return  # (frame 0: not known, a decrypted session's records: not looked at)
        kind = lone_frame(new, flow.eio)
        if kind == PING and not flow.ping:
            flow.ping, flow.ping_frame = time, frame
        elif kind == CLOSE and flow.ping:
            flow.ping_held = True

    def tail(self, side: int) -> bytes:
        """The bytes ``side`` keeps where a final Close frame may be (`keep_tail`)."""
        return self.flows[side].tail

    def took(self, side: int, count: int, tail: bytes, data_time: float,
             last_time: float) -> None:
        """``count`` new bytes of ``side`` read elsewhere (a decrypted direction's records,
        opened in C: tls/passing.py `offer_open_in_life`), the last of them at ``data_time``,
        leaving ``tail`` as `keep_tail` would; its last packet at ``last_time``: what `take`
        of each of its segments would have left."""
        flow = self.flows[side]
        flow.last = last_time
        if count:
            flow.sent += count
            flow.data = data_time
            flow.data_frame = 0  # (not known: the frames stayed in C)
            flow.proof = None
            flow.tail = tail
            # (pings are not looked for in records read in C; bytes answer the other's)
            self._pinged(side, _EMPTY, 0, data_time)

    # A lost FIN (as the reassembly's, delivery.py `_lost_fin`): a FIN occupies one sequence
    # number (RFC 9293 §3.4), so when the other side acknowledged exactly one number past a
    # direction's bytes and then closed (FIN or RST), or acknowledged it after it had
    # closed itself (the FIN that answered its close), or the direction resets one number
    # past its bytes, that number was the direction's FIN, which the capture lost. Its end
    # is then the segment that first acknowledged it. Unlike the reassembly, bytes the other
    # side sent after acknowledging it do not matter: nothing here reads them in order.

    def answers(self, side: int, ack: int) -> bool:
        """Whether an ACK of ``ack`` from ``side``, which has ended, acknowledges the other
        side's lost FIN: `acked` would end the connection (the compiled table leaves such a
        segment to `segment`)."""
        other = self.flows[1 - side]
        return bool(self.flows[side].end) and not other.end and \
            (ack - other.base - other.sent) & _MASK == 1

    def acked(self, side: int, ack: int, frame: int, time: float) -> bool:
        """A segment of ``side`` acknowledged ``ack`` of the other side's stream: a lost
        FIN's proof kept, or that FIN told at once when ``side`` had ended; True when both
        sides have ended then."""
        other = self.flows[1 - side]
        if other.end or (ack - other.base - other.sent) & _MASK != 1:
            return False
        if self.flows[side].end:  # the FIN that answered this side's close
            other.end, other.end_frame, other.proof = time, frame, None
            return True
        if other.proof is None:
            other.proof = (frame, time)
        return False

    def _lost_fin(self, side: int) -> None:
        flow = self.flows[side]
        if flow.proof is not None and not flow.end:
            flow.end_frame, flow.end = flow.proof
            flow.lost = True
        flow.proof = None

    def seen(self, side: int, data: bytes, time: float, frame: int = 0) -> None:
        """Bytes the reassembler had already counted when the life began (they ended the
        watch): only their time, frame and tail."""
        flow = self.flows[side]
        flow.last = flow.data = time
        flow.data_frame = frame
        flow.tail = keep_tail(flow.tail, data)
        self._pinged(side, data, frame, time)

    def fin(self, side: int, frame: int, time: float, lost: bool = False) -> bool:
        """A FIN of ``side`` (``lost``: one the capture lost, told by the reassembly at the
        frame that acknowledged it); True once both sides have ended their streams."""
        flow = self.flows[side]
        if not flow.end:
            self._lost_fin(1 - side)
            flow.end, flow.end_frame, flow.proof, flow.lost = time, frame, None, lost
        return all(f.end for f in self.flows)

    def rst(self, side: int, frame: int, time: float, seq: int = -1) -> None:
        """A RST of ``side`` (``seq``: its sequence number, -1 when it has none)."""
        flow = self.flows[side]
        if not flow.end:
            self._lost_fin(1 - side)
            if seq >= 0 and (seq - flow.base - flow.sent) & _MASK == 1:
                self._lost_fin(side)  # its RST came after its FIN
        flow.reset = True
        flow.proof = None
        if not flow.end or flow.end > time:
            flow.end, flow.end_frame, flow.lost = time, frame, False

    def end(self, addresses: tuple[bytes, int, bytes, int], time: float, reason: str) -> None:
        """The connection ended (``reason`` as the reassembler says it: closed, reset, end
        of capture, idle...): the lifetime goes to the sink, once."""
        if self.ended:
            return
        self.ended = True
        self.sink.ended(self, self.lifetime(addresses, time, reason), addresses)

    def lifetime(self, addresses: tuple[bytes, int, bytes, int], time: float,
                 reason: str) -> Lifetime:
        client, server = self.flows[self.client], self.flows[1 - self.client]
        names = {self.client: "client", 1 - self.client: "server"}
        # (at a tie, a lost FIN first: the frame it is told at acknowledged it)
        ends = [(f.end, not f.lost, s) for s, f in enumerate(self.flows) if f.end]
        closes = [(close_at_end(f.tail), s) for s, f in enumerate(self.flows)] \
            if self.websocket else []
        sent = [(c, s) for c, s in closes if c is not None]
        code: int | None = None
        close_side = ""
        close_reason = ""
        close_frame, close_time = 0, 0.0
        if sent:
            # the first Close sent: the one whose direction fell silent first (a Close read
            # at a direction's end is its last bytes: their time and frame are the Close's)
            (code, close_reason), side = min(sent, key=lambda cs: self.flows[cs[1]].data)
            close_side = names[side]
            close_frame, close_time = self.flows[side].data_frame, self.flows[side].data
        ended = bool(ends) and reason not in ("end of capture", "idle", "evicted")
        if not ended:
            # Past LIFE_IDLE_TIMEOUT of silence a connection is not claimed open any more
            # (the reassembler lets it go then): its end is there, not at the capture's end,
            # which for several files read as one can be years later.
            last = max(client.last, server.last)
            end_time = min(time, last + LIFE_IDLE_TIMEOUT) if last else time
            how, closer_side, frame = OPEN, None, 0
        else:
            end_time, _, closer_side = min(ends)
            frame = self.flows[closer_side].end_frame
            if len(sent) == 2:
                how = CLOSE_HANDSHAKE
            elif sent:
                how = CLOSE_FRAME
            else:
                how = RST if any(f.reset for f in self.flows) else FIN
            if sent:  # the side that sent the first Close started the end
                closer_side = next(s for s, n in names.items() if n == close_side)
        last_data = max(client.data, server.data)
        ping_frame, ping_time = 0, 0.0
        if closer_side is not None:
            # the closer's keepalive ping that nothing answered before it closed
            pinger = self.flows[closer_side]
            gave_up = close_time if sent else end_time
            if pinger.ping and gave_up - pinger.ping >= KEEPALIVE_MIN_WAIT:
                ping_frame, ping_time = pinger.ping_frame, pinger.ping
        closer = None
        if closer_side is not None:
            closer = Endpoint(addresses[0], addresses[1]) if closer_side == 0 else \
                Endpoint(addresses[2], addresses[3])
        return Lifetime(
            duration_s=round(max(end_time - self.switch_time, 0.0), 6),
            closed_by=names[closer_side] if closer_side is not None else "",
            how=how,
            idle_before_end_s=round(max(end_time - last_data, 0.0), 6),
            close_code=code,
            closer=closer,
            close_side=close_side,
            close_reason=close_reason,
            client_bytes=client.sent,
            server_bytes=server.sent,
            client_first=client.first,
            client_last=client.last,
            server_first=server.first,
            server_last=server.last,
            end_frame=frame,
            end_time=end_time,
            websocket=self.websocket,
            close_frame=close_frame,
            close_time=close_time,
            ping_frame=ping_frame,
            ping_time=ping_time,
            shut_down_by=names[self.shut_down] if self.shut_down is not None else "",
        )


# Targets are kept for the grouping line ("37 WebSockets to /ws were closed by ..."): clipped.
_TARGET_CHARS = 100


def start_life(conn: Connection, tcp: TcpLog, client: int, switch_time: float, target: str,
               websocket: bool, first: tuple[float, float], last: tuple[float, float],
               sink: Sink, key: tuple[int, int, int],
               pings: tuple[Ping | None, Ping | None] = (None, None)) -> Life:
    """The life of ``conn`` from now on (called before the reassembler lets it go: each
    direction's first sequence number and offset are read from it here). ``first`` and
    ``last``: each side's first and last bytes, by reassembler side; ``pings``: each side's
    keepalive ping still unanswered when the watch ended (`pending_pings`)."""
    flows = []
    for side in (0, 1):
        direction = conn.sides[side]
        flow = _Flow(direction.base or 0, direction.next_offset, first[side], last[side])
        # The watch may have read the Close frames already (a short conversation that closes
        # within it, then FIN after the watch's end): the direction's last delivered bytes
        # are the tail a final Close is read from.
        flow.tail = keep_tail(_EMPTY, bytes(direction.recent[-TAIL_BYTES:]))
        end = tcp.fin[side] or tcp.rst[side]
        if end is not None:
            flow.end_frame, flow.end = end[0], end[1]
            flow.lost = len(end) > 2  # a lost FIN has a third item
            flow.reset = tcp.rst[side] is not None
        elif (direction.acked == direction.next_offset + 1
              and len(direction.fin_evidence) == 3):  # a lost FIN's proof, seen in the watch
            flow.proof = direction.fin_evidence[0], direction.fin_evidence[1]
        flows.append(flow)
    _keepalive(flows, client, target, websocket, pings)
    life = Life(key, client, switch_time, target[:_TARGET_CHARS], websocket,
                (flows[0], flows[1]), sink)
    sink.started(life)
    return life


Ping = tuple[int, float]  # a keepalive ping's (frame, time)


def pending_pings(after: AfterSwitch, target: str,
                  last_seen: tuple[float, float]) -> tuple[Ping | None, Ping | None]:
    """Each side's (client, server) first keepalive ping seen in the watch that the other
    side sent no byte after (``last_seen``: each side's last bytes), unless that side
    closed in the watch too (its Close is the watch's to judge: checks/after_switch.py)."""
    pinger = engineio_pinger(target)
    found: list[Ping | None] = [None, None]
    closed = [False, False]
    for seen in after.frames:
        index = 0 if seen.side == "client" else 1
        if seen.ws.opcode == 0x8:
            closed[index] = True
        elif (found[index] is None and seen.time > last_seen[1 - index]
              and is_keepalive_ping(seen.ws, pinger == seen.side)):
            found[index] = (seen.frame, seen.time)
    return (None if closed[0] else found[0], None if closed[1] else found[1])


def _keepalive(flows: list[_Flow], client: int, target: str, websocket: bool,
               pings: tuple[Ping | None, Ping | None]) -> None:
    """The flows' keepalive state when the life begins: the pings the watch left waiting,
    and which side's text "2" is Engine.IO's ping."""
    if not websocket:
        return
    pinger = engineio_pinger(target)
    for side, flow in enumerate(flows):
        flow.eio = pinger == ("client" if side == client else "server") if pinger else False
        ping = pings[side]
        if ping is not None:
            flow.ping_frame, flow.ping = ping


def start_stream_life(key: tuple[int, int, int], client: int, switch_time: float, target: str,
                      websocket: bool, sent: tuple[int, int], first: tuple[float, float],
                      last: tuple[float, float], tails: tuple[bytes, bytes],
                      ends: tuple[tuple[int, float] | None, tuple[int, float] | None],
                      sink: Sink, pings: tuple[Ping | None, Ping | None] = (None, None)
                      ) -> Life:
    """The life of a stream that is not a TCP connection of its own (an RFC 8441 WebSocket
    on an HTTP/2 stream): its stage counts offsets from 0 (``sent``: each side's bytes so far)
    and feeds `Life.take` with them. By reassembler side, as `start_life`; ``ends``: each
    side's END_STREAM (frame, time) seen during the watch; ``tails``: each side's last bytes."""
    flows = []
    for side in (0, 1):
        flow = _Flow(0, sent[side], first[side], last[side])
        flow.tail = keep_tail(_EMPTY, tails[side])
        end = ends[side]
        if end is not None:
            flow.end_frame, flow.end = end[0], end[1]  # (a lost FIN has a third item)
        flows.append(flow)
    _keepalive(flows, client, target, websocket, pings)
    life = Life(key, client, switch_time, target[:_TARGET_CHARS], websocket,
                (flows[0], flows[1]), sink)
    sink.started(life)
    return life
