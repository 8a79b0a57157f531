"""The HTML report (`read --format html`), read as a parser reads it: one element per attempt,
nothing loaded from the network, capture text never markup, the detail limit, the timeline's
geometry, and the templates shipped as package data. tests/test_html_browser.py opens the same
pages in Chromium."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from fnmatch import fnmatch
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.pipeline import RunStats
from analyzer.report.html import render_html
from analyzer.report.timeline import BREAK_SECONDS, MAX_BREAKS, MIN_SEGMENT, build_timeline
from analyzer.storms import Storm
from tests.builder import (
    DEFAULT_WS_KEY,
    Conversation,
    http_response,
    websocket_request,
    websocket_response,
    write_pcap,
)
from tests.helpers import analyze_pcap, run_cli

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = sorted(str(p) for p in (ROOT / "captures").glob("*.pcap*"))
TEMPLATES = ROOT / "analyzer" / "report" / "templates"

# Every tag the templates write; a capture's text must never add one.
OUR_TAGS = {
    "html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "h3", "dl", "dt",
    "dd", "code", "details", "summary", "span", "main", "section", "div", "button", "b", "p",
    "table", "tr", "td", "th", "thead", "tbody", "ul", "li", "form", "label", "select",
    "option", "input", "output", "footer", "script", "svg", "g", "rect", "line", "path",
    "text", "pre", "i", "noscript",
}
# Fields a hostile peer controls, each trying to become markup or a terminal command.
SCRIPT = "<script>alert(1)</script>"
IMG = "\"><img src=x onerror=\"document.title='pwned'\">"
ESCAPES = "chat\x1b[2J\x1b]0;owned\x07"
PATH = "/ws?q=\"><svg/onload=alert(4)>"


# A packed data block: gzip under base64, never run (html.py, report.js).
DATA_BLOCK = (r'<script type="application/octet-stream" id="\w+-data" '
              r'data-encoding="gzip\+base64">([A-Za-z0-9+/=]*)</script>')


@dataclass
class Page(HTMLParser):
    """What the report holds, as a browser's parser would see it."""

    tags: Counter[str] = field(default_factory=Counter)
    attempts: dict[int, str] = field(default_factory=dict)  # data-attempt -> data-verdict
    details: int = 0
    scripts: list[str] = field(default_factory=list)
    csp: str = ""
    handlers: list[str] = field(default_factory=list)  # on* attributes
    links: list[str] = field(default_factory=list)  # src/href/action values
    _in_script: bool = False

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        values = dict(attrs)
        if "data-attempt" in values:
            self.attempts[int(values["data-attempt"] or 0)] = values.get("data-verdict") or ""
        if tag == "tr" and values.get("class") == "detail":
            self.details += 1
        if tag == "meta" and values.get("http-equiv") == "Content-Security-Policy":
            self.csp = values.get("content") or ""
        self.handlers += [name for name in values if name.startswith("on")]
        self.links += [v or "" for n, v in attrs if n in ("src", "href", "action", "xlink:href")]
        self._in_script = tag == "script"

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False


def unpacked(text: str) -> str:
    """The page with its packed data blocks (rows past the limit, postmortems) unpacked in
    place, as report.js puts them into the table: gzip under base64."""

    def unpack(match: re.Match[str]) -> str:
        data = base64.b64decode(match.group(1))
        return gzip.decompress(data).decode() if data else ""

    return re.sub(DATA_BLOCK, unpack, text)


def parse(text: str) -> Page:
    page = Page()
    page.feed(unpacked(text))
    page.close()
    return page


