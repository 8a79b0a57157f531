"""A 101 that chose what the client did not offer (a subprotocol, an extension, another
protocol than websocket), by what each real client printed: python websockets and Chromium
refuse it and hang up at once, and the attempt's line for that client
(attribution/client_texts.py, "protocol_not_offered", "extension" and "upgrade_unoffered")
must be exactly what it printed. The finding's own text goes on with the
client's reaction ("bogus; then client FIN 1 ms after the switch"); the lines quote the
server's header value alone (the sweep of the thirtieth session found the reaction pasted
into them)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from analyzer.verdict import Verdict
from tests.helpers import RAW_SERVER, analyze_pcap, matches_with_dots, start_raw_server
from tests.test_close_code_live import open_websocket_page
from tests.test_h2_live import HOST, _free_port, _stop, tcpdump
from tests.test_h2_live import pytestmark as _live_marks
from tests.test_html_browser import CHROMIUM, DRIVER, browser, webdriver  # noqa: F401 (fixture)

websockets_client = pytest.importorskip("websockets.sync.client")
pytestmark = _live_marks

# Answers the handshake with a correct 101 that adds argv[2] ("Name: value", or nothing) and
# names argv[3] in its Upgrade, then waits for the client to go.
SERVER = RAW_SERVER + r"""
conn, _ = server.accept()
conn.settimeout(10)
head = read_head(conn)
key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
           if line.lower().startswith(b"sec-websocket-key:"))
accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: " + sys.argv[3].encode()
             + b"\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n"
             + b"".join(line.encode() + b"\r\n" for line in sys.argv[2:3] if line) + b"\r\n")
drain(conn)
conn.close()
"""
CHOSEN = {"ws_protocol_not_offered": "Sec-WebSocket-Protocol: bogus",
          "ws_extension_not_offered": "Sec-WebSocket-Extensions: x-unknown",
          "ws_deflate_params_invalid": "Sec-WebSocket-Extensions: permessage-deflate; "
                                       "server_max_window_bits=7",
          "switch_to_unoffered": ""}  # (an h2c switch's Upgrade, below)


def _server(port: int, finding: str) -> subprocess.Popen[bytes]:
    upgrade = "h2c" if finding == "switch_to_unoffered" else "websocket"
    return start_raw_server(SERVER, str(port), CHOSEN[finding], upgrade)


def _lines(path: Path, finding: str, client: str) -> list[str]:
    (diagnosis,) = analyze_pcap(path)
    assert diagnosis.verdict is Verdict.FAILED, diagnosis.verdict
    assert diagnosis.primary is not None and diagnosis.primary.check == finding
    assert "; then client" in diagnosis.primary.found  # (the reaction, in the finding only)
    return [line.removeprefix(f"{client}: ") for line in diagnosis.attribution.client_errors
            if line.startswith(f"{client}: ")]


@pytest.mark.parametrize("finding", list(CHOSEN))
def test_python_websockets_prints_what_the_attribution_says(tmp_path: Path,
                                                            finding: str) -> None:
    port = _free_port()
    server = _server(port, finding)
    path = tmp_path / "chosen.pcap"
    compression = "deflate" if finding == "ws_deflate_params_invalid" else None
    try:
        # (no extension offered: what python websockets says to one chosen anyway)
        with (tcpdump(path, [port]), pytest.raises(Exception) as failed,
              websockets_client.connect(f"ws://{HOST}:{port}/ws", subprotocols=["chat"],
                                        compression=compression, open_timeout=5)):
            pass
    finally:
        _stop(server, signal.SIGTERM)
    printed = f"{type(failed.value).__name__}: {failed.value}"
    lines = _lines(path, finding, "python websockets")
    assert any(matches_with_dots(line, printed) for line in lines), (printed, lines)


@pytest.mark.skipif(webdriver is None or CHROMIUM is None or DRIVER is None,
                    reason="needs Chromium, chromedriver and selenium (run-tests.sh installs "
                           "them)")
@pytest.mark.parametrize("finding", list(CHOSEN))
def test_chromium_prints_what_the_attribution_says(  # (``browser``: the imported fixture)
        browser: Any, tmp_path: Path, finding: str) -> None:  # noqa: F811
    port = _free_port()
    server = _server(port, finding)
    # (offering a subprotocol that the answer lacks is a failure of its own to Chromium)
    offer = '["chat"]' if finding == "ws_protocol_not_offered" else "[]"
    path = tmp_path / "chosen-chromium.pcap"
    try:
        with tcpdump(path, [port]):
            title, logged = open_websocket_page(browser, tmp_path, port, offer)
    finally:
        _stop(server, signal.SIGTERM)
    assert title == "closed 1006", title
    (predicted,) = _lines(path, finding, "Chrome")
    # (the console's entry begins with where the page logged it)
    assert any(matches_with_dots("..." + predicted, message) for message in logged), (
        predicted, logged)
