"""WebSockets over HTTP/2 with real software: hypercorn (ASGI, extended CONNECT enabled) and
nginx (``http2`` on a cleartext port, no extended CONNECT), a client built on the ``h2``
library, captured with tcpdump on ``lo`` and read by the whole pipeline; tshark is the referee
for the HEADERS and statuses.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from analyzer.pipeline import Analysis, analyze
from analyzer.source import read_captures
from analyzer.verdict import Diagnosis
from tests.builder import Conversation, Segment, write_pcap
from tests.h2_app import extended_connect
from tests.helpers import analyze_pcap, nginx_conf, start_nginx, stop_group, tcpdump_on_lo

pytest.importorskip("h2")
pytest.importorskip("hypercorn")

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
pytestmark = [
    pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                       reason="capturing on lo needs root"),
    pytest.mark.skipif(shutil.which("tcpdump") is None, reason="needs tcpdump"),
    pytest.mark.timeout(90),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


_stop = stop_group


@contextlib.contextmanager
def hypercorn() -> Iterator[int]:
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "tests.h2_app", str(port)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        _wait_listening(port, process)
        yield port
    finally:
        _stop(process)


@contextlib.contextmanager
def nginx_h2(logged: list[str] | None = None) -> Iterator[int]:
    """nginx with ``http2`` on a cleartext port: prior knowledge, no extended CONNECT; what
    it logged (at level info: its lines about clients' requests) goes into ``logged``."""
    if shutil.which("nginx") is None:
        pytest.skip("needs nginx")
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="h2-nginx-") as tmp:
        conf = Path(tmp, "nginx.conf")
        conf.write_text(nginx_conf(tmp, f"""        listen {HOST}:{port} http2;
        error_log {tmp}/info.log info;
        location / {{ return 200 "plain\\n"; }}"""))
        process = start_nginx(tmp, conf)
        try:
            _wait_listening(port, process)
            yield port
        finally:
            _stop(process, signal.SIGQUIT)
            if logged is not None and Path(tmp, "info.log").exists():
                logged.append(Path(tmp, "info.log").read_text(errors="replace"))


@contextlib.contextmanager
def tcpdump(path: Path, ports: list[int]) -> Iterator[None]:
    with tcpdump_on_lo("-w", str(path), " or ".join(f"tcp port {p}" for p in ports)):
        yield


@pytest.fixture(scope="module")
def capture() -> Iterator[tuple[Path, dict[str, str]]]:
    """One capture of every scenario, each on its own connection, in a known order."""
    with tempfile.TemporaryDirectory(prefix="h2-live-") as tmp:
        path = Path(tmp, "h2.pcap")
        said: dict[str, str] = {}
        logged: list[str] = []
        with hypercorn() as hyper, nginx_h2(logged) as plain, tcpdump(path, [hyper, plain]):
            for name, port, target in (("echo", hyper, "/echo"), ("deny", hyper, "/deny"),
                                       ("missing", hyper, "/missing"),
                                       ("policy", hyper, "/policy"),
                                       ("nginx", plain, "/chat")):
                said[name] = extended_connect(HOST, port, target)
                time.sleep(0.05)
        said["nginx log"] = "".join(logged)
        yield path, said


# (verdict, primary reason, status) per scenario, in the order of the capture
EXPECTED = [
    ("echo", "succeeded", None, 200),
    ("deny", "failed", "response_forbidden", 403),
    ("missing", "failed", "response_not_found", 404),
    ("policy", "aborted", "ws_closed_with_error", 200),
    ("nginx", "failed", "h2_connect_protocol_not_enabled", 400),
]


def _outcomes(diagnoses: list[Diagnosis]) -> list[tuple[str, str | None, int | None]]:
    return [(d.verdict.value, d.primary.check if d.primary and d.verdict.value != "succeeded"
             else None, d.attempt.response_head.status if d.attempt.response_head else None)
            for d in diagnoses]


def test_real_hypercorn_and_nginx_over_http2(capture: tuple[Path, dict[str, str]]) -> None:
    path, said = capture
    assert said["echo"].startswith("connected") and "403" in said["deny"], said
    assert "400" in said["nginx"] and "1008" in said["policy"], said
    diagnoses = sorted(analyze_pcap(path), key=lambda d: d.attempt.first_frame)
    assert _outcomes(diagnoses) == [(v, r, s) for _, v, r, s in EXPECTED], said
    for d in diagnoses:
        assert d.attempt.transport == "h2" and d.attempt.stream_id == 1
        assert d.facts.protocol == "websocket"
    echo, _, _, policy, nginx = diagnoses
    assert echo.attempt.h2 is not None and echo.attempt.h2.connect_protocol
    assert nginx.attempt.h2 is not None and not nginx.attempt.h2.connect_protocol
    assert [f.ws.opcode for f in echo.attempt.after.frames if f.side == "client"][:1] == [1]
    close = next(f for f in policy.findings if f.check == "ws_closed_with_error")
    assert "1008" in close.found and "server" in close.found
    # nginx's own line for the extended CONNECT it cannot serve
    told = nginx.attribution.server_log
    assert told and told in said["nginx log"], (told, said["nginx log"])


@pytest.mark.parametrize(("mss", "mangling"), [(7, {}), (60, {"reorder": 2}),
                                               (100, {"duplicate": 3})],
                         ids=["mss7", "mss60-reorder", "mss100-duplicate"])
