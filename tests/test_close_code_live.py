"""A server that closes a WebSocket with a code that may never be sent (1005: RFC 6455 §7.4.1;
gunicorn's ASGI worker and websockify have done it), with real clients on ``lo`` captured by
tcpdump: python websockets, and Chromium (through selenium, as tests/test_html_browser.py drives
it). What each client printed is read from the client itself, and the attempt's attribution must
predict exactly that line (attribution/client_texts.py "close_code_reserved"): not "CloseEvent code
1005", which no client prints. The server is a few lines of raw socket code, since no library
sends the code on purpose."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from analyzer.verdict import Verdict
from tests.helpers import RAW_SERVER, analyze_pcap, start_raw_server
from tests.test_h2_live import HOST, _free_port, _stop, tcpdump
from tests.test_h2_live import pytestmark as _live_marks
from tests.test_html_browser import CHROMIUM, DRIVER, browser, webdriver  # noqa: F401 (fixture)

websockets_client = pytest.importorskip("websockets.sync.client")
pytestmark = _live_marks

# Answers each handshake (at most two, for at most 30 s) with a correct 101, then sends Close
# with the code argv[2] and waits for the client's answer before it closes.
SERVER = RAW_SERVER + r"""
code = int(sys.argv[2])
for _ in range(2):
    conn, _ = server.accept()
    conn.settimeout(5)
    switch(conn, read_head(conn))
    time.sleep(0.2)
    conn.sendall(bytes((0x88, 2)) + code.to_bytes(2, "big"))
    drain(conn)
    conn.close()
"""
CODE = 1005


def _predicted(path: Path, client: str) -> str:
    """The one attempt's attribution line for ``client`` (without its name)."""
    (diagnosis,) = analyze_pcap(path)
    assert diagnosis.verdict is Verdict.ABORTED, diagnosis.verdict
    assert any(f.check == "ws_close_code_invalid" and f.found == str(CODE)
               for f in diagnosis.findings), diagnosis.findings
    [line] = [line for line in diagnosis.attribution.client_errors
              if line.startswith(f"{client}: ")]
    return line[len(client) + 2:]


def open_websocket_page(driver: Any, tmp: Path, port: int, protocols: str = "[]",
                        then: str = "") -> tuple[str, list[str]]:
    """A page that opens ws://HOST:``port``/ws offering ``protocols`` (a JavaScript array)
    and titles itself "closed CODE" when it closes, run in ``driver`` (`run_page`);
    ``then``: more of its script (a page's own give-up timer)."""
    page = tmp / "page.html"
    page.write_text(f"""<!doctype html><script>
const ws = new WebSocket("ws://{HOST}:{port}/ws", {protocols});
ws.onclose = e => {{ document.title = "closed " + e.code; }};
{then}
</script>""", encoding="utf-8")
    return run_page(driver, page)


def run_page(driver: Any, page: Path) -> tuple[str, list[str]]:
    """Open ``page`` in the browser ``driver`` and wait (at most 10 s) for its title to say
    "closed CODE": (the title, what the page logged to the console)."""
    driver.get_log("browser")  # (what earlier pages logged)
    driver.get(page.as_uri())
    deadline = time.monotonic() + 10
    while not driver.title.startswith("closed") and time.monotonic() < deadline:
        time.sleep(0.05)
    return driver.title, [entry["message"] for entry in driver.get_log("browser")]


def printed_by_websockets(script: str, arguments: list[str], path: Path,
                          **options: Any) -> str:
    """What python websockets raised reading from a raw server (``script``, given its port
    then ``arguments``) while tcpdump wrote ``path``: its exception as a traceback's last
    line shows it. ``options`` go to its ``connect``."""
    port = _free_port()
    server = start_raw_server(script, str(port), *arguments)
    try:
        with (tcpdump(path, [port]), pytest.raises(Exception) as failed,
              websockets_client.connect(f"ws://{HOST}:{port}/ws", open_timeout=10,
                                        **options) as ws):
            ws.recv(timeout=10)
    finally:
        _stop(server, signal.SIGTERM)
    return f"{type(failed.value).__name__}: {failed.value}"


def logged_by_chromium(driver: Any, tmp: Path, script: str, arguments: list[str],
                       path: Path) -> tuple[str, list[str]]:
    """`open_websocket_page` against a raw server (``script``, given its port then
    ``arguments``) while tcpdump wrote ``path``: the page's title and the console's lines."""
    port = _free_port()
    server = start_raw_server(script, str(port), *arguments)
    try:
        with tcpdump(path, [port]):
            return open_websocket_page(driver, tmp, port)
    finally:
        _stop(server, signal.SIGTERM)


def test_python_websockets_prints_what_the_attribution_says(tmp_path: Path) -> None:
    path = tmp_path / "close1005.pcap"
    printed = printed_by_websockets(SERVER, [str(CODE)], path)
    assert _predicted(path, "python websockets") == printed


@pytest.mark.skipif(webdriver is None or CHROMIUM is None or DRIVER is None,
                    reason="needs Chromium, chromedriver and selenium (run-tests.sh installs "
                           "them)")
def test_chromium_prints_what_the_attribution_says(  # (``browser``: the imported fixture)
        browser: Any, tmp_path: Path) -> None:  # noqa: F811
    path = tmp_path / "close1005-chromium.pcap"
    title, logged = logged_by_chromium(browser, tmp_path, SERVER, [str(CODE)], path)
    assert title == "closed 1006", title  # Chrome's close event: not the code sent
    predicted = _predicted(path, "Chrome")
    assert any(predicted in message for message in logged), (predicted, logged)
