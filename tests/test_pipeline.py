"""The pipeline fed frame by frame, as live capture feeds it: decisions by timeout (tick)."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.pipeline import Analysis
from analyzer.source import read_captures
from analyzer.source.frame import Frame
from analyzer.verdict import Diagnosis
from fuzz.seeds import pcapng_copy
from tests.builder import (
    DEFAULT_WS_KEY,
    Conversation,
    websocket_request,
    websocket_response,
    write_pcap,
)

START = 1_700_000_000.0


def frames(tmp_path: Path, conv: Conversation) -> list[Frame]:
    path = tmp_path / "c.pcap"
    write_pcap(path, [conv])
    return list(read_captures([str(path)], []))


def feed(run: Analysis, frames: list[Frame]) -> list[Diagnosis]:
    return [d for f in frames for d in run.feed(f)]


def test_unanswered_request_is_reported_once_the_timeout_passes(tmp_path: Path) -> None:
    conv = Conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 80), start=START)
    conv.handshake()
    conv.client(websocket_request("h", "/ws"))
    conv.server(websocket_response(DEFAULT_WS_KEY), delay=30.0)  # far too late
    *early, late = frames(tmp_path, conv)
    run = Analysis()
    assert feed(run, early) == []
    assert run.tick(early[-1].time + 1.0, patience=5.0) == []  # not yet
    (decided,) = run.tick(early[-1].time + 6.0, patience=5.0)
    assert decided.verdict.value == "no_response"
    assert decided.findings[0].check == "no_response_capture_ended"
    assert "response timeout" in decided.findings[0].found
    assert run.feed(late) == [] and run.finish() == []  # a late answer is not a second attempt


def test_unanswered_syn_is_reported_by_timeout(tmp_path: Path) -> None:
    conv = Conversation(client=("10.0.0.1", 40001), server=("10.0.0.2", 80), start=START)
    conv.syn_only()
    run = Analysis()
    assert feed(run, frames(tmp_path, conv)) == []
    (decided,) = run.tick(START + 10.0, patience=3.0)
    assert decided.verdict.value == "no_response"
    assert decided.findings[0].check == "tcp_syn_unanswered"
    assert run.finish() == []


def test_switch_is_decided_when_its_window_is_over(tmp_path: Path) -> None:
    conv = Conversation(client=("10.0.0.1", 40002), server=("10.0.0.2", 80), start=START)
    conv.handshake()
    conv.client(websocket_request("h", "/ws"))
    conv.server(websocket_response(DEFAULT_WS_KEY), delay=0.002)
    conv.client_ws_frame(payload=b"hi")
    run = Analysis()
    got = feed(run, frames(tmp_path, conv))
    assert got == []
    assert run.tick(START + 0.5, patience=5.0) == []  # still watching the first moments
    (decided,) = run.tick(START + 5.0, patience=5.0)
    assert decided.verdict.value == "succeeded"
    assert run.finish() == []


def test_empty_body_rejection_is_decided_at_once(tmp_path: Path) -> None:
    """A keep-alive 403 with Content-Length: 0 must not wait for the connection to end."""
    from tests.builder import http_response

    conv = Conversation(client=("10.0.0.1", 40003), server=("10.0.0.2", 80), start=START)
    conv.handshake()
    conv.client(websocket_request("h", "/ws", extra_headers=[("Content-Length", "0")]))
    conv.server(http_response(403, "Forbidden", [("Content-Length", "0")]), delay=0.002)
    run = Analysis()
    (decided,) = feed(run, frames(tmp_path, conv))
    assert decided.verdict.value == "failed"
    assert decided.findings[0].check == "response_forbidden"


def _summary(diagnoses: list[Diagnosis]) -> list[tuple[object, ...]]:
    return sorted(
        (d.attempt.first_frame, d.verdict.value, tuple(f.check for f in d.findings),
         tuple(f.frames for f in d.findings))
        for d in diagnoses
    )


def test_record_fast_paths_give_what_frame_by_frame_feeding_gives() -> None:
    """`feed_records` skips work for ignored and plainly in-order segments; it must not change
    a single diagnosis or count compared with building every Frame and calling `feed`."""
    import glob

    from analyzer.source import read_records

    repo = Path(__file__).resolve().parents[1]
    paths = sorted(glob.glob(str(repo / "captures" / "*.pcap*")))
    assert paths
    # the corpus has reordering, retransmissions and holes: the cases the fast path must avoid
    paths += sorted(glob.glob(str(repo.parent / "shared" / "real-world" / "**" / "*.pcap*"),
                              recursive=True))
    for path in paths:
        slow = Analysis()
        frames = read_captures([path], [], slow.add_secrets)  # a pcapng's embedded key log
        slow_out = [d for f in frames for d in slow.feed(f)] + slow.finish()
        # With the compiled skip of ignored records (when built) and with its Python twin.
        for compiled in (True, False):
            fast = Analysis(compiled=compiled)
            fast_out = list(fast.feed_records(read_records([path], []))) + fast.finish()
            assert _summary(fast_out) == _summary(slow_out), (path, compiled)
            assert (fast.stats.frames, fast.stats.tcp_segments, fast.stats.ordinary_exchanges,
                    fast.stats.first_time, fast.stats.last_time) == (
                slow.stats.frames, slow.stats.tcp_segments, slow.stats.ordinary_exchanges,
                slow.stats.first_time, slow.stats.last_time), (path, compiled)


def test_compiled_skip_gives_what_the_python_path_gives_on_the_benchmark_mix(
    tmp_path: Path,
) -> None:
    """The benchmark generator's mix (bulk, chatty, keep-alive HTTP and every handshake
    scenario, some reordered or retransmitted, 1 MiB reads cutting records) read with and
    without the compiled skip: the same diagnoses and the same counts."""
    import sys


    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        from generate import generate
    finally:
        sys.path.pop(0)
    path = str(tmp_path / "mix.pcap")
    generate(path, 6_000_000, seed=11, concurrency=32)
    runs = [_read_with(path, compiled) for compiled in (True, False)]
    assert len(runs[0][0]) > 20
    assert runs[0] == runs[1]

    # The same records as pcapng (the compiled block skip): two Ethernet interfaces used in
    # turn, a Linux cooked one no packet uses, and a block that is not a packet every so
    # often, read with and without the compiled fast path: the pcap's diagnoses and counts.
    ng_path = tmp_path / "mix.pcapng"
    ng_path.write_bytes(pcapng_copy(Path(path).read_bytes()))
    ng_runs = [_read_with(str(ng_path), compiled) for compiled in (True, False)]
    assert ng_runs[0] == ng_runs[1]
    assert ng_runs[0][:5] == runs[0][:5]


def _read_with(path: str, compiled: bool) -> tuple[object, ...]:
    """The diagnoses and counts of one capture read with or without the compiled fast path."""
    from analyzer.source import read_records

    run = Analysis(compiled=compiled)
    out = list(run.feed_records(read_records([path], []))) + run.finish()
    stats = run.stats
    return (_summary(out), stats.frames, stats.tcp_segments, stats.connections,
            stats.ordinary_exchanges, stats.first_time, stats.last_time)


def test_a_damaged_last_packet_block_is_not_a_frame_of_the_fast_path() -> None:
    """A pcapng whose last packet block names an interface the section does not describe:
    the reader stops there with a warning. Read through `feed_records` (either path) the
    counts and the last time must be those of frame-by-frame reading: the damaged block is
    no frame, and the last time is the last readable record's (atheris found the Python path
    reporting 0.0 and the compiled one a dropped record's time)."""
    import struct

    from analyzer.source import read_bytes, read_record_bytes

    repo = Path(__file__).resolve().parents[1]
    data = bytearray(pcapng_copy((repo / "captures" / "ws_close_1008.pcap").read_bytes()))
    last = len(data) - struct.unpack_from("<I", data, len(data) - 4)[0]
    struct.pack_into("<I", data, last + 8, 0x20000001)  # the last EPB's interface id
    slow = Analysis()
    for frame in read_bytes(bytes(data), []):
        slow.feed(frame)
    slow.finish()
    assert slow.stats.last_time
    for compiled in (True, False):
        warnings: list = []
        fast = Analysis(compiled=compiled)
        list(fast.feed_records(read_record_bytes(bytes(data), warnings))) + fast.finish()
        assert "names interface" in warnings[0].message
        assert (fast.stats.frames, fast.stats.last_time) == (
            slow.stats.frames, slow.stats.last_time), compiled


