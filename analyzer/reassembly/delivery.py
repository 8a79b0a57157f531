"""In-order delivery: a followed connection's segments become each direction's bytes in
order, with holes, conflicting overlaps, SYNs, FINs and RSTs told to its listener.

How it works
------------
Each direction keeps the absolute stream offset it expects next. A segment's sequence number is
turned into an offset relative to the first sequence number seen (SYN + 1, or, in a capture
that started mid-connection, the earliest of a direction's first bytes: they wait until the
connection's next segment that does not come just before them, `_end_hold`), unwrapped around
the expected offset, so sequence wrap-around and streams over 4 GiB need no special case.
In-order bytes go straight to the connection's listener; bytes that arrive early wait in a
small per-direction buffer; bytes that were already delivered (retransmissions, overlaps) are
trimmed, after comparing them with the last bytes delivered (``RECENT_BYTES`` per direction): a
segment that re-sends an offset with different bytes is the classic IDS evasion (Ptacek &
Newsham 1998; RFC 9293 §3.10.7.4 leaves the choice of copy to the receiver, and stacks differ),
and is reported with ``on_conflict``. We keep what was delivered first.

A hole is declared only when the capture proves bytes are missing and will not come: the
early-arrival buffer overflowed, or the direction ended (FIN, RST, end of capture) with bytes
still waiting, or short of what the FIN's sequence number or the peer's acknowledgements say
was sent. Acknowledgements alone do not declare a hole at once, because a capture may show an
ACK a little before the segment it covers (a reordering of a few packets is common). The
listener is told the hole's size so that the layers above can say "cannot tell" instead of
guessing (STYLE: Zeek stops interpreting after a gap).
"""

from __future__ import annotations

import heapq

from analyzer.decode.segment import Segment, made_segment
from analyzer.reassembly.connection import (
    _ACK,
    _DEFERRED_SYNS,
    _FIN,
    _HALF,
    _MASK,
    _RST,
    _SYN,
    MAX_PENDING_BYTES,
    Connection,
    ListenerFactory,
    _Direction,
    _first_waiting,
    addresses_of,
    new_direction,
)

# A direction picked up without its SYN holds at most this many of its first bytes.
MAX_HELD_START = 64 * 1024


def _before_held(here: _Direction, seg: Segment) -> bool:
    """Whether ``seg`` keeps a direction's first bytes held (`InOrder._end_hold`): data of
    the same direction, no FIN or RST, ending just where the held bytes begin or inside
    them (a segment sent earlier that the capture shows later, or a copy), with room left."""
    if (not seg.payload or seg.flags & (_SYN | _FIN | _RST) or seg.missing
            or not here.pending or 0 not in here.pending):
        return False
    assert here.pending_order is not None
    end = here.offset_of(seg.seq) + len(seg.payload)
    # (offset 0 holds the first segment seen, the held bytes' end: the others come before it)
    return (here.pending_order[0] <= end <= len(here.pending[0][0])
            and here.pending_bytes + len(seg.payload) <= MAX_HELD_START)


def _unseen(there: _Direction, need: int) -> bool:
    """Whether a segment that acknowledged offset ``need`` of the direction ``there`` was
    sent after bytes of it not delivered yet, so it waits for them (causal order). One
    number past them is the FIN's own when ``there`` ended right there; otherwise it is a FIN
    or a byte the capture shows later or lost, and the segment waits too, so that a lost FIN
    proved later (`_lost_fin`) is told before what was sent after it."""
    ahead = need - there.next_offset
    if ahead == 1:
        return not (there.rst or there.fin and there.fin_end <= there.next_offset)
    return 1 < ahead < _HALF


