"""A handshake nobody answered, by how the wait ended: the server closed the connection, reset
it, or said nothing until the client gave up. Real clients on ``lo`` captured by tcpdump:
python websockets, curl and Chromium (through selenium, as tests/test_html_browser.py drives
it). What each client printed is read from the client itself, and the attempt's attribution
must predict exactly that line (attribution/client_texts.py, the "no_response" kinds): each way of
ending the wait has words of its own (a closed connection is not a timeout). The server is a
few lines of raw socket code, since no library fails this way on purpose."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
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
websockets_asyncio = pytest.importorskip("websockets.asyncio.client")
pytestmark = _live_marks

# Reads each request (at most four connections, for at most 30 s), then closes (argv[2]
# "closed"), resets ("reset") or keeps the connection open and silent ("silent", closed when
# the client has gone; "silent-tls": the same without reading a head first).
SERVER = RAW_SERVER + r"""
how = sys.argv[2]
for _ in range(4):
    conn, _ = server.accept()
    conn.settimeout(10)
    if how != "silent-tls":  # (a ClientHello has no end)
        read_head(conn)
    if how == "reset":
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    elif how.startswith("silent"):
        drain(conn)
    conn.close()
"""
HOW = ("closed", "reset", "silent")
FINDING = {"closed": "no_response_server_closed", "reset": "no_response_server_reset",
           "silent": "no_response_client_gave_up"}
GIVE_UP_S = 1  # the clients' own timeout when the server is silent


def _server(port: int, how: str) -> subprocess.Popen[bytes]:
    return start_raw_server(SERVER, str(port), how)


def _predicted_lines(path: Path, how: str, client: str) -> list[str]:
    """The one attempt's attribution lines for ``client`` (without its name), which come
    first; the capture's attempt is `no_response` for the way the wait ended, its client
    named."""
    (diagnosis,) = analyze_pcap(path)
    assert diagnosis.verdict is Verdict.NO_RESPONSE, diagnosis.verdict
    assert diagnosis.primary is not None and diagnosis.primary.check == FINDING[how]
    who = diagnosis.attribution
    assert who.client == client, who.client
    assert who.client_errors[0].startswith(f"{client}: "), who.client_errors  # its line first
    return [line[len(client) + 2:] for line in who.client_errors
            if line.startswith(f"{client}: ")]


def _predicted(path: Path, how: str, client: str) -> str:
    """The attempt's one line for ``client``."""
    (line,) = _predicted_lines(path, how, client)
    return line


async def _asyncio_client(url: str) -> None:
    async with websockets_asyncio.connect(url, open_timeout=GIVE_UP_S):
        pass


@pytest.mark.parametrize("flavour", ["asyncio", "sync"])
@pytest.mark.parametrize("how", HOW)
def test_python_websockets_prints_what_the_attribution_says(tmp_path: Path, how: str,
                                                             flavour: str) -> None:
    """Both of its clients (asyncio's `websockets.connect`, the default, and the threading
    one), whose timeouts are worded differently."""
    port = _free_port()
    server = _server(port, how)
    path = tmp_path / f"{how}.pcap"
    url = f"ws://{HOST}:{port}/ws"
    try:
        with tcpdump(path, [port]), pytest.raises(Exception) as failed:
            if flavour == "asyncio":
                asyncio.run(_asyncio_client(url))
            else:
                with websockets_client.connect(url, open_timeout=GIVE_UP_S):
                    pass
    finally:
        _stop(server, signal.SIGTERM)
    printed = f"{type(failed.value).__name__}: {failed.value}"
    assert printed in _predicted_lines(path, how, "python websockets")