def read_html(*args: str | Path) -> str:
    result = run_cli("read", *args, "-F", "html")
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def bundled() -> str:
    return read_html(*CAPTURES)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A switch whose headers, path, subprotocol, body and close reason are markup and
    escape sequences; and a 403 whose reason phrase and body are script."""
    conv = Conversation(client=("10.0.0.5", 50005), server=("10.0.0.2", 8080),
                        start=1_700_000_000)
    conv.handshake()
    conv.client(websocket_request("example.com", PATH, protocols=[ESCAPES], extra_headers=[
        ("User-Agent", IMG), ("X-Note", SCRIPT)]))
    conv.server(websocket_response(DEFAULT_WS_KEY, protocol=ESCAPES,
                                   extra_headers=[("Server", SCRIPT)]), delay=0.002)
    conv.server_ws_close(1008, "</svg><script>alert(5)</script>", delay=0.003)
    conv.client_ws_close(1008)
    conv.server_fin()
    conv.client_fin()
    refused = Conversation(client=("10.0.0.6", 50006), server=("10.0.0.2", 8080),
                           start=1_700_000_001)
    refused.handshake()
    refused.client(websocket_request("example.com", "/"))
    body = f"{SCRIPT}{IMG}".encode()
    refused.server(http_response(403, "<b onmouseover=alert(6)>no</b>", [
        ("Content-Length", str(len(body)))], body), delay=0.002)
    refused.server_fin()
    refused.client_fin()
    path = tmp_path_factory.mktemp("html") / "hostile.pcap"
    write_pcap(path, [conv, refused])
    return path


def test_one_element_per_attempt_with_the_json_verdicts(bundled: str) -> None:
    document = json.loads(run_cli("read", *CAPTURES, "-F", "json").stdout)
    page = parse(bundled)
    assert sorted(page.attempts) == [a["number"] for a in document["attempts"]]
    assert dict(Counter(page.attempts.values())) == document["summary"]["verdicts"]
    assert page.details == len(document["attempts"])  # every attempt has its postmortem
    assert "id=\"limit-notice\"" not in bundled


def test_the_page_loads_nothing(bundled: str) -> None:
    page = parse(bundled)
    assert page.links == []  # no src, href or action anywhere
    assert not {"img", "link", "iframe", "object", "embed", "audio", "video"} & set(page.tags)
    assert page.tags["script"] == 1 and not re.search(r"<script[^>]*\ssrc=", bundled)
    assert len(re.findall(DATA_BLOCK, bundled)) == 2  # the only other <script>s: data
    assert "url(" not in bundled and "@import" not in bundled
    # the policy allows no request and exactly our one script, by its hash
    assert "default-src 'none'" in page.csp
    digest = base64.b64encode(hashlib.sha256(page.scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in page.csp
    (style,) = re.findall(r"<style>(.*?)</style>", bundled, re.S)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in page.csp and "unsafe-inline" not in page.csp


def test_capture_text_is_never_markup(hostile: Path) -> None:
    text = unpacked(read_html(hostile))  # the heads are in the packed postmortems
    page = parse(text)
    assert set(page.tags) <= OUR_TAGS, set(page.tags) - OUR_TAGS
    assert page.handlers == [] and page.links == [] and page.tags["script"] == 1
    assert page.tags["img"] == 0 and "alert(" not in "".join(page.scripts)
    for raw in ("\x1b", "\x07"):
        assert raw not in text
    # shown as text, escaped: what the peer sent is readable in the report
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "onerror=&#34;document.title=&#39;pwned&#39;&#34;&gt;" in text
    assert "chat\\x1b[2J\\x1b]0;owned\\x07" in text
    assert "&lt;/svg&gt;&lt;script&gt;alert(5)&lt;/script&gt;" in text  # the close reason
    assert "&lt;b onmouseover=alert(6)&gt;no&lt;/b&gt;" in text  # the reason phrase
    assert "/ws?q=&#34;&gt;&lt;svg/onload=alert(4)&gt;" in text  # the path


def test_secrets_are_redacted_in_the_summary_too(tmp_path: Path) -> None:
    # Repeated attempts are grouped by their raw request line: the summary must redact it.
    convs = []
    for n in range(3):
        conv = Conversation(client=("10.0.0.7", 50100 + n), server=("10.0.0.2", 8080),
                            start=1_700_000_000 + n)
        conv.handshake()
        conv.client(websocket_request("example.com", "/ws?token=hunter22"))
        conv.server(http_response(403, "Forbidden"), delay=0.002)
        conv.server_fin()
        conv.client_fin()
        convs.append(conv)
    path = tmp_path / "storm.pcap"
    write_pcap(path, convs)
    text = read_html(path)
    assert "hunter22" not in text and "3 ×" in text and "token=[redacted]" in text
    assert "hunter22" in read_html(path, "--show-secrets")


def test_details_stop_at_the_limit_and_the_page_says_so() -> None:
    found = analyze_pcap(CAPTURES[0]) + analyze_pcap(CAPTURES[-1])
    diagnoses = [dataclasses.replace(d, number=n) for n, d in enumerate(found, start=1)]
    assert len(diagnoses) >= 3
    text = render_html(diagnoses, RunStats(), [], ["a.pcap"], detail_limit=2)
    page = parse(text)
    assert len(page.attempts) == len(diagnoses) and page.details == 2
    assert f"This run has {len(diagnoses)} attempts" in text and "first 2 only" in text


def test_times_past_the_calendar_are_shown_as_seconds(tmp_path: Path) -> None:
    # a pcapng time past the year 9999 (README "Hostile input") has no clock time
    convs = []
    for n in range(3):
        conv = Conversation(client=("10.0.0.8", 50200 + n), server=("10.0.0.2", 8080),
                            start=14_475_000_000_000 + 50 * n)
        conv.handshake()
        conv.client(websocket_request("example.com", "/ws"))
        conv.server(http_response(403, "Forbidden"), delay=0.002)
        conv.server_fin()
        conv.client_fin()
        convs.append(conv)
    path = tmp_path / "far.pcapng"
    write_pcap(path, convs, pcapng=True)
    text = read_html(path)
    assert len(parse(text).attempts) == 3
    assert "<td>@14475000000050.00" in text  # the row's time, whole
    assert "→ @14475000000100.0" in text  # the span's end
    # the repeated group's times
    assert re.search(r"<b>3 ×</b>.*, @14475000000000\.\d+ to @14475000000100\.\d+ UTC</li>", text)


def test_an_empty_capture_is_a_page_too(tmp_path: Path) -> None:
    path = tmp_path / "empty.pcap"
    write_pcap(path, [])
    text = read_html(path)
    assert "No upgrade attempts found." in text and parse(text).attempts == {}


# -- the timeline ------------------------------------------------------------------------------

ORDER = ("failed", "succeeded")


def test_timeline_counts_every_point_once() -> None:
    points = [(1000.0 + n * 0.01, "failed" if n % 3 else "succeeded") for n in range(3000)]
    t = build_timeline(points, ORDER)
    assert t is not None
    assert sum(b.total for b in t.buckets) == 3000
    assert sum(s.count for b in t.buckets for s in b.segments) == 3000
    assert all(t.plot_left <= b.x and b.x + b.width <= t.plot_right + 1e-6 for b in t.buckets)
    assert all(t.plot_left <= tick.x <= t.plot_right for tick in t.ticks)
    assert [lane.verdict for lane in t.lanes] == ["failed", "succeeded"]
    assert t.breaks == ()


def test_timeline_keeps_a_lone_attempt_visible_beside_a_storm() -> None:
    points = [(1000.0 + n * 0.001, "failed") for n in range(10_000)] + [(1030.0, "succeeded")]
    t = build_timeline(points, ORDER)
    assert t is not None
    lone = [s for b in t.buckets for s in b.segments if s.verdict == "succeeded"]
    assert len(lone) == 1 and lone[0].height >= MIN_SEGMENT
    assert [len(lane.marks) for lane in t.lanes if lane.verdict == "succeeded"] == [1]


def test_timeline_draws_long_idle_stretches_as_breaks() -> None:
    points = [(1000.0 + n, "failed") for n in range(30)] + [(5000.0 + n, "succeeded")
                                                            for n in range(30)]
    t = build_timeline(points, ORDER)
    assert t is not None and len(t.breaks) == 1
    (gap,) = t.breaks
    assert gap.idle == pytest.approx(5000 - 1029)
    left = [b for b in t.buckets if b.start < 2000]
    right = [b for b in t.buckets if b.start > 2000]
    assert max(b.x + b.width for b in left) <= gap.x + 1e-6 <= min(b.x for b in right)
    # a short pause is time, not a break
    short = [(1000.0, "failed"), (1000.0 + BREAK_SECONDS / 2, "failed")]
    assert build_timeline(short, ORDER).breaks == ()  # type: ignore[union-attr]


def test_timeline_brackets_the_largest_storms() -> None:
    storm = Storm(40, "10.0.0.1", "10.0.0.2:80", "GET /ws", "failed", "response_forbidden",
                  1010.0, 1020.0)
    points = [(1000.0 + n, "failed") for n in range(40)]
    t = build_timeline(points, ORDER, [storm])
    assert t is not None and len(t.brackets) == 1
    (bracket,) = t.brackets
    assert bracket.width > 0 and "40 × GET /ws" in bracket.label
    assert build_timeline([], ORDER) is None
    single = build_timeline([(1000.0, "failed")], ORDER)
    assert single is not None and len(single.buckets) == 1 and len(single.ticks) == 1


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1e11, allow_nan=False),
                          st.sampled_from(("failed", "succeeded", "dropped", "weird"))),
                min_size=1, max_size=60))
def test_timeline_shapes_stay_in_the_plot(points: list[tuple[float, str]]) -> None:
    t = build_timeline(points, ORDER)
    assert t is not None
    assert sum(b.total for b in t.buckets) == len(points)
    assert len(t.breaks) <= MAX_BREAKS and len(t.lanes) == len({v for _, v in points})
    edges = [(b.x, b.x + b.width) for b in t.buckets] + [(g.x, g.x + g.width) for g in t.breaks]
    assert all(t.plot_left - 1e-6 <= low <= high <= t.plot_right + 1e-6 for low, high in edges)
    assert all(t.plot_left - 1e-6 <= tick.x <= t.plot_right + 1e-6 for tick in t.ticks)
    assert all(b.start <= b.end for b in t.buckets)


# -- packaging ---------------------------------------------------------------------------------


def test_templates_are_package_data_and_jinja2_is_required() -> None:
    # read as setuptools reads it (a list value is one pattern per line or comma)
    from setuptools.config.setupcfg import read_configuration

    options = read_configuration(ROOT / "setup.cfg")["options"]
    patterns = options["package_data"]["analyzer.report"]
    shipped = [p.name for p in TEMPLATES.iterdir() if p.is_file()]
    assert shipped and all(any(fnmatch(f"templates/{name}", pat) for pat in patterns)
                           for name in shipped), (shipped, patterns)
    assert any(r.startswith("jinja2") for r in options["install_requires"])


def test_html_is_a_format_of_read_only() -> None:
    assert "html" in run_cli("read", "--help").stdout
    result = run_cli("live", "-i", "lo", "-F", "html")
    assert result.exit_code == 2 and "'html' is not one of" in result.output
