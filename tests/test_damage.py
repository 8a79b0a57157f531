"""No attempt lost: every upgrade request whose head was captured whole is listed, whatever
happened to the connection's other bytes (holes, reordering, duplicates, closes in any order,
control bytes in the target).

Hypothesis generates a keep-alive connection (plain requests, rejected upgrades, and maybe a
switch with WebSocket frames and Close frames), damages it the way a capture does, and the
test compares the attempts the real pipeline lists with the requests the generator made.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.pipeline import Analysis
from analyzer.source import read_records
from tests.builder import (
    DEFAULT_WS_KEY,
    Conversation,
    Opcode,
    http_request,
    http_response,
    websocket_request,
    websocket_response,
    write_pcap,
)
from tests.helpers import analyze_pcap, run_cli

ROOT = Path(__file__).resolve().parent.parent
# Control bytes a target may carry and still make a request line (RFC 9112 §3 words end at
# whitespace; NUL marks binary data): ESC above all, the start of terminal escape sequences.
CONTROLS = "\x01\x07\x08\x0b\x0c\x1b\x7f\x9b"


@dataclass(frozen=True)
class Exchange:
    upgrade: bool  # a WebSocket request (listed) or a plain GET (only counted)
    target: str
    answer: str  # "403", "200" or "101" (only the last exchange switches)


targets = st.builds(
    lambda n, junk: f"/ws{n}" + junk,
    st.integers(0, 999),
    st.text(alphabet=CONTROLS + "abc[31m", max_size=4),
)


@st.composite
def connections(draw: st.DrawFn) -> tuple[list[Exchange], bool]:
    count = draw(st.integers(1, 3))
    exchanges = []
    for n in range(count):
        upgrade = draw(st.booleans())
        last = n == count - 1
        answer = draw(st.sampled_from(["403", "101"] if upgrade and last else
                                      ["403"] if upgrade else ["200"]))
        exchanges.append(Exchange(upgrade, f"{draw(targets)}-{n}", answer))
    return exchanges, draw(st.booleans())  # whether the client sends its frames split


def build(exchanges: list[Exchange], split: bool,
          closes: str) -> tuple[Conversation, dict[int, list[int]]]:
    """The conversation, and the segments of each request head by exchange number."""
    conv = Conversation(client=("10.0.0.1", 50000), server=("10.0.0.2", 8080))
    conv.handshake()
    heads: dict[int, list[int]] = {}
    for n, ex in enumerate(exchanges):
        if ex.upgrade:
            request = websocket_request("example.com", ex.target)
        else:
            request = http_request("GET", ex.target, [("Host", "example.com")])
        heads[n] = conv.client(request, split=[20] if split else None)
        if ex.answer == "101":
            conv.server(websocket_response(DEFAULT_WS_KEY), delay=0.002)
            conv.client_ws_frame(Opcode.TEXT, "hello", split=[3] if split else None)
            conv.server_ws_frame(Opcode.TEXT, "world")
            conv.client_ws_close(1000, delay=0.5)
            conv.server_ws_close(1000)
        else:
            body = b"no" if ex.answer == "403" else b"ok"
            reason = "Forbidden" if ex.answer == "403" else "OK"
            conv.server(http_response(int(ex.answer), reason, [("Content-Length", "2")], body),
                        delay=0.002)
    if closes == "client first":
        conv.client_fin(delay=0.1)
        conv.server_fin()
    elif closes == "server first":
        conv.server_fin(delay=0.1)
        conv.client_fin()
    elif closes == "client reset":
        conv.client_rst(delay=0.1)
    # "capture ends": no close at all
    return conv, heads


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(connection=connections(),
       closes=st.sampled_from(["client first", "server first", "client reset", "capture ends"]),
       drop_seed=st.randoms(use_true_random=False),
       reorder=st.one_of(st.none(), st.integers(0, 1000)),
       duplicate=st.one_of(st.none(), st.integers(0, 1000)))
def test_every_captured_request_head_is_listed(tmp_path_factory: object, connection: tuple[
        list[Exchange], bool], closes: str, drop_seed: object, reorder: int | None,
        duplicate: int | None) -> None:
    import random

    assert isinstance(drop_seed, random.Random)
    exchanges, split = connection
    conv, heads = build(exchanges, split, closes)
    data = [s.index for s in conv.records if s.payload]
    dropped = {i for i in data if drop_seed.random() < 0.25}
    path = Path(str(tmp_path_factory.mktemp("damage"))) / "d.pcap"  # type: ignore[attr-defined]
    write_pcap(path, [conv.segments(drop=dropped, reorder=reorder, duplicate=duplicate)])
    listed = [d.attempt.request_head.target for d in analyze_pcap(path)
              if d.attempt.request_head is not None]
    for n, ex in enumerate(exchanges):
        if ex.upgrade and not dropped & set(heads[n]):
            assert ex.target in listed, (n, exchanges, closes, sorted(dropped), listed)


def test_control_byte_in_target_is_listed_escaped(tmp_path: Path) -> None:
    """`GET /ws4<ESC>[31m HTTP/1.1` answered 403: listed, the ESC shown as \\x1b."""
    conv = Conversation(client=("10.0.0.1", 50001), server=("10.0.0.2", 8080))
    conv.handshake()
    conv.client(websocket_request("example.com", "/ws4\x1b[31m"))
    conv.server(http_response(403, "Forbidden", [("Content-Length", "0")]), delay=0.002)
    conv.server_fin()
    conv.client_fin()
    write_pcap(tmp_path / "esc.pcap", [conv])
    done = subprocess.run([sys.executable, "-m", "analyzer", "read", str(tmp_path / "esc.pcap")],
                          capture_output=True, timeout=60, cwd=ROOT, check=True)
    assert b"\x1b" not in done.stdout
    assert b"GET /ws4\\x1b[31m" in done.stdout and b"Attempts: 1 (1 failed)" in done.stdout


def test_holes_both_ways_then_closes_keep_the_attempt(tmp_path: Path) -> None:
    """A plain exchange lost in both directions, then GET /ws and its 101, Close frames and a
    FIN from each side, in either order: the attempt is listed, inconclusive (what the holes
    held is unknown); the same with the capture cut before the client's FIN."""
    for closes in ("client first", "server first"):
        conv = Conversation(client=("10.0.0.1", 50002), server=("10.0.0.2", 8080))
        conv.handshake()
        lost = conv.client(http_request("GET", "/", [("Host", "example.com")]))
        lost += conv.server(http_response(200, "OK", [("Content-Length", "2")], b"ok"))
        conv.client(websocket_request("example.com", "/ws"))
        conv.server(websocket_response(DEFAULT_WS_KEY), delay=0.002)
        conv.client_ws_close(1000, delay=1)
        conv.server_ws_close(1000)
        if closes == "client first":
            conv.client_fin()
            conv.server_fin()
        else:
            conv.server_fin()
            conv.client_fin()
        write_pcap(tmp_path / "holes.pcap", [conv.segments(drop=lost)])
        (diagnosis,) = analyze_pcap(tmp_path / "holes.pcap")
        assert diagnosis.attempt.request_head is not None
        assert diagnosis.attempt.request_head.target == "/ws"
        assert diagnosis.verdict.value == "inconclusive", closes
        assert diagnosis.primary is not None and diagnosis.primary.check == "capture_gap_request"


