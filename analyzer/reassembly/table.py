"""The connection table and its sweep: routes each segment to its connection (opening,
reopening on port reuse, finishing, forgetting idle ones, evicting over the cap), and the
pipeline's cheap path for the common segment of a followed connection (`take_plain`).

How it works
------------
Connections are kept in one dict under both directions' flow keys (``flow_key``: addresses and
ports as bytes, in wire order), so finding a segment's connection is a single look-up, and a
connection nobody cares about any more (``ignored``) costs exactly that and nothing else. The
pipeline's fast path uses the same dict (``flows``) before it decodes a frame at all.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from analyzer.decode.segment import Segment, flow_key, table_key
from analyzer.reassembly.connection import (
    _ACK,
    _FIN,
    _FINISHED_SIDES,
    _HALF,
    _MASK,
    _NO_BASE,
    _RST,
    _SYN,
    LATE_SECONDS,
    LATE_SEGMENTS,
    LIFE_IDLE_TIMEOUT,
    Connection,
    ListenerFactory,
    _Base,
    _in_life,
    _waits,
    new_connection,
    new_deferred_connection,
)
from analyzer.reassembly.delivery import MAX_HELD_START, InOrder, _unseen
from analyzer.reassembly.listeners import LifeTable
from analyzer.reassembly.lives import LifeRouting


def sweep_split_plain(table: dict[bytes, tuple[Connection, int]], stale_before: float,
                      ) -> tuple[list[Connection], list[Connection], int]:
    """decode/_sweep.pxi `sweep_split`'s plain twin (and the pure-Python install's): the
    side-0 connections of ``table`` in its order, those a sweep must look at, the settled
    ones last seen before ``stale_before``, and how many settled ones stay. Settled: a
    `Connection` finished, out of life, its listener let go and not closing (as `_finish`
    leaves one), which a sweep only drops once stale, or counts."""
    look: list[Connection] = []
    stale: list[Connection] = []
    kept = 0
    for conn, side in table.values():
        if side:
            continue
        if not _settled(conn):
            look.append(conn)
        elif conn.last_time < stale_before:
            stale.append(conn)
        else:
            kept += 1
    return look, stale, kept


def _settled(conn: Connection) -> bool:
    return (type(conn) is Connection and conn.finished is True and conn.life is None
            and conn.listener is None and type(conn.closing) is int and conn.closing == 0
            and type(conn.last_time) is float)


try:
    from analyzer.decode._fastpath import sweep_split
except ImportError:  # pragma: no cover - the pure-Python install
    sweep_split = sweep_split_plain


class Reassembler(InOrder, LifeRouting):
    """Routes segments to connections and delivers each direction's bytes in order."""

    # `_finish` flushes a connection's waiting bytes only when something waits (`_waits`):
    # at the usual end nothing does, and the release and the two flushes did nothing for
    # ≈ 9 k instructions a connection. False flushes every end: the plain twin
    # (tests/test_reassembly.py runs both on every bundled capture).
    skip_idle_flush = True
    # `sweep` passes over the settled connections of its table in C below the cap
    # (`sweep_split`); False visits every one in Python, the plain twin (tests/test_sweep.py
    # runs both).
    fast_sweep = True

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
        # segments of read connections whose end the capture's snapshot length cut off
        self.cut_segments = 0
        # finished connections whose copy (their SYN again, `_is_new_incarnation`) was dropped
        self.copied_connections = 0
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
                end = self._lives.segment(key, flags, seg.seq, seg.ack if flags & _ACK else -1,
                                          seg.payload, seg.frame, seg.time)
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
            if flags & _SYN and conn.finished and not conn.copied:
                # a copy of a finished connection, dropped with it: the summary says so (the
                # compiled paths leave every SYN of a finished connection to this one)
                conn.copied = True
                self.copied_connections += 1
            return
        if conn.passing is not None:  # this segment may change what the compiled skip assumes
            conn.passing.ready = False  # type: ignore[attr-defined]
        conn.last_time = seg.time
        if conn.life is not None:
            self._life_segment(conn, conn.life, side, seg)
            return
        self._segment(conn, side, seg)
        if conn.closing and not conn.finished:
            self._closing_segment(conn, seg.time)

    def _closing_segment(self, conn: Connection, time: float) -> None:
        """One more segment of a connection that closed with bytes missing (`_close`): it
        ends once they have come or its LATE_SEGMENTS are spent."""
        conn.closing -= 1
        a, b = conn.sides
        if not conn.closing or not (_waits(a) or _waits(b)):
            conn.closing = conn.closing or 1
            self._finish(conn, time, conn.closing_reason)

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
                key = conn.keys[side]
                end = self._lives.segment(key, flags, seq, ack if flags & _ACK else -1,
                                          payload, frame, time)
                if end is not None:  # its ACK told a lost FIN that answered a close
                    self._end_life(key, time, end, finished=True)
                return True
            conn.last_time = time
            life.take(side, seq, payload, time, frame)
            if flags & _ACK and life.acked(side, ack, frame, time):  # (see `Life.acked`)
                self._finish(conn, time, "closed")
            return True
        here = conn.sides[side]
        if here.base is None or here.holding:
            # (a held start ends at this side's next segment that does not come before it,
            # a bare ACK too: `InOrder._end_hold`)
            return False
        if payload and (here.pending or (seq - here.base - here.next_offset) & _MASK):
            return False  # not the next bytes, or early bytes wait to be drained after them
        there = conn.sides[1 - side]
        if there.pending:
            return False  # the other side waits
        if payload and there.base is not None and flags & _ACK:
            ahead = (ack - there.base - there.next_offset) & _MASK
            if 1 < ahead < _HALF or ahead == 1 and _unseen(there, there.next_offset + 1):
                return False  # this one must wait for the other (causal order)
        self.now = time
        self._until_sweep -= 1
        conn.last_time = time
        if flags & _ACK:
            self._peer_acked(conn, 1 - side, ack, frame, time)
        if payload:
            here.advance(payload)
            listener = conn.listener
            assert listener is not None
            listener.on_data(side, here.next_offset - len(payload), payload, frame, time)
        return True

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
            # ... unless it is the same connection again: its SYN (the same first sequence
            # number) or a SYN-ACK acknowledging it. Two copies of one connection follow each
            # other in a capture of two interfaces (`dumpcap -i lo -i any` writes each one's
            # packets in batches), in a merge of both ends' captures, or when a link
            # duplicated the SYN: the copy was listed as a second attempt.
            base = conn.syn_base
            if base is None:
                return True
            if seg.flags & _ACK:
                return seg.ack != base
            return side != 0 or (seg.seq + 1) & _MASK != base
        direction = conn.sides[side]
        # (a `_Base`, of a deferred or ignored connection, holds nothing)
        if getattr(direction, "holding", False) and direction.pending_order:
            # Its first bytes seen wait for those sent before them (`InOrder._end_hold`): a
            # SYN just before them, or before bytes still to come, is this connection's, shown
            # late (files merged by times in whole seconds put it after them)
            assert direction.base is not None
            start = (direction.base + direction.pending_order[0]) & _MASK
            return (start - seg.seq - 1) & _MASK > MAX_HELD_START
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
        keys = (  # (the compiled skip's objects: it finds them by identity, `table_key`)
            table_key(flow_key(addresses[0], addresses[1], addresses[2], addresses[3])),
            table_key(flow_key(addresses[2], addresses[3], addresses[0], addresses[1])),
        )
        if self._defer_syn and seg.flags & (_SYN | _ACK | _FIN | _RST) == _SYN and not seg.payload:
            # `_segment` keeps this SYN; until a listener is made, the directions are only
            # where their sequence numbers start (like an ignored connection's)
            conn = new_deferred_connection(keys[0], seg.time, (_Base(None), _NO_BASE), [])
        else:
            conn = new_connection(keys[0], seg.time)
            listener = self._new_listener(conn, seg)
            if listener is None:
                conn.ignored = True
            conn.listener = listener
        self._table[keys[0]] = (conn, 0)
        self._table[keys[1]] = (conn, 1)
        self.connections_seen += 1
        return conn, side

    # --- connection lifetime --------------------------------------------------------------

    def _close(self, conn: Connection, time: float, reason: str) -> None:
        """Both FINs, or a RST: the connection ends now if every byte before the ends was
        seen; else it waits LATE_SEGMENTS more of its segments (or its end by time) for
        bytes a capture shows after the close, before writing off the holes."""
        a, b = conn.sides
        if not (_waits(a) or _waits(b)):  # (a generator per close cost ≈ 1 µs more)
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
            a, b = conn.sides
            for side, here in ((0, a), (1, b)):
                if getattr(here, "holding", False):  # its first bytes, in order
                    self._end_hold(conn, side)
            if not self.skip_idle_flush or _waits(a) or _waits(b):
                self._release(conn, (0, 1))
                for side in (0, 1):
                    self._flush(conn, side, 0, time, 0)
            # the flushed bytes may have handed the connection to another stage (handoff.py)
            (conn.listener or listener).on_end(time, reason)
        life = conn.life
        if life is not None:  # the flushed bytes ended a watch window: that life ends here too
            conn.life = None
            life.end(conn.addresses, time, reason)
        # Nothing calls a finished connection's listener again, but the entry stays in the
        # table a while (late retransmissions must not open a new connection): `ignore` lets
        # the listener's buffers and messages go now. This kept peak memory flat on big
        # captures whose connections all fit in the 60 s grace period (benchmarks/README.md).
        # Only the table entry is left (`_is_new_incarnation` says True without looking at
        # the directions): a reconnect storm keeps 100,000 finished connections at once.
        conn.syn_base = conn.sides[0].base
        conn.ignore(_FINISHED_SIDES)
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
        lives = self._lives
        settled = 0
        if self.fast_sweep and (len(self._table) + (len(lives) if lives else 0)
                                <= self._max_connections):
            # Below the cap nothing is evicted, so a settled connection (finished: its entry
            # kept a minute for late retransmissions) is only dropped once stale, which the
            # walk below would find after the same tests; the others are visited as it would.
            look, stale, settled = sweep_split(self._table, max(cutoff, now - 60.0))
            for conn in stale:
                self._drop(conn)
        else:
            # Each connection is in the table under both of its keys, once as side 0 (`_open`
            # sets both, `_drop` removes both, a new incarnation replaces both): visit it once.
            look = [conn for conn, side in list(self._table.values()) if not side]
        live: list[Connection] = []
        for conn in look:
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
        if lives:
            for key in lives.idle(life_cutoff):
                self._end_life(key, now, "idle", finished=False)
        excess = len(live) + settled + (len(lives) if lives else 0) - self._max_connections
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
