"""Keepalive timeouts with real servers: aiohttp's heartbeat and python websockets'
ping_interval/ping_timeout ping a client that completed its handshake and then never
answers (a stalled or suspended peer). The server gives up and closes within the watch
window: `keepalive_timeout_after_switch` (aborted), not "an end without a Close frame" with
the advice to ping more often (the sweep of the thirtieth session). The client is a raw
socket: no library leaves a Ping unanswered on purpose."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analyzer.verdict import Verdict
from tests.helpers import analyze_pcap
from tests.test_h2_live import HOST, _free_port, _stop, _wait_listening, tcpdump
from tests.test_h2_live import pytestmark as _live_marks

pytestmark = _live_marks

# argv: port. Pings every 0.5 s and gives up on a Pong 0.25 s later (aiohttp: heartbeat/2)
AIOHTTP = r"""
import sys
from aiohttp import web

async def handler(request):
    ws = web.WebSocketResponse(heartbeat=0.5)
    await ws.prepare(request)
    async for _ in ws:
        pass
    return ws

app = web.Application()
app.router.add_get("/ws", handler)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""
WEBSOCKETS = r"""
import asyncio, sys
from websockets.asyncio.server import serve

async def handler(ws):
    async for _ in ws:
        pass

async def main():
    async with serve(handler, "127.0.0.1", int(sys.argv[1]), ping_interval=0.5,
                     ping_timeout=0.5):
        await asyncio.sleep(30)

asyncio.run(main())
"""
SERVERS = {"aiohttp": AIOHTTP, "python websockets": WEBSOCKETS}


def _silent_client(port: int) -> bytes:
    """A handshake, then reading without ever answering, until the server closes (at most
    5 s): what the server sent."""
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection((HOST, port), timeout=5) as conn:
        conn.sendall(f"GET /ws HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
                     f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n".encode())
        received = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                data = conn.recv(4096)
            except (TimeoutError, ConnectionResetError):
                break
            if not data:
                break
            received += data
    return received


@pytest.mark.parametrize("server", list(SERVERS))
def test_a_server_whose_pings_went_unanswered_is_a_keepalive_timeout(
        tmp_path: Path, server: str) -> None:
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-c", SERVERS[server], str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    path = tmp_path / "keepalive.pcap"
    try:
        _wait_listening(port, process)
        time.sleep(0.2)  # (the probe's connection gone)
        with tcpdump(path, [port]):
            received = _silent_client(port)
    finally:
        _stop(process)
    assert received.startswith(b"HTTP/1.1 101"), received[:80]
    assert b"\x89" in received  # the server's Ping (0x89: FIN, opcode 9)
    diagnoses = [d for d in analyze_pcap(path) if d.attempt.request_head is not None
                 and d.attempt.request_head.headers.has("upgrade")]
    (diagnosis,) = diagnoses
    assert diagnosis.verdict is Verdict.ABORTED, diagnosis.verdict
    assert diagnosis.primary is not None
    assert diagnosis.primary.check == "keepalive_timeout_after_switch", diagnosis.findings
