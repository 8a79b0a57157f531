"""The streamed summary (report/stream.py): its groups of like attempts stay bounded however
many distinct attempts a live run sees, and a real storm is still reported exactly."""

from __future__ import annotations

import dataclasses
import tracemalloc
from pathlib import Path

from analyzer.report.stream import MAX_GROUP_REQUEST, MAX_GROUPS, Tally
from analyzer.verdict import Diagnosis
from tests.builder import Conversation, http_response, websocket_request, write_pcap
from tests.helpers import analyze_pcap


def _rejected(tmp_path: Path) -> Diagnosis:
    conv = Conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 8080))
    conv.handshake()
    conv.client(websocket_request("example.com", "/ws"))
    conv.server(http_response(403, "Forbidden", [("Content-Length", "0")]), delay=0.002)
    write_pcap(tmp_path / "one.pcap", [conv])
    (diagnosis,) = analyze_pcap(tmp_path / "one.pcap")
    return diagnosis


def _with_target(d: Diagnosis, target: str, time: float) -> Diagnosis:
    request = d.attempt.request
    assert request is not None
    head = dataclasses.replace(request.head, target=target)
    attempt = dataclasses.replace(d.attempt, request=dataclasses.replace(
        request, head=head, time=time))
    return dataclasses.replace(d, attempt=attempt)


def test_groups_stay_bounded_and_a_storm_keeps_its_count(tmp_path: Path) -> None:
    d = _rejected(tmp_path)
    tally = Tally()
    storm = _with_target(d, "/reconnect", 0.0)
    for n in range(40_000):  # a live run: a new query string every time, and a reconnect loop
        tally.add(_with_target(d, f"/ws?t={n}", float(n)))
        if n % 100 == 0:
            tally.add(dataclasses.replace(storm, attempt=dataclasses.replace(
                storm.attempt, request=dataclasses.replace(storm.attempt.request,  # type: ignore[arg-type]
                                                           time=float(n)))))
        assert len(tally.groups) <= MAX_GROUPS
    assert tally.attempts == 40_400 and tally.forgotten > 0
    (top, *_) = tally.storms()
    assert top.request == "GET /reconnect" and top.count == 400
    assert (top.first, top.last) == (0.0, 39_900.0)


def test_a_group_key_does_not_keep_a_huge_target(tmp_path: Path) -> None:
    d = _rejected(tmp_path)
    tally = Tally(max_groups=100)
    tracemalloc.start()
    try:
        for n in range(1_000):
            tally.add(_with_target(d, f"/{n}" + "x" * 60_000, float(n)))
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert all(len(key[2]) <= MAX_GROUP_REQUEST for key in tally.groups)
    assert held < 5_000_000  # 100 groups of 60 KB targets would be 6 MB


def test_number_set_is_a_set_of_numbers() -> None:
    """The streamed report's printed attempts in life (cli.py), one bit per number."""
    from analyzer.report.stream import NumberSet

    numbers, plain = NumberSet(), set()
    for n in [1, 8, 9, 7, 1000, 16, 15, 8]:
        numbers.add(n)
        plain.add(n)
    for n in [8, 3, 5000, 1000]:
        numbers.discard(n)
        plain.discard(n)
    assert [n for n in range(1200) if n in numbers] == sorted(plain) == [1, 7, 9, 15, 16]
    assert 10**6 not in numbers


def test_ended_events_get_their_attempts_numbers_on_a_real_capture() -> None:
    """cli_read.numbered keeps each attempt in life under its packed key (life.model.packed_key)
    until its end: on a real capture whose WebSockets outlive their watch, every `Ended` gets
    the number its attempt was listed under, as the plain tuple keys give."""
    from collections import Counter

    from analyzer.cli_read import numbered
    from analyzer.filters import Selection
    from analyzer.life.model import Ended, attempt_key, packed_key
    from analyzer.pipeline import Analysis
    from analyzer.source import read_records

    capture = Path(__file__).resolve().parents[1] / "captures" / "websocket_lives.pcap"
    run = Analysis(lifetimes=True)  # as the CLI's
    events = [*run.feed_records(read_records([str(capture)], [])), *run.finishing()]
    expected: dict[tuple[int, int, int], int] = {}  # the plain twin: tuple keys
    listed = 0
    for d in events:
        if isinstance(d, Diagnosis) and Selection().listed(d):
            listed += 1
            a = d.attempt
            expected[attempt_key(a.first_frame, a.sequence, a.stream_id)] = listed
    ended = [e for e in numbered(iter(events), Selection(), Counter()) if isinstance(e, Ended)]
    assert len(ended) >= 5
    assert [e.number for e in ended] == [expected[e.key] for e in ended]
    assert all(isinstance(packed_key(e.key), int) for e in ended)


def test_group_key_equals_its_plain_twin_on_every_bundled_capture(tmp_path: Path) -> None:
    """`group_key` (the tally's, properties read once, the endpoint's text remembered) is
    `storm_key` with its request clipped, on every bundled capture's attempts (TCP-only ones
    too) and on a target longer than the clip."""
    from analyzer.report.fields import endpoint_text
    from analyzer.report.stream import group_key, group_key_plain

    captures = Path(__file__).resolve().parent.parent / "captures"
    compared = 0
    for path in sorted(captures.glob("*.pcap*")):
        for d in analyze_pcap(path):
            assert group_key(d) == group_key_plain(d)
            a = d.attempt
            assert (endpoint_text(a.client), endpoint_text(a.server)) == (str(a.client),
                                                                          str(a.server))
            compared += 1
    assert compared > 100
    long = _with_target(_rejected(tmp_path), "/" + "x" * (3 * MAX_GROUP_REQUEST), 1.0)
    assert group_key(long) == group_key_plain(long)
    assert len(group_key(long)[2]) == MAX_GROUP_REQUEST
