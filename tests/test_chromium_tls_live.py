"""Chromium over TLS with its own key log (--ssl-key-log-file), against hypercorn serving a page
over HTTP/2 whose WebSocket opens over the same connection (RFC 8441), captured on ``lo``.
Chromium opens spare TLS connections it never uses (it races two and drops one, finishing the
handshake and closing without a word): those are counted as never used, not failed attempts
with a certificate fix, with the key log and without it (the sweep of the twenty-ninth
session found one in every Chromium capture)."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_h2_live import pytestmark as _live_marks
from tests.test_h2_live import tcpdump
from tests.test_h2_tls_live import SNI, hypercorn_tls, read_json
from tests.test_html_browser import CHROMIUM, DRIVER, FLAGS, webdriver

pytest.importorskip("hypercorn")
pytestmark = [*_live_marks, pytest.mark.skipif(
    webdriver is None or CHROMIUM is None or DRIVER is None,
    reason="needs Chromium, chromedriver and selenium (run-tests.sh installs them)")]


def _chromium(keylog: Path) -> Any:
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or ""
    for flag in (*FLAGS, "--ignore-certificate-errors", f"--ssl-key-log-file={keylog}"):
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="upgrade-analyzer-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(DRIVER or ""), options=options)
    driver.profile_directory = profile
    return driver


@pytest.fixture(scope="module")
def capture() -> Iterator[tuple[Path, Path, str]]:
    with tempfile.TemporaryDirectory(prefix="chromium-tls-") as tmp:
        path, keylog = Path(tmp, "chromium.pcap"), Path(tmp, "keys.log")
        with hypercorn_tls(Path(tmp)) as (port, _cert), tcpdump(path, [port]):
            driver = _chromium(keylog)
            try:
                driver.set_page_load_timeout(30)
                driver.get(f"https://{SNI}:{port}/chromium.html")
                deadline = time.monotonic() + 10
                while not driver.title.startswith("closed") and time.monotonic() < deadline:
                    time.sleep(0.05)
                title = driver.title
            finally:
                driver.quit()  # (its connections close: the spare ones too)
                shutil.rmtree(driver.profile_directory, ignore_errors=True)
            time.sleep(0.5)
        yield path, keylog, title


def test_with_its_key_log_the_websocket_is_there_and_no_tls_failure(
        capture: tuple[Path, Path, str]) -> None:
    path, keylog, title = capture
    assert title == "closed 1000", title
    document = read_json(path, "--keylog", str(keylog))
    attempts = document["attempts"]
    assert [a["kind"] for a in attempts if a["kind"] == "tls"] == [], attempts
    (websocket,) = [a for a in attempts if a["path"] == "/echo"]
    assert websocket["verdict"] == "succeeded" and websocket["client"], websocket
    summary = document["summary"]
    assert summary["tls_decrypted"] >= 1
    # (Chromium makes a spare connection in most runs, not all: counted here when it does)
    assert summary["tls_unused"] >= 0


def test_without_keys_no_tls_failure_is_claimed(capture: tuple[Path, Path, str]) -> None:
    path, _, _ = capture
    document = read_json(path)
    assert [a for a in document["attempts"] if a["kind"] == "tls"] == []
    assert document["summary"]["tls_not_inspected"] >= 1
