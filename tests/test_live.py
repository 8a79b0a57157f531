"""`upgrade-analyzer live` end to end: real WebSocket servers and clients on loopback, captured
by the real command in a subprocess, judged from the JSONL it streams.

Every server, client and capture is bounded in time and stopped here. Captures filter on the
ports of this module's servers, so other tests' traffic on lo does not show up.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from analyzer.source import read_captures
from analyzer.source.frame import Frame
from analyzer.source.writer import RotatingPcapngWriter
from tests.builder import Conversation, http_response, pcap_bytes, websocket_request
from tests.helpers import analyze_pcap

ROOT = Path(__file__).resolve().parent.parent
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
ON_LINUX = sys.platform.startswith("linux")

try:
    import aiohttp  # noqa: F401
    import websockets.sync.client as ws_client
except ImportError:  # pragma: no cover - the test extra installs both
    ws_client = None  # type: ignore[assignment]

needs_capture = pytest.mark.skipif(
    not (ON_LINUX and IS_ROOT),
    reason="live capture on lo needs Linux and root (CAP_NET_RAW); CI runs as root")
needs_servers = pytest.mark.skipif(
    ws_client is None, reason="needs the 'websockets' and 'aiohttp' packages (pip install .[test])")

RESPONSE_TIMEOUT = 2.0

# The servers, in one subprocess: websockets (echo), aiohttp (a WebSocket route that answers
# 403 to a foreign Origin and 400 to a broken handshake), and a raw TCP server that accepts and
# never answers. Each listens on a free port of 127.0.0.1 and the ports are printed as JSON.
SERVERS = r"""
import asyncio, json, sys
import websockets.asyncio.server as wss
from aiohttp import web

async def echo(ws):
    async for message in ws:
        await ws.send(message)

async def aio_ws(request):
    if request.headers.get("Origin", "http://good.example") != "http://good.example":
        return web.Response(status=403, text="forbidden origin")
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for message in ws:
        await ws.send_str(message.data)
    return ws

async def silent(reader, writer):
    await asyncio.sleep(60)

async def main():
    websockets_server = await wss.serve(echo, "127.0.0.1", 0)
    app = web.Application()
    app.router.add_get("/ws", aio_ws)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    silent_server = await asyncio.start_server(silent, "127.0.0.1", 0)
    print(json.dumps({
        "websockets": websockets_server.sockets[0].getsockname()[1],
        "aiohttp": site._server.sockets[0].getsockname()[1],
        "silent": silent_server.sockets[0].getsockname()[1],
    }), flush=True)
    await asyncio.sleep(float(sys.argv[1]))