@pytest.mark.parametrize("how", HOW)
def test_curl_prints_what_the_attribution_says(tmp_path: Path, how: str) -> None:
    """curl with a WebSocket handshake's headers (how people probe an endpoint by hand): its
    exit line, and for a timeout the milliseconds it counted, within a few of the capture's."""
    port = _free_port()
    server = _server(port, how)
    path = tmp_path / f"{how}-curl.pcap"
    try:
        with tcpdump(path, [port]):
            done = subprocess.run(
                ["curl", "-sS", "--max-time", str(GIVE_UP_S), "-H", "Upgrade: websocket",
                 "-H", "Connection: Upgrade", "-H", "Sec-WebSocket-Version: 13",
                 "-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                 f"http://{HOST}:{port}/ws"], capture_output=True, text=True, timeout=20)
    finally:
        _stop(server, signal.SIGTERM)
    printed = done.stderr.strip()
    predicted = f"curl: {_predicted(path, how, 'curl')}"  # (its line is curl's whole line)
    if how != "silent":
        assert predicted == printed
        return
    counted = r"curl: \(28\) Operation timed out after (\d+) milliseconds with 0 bytes received"
    said, told = re.fullmatch(counted, printed), re.fullmatch(counted, predicted)
    assert said is not None and told is not None, (printed, predicted)
    assert abs(int(said.group(1)) - int(told.group(1))) <= 20, (printed, predicted)


@pytest.mark.skipif(webdriver is None or CHROMIUM is None or DRIVER is None,
                    reason="needs Chromium, chromedriver and selenium (run-tests.sh installs "
                           "them)")
@pytest.mark.parametrize("how", HOW)
def test_chromium_prints_what_the_attribution_says(  # (``browser``: the imported fixture)
        browser: Any, tmp_path: Path, how: str) -> None:  # noqa: F811
    """Chromium has no handshake timeout short of minutes: on a silent server the page gives
    up (it calls close(), as pages with their own timer do)."""
    port = _free_port()
    server = _server(port, how)
    give_up = f"setTimeout(() => ws.close(), {GIVE_UP_S * 1000});" if how == "silent" else ""
    path = tmp_path / f"{how}-chromium.pcap"
    try:
        with tcpdump(path, [port]):
            title, logged = open_websocket_page(browser, tmp_path, port, then=give_up)
    finally:
        _stop(server, signal.SIGTERM)
    assert title == "closed 1006", title
    predicted = _predicted(path, how, "Chrome")
    assert any(message.endswith(predicted) for message in logged), (predicted, logged)


# Answers the handshake with a correct 101, then says nothing until the client has gone.
SWITCH_SERVER = RAW_SERVER + r"""
conn, _ = server.accept()
conn.settimeout(10)
switch(conn, read_head(conn))
drain(conn)
conn.close()
"""


def test_curl_that_waited_after_the_101_is_told_apart_from_a_rejection(tmp_path: Path) -> None:
    """curl does not speak WebSocket (before 7.86, or built without it): after a 101 it waits
    for data until --max-time. The hang-up is read as a wait that ran out, not as a client
    that rejected the 101, and curl's own line is predicted, milliseconds and all."""
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-c", SWITCH_SERVER, str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    assert server.stdout is not None and server.stdout.readline() == b"ready\n"
    path = tmp_path / "curl-after-101.pcap"
    try:
        with tcpdump(path, [port]):
            done = subprocess.run(
                ["curl", "-sS", "-o", "/dev/null", "--max-time", str(GIVE_UP_S),
                 "-H", "Upgrade: websocket", "-H", "Connection: Upgrade",
                 "-H", "Sec-WebSocket-Version: 13",
                 "-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                 f"http://{HOST}:{port}/ws"], capture_output=True, text=True, timeout=20)
    finally:
        _stop(server, signal.SIGTERM)
    (diagnosis,) = analyze_pcap(path)
    assert diagnosis.verdict is Verdict.ABORTED, diagnosis.verdict
    primary = diagnosis.primary
    assert primary is not None and primary.check == "client_hung_up_after_switch"
    assert "gave up waiting for data" in primary.found, primary.found
    counted = r"curl: \(28\) Operation timed out after (\d+) milliseconds with 0 bytes received"
    (predicted,) = diagnosis.attribution.client_errors
    said, told = re.fullmatch(counted, done.stderr.strip()), re.fullmatch(counted, predicted)
    assert said is not None and told is not None, (done.stderr, predicted)
    assert abs(int(said.group(1)) - int(told.group(1))) <= 20, (done.stderr, predicted)


@pytest.mark.parametrize("client", ["asyncio", "sync", "curl"])
def test_a_client_that_gave_up_on_a_silent_tls_server_prints_what_the_attribution_says(
        tmp_path: Path, client: str) -> None:
    """wss:// or https:// to a server that accepts and never answers the ClientHello (an
    overloaded TLS terminator): the client's own timeout ends the wait
    (`tls_client_gave_up`, no_response), and its words are a timeout's, not a reset's."""
    import ssl

    port = _free_port()
    server = _server(port, "silent-tls")
    path = tmp_path / f"tls-{client}.pcap"
    url = f"wss://{HOST}:{port}/ws"
    context = ssl.create_default_context()
    try:
        with tcpdump(path, [port]):
            if client == "curl":
                done = subprocess.run(
                    ["curl", "-sS", "-m", str(GIVE_UP_S), f"https://{HOST}:{port}/"],
                    capture_output=True, text=True, timeout=20)
                printed = done.stderr.strip()
            else:
                with pytest.raises(Exception) as failed:
                    if client == "asyncio":
                        async def opening() -> None:
                            async with websockets_asyncio.connect(
                                    url, ssl=context, open_timeout=GIVE_UP_S):
                                pass
                        asyncio.run(opening())
                    else:
                        with websockets_client.connect(url, ssl=context,
                                                       open_timeout=GIVE_UP_S):
                            pass
                printed = f"{type(failed.value).__name__}: {failed.value}"
    finally:
        _stop(server, signal.SIGTERM)
    (diagnosis,) = analyze_pcap(path)
    assert diagnosis.verdict is Verdict.NO_RESPONSE, diagnosis.verdict
    assert diagnosis.primary is not None and diagnosis.primary.check == "tls_client_gave_up"
    lines = diagnosis.attribution.client_errors
    if client != "curl":
        assert f"python websockets: {printed}" in lines, (printed, lines)
        return
    counted = r"curl: \(28\) Connection timed out after (\d+) milliseconds"
    said = re.fullmatch(counted, printed)
    told = [m for line in lines if (m := re.fullmatch(counted, line))]
    assert said is not None and told, (printed, lines)
    assert abs(int(said.group(1)) - int(told[0].group(1))) <= 20, (printed, lines)
