"""The life of real wss:// WebSockets on loopback, decrypted with the client's key log: python
websockets over TLS, and nginx terminating TLS with `proxy_read_timeout 3s` in front of a
cleartext websockets backend; captured with tcpdump on ``lo`` and read by the command line with
``--keylog``. Every connection works past its watch window (2 s) first, so each verdict is
decided by how its life ended, as for cleartext (tests/test_life_real.py).
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from analyzer.life.model import Ended
from analyzer.pipeline import Analysis
from analyzer.source import read_records
from analyzer.tls.keylog import KeyStore
from tests.helpers import nginx_conf, run_cli
from tests.test_life_real import HOST, _free_ports, _stop, _talk, _wait_listening
from tests.test_life_real import NGINX_SERVER as CLEARTEXT_SERVER
from tests.test_life_real import pytestmark as _live_marks
from tests.tls_memory import make_certificate

websockets = pytest.importorskip("websockets")
pytestmark = _live_marks

# test_life_real's proxy (proxy_read_timeout 3s), terminating TLS
NGINX_SERVER = CLEARTEXT_SERVER.replace("listen {host}:{port};", """listen {host}:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};""")


# The wss server on its own (a process stopped after the traffic): asyncio's TLS transports
# sometimes keep a socket open after both close_notify alerts, so a server in the test's
# process may send its FIN only after the capture has stopped; the process's end sends it.
DIRECT = """
import asyncio, ssl, sys, websockets
async def handler(ws):
    async for message in ws:
        await ws.send(message)
        if ws.request.path == "/crash" and message == "still here":
            await ws.close(1011, "boom")  # the application failed after working a while
        if ws.request.path == "/notify" and message == "still here":
            await asyncio.sleep(1.5)
            # TLS close_notify without a Close frame; the transport waits for the client's
            # close_notify before its FIN, so the client's FIN comes first
            ws.transport.close()
async def main():
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(sys.argv[2], sys.argv[3])
    async with websockets.serve(handler, "127.0.0.1", int(sys.argv[1]), ping_interval=None,
                                ssl=tls):
        print("ready", flush=True)
        await asyncio.Future()
