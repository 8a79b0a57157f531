"""Hostile input end to end: damaged capture files through the real command line, and
adversarial traffic (SYN flood, endless head, ten thousand headers) through the pipeline.

The reader-level damage cases (every byte offset and message) are in test_source.py; here each
kind of damage is a real file run as ``python -m analyzer read FILE``: exit status, exactly one
line on standard error, no traceback, and the attempts before (and, where the format lets the
reader go on, after) the damage.
"""

from __future__ import annotations

import gzip
import io
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from analyzer.http.head import parse_request_head
from analyzer.pipeline import Analysis
from analyzer.source import read_captures, read_records
from fuzz import hostile
from tests.test_source import block, epb, idb, shb

REPO = Path(__file__).parents[1]


# --- building the files ---------------------------------------------------------------------


def two_handshakes(between: bytes = b"") -> tuple[bytes, int]:
    """A pcap with a good handshake from 10.9.9.9, `between` spliced in as raw bytes, then a
    second one from 10.9.9.8. Returns the file and the byte offset of the splice."""
    out = io.BytesIO()
    w = hostile.PcapWriter(out)
    hostile.good_handshake(w, hostile.START)
    splice = out.tell()
    late = io.BytesIO()
    w2 = hostile.PcapWriter(late)
    c = hostile.Conversation(w2, bytes([10, 9, 9, 8]), 50001, bytes([10, 0, 0, 2]), 80,
                             hostile.START + 10)
    c.handshake()
    c.send(0, hostile.PSH | hostile.ACK, hostile.WS_REQUEST)
    c.send(1, hostile.PSH | hostile.ACK, hostile.WS_RESPONSE)
    # a Close handshake 3 s later, as good_handshake's (else the connection was dropped)
    c.send(0, hostile.PSH | hostile.ACK, b"\x88\x82\x00\x00\x00\x00\x03\xe8", gap=3.0)
    c.send(1, hostile.PSH | hostile.ACK, b"\x88\x02\x03\xe8")
    c.send(0, hostile.FIN | hostile.ACK)
    c.send(1, hostile.FIN | hostile.ACK)
    return out.getvalue() + between + late.getvalue()[24:], splice


def as_pcapng(pcap: bytes, extra: dict[int, bytes] | None = None, later: int = 0) -> bytes:
    """The same records as pcapng (one EPB each); `extra` blocks go before record N (0-based);
    every time `later` microseconds later."""
    out = [shb(), idb()]
    pos, n = 24, 0
    while pos + 16 <= len(pcap):
        sec, usec, incl, _ = struct.unpack_from("<IIII", pcap, pos)
        if extra and n in extra:
            out.append(extra[n])
        out.append(epb("<", 0, sec * 1_000_000 + usec + later, pcap[pos + 16 : pos + 16 + incl]))
        pos += 16 + incl
        n += 1
    return b"".join(out)


GOOD, SPLICE = two_handshakes()
FIRST_RECORDS = 9  # frames of the first handshake


