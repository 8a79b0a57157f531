"""The life of real WebSocket connections on loopback, captured with tcpdump: python websockets
clients and servers, nginx with `proxy_read_timeout 3s` in front of one of them, and a server
process killed while it holds several connections. Every connection works past its watch
window (2 s) first, so each verdict is decided by how its life ended.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from analyzer.life.fold import fold, with_groups
from analyzer.pipeline import Analysis
from analyzer.source import read_records
from analyzer.verdict import Diagnosis, Verdict
from tests.helpers import nginx_conf

websockets = pytest.importorskip("websockets")
pytestmark = pytest.mark.skipif(
    shutil.which("tcpdump") is None or shutil.which("nginx") is None or os.geteuid() != 0,
    reason="needs tcpdump and nginx, and root to capture on lo")

HOST = "127.0.0.1"
NGINX_SERVER = """        listen {host}:{port};
        location / {{
            proxy_pass http://{host}:{backend};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 3s;
        }}"""
# A server process that is killed while it holds connections (a crash, an OOM kill).
DOOMED = """
import asyncio, sys, websockets
async def echo(ws):
    async for message in ws:
        await ws.send(message)
async def main():
    async with websockets.serve(echo, "127.0.0.1", int(sys.argv[1]), ping_interval=None):
        print("ready", flush=True)
        await asyncio.Future()
