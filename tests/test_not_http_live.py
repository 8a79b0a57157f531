"""A WebSocket handshake answered in another protocol, by what each real client printed: a
server that speaks HTTP/2 only (nginx's `listen ... http2` without TLS, Hypercorn with prior
knowledge) answers an HTTP/1.1 request with its SETTINGS frame, then a GOAWAY. curl, python
websockets, aiohttp, Node's HTTP client (what the ws library uses) and Chromium each meet it
on ``lo``, captured by tcpdump; the attempt is `failed` `response_not_http`, and its line for
that client (attribution/client_texts.py, the "not_http" kind; ``...`` stands for the bytes some
clients quote) must match what the client printed."""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from analyzer.verdict import Verdict
from tests.helpers import RAW_SERVER, analyze_pcap, start_raw_server
from tests.test_close_code_live import open_websocket_page
from tests.test_h2_live import HOST, _free_port, _stop, tcpdump
from tests.test_h2_live import pytestmark as _live_marks
from tests.test_html_browser import CHROMIUM, DRIVER, browser, webdriver  # noqa: F401 (fixture)

websockets_client = pytest.importorskip("websockets.sync.client")
pytestmark = _live_marks

# Reads one request head, answers with an HTTP/2 server's first frames (SETTINGS, a
# WINDOW_UPDATE), then a GOAWAY PROTOCOL_ERROR, as an h2-only server does to bytes that are
# not its connection preface, and closes.
SERVER = RAW_SERVER + r"""
conn, _ = server.accept()
conn.settimeout(10)
read_head(conn)
conn.sendall(bytes.fromhex("000012040000000000000300000080000400010000000500ffffff"
                           "00000408000000000000ff0001"))
time.sleep(0.2)
conn.sendall(bytes.fromhex("0000080700000000000000000000000001"))
conn.close()
"""
HEADERS = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
NODE = r"""
const http = require('http');
const request = http.get({host: '127.0.0.1', port: +process.argv[1], path: '/ws',
                          headers: JSON.parse(process.argv[2])});
request.on('error', e => console.log(e.message));
request.on('upgrade', () => console.log('upgraded'));
request.on('response', () => console.log('response'));
"""


def _server(port: int) -> subprocess.Popen[bytes]:
    return start_raw_server(SERVER, str(port))


def _said(client: str, port: int) -> str:
    """What ``client`` printed for its handshake to the HTTP/2-only server on ``port``."""
    url = f"ws://{HOST}:{port}/ws"
    if client == "curl":
        headers = [arg for name, value in HEADERS.items() for arg in ("-H", f"{name}: {value}")]
        done = subprocess.run(["curl", "-sS", "-m", "5", *headers, f"http://{HOST}:{port}/ws"],
                              capture_output=True, text=True, timeout=20)
        return done.stderr.strip()
    if client == "Node ws":
        import json

        done = subprocess.run(["node", "-e", NODE, str(port), json.dumps(HEADERS)],
                              capture_output=True, text=True, timeout=20)
        return done.stdout.strip()
    if client == "aiohttp":
        import aiohttp

        async def opening() -> str:
            async with aiohttp.ClientSession() as session:
                try:
                    async with session.ws_connect(url):
                        return "connected"
                except aiohttp.ClientError as error:
                    return f"{type(error).__name__}: {error}"

        return asyncio.run(opening())
    with pytest.raises(Exception) as failed, websockets_client.connect(url, open_timeout=5):
        pass
    return f"{type(failed.value).__name__}: {failed.value}"


def _lines_for(path: Path, client: str | None) -> list[str]:
    (diagnosis,) = analyze_pcap(path)
    assert diagnosis.verdict is Verdict.FAILED, diagnosis.verdict
    assert diagnosis.primary is not None and diagnosis.primary.check == "response_not_http"
    return [line.removeprefix(f"{client}: ") for line in diagnosis.attribution.client_errors
            if line.startswith(f"{client}: ")]


def _matches(line: str, printed: str) -> bool:
    """Whether ``printed`` is ``line``, its ``...`` standing for any text (aiohttp quotes the
    bytes over several lines: compared with its white space as one space)."""
    pattern = ".*".join(re.escape(part) for part in line.split("..."))
    return re.fullmatch(pattern, " ".join(printed.split()), re.DOTALL) is not None


@pytest.mark.parametrize("client", ["curl", "python websockets", "aiohttp", "Node ws"])
def test_a_client_answered_in_http2_prints_what_the_attribution_says(
        tmp_path: Path, client: str) -> None:
    if client == "Node ws" and shutil.which("node") is None:
        pytest.skip("needs node")
    if client == "aiohttp":
        pytest.importorskip("aiohttp")
    port = _free_port()
    server = _server(port)
    path = tmp_path / "h2-only.pcap"
    try:
        with tcpdump(path, [port]):
            printed = _said(client, port)
    finally:
        _stop(server, signal.SIGTERM)
    if client == "curl":  # (its line is curl's whole line)
        lines = [f"curl: {line}" for line in _lines_for(path, "curl")]
    else:
        lines = _lines_for(path, client)
    assert any(_matches(line, printed) for line in lines), (printed, lines)


@pytest.mark.skipif(webdriver is None or CHROMIUM is None or DRIVER is None,
                    reason="needs Chromium, chromedriver and selenium (run-tests.sh installs "
                           "them)")
def test_chromium_answered_in_http2_prints_what_the_attribution_says(  # (``browser``: fixture)
        browser: Any, tmp_path: Path) -> None:  # noqa: F811
    port = _free_port()
    server = _server(port)
    path = tmp_path / "h2-only-chromium.pcap"
    try:
        with tcpdump(path, [port]):
            title, logged = open_websocket_page(browser, tmp_path, port)
    finally:
        _stop(server, signal.SIGTERM)
    assert title == "closed 1006", title
    (predicted,) = _lines_for(path, "Chrome")
    assert any(message.endswith(predicted) for message in logged), (predicted, logged)
