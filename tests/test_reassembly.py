"""TCP reassembly: the same bytes come out whatever the segmentation, order and duplication."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.decode.decoder import FASTPATH_COMPILED
from analyzer.decode.segment import Segment, TcpFlags
from analyzer.reassembly import MAX_PENDING_BYTES, Connection, Reassembler

A = bytes([10, 0, 0, 1])
B = bytes([10, 0, 0, 2])
SYN, ACK, FIN, RST, PSH = TcpFlags.SYN, TcpFlags.ACK, TcpFlags.FIN, TcpFlags.RST, TcpFlags.PSH


class Recorder:
    """A listener that writes down everything it is told."""

    def __init__(self) -> None:
        self.data: dict[int, bytearray] = {0: bytearray(), 1: bytearray()}
        self.gaps: list[tuple[int, int, int]] = []
        self.causes: list[str] = []  # each gap's (`Gap.cause`)
        self.conflicts: list[tuple[int, int, int, int]] = []
        self.resent: list[tuple[int, int, int, int]] = []
        self.events: list[tuple[str, int]] = []
        self.ended: str | None = None

    def on_syn(self, side: int, frame: int, time: float, with_ack: bool) -> None:
        self.events.append(("synack" if with_ack else "syn", side))

    def on_data(self, side: int, offset: int, data: bytes, frame: int, time: float) -> None:
        assert offset == len(self.data[side]) + sum(g[2] for g in self.gaps if g[0] == side)
        self.data[side] += data

    def on_gap(self, side: int, offset: int, length: int, frame: int, time: float,
               cause: str = "capture") -> None:
        self.gaps.append((side, offset, length))
        self.causes.append(cause)

    def on_conflict(self, side: int, offset: int, length: int, frame: int, time: float) -> None:
        self.conflicts.append((side, offset, length, frame))

    def on_resent(self, side: int, offset: int, length: int, frame: int, time: float) -> None:
        self.resent.append((side, offset, length, frame))

    def on_fin(self, side: int, frame: int, time: float, lost: bool = False) -> None:
        self.events.append(("fin", side))

    def on_rst(self, side: int, frame: int, time: float) -> None:
        self.events.append(("rst", side))

    def on_end(self, time: float, reason: str) -> None:
        self.ended = reason


def run(segments: list[Segment]) -> tuple[Recorder, Reassembler]:
    recorders: list[Recorder] = []

    def new(conn: Connection, seg: Segment) -> Recorder:
        recorders.append(Recorder())
        return recorders[-1]

    reassembler = Reassembler(new)
    for seg in segments:
        reassembler.feed(seg)
    reassembler.close()
    assert len(recorders) == 1
    return recorders[0], reassembler


def seg(
    n: int, from_a: bool, seq: int, flags: int = ACK | PSH, payload: bytes = b"", ack: int = 0
) -> Segment:
    src, sport, dst, dport = (A, 40000, B, 80) if from_a else (B, 80, A, 40000)
    return Segment(
        n, float(n), src, sport, dst, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, int(flags), payload
    )


def conversation(
    client: bytes,
    server: bytes,
    cut: int,
    isn_a: int = 1000,
    isn_b: int = 5000,
    with_syn: bool = True,
) -> list[Segment]:
    """Client and server payloads cut into `cut`-byte segments, in order, with a handshake."""
    out: list[Segment] = []
    if with_syn:
        out.append(seg(0, True, isn_a, SYN))
        out.append(seg(0, False, isn_b, SYN | ACK, ack=isn_a + 1))
    for start in range(0, len(client), cut):
        out.append(
            seg(0, True, isn_a + 1 + start, payload=client[start : start + cut], ack=isn_b + 1)
        )
    for start in range(0, len(server), cut):
        out.append(
            seg(
                0,
                False,
                isn_b + 1 + start,
                payload=server[start : start + cut],
                ack=isn_a + 1 + len(client),
            )
        )
    out.append(seg(0, True, isn_a + 1 + len(client), FIN | ACK, ack=isn_b + 1 + len(server)))
    out.append(seg(0, False, isn_b + 1 + len(server), FIN | ACK, ack=isn_a + 2 + len(client)))
    return [
        Segment(i + 1, float(i), *s.__getstate__()[2:]) if False else _renumber(s, i + 1)
        for i, s in enumerate(out)
    ]


def _renumber(s: Segment, n: int) -> Segment:
    return Segment(n, float(n), s.src, s.sport, s.dst, s.dport, s.seq, s.ack, s.flags, s.payload)


CLIENT = b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n" * 3
SERVER = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n" * 2


def test_in_order_delivery_and_fin() -> None:
    rec, _ = run(conversation(CLIENT, SERVER, 7))
    assert bytes(rec.data[0]) == CLIENT and bytes(rec.data[1]) == SERVER
    assert rec.gaps == []
    assert ("fin", 0) in rec.events and ("fin", 1) in rec.events
    assert rec.ended == "closed"


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(1, 40), seed=st.integers(0, 10_000), dup=st.floats(0, 0.5))
def test_any_order_and_duplication_gives_the_same_bytes(cut: int, seed: int, dup: float) -> None:
    segments = conversation(CLIENT, SERVER, cut)
    rng = random.Random(seed)
    handshake, data, tail = segments[:2], segments[2:-2], segments[-2:]
    data = data + [s for s in data if rng.random() < dup]  # retransmissions
    rng.shuffle(data)
    rec, _ = run(handshake + data + tail)
    assert bytes(rec.data[0]) == CLIENT
    assert bytes(rec.data[1]) == SERVER
    assert rec.gaps == []


def test_overlapping_retransmission_is_trimmed() -> None:
    segs = conversation(CLIENT, b"", 10)
    # resend bytes 5..25 as one segment after the originals
    extra = seg(0, True, 1001 + 5, payload=CLIENT[5:25])
    rec, _ = run(segs[:4] + [extra] + segs[4:])
    assert bytes(rec.data[0]) == CLIENT


def test_bytes_sent_again_are_told_until_the_peer_acknowledges_them() -> None:
    """A copy of delivered bytes is a re-send the layers above time from (`on_resent`) while
    the capture has not seen them acknowledged; once acknowledged, a copy is spurious."""
    segs = conversation(CLIENT, b"", 10)  # handshake, client segments, FINs: no ACK of them
    again = seg(0, True, 1001 + 5, payload=CLIENT[5:20])
    rec, _ = run(segs[:4] + [again] + segs[4:])
    assert rec.resent == [(0, 5, 15, 0)] and rec.conflicts == []
    acked = seg(0, False, 5001, ACK, ack=1001 + 20)
    rec, _ = run(segs[:4] + [acked, again] + segs[4:])
    assert rec.resent == []
    partly = seg(0, False, 5001, ACK, ack=1001 + 10)  # bytes 10 to 20 still unacknowledged
    rec, _ = run(segs[:4] + [partly, again] + segs[4:])
    assert rec.resent == [(0, 5, 15, 0)]


def test_sequence_wrap_around() -> None:
    rec, _ = run(conversation(CLIENT, SERVER, 9, isn_a=2**32 - 20, isn_b=2**32 - 3))
    assert bytes(rec.data[0]) == CLIENT and bytes(rec.data[1]) == SERVER


def test_mid_stream_capture_starts_at_first_segment() -> None:
    rec, _ = run(conversation(CLIENT, SERVER, 16, with_syn=False))
    assert bytes(rec.data[0]) == CLIENT and bytes(rec.data[1]) == SERVER


def test_lost_segment_becomes_a_gap_of_the_right_size() -> None:
    segs = conversation(CLIENT, b"", 10)
    lost = segs.pop(3)  # third client data segment: bytes 10..20
    rec, _ = run(segs)
    assert rec.gaps == [(0, 10, 10)]
    assert bytes(rec.data[0]) == CLIENT[:10] + CLIENT[20:]
    assert lost.payload == CLIENT[10:20]


def test_acknowledged_but_unseen_bytes_are_a_gap_before_the_end() -> None:
    segs = conversation(CLIENT, SERVER, 1000)
    client_data = segs.pop(2)  # the client's only data segment: the server acks it anyway
    rec, _ = run(segs)
    assert rec.gaps and rec.gaps[0][:2] == (0, 0) and rec.gaps[0][2] == len(client_data.payload)


def test_rst_ends_the_connection() -> None:
    segs = [seg(1, True, 100, SYN), seg(2, False, 900, RST | ACK, ack=101)]
    rec, _ = run(segs)
    assert ("rst", 1) in rec.events and rec.ended == "reset"


def test_pending_buffer_is_bounded() -> None:
    segs = [seg(1, True, 100, SYN)]
    # never send byte 0: everything else waits until the buffer limit writes the hole off
    chunk = b"x" * 1000
    for i in range(1, MAX_PENDING_BYTES // 1000 + 5):
        segs.append(seg(i + 1, True, 101 + i * 1000, payload=chunk))
    rec, _ = run(segs)
    assert rec.gaps and rec.gaps[0][:2] == (0, 0)


def test_snaplen_cut_is_a_hole_of_its_own_cause() -> None:
    """A segment the snaplen cut (its record's caplen < len: `Segment.missing`) is a hole
    right after its bytes, told as "snaplen"; a segment the capture lost is "capture"."""
    segs = [seg(1, True, 100, SYN), seg(2, False, 500, SYN | ACK, ack=101),
            replace(seg(3, True, 101, payload=b"GET /ws HT"), missing=20),
            seg(4, True, 131, payload=b"next"), seg(5, True, 145, payload=b"more")]
    rec, _ = run(segs)
    assert rec.gaps == [(0, 10, 20), (0, 34, 10)]
    assert rec.causes == ["snaplen", "capture"]
    assert bytes(rec.data[0]) == b"GET /ws HTnextmore"


def test_ignored_connection_gets_nothing_more() -> None:
    got: list[bytes] = []

    class Once(Recorder):
        def __init__(self, conn: Connection) -> None:
            super().__init__()
            self.conn = conn

        def on_data(self, side: int, offset: int, data: bytes, frame: int, time: float) -> None:
            got.append(data)
            self.conn.ignore()

    reassembler = Reassembler(lambda conn, s: Once(conn))
    for s in conversation(CLIENT, SERVER, 5):
        reassembler.feed(s)
    assert got == [CLIENT[:5]]


def test_port_reuse_opens_a_new_connection() -> None:
    first = conversation(b"a" * 10, b"b" * 10, 10)
    second = [
        _renumber(s, s.frame + 100)
        for s in conversation(b"c" * 10, b"d" * 10, 10, isn_a=77777, isn_b=88888)
    ]
    seen: list[Recorder] = []

    def new(conn: Connection, s: Segment) -> Recorder:
        seen.append(Recorder())
        return seen[-1]

    reassembler = Reassembler(new)
    for s in first + second:
        reassembler.feed(s)
    reassembler.close()
    assert [bytes(r.data[0]) for r in seen] == [b"a" * 10, b"c" * 10]


def test_a_syn_shown_after_the_first_bytes_is_theirs() -> None:
    """First bytes shown before their SYN are held (`_end_hold`); a SYN shown after them,
    just before the earliest or before bytes still to come, starts their stream (it opened
    a new connection, and the bytes held were lost with the old one); a SYN far from them
    is still a new connection on the same ports."""
    syn, syn_ack = seg(0, True, 100, SYN), seg(0, False, 900, SYN | ACK, ack=101)
    late, early = seg(0, True, 111, payload=b"0123456789"), seg(0, True, 101, payload=b"GET / HTTP")
    for order in ([late, early, syn, syn_ack], [late, syn, syn_ack, early],
                  [late, syn, early, syn_ack]):
        rec, _ = run([_renumber(s, n) for n, s in enumerate(order, 1)])
        assert bytes(rec.data[0]) == b"GET / HTTP0123456789" and not rec.gaps, order
    seen: list[Recorder] = []

    def new(conn: Connection, s: Segment) -> Recorder:
        seen.append(Recorder())
        return seen[-1]

    reassembler = Reassembler(new)
    for n, s in enumerate([late, seg(0, True, 200_000, SYN)], 1):
        reassembler.feed(_renumber(s, n))
    assert len(seen) == 2


@pytest.mark.parametrize("idle", [10.0])
def test_idle_connections_are_swept(idle: float) -> None:
    recorders: list[Recorder] = []
    reassembler = Reassembler(
        lambda c, s: recorders.append(Recorder()) or recorders[-1], idle_timeout=idle, sweep_every=1
    )
    reassembler.feed(seg(1, True, 100, SYN))
    late = Segment(2, 1000.0, B, 1, A, 2, 5, 0, int(SYN), b"")
    reassembler.feed(late)
    assert recorders[0].ended == "idle"
    assert reassembler.open_connections == 1


class LivingRecorder(Recorder):
    """A listener that follows its connection's life itself (the TLS and HTTP/2 stages)."""

    in_life = True


@pytest.mark.parametrize("listener, silence, ended", [
    (LivingRecorder, 400.0, None),  # in life: kept past the 300 s of other connections
    (LivingRecorder, 4000.0, "idle"),  # but not past LIFE_IDLE_TIMEOUT
    (Recorder, 400.0, "idle"),  # near miss: a listener not in life
])
def test_a_listener_in_life_keeps_its_connection_an_hour(listener: type[Recorder],
                                                         silence: float,
                                                         ended: str | None) -> None:
    recorders: list[Recorder] = []
    reassembler = Reassembler(lambda c, s: recorders.append(listener()) or recorders[-1],
                              sweep_every=1)
    reassembler.feed(seg(1, True, 100, SYN))
    reassembler.feed(Segment(2, 1.0 + silence, B, 1, A, 2, 5, 0, int(SYN), b""))  # sweeps
    assert recorders[0].ended == ended


class CallLog:
    """A listener that writes down every call with its arguments, in order."""

    def __init__(self, log: list[tuple[object, ...]], seg: Segment) -> None:
        self.log = log
        log.append(("made", seg.frame, seg.seq))

    def __getattr__(self, name: str) -> object:
        if not name.startswith("on_"):
            raise AttributeError(name)
        return lambda *args: self.log.append((name, *args))


@pytest.mark.parametrize("shape", ["syn only", "syns then answer", "many syns", "port reuse",
                                   "syn then data", "syn then rst"])
def test_a_deferred_syn_gives_the_listener_the_same_calls(shape: str) -> None:
    """`defer_syn` makes a bare SYN's listener at the connection's next segment (a SYN flood
    then costs no listener per SYN): the listener must be told exactly what it would have
    been told if made at once, in the same order."""
    syn = [seg(1, True, 1000, SYN)]
    segments = {
        "syn only": syn,
        "syns then answer": syn + [
            seg(2, True, 1000, SYN), seg(3, False, 5000, SYN | ACK, ack=1001),
            seg(4, True, 1001, ACK | PSH, b"GET / HTTP/1.1\r\n\r\n", 5001),
            seg(5, True, 1019, FIN | ACK, ack=5001)],
        "many syns": syn + [seg(n, True, 1000, SYN) for n in range(2, 9)],
        "port reuse": syn + [seg(2, True, 777, SYN), seg(3, False, 5000, SYN | ACK, ack=778)],
        "syn then data": syn + [seg(2, True, 1001, ACK | PSH, b"hello")],
        "syn then rst": syn + [seg(2, False, 0, RST | ACK, ack=1001)],
    }[shape]
    logs = []
    for defer in (False, True):
        log: list[tuple[object, ...]] = []
        reassembler = Reassembler(lambda conn, s, log=log: CallLog(log, s),  # type: ignore[misc]
                                  defer_syn=defer, sweep_every=2)
        for s in segments:
            reassembler.feed(s)
        reassembler.close()
        logs.append(log)
    assert logs[0] == logs[1]


def test_a_finished_connection_keeps_one_key_and_still_swallows_late_segments() -> None:
    """A finished connection stays in the table (against late retransmissions) under its
    side-0 key alone; a late segment of side 1 still finds it, a new SYN opens a new one."""
    recorders: list[Recorder] = []
    reassembler = Reassembler(lambda c, s: recorders.append(Recorder()) or recorders[-1])
    for s in [seg(1, True, 99, SYN), seg(2, False, 499, SYN | ACK, ack=100),
              seg(3, True, 100, ACK | PSH, b"GET / HTTP/1.1\r\n\r\n", ack=500),
              seg(4, False, 500, RST | ACK, ack=118)]:
        reassembler.feed(s)
    assert recorders[0].ended == "reset"
    assert len(reassembler.flows) == 1 and reassembler.open_connections == 1
    # the server's late retransmissions (data, then a FIN): swallowed, nothing new opened
    reassembler.feed(seg(5, False, 500, ACK | PSH, b"HTTP/1.1 403 Forbidden\r\n\r\n", ack=118))
    reassembler.feed(seg(6, False, 527, FIN | ACK, ack=118))
    assert reassembler.connections_seen == 1 and len(recorders) == 1
    assert recorders[0].data[1] == bytearray()
    # the server's port opens a connection the other way: the finished one is replaced
    reassembler.feed(seg(7, False, 9000, SYN))
    assert reassembler.connections_seen == 2 and reassembler.open_connections == 1
    assert len(reassembler.flows) == 2
    reassembler.feed(seg(8, True, 7000, SYN | ACK, ack=9001))
    reassembler.close()
    assert recorders[1].events[:2] == [("syn", 0), ("synack", 1)]
    assert reassembler.open_connections == 0 and not reassembler.flows


def _recorded(segments: list[Segment], skip_idle_flush: bool) -> tuple[object, ...]:
    recorders: list[Recorder] = []
    reassembler = Reassembler(lambda c, s: recorders.append(Recorder()) or recorders[-1])
    reassembler.skip_idle_flush = skip_idle_flush
    for one in segments:
        reassembler.feed(one)
    reassembler.close()
    return tuple((bytes(r.data[0]), bytes(r.data[1]), r.gaps, r.conflicts, r.events, r.ended)
                 for r in recorders)


@settings(max_examples=80, deadline=None)
@given(cut=st.integers(1, 40), seed=st.integers(0, 10_000), lose=st.floats(0, 0.3))
def test_an_end_without_its_idle_flush_tells_the_same(cut: int, seed: int, lose: float) -> None:
    """`Reassembler.skip_idle_flush` (no release and flushes at an end where nothing waits)
    against its plain twin, which flushes every end: the same calls, with segments
    reordered, lost (holes, lost FINs) and the connection ending by FINs or a RST."""
    rng = random.Random(seed)
    segments = conversation(CLIENT, SERVER, cut)
    handshake, data, tail = segments[:2], segments[2:-2], segments[-2:]
    data = [s for s in data if rng.random() >= lose]
    rng.shuffle(data)
    if rng.random() < 0.3:
        tail = [s for s in tail if rng.random() >= lose]
    if rng.random() < 0.2:
        tail = [seg(0, rng.random() < 0.5, 1000 + 1 + len(CLIENT), RST)]
    ordered = [_renumber(s, n) for n, s in enumerate(handshake + data + tail, 1)]
    assert _recorded(ordered, True) == _recorded(ordered, False)


def test_real_captures_end_alike_without_the_idle_flush() -> None:
    """The same twins on every bundled capture, through the whole pipeline (its key log
    given): every attempt, verdict and end the same."""
    from pathlib import Path

    from analyzer.pipeline import Analysis
    from analyzer.source import read_records
    from analyzer.tls.keylog import load_keylog

    flushed_ends = 0
    for path in sorted((Path(__file__).resolve().parents[1] / "captures").glob("*.pcap*")):
        keys = Path(str(path).split(".pcap")[0] + ".keys")
        runs = []
        for skip in (True, False):
            run = Analysis(secrets=load_keylog(keys.read_bytes()) if keys.exists() else None,
                           lifetimes=True)
            run._reassembler.skip_idle_flush = skip
            runs.append([*run.feed_records(read_records([str(path)], [])), *run.finish()])
        assert runs[0] == runs[1], path.name
        flushed_ends += len(runs[0])
    assert flushed_ends > 100


# --- a direction's kept bytes, compiled (`_fastpath.kept_compiled`, analyzer/decode/_follow.pxi
# `_keep`) against `_Direction.advance`, its plain twin --------------------------------------


def _kept_plain_and_compiled(
    sizes: list[int], seed: int
) -> tuple[list[bytes], list[bytes], bytearray]:
    """Each direction's kept bytes after each segment, the Python way and the compiled way
    (the compiled one's array returned too)."""
    from analyzer.decode import _fastpath
    from analyzer.reassembly.connection import _Direction

    rng = random.Random(seed)
    plain = _Direction()
    compiled = bytearray()
    plain_after: list[bytes] = []
    compiled_after: list[bytes] = []
    for size in sizes:
        data = rng.randbytes(size)
        plain.advance(data)
        _fastpath.kept_compiled(compiled, data)
        plain_after.append(bytes(plain.recent))
        compiled_after.append(bytes(compiled))
    return plain_after, compiled_after, compiled


compiled_only = pytest.mark.skipif(not FASTPATH_COMPILED, reason="the compiled module is not built")


@compiled_only
@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 1500), st.integers(1500, 70_000)), max_size=120),
       st.integers(0, 2**32))