def test_request_head_cut_by_the_client_close_is_reported(tmp_path: Path) -> None:
    conv = Conversation(client=("10.0.0.1", 50003), server=("10.0.0.2", 8080))
    conv.handshake()
    conv.client(b"GET /ws HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n")
    conv.client_fin(delay=1)
    conv.server_fin()
    write_pcap(tmp_path / "cut.pcap", [conv])
    (diagnosis,) = analyze_pcap(tmp_path / "cut.pcap")
    assert diagnosis.primary is not None and diagnosis.primary.check == "request_head_incomplete"
    assert diagnosis.attempt.request is not None
    assert not diagnosis.attempt.request.head_complete


@pytest.mark.parametrize("last", ["403", "101"])
def test_offers_held_behind_unanswered_offers_are_all_listed(tmp_path: Path, last: str) -> None:
    """Three upgrade requests, the 403s lost (and the 101 kept, when the last one switched):
    each request waits behind the one before it (a client sends nothing after an offer until
    it is answered), all three are listed, and a 101 answers the last one."""
    exchanges = [Exchange(True, "/ws0", "403"), Exchange(True, "/ws1", "403"),
                 Exchange(True, "/ws2", last)]
    conv, heads = build(exchanges, False, "client first")
    lost = [s.index for s in conv.records if s.payload and not s.from_client
            and not s.payload.startswith(b"HTTP/1.1 101")]
    write_pcap(tmp_path / "held.pcap", [conv.segments(drop=lost)])
    diagnoses = analyze_pcap(tmp_path / "held.pcap")
    listed = [d.attempt.request_head.target for d in diagnoses
              if d.attempt.request_head is not None]
    assert sorted(listed) == ["/ws0", "/ws1", "/ws2"]
    if last == "101":
        (switched,) = [d for d in diagnoses if d.attempt.response is not None]
        assert switched.attempt.request_head is not None
        assert switched.attempt.request_head.target == "/ws2"


