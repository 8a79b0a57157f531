"""The run's table of connections in life: where a switched connection past its watch window
is kept once the reassembler has let go of it, by flow key.

How it works
------------
A connection let go into life (`reassembly.let_go`) first keeps its `Connection` and its
`Life` object; once its attempt has been judged (the pipeline does so right after the call
that let it go), at its next segment or the reassembler's next sweep, whichever comes first
(`Reassembler._adopt`), it moves here and leaves the reassembler's dict. Its segments then come
here: without SYN, FIN or RST to `take` (from the compiled skip without a Python call, or
from the pipeline's per-record path), the others to `segment`, which says when one ends it;
`pop` gives its `Life` back for the end, whose `Lifetime` is computed by life/state.py in
every case. The compiled table (`LifeTable`, decode/_life_table.pxi) keeps each connection
in C structs, about 300 bytes with its hash slots (a `Connection` and a `Life` cost 2 KB);
`PlainLifeTable` here is its twin, with the same methods and results, used when the compiled
module is not built or `Analysis(compiled=False)`; tests/test_life_table.py compares them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from analyzer.life.state import Life, _Flow

if TYPE_CHECKING:
    from analyzer.reassembly import Connection

_MASK = 0xFFFFFFFF

try:
    from analyzer.decode._fastpath import LifeTable as _Compiled
except ImportError:  # pragma: no cover - the pure-Python install
    _Compiled = None


def new_life_table(compiled: bool = True) -> Any:
    """The compiled table when built and ``compiled``, else its plain twin."""
    if compiled and _Compiled is not None:
        return _Compiled(Life, _Flow)
    return PlainLifeTable()


class _Lived:
    """A connection in the plain table."""

    __slots__ = ("life", "key", "bases", "last_time")

    def __init__(self, life: Life, key: bytes, bases: tuple[int | None, int | None],
                 last_time: float) -> None:
        self.life = life
        self.key = key  # side 0's flow key
        self.bases = bases  # the reassembler's first sequence number of each side
        self.last_time = last_time


class PlainLifeTable:
    """The compiled `LifeTable`'s twin: a dict of flow keys (both directions', like the
    reassembler's) to the connection's `_Lived` and the side of that key."""

    __slots__ = ("_by_key", "ledger", "taken")

    def __init__(self) -> None:
        self._by_key: dict[bytes, tuple[_Lived, int]] = {}
        self.ledger: object = None  # the compiled skip's (never used here)
        self.taken = 0  # segments the compiled skip took (none here)

    def __len__(self) -> int:
        return len(self._by_key) // 2

    def adopt(self, conn: Connection) -> bool:
        """Take ``conn``'s `Life` into the table (True), or leave it where it is (False: not
        a plain `Life`, or the connection is closing, finished or still deferred)."""
        life = conn.life
        if (type(life) is not Life or life.ended or conn.closing or conn.finished
                or conn.syns is not None or conn.key in self._by_key):
            return False
        assert isinstance(life, Life)
        lived = _Lived(life, conn.key, (conn.sides[0].base, conn.sides[1].base),
                       conn.last_time)
        keys = conn.keys
        self._by_key[keys[0]] = (lived, 0)
        self._by_key[keys[1]] = (lived, 1)
        return True

    def nbytes(self) -> int:
        """Memory outside Python's allocator (none: tracemalloc sees this table whole)."""
        return 0

    def side_of(self, key: bytes) -> int:
        """The side whose segments carry ``key`` (-1: no connection in life has it)."""
        entry = self._by_key.get(key)
        return -1 if entry is None else entry[1]

    def take(self, key: bytes, seq: int, ack: int, payload: bytes, frame: int,
             time: float) -> bool:
        """A segment without SYN, FIN or RST (``ack`` -1 without the ACK flag): False when
        ``key`` is not in the table, or when the segment ends the connection (its ACK tells
        a lost FIN that answered a close, `Life.answers`): `segment` takes it then."""
        entry = self._by_key.get(key)
        if entry is None:
            return False
        lived, side = entry
        life = lived.life
        if ack >= 0 and life.answers(side, ack):
            return False
        lived.last_time = time
        life.take(side, seq, payload, time, frame)
        if ack >= 0:
            life.acked(side, ack, frame, time)
        return True

    def segment(self, key: bytes, flags: int, seq: int, ack: int, payload: bytes, frame: int,
                time: float) -> str | None:
        """Any segment of a connection in the table: "reset" or "closed" when it ends it
        (`Reassembler._life_segment`'s rule)."""
        lived, side = self._by_key[key]
        lived.last_time = time
        life = lived.life
        life.take(side, seq, payload, time, frame)
        answered = ack >= 0 and life.acked(side, ack, frame, time)
        if flags & 0x04:
            life.rst(side, frame, time, seq)
            return "reset"
        if flags & 0x01 and life.fin(side, frame, time) or answered:
            return "closed"
        return None

    def reused(self, key: bytes, seq: int) -> bool:
        """A SYN whose sequence number is not the one its direction started with: a new
        connection on the same ports (`Reassembler._is_new_incarnation`)."""
        lived, side = self._by_key[key]
        base = lived.bases[side]
        return base is not None and (seq + 1) & _MASK != base

    def syn_base(self, key: bytes) -> int | None:
        """Side 0's first sequence number + 1 (None when unknown): what a copy of the
        connection's SYN would carry (`Reassembler._is_new_incarnation`)."""
        lived, _ = self._by_key[key]
        return lived.bases[0]

    def pop(self, key: bytes) -> tuple[Life, bytes]:
        """(the connection's `Life`, side 0's flow key), taken out of the table."""
        lived, side = self._by_key.pop(key)
        size = (len(key) - 4) // 2
        ports = key[2 * size:]
        del self._by_key[key[size:2 * size] + key[:size] + ports[2:] + ports[:2]]
        return lived.life, lived.key

    def idle(self, cutoff: float) -> list[bytes]:
        """Side 0's flow keys of the connections silent since before ``cutoff``."""
        return [lived.key for lived, side in self._by_key.values()
                if not side and lived.last_time < cutoff]

    def ages(self) -> list[tuple[float, bytes]]:
        """(last packet time, side 0's flow key) of each connection, in insertion order."""
        return [(lived.last_time, lived.key) for lived, side in self._by_key.values()
                if not side]
