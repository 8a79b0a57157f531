"""TCP reassembly: turns Segments into in-order byte streams, one pair per connection.

How it works
------------
Connections are kept in one dict under both directions' flow keys (``flow_key``: addresses and
ports as bytes, in wire order), so finding a segment's connection is a single look-up, and a
connection nobody cares about any more (``ignored``) costs exactly that and nothing else. The
pipeline's fast path uses the same dict (``flows``) before it decodes a frame at all.

Each direction keeps the absolute stream offset it expects next. A segment's sequence number is
turned into an offset relative to the first sequence number seen (SYN + 1, or the first segment
of a capture that started mid-connection), unwrapped around the expected offset, so sequence
wrap-around and streams over 4 GiB need no special case. In-order bytes go straight to the
connection's listener; bytes that arrive early wait in a small per-direction buffer; bytes that
were already delivered (retransmissions, overlaps) are trimmed, after comparing them with the
last bytes delivered (``RECENT_BYTES`` per direction): a segment that re-sends an offset with
different bytes is the classic IDS evasion (Ptacek & Newsham 1998; RFC 9293 §3.10.7.4 leaves
the choice of copy to the receiver, and stacks differ), and is reported with ``on_conflict``.
We keep what was delivered first.

A hole is declared only when the capture proves bytes are missing and will not come: the
early-arrival buffer overflowed, or the direction ended (FIN, RST, end of capture) with bytes
still waiting, or short of what the FIN's sequence number or the peer's acknowledgements say
was sent. Acknowledgements alone do not declare a hole at once, because a capture may show an
ACK a little before the segment it covers (a reordering of a few packets is common). The
listener is told the hole's size so that the layers above can say "cannot tell" instead of
guessing (STYLE: Zeek stops interpreting after a gap).

Listeners are plain objects with ``on_*`` methods (see ``StreamListener``): the reassembler does
no I/O and knows nothing about HTTP.
"""

from __future__ import annotations

import heapq
import math
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from analyzer.decode.segment import Segment, flow_key

_FIN = 0x01
_SYN = 0x02
_RST = 0x04
_ACK = 0x10
_MASK = 0xFFFFFFFF
_PORTS = struct.Struct("!HH")  # the end of a flow key
_HALF = 0x80000000

# Early (out-of-order) bytes a direction may hold before the first missing byte is written off.
MAX_PENDING_BYTES = 256 * 1024
# Delivered bytes kept per direction to compare with retransmissions (conflicting overlaps).
RECENT_BYTES = 16 * 1024
# A connection that closed (both FINs, or a RST) with bytes still missing waits this many more
# of its segments, or this long, for them: captures reorder by a few packets, and a request
# shown just after the FIN is still the request (tests/test_damage.py).
LATE_SEGMENTS = 16
LATE_SECONDS = 1.0
# Bare SYNs a connection keeps before its listener is made anyway (retransmissions).
_DEFERRED_SYNS = 4
# Shared by every direction that has delivered nothing (never written to): a SYN flood keeps
# hundreds of thousands of connections that never carry a byte.
_NOTHING_YET = bytearray()


class StreamListener(Protocol):
    """What the layer above the reassembler is told about one connection.

    ``side`` is 0 for the connection's originator (the SYN sender, or the sender of the first
    segment seen when the capture started mid-connection) and 1 for the responder.
    """

    def on_syn(self, side: int, frame: int, time: float, with_ack: bool) -> None: ...

    def on_data(self, side: int, offset: int, data: bytes, frame: int, time: float) -> None: ...

    def on_gap(self, side: int, offset: int, length: int, frame: int, time: float) -> None: ...

    def on_conflict(self, side: int, offset: int, length: int, frame: int, time: float) -> None:
        """A segment re-sent ``length`` delivered bytes from ``offset`` with different bytes."""

    def on_fin(self, side: int, frame: int, time: float) -> None: ...

    def on_rst(self, side: int, frame: int, time: float) -> None: ...

    def on_end(self, time: float, reason: str) -> None: ...

    def on_tick(self, now: float, patience: float) -> None: ...


class LifeTable(Protocol):
    """Where connections in life are kept once let go (`analyzer/life/table.py`): compiled,
    or its plain twin."""

    def __len__(self) -> int: ...

    def adopt(self, conn: Connection) -> bool: ...

    def side_of(self, key: bytes) -> int: ...

    def take(self, key: bytes, seq: int, payload: bytes, time: float) -> bool: ...

    def segment(self, key: bytes, flags: int, seq: int, payload: bytes, frame: int,
                time: float) -> str | None: ...

    def reused(self, key: bytes, seq: int) -> bool: ...

    def pop(self, key: bytes) -> tuple[LifeFollower, bytes]: ...

    def idle(self, cutoff: float) -> list[bytes]: ...

    def ages(self) -> list[tuple[float, bytes]]: ...


class LifeFollower(Protocol):
    """What follows a connection after the layer above let it go in the life state
    (`analyzer/life/state.py`): each segment's bytes and time, its FIN or RST, its end. No
    reassembly: the segments come as the capture shows them."""

    def take(self, side: int, seq: int, payload: bytes, time: float) -> None: ...

    def seen(self, side: int, data: bytes, time: float) -> None:
        """Bytes already reassembled when the life began (they ended the watch)."""

    def fin(self, side: int, frame: int, time: float) -> bool:
        """True once both directions have sent their FIN."""

    def rst(self, side: int, frame: int, time: float) -> None: ...

    def end(self, addresses: tuple[bytes, int, bytes, int], time: float, reason: str) -> None: ...


