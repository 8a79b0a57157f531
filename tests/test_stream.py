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
