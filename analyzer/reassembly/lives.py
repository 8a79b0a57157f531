"""The life table's routing: a connection let go into life moves, once judged, from the
reassembler's dict into the life table (`analyzer/life/table.py`), whose segments then take no
reassembly; and its end, by a FIN pair, a RST, idleness or eviction."""

from __future__ import annotations

from analyzer.decode.segment import Segment
from analyzer.reassembly.connection import _ACK, _FIN, _FINISHED_SIDES, _RST, Connection
from analyzer.reassembly.listeners import LifeFollower, LifeTable


class LifeRouting:
    """The part of `Reassembler` (table.py) that routes connections in life."""

    _lives: LifeTable | None
    _table: dict[bytes, tuple[Connection, int]]
    _halves: int
    _until_sweep: int
    now: float

    # --- defined by the table (table.py) ---------------------------------------------------

    def _finish(self, conn: Connection, time: float, reason: str) -> None:
        raise NotImplementedError

    def _drop(self, conn: Connection) -> None:
        raise NotImplementedError

    # --- routing ---------------------------------------------------------------------------

    def take_life(self, key: bytes, seq: int, ack: int, payload: bytes, frame: int,
                  time: float) -> bool:
        """The pipeline's cheap path for a segment without SYN, FIN or RST of a connection
        in the life table (``take_plain``'s, for those; ``ack`` -1 without the ACK flag):
        False when it is not one, the segment runs the sweep, or it ends the connection
        (its ACK tells a lost FIN that answered a close)."""
        if self._until_sweep <= 1 or not self._lives or not self._lives.take(
                key, seq, ack, payload, frame, time):
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
        base = self._lives.syn_base(key)
        life, first_key = self._lives.pop(key)
        conn = Connection(key=first_key, ignored=True, last_time=time, finished=True,
                          sides=_FINISHED_SIDES, syn_base=base)  # type: ignore[arg-type]
        if finished:  # under its side-0 key only, as `_finish` leaves a finished connection
            self._table[conn.keys[0]] = (conn, 0)
            self._halves += 1
        life.end(conn.addresses, time, reason)

    def _life_segment(self, conn: Connection, life: LifeFollower, side: int,
                      seg: Segment) -> None:
        """A segment of a connection in life: its bytes and time, and the end it makes (a
        RST, or the second FIN) ends the connection at once (no late bytes are awaited)."""
        life.take(side, seg.seq, seg.payload, seg.time, seg.frame)
        flags = seg.flags
        # its ACK may prove the other side's lost FIN, or tell it (`Life.acked`)
        answered = bool(flags & _ACK) and life.acked(side, seg.ack, seg.frame, seg.time)
        if flags & _RST:
            life.rst(side, seg.frame, seg.time, seg.seq)
            self._finish(conn, seg.time, "reset")
        elif flags & _FIN and life.fin(side, seg.frame, seg.time) or answered:
            self._finish(conn, seg.time, "closed")
