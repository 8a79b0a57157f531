"""`live --keylog K --write F.pcapng` end to end (sweep30a B2, B3): a real wss server (python
websockets over `ssl`) and real clients on loopback whose key log K is written as the traffic
happens, followed by `live`, which writes what it captured. The live verdicts must be those of
the sessions (a switch that closed normally, a 403), not certificate rejections judged from
the handshakes while their keys were on their way, and the written file must decrypt on its
own: `read F.pcapng` without --keylog, and tshark when it is installed.

Every server, client and capture is bounded in time and stopped here, by its process id.
"""

from __future__ import annotations

import json
import queue
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_live import ROOT, LiveRun, _lines_of, needs_capture, needs_servers, ws_client
from tests.tls_memory import make_certificate

pytestmark = [needs_capture, needs_servers]

# A websockets server over TLS on a free port of 127.0.0.1: /ws echoes, /forbid answers 403.
# Its port is printed as JSON; it stops by itself after argv[3] seconds.
SERVER = r"""
import asyncio, http, json, ssl, sys
import websockets.asyncio.server as wss

async def echo(ws):
    async for message in ws:
        await ws.send(message)

def gate(connection, request):
    if request.path == "/forbid":
        return connection.respond(http.HTTPStatus.FORBIDDEN, "forbidden\n")
    return None

async def main():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[1], sys.argv[2])
    server = await wss.serve(echo, "127.0.0.1", 0, ssl=context, process_request=gate)
    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    await asyncio.sleep(float(sys.argv[3]))

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def wss_port(certificate: tuple[Path, Path]) -> Iterator[int]:
    cert, key = certificate
    process = subprocess.Popen([sys.executable, "-c", SERVER, str(cert), str(key), "120"],
                               stdout=subprocess.PIPE, text=True)
    try:
        lines: queue.Queue[str] = queue.Queue()
        assert process.stdout is not None
        _lines_of(process.stdout, lines)
        yield int(json.loads(lines.get(timeout=20))["port"])
    finally:
        process.kill()
        process.wait(timeout=10)


def _client_context(cert: Path, keylog: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert))
    context.keylog_filename = str(keylog)  # written by OpenSSL as the handshake goes
    return context


def _sessions(port: int, cert: Path, keylog: Path) -> None:
    """A wss echo closed normally (1000), then a wss handshake the server refuses (403)."""
    assert ws_client is not None
    options: dict[str, Any] = {"ssl": _client_context(cert, keylog),
                               "server_hostname": "localhost", "open_timeout": 5,
                               "close_timeout": 2}
    with ws_client.connect(f"wss://127.0.0.1:{port}/ws", **options) as conn:
        conn.send("hello")
        assert conn.recv(timeout=5) == "hello"
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus):
        ws_client.connect(f"wss://127.0.0.1:{port}/forbid", **options).close()


def _judged(attempts: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted((a["path"], a["status"], a["verdict"], tuple(a["reasons"]),
                   (a.get("tls") or {}).get("decrypted")) for a in attempts)


EXPECTED = [("/forbid", 403, "failed", ("response_forbidden",), True),
            ("/ws", 101, "succeeded", ("ws_closed_normally",), True)]


@pytest.mark.parametrize("keylog_at_start", ["empty", "absent"])
def test_live_keylog_judges_short_wss_sessions_and_writes_a_file_that_decrypts(
        tmp_path: Path, certificate: tuple[Path, Path], wss_port: int,
        keylog_at_start: str) -> None:
    cert, _ = certificate
    keylog, written = tmp_path / "client.keys", tmp_path / "live.pcapng"
    if keylog_at_start == "empty":
        keylog.write_bytes(b"")
    run = LiveRun("-f", f"tcp port {wss_port}", "--keylog", str(keylog),
                  "--write", str(written))
    try:
        run.wait_listening()
        _sessions(wss_port, cert, keylog)
        attempts = run.take(2, timeout=20)
        status, stderr = run.interrupt()
    finally:
        run.kill()
    assert status == 0, stderr
    assert _judged(attempts) == EXPECTED, attempts
    assert "tls_certificate_rejected" not in stderr, stderr
    assert "TLS sessions decrypted: 2" in stderr, stderr
    assert keylog.stat().st_size > 0

    # The written file decrypts without the key log: its keys come before its packets.
    read = subprocess.run([sys.executable, "-m", "analyzer", "read", str(written), "-F", "json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert read.returncode == 0, read.stderr
    document = json.loads(read.stdout)
    assert _judged(document["attempts"]) == EXPECTED, document["summary"]
    tshark = shutil.which("tshark")
    if tshark is not None:
        shown = subprocess.run([tshark, "-r", str(written), "-Y", "http", "-T", "fields",
                                "-e", "http.request.uri", "-e", "http.response.code"],
                               capture_output=True, text=True, timeout=60, check=True)
        assert sorted(shown.stdout.split()) == sorted(["/ws", "101", "/forbid", "403"]), shown
