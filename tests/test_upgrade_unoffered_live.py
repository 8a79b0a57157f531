"""A 101 whose Upgrade names a protocol the client did not offer (RFC 9110 §7.8: the server
"MUST NOT switch to a protocol that was not indicated by the client"; a proxy or framework
answering a WebSocket request with its h2c switch). Real clients on ``lo`` captured by
tcpdump: python websockets and Chromium (through selenium, as tests/test_close_code_live.py
drives it). What each client printed is read from the client itself, and the attempt's
attribution must predict exactly that line (attribution/client_texts.py "upgrade_unoffered")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from analyzer.verdict import Verdict
from tests.helpers import RAW_SERVER, analyze_pcap
from tests.test_close_code_live import logged_by_chromium, printed_by_websockets
from tests.test_h2_live import pytestmark as _live_marks
from tests.test_html_browser import CHROMIUM, DRIVER, browser, webdriver  # noqa: F401 (fixture)

pytest.importorskip("websockets.sync.client")
pytestmark = _live_marks

# Answers one handshake (for at most 30 s) with a 101 that switches to h2c (Connection and
# Sec-WebSocket-Accept as a WebSocket switch has them), then waits for the client to go.
SERVER = RAW_SERVER + r"""
conn, _ = server.accept()
conn.settimeout(5)
head = read_head(conn)
key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
           if line.lower().startswith(b"sec-websocket-key:"))
accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n"
             b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
drain(conn)
conn.close()
"""


def _predicted(path: Path, client: str) -> str:
    """The one attempt's attribution line for ``client`` (without its name)."""
    (diagnosis,) = analyze_pcap(path)
    assert diagnosis.verdict is Verdict.FAILED, (diagnosis.verdict, diagnosis.findings)
    assert diagnosis.findings[0].check == "switch_to_unoffered", diagnosis.findings
    [line] = [line for line in diagnosis.attribution.client_errors
              if line.startswith(f"{client}: ")]
    return line[len(client) + 2:]


def test_python_websockets_prints_what_the_attribution_says(tmp_path: Path) -> None:
    path = tmp_path / "unoffered.pcap"
    printed = printed_by_websockets(SERVER, [], path)
    assert _predicted(path, "python websockets") == printed


@pytest.mark.skipif(webdriver is None or CHROMIUM is None or DRIVER is None,
                    reason="needs Chromium, chromedriver and selenium (run-tests.sh installs "
                           "them)")
def test_chromium_prints_what_the_attribution_says(  # (``browser``: the imported fixture)
        browser: Any, tmp_path: Path) -> None:  # noqa: F811
    path = tmp_path / "unoffered-chromium.pcap"
    title, logged = logged_by_chromium(browser, tmp_path, SERVER, [], path)
    assert title == "closed 1006", title
    predicted = _predicted(path, "Chrome")
    assert any(predicted in message for message in logged), (predicted, logged)
