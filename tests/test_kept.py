"""Sorted reports past SPILL_AFTER attempts (report/kept.py, report/spilled.py): the same bytes
as the report kept in memory, in every format, and a bounded cost per kept attempt."""

from __future__ import annotations

import dataclasses
import gc
import io
import json
import re
import sys
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner

import analyzer.report.blobs as blobs
import analyzer.report.kept as kept
import analyzer.report.spilled as spilled
from analyzer.cli import cli
from analyzer.correlate import Leg
from analyzer.exchange.model import Endpoint
from analyzer.pipeline import Analysis
from analyzer.redirects import Hop
from analyzer.report.clock import Clock
from analyzer.source import read_records
from fuzz import hostile
from tests.builder import (
    Conversation,
    Opcode,
    busy_proxy,
    websocket_request,
    websocket_response,
    write_pcap,
)

CAPTURES = sorted(str(p) for p in (Path(__file__).resolve().parents[1] / "captures").glob(
    "*.pcap*"))


def _read(monkeypatch: pytest.MonkeyPatch, spill_after: int, args: list[str],
          stdin: bytes | None = None, read_ahead: int = blobs.READ_AHEAD,
          ) -> tuple[int, str, str]:
    monkeypatch.setattr(kept, "SPILL_AFTER", spill_after)
    monkeypatch.setattr(blobs, "READ_AHEAD", read_ahead)
    # the spilled table laid out a row at a time: every slice must match the whole table
    monkeypatch.setattr(spilled, "TABLE_SLICE", 1)
    result = CliRunner().invoke(cli, ["read", *args], input=stdin)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    # the HTML page says when it was made: the two runs may fall on two seconds
    stdout = re.sub(r"<dd>generated [^<]*</dd>", "<dd>generated</dd>", result.stdout)
    return result.exit_code, stdout, result.stderr


def _same(monkeypatch: pytest.MonkeyPatch, args: list[str], stdin: bytes | None = None) -> str:
    """Runs `read` kept in memory and spilled from the first attempt, its records read back
    a chunk at a time, and with chunks smaller than a record or than a few (report/blobs.py);
    they must agree."""
    whole = _read(monkeypatch, 10**9, args, stdin)
    # The HTML report says when it was generated, to the second: the two runs may straddle one
    # (one run in a few on a loaded machine).
    for read_ahead in (blobs.READ_AHEAD, 16, 700):
        spilled = _read(monkeypatch, 0, args, stdin, read_ahead)
        assert _undated(spilled) == _undated(whole), read_ahead
    return whole[1]