def test_resegmented_real_capture_gives_the_same(capture: tuple[Path, dict[str, str]],
                                                 mss: int, mangling: dict[str, int],
                                                 tmp_path: Path) -> None:
    """The real bytes of each direction, replayed by the builder with other segment sizes,
    reordered or duplicated, give the same verdicts and reasons."""
    path, _ = capture
    conversations = _replay(path, mss)
    out = tmp_path / "mangled.pcap"
    if "reorder" in mangling:  # within each turn only (see reorder_within_turns)
        write_pcap(out, [reorder_within_turns(c.segments(), mangling["reorder"])
                         for c in conversations])
    else:
        write_pcap(out, conversations, **mangling)  # type: ignore[arg-type]
    again = sorted(analyze_pcap(out), key=lambda d: d.attempt.first_frame)
    assert _outcomes(again) == [(v, r, s) for _, v, r, s in EXPECTED]


def _replay(path: Path, mss: int, start: int = 1_700_000_000) -> list[Conversation]:
    """Each TCP connection of a capture as a builder Conversation carrying the same bytes in
    the same order of turns (retransmitted bytes taken once), the first one
    starting at ``start`` (a TLS capture needs its own time: certificates are dated)."""
    from analyzer.decode import Decoder
    from analyzer.source import read_captures as read

    turns: dict[tuple[str, int], list[tuple[bool, bytes]]] = {}
    servers: dict[tuple[str, int], tuple[str, int]] = {}
    next_seq: dict[tuple[str, int], int] = {}  # per sender: the sequence number expected next
    decoder = Decoder()
    for frame in read([str(path)], []):
        segment = decoder.decode(frame)
        if segment is None:
            continue
        src = (_ip(segment.src), segment.sport)
        dst = (_ip(segment.dst), segment.dport)
        if segment.flags & 0x12 == 0x02:  # SYN: the client
            servers[src] = dst
            turns[src] = []
        if segment.flags & 0x02:
            next_seq[src] = (segment.seq + 1) & 0xFFFFFFFF
        if not segment.payload:
            continue
        # a retransmission (loopback under load has them) carries bytes already taken: only
        # what lies past them is new (a later segment before a hole is not expected on lo)
        expected = next_seq.get(src, segment.seq)
        already = (expected - segment.seq) & 0xFFFFFFFF
        if already >= 0x80000000:
            already = 0  # a segment past the expected one (a hole): taken as it is
        payload = segment.payload[already:]
        next_seq[src] = (segment.seq + len(segment.payload)) & 0xFFFFFFFF if payload else expected
        if not payload:
            continue
        client = src if src in servers else dst
        from_client = client == src
        chunks = turns.setdefault(client, [])
        if chunks and chunks[-1][0] == from_client:
            chunks[-1] = (from_client, chunks[-1][1] + payload)
        else:
            chunks.append((from_client, payload))
    conversations = []
    for index, (client, chunks) in enumerate(turns.items()):
        conv = Conversation(client=client, server=servers[client], mss=mss,
                            start=start + index)
        conv.handshake()
        for from_client, data in chunks:
            (conv.client if from_client else conv.server)(data)
        conv.client_fin()
        conv.server_fin()
        conversations.append(conv)
    return conversations


def reorder_within_turns(segments: list[Segment], seed: int) -> list[Segment]:
    """The segments with each run of one direction's data segments shuffled (seeded), times
    given back in order: out-of-order arrival that keeps the conversation's causality. (The
    builder's own ``reorder`` also moves segments across directions, which can put the
    client's Close 1000, its answer to the server's Close 1008, before the server's: a capture
    no on-path tap can make, and a different, client-initiated, close.)"""
    rng = random.Random(seed)
    out: list[Segment] = []
    run: list[Segment] = []

    def flush() -> None:
        shuffled = run[:]
        rng.shuffle(shuffled)
        times = [s.time_ns for s in run]
        out.extend(dataclasses.replace(s, time_ns=t) for s, t in zip(shuffled, times,
                                                                   strict=True))
        run.clear()

    for segment in segments:
        if run and (not segment.payload or segment.from_client != run[0].from_client):
            flush()
        (run if segment.payload else out).append(segment)
    flush()
    assert [s.index for s in out] != [s.index for s in segments]  # something moved
    return out


def _ip(address: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(address) == 4 else socket.AF_INET6, address)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is the referee here")
def test_tshark_sees_the_same_headers_and_statuses(capture: tuple[Path, dict[str, str]]) -> None:
    path, _ = capture
    diagnoses = list(analyze(read_captures([str(path)], []), Analysis()))
    ports = sorted({d.attempt.server.port for d in diagnoses})
    decode_as = [a for p in ports for a in ("-d", f"tcp.port=={p},http2")]
    result = subprocess.run(
        ["tshark", "-r", str(path), *decode_as, "-Y", "http2.type == 1",
         "-T", "fields", "-e", "frame.number", "-e", "http2.streamid",
         "-e", "http2.header.name", "-e", "http2.header.value"],
        capture_output=True, text=True, timeout=60, check=True)
    tshark_requests: list[tuple[int, str]] = []
    tshark_statuses: list[tuple[int, int]] = []
    for line in result.stdout.splitlines():
        number, _, names, values = (line.split("\t") + ["", "", ""])[:4]
        fields = dict(zip(names.split(","), values.split(","), strict=False))
        if ":protocol" in fields:
            tshark_requests.append((int(number), fields[":path"]))
        if ":status" in fields:
            tshark_statuses.append((int(number), int(fields[":status"])))
    ours_requests = [(d.attempt.request.last_frame, d.attempt.request_head.target)
                     for d in diagnoses if d.attempt.request and d.attempt.request_head]
    ours_statuses = [(d.attempt.response.last_frame, d.attempt.response_head.status)
                     for d in diagnoses if d.attempt.response and d.attempt.response_head]
    assert sorted(ours_requests) == sorted(tshark_requests)
    assert sorted(ours_statuses) == sorted(tshark_statuses)
    assert re.search(r"\b400\b", result.stdout)