class InOrder:
    """The part of `Reassembler` (table.py) that delivers one connection's bytes in order."""

    _new_listener: ListenerFactory
    cut_segments: int  # (the table's count of segments the snaplen cut)

    # --- defined by the table (table.py) ---------------------------------------------------

    def _close(self, conn: Connection, time: float, reason: str) -> None:
        raise NotImplementedError

    def _finish(self, conn: Connection, time: float, reason: str) -> None:
        raise NotImplementedError

    # --- in-order delivery -----------------------------------------------------------------

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
        there = conn.sides[1 - side]
        if there.holding:
            self._end_hold(conn, 1 - side)
        if here.holding and not _before_held(here, seg):
            self._end_hold(conn, side, seg.seq if flags & _SYN else None)
        if flags & _SYN:
            if here.base is None:
                here.base = (seg.seq + 1) & _MASK
            listener.on_syn(side, seg.frame, seg.time, bool(flags & _ACK))
        elif here.base is None:
            here.base = seg.seq
            # picked up in its middle: where the stream starts is not proven yet
            here.holding = bool(seg.payload) and not flags & (_FIN | _RST) and not seg.missing
        if flags & _ACK:
            self._peer_acked(conn, 1 - side, seg.ack, seg.frame, seg.time)
        if conn.ignored:
            return
        payload = seg.payload
        # (the SYN takes a sequence number of its own: data it carries, TCP Fast Open's
        # request or ClientHello, RFC 7413, starts at the next one)
        seq = (seg.seq + 1) & _MASK if flags & _SYN else seg.seq
        if payload and here.holding:
            self._hold(conn, side, here, here.offset_of(seq), payload, seg.frame, seg.time)
            return
        if payload:
            offset = here.offset_of(seq)
            there = conn.sides[1 - side]
            if flags & _ACK and there.base is not None and offset >= here.next_offset:
                # This segment acknowledges bytes of the other direction not delivered yet
                # (a capture shows them later, or lost them): it was sent after them, so it
                # waits for them. A request then always reaches the layer above before its
                # response, whatever order the capture shows them in (`_unseen`).
                need = there.offset_of(seg.ack)
                if _unseen(there, need):
                    if here.needs is None:
                        here.needs = {}
                    here.needs[offset] = need
                    self._hold(conn, side, here, offset, payload, seg.frame, seg.time)
                    payload = b""
        if payload:
            self._data(conn, side, here, offset, payload, seg.frame, seg.time)
            if seg.missing and not conn.ignored and conn.life is None:
                # The snaplen cut the end of this segment: those bytes are a hole right here.
                self.cut_segments += 1
                self._data_gap(conn, side, here, offset + len(payload), seg.missing, seg)
        if conn.ignored:
            return
        if flags & (_RST | _FIN) and not (here.fin or here.rst):
            self._lost_fin(conn, 1 - side, seg.frame, seg.time)
            if flags & _RST and here.offset_of(seg.seq) == here.next_offset + 1:
                self._lost_fin(conn, side, seg.frame, seg.time)  # its RST came after its FIN
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
            here.fin_end = here.offset_of(seq) + len(payload)
            if here.acked == here.fin_end + 1:  # acknowledged before the capture shows it
                here.acked = here.fin_end  # (acked counts no FIN, _peer_acked)
            here.fin_evidence = (seg.frame, seg.time)
            listener.on_fin(side, seg.frame, seg.time)
            if conn.sides[1 - side].pending and conn.life is None and not conn.ignored:
                self._settle(conn)  # what the other side sent after this FIN (`_unseen`)
            if conn.life is not None:  # the listener let it go into life just now
                if conn.life.fin(side, seg.frame, seg.time):
                    self._finish(conn, seg.time, "closed")
                return
            if conn.sides[1 - side].fin:
                self._close(conn, seg.time, "closed")

    def _end_hold(self, conn: Connection, side: int, syn: int | None = None) -> None:
        """A direction picked up without its SYN held its first bytes (`_Direction.holding`):
        its stream now starts at the earliest of them, and they go in order; or, when its SYN
        (sequence number ``syn``) ends the hold, at the SYN's next number, which may be before
        them (`Reassembler._is_new_incarnation`): the bytes in between are still to come.

        Why: its first sequence number seen was taken for the stream's start, so bytes a
        capture shows after it but sent before it (reordered) were taken for old ones and
        dropped, with the message they began (tests/test_resegmented.py, cut backwards). The
        bytes wait only until the connection's next segment that does not come just before
        them: the other side's, a later one of this side, a FIN or RST, or its end; so a
        capture in order is read as before, a segment later."""
        here = conn.sides[side]
        here.holding = False
        if not here.pending or here.pending_order is None or here.base is None:
            return
        first = here.pending_order[0]
        if syn is not None:
            first = min(first, here.offset_of((syn + 1) & _MASK))
        if first < 0:  # bytes before the first seen: the stream starts there
            here.base = (here.base + first) & _MASK
            here.pending = {offset - first: held for offset, held in here.pending.items()}
            here.pending_order = sorted(here.pending)
            if here.needs:
                here.needs = {offset - first: need for offset, need in here.needs.items()}
        self._settle(conn)

    def _lost_fin(self, conn: Connection, side: int, frame: int, time: float) -> None:
        """The other side acknowledged exactly one sequence number past everything ``side``
        sent, and ``side`` sent no FIN or RST the capture shows: when that side then closes
        too (its FIN or RST is in ``frame``), or ``side`` resets one number past its bytes,
        that number was ``side``'s FIN (a FIN occupies one, RFC 9293 §3.4), which the
        capture lost. It is told as a FIN with the frame that first acknowledged it (so it
        came before that frame; `model.came_first`), never as a 1-byte hole at the end of
        the stream. The other side's bytes sent after acknowledging it waited (`_unseen`)
        and go now, after it. Not when the other side sent bytes after acknowledging it that
        were delivered already (they acknowledged no more than the bytes): the layers above
        read them as sent before any FIN, so the hole (cannot tell) stays.

        A lost byte would read the same only if ``side`` sent a last byte and no FIN before
        the other side closed: a 1-byte write left unfinished (a TLS record is at least 6
        bytes, a WebSocket frame 2). A byte lost before a FIN the capture shows, or inside
        the stream, is still a hole."""
        there = conn.sides[side]
        if (there.fin or there.rst or there.pending or there.base is None
                or there.acked != there.next_offset + 1 or conn.listener is None):
            return
        proof = there.fin_evidence  # the first segment that acknowledged it (_peer_acked)
        if len(proof) == 3:
            if proof[2] != conn.sides[1 - side].next_offset:
                return
            frame, time = proof[0], proof[1]
        there.fin = True
        there.acked = there.fin_end = there.next_offset  # acked counts no FIN (_peer_acked)
        there.fin_evidence = (frame, time)
        conn.listener.on_fin(side, frame, time, lost=True)
        if conn.life is not None:  # the listener let it go into life just now
            conn.life.fin(side, frame, time, lost=True)  # the other side's end follows
        elif conn.sides[1 - side].pending and not conn.ignored:
            self._settle(conn)  # what the other side sent after it waited for it

    def _make_listener(self, conn: Connection) -> bool:
        """The listener of a connection whose SYNs were kept, told of them; False when the
        factory declines the connection (it is ignored)."""
        syns, conn.syns = conn.syns or [], None
        (src, sport, dst, dport), frame, time = addresses_of(conn.key), int(syns[0]), syns[1]
        base = conn.sides[0].base
        assert base is not None  # set by the first SYN
        conn.sides = (new_direction(base), new_direction(conn.sides[1].base))
        first = made_segment(frame, time, src, sport, dst, dport, (base - 1) & _MASK, 0, _SYN,
                             b"")
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
            if here.acked < min(end, here.next_offset):
                # not acknowledged yet: a copy the sender needed (or thought it did); the
                # layers above time what waited on it from here (checks/transport.py)
                listener.on_resent(side, offset, min(end, here.next_offset) - offset, frame,
                                   time)
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
        # (a segment delivered may end the watch: in life, ``here`` is no longer the side's)
        while here.pending and not conn.ignored and conn.life is None:
            order = here.pending_order
            assert order is not None  # made with pending
            first = order[0]
            if first > here.next_offset:
                return moved
            need = here.needs.get(first) if here.needs else None
            if need is not None:
                if _unseen(there, need):
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
        self, conn: Connection, side: int, here: _Direction, offset: int, frame: int, time: float,
        cause: str = "capture",
    ) -> None:
        if offset <= here.next_offset:
            return
        listener = conn.listener
        assert listener is not None
        listener.on_gap(side, here.next_offset, offset - here.next_offset, frame, time, cause)
        here.next_offset = offset
        here.forget_recent()  # the kept bytes must end at next_offset
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
        if here.next_offset == offset:  # (`Gap.cause` "snaplen": the record says so)
            self._skip_to(conn, side, here, offset + length, seg.frame, seg.time, "snaplen")

    @staticmethod
    def _peer_acked(conn: Connection, side: int, ack: int, frame: int = 0,
                    time: float = 0.0, offset: int | None = None) -> None:
        """The other side acknowledged ``ack``: any byte of ``side`` below it was sent.
        (``frame``: the acknowledging segment's, kept when it may prove a lost FIN, with
        ``offset``, the acknowledging side's next offset then: by default, now.)"""
        there = conn.sides[side]
        if there.base is None or conn.ignored:
            return
        acked = there.offset_of(ack)
        if there.fin:
            acked -= 1  # the FIN's own sequence number
        if acked > there.acked and acked - there.next_offset < _HALF:
            there.acked = acked
            if acked == there.next_offset + 1 and frame and not there.fin:
                # a lost FIN's proof, and where the acknowledging side's bytes were then
                there.fin_evidence = (frame, time, conn.sides[1 - side].next_offset
                                      if offset is None else offset)

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
            frame, time = here.fin_evidence[0], here.fin_evidence[1]
        end = max(end, here.acked)
        if (end == here.next_offset + 1 == here.acked and not (here.fin or here.rst)
                and (other.fin or other.rst)):
            # Acknowledged by a segment after the other side's close: the FIN that answered
            # it, lost (see _lost_fin), not a byte. Nothing rests on when it came.
            end = here.next_offset
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
                if need is None or not _unseen(there, need):
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
                there.forget_recent()
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
                here.forget_recent()  # the kept bytes must end at next_offset
                if conn.ignored:
                    return
            self._data(conn, side, here, first, data, frame, time, drain=False)