# A connection in life is kept this long without a packet (AWS NLB idles at 350 s, so the
# 300 s of other connections would end live WebSockets that a capture shows still open).
LIFE_IDLE_TIMEOUT = 3600.0


@dataclass(slots=True)
class _Direction:
    base: int | None = None  # sequence number of stream offset 0
    next_offset: int = 0  # the offset the next in-order byte has
    # Early segments by offset, and a heap of their offsets; made by the first early segment
    # (most directions never have one, and a table of 100,000 connections paid 240 bytes each
    # for two empty containers).
    pending: dict[int, tuple[bytes, int, float]] | None = None
    pending_order: list[int] | None = None
    pending_bytes: int = 0
    # offset of a waiting segment -> the other direction's offset it acknowledged: it is held
    # until those bytes are delivered (causal order, see _segment)
    # (made by the first such segment, like pending)
    needs: dict[int, int] | None = None
    recent: bytearray = field(default_factory=lambda: _NOTHING_YET)  # last bytes delivered
    acked: int = 0  # highest offset the peer acknowledged (bytes below it were sent)
    fin: bool = False
    fin_end: int = 0  # the offset where the FIN said the stream ends
    fin_evidence: tuple[int, float] = (0, 0.0)  # the FIN's frame and time
    rst: bool = False

    def advance(self, data: bytes) -> None:
        """``data`` is delivered: the next in-order offset moves past it, and it is kept."""
        self.next_offset += len(data)
        recent = self.recent
        if recent is _NOTHING_YET:
            recent = self.recent = bytearray()
        recent += data
        if len(recent) > 2 * RECENT_BYTES:
            del recent[: len(recent) - RECENT_BYTES]

    def offset_of(self, seq: int) -> int:
        """Absolute offset of ``seq``, unwrapped to lie within 2 GiB of the expected offset."""
        assert self.base is not None
        expected = (self.base + self.next_offset) & _MASK
        diff = (seq - expected) & _MASK
        if diff >= _HALF:
            diff -= 1 << 32
        return self.next_offset + diff


def _waits(here: _Direction) -> bool:
    """Bytes of this direction are known to be missing (they may still show up)."""
    return bool(here.pending) or max(here.fin_end, here.acked) > here.next_offset


@dataclass(slots=True, eq=False)
class Connection:
    """One TCP connection as seen in the capture; side 0 is the originator."""

    key: bytes  # flow key of side 0's segments (`flow_key`)
    listener: StreamListener | None = None
    ignored: bool = False  # set by the layer above: later segments cost one look-up
    last_time: float = 0.0
    sides: tuple[_Direction, _Direction] = field(
        default_factory=lambda: (_Direction(), _Direction())
    )
    finished: bool = False
    closing: int = 0  # segments still awaited for late bytes after the close (see _close)
    closing_reason: str = ""
    closing_time: float = 0.0
    # Set when the layer above let a switched connection go after its watch window
    # (`let_go`): its segments then go to this follower, not through reassembly.
    life: LifeFollower | None = None
    # The bare SYNs of a connection that has seen nothing else yet, whose listener is not made
    # until something else arrives (`Reassembler(defer_syn=True)`): a SYN flood fills the
    # table with such connections, and a listener per SYN cost ~1.3 KB each.
    syns: list[int | float] | None = None  # frame, time, frame, time... (flat: smaller)
    # A decrypted TLS direction whose records the compiled skip may take (tls/passing.py).
    passing: object | None = None

    @property
    def addresses(self) -> tuple[bytes, int, bytes, int]:
        """Originator address and port, responder address and port: read from side 0's flow
        key (`flow_key`: both addresses, then both ports), which the table keeps anyway."""
        return addresses_of(self.key)

    @property
    def keys(self) -> tuple[bytes, bytes]:
        """The flow keys of side 0's and side 1's segments (the second made when asked: a
        table of 100,000 connections saved a tuple each)."""
        key = self.key
        size = (len(key) - 4) // 2
        ports = key[2 * size:]
        return key, key[size:2 * size] + key[:size] + ports[2:] + ports[:2]

    def ignore(self) -> None:
        """Stop reassembling: the layer above has everything it needs from this connection."""
        self.ignored = True
        # Later segments of an ignored connection are dropped on sight; only a SYN is looked
        # at, to tell a new connection on the same ports (`_is_new_incarnation`), and that
        # needs each direction's first sequence number alone. An open WebSocket connection
        # past its watch window costs about 500 bytes so (benchmarks/README.md, "Memory").
        self.sides = (_Base(self.sides[0].base), _Base(self.sides[1].base))  # type: ignore[assignment]
        # Nothing calls an ignored connection's listener again, and its entry stays in the
        # table until it ends or expires (bulk connections: 300 s): let the listener's state go
        # now (22 % of the table's memory on the 1 GB benchmark, benchmarks/README.md).
        self.listener = None
        self.passing = None


