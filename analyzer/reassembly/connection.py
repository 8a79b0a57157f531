"""The connection model: one TCP connection's two directions (where their sequence numbers
start, what was delivered, what waits), what an ignored or finished connection keeps, and
`let_go`, the one point where the layer above lets a connection go."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from analyzer.decode.segment import Segment
from analyzer.reassembly.listeners import LifeFollower, StreamListener

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
# The `recent` of a direction whose retransmissions are no longer compared (`stop_keeping`):
# shared, never written to, and never replaced by the resets after a hole.
_NOT_KEPT = bytearray()

# A connection in life is kept this long without a packet (AWS NLB idles at 350 s, so the
# 300 s of other connections would end live WebSockets that a capture shows still open).
LIFE_IDLE_TIMEOUT = 3600.0


@dataclass(slots=True)
class _Direction:
    """One direction's reassembly state: where its stream stands and what waits."""
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
    # The FIN's frame and time; before any FIN, the frame and time of the first segment that
    # acknowledged one number past the bytes, and the other side's offset then (a lost FIN's
    # proof, delivery.py `_lost_fin`).
    fin_evidence: tuple[int, float] | tuple[int, float, int] = (0, 0.0)
    rst: bool = False
    # Picked up in its middle (no SYN): its first bytes wait (in ``pending``) until the
    # connection's next segment that does not come just before them (delivery.py `_end_hold`)
    holding: bool = False

    def advance(self, data: bytes) -> None:
        """``data`` is delivered: the next in-order offset moves past it, and it is kept."""
        self.next_offset += len(data)
        recent = self.recent
        if not recent:  # (one test for both shared empty arrays: this runs per segment)
            if recent is _NOT_KEPT:
                return
            if recent is _NOTHING_YET:
                recent = self.recent = bytearray()
        recent += data
        if len(recent) > 2 * RECENT_BYTES:
            del recent[: len(recent) - RECENT_BYTES]

    def forget_recent(self) -> None:
        """A hole: the kept bytes must end at ``next_offset``, so none are kept from here
        (unless none are kept at all, `stop_keeping`)."""
        if self.recent is not _NOT_KEPT:
            self.recent = _NOTHING_YET

    def stop_keeping(self) -> None:
        """Keep no delivered bytes from now on: re-sent bytes are no longer compared (what
        a connection let go into life gets, `let_go`, for one that stays in reassembly).
        The compiled paths that append to `recent` themselves skip it too (decode/
        _follow.pxi `_advance`; _watching.pxi takes only a `ConnectionTracker`'s
        connections, which never stop keeping)."""
        self.recent = _NOT_KEPT

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
    # Side 0's first sequence number + 1, kept when the connection finished (its directions
    # go): a SYN of that number, or a SYN-ACK acknowledging it, is a copy of this connection
    # (`Reassembler._is_new_incarnation`), not a new one on the same ports
    syn_base: int | None = None
    # A copy of this finished connection was folded into it (counted once, in
    # `Reassembler.copied_connections`, however many of the copy's SYNs come)
    copied: bool = False

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

    def stop_keeping_recent(self) -> None:
        """Neither direction keeps its delivered bytes from now on (`_Direction.stop_keeping`):
        a decrypted WebSocket in life, whose records the TLS stage must still read, so it
        stays in reassembly, but whose verdict is out. Its 16-32 KiB a direction were ≈ 60 %
        of a capture of 1,765 open ones (docs/architecture.md, "Open work")."""
        for here in self.sides:
            here.stop_keeping()

    def ignore(self, sides: tuple[Any, Any] | None = None) -> None:
        """Stop reassembling: the layer above has everything it needs from this connection.
        ``sides``: what stands for its directions from now on (by default their first
        sequence numbers alone; a finished connection's need nothing, `_finish`)."""
        self.ignored = True
        # Later segments of an ignored connection are dropped on sight; only a SYN is looked
        # at, to tell a new connection on the same ports (`_is_new_incarnation`), and that
        # needs each direction's first sequence number alone. An open WebSocket connection
        # past its watch window costs about 500 bytes so (benchmarks/README.md, "Memory").
        self.sides = sides if sides is not None else (  # type: ignore[assignment]
            _Base(self.sides[0].base), _Base(self.sides[1].base))
        # Nothing calls an ignored connection's listener again, and its entry stays in the
        # table until it ends or expires (bulk connections: 300 s): let the listener's state go
        # now (22 % of the table's memory on the 1 GB benchmark, benchmarks/README.md).
        self.listener = None
        self.passing = None


# A connection's state is made at its first segment and again at its listener's (two
# directions): ≈ 7 k machine instructions for a Connection's generated ``__init__``, ≈ 4 k
# for a _Direction's. The compiled module fills the same slots with the same values
# (decode/_made.pxi `FreshMaker`); these constructors' calls are its plain twins
# (tests/test_made_values.py compares them) and the pure-Python install's.
def direction_plain(base: int | None) -> _Direction:
    """A direction whose stream starts at sequence number ``base``."""
    return _Direction(base=base)


def connection_plain(key: bytes, last_time: float) -> Connection:
    return Connection(key=key, last_time=last_time)


def deferred_connection_plain(key: bytes, last_time: float, sides: tuple[Any, Any],
                              syns: list[int | float]) -> Connection:
    """A connection whose listener waits for more than its bare SYNs (`Connection.syns`)."""
    return Connection(key=key, last_time=last_time, sides=sides, syns=syns)


try:
    from analyzer.decode._fastpath import FreshMaker
except ImportError:  # pragma: no cover - exercised by the pure-Python install
    new_direction, new_connection = direction_plain, connection_plain
    new_deferred_connection = deferred_connection_plain
else:
    new_direction = FreshMaker(_Direction, ("base",))
    new_connection = FreshMaker(Connection, ("key", "last_time"))
    new_deferred_connection = FreshMaker(Connection, ("key", "last_time", "sides", "syns"))


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
