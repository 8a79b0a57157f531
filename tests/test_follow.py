"""The compiled skip's hand-off of a followed connection's next segment (`_fastpath.Follow`,
analyzer/decode/_follow.pxi) against the pipeline's per-record loop that does it in Python
(`Analysis(compiled=False)`): the same events in the same order (attempts, verdicts, findings,
evidence frames, ends) and the same counts, on every capture of the repository, on the
handshake-dense benchmark mix (as pcap and pcapng), and on that mix damaged."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from analyzer.decode.decoder import (
    FASTPATH_COMPILED,
    decode_frame,
    peek_flow,
    segment_function,
)
from analyzer.decode.segment import Segment
from analyzer.pipeline import Analysis
from analyzer.source import read_records
from analyzer.source.frame import Frame
from analyzer.tls.keylog import load_keylog

REPO = Path(__file__).resolve().parents[1]
CAPTURES = sorted(p for p in (REPO / "captures").glob("*.pcap*"))

pytestmark = pytest.mark.skipif(not FASTPATH_COMPILED, reason="the compiled module is not built")


def _benchmarks() -> Any:
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import generate
        import run
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    return generate, run


def analysed(path: Path, compiled: bool) -> tuple[Analysis, list[object], tuple[object, ...]]:
    """A run of ``path`` as `read` makes it (lifetimes on, its key log when one lies beside
    it), every event, and its counts: what a compiled path and its plain twin must agree on."""
    keys = Path(str(path).split(".pcap")[0] + ".keys")
    secrets = load_keylog(keys.read_bytes()) if keys.exists() else None
    run = Analysis(compiled=compiled, secrets=secrets, lifetimes=True)
    events = [*run.feed_records(read_records([str(path)], [])), *run.finish()]
    stats = run.stats
    counts = (stats.frames, stats.tcp_segments, stats.connections, stats.ordinary_exchanges,
              stats.first_time, stats.last_time, stats.tls_decrypted, stats.tls_uninspected,
              stats.abandoned_heads, dict(stats.skipped), stats.timestamps_backwards,
              stats.timestamps_backwards_first_frame, stats.timestamps_backwards_largest_s,
              stats.connections_captured_twice)
    return run, events, counts


def _events(path: Path, compiled: bool) -> tuple[list[object], tuple[object, ...], int, int]:
    """Every event of a run as `read` makes it (lifetimes on), its counts, how many
    segments the compiled skip handed to the reassembler's cheap path (`take`) and how many
    it fed whole (`feed`: SYNs, FINs, RSTs, reordered bytes)."""
    run, events, counts = analysed(path, compiled)
    follow = run._follow
    return (events, counts, int(follow.taken) if follow is not None else 0,
            int(follow.fed) if follow is not None else 0)


def _fins(path: Path) -> int:
    """Bare FINs the compiled skip took itself (`Follow._fin`)."""
    return _taken_in_c(path)[0]


def _taken_in_c(path: Path) -> tuple[int, int, int, int, int]:
    """Bare FINs the compiled skip took itself (`Follow._fin`), first SYNs whose connection
    it opened itself and SYN-ACKs whose listener it made (`_open_at_syn`,
    `_listen_at_answer`, decode/_handshake.pxi), ends it finished itself after both FINs
    and late segments after them it dropped (`_close_at_fin`, `_after_finish`,
    decode/_close.pxi)."""
    run = Analysis(lifetimes=True)
    for _ in run.feed_records(read_records([str(path)], [])):
        pass
    run.finish()
    follow = run._follow
    return (int(follow.fins), int(follow.opened), int(follow.answered), int(follow.closed),
            int(follow.late))


def _same(path: Path) -> tuple[int, int]:
    fast, fast_counts, taken, fed = _events(path, True)
    slow, slow_counts, _, _ = _events(path, False)
    assert fast == slow
    assert fast_counts == slow_counts
    return taken, fed


def test_every_capture_gives_the_same_events_both_ways() -> None:
    counts = {path.name: _same(path) for path in CAPTURES}
    assert len(counts) > 50
    assert sum(1 for n, _ in counts.values() if n) > 20  # most followed a connection in C
    assert sum(1 for _, n in counts.values() if n) > 20  # ... and fed its SYNs or FINs


@pytest.fixture(scope="module")
def dense(tmp_path_factory: pytest.TempPathFactory) -> Path:
    generate, _ = _benchmarks()
    path = tmp_path_factory.mktemp("follow") / "dense.pcap"
    generate.generate(str(path), 3_000_000, 7, 64, mix="dense")
    return path


def test_the_dense_mix_gives_the_same_events_as_pcap_and_pcapng(dense: Path) -> None:
    frames = sum(1 for _ in read_records([str(dense)], []))
    taken, fed = _same(dense)
    # a large share of the frames went this way; most SYNs, FINs and RSTs were fed from C,
    # and most bare FINs taken there
    assert taken > frames // 5 and fed > frames // 50
    fins, opened, answered, closed, late = _taken_in_c(dense)
    assert fins > frames // 50
    # most connections were opened by their first SYN in C, their listener made at the
    # SYN-ACK, and finished at the second FIN, whose ACK came after that end
    assert opened > fed // 4 and answered > fed // 4 and closed > fins // 4
    assert late > closed // 4
    _, run = _benchmarks()
    ng = dense.with_suffix(".pcapng")
    run.write_as_pcapng(dense, ng)
    taken, fed = _same(ng)
    assert taken > frames // 5 and fed > frames // 20


@pytest.mark.parametrize("seed", [1, 2])
def test_the_dense_mix_damaged_gives_the_same_events(dense: Path, tmp_path: Path,
                                                     seed: int) -> None:
    """Dropped, duplicated and swapped records: out-of-order bytes, holes and retransmissions
    stop the compiled hand-off at the right segment."""
    generate, _ = _benchmarks()
    rng = random.Random(seed)
    records = [(when, data) for when, _link, data, _wire, _source
               in read_records([str(dense)], [])]
    out: list[tuple[float, bytes]] = []
    i = 0
    while i < len(records):
        roll = rng.random()
        if roll < 0.01:
            i += 1  # lost
            continue
        if roll < 0.02:
            out.append(records[i])  # sent twice
        elif roll < 0.03 and i + 1 < len(records):
            out += [(records[i][0], records[i + 1][1]), (records[i + 1][0], records[i][1])]
            i += 2
            continue
        out.append(records[i])
        i += 1
    path = tmp_path / "damaged.pcap"
    writer = generate.PcapWriter(str(path))
    for when, data in out:
        writer.write(when, data)
    writer.close()
    taken, fed = _same(path)
    fins, opened, answered, closed, late = _taken_in_c(path)
    assert taken > 0 and fed > 0 and fins > 0 and opened > 0 and answered > 0 and closed > 0
    assert late > 0


@pytest.mark.parametrize("pcapng", [False, True])
def test_the_dense_mix_whose_records_step_back_counts_them_both_ways(dense: Path, pcapng: bool,
                                                                     tmp_path: Path) -> None:
    """The dense mix with a third of its records stamped up to 2 ms early (a capture on
    several queues, a clock slewed back), so earlier than the record before them: counted
    wherever they fall, most among the records the compiled skip passes over (it reads every
    record's time), the same count, first frame and largest step as the plain path, and as
    the times say. (The generator writes its records in time order.)"""
    generate, run = _benchmarks()
    rng = random.Random(3)
    path = tmp_path / "stepping.pcap"
    writer = generate.PcapWriter(str(path))
    for when, _link, data, _wire, _source in read_records([str(dense)], []):
        writer.write(when - rng.uniform(0, 0.002) if rng.random() < 0.3 else when, data)
    writer.close()
    if pcapng:
        run.write_as_pcapng(path, path.with_suffix(".pcapng"))
        path = path.with_suffix(".pcapng")
    times = [when for when, *_ in read_records([str(path)], [])]
    backs = [(n + 1, times[n - 1] - times[n]) for n in range(1, len(times))
             if times[n] < times[n - 1]]
    assert len(backs) > len(times) // 10
    counted = []
    for compiled in (True, False):
        reader = read_records([str(path)], [])
        analysis = Analysis(compiled=compiled, lifetimes=True)
        [*analysis.feed_records(reader), *analysis.finish()]
        stats = analysis.stats
        counted.append((stats.timestamps_backwards, stats.timestamps_backwards_first_frame,
                        stats.timestamps_backwards_largest_s))
        if compiled:  # most records went by in C: the compiled skip's count is most of it
            assert reader.dropped > len(times) // 2  # type: ignore[union-attr]
    assert counted[0] == counted[1]
    assert counted[0][:2] == (len(backs), backs[0][0])
    assert counted[0][2] == pytest.approx(max(step for _, step in backs), abs=1e-6)


@pytest.mark.skipif(shutil.which("editcap") is None, reason="frames are cut with editcap")
def test_captures_that_lost_a_fin_give_the_same_events(tmp_path: Path) -> None:
    """A FIN lost from the capture is proved by the other side's FIN or RST (delivery.py
    `_lost_fin`); the compiled skip takes bare FINs itself (`Follow._fin`) and must prove it
    alike: every FIN of every bundled capture cut in turn (editcap), compiled against plain."""
    fins_lost = 0
    for path in CAPTURES:
        if path.suffix != ".pcap":
            continue
        frames = [number for number, (when, linktype, data, wire, source)
                  in enumerate(read_records([str(path)], []), 1)
                  if isinstance(s := decode_frame(Frame(number, when, linktype, data, wire,
                                                        source)), Segment) and s.flags & 0x01]
        for number in frames[:4]:
            out = tmp_path / f"{path.stem}-{number}.pcap"
            subprocess.run(["editcap", str(path), str(out), str(number)], check=True,
                           capture_output=True, timeout=30)
            keys = Path(str(path).split(".pcap")[0] + ".keys")
            if keys.exists():
                shutil.copy(keys, tmp_path / f"{path.stem}-{number}.keys")
            fast, _, _, _ = _events(out, True)
            assert fast == _events(out, False)[0], out.name
            fins_lost += sum(1 for e in fast if (attempt := getattr(e, "attempt", None))
                             for fin in (attempt.tcp.client_fin, attempt.tcp.server_fin)
                             if fin is not None and fin.lost)
            out.unlink()
    assert fins_lost  # some cuts were proved lost FINs, not holes


def test_bodies_not_read_go_by_in_c(dense: Path) -> None:
    """The keep-alive bodies the tracker does not read (an ordinary 2xx's, a request's) are
    counted in C (`_unread`), most of their segments; the events are those of the plain twin
    (the test above)."""
    frames = sum(1 for _ in read_records([str(dense)], []))
    run = Analysis(lifetimes=True)
    for _ in run.feed_records(read_records([str(dense)], [])):
        pass
    run.finish()
    assert run._follow is not None and run._follow.bodies > frames // 60


def test_a_content_length_of_any_size_goes_by_as_in_python(tmp_path: Path) -> None:
    """A Content-Length past 64 bits (`body_framing` reads any number of digits), on a
    response and on a request: their bodies go by in C as the plain twin reads them, with
    no overflow (a C ``long long`` room raised OverflowError here)."""
    from tests.builder import Conversation, write_pcap

    huge = b"99999999999999999999999"
    conv = Conversation()
    conv.handshake()
    conv.client(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    conv.server(b"HTTP/1.1 200 OK\r\nContent-Length: " + huge + b"\r\n\r\n" + b"x" * 100)
    conv.client_ack()
    for _ in range(3):
        conv.server(b"y" * 1000)
    conv.client(b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: " + huge + b"\r\n\r\n")
    for _ in range(3):
        conv.client(b"w" * 1000)
    path = tmp_path / "huge.pcap"
    write_pcap(path, [conv])
    _same(path)
    run, _, _ = analysed(path, True)
    assert run._follow is not None and run._follow.bodies >= 4


@pytest.mark.parametrize("pcapng", [False, True])
def test_a_bug_under_the_compiled_skip_names_the_frame_it_was_on(
        dense: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pcapng: bool) -> None:
    """A fault put into the tracker (a bug in what the compiled skip calls) at a segment the
    skip hands over in C: one line naming that segment's frame, exit 70, as a bug under the
    Python loop does. (The skip gave no position back when it raised: the line named the
    last frame Python had seen.)"""
    from analyzer.exchange.tracker import ConnectionTracker
    from tests.helpers import run_cli

    path = dense
    if pcapng:
        _, run = _benchmarks()
        path = tmp_path / "dense.pcapng"
        run.write_as_pcapng(dense, path)
    handed: list[int] = []
    on_data = ConnectionTracker.on_data

    def watched(self: Any, side: int, offset: int, data: bytes, frame: int,
                time: float) -> None:
        handed.append(frame)
        on_data(self, side, offset, data, frame, time)

    monkeypatch.setattr(ConnectionTracker, "on_data", watched)
    run_cli("read", path, "-F", "jsonl")
    at = handed[len(handed) // 2]

    def broken(self: Any, side: int, offset: int, data: bytes, frame: int,
               time: float) -> None:
        if frame == at:
            raise ValueError("a fault put in by the test")
        on_data(self, side, offset, data, frame, time)

    monkeypatch.setattr(ConnectionTracker, "on_data", broken)
    result = run_cli("read", path, "-F", "jsonl")
    assert result.exit_code == 70
    assert result.stderr.strip().splitlines()[0] == (
        f"upgrade-analyzer: error: internal error at frame {at}: ValueError: a fault put in "
        "by the test (results so far are shown; please report this capture)")


def test_the_compiled_body_room_is_the_readers() -> None:
    """`_body_room` (what `Follow` reads of a `BodyReader`) against `BodyReader.room`, for
    every framing, with and without a kept prefix, at every step of random segmentations up
    to the end, a truncation and an error."""
    from analyzer.decode._fastpath import body_room_compiled

    from analyzer.http.body import BodyReader, Framing, FramingKind

    rng = random.Random(5)
    body = bytes(rng.randrange(256) for _ in range(9_000))
    framings = [(Framing(FramingKind.LENGTH, len(body)), body),
                (Framing(FramingKind.LENGTH, 10**30), body),
                (Framing(FramingKind.LENGTH, 0), b""),
                (Framing(FramingKind.UNTIL_CLOSE), body),
                (Framing(FramingKind.CHUNKED), b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)),
                (Framing(FramingKind.CHUNKED), b"zz\r\n"),
                (Framing(FramingKind.NONE), b"")]
    seen = 0
    for framing, data in framings:
        for keep in (0, 100, 4096):
            for _ in range(5):
                reader = BodyReader(framing, keep=keep)
                assert body_room_compiled(reader) == reader.room()
                at = 0
                while at < len(data):
                    step = rng.randrange(1, 3_000)
                    reader.feed(data[at:at + step])
                    at += step
                    assert body_room_compiled(reader) == reader.room()
                    seen += 1
                reader.feed_eof()
                assert body_room_compiled(reader) == reader.room()
    assert seen > 100


def test_the_compiled_segment_is_the_decoders_on_every_frame(dense: Path) -> None:
    """`peek_segment` (the full path's Segment without a Frame) against `decode_frame`, on
    every frame `peek_flow` accepts, whole and cut short by a snaplen."""
    peek_segment = segment_function(True)
    assert peek_segment is not None
    seen = 0
    for path in [*CAPTURES, dense]:
        for number, (when, linktype, data, wire, source) in enumerate(
                read_records([str(path)], []), 1):
            for cut in (len(data), len(data) - 1, 60):
                piece = data[:cut]
                if peek_flow(linktype, piece) is None:
                    continue
                frame = Frame(number, when, linktype, piece, wire, source)
                assert peek_segment(linktype, piece, number, when) == decode_frame(frame)
                seen += 1
    assert seen > 10_000


def test_slots_read_in_place_are_the_attributes() -> None:
    """`Follow` reads a connection's fields at their slots (decode/_slots.pxi): the same
    values as the attributes, on every connection of the bundled captures as the run left
    them (open, closing, finished, in life), and after every 50th attempt decided."""
    from analyzer.decode._fastpath import slots_read_compiled

    def attributes(conn: Any) -> tuple[Any, Any]:
        fields = (conn.closing, conn.syns, conn.sides, conn.last_time, conn.ignored,
                  conn.listener, conn.life, conn.passing)
        sides = tuple((s.base, s.next_offset, s.pending, s.fin, s.fin_end, s.rst, s.recent,
                       s.acked, s.fin_evidence)
                      if type(s).__name__ == "_Direction" else None for s in conn.sides)
        return fields, sides

    seen = 0
    for path in CAPTURES:
        run = Analysis(lifetimes=True)
        for number, _ in enumerate(run.feed_records(read_records([str(path)], []))):
            if number % 50 == 0:
                for conn, _side in run._reassembler.flows.values():
                    fast, plain = slots_read_compiled(conn), attributes(conn)
                    assert fast == plain and all(
                        a is b for a, b in zip(fast[0], plain[0], strict=True))
                    seen += 1
        for conn, _side in run._reassembler.flows.values():
            assert slots_read_compiled(conn) == attributes(conn)
            seen += 1
        run.finish()
    assert seen > 100


def test_an_empty_slot_is_an_attribute_error_not_a_crash() -> None:
    """A connection whose slot was never filled (a maker that forgot a field) is read at its
    slots as Python reads it: AttributeError, not a NULL pointer dereferenced in C."""
    from analyzer.decode._fastpath import slots_read_compiled

    from analyzer.reassembly.connection import Connection

    empty = object.__new__(Connection)
    with pytest.raises(AttributeError):
        empty.closing  # noqa: B018 - the plain read this compares with
    with pytest.raises(AttributeError, match="slot of Connection is empty"):
        slots_read_compiled(empty)