def addresses_of(key: bytes) -> tuple[bytes, int, bytes, int]:
    """`Connection.addresses` of side 0's flow key ``key``."""
    size = (len(key) - 4) // 2
    sport, dport = _PORTS.unpack_from(key, 2 * size)
    return key[:size], sport, key[size:2 * size], dport


def let_go(conn: Connection, life: LifeFollower | None = None) -> None:
    """The one point where the layer above lets a connection go: with a ``life`` follower
    the connection stays in the table (and is not `ignored`, so the fast path hands its
    segments on) but is no longer reassembled, and once judged a plain `Life` moves into the
    reassembler's life table (`Reassembler._adopt`); without one it is ignored."""
    if life is None:
        conn.ignore()
        return
    conn.ignore()
    conn.ignored = False
    conn.life = life


def _in_life(conn: Connection) -> bool:
    """A connection in life (LIFE_IDLE_TIMEOUT applies): let go with a follower, or one whose
    listener follows the life itself (a decrypted TLS session's, `TlsStage.in_life`)."""
    return conn.life is not None or getattr(conn.listener, "in_life", False)


def _first_waiting(here: _Direction) -> int:
    """The offset of a direction's first waiting segment (it has one)."""
    assert here.pending_order is not None
    return here.pending_order[0]


class _Base:
    """What an ignored connection keeps of a direction: where its sequence numbers start."""

    __slots__ = ("base",)
    # What the paths that may still run once a connection is ignored (the end of a flush in
    # progress) read, as an empty direction has it.
    pending = pending_order = needs = None
    pending_bytes = next_offset = acked = fin_end = 0
    fin_evidence = (0, 0.0)
    fin = rst = False

    def __init__(self, base: int | None) -> None:
        self.base = base


_NO_BASE = _Base(None)  # shared: never written (a deferred connection's side 1)
_FINISHED_SIDES = (_NO_BASE, _NO_BASE)

ListenerFactory = Callable[[Connection, Segment], StreamListener | None]