asyncio.run(main())
"""


async def _traffic(ports: dict[str, int], cert: Path, keylog: Path) -> dict[str, str]:
    async def echo(ws):  # type: ignore[no-untyped-def]
        async for message in ws:
            await ws.send(message)

    client_tls = ssl.create_default_context(cafile=str(cert))
    client_tls.keylog_filename = str(keylog)  # what browsers write with SSLKEYLOGFILE

    async def talk(port: int, path: str, until: float, then: str) -> str:
        return await _talk(f"wss://localhost:{port}{path}", until, then, ssl=client_tls)

    async with websockets.serve(echo, HOST, ports["backend"], ping_interval=None):
        names = ["quiet", "crash", "bye", "notify"]
        results = await asyncio.gather(
            talk(ports["nginx"], "/quiet", 9.0, "idle"),
            talk(ports["direct"], "/crash", 8.0, "idle"),
            talk(ports["direct"], "/bye", 8.0, "close"),
            talk(ports["direct"], "/notify", 8.0, "idle"),
            return_exceptions=True)
    return dict(zip(names, (str(r) for r in results), strict=True))


def _record(tmp: str, ports: dict[str, int], cert: Path, key: Path, path: Path,
            keylog: Path) -> tuple[dict[str, str], int]:
    """One run of the traffic under tcpdump: what each client said, and the packets the
    kernel dropped (tcpdump's count; -1 when it said none)."""
    where = " or ".join(f"port {p}" for p in ports.values())
    processes: list[subprocess.Popen[bytes]] = []
    try:
        # --immediate-mode: the ends come last, and tcpdump stopped right after them
        # lost the packets still in its kernel buffer block
        dump = subprocess.Popen(["tcpdump", "-i", "lo", "-U", "--immediate-mode", "-s", "0",
                                 "-B", "8192", "-w", str(path), f"tcp and ({where})"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        processes.append(dump)
        nginx = subprocess.Popen(["nginx", "-p", tmp, "-e", f"{tmp}/error.log", "-c",
                                  f"{tmp}/nginx.conf", "-g", "daemon off; master_process off;"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(nginx)
        direct = subprocess.Popen([sys.executable, "-c", DIRECT, str(ports["direct"]),
                                   str(cert), str(key)],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        processes.append(direct)
        assert direct.stdout is not None and direct.stdout.readline() == b"ready\n"
        _wait_listening(ports["nginx"])
        time.sleep(0.5)  # tcpdump's filter is attached
        said = asyncio.run(asyncio.wait_for(_traffic(ports, cert, keylog), 30))
        _stop(direct)
        time.sleep(0.5)
    finally:
        for process in reversed(processes):
            _stop(process, signal.SIGQUIT if process.args[0] == "nginx" else signal.SIGTERM)
    assert dump.stderr is not None
    dropped = re.search(rb"(\d+) packets? dropped by kernel", dump.stderr.read())
    return said, int(dropped.group(1)) if dropped else -1


@pytest.fixture(scope="module")
def capture() -> Iterator[tuple[Path, Path, dict[str, int], dict[str, str]]]:
    names = ("nginx", "backend", "direct")
    ports = dict(zip(names, _free_ports(3), strict=True))
    with tempfile.TemporaryDirectory(prefix="life-tls-") as tmp:
        path, keylog = Path(tmp, "wss.pcap"), Path(tmp, "wss.keys")
        cert, key = make_certificate(Path(tmp))
        Path(tmp, "nginx.conf").write_text(nginx_conf(tmp, NGINX_SERVER.format(
            host=HOST, port=ports["nginx"], backend=ports["backend"], cert=cert, key=key)))
        # The sessions' handshakes come in one burst: when the kernel dropped some of it (a
        # loaded machine), the capture is not the traffic: record it again (at most 3 times).
        for _ in range(3):
            keylog.unlink(missing_ok=True)
            said, dropped = _record(tmp, ports, cert, key, path, keylog)
            if dropped <= 0:
                break
        assert dropped <= 0, f"tcpdump: {dropped} packets dropped by the kernel, 3 times"
        yield path, keylog, ports, said


def _read(path: Path, keylog: Path, *options: str) -> Any:
    result = run_cli("read", path, "--keylog", keylog, *options)
    assert result.exit_code == 0, result.output
    return result.stdout


def _attempt(attempts: list[dict[str, Any]], port: int, path: str) -> dict[str, Any]:
    found = [a for a in attempts if a["server"].endswith(f":{port}") and a.get("path") == path]
    assert len(found) == 1, (port, path, [(a["server"], a.get("path"), a["verdict"])
                                          for a in attempts])
    return found[0]


def test_wss_lives_are_followed_inside_tls(capture) -> None:  # type: ignore[no-untyped-def]
    path, keylog, ports, said = capture
    assert said == {"quiet": "closed 1006", "crash": "closed 1011", "bye": "closed",
                    "notify": "closed 1006"}, said
    attempts = json.loads(_read(path, keylog, "-F", "json"))["attempts"]
    # nginx's idle timeout ended the quiet one without a Close frame: dropped, and the TLS
    # leg says so as the cleartext leg behind it does
    quiet = _attempt(attempts, ports["nginx"], "/quiet")
    assert quiet["tls"]["decrypted"] is True
    assert quiet["verdict"] == "dropped", quiet
    assert quiet["reasons"][0] == "idle_timeout_after_switch", quiet
    life = quiet["lifetime"]
    assert life["closed_by"] == "server" and life["how"] in ("fin", "rst"), life
    assert abs(life["idle_before_end_s"] - 3.0) < 0.5, life
    back = _attempt(attempts, ports["backend"], "/quiet")
    assert back["verdict"] == "dropped" and back["lifetime"]["closed_by"] == "client"
    # a Close 1011 inside the TLS records is read from the decrypted tail
    crash = _attempt(attempts, ports["direct"], "/crash")
    assert crash["verdict"] == "dropped", crash
    assert crash["reasons"][0] == "close_internal_error", (crash["lifetime"], crash["findings"])
    assert crash["lifetime"]["close_code"] == 1011
    # a clean Close handshake succeeds, with its lifetime
    bye = _attempt(attempts, ports["direct"], "/bye")
    assert bye["verdict"] == "succeeded", bye
    assert (bye["lifetime"]["how"], bye["lifetime"]["close_code"]) == ("close_handshake", 1000)
    assert bye["lifetime"]["duration_s"] > 2.0
    # the server's close_notify after 1.5 s of silence, then the client's FIN before the
    # server's: the alert ended the server's stream first, so the server closed (an idle
    # timeout), as when nginx's proxy_read_timeout waits for the client's close_notify
    notify = _attempt(attempts, ports["direct"], "/notify")
    assert notify["verdict"] == "dropped", notify
    assert notify["lifetime"]["closed_by"] == "server", notify
    assert notify["reasons"][0] == "idle_timeout_after_switch", notify


def test_wss_ends_are_streamed_as_ended_lines(capture) -> None:  # type: ignore[no-untyped-def]
    path, keylog, ports, said = capture
    lines = [json.loads(line) for line in _read(path, keylog, "-F", "jsonl").splitlines()]
    events = [line for line in lines if line.get("event") in ("decided", "ended")]
    by_number: dict[int, list[dict[str, Any]]] = {}
    for line in events:
        by_number.setdefault(line["number"], []).append(line)
    tls = [pair for pair in by_number.values() if pair[0].get("tls")]
    assert len(tls) == 4, by_number
    for pair in tls:
        assert [line["event"] for line in pair] == ["decided", "ended"], pair
        assert pair[0]["verdict"] == "succeeded"  # its first 2 s worked
    finals = sorted(pair[1]["verdict"] for pair in tls)
    assert finals == ["dropped", "dropped", "dropped", "succeeded"], tls


def test_without_the_key_there_is_no_life(capture) -> None:  # type: ignore[no-untyped-def]
    """Near miss: without --keylog the sessions are only counted (nothing to follow)."""
    path, keylog, ports, said = capture
    result = run_cli("read", path, "-F", "json")
    attempts = json.loads(result.stdout)["attempts"]
    assert all(not a.get("tls") for a in attempts), attempts


def test_the_compiled_path_and_python_give_the_same_lives(capture) -> None:  # type: ignore[no-untyped-def]
    """The records of a session in life are gathered in C (tls/passing.py); the pure-Python
    path reads every segment itself: the same ends, lifetimes and verdicts."""
    path, keylog, ports, said = capture
    keys = KeyStore()
    keys.add_text(keylog.read_bytes())
    keys.finish()
    results = []
    for compiled in (True, False):
        run = Analysis(lifetimes=True, secrets=keys, compiled=compiled)
        events = [*run.feed_records(read_records([str(path)], [])), *run.finish()]
        results.append(sorted((e.key, e.lifetime, e.verdict) for e in events
                              if isinstance(e, Ended)))
    assert len(results[0]) == 5, results[0]  # the four wss sessions and nginx's backend leg
    assert results[0] == results[1]