asyncio.run(main())
"""


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _wait_listening(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


def _stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


async def _talk(uri: str, until: float, then: str, code: int = 1000, **options: Any) -> str:
    """Connects, sends a message now and another at 2.5 s (past the watch window), then
    ``then``: "idle" (wait until ``until`` s), "close" (Close ``code``), or "open"."""
    start = time.monotonic()
    async with websockets.connect(uri, ping_interval=None, open_timeout=5,
                                  close_timeout=2, **options) as ws:
        await ws.send("hello")
        await ws.recv()
        await asyncio.sleep(2.5)
        await ws.send("still here")
        await ws.recv()
        if then == "close":
            await ws.close(code)
            return "closed"
        try:
            await asyncio.wait_for(ws.recv(), until - (time.monotonic() - start))
        except TimeoutError:
            return "open"
        except websockets.ConnectionClosed as closed:
            return f"closed {closed.rcvd.code if closed.rcvd else 1006}"
    return "done"


async def _traffic(ports: dict[str, int], doomed: subprocess.Popen[bytes]) -> dict[str, str]:
    async def handler(ws):  # type: ignore[no-untyped-def]
        async for message in ws:
            await ws.send(message)
            if ws.request.path == "/crash" and message == "still here":
                await ws.close(1011, "boom")  # the application failed after working a while

    out: dict[str, str] = {}
    async with websockets.serve(handler, HOST, ports["backend"], ping_interval=None):
        async def kill_later() -> None:
            await asyncio.sleep(4.5)
            doomed.kill()  # the process dies with 3 connections open

        async def doomed_client(n: int) -> None:
            await asyncio.sleep(n * 0.6)
            out[f"doomed{n}"] = await _talk(f"ws://{HOST}:{ports['doomed']}/feed", 8.0, "idle")

        tasks = [
            _talk(f"ws://{HOST}:{ports['nginx']}/quiet", 9.0, "idle"),
            _talk(f"ws://{HOST}:{ports['backend']}/crash", 8.0, "idle"),
            _talk(f"ws://{HOST}:{ports['backend']}/bye", 8.0, "close"),
            _talk(f"ws://{HOST}:{ports['backend']}/stay", 6.0, "open"),
        ]
        names = ["quiet", "crash", "bye", "stay"]
        results = await asyncio.gather(*tasks, kill_later(),
                                       *(doomed_client(n) for n in range(3)),
                                       return_exceptions=True)
        out.update(zip(names, (str(r) for r in results[:4]), strict=True))
    return out


@pytest.fixture(scope="module")
def lives() -> Iterator[tuple[list[Diagnosis], dict[str, int], dict[str, str]]]:
    names = ("nginx", "backend", "doomed")
    ports = dict(zip(names, _free_ports(3), strict=True))
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="life-real-") as tmp:
        path = Path(tmp, "life.pcap")
        conf = Path(tmp, "nginx.conf")
        conf.write_text(nginx_conf(tmp, NGINX_SERVER.format(host=HOST, port=ports["nginx"],
                                                            backend=ports["backend"])))
        where = " or ".join(f"port {p}" for p in ports.values())
        try:
            dump = subprocess.Popen(["tcpdump", "-i", "lo", "-U", "-s", "0", "-w", str(path),
                                     f"tcp and ({where})"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE)
            processes.append(dump)
            nginx = subprocess.Popen(["nginx", "-p", tmp, "-e", f"{tmp}/error.log", "-c",
                                      str(conf), "-g", "daemon off; master_process off;"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            processes.append(nginx)
            doomed = subprocess.Popen([sys.executable, "-c", DOOMED, str(ports["doomed"])],
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            processes.append(doomed)
            assert doomed.stdout is not None and doomed.stdout.readline() == b"ready\n"
            _wait_listening(ports["nginx"])
            time.sleep(0.5)  # tcpdump's filter is attached (it says so on stderr, buffered)
            said = asyncio.run(asyncio.wait_for(_traffic(ports, doomed), 30))
            time.sleep(0.5)
        finally:
            for process in reversed(processes):  # nginx stops gracefully on SIGQUIT
                _stop(process, signal.SIGQUIT if process.args[0] == "nginx" else signal.SIGTERM)
        run = Analysis(lifetimes=True)
        events = [*run.feed_records(read_records([str(path)], [])), *run.finish()]
        from tests.helpers import run_cli

        # the streamed report of the same capture (its summary is on standard error)
        streamed = run_cli("read", path, "-F", "jsonl")
        said["jsonl"], said["jsonl summary"] = streamed.stdout, streamed.stderr
        yield with_groups(fold(events)), ports, said


def _at(diagnoses: list[Diagnosis], port: int, path: str) -> Diagnosis:
    [found] = [d for d in diagnoses if d.attempt.server.port == port
               and d.attempt.request_head is not None and d.attempt.request_head.target == path]
    return found


def test_nginx_idle_timeout_drops_the_quiet_websocket(lives) -> None:  # type: ignore[no-untyped-def]
    diagnoses, ports, said = lives
    assert said["quiet"] == "closed 1006", said  # the client saw no Close frame
    front = _at(diagnoses, ports["nginx"], "/quiet")
    assert front.verdict is Verdict.DROPPED
    assert front.primary is not None and front.primary.check == "idle_timeout_after_switch"
    assert front.lifetime is not None and front.lifetime.closed_by == "server"
    assert abs(front.lifetime.idle_before_end_s - 3.0) < 0.5, front.lifetime
    assert "3.0 s of silence" in front.primary.found and "127.0.0.1" in front.primary.found
    assert "a timeout of that length" in front.primary.found
    # nginx's leg to the backend: nginx (the client of that leg) closed it without a Close
    back = _at(diagnoses, ports["backend"], "/quiet")
    assert back.verdict is Verdict.DROPPED and back.lifetime is not None
    assert back.lifetime.closed_by == "client"


def test_close_1011_after_working_is_dropped(lives) -> None:  # type: ignore[no-untyped-def]
    diagnoses, ports, said = lives
    crash = _at(diagnoses, ports["backend"], "/crash")
    assert crash.verdict is Verdict.DROPPED, crash.findings
    assert crash.primary is not None and crash.primary.check == "close_internal_error"
    assert crash.lifetime is not None and crash.lifetime.close_code == 1011
    assert crash.lifetime.close_side == "server" and "boom" in crash.primary.found


def test_a_normal_close_and_an_open_connection_succeed(lives) -> None:  # type: ignore[no-untyped-def]
    diagnoses, ports, said = lives
    bye = _at(diagnoses, ports["backend"], "/bye")
    assert bye.verdict is Verdict.SUCCEEDED and bye.lifetime is not None
    assert (bye.lifetime.how, bye.lifetime.close_code) == ("close_handshake", 1000)
    stay = _at(diagnoses, ports["backend"], "/stay")
    assert stay.verdict is Verdict.SUCCEEDED and stay.lifetime is not None
    # its client closed (1000) when its wait ended, or the capture ended first
    assert stay.lifetime.how in ("open", "close_handshake"), stay.lifetime


def test_a_killed_server_ends_its_connections_at_once(lives) -> None:  # type: ignore[no-untyped-def]
    diagnoses, ports, said = lives
    doomed = [d for d in diagnoses if d.attempt.server.port == ports["doomed"]]
    assert len(doomed) == 3, said
    for d in doomed:
        assert d.verdict is Verdict.DROPPED, d.findings
        assert d.primary is not None and d.primary.check == "server_reset_many", d.findings
        assert d.lifetime is not None and d.lifetime.closed_by == "server"


def test_group_rules_are_reported_in_streamed_output(lives) -> None:  # type: ignore[no-untyped-def]
    """JSONL has printed each line before the rules over several ends can be known: its
    summary names the group and its attempts, the same ones the sorted report marks."""
    diagnoses, ports, said = lives
    lines = [json.loads(line) for line in said["jsonl"].splitlines()]
    doomed = sorted(line["number"] for line in lines if line["event"] == "ended"
                    and line["server"].endswith(f":{ports['doomed']}"))
    assert len(doomed) == 3, lines
    groups = [line for line in said["jsonl summary"].splitlines()
              if line.startswith("Group: server_reset_many: ")]
    assert len(groups) == 1, said["jsonl summary"]
    assert " 3 connections within 1 s " in groups[0]
    assert groups[0].endswith(f"(attempts {', '.join(map(str, doomed))})"), groups
    # near miss: the nginx idle timeout and the 1011 close are single ends, in no group
    assert "max_lifetime_reached" not in said["jsonl summary"]
    assert sum(line.startswith("Group: ") for line in said["jsonl summary"].splitlines()) == 1


def test_live_prints_the_decided_line_then_the_ended_line() -> None:
    """`live -F jsonl` (its own capture on lo, no tcpdump): a WebSocket is decided
    `succeeded` when its first 2 s are over, then its server's Close 1011 ends it: a second
    line with the same number says `dropped`."""
    import threading

    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect
    from websockets.sync.server import serve

    from tests.test_live import live

    def handler(ws: Any) -> None:
        for message in ws:
            ws.send(message)
            if message == "still here":
                ws.close(1011, "boom")

    [port] = _free_ports(1)
    server = serve(handler, HOST, port, compression=None)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with live("-f", f"tcp port {port}") as run:
            with connect(f"ws://{HOST}:{port}/live", open_timeout=5, close_timeout=2,
                         compression=None) as ws:
                ws.send("hello")
                ws.recv(timeout=5)
                time.sleep(2.5)
                ws.send("still here")
                ws.recv(timeout=5)
                with pytest.raises(ConnectionClosed):
                    ws.recv(timeout=5)
            lines = run.take(2, timeout=10)
            status, _ = run.interrupt()
    finally:
        server.shutdown()
        thread.join(timeout=5)
    assert status == 0
    assert [(line["event"], line["verdict"]) for line in lines] == [
        ("decided", "succeeded"), ("ended", "dropped")], lines
    assert lines[0]["number"] == lines[1]["number"]
    assert lines[1]["reasons"][0] == "close_internal_error"
    assert lines[1]["lifetime"]["close_code"] == 1011
