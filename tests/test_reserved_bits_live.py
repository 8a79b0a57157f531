"""A server that sends a frame with RSV1 set after a 101 that negotiated no extension (RFC
6455 §5.2: "MUST be 0 unless an extension is negotiated"; a server that compresses without
having agreed permessage-deflate, or a proxy that stripped the extension header). Real
clients on ``lo`` captured by tcpdump: python websockets and Chromium (through selenium, as
tests/test_close_code_live.py drives it). What each client printed is read from the client
itself, and the attempt's attribution must predict exactly that line (attribution/client_texts.py
"rsv_without_extension")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from analyzer.verdict import Verdict
from tests.helpers import RAW_SERVER, analyze_pcap
from tests.test_close_code_live import logged_by_chromium, printed_by_websockets
from tests.test_h2_live import pytestmark as _live_marks
from tests.test_html_browser import CHROMIUM, DRIVER, browser, webdriver  # noqa: F401 (fixture)

websockets_client = pytest.importorskip("websockets.sync.client")
pytestmark = _live_marks

# Answers one handshake (for at most 30 s) with a correct 101 and no extension, then sends a
# text frame "hi" with RSV1 set and waits for the client to go.
SERVER = RAW_SERVER + r"""
conn, _ = server.accept()
conn.settimeout(5)
switch(conn, read_head(conn))
time.sleep(0.2)
conn.sendall(bytes((0xC1, 2)) + b"hi")
drain(conn)
conn.close()
"""


def _predicted(path: Path, client: str) -> str:
    """The one attempt's attribution line for ``client`` (without its name)."""
    (diagnosis,) = analyze_pcap(path)
    assert diagnosis.verdict is Verdict.ABORTED, (diagnosis.verdict, diagnosis.findings)
    assert diagnosis.findings[0].check == "ws_rsv_without_extension", diagnosis.findings
    [line] = [line for line in diagnosis.attribution.client_errors
              if line.startswith(f"{client}: ")]
    return line[len(client) + 2:]


def test_python_websockets_prints_what_the_attribution_says(tmp_path: Path) -> None:
    path = tmp_path / "rsv1.pcap"
    printed = printed_by_websockets(SERVER, [], path, compression=None)
    assert _predicted(path, "python websockets") == printed


@pytest.mark.skipif(webdriver is None or CHROMIUM is None or DRIVER is None,
                    reason="needs Chromium, chromedriver and selenium (run-tests.sh installs "
                           "them)")
def test_chromium_prints_what_the_attribution_says(  # (``browser``: the imported fixture)
        browser: Any, tmp_path: Path) -> None:  # noqa: F811
    path = tmp_path / "rsv1-chromium.pcap"
    title, logged = logged_by_chromium(browser, tmp_path, SERVER, [], path)
    assert title == "closed 1006", title
    predicted = _predicted(path, "Chrome")
    assert any(predicted in message for message in logged), (predicted, logged)