def _undated(result: tuple[int, str, str]) -> tuple[int, str, str]:
    status, out, err = result
    return status, re.sub(r"generated \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "generated", out), err


@pytest.mark.parametrize("args", [
    ["-F", "table"], ["-F", "json"], ["-F", "csv"], ["-F", "markdown"],
    ["--detail", "--no-color"], ["--attempt", "7", "--no-color"], ["--attempt", "999"],
    ["--failed", "-F", "json"], ["--port", "8080", "-F", "markdown"],
    ["--host", "10.0.0.2", "--fail-on", "failed"],
    ["--summary-only"], ["--summary-only", "-F", "json"], ["-F", "html"], ["--tcp", "-F", "csv"],
    ["--failed", "-F", "html"],  # the timeline's points: the kept attempts' ranks
    ["--verdict", "failed", "--reason", "response_forbidden"], ["--local-time", "--tcp"],
])
def test_spilled_report_is_the_report_kept_in_memory(monkeypatch: pytest.MonkeyPatch,
                                                      args: list[str]) -> None:
    """Every bundled capture at once (proxy legs and a redirect among them)."""
    out = _same(monkeypatch, [*CAPTURES, *args])
    if args == ["-F", "json"]:
        assert "proxy_" in out and '"redirects": [\n      {' in out


def test_spilled_proxy_pairs_are_rebuilt_or_pickled(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    """40 clients through one proxy: the fronts that correlation changes are rebuilt by reading
    the file again, or, from standard input, taken from the pickles made as they were
    decided; either way the report is the one kept in memory."""
    convs = busy_proxy()
    path = tmp_path / "busy.pcap"
    write_pcap(path, convs)
    out = _same(monkeypatch, [str(path), "-F", "csv"])
    assert out.count("proxy_rekeyed") == 20
    _same(monkeypatch, ["-", "-F", "json"], stdin=path.read_bytes())


def test_a_spilled_tunnel_is_no_answer_of_the_proxys_own(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    """A CONNECT the proxy answered 200, beside a handshake it forwarded: not "answered
    itself", spilled or kept in memory."""
    from tests.test_correlate import tunnel_beside_legs

    path = tmp_path / "tunnel.pcap"
    write_pcap(path, tunnel_beside_legs())
    out = _same(monkeypatch, [str(path), "-F", "json"])
    assert '"method": "CONNECT"' in out and "proxy_back_leg" in out
    assert "proxy_answered_itself" not in out


def test_a_spilled_attempt_costs_a_few_bytes_of_memory(tmp_path: Path) -> None:
    """Past SPILL_AFTER a kept attempt is a few numbers in memory (its record is on disk):
    4,000 more attempts of a reconnect storm cost under 128 bytes each. The columns are 57
    (frame, time, record offset, storm hash, pickle offset: 8 each; four 4-byte pairing
    hints; a redirect byte); the rest is the columns' chunk slack and the records' 64 KiB
    write buffer spread over the 4,000 (measured 106 bytes with three hints, 112 with the
    fourth, the proxy's answer status and refused flag of the thirty-first session)."""
    path = tmp_path / "storm.pcap"
    with path.open("wb") as out:
        hostile.rejected_storm(out, 6000)
    run = Analysis()
    decided = list(run.feed_records(read_records([str(path)], []))) + run.finish()
    store = kept.KeptAttempts("csv", lambda d: True, rebuild=lambda: iter(decided))
    for d in decided[:2000]:
        store.add(d)
    assert store.spill is None or len(store.spill.at) == 2000  # SPILL_AFTER is 2,000
    store.add(decided[2000])
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for d in decided[2001:]:
        store.add(d)
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert store.spill is not None
    assert grown / (len(decided) - 2001) < 128
    report = store.close()
    text = io.StringIO()
    assert not isinstance(report, list)
    report.write_csv(text.write)
    assert text.getvalue().count("\n") == len(decided) + 1
    assert sys.getsizeof(report.order) < 10 * len(decided)


class _Text(str):
    """A subclass of str (marshal writes only str itself)."""


def test_a_spilled_record_reads_back_as_it_was_written() -> None:
    """`_packed` writes a record as marshal's plain values and `_unpacked` makes it again:
    every attempt of the bundled captures, in each format's line, comes back equal, its Leg,
    Hop and Endpoints of their own types (the pairing and the redirects compare them)."""
    run = Analysis()
    decided = list(run.feed_records(read_records(CAPTURES, []))) + run.finish()
    kinds = set()
    for fmt in ("table", "csv", "json"):
        store = kept.KeptAttempts(fmt, lambda d: d.verdict.value != "succeeded")
        for d in decided:
            record = store.record(d)
            back = kept._unpacked(kept._packed(record))
            assert back == record and type(back) is kept.Record
            assert type(back.hop) is Hop and type(back.hop.client) is Endpoint
            if back.leg is not None:
                assert type(back.leg) is Leg
                assert type(back.leg.client) is type(back.leg.server) is Endpoint
            kinds.add((back.leg is None, back.keep))
            # an abnormal end of the `Closed:` lines (target, closer, silence, how)
            ended = record._replace(closed=("/chat", "10.0.0.1", 1.5, "reset"))
            assert kept._unpacked(kept._packed(ended)) == ended
    assert len(kinds) == 3  # without a request (so no leg), and with one, kept or not
    # a value marshal does not write (a subclass of str): the record is pickled instead
    odd = record._replace(reason=_Text("ws_closed_with_error"))
    assert kept._packed(odd)[:1] == b"p" and kept._unpacked(kept._packed(odd)) == odd


def test_spilled_markdown_measures_cells_as_escaped(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    """A '|' from the capture is escaped before the table is laid out, so the widest cell of a
    column is the widest once escaped: 16 pipes (33 wide escaped) beat 30 letters."""
    convs = []
    for i, target in enumerate(["/" + "x" * 30, "/" + "|" * 16, "/a|b"]):
        conv = Conversation(client=("10.0.0.1", 50000 + i), server=("10.0.0.2", 80),
                            start=1_700_000_000.0 + i)
        conv.handshake()
        conv.client(websocket_request("example.com", target))
        conv.server(websocket_response())
        convs.append(conv)
    path = tmp_path / "pipes.pcap"
    write_pcap(path, convs)
    out = _same(monkeypatch, [str(path), "-F", "markdown"])
    assert "\\|" * 16 in out


def _html_peak(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, count: int,
               detailed: int = 100) -> tuple[int, int]:
    """Peak memory traced while a spilled report of ``count`` storm attempts is written as
    the HTML page (postmortems for the first ``detailed``), and the number of rows it holds."""
    from analyzer.report.html import page

    path = tmp_path / f"storm{count}.pcap"
    with path.open("wb") as out:
        hostile.rejected_storm(out, count)
    run = Analysis()
    monkeypatch.setattr(kept, "SPILL_AFTER", 0)
    store = kept.KeptAttempts("html", lambda d: True, whole=True)
    for n, d in enumerate([*run.feed_records(read_records([str(path)], [])), *run.finish()]):
        store.add(dataclasses.replace(d, number=n + 1))
    report = store.close()
    assert not isinstance(report, list)
    sink = io.StringIO()
    # The CLI run in this process by other tests raises the collector's threshold (cli.py):
    # measure with Python's default, so that garbage waiting for it is not counted as kept.
    threshold = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    gc.collect()
    tracemalloc.start()
    try:
        for piece in page(report.html_run(run.stats, [], False, None, detailed), run.stats,
                          (), False, detailed):
            sink.write(piece)
            sink.seek(0)
            sink.truncate()  # what is written leaves memory, as on a file
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        gc.set_threshold(*threshold)
    return peak, report.attempts


def test_a_spilled_html_page_reads_its_attempts_back_one_at_a_time(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The page of a spilled report holds the postmortems' attempts whole and the rest one at
    a time: 2,400 more attempts cost under 1.5 KB each while it is written (a list of the
    attempts whole was 7-15 KB each; 5.4 KB each more here)."""
    small, small_rows = _html_peak(monkeypatch, tmp_path, 1200)
    large, large_rows = _html_peak(monkeypatch, tmp_path, 3600)
    assert large_rows - small_rows >= 2400
    # 30-500 bytes each measured (the timeline's times; the rest is when the collector ran)
    assert (large - small) / (large_rows - small_rows) < 1500, (small, large)


def test_a_spilled_html_page_reads_its_postmortems_attempts_back_too(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The attempts that get a postmortem are read from the spill each time the page needs
    them (their rows, then their postmortems), not held: 900 more postmortems cost under
    1.5 KB each of peak memory (held whole, they were ≈ 10 KB each: 20 MB for the 2,000 of
    3 GB of the dense benchmark mix)."""
    few, rows = _html_peak(monkeypatch, tmp_path, 1000, detailed=100)
    many, same_rows = _html_peak(monkeypatch, tmp_path, 1000, detailed=1000)
    assert rows == same_rows >= 1000
    assert (many - few) / 900 < 1500, (few, many)


def _table_peak(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, count: int) -> int:
    """Peak memory traced while a spilled report of ``count`` storm attempts is written as the
    table (laid out a line at a time onto a sink that keeps nothing)."""
    from analyzer.report.table import TableStyle

    path = tmp_path / f"table{count}.pcap"
    with path.open("wb") as out:
        hostile.rejected_storm(out, count)
    run = Analysis()
    monkeypatch.setattr(kept, "SPILL_AFTER", 0)
    store = kept.KeptAttempts("table", lambda d: True)
    decided = [*run.feed_records(read_records([str(path)], [])), *run.finish()]
    for n, d in enumerate(decided):
        store.add(dataclasses.replace(d, number=n + 1))
    report = store.close()
    assert not isinstance(report, list)
    threshold = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    gc.collect()
    tracemalloc.start()
    try:
        report.write_table(run.stats, [], False, lambda text: None, TableStyle())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        gc.set_threshold(*threshold)
    return peak


def test_a_spilled_table_is_written_a_line_at_a_time(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    """2,400 more rows cost well under the ~500 bytes each that the table built as one
    string took (a million rows: 654 MB peak, 108 MB for 300,000 once written a line at a
    time)."""
    small = _table_peak(monkeypatch, tmp_path, 1200)
    large = _table_peak(monkeypatch, tmp_path, 3600)
    assert (large - small) / 2400 < 250, (small, large)


def test_a_spilled_report_groups_only_the_keys_that_repeat(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    """Storm groups ("Repeated:") are made for keys seen three times or more, not one per
    distinct attempt (each ≈ 330 bytes: 13.8 MB at 3 GB of the dense benchmark mix, where
    nearly every client is new); the summary is the same as kept in memory."""
    convs = []
    # 30 clients once each, one client twice, one four times: only the last is a storm
    clients = [f"10.1.0.{n}" for n in range(1, 31)] + ["10.2.0.1"] * 2 + ["10.3.0.1"] * 4
    for i, client in enumerate(clients):
        conv = Conversation(client=(client, 40000 + i), server=("10.0.0.2", 80),
                            start=1_700_000_000.0 + i)
        conv.handshake()
        conv.client(websocket_request("example.com", "/chat"))
        conv.server(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        convs.append(conv)
    path = tmp_path / "repeats.pcap"
    write_pcap(path, convs)
    summary = _same(monkeypatch, [str(path), "--summary-only", "-F", "json"])
    assert '"client": "10.3.0.1"' in summary and "10.2.0.1" not in summary

    monkeypatch.setattr(kept, "SPILL_AFTER", 0)
    store = kept.KeptAttempts("table", lambda d: True)
    run = Analysis()
    for n, d in enumerate([*run.feed_records(read_records([str(path)], [])), *run.finish()]):
        store.add(dataclasses.replace(d, number=n + 1))
    report = store.close()
    assert not isinstance(report, list)
    assert [(s.count, s.client) for s in report.storms()] == [(4, "10.3.0.1")]
    assert len(report.groups) == 1  # was 32: one per distinct key



@pytest.mark.parametrize("args", [[], ["--local-time"], ["--verdict", "failed"]])
def test_a_spilled_table_measured_in_the_summary_pass_is_the_table_measured_apart(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: list[str]) -> None:
    """The table measures its columns in the summary's pass (`SpilledReport._scan`), the
    number and time from the arrays in memory; measured apart (a report whose summary was
    read first) and kept in memory, the same table. Times across days and past any calendar
    ("@..."), long requests and reasons, and a filter that keeps some attempts only."""
    from analyzer.report.table import TableStyle

    convs = []
    for i in range(15):
        conv = Conversation(client=(f"10.1.0.{i + 1}", 40000 + i), server=("10.0.0.2", 80),
                            start=1_700_000_000.0 + i * 9_000)
        conv.handshake()
        conv.client(websocket_request("example.com", "/chat/" + "x" * (i * 9)))
        if i % 2:
            conv.server(websocket_response())
        else:
            conv.server(b"HTTP/1.1 403 Forbidden because " + b"y" * (i * 7)
                        + b"\r\nContent-Length: 0\r\n\r\n")
        convs.append(conv)
    path = tmp_path / "widths.pcap"
    write_pcap(path, convs)
    table = _same(monkeypatch, [str(path), *args])
    assert "xxxxxxxxxx…" in table and "2023-11-15" in table  # (clipped; the date shown)
    # times no calendar holds (a crafted capture's), and one that rounds up into the next
    # second, given to the attempts as they are kept
    odd = {2: 9e11, 5: -9e10, 7: 1_700_000_001.9999996, 11: 2.5e14}

    monkeypatch.setattr(kept, "SPILL_AFTER", 0)
    keep = (lambda d: d.verdict.value == "failed") if args == ["--verdict", "failed"] else (
        lambda d: True)
    tables = []
    for summary_first in (False, True):
        store = kept.KeptAttempts("table", keep)
        run = Analysis()
        for n, d in enumerate([*run.feed_records(read_records([str(path)], [])),
                               *run.finish()]):
            if n in odd:  # (an attempt's time is its request's)
                request = dataclasses.replace(d.attempt.request, time=odd[n])
                d = dataclasses.replace(d, attempt=dataclasses.replace(d.attempt, request=request))
            store.add(dataclasses.replace(d, number=n + 1))
        report = store.close()
        assert not isinstance(report, list)
        if summary_first:
            report.summary(run.stats, [])
        out: list[str] = []
        report.write_table(run.stats, [], False, out.append,
                           TableStyle(Clock(local=args == ["--local-time"])))
        tables.append("".join(out))
    assert tables[0] == tables[1]
    assert "@900000000000.000000" in tables[0] or args == ["--verdict", "failed"]


def test_a_rebuild_that_decides_otherwise_lends_no_attempt_its_findings(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A spilled report rebuilds the proxy legs it pairs by reading the input again, and
    matches them to the first run by order of decision. A rebuilt attempt that is not the
    one decided at its place (the file rewritten in between; or, before, a rebuild made
    without the first run's lifetimes, reading a directory of captures that share flows)
    is not used: it crashed on a leg without request (an assertion in `compare_legs`), or
    put one client's proxy findings on another."""
    path = tmp_path / "busy.pcap"
    write_pcap(path, busy_proxy(10))
    run = Analysis()
    decided = [*run.feed_records(read_records([str(path)], [])), *run.finish()]
    monkeypatch.setattr(kept, "SPILL_AFTER", 0)

    def rekeyed(rebuilt: list) -> dict:
        """Each client's front leg: whether the report says the proxy changed its key."""
        store = kept.KeptAttempts("json", lambda d: True, rebuild=lambda: iter(rebuilt))
        for n, d in enumerate(decided):
            store.add(dataclasses.replace(d, number=n + 1))
        report = store.close()
        assert not isinstance(report, list)
        spill = report.spill
        legs = [(spill.leg(i), spill.listed(i).line) for i in range(len(decided))]
        return {leg.client: '"proxy_rekeyed"' in line for leg, line in legs
                if leg is not None and leg.server.port == 80}

    right = rekeyed(decided)
    assert sum(right.values()) == 5  # the back legs with the proxy's own key
    otherwise = rekeyed(decided[::-1])
    assert otherwise.keys() == right.keys()
    for client, said in otherwise.items():  # as decided (no proxy finding) or as it should be
        assert not said or right[client], client


def test_a_proxy_front_that_lived_on_keeps_its_end_when_spilled(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A front leg whose WebSocket outlives its watch, then ends with the server's Close
    1011, and whose proxy changed the key: correlation judges it again. Spilled, it was
    rebuilt by reading the input again, which gives its decided verdict: it lost its
    `lifetime` and its end's finding (and with whole attempts, `--detail`, the lifetime
    alone). Kept whole with its end, it now reads as in memory."""
    front = Conversation(client=("10.0.1.1", 50000), server=("10.0.0.2", 80),
                         start=1_700_000_000.0)
    front.handshake()
    front.client(websocket_request("chat.example.com", "/ws", key="client-key-00-AAAAAA=="))
    back = Conversation(client=("10.0.0.2", 41000), server=("10.0.0.3", 8080),
                        start=1_700_000_000.01)
    back.handshake()
    back.client(websocket_request("chat.example.com", "/ws", key="proxy-key-00-AAAAAAA=="))
    back.server(websocket_response("proxy-key-00-AAAAAAA=="), delay=0.002)
    front.server(websocket_response("client-key-00-AAAAAA=="), delay=0.03)
    for _ in range(4):  # past the 2 s watch
        front.server_ws_frame(Opcode.TEXT, b"tick", delay=1.0)
    front.server_ws_close(1011, "boom", delay=0.5)
    front.client_fin(delay=0.01)
    front.server_fin(delay=0.01)
    path = tmp_path / "front_in_life.pcap"
    write_pcap(path, [front, back])
    out = _same(monkeypatch, [str(path), "-F", "json"])
    assert "proxy_rekeyed" in out and "close_internal_error" in out and '"how": "' in out
    _same(monkeypatch, [str(path), "--detail", "--no-color"])


@pytest.mark.parametrize("args", [["-F", "table"], ["--summary-only"], ["-F", "markdown"],
                                  ["-F", "json"], ["--summary-only", "-F", "json"]])
def test_a_spilled_report_says_a_capture_warning_where_the_report_in_memory_does(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: list[str]) -> None:
    """A capture cut in its last record warns once on standard error; the table's summary
    spilled repeated it as a "Warning:" line that the report in memory leaves out (JSON has
    it in its document, both ways)."""
    whole = Path(CAPTURES[0]).read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(whole[:len(whole) - 5])
    out = _same(monkeypatch, [str(cut), CAPTURES[1], *args])
    assert ("truncated record" in out) == ("json" in args)


def test_long_heads_spill_by_their_bytes_before_spill_after(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Attempts whose heads are long (8 KB paths) spill once their heads add up to
    SPILL_AFTER_BYTES, well before SPILL_AFTER attempts: their memory is bounded by bytes too,
    and the report is the one kept in memory."""
    path = tmp_path / "long.pcap"
    with path.open("wb") as out:
        hostile.long_target_storm(out, 1500)
    run = Analysis()
    decided = list(run.feed_records(read_records([str(path)], []))) + run.finish()
    assert len(decided) == 1501 < kept.SPILL_AFTER
    store = kept.KeptAttempts("table", lambda d: True, rebuild=lambda: iter(decided))
    for d in decided[:900]:  # ≈ 7.5 MB of heads
        store.add(d)
    assert store.spill is None
    for d in decided[900:]:
        store.add(d)
    assert store.spill is not None and len(store.spill.at) == 1501
    _same(monkeypatch, [str(path), "-F", "table"])


@pytest.mark.parametrize("spill_after", [10**9, 0])
def test_a_proxy_back_leg_names_the_proxy_as_its_client(monkeypatch: pytest.MonkeyPatch,
                                                        spill_after: int) -> None:
    """The back leg of a proxied handshake (real nginx in front of websockets, both legs
    captured: nginx closed both after 1 s of silence) carries the User-Agent the proxy
    forwarded; its client is the proxy, and the lines the end client's library prints belong
    to the front leg only. Kept in memory and spilled alike."""
    capture = str(Path(__file__).resolve().parents[1] / "captures" /
                  "websocket_ended_early.pcap")
    status, out, _ = _read(monkeypatch, spill_after, [capture, "-F", "json"])
    attempts = {(a["server"], a["path"]): a for a in json.loads(out)["attempts"]}
    front = attempts[("127.0.0.1:18183", "/quiet")]
    back = attempts[("127.0.0.1:18184", "/quiet")]
    killed = attempts[("127.0.0.1:18184", "/killed")]  # a client of its own: not a leg
    assert "proxy_back_leg" in back["reasons"] and back["reasons"][0] == \
        "ended_without_close_after_switch"
    assert back["attribution"]["client"] == "proxy at 127.0.0.1:18183"
    assert back["attribution"]["client_errors"] == []
    for alone in (front, killed):
        assert "proxy_back_leg" not in alone["reasons"]
        assert alone["attribution"]["client"] == "python websockets"
        assert any("no close frame received or sent" in line
                   for line in alone["attribution"]["client_errors"])
    assert [a["verdict"] for a in (front, back, killed)] == ["aborted"] * 3


@pytest.mark.parametrize("spill_after", [10**9, 0])
def test_a_proxy_back_leg_ended_by_the_proxys_idle_timeout_says_so(
        monkeypatch: pytest.MonkeyPatch, spill_after: int) -> None:
    """Real nginx (proxy_read_timeout 5 s) closed a quiet WebSocket toward both sides: the
    front leg's server side and the back leg's client side are nginx. Both legs say idle
    timeout once correlation knows the back leg (in memory and spilled alike); streamed as
    JSONL, with no correlation, the back leg's end is only a close without a Close frame
    (the near miss: its client side could be anything)."""
    capture = str(Path(__file__).resolve().parents[1] / "captures" / "websocket_lives.pcap")
    _, out, _ = _read(monkeypatch, spill_after, [capture, "-F", "json"])
    attempts = {(a["server"], a["path"]): a for a in json.loads(out)["attempts"]}
    front, back = attempts[("127.0.0.1:18180", "/quiet")], attempts[("127.0.0.1:18181", "/quiet")]
    assert front["reasons"][0] == back["reasons"][0] == "idle_timeout_after_switch"
    assert "proxy_back_leg" in back["reasons"] and "closed_without_close_frame" not in \
        back["reasons"]
    (found,) = [f["found"] for f in back["findings"] if f["id"] == "idle_timeout_after_switch"]
    assert found.startswith("the proxy 127.0.0.1:") and "5.0 s of silence" in found
    _, streamed, _ = _read(monkeypatch, spill_after, [capture, "-F", "jsonl"])
    ended = [json.loads(line) for line in streamed.splitlines()
             if '"event": "ended"' in line and '"path": "/quiet"' in line]
    assert sorted(e["reasons"][0] for e in ended) == [
        "closed_without_close_frame", "idle_timeout_after_switch"]


@pytest.mark.parametrize("args", [["-F", "json"], ["--detail", "--no-color"],
                                  ["--tcp", "-F", "csv"], ["-F", "table"]])
def test_a_refused_back_leg_pairs_listed_or_not_in_memory_spilled_and_sharded(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: list[str]) -> None:
    """nginx's 502 with its refused connection to the backend captured: without --tcp the
    refused connection is not listed, yet correlation pairs it (`KeptAttempts.set_aside`),
    kept in memory, spilled, and from `--jobs` workers alike, with the proxy's two retries
    refused after it (HAProxy's) counted on the front and paired as back legs too."""
    from tests.test_correlate import refused_back_leg

    path = tmp_path / "refused.pcap"
    write_pcap(path, refused_back_leg(retries=2))
    out = _same(monkeypatch, [str(path), *args])
    assert "proxy_backend_refused" in out or "proxy's connection to the backend" in out
    if args == ["-F", "json"]:
        assert "(RST to its SYN), and its 2 retries alike" in out
    if "--tcp" in args:
        assert out.count("proxy_back_leg") == 3, out
    assert _read(monkeypatch, 10**9, [str(path), "--jobs", "2", *args])[1] == out
    assert _read(monkeypatch, 0, [str(path), "--jobs", "2", *args])[1] == out