def test_kept_bytes_compiled_are_the_plain_ones(sizes: list[int], seed: int) -> None:
    plain, compiled, _ = _kept_plain_and_compiled(sizes, seed)
    assert compiled == plain


@compiled_only
def test_kept_bytes_keep_their_buffer_once_trimmed() -> None:
    from analyzer.decode import _fastpath
    from analyzer.reassembly import RECENT_BYTES

    # a bulk direction of MSS-sized segments: the same bytes each time, and once the first
    # trim is past, the array appends within the buffer it has (no reallocation)
    plain, compiled, kept = _kept_plain_and_compiled([1448] * 2000, 7)
    assert compiled == plain
    room = _fastpath.kept_room(kept)
    assert RECENT_BYTES < room <= 3 * RECENT_BYTES
    data = bytes(1448)
    for _ in range(200):
        _fastpath.kept_compiled(kept, data)
        assert _fastpath.kept_room(kept) == room
    # a view of the array (an export) makes it refuse to resize, as before
    view = memoryview(kept)
    with pytest.raises(BufferError):
        for _ in range(40):
            _fastpath.kept_compiled(kept, data)
    view.release()


@compiled_only
def test_kept_bytes_after_python_trimmed_them() -> None:
    # the Python path (`advance`) and the compiled one append to the same array in a run;
    # the compiled one must take an array whose start Python advanced (`del recent[:k]`)
    from analyzer.decode import _fastpath
    from analyzer.reassembly.connection import _NOTHING_YET, _Direction

    rng = random.Random(3)
    direction = _Direction()
    expected = bytearray()
    for i in range(3000):
        data = rng.randbytes(rng.choice((1, 200, 1448, 9000, 40_000)))
        expected += data
        if len(expected) > 2 * 16384:
            del expected[: len(expected) - 16384]
        if i % 3:
            direction.advance(data)
        else:
            if direction.recent is _NOTHING_YET:  # as `_advance` makes it
                direction.recent = bytearray()
            _fastpath.kept_compiled(direction.recent, data)
        assert direction.recent == expected