def cli(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "analyzer", "read", str(path)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def clients(stdout: str) -> list[str]:
    return [c for c in ("10.9.9.9:50000", "10.9.9.8:50001") if c in stdout]


# --- damaged captures through the CLI -------------------------------------------------------


def _with_record_length(value: int, record: int = FIRST_RECORDS) -> bytes:
    raw = bytearray(GOOD)
    pos = 24
    for _ in range(record):
        pos += 16 + struct.unpack_from("<I", raw, pos + 8)[0]
    struct.pack_into("<I", raw, pos + 8, value)
    return bytes(raw)


DAMAGED = [
    # (case, bytes, exit status, stderr fragment, clients found)
    ("truncated global header", GOOD[:10], 1, "pcap file header truncated (10 of 24 bytes)", []),
    ("record length larger than the snaplen", _with_record_length(300_000), 0,
     "frame 10: record length 300000", ["10.9.9.9:50000"]),
    ("record length larger than the file", _with_record_length(60_000), 0,
     "frame 10: truncated record", ["10.9.9.9:50000"]),
    ("file cut inside a record", GOOD[:-20], 0, "frame 18: truncated record",
     ["10.9.9.9:50000", "10.9.9.8:50001"]),
    ("pcapng: corrupt block trailer",
     as_pcapng(GOOD, {FIRST_RECORDS: block("<", 6, b"\0" * 20)[:-4] + b"\xff\0\0\0"}), 0,
     "does not match its trailer", ["10.9.9.9:50000"]),
    ("pcapng: truncated block", as_pcapng(GOOD)[:-50], 0, "truncated block",
     ["10.9.9.9:50000", "10.9.9.8:50001"]),
    ("gzip cut short", gzip.compress(GOOD)[:-30], 0, "gzip stream",
     ["10.9.9.9:50000", "10.9.9.8:50001"]),
    ("bad magic: text", b"# notes from the incident\nGET /ws HTTP/1.1\n", 1,
     "not a capture file: looks like text", []),
    ("bad magic: ERF", struct.pack("<II", 0, 1_700_000_000) + bytes([2, 4])
     + struct.pack(">HHH", 80, 0, 60) + bytes(64), 1, "looks like ERF", []),
    ("bad magic: gzip of text", gzip.compress(b"hello\n" * 20), 1,
     "gzip of something that is not a capture: looks like text", []),
    ("bad magic: pcapng with a wrong byte-order magic", shb()[:8] + b"XXXX" + shb()[12:], 1,
     "byte-order magic is wrong", []),
]


@pytest.mark.parametrize("case", DAMAGED, ids=[c[0] for c in DAMAGED])
def test_damaged_capture_through_the_cli(tmp_path: Path,
                                         case: tuple[str, bytes, int, str, list[str]]) -> None:
    _, raw, status, fragment, found = case
    path = tmp_path / "damaged.cap"
    path.write_bytes(raw)
    result = cli(path)
    assert result.returncode == status, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0] and str(path) in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert clients(result.stdout) == found, result.stdout


READABLE = [
    # (case, bytes): damage the format lets the reader go past; both attempts are found.
    ("zero-length record", two_handshakes(
        struct.pack("<IIII", int(hostile.START) + 5, 0, 0, 0))[0]),
    ("record with a negative (pre-1970 as int32) time", two_handshakes(
        struct.pack("<IIII", 0x80000000, 0, 4, 4) + b"\0\0\0\0")[0]),
    ("record whose time goes back", two_handshakes(
        struct.pack("<IIII", int(hostile.START) - 3600, 0, 4, 4) + b"\0\0\0\0")[0]),
    ("pcapng: unknown and custom blocks between packets",
     as_pcapng(GOOD, {FIRST_RECORDS: block("<", 0x0BAD, b"x" * 40)
                      + block("<", 0x40000BAD, b"\0\0\0\0pen")})),
    ("pcapng: name-resolution block with garbage options",
     as_pcapng(GOOD, {3: block("<", 4, b"\xff" * 64)})),
]


