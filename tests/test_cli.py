"""The command line as a user runs it: formats, filters, exit statuses, errors, damaged input."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.builder import (
    DEFAULT_WS_KEY,
    Conversation,
    http_request,
    http_response,
    websocket_request,
    websocket_response,
    write_pcap,
)
from tests.helpers import run_cli


def _good(port: int, start: float = 1_700_000_000.0) -> Conversation:
    conv = Conversation(client=("10.0.0.1", port), server=("10.0.0.2", 8080), start=start)
    conv.handshake()
    conv.client(websocket_request("example.com", "/chat"))
    conv.server(websocket_response(DEFAULT_WS_KEY), delay=0.002)
    conv.client_ws_frame(payload=b"hello", delay=0.5)
    conv.server_ws_frame(payload=b"hello", delay=0.001)
    conv.client_ws_close(1000, delay=3.0)
    conv.server_ws_close(1000)
    conv.client_fin()
    conv.server_fin()
    return conv


def _postman(port: int, start: float = 1_700_000_001.0) -> Conversation:
    """A plain GET to an actix-web WebSocket endpoint: the most common failure there is."""
    conv = Conversation(client=("10.0.0.3", port), server=("10.0.0.2", 8080), start=start)
    conv.handshake()
    conv.client(http_request("GET", "/chat", [("Host", "example.com"),
                                              ("User-Agent", "PostmanRuntime/7.36.0")]))
    conv.server(http_response(400, "No WebSocket Upgrade header found",
                              [("content-length", "0")]), delay=0.001)
    conv.client_fin()
    conv.server_fin()
    return conv


@pytest.fixture
def two(tmp_path: Path) -> Path:
    path = tmp_path / "two.pcap"
    write_pcap(path, [_good(50000), _postman(50001)])
    return path


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "analyzer", *args], capture_output=True,
                          text=True, timeout=60)


def test_table_lists_each_attempt_with_verdict_and_reason(two: Path) -> None:
    result = _cli("read", str(two))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any("succeeded" in line and "switched to websocket" in line for line in lines)
    assert any("failed" in line and "plain HTTP request sent to a WebSocket endpoint" in line
               for line in lines)
    assert "Attempts: 2 (1 failed, 1 succeeded)" in result.stdout
    assert result.stderr == ""


def test_json_document_has_the_documented_fields(two: Path) -> None:
    document = json.loads(run_cli("read", two, "--format", "json").output)
    first, second = document["attempts"]
    assert first["client"] == "10.0.0.1:50000" and first["server"] == "10.0.0.2:8080"
    assert first["verdict"] == "succeeded" and first["status"] == 101
    assert first["offered"] == ["websocket"] and first["method"] == "GET"
    assert first["path"] == "/chat" and first["host"] == "example.com"
    assert first["time"].startswith("2023-11-14T22:13:20") and first["time"].endswith("Z")
    assert second["verdict"] == "failed"
    assert second["reasons"][0] == "request_without_upgrade"
    assert second["findings"][0]["rfc"] == "RFC 6455 §4.1"
    assert second["request_frame"] == 4 + 7 and second["response_frame"] > second["request_frame"]
    assert document["summary"]["verdicts"] == {"failed": 1, "succeeded": 1}


def test_jsonl_streams_one_line_per_attempt_and_summary_to_stderr(two: Path) -> None:
    result = _cli("read", str(two), "--format", "jsonl")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    # in the order of decision: the rejection is known at once, the switch only after its
    # first moments have been watched (then its connection's end, after the watch window)
    assert [(r["event"], r["verdict"]) for r in rows if r["event"] == "decided"] == [
        ("decided", "failed"), ("decided", "succeeded")]
    assert "Attempts: 2" in result.stderr


def test_csv_and_markdown(two: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(run_cli("read", two, "-F", "csv").output)))
    assert [r["verdict"] for r in rows] == ["succeeded", "failed"]
    assert rows[1]["reasons"].split()[0] == "request_without_upgrade"
    markdown = run_cli("read", two, "-F", "markdown").output
    assert markdown.splitlines()[1].startswith("|--")


def test_filters(two: Path) -> None:
    failed = json.loads(run_cli("read", two, "-F", "json", "--failed").output)
    assert [a["verdict"] for a in failed["attempts"]] == ["failed"]
    by_host = json.loads(run_cli("read", two, "-F", "json", "--host", "10.0.0.3").output)
    assert [a["client"] for a in by_host["attempts"]] == ["10.0.0.3:50001"]
    by_port = json.loads(run_cli("read", two, "-F", "json", "--port", "50000").output)
    assert [a["client"] for a in by_port["attempts"]] == ["10.0.0.1:50000"]
    none = json.loads(run_cli("read", two, "-F", "json", "--port", "1").output)
    assert none["attempts"] == []


def test_fail_on_failed_exits_3(two: Path, tmp_path: Path) -> None:
    assert _cli("read", str(two), "--fail-on", "failed").returncode == 3
    good = tmp_path / "good.pcap"
    write_pcap(good, [_good(50000)])
    assert _cli("read", str(good), "--fail-on", "failed").returncode == 0


def test_several_files_are_one_capture_in_time_order(tmp_path: Path) -> None:
    # the request is in the first file, the response in the second (rotated capture)
    conv = _good(50000)
    segments = conv.segments()
    write_pcap(tmp_path / "a.pcap", [segments[:4]])
    write_pcap(tmp_path / "b.pcap", [segments[4:]])
    # named out of order on purpose: timestamps decide
    document = json.loads(run_cli("read", tmp_path / "b.pcap", tmp_path / "a.pcap",
                                  "-F", "json").output)
    (attempt,) = document["attempts"]
    assert attempt["verdict"] == "succeeded" and attempt["request_frame"] == 4


def test_standard_input(two: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "analyzer", "read", "-", "-F", "jsonl"],
                            input=two.read_bytes(), capture_output=True, timeout=60)
    assert result.returncode == 0
    assert len([line for line in result.stdout.splitlines() if b'"decided"' in line]) == 2


def test_a_plain_read_does_not_import_what_only_other_views_need(two: Path) -> None:
    # tabulate (with wcwidth's tables) and multiprocessing cost more to import than a small
    # capture costs to analyse; jsonl needs neither, nor the detail view, nor scapy (nor the
    # smaller csv and textwrap), nor the TLS stage for a capture without TLS.
    lazy = ("tabulate", "wcwidth", "multiprocessing", "analyzer.scale.files", "pickle",
            "analyzer.report.detail", "scapy", "analyzer.source.live", "csv", "textwrap",
            "analyzer.tls.layer", "analyzer.tls.session", "analyzer.tls.handshake",
            # their C halves do (analyzer/exchange/model.py, websocket/handshake.py)
            "socket", "hashlib")
    code = ("import sys\nfrom analyzer.cli import main\nsys.argv[1:] = ['read', sys.argv[1], "
            "'-F', 'jsonl']\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
            f"print(sorted(m for m in {lazy!r} if m in sys.modules), file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code, str(two)], capture_output=True,
                            text=True, timeout=60)
    assert len([line for line in result.stdout.splitlines() if '"decided"' in line]) == 2
    assert result.stderr.splitlines()[-1] == "[]"


def test_renumbering_copies_every_field_as_dataclasses_replace_does() -> None:
    """`cli_read._renumber` (the positional constructor) equals `dataclasses.replace`, field
    by field, those left out of equality too (a field added to Diagnosis and not copied
    fails here)."""
    import dataclasses

    from analyzer.cli_read import _renumber
    from analyzer.life.model import Lifetime
    from analyzer.pipeline import Analysis
    from analyzer.source import read_records
    from analyzer.verdict import Diagnosis

    capture = str(Path(__file__).resolve().parent.parent / "captures" / "plain_get.pcap")
    run = Analysis()
    decided = [d for d in [*run.feed_records(read_records([capture], [])), *run.finish()]
               if isinstance(d, Diagnosis)]
    assert decided
    names = [f.name for f in dataclasses.fields(Diagnosis)]
    for d in decided:
        full = dataclasses.replace(d, origin=("a.pcap", 7),
                                   lifetime=Lifetime(1.5, "client", "FIN", 0.5, None))
        assert full.attribution is not None  # fills `who`, which equality leaves out
        for original in (d, full):
            fast, plain = _renumber(original, 42), dataclasses.replace(original, number=42)
            assert fast == plain
            assert [getattr(fast, n) for n in names] == [getattr(plain, n) for n in names]
            assert all(getattr(fast, n) is not None for n in names if original is full)


def test_the_console_script_entry_point_runs_the_cli_with_the_collector_back_on() -> None:
    """setup.cfg's `upgrade-analyzer` is `analyzer.__main__:run`, as `python -m analyzer`:
    the imports run with the collector off, and the CLI turns it back on (cli.main)."""
    import configparser

    config = configparser.ConfigParser()
    config.read(Path(__file__).resolve().parent.parent / "setup.cfg")
    assert "upgrade-analyzer = analyzer.__main__:run" in config["options.entry_points"][
        "console_scripts"]
    code = ("import atexit, gc, sys\nsys.argv = ['upgrade-analyzer', '--version']\n"
            "atexit.register(lambda: print(gc.isenabled(), gc.get_threshold()[:2], "
            "gc.get_freeze_count() > 10000, file=sys.stderr))\n"
            "from analyzer.__main__ import run\nrun()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and "upgrade-analyzer" in result.stdout
    assert result.stderr.splitlines()[-1] == "True (10000, 20) True"


def test_missing_file_is_one_line_error_without_traceback(tmp_path: Path) -> None:
    result = _cli("read", str(tmp_path / "nope.pcap"))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "nope.pcap" in result.stderr


@pytest.mark.parametrize("option", ["--keylog", "--output"])
def test_unopenable_keylog_or_output_is_one_line_error(two: Path, tmp_path: Path,
                                                       option: str) -> None:
    result = _cli("read", str(two), option, str(tmp_path / "no" / "such"))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"upgrade-analyzer: error: {option} {tmp_path}/no/such: No such " \
                            "file or directory\n"


def test_not_a_capture_says_what_it_looks_like(tmp_path: Path) -> None:
    text = tmp_path / "notes.pcap"
    text.write_text("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    result = _cli("read", str(text))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "text" in result.stderr


def test_truncated_capture_warns_and_keeps_what_was_read(tmp_path: Path) -> None:
    path = tmp_path / "cut.pcap"
    write_pcap(path, [_good(50000), _postman(50001, start=1_700_000_100.0)])
    data = path.read_bytes()
    path.write_bytes(data[:-30])  # the last record is cut short
    result = _cli("read", str(path), "-F", "json")
    assert result.returncode == 0
    assert "warning" in result.stderr and "Traceback" not in result.stderr
    verdicts = [a["verdict"] for a in json.loads(result.stdout)["attempts"]]
    assert verdicts[0] == "succeeded" and len(verdicts) == 2


def test_garbage_after_a_valid_prefix(tmp_path: Path) -> None:
    path = tmp_path / "junk.pcap"
    write_pcap(path, [_good(50000)])
    path.write_bytes(path.read_bytes() + b"\xff" * 5000)
    result = _cli("read", str(path), "-F", "json")
    assert result.returncode == 0 and "warning" in result.stderr
    assert [a["verdict"] for a in json.loads(result.stdout)["attempts"]] == ["succeeded"]


def test_checks_and_explain() -> None:
    listing = run_cli("checks").output
    assert "ws_accept_mismatch" in listing and "RFC 6455" in listing
    explained = run_cli("explain", "ws_accept_mismatch").output
    assert "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" in explained and "fix:" in explained
    unknown = _cli("explain", "no_such_check")
    assert unknown.returncode == 2 and "unknown check id" in unknown.stderr


def test_bad_usage_exits_2() -> None:
    assert _cli("read").returncode == 2
    assert _cli("read", "x.pcap", "--format", "xml").returncode == 2


def test_max_connections_caps_the_table_and_says_so(tmp_path: Path) -> None:
    from fuzz.hostile import syn_flood

    path = tmp_path / "flood.pcap"
    with path.open("wb") as out:
        syn_flood(out, 20_000)
    result = _cli("read", str(path), "-F", "json", "--max-connections", "1000")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)["summary"]
    assert summary["evicted_connections"] > 10_000
    # the valid handshake at the end of the flood is still judged
    assert [a["verdict"] for a in json.loads(result.stdout)["attempts"]
            if a["kind"] == "http"] == ["succeeded"]


def test_streamed_summary_still_groups_repeated_attempts(tmp_path: Path) -> None:
    """jsonl keeps counts instead of attempts; the summary must not lose the storm line."""
    path = tmp_path / "storm.pcap"
    write_pcap(path, [_postman(51000 + n, start=1_700_000_000.0 + n) for n in range(4)])
    result = _cli("read", str(path), "-F", "jsonl", "--fail-on", "failed")
    assert len(result.stdout.splitlines()) == 4
    assert "Repeated: 4 x 10.0.0.3 -> 10.0.0.2:8080 GET /chat: failed" in result.stderr
    assert result.returncode == 3


@pytest.mark.parametrize("count", [0, 1, 5, None])
def test_json_report_in_pieces_is_json_dumps_of_the_whole_document(count: int | None) -> None:
    """`iter_json` writes the report attempt by attempt (memory) and must give exactly the
    text of ``json.dumps(document, indent=2)``: nothing, one, several and all the attempts
    of the bundled captures, with their summary (repeated groups and redirects included)."""
    from analyzer.pipeline import Analysis
    from analyzer.report.render import attempt_fields, iter_json, summary_fields
    from analyzer.source import read_records

    repo = Path(__file__).resolve().parents[1]
    paths = sorted(str(p) for p in (repo / "captures").glob("*.pcap*"))
    run = Analysis()
    diagnoses = list(run.feed_records(read_records(paths, []))) + run.finish()
    chosen = diagnoses if count is None else diagnoses[:count]
    document = {"schema": 2, "attempts": [attempt_fields(d) for d in chosen],
                "summary": summary_fields(chosen, run.stats, [])}
    assert "".join(iter_json(chosen, run.stats, [])) == json.dumps(document, indent=2)