class Reassembler:
    """Routes segments to connections and delivers each direction's bytes in order."""

    def __init__(
        self,
        new_listener: ListenerFactory,
        *,
        idle_timeout: float = 300.0,
        max_connections: int = 200_000,
        sweep_every: int = 8192,
        defer_syn: bool = False,
        tick_on_sweep: bool = False,
        lives: LifeTable | None = None,
    ) -> None:
        self._new_listener = new_listener
        # Connections in life move here once judged, out of the dict (analyzer/life/
        # table.py): about 330 bytes each instead of 2 KB, their segments taken in C.
        self._lives = lives
        # Make a connection's listener at its second segment when the first is a bare SYN
        # (the listener is then told of the SYNs first, as if made at once: the same calls).
        self._defer_syn = defer_syn
        # Tell listeners the time at every sweep (`on_tick` with infinite patience).
        self._tick_on_sweep = tick_on_sweep
        # flow key of a segment -> (its connection, the side that sent it); a finished
        # connection keeps only its side-0 key (`_finish`): ``_halves`` counts those
        self._table: dict[bytes, tuple[Connection, int]] = {}
        self._halves = 0
        self._idle_timeout = idle_timeout
        self._max_connections = max_connections
        self._sweep_every = sweep_every
        self._until_sweep = sweep_every
        self.connections_seen = 0
        self.connections_evicted = 0
        self.now = 0.0

    # --- the per-segment path -------------------------------------------------------------

    @property
    def sweep_due(self) -> bool:
        """Whether the next segment that is not ignored runs the sweep (tls/passing.py)."""
        return self._until_sweep <= 1

    @property
    def flows(self) -> dict[bytes, tuple[Connection, int]]:
        """Flow key -> (connection, side), for look-ups only (the pipeline's fast path)."""
        return self._table

    def feed(self, seg: Segment) -> None:
        key = flow_key(seg.src, seg.sport, seg.dst, seg.dport)
        entry = self._table.get(key)
        if entry is None:
            entry = self._finished_peer(seg)
        if entry is not None and entry[0].ignored and not seg.flags & _SYN:
            return  # the common case for bulk traffic: one look-up, nothing else
        self.now = seg.time
        self._until_sweep -= 1
        if self._until_sweep <= 0:
            self._until_sweep = self._sweep_every
            self.sweep(seg.time)
            entry = self._table.get(key) or self._finished_peer(seg)
        flags = seg.flags
        if entry is None and self._lives and self._lives.side_of(key) >= 0:
            if not (flags & _SYN and self._lives.reused(key, seg.seq)):
                end = self._lives.segment(key, flags, seg.seq, seg.payload, seg.frame, seg.time)
                if end is not None:
                    self._end_life(key, seg.time, end, finished=True)
                return
            self._end_life(key, seg.time, "port reused", finished=False)
        if entry is None or (flags & _SYN and self._is_new_incarnation(entry, seg)):
            if entry is not None:
                self._finish(entry[0], seg.time, "port reused")
                self._drop(entry[0])  # `_open` takes both keys
            if not (flags & (_SYN | _FIN | _RST)) and not seg.payload:
                return  # a bare ACK tells nothing about a connection we have not seen
            entry = self._open(seg)
            if entry is None:
                return
        conn, side = entry
        if conn.ignored:
            return
        if conn.passing is not None:  # this segment may change what the compiled skip assumes
            conn.passing.ready = False  # type: ignore[attr-defined]
        conn.last_time = seg.time
        if conn.life is not None:
            self._life_segment(conn, conn.life, side, seg)
            return
        self._segment(conn, side, seg)
        if conn.closing and not conn.finished:
            conn.closing -= 1
            if not conn.closing or not any(_waits(here) for here in conn.sides):
                conn.closing = conn.closing or 1
                self._finish(conn, seg.time, conn.closing_reason)

    def take_plain(
        self, conn: Connection, side: int, seq: int, ack: int, flags: int, payload: bytes,
        frame: int, time: float,
    ) -> bool:
        """The pipeline's cheap path for a segment of a followed connection, before any
        Segment is built: True when it has been handled exactly as ``feed`` would handle it,
        False (nothing changed) when it needs ``feed``.

        It takes a segment without SYN, FIN or RST whose payload, if any, is complete (the
        caller checks both) and is the next in-order bytes with nothing waiting behind them:
        a bare ACK, or data that goes straight to ``on_data``. That is the common segment of
        a followed connection; everything else (reordering, retransmission, holes, the ends
        of a connection, the periodic sweep) stays in ``feed``.
        """
        if self._until_sweep <= 1 or conn.closing or conn.syns is not None:
            # this segment would run the sweep, a closed one waits for late bytes, or the
            # listener is still to be made: feed
            return False
        life = conn.life
        if life is not None:  # after the watch: no reassembly, only the life facts
            self.now = time
            self._until_sweep -= 1
            if getattr(life, "decided", None) is not None and self._adopt(conn):
                # judged: into the life table now rather than at the sweep (a busy one)
                assert self._lives is not None
                self._lives.take(conn.keys[side], seq, payload, time)
                return True
            conn.last_time = time
            life.take(side, seq, payload, time)
            return True
        here = conn.sides[side]
        if here.base is None:
            return False
        if payload and (here.pending or (seq - here.base - here.next_offset) & _MASK):
            return False  # not the next bytes, or early bytes wait to be drained after them
        there = conn.sides[1 - side]
        if there.pending or (payload and there.base is not None and flags & _ACK and (
                1 < ((ack - there.base - there.next_offset) & _MASK) < _HALF)):
            return False  # the other side waits, or this one must wait for it (causal order)
        self.now = time
        self._until_sweep -= 1
        conn.last_time = time
        if flags & _ACK:
            self._peer_acked(conn, 1 - side, ack)
        if payload:
            here.advance(payload)
            listener = conn.listener
            assert listener is not None
            listener.on_data(side, here.next_offset - len(payload), payload, frame, time)
        return True

    def take_life(self, key: bytes, seq: int, payload: bytes, time: float) -> bool:
        """The pipeline's cheap path for a segment without SYN, FIN or RST of a connection
        in the life table (``take_plain``'s, for those): False when it is not one, or the
        segment runs the sweep."""
        if self._until_sweep <= 1 or not self._lives or not self._lives.take(
                key, seq, payload, time):
            return False
        self.now = time
        self._until_sweep -= 1
        return True

    def _adopt(self, conn: Connection) -> bool:
        """Move a connection let go into life, whose attempt has been judged, out of the dict
        into the life table; False when there is none or it keeps the connection as it is."""
        if self._lives is None or not self._lives.adopt(conn):
            return False
        self._drop(conn)
        conn.life = None
        return True

    def _end_life(self, key: bytes, time: float, reason: str, finished: bool) -> None:
        """A connection in the life table ends (`_finish`'s part for it); ``finished``: it
        stays in the dict a while as a finished one, whose late segments are dropped."""
        assert self._lives is not None
        life, first_key = self._lives.pop(key)
        conn = Connection(key=first_key, ignored=True, last_time=time, finished=True,
                          sides=_FINISHED_SIDES)  # type: ignore[arg-type]
        if finished:  # under its side-0 key only, as `_finish` leaves a finished connection
            self._table[conn.keys[0]] = (conn, 0)
            self._halves += 1
        life.end(conn.addresses, time, reason)

    def _life_segment(self, conn: Connection, life: LifeFollower, side: int,
                      seg: Segment) -> None:
        """A segment of a connection in life: its bytes and time, and the end it makes (a
        RST, or the second FIN) ends the connection at once (no late bytes are awaited)."""
        life.take(side, seg.seq, seg.payload, seg.time)
        flags = seg.flags
        if flags & _RST:
            life.rst(side, seg.frame, seg.time)
            self._finish(conn, seg.time, "reset")
        elif flags & _FIN and life.fin(side, seg.frame, seg.time):
            self._finish(conn, seg.time, "closed")

    def _finished_peer(self, seg: Segment) -> tuple[Connection, int] | None:
        """Side 1 of a finished connection (which keeps only its side-0 key, `_finish`) for a
        segment whose own key is not in the table: a late retransmission must not open a
        new connection. One more look-up per segment of an unknown flow (a new
        connection's first SYN)."""
        entry = self._table.get(flow_key(seg.dst, seg.dport, seg.src, seg.sport))
        if entry is not None and not entry[1] and entry[0].finished:
            return entry[0], 1
        return None

    def _is_new_incarnation(self, entry: tuple[Connection, int], seg: Segment) -> bool:
        conn, side = entry
        if conn.finished:
            return True
        direction = conn.sides[side]
        # A SYN whose sequence number is not the one this direction started with opens a new
        # connection on the same ports (client port reuse).
        return direction.base is not None and (seg.seq + 1) & _MASK != direction.base

    def _open(self, seg: Segment) -> tuple[Connection, int] | None:
        # Who originated: the SYN sender; a SYN-ACK's receiver; otherwise whoever spoke first.
        if seg.flags & _SYN and seg.flags & _ACK:
            addresses = (seg.dst, seg.dport, seg.src, seg.sport)
            side = 1
        else:
            addresses = (seg.src, seg.sport, seg.dst, seg.dport)
            side = 0
        keys = (
            flow_key(addresses[0], addresses[1], addresses[2], addresses[3]),
            flow_key(addresses[2], addresses[3], addresses[0], addresses[1]),
        )
        if self._defer_syn and seg.flags & (_SYN | _ACK | _FIN | _RST) == _SYN and not seg.payload:
            # `_segment` keeps this SYN; until a listener is made, the directions are only
            # where their sequence numbers start (like an ignored connection's)
            conn = Connection(key=keys[0], last_time=seg.time,
                              sides=(_Base(None), _NO_BASE),  # type: ignore[arg-type]
                              syns=[])
        else:
            conn = Connection(key=keys[0], last_time=seg.time)
            listener = self._new_listener(conn, seg)
            if listener is None:
                conn.ignored = True
            conn.listener = listener
        self._table[keys[0]] = (conn, 0)
        self._table[keys[1]] = (conn, 1)
        self.connections_seen += 1
        return conn, side

    def _segment(self, conn: Connection, side: int, seg: Segment) -> None:
        flags = seg.flags
        here = conn.sides[side]
        if conn.syns is not None:
            if (side == 0 and flags & (_SYN | _ACK | _FIN | _RST) == _SYN and not seg.payload
                    and len(conn.syns) < 2 * _DEFERRED_SYNS):
                if here.base is None:
                    here.base = (seg.seq + 1) & _MASK
                conn.syns += (seg.frame, seg.time)
                return
            if not self._make_listener(conn):
                return
            here = conn.sides[side]
        listener = conn.listener
        assert listener is not None
        if flags & _SYN:
            if here.base is None:
                here.base = (seg.seq + 1) & _MASK
            listener.on_syn(side, seg.frame, seg.time, bool(flags & _ACK))
        elif here.base is None:
            here.base = seg.seq
        if flags & _ACK:
            self._peer_acked(conn, 1 - side, seg.ack)
        if conn.ignored:
            return
        payload = seg.payload
        if payload:
            offset = here.offset_of(seg.seq)
            there = conn.sides[1 - side]
            if flags & _ACK and there.base is not None and offset >= here.next_offset:
                # This segment acknowledges bytes of the other direction not delivered yet
                # (a capture shows them later, or lost them): it was sent after them, so it
                # waits for them. A request then always reaches the layer above before its
                # response, whatever order the capture shows them in. (+1: a FIN's number.)
                need = there.offset_of(seg.ack)
                if 1 < need - there.next_offset < _HALF:
                    if here.needs is None:
                        here.needs = {}
                    here.needs[offset] = need
                    self._hold(conn, side, here, offset, payload, seg.frame, seg.time)
                    payload = b""
        if payload:
            self._data(conn, side, here, offset, payload, seg.frame, seg.time)
            if seg.missing and not conn.ignored and conn.life is None:
                # The snaplen cut the end of this segment: those bytes are a hole right here.
                self._data_gap(conn, side, here, offset + len(payload), seg.missing, seg)
        if conn.ignored:
            return
        if flags & _RST:
            here.rst = True
            listener.on_rst(side, seg.frame, seg.time)
            if conn.life is not None:  # the listener let it go into life just now
                conn.life.rst(side, seg.frame, seg.time)
                self._finish(conn, seg.time, "reset")
                return
            self._close(conn, seg.time, "reset")
        elif flags & _FIN and not here.fin:
            here.fin = True
            # The bytes before the FIN were all sent, but a capture may still show some of
            # them after it (reordered): the holes they would fill are written off when the
            # connection ends, not here (_finish flushes both sides in capture order).
            here.fin_end = here.offset_of(seg.seq) + len(payload)
            here.fin_evidence = (seg.frame, seg.time)
            listener.on_fin(side, seg.frame, seg.time)
            if conn.life is not None:  # the listener let it go into life just now
                if conn.life.fin(side, seg.frame, seg.time):
                    self._finish(conn, seg.time, "closed")
                return
            if conn.sides[1 - side].fin:
                self._close(conn, seg.time, "closed")

    def _make_listener(self, conn: Connection) -> bool:
        """The listener of a connection whose SYNs were kept, told of them; False when the
        factory declines the connection (it is ignored)."""
        syns, conn.syns = conn.syns or [], None
        (src, sport, dst, dport), frame, time = conn.addresses, int(syns[0]), syns[1]
        base = conn.sides[0].base
        assert base is not None  # set by the first SYN
        conn.sides = (_Direction(base=base), _Direction(base=conn.sides[1].base))
        first = Segment(frame, time, src, sport, dst, dport, (base - 1) & _MASK, 0, _SYN, b"")
        listener = self._new_listener(conn, first)  # the first SYN, as it was (ack aside)
        if listener is None:
            conn.ignore()
            return False
        conn.listener = listener
        for n in range(0, len(syns), 2):
            listener.on_syn(0, int(syns[n]), syns[n + 1], False)
        return True

    def _data(
        self, conn: Connection, side: int, here: _Direction, offset: int, data: bytes,
        frame: int, time: float, drain: bool = True,
    ) -> None:
        listener = conn.listener
        assert listener is not None
        end = offset + len(data)
        if offset > here.next_offset:
            self._hold(conn, side, here, offset, data, frame, time)
            return
        if offset < here.next_offset:
            self._compare(conn, side, here, offset, data, frame, time)
            if end <= here.next_offset:
                return  # a retransmission of bytes already delivered
            data = data[here.next_offset - offset :]
        here.advance(data)
        listener.on_data(side, end - len(data), data, frame, time)
        if drain and not conn.ignored and (here.pending or conn.sides[1 - side].pending):
            self._settle(conn)

    @staticmethod
    def _compare(
        conn: Connection, side: int, here: _Direction, offset: int, data: bytes,
        frame: int, time: float,
    ) -> None:
        """Re-sent bytes must equal what was delivered; tell the listener where they do not."""
        kept_from = here.next_offset - len(here.recent)
        start = max(offset, kept_from)
        stop = min(offset + len(data), here.next_offset)
        if start >= stop:
            return
        old = here.recent[start - kept_from : stop - kept_from]
        new = data[start - offset : stop - offset]
        if old != new and conn.listener is not None:
            first = next(i for i in range(len(new)) if old[i] != new[i])
            last = next(i for i in range(len(new) - 1, -1, -1) if old[i] != new[i])
            conn.listener.on_conflict(side, start + first, last - first + 1, frame, time)

    def _hold(
        self, conn: Connection, side: int, here: _Direction, offset: int, data: bytes,
        frame: int, time: float,
    ) -> None:
        previous = here.pending.get(offset) if here.pending is not None else None
        if previous is not None and len(previous[0]) >= len(data):
            return
        if previous is not None:
            here.pending_bytes -= len(previous[0])
        if here.pending is None or here.pending_order is None:
            here.pending, here.pending_order = {}, []
        if previous is None:
            heapq.heappush(here.pending_order, offset)
        here.pending[offset] = (data, frame, time)
        here.pending_bytes += len(data)
        if here.pending_bytes > MAX_PENDING_BYTES:
            # Waiting longer would be unbounded: write the missing bytes off as a hole.
            self._skip_to_pending(conn, side, here)

    def _drain(self, conn: Connection, side: int, here: _Direction) -> bool:
        """Delivers the waiting segments that are now in order; True if any was."""
        there = conn.sides[1 - side]
        moved = False
        while here.pending and not conn.ignored:
            order = here.pending_order
            assert order is not None  # made with pending
            first = order[0]
            if first > here.next_offset:
                return moved
            need = here.needs.get(first) if here.needs else None
            if need is not None:
                if 1 < need - there.next_offset < _HALF:
                    return moved  # still ahead of the other direction (causal order)
                del here.needs[first]  # type: ignore[union-attr]  # need came from it
            heapq.heappop(order)
            data, frame, time = here.pending.pop(first)
            here.pending_bytes -= len(data)
            # drain=False: this loop takes the next one (recursing would go one Python frame
            # deeper per waiting segment, and a hostile capture can queue 256 Ki of them).
            self._data(conn, side, here, first, data, frame, time, drain=False)
            moved = True
        return moved

    def _settle(self, conn: Connection) -> None:
        """Drains both directions until neither moves: bytes delivered on one side may let
        the other side's held segments go (causal order)."""
        a, b = conn.sides
        while (self._drain(conn, 0, a) | self._drain(conn, 1, b)) and not conn.ignored:
            pass

    def _skip_to(
        self, conn: Connection, side: int, here: _Direction, offset: int, frame: int, time: float
    ) -> None:
        if offset <= here.next_offset:
            return
        listener = conn.listener
        assert listener is not None
        listener.on_gap(side, here.next_offset, offset - here.next_offset, frame, time)
        here.next_offset = offset
        here.recent = _NOTHING_YET  # the kept bytes must end at next_offset
        self._settle(conn)

    def _skip_to_pending(self, conn: Connection, side: int, here: _Direction) -> None:
        """Write off the hole before the first waiting segment, which is its evidence (the
        frame Wireshark marks "previous segment not captured"); when that segment waits for
        the other direction instead, both are released (the hole is on the other side)."""
        assert here.pending is not None and here.pending_order is not None
        first = here.pending_order[0]
        if first <= here.next_offset:
            self._release(conn, (0, 1))
            return
        _, frame, time = here.pending[first]
        self._skip_to(conn, side, here, first, frame, time)

    def _data_gap(
        self, conn: Connection, side: int, here: _Direction, offset: int, length: int,
        seg: Segment,
    ) -> None:
        if here.next_offset == offset:
            self._skip_to(conn, side, here, offset + length, seg.frame, seg.time)

    @staticmethod
    def _peer_acked(conn: Connection, side: int, ack: int) -> None:
        """The other side acknowledged ``ack``: any byte of ``side`` below it was sent."""
        there = conn.sides[side]
        if there.base is None or conn.ignored:
            return
        acked = there.offset_of(ack)
        if there.fin:
            acked -= 1  # the FIN's own sequence number
        if acked > there.acked and acked - there.next_offset < _HALF:
            there.acked = acked

    def _flush(self, conn: Connection, side: int, frame: int, time: float, end: int) -> None:
        """The direction ended: whatever still waits is after a hole that will never fill.

        ``end`` is where the sender's stream ended, when known (the FIN's offset), else 0.
        When the other direction also waits behind a hole its peer has acknowledged (so the
        bytes were sent and the capture lost them), both are released together, segment by
        segment in capture order: a request that follows a hole then reaches the layer above
        before the response that follows the other hole, whichever side closed first.
        """
        other = conn.sides[1 - side]
        if other.pending and other.acked > other.next_offset:
            self._release(conn, (side, 1 - side))
        else:
            self._release(conn, (side,))
        here = conn.sides[side]
        if here.fin_end > max(end, here.acked) and here.fin_end > here.next_offset:
            end = here.fin_end
            frame, time = here.fin_evidence
        end = max(end, here.acked)
        if end > here.next_offset and not conn.ignored:
            self._skip_to(conn, side, here, end, frame, time)

    def _release(self, conn: Connection, sides: tuple[int, ...]) -> None:
        """Delivers the waiting segments of ``sides`` in frame order, writing off each hole
        before a segment as it is reached (its evidence is that segment's frame).

        A segment that waits for bytes of the other direction (causal order) goes once they
        are delivered; when they can never be (they fall in a hole of that direction, which
        the capture lost), that hole is written off first, up to where its data resumes.
        """
        listener = conn.listener
        while not conn.ignored and listener is not None:
            ready: tuple[int, int] | None = None  # (frame, side)
            stuck: tuple[int, int] | None = None  # waits for bytes lost on the other side
            first_seen: tuple[int, int] | None = None
            for side in sides:
                here = conn.sides[side]
                if not here.pending:
                    continue
                assert here.pending_order is not None  # made with pending
                first = here.pending_order[0]
                frame = here.pending[first][1]
                if first_seen is None or frame < first_seen[0]:
                    first_seen = (frame, side)
                need = here.needs.get(first) if here.needs else None
                there = conn.sides[1 - side]
                if need is None or not 1 < need - there.next_offset < _HALF:
                    if ready is None or frame < ready[0]:
                        ready = (frame, side)
                elif (not there.pending or _first_waiting(there) > there.next_offset) and (
                        stuck is None or frame < stuck[0]):
                    stuck = (frame, side)
            if ready is None and stuck is not None:
                side = stuck[1]
                here, there = conn.sides[side], conn.sides[1 - side]
                first = _first_waiting(here)
                assert here.pending is not None and here.needs is not None  # stuck: it waits
                _, frame, time = here.pending[first]
                need = here.needs[first]
                upto = min(need, _first_waiting(there)) if there.pending else need
                listener.on_gap(1 - side, there.next_offset, upto - there.next_offset, frame,
                                time)
                there.next_offset = upto
                there.recent = _NOTHING_YET
                continue
            chosen = ready or first_seen
            if chosen is None:
                return
            side = chosen[1]
            here = conn.sides[side]
            assert here.pending is not None and here.pending_order is not None
            first = heapq.heappop(here.pending_order)
            data, frame, time = here.pending.pop(first)
            here.pending_bytes -= len(data)
            if here.needs:
                here.needs.pop(first, None)
            if first > here.next_offset:
                listener.on_gap(side, here.next_offset, first - here.next_offset, frame, time)
                here.next_offset = first
                here.recent = _NOTHING_YET  # the kept bytes must end at next_offset
                if conn.ignored:
                    return
            self._data(conn, side, here, first, data, frame, time, drain=False)

    # --- connection lifetime --------------------------------------------------------------

    def _close(self, conn: Connection, time: float, reason: str) -> None:
        """Both FINs, or a RST: the connection ends now if every byte before the ends was
        seen; else it waits LATE_SEGMENTS more of its segments (or its end by time) for
        bytes a capture shows after the close, before writing off the holes."""
        if not any(_waits(here) for here in conn.sides):
            self._finish(conn, time, reason)
        elif not conn.closing:
            conn.closing = LATE_SEGMENTS + 1  # feed counts the closing segment itself
            conn.closing_reason = reason
            conn.closing_time = time

    def _finish(self, conn: Connection, time: float, reason: str) -> None:
        if conn.finished:
            return
        if conn.closing:  # it had closed already, and waited for late bytes: that is its end
            time, reason = conn.closing_time, conn.closing_reason
        conn.finished = True
        if conn.syns is not None and not self._make_listener(conn):
            return
        life = conn.life
        if life is not None:
            conn.life = None
            life.end(conn.addresses, time, reason)
        listener = conn.listener  # the flush may make the listener ignore the connection
        if not conn.ignored and listener is not None:
            self._release(conn, (0, 1))
            for side in (0, 1):
                self._flush(conn, side, 0, time, 0)
            # the flushed bytes may have handed the connection to another stage (handoff.py)
            (conn.listener or listener).on_end(time, reason)
        life = conn.life
        if life is not None:  # the flushed bytes ended a watch window: that life ends here too
            conn.life = None
            life.end(conn.addresses, time, reason)
        conn.ignore()
        # Nothing calls a finished connection's listener again, but the entry stays in the
        # table a while (late retransmissions must not open a new connection): let the
        # listener's buffers and messages go now. This kept peak memory flat on big captures
        # whose connections all fit in the 60 s grace period (benchmarks/README.md).
        conn.listener = None
        # Only the table entry is left (`_is_new_incarnation` says True without looking at
        # the directions): a reconnect storm keeps 100,000 finished connections at once.
        conn.sides = _FINISHED_SIDES  # type: ignore[assignment]
        # Its side-1 key goes too (`_finished_peer` finds it from the side-0 key): a
        # reconnect storm keeps 100,000 finished connections, and the second key, its entry
        # and the table's room for it were ~40 % of their memory (benchmarks/README.md).
        key = conn.keys[1]
        entry = self._table.get(key)
        if entry is not None and entry[0] is conn:
            del self._table[key]
            self._halves += 1

    def _drop(self, conn: Connection) -> None:
        dropped = 0
        for key in conn.keys:
            entry = self._table.get(key)
            if entry is not None and entry[0] is conn:
                del self._table[key]
                dropped += 1
        if dropped == 1:  # a finished connection's side-0 key alone
            self._halves -= 1

    def sweep(self, now: float) -> None:
        """Forget idle and finished connections; evict the oldest-idle ones over the cap."""
        cutoff = now - self._idle_timeout
        life_cutoff = now - max(self._idle_timeout, LIFE_IDLE_TIMEOUT)
        live: list[Connection] = []
        for conn, side in list(self._table.values()):
            # Each connection is in the table under both of its keys, once as side 0 (`_open`
            # sets both, `_drop` removes both, a new incarnation replaces both): visit it once.
            if side:
                continue
            if conn.life is not None and self._adopt(conn):
                continue  # let go before this sweep (so its attempt is judged): in the table
            if conn.last_time < cutoff and (conn.last_time < life_cutoff or not _in_life(conn)):
                self._finish(conn, now, "idle")
                self._drop(conn)
            elif conn.finished and conn.last_time < now - 60.0:
                self._drop(conn)
            elif conn.closing and conn.last_time < now - LATE_SECONDS:
                self._finish(conn, now, conn.closing_reason)
            else:
                live.append(conn)
                if self._tick_on_sweep and conn.listener is not None and not conn.ignored:
                    # Time passed: a switch's watch window may be over although its
                    # connection went quiet (patience is infinite: nothing is called
                    # unanswered here, as only `tick` does in live capture). A quiet open
                    # WebSocket connection is then judged and let go, not carried to the end.
                    conn.listener.on_tick(now, math.inf)
        lives = self._lives
        if lives:
            for key in lives.idle(life_cutoff):
                self._end_life(key, now, "idle", finished=False)
        excess = len(live) + (len(lives) if lives else 0) - self._max_connections
        if excess > 0:
            # the oldest-idle first; ties in the dict's order, then the life table's
            victims: list[Connection | bytes]
            if lives:
                aged: list[tuple[float, Connection | bytes]] = [(c.last_time, c) for c in live]
                aged += lives.ages()
                aged.sort(key=lambda a: a[0])
                victims = [old for _, old in aged[:excess]]
            else:  # no pair per connection: a SYN flood evicts at every sweep, over 100,000
                live.sort(key=lambda c: c.last_time)
                victims = list(live[:excess])
            for old in victims:
                if isinstance(old, bytes):
                    self._end_life(old, now, "evicted", finished=False)
                else:
                    self._finish(old, now, "evicted")
                    self._drop(old)
                self.connections_evicted += 1

    def tick(self, now: float, patience: float) -> None:
        """Wall-clock time passed with no packet (live capture): let listeners decide by timeout."""
        self.sweep(now)
        seen: set[int] = set()
        for conn, _side in list(self._table.values()):
            if id(conn) in seen or conn.ignored:
                continue
            seen.add(id(conn))
            if conn.syns is not None and not self._make_listener(conn):
                continue
            if conn.listener is None:
                continue
            conn.listener.on_tick(now, patience)

    def close(self) -> None:
        """End of capture: every connection still open ends here."""
        for _ in self.closing():
            pass

    def closing(self) -> Iterator[None]:
        """`close`, pausing after each connection it ended, so that the caller can hand on
        what each end decided before the next (the ends of 100,000 connections in life, held
        at once, made the peak of a run)."""
        # Each connection once, under its side-0 key (as `sweep`): a set of the ids seen
        # cost ~9 MB at the end of a reconnect storm (100,000 finished connections).
        for conn, side in list(self._table.values()):
            if not side:
                self._finish(conn, self.now, "end of capture")
                yield
        self._table.clear()
        self._halves = 0
        if self._lives:
            for _, key in self._lives.ages():
                self._end_life(key, self.now, "end of capture", finished=False)
                yield

    @property
    def open_connections(self) -> int:
        return (len(self._table) + self._halves) // 2 + (len(self._lives) if self._lives else 0)
