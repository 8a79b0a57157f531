"""Six handshakes to a raw server on ``lo`` (two switched, 403, 400, a reset, a close without
an answer), captured at once by three real tcpdumps: ``-s 0``, ``-s 200`` and ``-s 96`` (at
96 bytes, lo's Ethernet, IPv4 and TCP headers with timestamps leave 30 bytes of each head).
The cut captures list each handshake whose head got as far as something that says it was
one, inconclusive, on the connections the whole capture has; and the whole capture cut into
96-byte IPv4 fragments, in order and last first, reads as the whole one. Last, tcpdump
started while a slow client was sending its head. (The thirtieth session's sweep made such
captures by hand; they were lost with its machine.)"""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import dpkt
import pytest

from analyzer.verdict import Diagnosis
from tests.builder import fragment_frame
from tests.helpers import RAW_SERVER, analyze_pcap, start_raw_server, tcpdump_on_lo
from tests.test_fragments import outcome, run, write
from tests.test_h2_live import HOST, _free_port, _stop
from tests.test_h2_live import pytestmark as _live_marks

pytestmark = _live_marks

# Answers six connections by their path: /ws a 101, /forbidden a 403, /ws?bad a 400 (a
# handshake to a WebSocket path refused), /reset a reset, /close a close without a word.
SERVER = RAW_SERVER + r"""
for _ in range(6):
    conn, _ = server.accept()
    conn.settimeout(5)
    head = read_head(conn)
    target = head.split(b" ", 2)[1]
    if target == b"/ws":
        switch(conn, head)
        drain(conn)
    elif target == b"/forbidden":
        conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        drain(conn)
    elif target == b"/ws?bad":
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        drain(conn)
    elif target == b"/reset":
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
"""
TARGETS = ("/ws", "/forbidden", "/ws?bad", "/reset", "/close", "/ws")
SNAPLENS = (0, 200, 96)


def _handshake(port: int, target: str) -> None:
    """A WebSocket request head in python websockets' order (its offer within the first 134
    bytes, which -s 200 keeps; a User-Agent last), then whatever the server does; a 101 is
    followed by a masked Close 1000."""
    head = (f"GET {target} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "User-Agent: snaplen-test\r\n\r\n")
    with socket.create_connection((HOST, port), timeout=5) as conn:
        conn.sendall(head.encode())
        try:
            answer = conn.recv(4096)
            if answer.startswith(b"HTTP/1.1 101"):
                conn.sendall(b"\x88\x82\x01\x02\x03\x04" + bytes((0x03 ^ 1, 0xE8 ^ 2)))
        except OSError:
            pass  # (the reset)


@pytest.fixture(scope="module")
def captures(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, Path]]:
    tmp = tmp_path_factory.mktemp("snaplen")
    port = _free_port()
    paths = {snap: tmp / f"snap{snap}.pcap" for snap in SNAPLENS}
    server = start_raw_server(SERVER, str(port))
    try:
        with tcpdump_on_lo("-s", "0", "-w", str(paths[0]), f"tcp port {port}"), \
                tcpdump_on_lo("-s", "200", "-w", str(paths[200]), f"tcp port {port}"), \
                tcpdump_on_lo("-s", "96", "-w", str(paths[96]), f"tcp port {port}"):
            for target in TARGETS:
                _handshake(port, target)
    finally:
        _stop(server, signal.SIGTERM)
    yield paths


def _heads(diagnoses: list[Diagnosis]) -> set[tuple[int, str]]:
    return {(d.attempt.client.port, d.attempt.request_head.target)
            for d in diagnoses if d.attempt.request_head}


def test_the_whole_capture_has_the_six_handshakes(captures: dict[int, Path]) -> None:
    whole = analyze_pcap(captures[0])
    assert [d.attempt.request_head.target for d in whole if d.attempt.request_head] == list(
        TARGETS)
    assert {d.attempt.response_head.status for d in whole if d.attempt.response_head} == {
        101, 403, 400}


@pytest.mark.parametrize("snap", [200, 96])
def test_cut_captures_list_the_handshakes_whose_head_shows_it(captures: dict[int, Path],
                                                              snap: int) -> None:
    """At 200 bytes every head shows its offer: all six. At 96 (30 bytes of each head, no
    offer in sight) only what answers show: the two 101s, and the 400 to /ws (a usual
    WebSocket path)."""
    whole = _heads(analyze_pcap(captures[0]))
    cut = analyze_pcap(captures[snap])
    found = _heads(cut)
    assert found <= whole
    assert len(found) == (6 if snap == 200 else 3), found
    if snap == 96:
        assert sorted(target for _, target in found) == ["/ws", "/ws", "/ws?bad"]
    assert all(d.verdict.value == "inconclusive" for d in cut)
    assert all(d.primary is not None and d.primary.check == "capture_gap_request"
               and "snapshot length" in d.primary.found for d in cut)


def test_the_whole_capture_in_ip_fragments_reads_as_itself(captures: dict[int, Path],
                                                           tmp_path: Path) -> None:
    """Every packet cut into 96-byte IPv4 fragments (tests/builder.py `fragment_frame`), in
    order and last first: the same attempts and verdicts, every fragment reassembled."""
    whole, _, _ = run(captures[0])
    assert len(whole) == 6
    with captures[0].open("rb") as f:
        packets = [(when, data) for when, data in dpkt.pcap.Reader(f)]
    for name, order in (("in order", 1), ("last first", -1)):
        pieces = [(when, piece) for when, data in packets
                  for piece in fragment_frame(data, 96)[::order]]
        assert len(pieces) > len(packets)
        found, skipped, _ = run(write(tmp_path / f"{order}.pcap", pieces))
        assert outcome(found) == outcome(whole), name
        assert set(skipped) == {"ipv4 fragment (reassembled)"}, name




# Answers one handshake with a 101, then waits for the client to go.
SWITCHING = RAW_SERVER + r"""
conn, _ = server.accept()
conn.settimeout(10)
switch(conn, read_head(conn))
drain(conn)
conn.close()
"""


def test_a_capture_started_inside_a_head(tmp_path: Path) -> None:
    """A client sends its head a line at a time, 0.3 s apart; tcpdump starts after its third
    line. The 101 is there without its request: `request_not_captured`, and the switch is
    followed (the client leaves 0.5 s later without a Close)."""
    port = _free_port()
    server = start_raw_server(SWITCHING, str(port))
    path = tmp_path / "start-mid.pcap"
    lines = ["GET /trickle HTTP/1.1\r\n", f"Host: {HOST}:{port}\r\n", "Upgrade: websocket\r\n",
             "Connection: Upgrade\r\n", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
             "Sec-WebSocket-Version: 13\r\n", "\r\n"]
    try:
        with socket.create_connection((HOST, port), timeout=5) as conn:
            for line in lines[:3]:
                conn.sendall(line.encode())
                time.sleep(0.3)
            with tcpdump_on_lo("-w", str(path), f"tcp port {port}"):
                for line in lines[3:]:
                    conn.sendall(line.encode())
                    time.sleep(0.3)
                assert conn.recv(4096).startswith(b"HTTP/1.1 101")
                time.sleep(0.5)
                conn.close()
    finally:
        _stop(server, signal.SIGTERM)
    (diagnosis,) = analyze_pcap(path)
    assert diagnosis.attempt.response is not None
    assert diagnosis.attempt.response.head.status == 101
    assert diagnosis.primary is not None and diagnosis.primary.check == "request_not_captured"
    assert diagnosis.attempt.after is not None  # the switch was followed