@pytest.mark.parametrize("order", ["in order", "first two swapped", "first three backwards"])
def test_a_connection_picked_up_mid_stream_keeps_its_first_request(tmp_path: Path,
                                                                   order: str) -> None:
    """A capture that starts in the middle of a keep-alive connection (no SYN), its next
    request an upgrade sent in three segments that the capture shows out of order: its first
    bytes wait until the connection's next segment that does not come just before them
    (reassembly/delivery.py `_end_hold`), so the stream starts at the earliest of them and
    the request is read whole. Taking the first segment seen for the stream's start dropped
    the bytes before it as old ones, and the attempt with them. Compiled and plain alike."""
    conv = Conversation(client=("10.0.0.1", 50004), server=("10.0.0.2", 8080))
    conv.handshake()
    conv.client(http_request("GET", "/", [("Host", "example.com")]))
    conv.server(http_response(200, "OK", [("Content-Length", "2")], b"ok"))
    conv.capture_starts_mid_stream()
    request = websocket_request("example.com", "/ws")
    conv.client(request, split=[len(request) // 3, 2 * len(request) // 3])
    conv.server(websocket_response(DEFAULT_WS_KEY), delay=0.002)
    conv.client_fin(delay=0.01)
    conv.server_fin()
    segments = conv.segments()
    times = [s.time_ns for s in segments]
    if order == "first two swapped":
        segments[0], segments[1] = segments[1], segments[0]
    elif order == "first three backwards":
        segments[:3] = segments[2::-1]
    # (the file is written in time order: each segment takes the time of its new place)
    segments = [replace(s, time_ns=t) for s, t in zip(segments, times, strict=True)]
    write_pcap(tmp_path / "mid.pcap", [segments])
    for compiled in (True, False):
        run = Analysis(compiled=compiled)
        found = list(run.feed_records(read_records([str(tmp_path / "mid.pcap")], [])))
        found += run.finish()
        assert [(d.attempt.request_head.target if d.attempt.request_head else None,
                 d.verdict.value) for d in found] == [("/ws", "aborted")], (order, compiled)


@pytest.mark.parametrize(("snaplen", "cut"), [(120, True), (65535, False)])
def test_segments_cut_by_the_snaplen_are_counted_in_the_summary(tmp_path: Path, snaplen: int,
                                                               cut: bool) -> None:
    """`tcpdump -s 96/200` cuts handshakes' heads: the report said "No upgrade attempts
    found" and nothing else (the sweep of the thirtieth session). The summary now counts the
    segments the snapshot length cut, and says what that means; the near miss: a whole
    capture says nothing."""
    conv = Conversation()
    conv.handshake()
    conv.client(websocket_request("example.com", "/ws"))
    conv.server(websocket_response(), delay=0.002)
    conv.client_fin(0.01)
    conv.server_fin(0.001)
    write_pcap(tmp_path / "cut.pcap", [conv], snaplen=snaplen)
    summary = json.loads(run_cli("read", tmp_path / "cut.pcap", "-F", "json").stdout)["summary"]
    assert (summary["snaplen_cut_segments"] > 0) == cut, summary
    table = run_cli("read", tmp_path / "cut.pcap").stdout
    assert ("cut by the capture's snapshot length" in table) == cut, table


@pytest.mark.parametrize("lost", ["response", "fins", "closes"])
def test_evidence_never_names_frame_0(tmp_path: Path, lost: str) -> None:
    """A hole found only at the connection's end has no frame that shows it: its findings
    gave frame 0 as evidence (frames count from 1; the sweep of the thirtieth session, a 403
    or the FINs and Close frames deleted from a capture)."""
    conv = Conversation()
    conv.handshake()
    conv.client(websocket_request("example.com", "/ws"))
    if lost == "response":
        marks = conv.server(http_response(403, "Forbidden", [("Content-Length", "0")]))
        conv.client_fin(0.01)
        conv.server_fin(0.001)
    else:
        conv.server(websocket_response(), delay=0.002)
        closes = conv.client_ws_close(1000) + conv.server_ws_close(1000)
        fins = conv.client_fin(0.01) + conv.server_fin(0.001)
        marks = fins if lost == "fins" else closes + fins
    write_pcap(tmp_path / "lost.pcap", [conv], drop=marks)
    frames = [frame for d in analyze_pcap(tmp_path / "lost.pcap") for f in d.findings
              for frame in f.frames]
    assert 0 not in frames, frames


# --- heads cut by a hole: a snaplen (tcpdump -s, editcap -s) or a lost segment -----------------

CUT_REQUEST = websocket_request("example.com", "/chat")
CUT_101 = websocket_response(DEFAULT_WS_KEY)
CUT_403 = http_response(403, "Forbidden", [("Content-Length", "2")], b"no")
# a head is listed once its request line is read, an unanswered or refused one once it shows
# the offer (its Upgrade line is whole); a 101 needs its status code (RFC 9112 §4)
REQUEST_LINE = len(b"GET /chat HTTP/1.1\r\n")
OFFER_SHOWN = len(b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n")
STATUS_CODE = len(b"HTTP/1.1 101 ")


def cut_conversation(answer: str) -> Conversation:
    """GET /chat offering WebSocket, answered 101 (frames, Close frames, FINs), 403 (then
    FINs) or not at all (the server closes)."""
    conv = Conversation(client=("10.0.0.1", 50100), server=("10.0.0.2", 8080))
    conv.handshake()
    conv.client(CUT_REQUEST)
    if answer == "101":
        conv.server(CUT_101, delay=0.002)
        conv.client_ws_frame(Opcode.TEXT, "hello" * 40)
        conv.server_ws_frame(Opcode.TEXT, "world" * 40)
        conv.client_ws_close(1000, delay=0.5)
        conv.server_ws_close(1000)
        conv.client_fin()
        conv.server_fin()
    elif answer == "403":
        conv.server(CUT_403, delay=0.002)
        conv.server_fin()
        conv.client_fin()
    else:
        conv.server_fin(delay=0.5)
        conv.client_fin()
    return conv


def snaplen_keeping(conv: Conversation, kept: int) -> int:
    """The snaplen that keeps ``kept`` bytes of each segment's payload."""
    first = next(s for s in conv.records if s.payload)
    return len(first.frame()) - len(first.payload) + kept


def check_cut(path: Path, answer: str, kept: int) -> None:
    """What a capture whose heads keep their first ``kept`` bytes must say."""
    diagnoses = analyze_pcap(path)
    cut_request = kept < len(CUT_REQUEST)
    head = CUT_101 if answer == "101" else CUT_403
    cut_response = answer != "none" and kept < head.index(b"\r\n\r\n") + 4
    if (answer == "101" and kept >= STATUS_CODE) or kept >= OFFER_SHOWN:
        (diagnosis,) = diagnoses
    elif not diagnoses:
        return  # cut before it showed an offer (or before the status code): only counted
    else:
        (diagnosis,) = diagnoses
    attempt = diagnosis.attempt
    assert diagnosis.verdict.value == "inconclusive", (kept, diagnosis.findings)
    checks = [f.check for f in diagnosis.findings]
    if kept >= REQUEST_LINE:
        assert attempt.request is not None and attempt.request.head.target == "/chat"
        assert attempt.request.head_complete is not cut_request
        # the lines read are whole ones: nothing the cut shortened
        assert CUT_REQUEST.startswith(attempt.request.head.raw)
        assert attempt.request.head.raw.endswith(b"\n")
    if cut_request and kept >= REQUEST_LINE:
        assert diagnosis.primary is not None and diagnosis.primary.check == "capture_gap_request"
        assert "snapshot length" in diagnosis.primary.found and "-s 0" in diagnosis.primary.found
        assert "request_head_incomplete" not in checks
    if answer != "none" and kept >= STATUS_CODE:
        assert attempt.response is not None
        assert attempt.response.head.status == int(answer)
        assert attempt.response.head_complete is not cut_response
        if cut_response:
            assert "capture_gap_response" in checks
            gap = next(f for f in diagnosis.findings if f.check == "capture_gap_response")
            assert "snapshot length" in gap.found
    if answer == "101":
        # a cut 101 lacks fields it had: not judged by them
        assert not {"ws_accept_missing", "ws_accept_mismatch", "upgrade_header_missing_in_101",
                    "server_hung_up_after_switch"} & set(checks), checks
    if answer == "none":
        assert attempt.response is None


@pytest.mark.parametrize("answer", ["101", "403", "none"])
@pytest.mark.parametrize("kept", [10, 30, 42, 80, 100, 134, 400])
def test_heads_cut_by_the_snaplen_are_listed_as_far_as_read(tmp_path: Path, answer: str,
                                                            kept: int) -> None:
    """tcpdump -s N: every record keeps its first N bytes (caplen < len), so every head
    longer than what is left of N is cut. Each request is listed as far as it was read,
    inconclusive (capture_gap_request, naming the snaplen), with the answer's cut head as
    its response, once the head shows its offer (or the answer is a 101); 400 bytes cut
    nothing, and the attempt is what it is whole."""
    conv = cut_conversation(answer)
    path = tmp_path / "cut.pcap"
    write_pcap(path, [conv], snaplen=snaplen_keeping(conv, kept))
    if kept >= len(CUT_REQUEST) and kept >= len(CUT_101):
        (diagnosis,) = analyze_pcap(path)
        assert diagnosis.verdict.value != "inconclusive" or answer == "none"
        return
    check_cut(path, answer, kept)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(answer=st.sampled_from(["101", "403", "none"]),
       kept=st.integers(1, len(CUT_REQUEST) - 1))
def test_every_cut_point_of_a_head(tmp_path_factory: object, answer: str, kept: int) -> None:
    """The same at every cut point of the request head (the response's cut at the same
    length)."""
    conv = cut_conversation(answer)
    path = Path(str(tmp_path_factory.mktemp("cut"))) / "cut.pcap"  # type: ignore[attr-defined]
    write_pcap(path, [conv], snaplen=snaplen_keeping(conv, kept))
    check_cut(path, answer, kept)


def test_head_cut_by_a_lost_segment_is_listed(tmp_path: Path) -> None:
    """A request head in two segments, the second lost (and never re-sent in the capture):
    the request is listed as far as it was read, paired with its 101, inconclusive, and the
    finding names a hole in the capture rather than the snaplen."""
    conv = Conversation(client=("10.0.0.1", 50101), server=("10.0.0.2", 8080))
    conv.handshake()
    parts = conv.client(CUT_REQUEST, split=[OFFER_SHOWN + 5])
    conv.server(CUT_101, delay=0.002)
    conv.client_ws_close(1000, delay=0.5)
    conv.server_ws_close(1000)
    conv.client_fin()
    conv.server_fin()
    write_pcap(tmp_path / "lost.pcap", [conv.segments(drop=parts[1:])])
    (diagnosis,) = analyze_pcap(tmp_path / "lost.pcap")
    attempt = diagnosis.attempt
    assert attempt.request is not None and not attempt.request.head_complete
    assert attempt.response is not None and attempt.response.head.status == 101
    assert diagnosis.verdict.value == "inconclusive"
    assert diagnosis.primary is not None and diagnosis.primary.check == "capture_gap_request"
    assert "hole in the capture" in diagnosis.primary.found
    assert "request_head_incomplete" not in [f.check for f in diagnosis.findings]


# --- a capture that starts inside a request head (sweep30a B4) ---------------------------------

def started_inside_head(lines_before: int, into_line: int = 0) -> Conversation:
    """A client sends its head a line a segment (a slow client); the capture starts after
    ``lines_before`` lines (and ``into_line`` bytes of the next); the server switches, the
    client closes 2 s later without a Close frame."""
    conv = Conversation(client=("10.0.0.1", 50200), server=("10.0.0.2", 8080))
    conv.handshake()
    lines = websocket_request("example.com", "/trickle").split(b"\r\n")[:-1]
    pieces = [line + b"\r\n" for line in lines]  # the last is the empty line
    for n, piece in enumerate(pieces):
        if n == lines_before:
            if into_line:
                conv.client(piece[:into_line], delay=0.4)
                conv.capture_starts_mid_stream()
                conv.client(piece[into_line:], delay=0.01)
                continue
            conv.capture_starts_mid_stream()
        conv.client(piece, delay=0.4)
    conv.server(CUT_101, delay=0.002)
    conv.client_fin(delay=2)
    conv.server_fin()
    return conv


@pytest.mark.parametrize(("lines_before", "into_line"),
                         [(1, 0), (2, 0), (3, 0), (5, 0), (6, 0), (2, 3), (4, 10)])
def test_capture_started_inside_the_request_head_keeps_the_switch(
        tmp_path: Path, lines_before: int, into_line: int) -> None:
    """The client's first captured bytes are header lines (or the empty line) of a head whose
    request line came before the capture: the 101 and the switch are still listed, as when
    the capture starts after the request (request_not_captured, inconclusive)."""
    write_pcap(tmp_path / "mid.pcap", [started_inside_head(lines_before, into_line)])
    (diagnosis,) = analyze_pcap(tmp_path / "mid.pcap")
    attempt = diagnosis.attempt
    assert attempt.request is None
    assert attempt.response is not None and attempt.response.head.status == 101
    assert diagnosis.verdict.value == "inconclusive"
    assert diagnosis.primary is not None and diagnosis.primary.check == "request_not_captured"


def test_header_lines_first_after_a_captured_syn_are_not_http(tmp_path: Path) -> None:
    """Header lines as a connection's first bytes when its SYN was captured are no tail of a
    head: not HTTP, as before (the server's 101-looking answer is not read)."""
    conv = Conversation(client=("10.0.0.1", 50201), server=("10.0.0.2", 8080))
    conv.handshake()
    conv.client(b"Upgrade: websocket\r\n\r\n")
    conv.server(CUT_101, delay=0.002)
    conv.client_fin(delay=1)
    conv.server_fin()
    write_pcap(tmp_path / "syn.pcap", [conv])
    assert analyze_pcap(tmp_path / "syn.pcap") == []