@pytest.mark.parametrize("case", READABLE, ids=[c[0] for c in READABLE])
def test_reading_goes_on_past_oddities(tmp_path: Path, case: tuple[str, bytes]) -> None:
    path = tmp_path / "odd.cap"
    path.write_bytes(case[1])
    result = cli(path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert clients(result.stdout) == ["10.9.9.9:50000", "10.9.9.8:50001"], result.stdout
    assert "2 succeeded" in result.stdout


# --- adversarial traffic --------------------------------------------------------------------


def _run(path: Path, **options: int) -> tuple[list[str], Analysis]:
    analysis = Analysis(**options)
    found = [f"{d.attempt.client} {d.verdict.value}"
             for d in analysis.feed_records(read_records([str(path)], []))]
    found += [f"{d.attempt.client} {d.verdict.value}" for d in analysis.finish()]
    return found, analysis


def _recorded_calls(monkeypatch: pytest.MonkeyPatch, module: Any, name: str,
                    measure: Callable[..., int] = lambda prefix: len(prefix)) -> list[int]:
    """Patch ``module.name`` so that each call records ``measure`` of its arguments (by
    default the first one's length): the tests below count work instead of timing it."""
    calls: list[int] = []
    original = getattr(module, name)

    def recorded(*args: Any) -> Any:
        calls.append(measure(*args))
        return original(*args)

    monkeypatch.setattr(module, name, recorded)
    return calls


def test_syn_flood_is_counted_not_listed_and_memory_is_capped(tmp_path: Path) -> None:
    path = tmp_path / "flood.pcap"
    with path.open("wb") as out:
        hostile.syn_flood(out, 10_000)
    found, analysis = _run(path, max_connections=500, max_listed_tcp_attempts=100)
    stats = analysis.stats
    assert len(found) == 101 and "10.9.9.9:50000 succeeded" in found
    assert stats.unlisted_tcp_attempts == {"tcp_syn_unanswered": 9900}
    assert stats.evicted_connections > 0
    assert stats.connections == 10_001


def test_the_connection_table_stays_within_its_cap(tmp_path: Path) -> None:
    path = tmp_path / "flood.pcap"
    with path.open("wb") as out:
        hostile.syn_flood(out, 20_000)
    analysis = Analysis(max_connections=300)
    largest = 0
    for frame in read_captures([str(path)], []):
        analysis.feed(frame)
        largest = max(largest, analysis.open_connections)
    # the table is swept every 8192 segments: between sweeps it may grow by that much
    assert largest <= 300 + 8192
    assert analysis.stats.evicted_connections >= 20_000 - 300 - 8192


def test_syn_flood_summary_line_through_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "flood.pcap"
    with path.open("wb") as out:
        hostile.syn_flood(out, 1200)
    result = cli(path)
    assert result.returncode == 0, result.stderr
    assert "Connection attempts not listed (never reached HTTP; only the first 1000 are): " \
           "200 (tcp_syn_unanswered x200)" in result.stdout
    assert "10.9.9.9:50000" in result.stdout and "1 succeeded" in result.stdout


def test_a_head_that_never_ends_is_abandoned_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "endless.pcap"
    with path.open("wb") as out:
        hostile.endless_head(out, 1_000_000)
    found, analysis = _run(path)
    assert found == ["10.9.9.9:50000 succeeded"]
    assert analysis.stats.abandoned_heads == 1
    result = cli(path)
    assert "HTTP heads abandoned (no end within 64 KiB): 1" in result.stdout


@pytest.mark.parametrize("request_line", [
    b"GET /chat/" + b"t" * 8000 + b" HTTP/1.1\r\n",  # a long path
    b"\r\n" * 4000 + b"GET /chat HTTP/1.1\r\n",  # empty lines first (RFC 9112 §2.2)
    b"GET " + b"a " * 4000 + b"/chat HTTP/1.1\r\n",  # words (a 400 from a server)
])
def test_a_request_line_sent_a_byte_at_a_time_is_not_walked_at_every_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request_line: bytes
) -> None:
    """Each byte of a trickled request line asks again whether it is HTTP. The start line is
    recognised by patterns in C (http/start.py `_start_by_patterns`); the byte walk in Python
    is only their plain twin: walking at every byte was quadratic in Python steps (8,000
    bytes: 8,000 walks, 2 s for a path, 13 s for 4,000 words)."""
    from analyzer.http import start

    walks = _recorded_calls(monkeypatch, start, "_walk_start")
    path = tmp_path / "trickled.pcap"
    with path.open("wb") as out:
        hostile.trickled_request(out, hostile.WS_REQUEST.replace(b"GET /chat HTTP/1.1\r\n",
                                                                 request_line))
    found, _ = _run(path)
    assert sorted(found) == ["10.7.7.7:40000 succeeded", "10.9.9.9:50000 succeeded"]
    assert walks == []


