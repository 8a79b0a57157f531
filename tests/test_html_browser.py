"""The HTML report in a real browser: headless Chromium (Debian's `chromium` and
`chromium-driver`, driven by selenium) opens the report of every bundled capture from a
file:// URL. The DOM must hold one element per attempt with the JSON's verdicts, the filters
and sorting must work, nothing may go to the network, the page's own script must run under
its Content-Security-Policy, and a hostile capture must not run anything. A screenshot is kept
in test-artifacts/ (ignored by git) for people to look at.

Skipped, with the reason, only when Chromium, its driver or selenium is not installed
(run-tests.sh installs them)."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_cli
from tests.test_html import CAPTURES, ROOT, hostile, read_html  # noqa: F401 (a fixture)

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1440,1000", "--hide-scrollbars")

try:
    from selenium import webdriver
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
except ImportError:  # pragma: no cover - the skip below says why
    webdriver = None  # type: ignore[assignment]

pytestmark = pytest.mark.skipif(
    webdriver is None or CHROMIUM is None or DRIVER is None,
    reason="needs Chromium, chromedriver and selenium (apt-get install chromium "
           "chromium-driver; pip install selenium): run-tests.sh installs them")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or ""
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="upgrade-analyzer-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    # Every request the page makes is in the performance log (DevTools Network events).
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER or ""), options=options)
    try:
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        driver.quit()  # stops Chromium and the chromedriver process it started
        shutil.rmtree(profile, ignore_errors=True)


def _open(browser: Any, path: Path) -> None:
    browser.get_log("performance")  # forget what earlier pages did
    browser.get_log("browser")
    browser.get(path.as_uri())
    # report.js unpacks the packed rows and postmortems, then says so
    assert _wait(lambda: browser.execute_script(
        "return document.documentElement.dataset.state") == "ready")


def _wait(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _shown(browser: Any) -> list[dict[str, str]]:
    return browser.execute_script(
        "return Array.from(document.querySelectorAll('tbody[data-attempt]'))"
        ".filter(b => !b.hidden && b.offsetParent !== null)"
        ".map(b => ({n: b.dataset.attempt, v: b.dataset.verdict, t: b.dataset.t}))")


@pytest.fixture(scope="module")
def bundled_page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(read_html(*CAPTURES), encoding="utf-8")
    document = json.loads(run_cli("read", *CAPTURES, "-F", "json").stdout)
    return path, document


def test_report_of_the_bundled_captures(browser: Any,
                                        bundled_page: tuple[Path, dict[str, Any]]) -> None:
    path, document = bundled_page
    _open(browser, path)
    attempts = document["attempts"]
    verdicts = document["summary"]["verdicts"]

    # one element per attempt, the JSON's verdicts
    elements = browser.find_elements(By.CSS_SELECTOR, "[data-attempt]")
    assert len(elements) == len(attempts)
    assert dict(Counter(e.get_attribute("data-verdict") for e in elements)) == verdicts
    # the style applied and the script ran (the CSP names each by hash): the header is dark,
    # and the script wrote the count of shown rows
    assert browser.execute_script("return getComputedStyle(document.querySelector("
                                  "'header.top')).backgroundColor") == "rgb(29, 35, 48)"
    assert browser.find_element(By.ID, "shown").text == f"{len(attempts)} of {len(attempts)} shown"
    assert not browser.find_element(By.ID, "more").is_displayed()

    # a screenshot of the page as it opens, for people (and for the run's artifacts)
    ARTIFACTS.mkdir(exist_ok=True)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1440, min(int(height), 4000))
    shot = ARTIFACTS / "html-report.png"
    assert browser.save_screenshot(str(shot))
    print(f"screenshot: {shot}")
    browser.set_window_size(1440, 1000)

    # filter by verdict: only that verdict's rows stay
    Select(browser.find_element(By.ID, "f-verdict")).select_by_value("failed")
    shown = _shown(browser)
    assert len(shown) == verdicts["failed"] and {s["v"] for s in shown} == {"failed"}
    # and by reason on top of it
    reason = next(iter(document["summary"]["reasons"]))
    Select(browser.find_element(By.ID, "f-reason")).select_by_value(reason)
    expected = [a["number"] for a in attempts
                if a["verdict"] == "failed" and a["reasons"][:1] == [reason]]
    assert sorted(int(s["n"]) for s in _shown(browser)) == expected
    browser.find_element(By.ID, "f-reset").click()
    assert len(_shown(browser)) == len(attempts)

    # filter by client and by path (text, as typed)
    first = attempts[0]
    browser.find_element(By.ID, "f-client").send_keys(first["client"])
    assert _wait(lambda: [s["n"] for s in _shown(browser)] == [str(first["number"])])
    browser.find_element(By.ID, "f-reset").click()
    browser.find_element(By.ID, "f-path").send_keys("/chat")
    # (the page matches the text anywhere in the path, as typed: /ua/chat too)
    chat = [a["number"] for a in attempts if "/chat" in (a["path"] or "").lower()]
    assert chat and _wait(lambda: sorted(int(s["n"]) for s in _shown(browser)) == chat)
    browser.find_element(By.ID, "f-reset").click()

    # sorting: the # heading descending, then time ascending
    number_heading = browser.find_element(By.CSS_SELECTOR, "#attempts thead th:first-child")
    number_heading.click()  # already ascending: this reverses it
    order = [int(s["n"]) for s in _shown(browser)]
    assert order == sorted(order, reverse=True)
    assert number_heading.get_attribute("aria-sort") == "descending"
    browser.find_element(By.XPATH, "//th[normalize-space()='time (UTC)']").click()
    times = [float(s["t"]) for s in _shown(browser)]
    assert times == sorted(times) and len(times) == len(attempts)

    # a timeline bar lists the attempts of its time range only
    bucket = browser.find_elements(By.CSS_SELECTOR, "#timeline .bucket")[0]
    low = float(bucket.get_attribute("data-from"))
    high = float(bucket.get_attribute("data-to"))
    browser.execute_script("arguments[0].dispatchEvent(new MouseEvent('click', "
                           "{bubbles: true}))", bucket)
    in_range = [s for s in _shown(browser)]
    assert in_range and all(low <= float(s["t"]) < high for s in in_range)
    browser.find_element(By.ID, "f-range-clear").click()
    assert len(_shown(browser)) == len(attempts)

    # a row opens its postmortem: ladder, heads, findings
    row = browser.find_element(By.CSS_SELECTOR, "tbody[data-verdict='failed'] > tr")
    body = row.find_element(By.XPATH, "..")
    detail = body.find_element(By.CSS_SELECTOR, "tr.detail")
    assert not detail.is_displayed()
    row.click()
    assert detail.is_displayed()
    assert detail.find_elements(By.CSS_SELECTOR, "svg.ladder g")
    assert detail.find_elements(By.CSS_SELECTOR, ".finding .fix")
    assert "Request" in detail.text and "RFC" in detail.text
    detail_shot = ARTIFACTS / "html-report-detail.png"
    browser.execute_script("arguments[0].scrollIntoView()", body)
    assert browser.save_screenshot(str(detail_shot))
    print(f"screenshot: {detail_shot}")

    # nothing went to the network: the only request was the page itself
    # (Chromium's own chrome:// pages log their resources here too; none is the network)
    events = [json.loads(entry["message"])["message"] for entry in browser.get_log("performance")]
    sent = [m["params"] for m in events if m["method"] == "Network.requestWillBeSent"]
    assert [p["request"]["url"] for p in sent if p.get("documentURL") == path.as_uri()] == [
        path.as_uri()]
    assert not [p["request"]["url"] for p in sent
                if not p["request"]["url"].startswith(("file:", "chrome:", "data:"))]
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    # and the console is clean: a blocked script or style would be reported there
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []


def test_a_hostile_capture_runs_nothing(browser: Any, hostile: Path,  # noqa: F811
                                        tmp_path: Path) -> None:
    path = tmp_path / "hostile.html"
    path.write_text(read_html(hostile), encoding="utf-8")
    _open(browser, path)
    browser.execute_script(
        "document.querySelectorAll('tbody[data-attempt] > tr:first-child')"
        ".forEach(r => r.click())")
    assert len(browser.find_elements(By.CSS_SELECTOR, "tr.detail")) == 2
    time.sleep(0.2)  # time for an injected handler (onerror, onload) to have fired
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 (the property raises)
    assert "pwned" not in browser.title
    assert browser.execute_script("return document.images.length") == 0
    scripts = browser.execute_script(
        "return Array.from(document.scripts).map(s => s.type)")
    assert sorted(scripts) == ["", "application/octet-stream", "application/octet-stream"]
    text = browser.find_element(By.TAG_NAME, "body").text
    assert "<script>alert(1)</script>" in text  # shown as the peer sent it, as text
    assert "chat\\x1b[2J" in text


def test_a_large_run_keeps_rows_past_the_detail_limit(browser: Any, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # The bundled captures with a limit of 10 postmortems: 10 rows in plain markup, the other
    # rows packed, as a run past 2,000 attempts is written.
    from analyzer.report import html

    monkeypatch.setattr(html, "DETAIL_LIMIT", 10)
    monkeypatch.setattr(html, "PAGE_ROWS", 15)
    path = tmp_path / "large.html"
    path.write_text(read_html(*CAPTURES), encoding="utf-8")
    document = json.loads(run_cli("read", *CAPTURES, "-F", "json").stdout)
    _open(browser, path)
    elements = browser.find_elements(By.CSS_SELECTOR, "[data-attempt]")
    assert [int(e.get_attribute("data-attempt")) for e in elements] == [
        a["number"] for a in document["attempts"]]
    total = len(elements)
    # 15 rows displayed at a time: the browser lays out a large table slowly
    assert [int(s["n"]) for s in _shown(browser)] == list(range(1, 16))
    assert browser.find_element(By.ID, "more-text").text == f"{total - 15} more match the filters"
    browser.find_element(By.ID, "show-more").click()
    assert len(_shown(browser)) == 30
    browser.find_element(By.ID, "show-all").click()
    assert len(_shown(browser)) == total and not browser.find_element(By.ID, "more").is_displayed()
    assert dict(Counter(e.get_attribute("data-verdict") for e in elements)) == (
        document["summary"]["verdicts"])
    assert len(browser.find_elements(By.CSS_SELECTOR, "tbody.has-detail tr.detail")) == 10
    assert browser.find_element(By.ID, "limit-notice").is_displayed()
    last = browser.find_element(By.CSS_SELECTOR, f"tbody[data-attempt='{total}'] > tr")
    assert last.get_attribute("title").endswith(f"--attempt {total}")
    # the unpacked rows filter and sort like the others
    Select(browser.find_element(By.ID, "f-verdict")).select_by_value("succeeded")
    succeeded = document["summary"]["verdicts"]["succeeded"]
    assert len(_shown(browser)) == min(succeeded, 15)  # a page at a time, as above
    browser.find_element(By.CSS_SELECTOR, "#attempts thead th:first-child").click()
    assert [int(s["n"]) for s in _shown(browser)][0] == max(
        a["number"] for a in document["attempts"] if a["verdict"] == "succeeded")
    # and a link to one of them opens its postmortem
    browser.get(path.as_uri() + "#attempt-3")
    assert _wait(lambda: browser.find_element(
        By.CSS_SELECTOR, "tbody[data-attempt='3'] tr.detail").is_displayed())