def _pcap_records(data: bytes) -> list[tuple[int, int, bytes]]:
    """(seconds, microseconds, record bytes) of a little-endian microsecond pcap."""
    import struct

    out, pos = [], 24
    while pos + 16 <= len(data):
        sec, usec, incl, _ = struct.unpack_from("<IIII", data, pos)
        out.append((sec, usec, data[pos + 16 : pos + 16 + incl]))
        pos += 16 + incl
    return out


def _pcap_of(header: bytes, records: list[tuple[int, int, bytes]]) -> bytes:
    import struct

    return header + b"".join(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame
                             for sec, usec, frame in records)


def test_merged_files_drop_unseen_only_what_the_merge_puts_first(tmp_path: Path) -> None:
    """Several files are one capture merged by time, and each file's reader may drop records
    of ignored connections unseen only before every other file's next record (frame numbers
    count the merged order). Compared with frame-by-frame reading of the same files, with and
    without the compiled fast path: rotated files (times follow each other: nearly every
    ignored record is dropped in its reader), the same records dealt out round-robin (times
    interleave: the bounds stop the readers constantly), so with equal times (ties go to the
    earlier file), a pcap and a pcapng together, and the bundled captures, whose times
    overlap."""
    import sys

    from analyzer.source import read_records
    from analyzer.source.capture import MergedRecords

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        from generate import generate
    finally:
        sys.path.pop(0)
    mix = tmp_path / "mix.pcap"
    generate(str(mix), 4_000_000, seed=12, concurrency=24)
    data = mix.read_bytes()
    header, records = data[:24], _pcap_records(data)
    # The generator's clocks interleave 24 conversations; a capture's clock only goes on.
    steady = [(1_700_000_000 + n // 1000, (n % 1000) * 1000, frame)
              for n, (_, _, frame) in enumerate(records)]
    cases: dict[str, list[Path]] = {}

    def files(name: str, pieces: list[bytes]) -> None:
        cases[name] = []
        for n, piece in enumerate(pieces):
            suffix = "pcapng" if piece[:4] == b"\x0a\x0d\x0d\x0a" else "pcap"
            path = tmp_path / f"{name}-{n}.{suffix}"
            path.write_bytes(piece)
            cases[name].append(path)

    cut = len(steady) // 4
    files("rotated", [_pcap_of(header, steady[i * cut : (i + 1) * cut if i < 3 else None])
                      for i in range(4)])
    files("dealt", [_pcap_of(header, steady[i::3]) for i in range(3)])
    # Whole seconds only: 30 records share each time, and ties go to the earlier file.
    tied = [(1_700_000_000 + n // 30, 0, frame) for n, (_, _, frame) in enumerate(records)]
    files("tied", [_pcap_of(header, tied[i::3]) for i in range(3)])
    files("mixed", [_pcap_of(header, steady[: 2 * cut]),
                    pcapng_copy(_pcap_of(header, steady[2 * cut :]))])
    cases["bundled"] = sorted((Path(__file__).resolve().parents[1] / "captures").glob("*.pcap"))
    for name, paths in cases.items():
        slow = Analysis()
        slow_out = [d for f in read_captures([str(p) for p in paths], [])
                    for d in slow.feed(f)] + slow.finish()
        for compiled in (True, False):
            merged = read_records([str(p) for p in paths], [])
            assert isinstance(merged, MergedRecords)
            fast = Analysis(compiled=compiled)
            fast_out = list(fast.feed_records(merged)) + fast.finish()
            assert _summary(fast_out) == _summary(slow_out), (name, compiled)
            assert (fast.stats.frames, fast.stats.tcp_segments, fast.stats.connections,
                    fast.stats.first_time, fast.stats.last_time) == (
                slow.stats.frames, slow.stats.tcp_segments, slow.stats.connections,
                slow.stats.first_time, slow.stats.last_time), (name, compiled)
            if name == "rotated":
                assert merged.dropped > len(steady) // 2, compiled  # the fast path did run
    assert len(_summary(slow_out)) > 10


# A request cut in two ("...\r\nO" | "rigin: ...\r\n\r\n") without Upgrade, and the 400 it
# got, as benchmarks/generate.py writes them; by record index: SYN 0, SYN-ACK 1, ACK 2, the
# request's halves 3 and 4, the client's bare ACK 5, the response 6, the client's FIN 7.
_CUT_REQUEST = (b"GET /chat HTTP/1.1\r\nHost: chat.example:8080\r\n"
                b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) bench\r\n"
                b"Origin: http://chat.example\r\n\r\n")
_REFUSED = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 34"
            b'\r\n\r\nCan "Upgrade" only to "WebSocket".')


@pytest.mark.parametrize("order, first_frame", [
    # the generated capture's records merged by whole seconds (the "tied" files above)
    ([4, 3, 5, 0, 6, 1, 2, 7], 2),
    ([4, 3, 0, 1, 2, 6, 7], 2),  # its SYN right after the first bytes seen
    ([4, 0, 3, 1, 2, 6, 7], 3),  # ... and between them
    ([4, 5, 3, 6, 7], None),  # no SYN, a bare ACK ends the hold: the first half comes late
])
def test_first_bytes_shown_before_their_syn_read_alike_on_every_path(
        tmp_path: Path, order: list[int], first_frame: int | None) -> None:
    """A capture that shows a connection's first bytes before its SYN holds them (delivery.py
    `_end_hold`): a SYN shown after them, before the earliest or before bytes still to come,
    is theirs, not a new connection on the same ports (the request was written off as a
    hole: `capture_gap_request`); and the fast path's bare ACK ends the hold as `feed`'s does
    (`take_plain`, decode/_follow.pxi `_take`: with a SYN after it, the fast path read a
    hole where frame-by-frame reading read the request)."""
    from dataclasses import replace

    from analyzer.source import read_records

    conv = Conversation(client=("10.1.0.1", 20107), server=("192.168.10.11", 8080), start=START)
    conv.handshake()
    conv.client(_CUT_REQUEST, split=[97])
    conv.client_ack()
    conv.server(_REFUSED)
    conv.client_fin()
    path = tmp_path / "held.pcap"
    at = conv.records[0].time_ns  # one time for all: the file's order is the capture's
    write_pcap(path, [[replace(conv.records[n], time_ns=at) for n in order]])
    slow = Analysis()
    slow_out = [d for f in read_captures([str(path)], []) for d in slow.feed(f)] + slow.finish()
    for compiled in (True, False):
        fast = Analysis(compiled=compiled)
        fast_out = list(fast.feed_records(read_records([str(path)], []))) + fast.finish()
        assert _summary(fast_out) == _summary(slow_out), compiled
    if first_frame is not None:
        (diagnosis,) = slow_out
        assert (diagnosis.attempt.first_frame, diagnosis.verdict.value,
                diagnosis.findings[0].check) == (first_frame, "failed",
                                                 "request_without_upgrade")


def test_an_ignored_connection_keeps_no_tracker(tmp_path: Path) -> None:
    """A connection that is not HTTP is ignored at its first bytes; its table entry stays
    (later packets cost one look-up) but its tracker is let go at once, not when the
    connection ends or expires (bulk connections stay 300 s: memory, benchmarks/README.md)."""
    conv = Conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 22), start=START)
    conv.handshake()
    conv.client(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n" + bytes(200))  # TLS has a stage now
    conv.server(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n" + bytes(300))
    run = Analysis()
    feed(run, frames(tmp_path, conv))
    entries = list(run._reassembler.flows.values())
    assert entries and all(conn.ignored and not conn.finished for conn, _ in entries)
    assert all(conn.listener is None for conn, _ in entries)