@pytest.mark.parametrize("late", [False, True], ids=["request first", "101 first"])
@pytest.mark.parametrize("target", [64 * 1024 - 250, 64 * 1024 - 50])  # head ± 100 bytes
def test_a_head_past_64_kib_is_abandoned_whatever_its_segmentation(tmp_path: Path, target: int,
                                                                    late: bool) -> None:
    """fuzzhunt: a WebSocket request whose long request line (up to MAX_REQUEST_LINE) and
    headers end past MAX_HEAD_BYTES was read when its end came in the segment that took the
    head past 64 KiB (1,400-byte segments), and abandoned when a segment took it there first:
    the attempt depended on the segmentation. So did a request found late behind its 101
    (holes.py `_late_request`). A head is read when it ends within 64 KiB."""
    from analyzer.exchange.pending import MAX_HEAD_BYTES
    from tests.builder import Conversation, websocket_request, websocket_response, write_pcap

    request = websocket_request("example.com", "/" + "t" * target)
    line_end = request.index(b"\n") + 1
    results = set()
    for cut in (None, line_end, MAX_HEAD_BYTES - 10, MAX_HEAD_BYTES, len(request) - 1):
        cuts = [cut] if cut is not None and cut < len(request) else []
        conv = Conversation()
        conv.handshake()
        if late:  # the capture shows the answer before the request (merged interfaces)
            conv.server(websocket_response())
        conv.client(request, split=cuts, max_segment=1400)
        if not late:
            conv.server(websocket_response())
        conv.client_fin()
        conv.server_fin()
        path = tmp_path / "long-head.pcap"
        write_pcap(path, [conv])
        for compiled in (True, False):
            found, analysis = _run(path, compiled=compiled)
            results.add((tuple(found), analysis.stats.abandoned_heads))
    if len(request) <= MAX_HEAD_BYTES:  # read: the client closed right after the 101
        assert results == {(("10.0.0.1:51000 aborted",), 0)}
    else:  # abandoned (counted where it was read as a head): a 101 without its request
        assert results == {(("10.0.0.1:51000 inconclusive",), 0 if late else 1)}


def test_ten_thousand_headers_in_linear_time(tmp_path: Path) -> None:
    path = tmp_path / "headers.pcap"
    with path.open("wb") as out:
        hostile.many_headers(out, 10_000)
    started = time.perf_counter()
    found, _ = _run(path)
    elapsed = time.perf_counter() - started
    assert found == ["10.8.8.8:40000 succeeded", "10.9.9.9:50000 succeeded"]
    assert elapsed < 5.0  # ~0.1 s; quadratic look-ups took minutes


def test_header_lookups_do_not_scan_every_field() -> None:
    raw = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(10_000)) + b"\r\n"
    head = parse_request_head(raw)
    assert head is not None
    started = time.perf_counter()
    for _ in range(10_000):
        head.headers.get("upgrade")
        head.headers.tokens("connection")
    assert time.perf_counter() - started < 1.0
    assert head.headers.all("x-9999") == ["v"] and head.headers.count("X-1") == 1