asyncio.run(main())
"""

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def _handshake(path: str, *extra: str, key: bool = True) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *extra, "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Version: 13"]
    if key:
        lines.append(f"Sec-WebSocket-Key: {KEY}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _lines_of(stream: Any, into: queue.Queue[Any]) -> threading.Thread:
    def pump() -> None:
        for line in stream:
            into.put(line)
    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, int]]:
    if ws_client is None or not IS_ROOT:
        pytest.skip("needs root and the websockets/aiohttp packages")
    process = subprocess.Popen([sys.executable, "-c", SERVERS, "120"], stdout=subprocess.PIPE,
                               text=True)
    try:
        lines: queue.Queue[str] = queue.Queue()
        assert process.stdout is not None
        _lines_of(process.stdout, lines)
        ports: dict[str, int] = json.loads(lines.get(timeout=20))
        ports["closed"] = _closed_port()
        yield ports
    finally:
        process.kill()
        process.wait(timeout=10)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _port_filter(*ports: int) -> str:
    return " or ".join(f"tcp port {port}" for port in ports)


class LiveRun:
    """`upgrade-analyzer live -F jsonl` in a subprocess (on lo unless told), its output read by
    threads."""

    def __init__(self, *args: str) -> None:
        interface = () if "-i" in args else ("-i", "lo")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "analyzer", "live", *interface, "-F", "jsonl",
             "--response-timeout", str(RESPONSE_TIMEOUT), "--duration", "60", *args],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.process.stdout is not None and self.process.stderr is not None
        self.attempts: queue.Queue[str] = queue.Queue()
        self.errors: queue.Queue[str] = queue.Queue()
        self._threads = [_lines_of(self.process.stdout, self.attempts),
                         _lines_of(self.process.stderr, self.errors)]
        self.stderr: list[str] = []

    def wait_listening(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.errors.get(timeout=0.2)
            except queue.Empty:
                assert self.process.poll() is None, "live exited: " + "".join(self.stderr)
                continue
            self.stderr.append(line)
            if "listening on" in line:
                return
        raise AssertionError("live did not start listening: " + "".join(self.stderr))

    def take(self, count: int, timeout: float) -> list[dict[str, Any]]:
        """The next `count` attempts streamed (fewer if `timeout` passes first)."""
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(out) < count and (left := deadline - time.monotonic()) > 0:
            with contextlib.suppress(queue.Empty):
                out.append(json.loads(self.attempts.get(timeout=left)))
        return out

    def interrupt(self) -> tuple[int, str]:
        """Ctrl-C; the exit status and everything it wrote to standard error."""
        self.process.send_signal(signal.SIGINT)
        status = self.process.wait(timeout=15)
        for thread in self._threads:
            thread.join(timeout=5)
        while not self.errors.empty():
            self.stderr.append(self.errors.get())
        return status, "".join(self.stderr)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@contextlib.contextmanager
def live(*args: str) -> Iterator[LiveRun]:
    run = LiveRun(*args)
    try:
        run.wait_listening()
        yield run
    finally:
        run.kill()


def _exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(request)
        return conn.recv(4096)


def _websocket(url: str, origin: str | None = None) -> None:
    assert ws_client is not None
    kwargs: dict[str, Any] = {"open_timeout": 5, "close_timeout": 2}
    if origin:
        kwargs["origin"] = origin
    with ws_client.connect(url, **kwargs) as conn:
        conn.send("hello")
        assert conn.recv(timeout=5) == "hello"


def _refused(port: int) -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def _by_server(attempts: list[dict[str, Any]]) -> dict[tuple[int, str, int | None], int]:
    seen: dict[tuple[int, str, int | None], int] = {}
    for a in attempts:
        key = (int(a["server"].rsplit(":", 1)[1]), a["verdict"], a["status"])
        seen[key] = seen.get(key, 0) + 1
    return seen


@needs_capture
@needs_servers
def test_live_streams_every_attempt_with_its_verdict(servers: dict[str, int],
                                                     tmp_path: Path) -> None:
    ws, aio, silent, closed = (servers[k] for k in ("websockets", "aiohttp", "silent", "closed"))
    saved = tmp_path / "live.pcapng"
    with live("-f", _port_filter(ws, aio, silent, closed), "--write", str(saved),
              "--tcp") as run:
        _websocket(f"ws://127.0.0.1:{ws}/")
        _websocket(f"ws://127.0.0.1:{aio}/ws", origin="http://good.example")
        # websockets answers a plain GET with 426 Upgrade Required
        assert _exchange(ws, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").startswith(
            b"HTTP/1.1 426")
        assert _exchange(aio, _handshake("/ws", key=False)).startswith(b"HTTP/1.1 400")
        assert _exchange(aio, _handshake("/ws", "Origin: http://evil.example")).startswith(
            b"HTTP/1.1 403")
        _refused(closed)
        rejected = run.take(4, timeout=10)  # decided at once: no timeout involved
        with socket.create_connection(("127.0.0.1", silent), timeout=5) as waiting:
            waiting.sendall(_handshake("/chat"))
            started = time.monotonic()
            rest = run.take(3, timeout=RESPONSE_TIMEOUT + 8)
            waited = time.monotonic() - started
        status, stderr = run.interrupt()

    attempts = rejected + rest
    assert _by_server(attempts) == {
        (ws, "succeeded", 101): 1,
        (ws, "failed", 426): 1,
        (aio, "succeeded", 101): 1,
        (aio, "failed", 400): 1,
        (aio, "failed", 403): 1,
        (closed, "refused", None): 1,
        (silent, "no_response", None): 1,
    }, attempts
    assert waited >= RESPONSE_TIMEOUT - 0.5  # reported once the response timeout passed
    assert [a["number"] for a in attempts] == list(range(1, 8))
    assert status == 0, stderr
    assert "Attempts: 7 (3 failed, 1 no_response, 1 refused, 2 succeeded)" in stderr
    packets = next(line for line in stderr.splitlines() if line.startswith("Packets: "))
    received = int(packets.split()[1])
    assert received > 20 and "dropped by the kernel" in packets
    assert "Traceback" not in stderr
    # --write kept the raw packets: a later `read` finds the same attempts.
    again = analyze_pcap(saved)
    assert sorted((d.attempt.server.port, d.verdict.value) for d in again) == sorted(
        (int(a["server"].rsplit(":", 1)[1]), a["verdict"]) for a in attempts)


@needs_capture
@needs_servers
def test_filter_leaves_out_the_servers_it_excludes(servers: dict[str, int]) -> None:
    ws, aio = servers["websockets"], servers["aiohttp"]
    with live("-f", _port_filter(ws)) as run:
        assert _exchange(aio, _handshake("/ws", "Origin: http://evil.example")).startswith(
            b"HTTP/1.1 403")
        _websocket(f"ws://127.0.0.1:{aio}/ws", origin="http://good.example")
        assert _exchange(ws, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").startswith(
            b"HTTP/1.1 426")
        _websocket(f"ws://127.0.0.1:{ws}/")
        attempts = run.take(2, timeout=10)
        attempts += run.take(1, timeout=1.5)  # nothing more may come
        status, stderr = run.interrupt()
    assert _by_server(attempts) == {(ws, "failed", 426): 1, (ws, "succeeded", 101): 1}, attempts
    assert status == 0 and "Attempts: 2 (1 failed, 1 succeeded)" in stderr


@needs_capture
def test_count_stops_after_that_many_attempts_on_any() -> None:
    closed = _closed_port()  # `any` gives Linux cooked frames: decoded all the same
    with live("-i", "any", "-f", _port_filter(closed), "--count", "2", "--tcp") as run:
        for _ in range(3):
            _refused(closed)
        status = run.process.wait(timeout=15)
        attempts = run.take(3, timeout=1)
    assert status == 0
    assert [a["verdict"] for a in attempts] == ["refused", "refused"]


def _cli(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, sys.executable, "-m", "analyzer", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_unknown_interface_is_one_line_listing_the_real_ones() -> None:
    result = _cli("live", "-i", "nosuchif0", "--duration", "1")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "nosuchif0" in result.stderr and "lo" in result.stderr and "any" in result.stderr


def test_invalid_filter_shows_the_compiler_message() -> None:
    result = _cli("live", "-i", "lo", "-f", "tcp prot 80", "--duration", "1")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "tcp prot 80" in result.stderr and "syntax error" in result.stderr


def _unprivileged() -> tuple[str, ...] | None:
    """A command prefix that runs without CAP_NET_RAW: root with the capability dropped from
    its bounding set (works wherever Python is installed), else the user nobody."""
    if shutil.which("setpriv"):
        return ("setpriv", "--bounding-set", "-net_raw", "--inh-caps", "-net_raw")
    if shutil.which("runuser"):
        return ("runuser", "-u", "nobody", "--")
    return None


@pytest.mark.skipif(not (ON_LINUX and IS_ROOT), reason="dropping a capability needs root")
@pytest.mark.skipif(_unprivileged() is None, reason="needs setpriv or runuser")
def test_not_permitted_says_which_privilege_is_needed() -> None:
    prefix = _unprivileged()
    assert prefix is not None
    if _cli("--version", prefix=prefix).returncode != 0:
        pytest.skip("the unprivileged user cannot run this Python (installed under /root?)")
    result = _cli("live", "-i", "lo", "--duration", "1", prefix=prefix)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "CAP_NET_RAW" in result.stderr and "root" in result.stderr and "lo" in result.stderr


def test_read_from_a_pipe_prints_table_rows_as_they_are_decided() -> None:
    conv = Conversation(client=("10.0.0.1", 51000), server=("10.0.0.2", 8080))
    conv.handshake()
    conv.client(websocket_request("example.com", "/chat"))
    conv.server(http_response(403, "Forbidden", [("Content-Length", "9")], b"forbidden"),
                delay=0.003)
    process = subprocess.Popen([sys.executable, "-m", "analyzer", "read", "-"], cwd=ROOT,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(pcap_bytes([conv]))
        process.stdin.flush()  # the pipe stays open: the capture is still running
        lines: queue.Queue[bytes] = queue.Queue()
        _lines_of(process.stdout, lines)
        head, rule, row = (lines.get(timeout=20) for _ in range(3))
        assert b"verdict" in head and rule.startswith(b"----")
        assert b"403" in row and b"failed" in row
        process.stdin.close()
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_written_files_rotate_at_the_size_limit_and_keep_the_newest(tmp_path: Path) -> None:
    base = tmp_path / "cap.pcapng"
    writer = RotatingPcapngWriter(str(base), [("lo", 1)], 65535, limit=4000, keep=3)
    frames = [Frame(n, 1_700_000_000.0 + n / 1000, 1, bytes(114), 114) for n in range(1, 101)]
    try:
        for frame in frames:
            writer.write(frame)
    finally:
        writer.close()
    files = sorted(tmp_path.iterdir(), key=lambda p: p.stat().st_mtime_ns)
    assert [p.name for p in files] == ["cap.1.pcapng", "cap.2.pcapng", "cap.3.pcapng"]
    assert all(p.stat().st_size <= 4000 for p in files)
    kept = list(read_captures([str(p) for p in files], []))
    assert [f.data for f in kept] == [f.data for f in frames[-len(kept):]]
    assert [round(f.time, 3) for f in kept] == [round(f.time, 3) for f in frames[-len(kept):]]
    assert len(kept) > 50


@needs_capture
def test_refused_connections_are_counted_apart_without_tcp() -> None:
    """A port scan seen live: not listed, not counted by --count, one summary line."""
    closed = _closed_port()
    with live("-f", _port_filter(closed), "--count", "1") as run:
        for _ in range(3):
            _refused(closed)
        attempts = run.take(1, timeout=2.0)
        status, stderr = run.interrupt()
    assert attempts == [] and status == 0
    assert "Attempts: 0 (none)" in stderr
    assert ("Never reached HTTP (refused or unanswered connections; --tcp lists them): "
            "3 (3 refused)") in stderr


class _Backlog:
    """A capture whose kernel buffer still holds packets when the stop comes: each read gives
    at most `batch` of them (the real socket gives at most 1024 per read)."""

    def __init__(self, frames: list[Frame], batch: int) -> None:
        self.frames, self.batch, self.reads = frames, batch, 0

    def poll(self, timeout: float) -> list[Frame]:
        self.reads += 1
        out, self.frames = self.frames[:self.batch], self.frames[self.batch:]
        return out


def _refused_handshakes(tmp_path: Path, count: int) -> list[Frame]:
    """The frames of ``count`` WebSocket handshakes to /chat0.. each refused with 403."""
    conversations = []
    for n in range(count):
        conv = Conversation(client=("10.0.0.1", 51000 + n), server=("10.0.0.2", 8080))
        conv.handshake()
        conv.client(websocket_request("example.com", f"/chat{n}"))
        conv.server(http_response(403, "Forbidden", [("Content-Length", "9")], b"forbidden"),
                    delay=0.003)
        conversations.append(conv)
    path = tmp_path / "refused.pcap"
    path.write_bytes(pcap_bytes(conversations))
    return list(read_captures([str(path)], []))


def test_the_stop_reads_everything_already_captured(tmp_path: Path) -> None:
    """Ctrl-C with seconds of packets still in the socket buffer (a loaded machine): their
    attempts are judged from them, not left `no_response` because the answer was unread."""
    from analyzer.live import run_live
    from analyzer.pipeline import Analysis

    frames = _refused_handshakes(tmp_path, 5)
    source = _Backlog(frames, batch=3)
    analysis = Analysis()
    decided = list(run_live(source, analysis, 5.0, should_stop=lambda: True))
    decided += analysis.finish()
    assert source.reads > len(frames) // 3  # it read on past the first batch
    assert sorted(d.attempt.request_head.target for d in decided  # type: ignore[union-attr]
                  ) == [f"/chat{n}" for n in range(5)]
    assert {d.verdict.value for d in decided} == {"failed"}


def test_time_does_not_run_ahead_of_a_backlog(tmp_path: Path) -> None:
    """The analyzer has fallen 100 s behind the kernel (a loaded machine): the answers still
    queued are read before their requests are judged unanswered, however often time ticks."""
    from analyzer.live import run_live
    from analyzer.pipeline import Analysis

    frames = _refused_handshakes(tmp_path, 6)
    source = _Backlog(frames, batch=2)
    wall = [frames[-1].time + 100.0]

    def clock() -> float:  # a second a call: every loop ticks
        wall[0] += 1.0
        return wall[0]

    analysis = Analysis()
    decided = list(run_live(source, analysis, 5.0, clock=clock,
                            should_stop=lambda: not source.frames))
    decided += analysis.finish()
    assert {d.verdict.value for d in decided} == {"failed"}  # none no_response
    assert len(decided) == 6