def test_one_byte_segments_arriving_backwards_stay_linear() -> None:
    from tests.test_reassembly import run, seg

    size = 100_000
    payload = bytes(range(256)) * (size // 256 + 1)
    segments = [seg(1, True, 1000, hostile.SYN)]
    segments += [seg(2 + i, True, 1001 + off, payload=payload[off : off + 1])
                 for i, off in enumerate(range(size - 1, -1, -1))]
    started = time.perf_counter()
    recorder, _ = run(segments)
    assert time.perf_counter() - started < 10.0  # ~1 s; a scan per segment took minutes
    assert bytes(recorder.data[0]) == payload[:size] and not recorder.gaps


@pytest.mark.parametrize("options", [[], ["--format", "json"], ["--format", "jsonl"],
                                     ["--format", "csv"], ["--format", "markdown"],
                                     ["--detail"]])
def test_timestamps_past_the_calendar_are_shown_as_seconds(
    tmp_path: Path, options: list[str]
) -> None:
    """pcapng timestamps have 64 bits: one past the year 9999 (crafted or damaged; atheris
    found it) is no date, and ended the report with a traceback when it was printed. It is
    shown as its seconds since 1970 ("@..."), and the analysis is the same."""
    path = tmp_path / "future.pcapng"
    path.write_bytes(as_pcapng(GOOD, later=1 << 62))
    done = subprocess.run([sys.executable, "-m", "analyzer", "read", str(path), *options],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert clients(done.stdout) == ["10.9.9.9:50000", "10.9.9.8:50001"]
    if "--detail" not in options:  # the detail view gives times from the SYN
        assert "@4613386" in done.stdout  # (1 << 62) µs after 2023: 4.6e12 s since 1970


def test_a_head_found_after_its_101_sent_a_byte_at_a_time_is_searched_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request the capture shows after its 101 (merged interfaces), its head a byte a
    segment: its end is looked for in the new bytes only (holes.py `_late_request` keeps
    how far in `scanned`). Looking through the whole head at every byte was quadratic."""
    from analyzer.exchange import holes
    from tests.builder import websocket_request

    looked = _recorded_calls(monkeypatch, holes, "find_head_end",
                             lambda buf, start=0: len(buf) - start)
    pad = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 60) for i in range(100))
    request = websocket_request("example.com", "/chat").replace(b"\r\n\r\n", b"\r\n" + pad
                                                                 + b"\r\n")
    path = _sent_late(tmp_path, request, "101 first")
    for compiled in (True, False):
        looked.clear()
        found, _ = _run(path, compiled=compiled)
        assert found == ["10.0.0.1:51000 aborted"]  # the client closed right after the 101
        assert 0 < sum(looked) <= 2 * len(request), (sum(looked), len(request))


@pytest.mark.parametrize("where", ["101 first", "after a hole"])
def test_a_request_line_found_late_sent_a_byte_at_a_time_is_read_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """A 16 KB request line, a byte a segment, that the capture shows after its 101 (holes.py
    `_late_request`) or after a hole in the client's bytes (`_resync`): each byte asks again
    whether it is a request, and the line is read on from where it was left
    (`Side.start_read`, http/start.py `read_start`), as a first request line is. Classified
    whole at every byte, it cost 2.7 s (past MAX_START_LINE, the patterns read the whole
    line)."""
    from analyzer.http import start
    from tests.builder import websocket_request

    whole = _recorded_calls(monkeypatch, start, "classify_start")
    path = _sent_late(tmp_path, websocket_request("example.com", "/chat/" + "t" * 16_000),
                      where)
    for compiled in (True, False):
        whole.clear()
        found, _ = _run(path, compiled=compiled)
        assert len(found) == 1 and found[0].startswith("10.0.0.1:51000 "), found
        assert len(whole) <= 10, len(whole)  # the first bytes, not every one


_NOT_PLAIN = {  # start lines a slow or hostile peer may send a byte at a time (6,000 bytes)
    "words": b"GET " + b"a " * 3000 + b"/chat HTTP/1.1",  # a server answers 400
    "tabs": b"GET\t/chat/" + b"t" * 6000 + b"\tHTTP/1.1",
    "a control byte": b"GET /chat/\x01" + b"t" * 6000 + b" HTTP/1.1",
    "a long method": b"G" * 6000 + b" /chat HTTP/1.1",
    "empty lines, lowercase": b"\r\n" * 1500 + b"get " + b"a " * 1500 + b"/chat http/1.1",
    "a status line's blanks": b"HTTP/1.1" + b" " * 6000 + b"101 Switching Protocols",
}
_TRICKLED = [(shape, where) for shape in _NOT_PLAIN if not shape.startswith("a status")
             for where in ("first", "101 first", "after a hole", "HTTP/2 first")]
_TRICKLED.append(("a status line's blanks", "server first"))


@pytest.mark.parametrize(("shape", "where"), _TRICKLED, ids=[" ".join(c) for c in _TRICKLED])
def test_a_start_line_that_is_not_plain_sent_a_byte_at_a_time_is_read_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shape: str, where: str
) -> None:
    """A start line that is not a plain request line (more words, tabs, a control byte, a
    long method, empty lines first, a server's status line), sent a byte a segment, first,
    behind its 101, after a hole, or to a server that spoke HTTP/2 first: each byte asks
    again what the bytes begin, and the line is read on from where it was left
    (http/start.py `read_start`), not read whole by the patterns at every byte (8,000 bytes
    of words: 1.7 s, quadratic in C). Counted: the bytes the patterns are asked about
    (18 M here when read whole at every byte)."""
    from analyzer.http import start

    read = _recorded_calls(monkeypatch, start, "_start_by_patterns")
    line = _NOT_PLAIN[shape]
    if where == "server first":
        path = _trickled_status_line(tmp_path, line)
    else:
        path = _sent_late(tmp_path, hostile.WS_REQUEST.replace(b"GET /chat HTTP/1.1", line),
                          where)
    results = set()
    for compiled in (True, False):
        read.clear()
        found, _ = _run(path, compiled=compiled)
        results.add(tuple(found))
        assert sum(read) <= 12 * len(line), (sum(read), len(line))
    assert len(results) == 1


@pytest.mark.parametrize("where", ["a second request", "a response", "a request behind its 101"])
def test_empty_lines_before_a_head_sent_a_byte_at_a_time_are_skipped_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """RFC 9112 §2.2 lets empty lines come before a start line. Sent a byte a segment before
    a head (a second request on a kept-alive connection, a response, a request the capture
    shows after its 101), each byte asks again where the head ends, and the empty lines were
    skipped again each time (http/start.py `find_head_end`: quadratic, 60 KB of them 3.9 s).
    They are skipped once when the start line begins (and once more by the head's parser).
    Counted: the bytes of empty lines skipped (12 M for 5,000 CRLFs skipped at every
    byte)."""
    from analyzer.http import start
    from tests.builder import Conversation, websocket_request, websocket_response, write_pcap

    skipped = _recorded_calls(monkeypatch, start, "_empty_lines_end",
                              lambda prefix: len(prefix) - len(prefix.lstrip(b"\r\n")))
    empty = b"\r\n" * 2500
    conv = Conversation()
    conv.handshake()
    if where == "a second request":
        conv.client(b"GET /a HTTP/1.1\r\nHost: example.com\r\n\r\n")
        conv.server(b"HTTP/1.1 204 No Content\r\n\r\n")
        conv.client(empty + websocket_request("example.com", "/chat"), max_segment=1)
        conv.server(websocket_response())
    elif where == "a response":
        conv.client(websocket_request("example.com", "/chat"))
        conv.server(empty + websocket_response(), max_segment=1)
    else:
        conv.server(websocket_response())
        conv.client(empty + websocket_request("example.com", "/chat"), max_segment=1)
    conv.client_fin()
    conv.server_fin()
    path = tmp_path / "empty-lines.pcap"
    write_pcap(path, [conv])
    for compiled in (True, False):
        skipped.clear()
        found, _ = _run(path, compiled=compiled)
        assert found == ["10.0.0.1:51000 aborted"]  # the client closed right after the 101
        assert sum(skipped) <= 3 * len(empty), (sum(skipped), len(empty))


def _trickled_status_line(tmp_path: Path, line: bytes) -> Path:
    """A capture where the server speaks first (a capture begun mid-connection), its status
    ``line`` a byte a segment, then the client's request."""
    from tests.builder import Conversation, websocket_request, write_pcap

    conv = Conversation()
    conv.handshake()
    conv.server(line, max_segment=1)
    conv.server(hostile.WS_RESPONSE[hostile.WS_RESPONSE.index(b"\r\n"):])
    conv.client(websocket_request("example.com", "/chat"))
    conv.client_fin()
    conv.server_fin()
    path = tmp_path / "server-first.pcap"
    write_pcap(path, [conv])
    return path


def _sent_late(tmp_path: Path, request: bytes, where: str) -> Path:
    """A capture of ``request`` sent a byte a segment, that shows it after its 101 (merged
    interfaces: "101 first"), after a hole in the client's bytes ("after a hole": an
    earlier request lost), as the first bytes ("first"), or after a server's HTTP/2
    SETTINGS ("HTTP/2 first"), then both sides' FINs."""
    from tests.builder import Conversation, websocket_response, write_pcap

    conv = Conversation()
    conv.handshake()
    if where == "101 first":
        conv.server(websocket_response())
    elif where == "HTTP/2 first":
        conv.server(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")  # SETTINGS, RFC 9113 §6.5
    elif where == "after a hole":
        lost = conv.client(b"GET /lost HTTP/1.1\r\nHost: example.com\r\n\r\n")
        conv.server(b"HTTP/1.1 204 No Content\r\n\r\n")
        for index in sorted(lost, reverse=True):
            del conv.records[index]
    conv.client(request, max_segment=1)
    if where != "101 first":
        conv.server(websocket_response())
    conv.client_fin()
    conv.server_fin()
    path = tmp_path / "late.pcap"
    write_pcap(path, [conv])
    return path
