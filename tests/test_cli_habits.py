"""The command line's habits as tcpdump/tshark/jq users expect them, through the real CLI on
real capture files: -r, directories, -o, filters, the terminal (width, colour, progress),
times, several files, connections that never reached HTTP, completion, Ctrl-C."""

from __future__ import annotations

import array
import csv
import fcntl
import io
import json
import os
import re
import select
import signal
import subprocess
import sys
import termios
import time
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

REPO = Path(__file__).resolve().parents[1]
CAPTURES = REPO / "captures"
BASE = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def _cli(*args: str | Path, env: dict[str, str] | None = None,
         input: bytes | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **(env or {})}
    for name in ("NO_COLOR", "COLUMNS"):
        if env is None or name not in env:
            full.pop(name, None)
    done = subprocess.run([sys.executable, "-m", "analyzer", *map(str, args)], cwd=REPO,
                          capture_output=True, timeout=120, env=full, input=input)
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(),
                                       done.stderr.decode())


def _good(port: int, start: float = BASE, client: str = "10.0.0.1") -> Conversation:
    conv = Conversation(client=(client, port), server=("10.0.0.2", 8080), start=start)
    conv.handshake()
    conv.client(websocket_request("example.com", "/chat"))
    conv.server(websocket_response(DEFAULT_WS_KEY), delay=0.002)
    conv.client_ws_close(1000, delay=3.0)
    conv.server_ws_close(1000)
    conv.client_fin()
    conv.server_fin()
    return conv


def _rejected(port: int, start: float = BASE + 1, reason: str = "Forbidden") -> Conversation:
    conv = Conversation(client=("10.0.0.3", port), server=("10.0.0.2", 8080), start=start)
    conv.handshake()
    conv.client(websocket_request("example.com", "/chat"))
    conv.server(http_response(403, reason, [("content-length", "0")]), delay=0.001)
    conv.client_fin()
    conv.server_fin()
    return conv


def _refused(port: int, start: float) -> Conversation:
    conv = Conversation(client=("10.0.0.9", port), server=("10.0.0.2", 9999), start=start)
    conv.syn_rst()
    return conv


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """A WebSocket that worked, one rejected with 403, and a small port scan (refused)."""
    path = tmp_path / "mixed.pcap"
    write_pcap(path, [_good(50000), _rejected(50001)]
               + [_refused(40000 + n, BASE + 2 + n / 100) for n in range(5)])
    return path


def _json(*args: str | Path) -> dict:
    result = _cli(*args, "-F", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# ---- inputs: -r, directories, -o ----------------------------------------------------------

def test_r_is_the_positional_capture_and_repeats(tmp_path: Path, mixed: Path) -> None:
    other = tmp_path / "other.pcap"
    write_pcap(other, [_rejected(50002, start=BASE + 10)])
    by_r = _json("read", "-r", mixed, "-r", other)
    by_position = _json("read", mixed, other)
    assert by_r == by_position and by_r["summary"]["attempts"] == 3
    missing = _cli("read")
    assert missing.returncode == 2 and "no capture given" in missing.stderr


def test_a_directory_reads_the_captures_in_it_in_name_order(tmp_path: Path) -> None:
    rotated = tmp_path / "rotated"
    rotated.mkdir()
    write_pcap(rotated / "b.pcap", [_rejected(50002, start=BASE + 10)])
    write_pcap(rotated / "a.pcap", [_good(50000)], gzip=True)
    (rotated / "notes.txt").write_text("not a capture")
    (rotated / ".hidden.pcap").write_bytes((rotated / "b.pcap").read_bytes())
    document = _json("read", rotated)
    assert [a["file"] for a in document["attempts"]] == [str(rotated / "a.pcap"),
                                                         str(rotated / "b.pcap")]
    assert document == _json("read", rotated / "a.pcap", rotated / "b.pcap")
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _cli("read", empty)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "directory without capture files" in result.stderr


@pytest.mark.parametrize("fmt", ["table", "json", "jsonl", "csv", "markdown", "html"])
def test_o_writes_any_format_to_a_file(tmp_path: Path, mixed: Path, fmt: str) -> None:
    out = tmp_path / f"report.{fmt}"
    written = _cli("read", mixed, "-F", fmt, "-o", out)
    printed = _cli("read", mixed, "-F", fmt)
    assert written.returncode == printed.returncode == 0
    text = out.read_bytes().decode()
    if fmt == "html":  # the page says when it was made: the rest is the same
        made = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC by")
        text, printed.stdout = made.sub("", text), made.sub("", printed.stdout)
    assert written.stdout == "" and text == printed.stdout != ""
    assert written.stderr == printed.stderr  # jsonl's summary stays on standard error


def test_o_is_not_created_when_the_capture_cannot_be_read(tmp_path: Path) -> None:
    out = tmp_path / "report.txt"
    result = _cli("read", tmp_path / "nope.pcap", "-o", out)
    assert result.returncode == 1 and not out.exists()


def test_summary_only(mixed: Path) -> None:
    text = _cli("read", mixed, "--summary-only")
    assert text.stdout.startswith("Attempts: 2 (1 failed, 1 succeeded)\n")
    assert "10.0.0.1:50000" not in text.stdout
    document = _json("read", mixed, "--summary-only")
    # the schema as in every JSON document (wave2-decisions.md), and the same as the full one's
    assert list(document) == ["schema", "summary"] and document["summary"]["attempts"] == 2
    assert document["schema"] == _json("read", mixed)["schema"] == 2
    line = _cli("read", mixed, "--summary-only", "-F", "jsonl").stdout
    assert json.loads(line)["summary"]["verdicts"] == {"failed": 1, "succeeded": 1}
    assert "schema" not in json.loads(line)  # a JSONL line, which carries none


# ---- filters -----------------------------------------------------------------------------

def test_verdict_reason_since_until_filters(mixed: Path) -> None:
    def numbers(*args: str) -> list[int]:
        return [a["number"] for a in _json("read", mixed, *args)["attempts"]]

    assert numbers("--verdict", "failed") == [2]
    assert numbers("--verdict", "FAILED", "--verdict", "succeeded") == [1, 2]
    assert numbers("--reason", "response_forbidden") == [2]
    assert numbers("--reason", "Response_Forbidden") == [2]
    assert numbers("--since", "2023-11-14T22:13:20.5Z") == [2]
    assert numbers("--since", "2023-11-14 22:13:20.5") == [2]  # no zone: UTC
    assert numbers("--since", str(BASE + 0.5)) == [2]  # Unix seconds
    assert numbers("--until", "2023-11-14T23:13:20.5+01:00") == [1]
    assert numbers("--since", str(BASE + 0.5), "--until", str(BASE + 0.9)) == []
    unknown = _cli("read", mixed, "--reason", "response_forbiden")
    assert unknown.returncode == 2 and "did you mean response_forbidden" in unknown.stderr
    bad = _cli("read", mixed, "--since", "yesterday")
    assert bad.returncode == 2 and "--since" in bad.stderr and "ISO 8601" in bad.stderr
    assert _cli("read", mixed, "--verdict", "great").returncode == 2


def test_checks_as_json_and_explain_in_any_case_with_suggestions() -> None:
    from analyzer.checks.catalogue import CATALOGUE

    entries = json.loads(_cli("checks", "--format", "json").stdout)
    assert [e["id"] for e in entries] == [c.id for c in CATALOGUE]
    assert all(e["rfc"] and e["explanation"] and e["fix"] for e in entries)
    upper = _cli("explain", "WS_ACCEPT_MISMATCH")
    assert upper.returncode == 0 and upper.stdout.startswith("ws_accept_mismatch: ")
    near = _cli("explain", "ws_accept_mismatc")
    assert near.returncode == 2 and "did you mean ws_accept_mismatch" in near.stderr
    part = _cli("explain", "accept")
    assert part.returncode == 2 and "ws_accept_mismatch" in part.stderr


def test_shell_completion_is_clicks() -> None:
    env = {"_UPGRADE_ANALYZER_COMPLETE": "bash_complete",
           "COMP_WORDS": "upgrade-analyzer explain ws_acc", "COMP_CWORD": "2"}
    result = _cli(env=env)
    assert "ws_accept_mismatch" in result.stdout
    env["COMP_WORDS"], env["COMP_CWORD"] = "upgrade-analyzer read --verd", "2"
    assert "--verdict" in _cli(env=env).stdout
    script = _cli(env={"_UPGRADE_ANALYZER_COMPLETE": "bash_source"})
    assert "complete -o nosort -F" in script.stdout and "upgrade-analyzer" in script.stdout


# ---- connections that never reached HTTP -------------------------------------------------

def test_connections_that_never_reached_http_are_counted_apart(mixed: Path) -> None:
    table = _cli("read", mixed)
    assert "Attempts: 2 (1 failed, 1 succeeded)" in table.stdout
    assert ("Never reached HTTP (refused or unanswered connections; --tcp lists them): "
            "5 (5 refused)") in table.stdout
    assert "10.0.0.9" not in table.stdout
    document = _json("read", mixed)
    assert [a["kind"] for a in document["attempts"]] == ["http", "http"]
    assert document["summary"]["tcp_only_attempts"] == {"refused": 5}
    listed = _json("read", mixed, "--tcp")
    assert [a["verdict"] for a in listed["attempts"]] == ["succeeded", "failed"] + ["refused"] * 5
    # --fail-on counts them only when asked
    scan = mixed.parent / "scan.pcap"
    write_pcap(scan, [_good(50000)] + [_refused(40000 + n, BASE + 5) for n in range(3)])
    assert _cli("read", scan, "--fail-on", "failed").returncode == 0
    assert _cli("read", scan, "--fail-on", "failed", "--tcp").returncode == 3
    assert _cli("read", scan, "--fail-on", "failed", "-F", "jsonl").returncode == 0
    streamed = _cli("read", "-", "--tcp", "-F", "jsonl", input=scan.read_bytes())
    assert len([line for line in streamed.stdout.splitlines() if '"decided"' in line]) == 4


# ---- several files -----------------------------------------------------------------------

def test_several_files_name_each_attempts_file_and_frame_within_it(tmp_path: Path) -> None:
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    # interleaved in time: b's attempt comes between a's two
    write_pcap(a, [_good(50000), _rejected(50001, start=BASE + 20)])
    write_pcap(b, [_rejected(50002, start=BASE + 10)])
    merged = _json("read", a, b)["attempts"]
    alone = {p: _json("read", p)["attempts"] for p in (a, b)}
    assert [(x["file"], x["client"]) for x in merged] == [
        (str(a), "10.0.0.1:50000"), (str(b), "10.0.0.3:50002"), (str(a), "10.0.0.3:50001")]
    for attempt in merged:
        (same,) = [x for x in alone[Path(attempt["file"])] if x["client"] == attempt["client"]]
        assert attempt["file_frame"] == same["request_frame"]  # as Wireshark numbers that file
    assert "file" not in alone[a][0]
    table = _cli("read", a, b).stdout.splitlines()
    assert table[0].split()[:3] == ["#", "frame", "file:frame"]
    assert table[3].split()[2] == f"b.pcap:{merged[1]['file_frame']}"
    jobs = _json("read", a, b, "--jobs", "2")["attempts"]
    assert sorted((x["file"], x["file_frame"]) for x in jobs) == \
        sorted((x["file"], x["file_frame"]) for x in merged)
    detail = _cli("read", a, b, "--attempt", "2").stdout
    assert f"file {b}, frame {merged[1]['file_frame']} in that file" in detail
    for jobs_option in ((), ("--jobs", "2")):  # CSV's last two columns, as in JSON
        rows = list(csv.DictReader(io.StringIO(_cli("read", a, b, "-F", "csv",
                                                     *jobs_option).stdout)))
        assert sorted((r["file"], r["file_frame"]) for r in rows) == sorted(
            (x["file"], str(x["file_frame"])) for x in merged)
    (row,) = csv.DictReader(io.StringIO(_cli("read", b, "-F", "csv").stdout))
    assert row["file"] == row["file_frame"] == ""  # one file: empty


# ---- times -------------------------------------------------------------------------------

def test_times_are_utc_labelled_with_the_date_when_the_capture_spans_days(
        tmp_path: Path) -> None:
    one_day = tmp_path / "day.pcap"
    write_pcap(one_day, [_good(50000), _rejected(50001)])
    lines = _cli("read", one_day).stdout.splitlines()
    assert "time (UTC)" in lines[0]
    assert re.search(r" 22:13:20\.\d{3} ", lines[2]) and "2023-11-14" not in lines[2]
    days = tmp_path / "days.pcap"
    write_pcap(days, [_good(50000), _rejected(50001, start=BASE + 86_400)])
    lines = _cli("read", days).stdout.splitlines()
    assert re.search(r" 2023-11-14 22:13:20\.\d{3} ", lines[2])
    assert re.search(r" 2023-11-15 22:13:20\.\d{3} ", lines[3])
    local = _cli("read", one_day, "--local-time", env={"TZ": "Asia/Tokyo"}).stdout
    assert "time (JST)" in local and re.search(r" 07:13:20\.\d{3} ", local)
    assert "time (UTC)" in _cli("read", one_day, env={"TZ": "Asia/Tokyo"}).stdout
    # JSON keeps UTC whatever the zone
    assert re.fullmatch(r"2023-11-14T22:13:20\.\d+Z",
                        _json("read", one_day, "--local-time")["attempts"][0]["time"])


def test_streamed_table_heading_stays_over_its_columns(tmp_path: Path) -> None:
    """`read -` prints row by row with set widths: long values (IPv6 addresses, paths) are
    shortened instead of pushing the row right; a new day gets a date line."""
    conv = Conversation(client=("2001:db8:aaaa:bbbb:cccc:dddd:eeee:1", 50000),
                        server=("2001:db8:aaaa:bbbb:cccc:dddd:eeee:2", 8080), start=BASE)
    conv.handshake()
    conv.client(http_request("GET", "/" + "x" * 80, [("Host", "h"), ("Upgrade", "websocket"),
                                                     ("Connection", "Upgrade")]))
    conv.server(http_response(400, "Bad Request", [("content-length", "0")]), delay=0.001)
    conv.client_fin()
    conv.server_fin()
    path = tmp_path / "v6.pcap"
    write_pcap(path, [conv, _rejected(50001, start=BASE + 86_400)])
    lines = _cli("read", "-", input=path.read_bytes()).stdout.splitlines()
    head, rule = lines[0], lines[1]
    rows = [line for line in lines[2:5] if not line.startswith("--")]
    assert "-- 2023-11-15 (UTC) --" in lines
    starts = [m.start() for m in re.finditer(r"\S+", rule)]
    client = starts[3]
    assert head[client:].startswith("client")
    for row in rows:
        for start in starts[1:]:  # a gap before every column, where the heading has one
            assert row[start - 2:start] == "  ", (head, row)
        assert row[client] != " " and row[client:].split()[0].endswith(("50000", "50001"))
    assert head.split()[:4] == ["#", "frame", "time", "(UTC)"]


# ---- the terminal: width, colour, progress (through a pseudo-terminal) --------------------

def _in_pty(args: list[str], columns: int, env: dict[str, str] | None = None,
            stdout_tty: bool = True, raw: bool = False) -> tuple[str, str]:
    """Runs the CLI with standard error (and standard output unless ``stdout_tty`` is False)
    on a pseudo-terminal of ``columns`` columns; returns (terminal text, piped stdout). The
    text is what the terminal shows at the end, or every byte written when ``raw``."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    full = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS", "LINES")}
    full.update({"TERM": "xterm"} | (env or {}))
    process = subprocess.Popen(
        [sys.executable, "-m", "analyzer", *args], cwd=REPO, env=full,
        stdin=subprocess.DEVNULL, stderr=follower,
        stdout=follower if stdout_tty else subprocess.PIPE)
    os.close(follower)
    chunks = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    data = os.read(leader, 65536)
                except OSError:  # the other end closed
                    break
                if not data:
                    break
                chunks.append(data)
            elif process.poll() is not None:
                break
        piped = process.stdout.read().decode() if process.stdout else ""
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        os.close(leader)
    text = b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")
    if raw:
        return text, piped
    # What the terminal shows: a carriage return starts its line again (the progress line).
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n")), piped


@pytest.mark.parametrize("columns", [80, 120])
def test_table_fits_the_terminal_and_keeps_full_width_when_piped(columns: int) -> None:
    paths = [str(CAPTURES / n) for n in ("plain_get.pcap", "ws_close_1008.pcap",
                                         "nginx_proxy_no_upgrade_headers.pcap")]
    shown, _ = _in_pty(["read", *paths], columns)
    table = shown.split("\n\n")[0].splitlines()
    assert len(table) >= 5
    assert all(len(line) <= columns for line in table), table
    # the reason wrapped rather than disappearing: all its words are there
    words = " ".join(table)
    assert "right after" in words and "switch" in words
    piped = _cli("read", *paths).stdout.split("\n\n")[0].splitlines()
    assert max(len(line) for line in piped) > 150
    assert len(piped) == 2 + 5  # one line per attempt


def test_colour_in_the_detail_view_honours_no_color_and_term_dumb() -> None:
    args = ["read", str(CAPTURES / "ws_close_1008.pcap"), "--attempt", "1"]
    assert "\x1b[" in _in_pty(args, 120)[0]
    assert "\x1b[" not in _in_pty(args, 120, {"NO_COLOR": "1"})[0]
    assert "\x1b[" not in _in_pty(args, 120, {"TERM": "dumb"})[0]
    assert "\x1b[" in _in_pty([*args, "--color"], 120, {"NO_COLOR": "1"})[0]


def test_progress_on_a_terminal_only(tmp_path: Path) -> None:
    import struct

    # A connection that is not HTTP, then 200,000 more of its frames (bulk traffic).
    conv = Conversation(client=("10.0.0.1", 50000), server=("10.0.0.2", 443), start=BASE)
    conv.handshake()
    conv.client(b"\x16\x03\x01 not HTTP" + bytes(60))
    segments = conv.segments()
    frames = [s.frame() for s in segments] + [segments[-1].frame()] * 200_000
    path = tmp_path / "big.pcap"
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for frame in frames:
            out.write(struct.pack("<IIII", int(BASE) + 1, 0, len(frame), len(frame)) + frame)
    size = path.stat().st_size
    shown, report = _in_pty(["read", str(path), "-F", "json"], 120, stdout_tty=False,
                            raw=True)
    assert re.search(r"reading: +\d+%", shown), shown
    assert re.search(r"[\d,]+ frames", shown) and "B/s" in shown
    assert f"{size / 2**20:.1f}M" in shown or f"{size / 2**20:.2f}M" in shown
    assert json.loads(report)["summary"]["frames"] == len(frames)
    redirected = _cli("read", path, "-F", "json")
    assert redirected.stderr == ""


# ---- known wrong output, fixed -----------------------------------------------------------

def test_failed_keeps_a_followed_redirect_followed() -> None:
    path = CAPTURES / "redirect_302.pcap"
    everything = _cli("read", path).stdout
    failed = _cli("read", path, "--failed").stdout
    line = "Redirected: 127.0.0.1: GET /old -> 302 -> GET /ws: succeeded"
    assert line in everything and line in failed
    assert "left the capture" not in failed


def test_a_damaged_capture_is_warned_about_once(tmp_path: Path) -> None:
    path = tmp_path / "cut.pcap"
    write_pcap(path, [_good(50000), _rejected(50001, start=BASE + 100)])
    path.write_bytes(path.read_bytes()[:-30])
    for fmt in ("table", "jsonl", "markdown"):
        result = _cli("read", path, "-F", fmt)
        both = result.stdout + result.stderr
        assert both.count("frame 14:") == 1 or both.count("cut.pcap") == 1, both
        assert "warning" in result.stderr and "Warning:" not in both
    document = _json("read", path)
    assert len(document["summary"]["warnings"]) == 1  # JSON keeps it as data


@pytest.mark.parametrize("damaged", [False, True])
def test_lines_warnings_and_summary_keep_their_order_in_one_file(tmp_path: Path,
                                                                  damaged: bool) -> None:
    """From a regular file the JSON lines are left to the output's buffer (no flush a line);
    a warning and the summary (standard error) still come after the lines decided before
    them when both go to one file."""
    path = tmp_path / "capture.pcap"
    write_pcap(path, [_good(50000 + n, start=BASE + n) for n in range(40)]
               + [_rejected(51000, start=BASE + 100)])
    if damaged:
        path.write_bytes(path.read_bytes()[:-30])
    out = tmp_path / "both.txt"
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # as users run
    with out.open("wb") as both:
        done = subprocess.run([sys.executable, "-m", "analyzer", "read", path, "-F", "jsonl"],
                              cwd=REPO, stdout=both, stderr=subprocess.STDOUT, timeout=120,
                              env=buffered)
    assert done.returncode == 0
    lines = out.read_text().splitlines()
    decided = [n for n, line in enumerate(lines) if '"event": "decided"' in line]
    summary = next(n for n, line in enumerate(lines) if line.startswith("Attempts: 41 "))
    assert len(decided) == 41 and max(decided) < summary, lines
    warnings = [n for n, line in enumerate(lines) if line.startswith("upgrade-analyzer: ")]
    assert len(warnings) == damaged
    assert all(max(decided) < n < summary for n in warnings), lines


def test_jsonl_from_a_pipe_comes_out_line_by_line(tmp_path: Path) -> None:
    """From a pipe that stays open (a capture still being written) each attempt's line is
    out as soon as it is decided, not when the input ends."""
    path = tmp_path / "one.pcap"
    write_pcap(path, [_rejected(50001)])
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # as users run
    process = subprocess.Popen([sys.executable, "-m", "analyzer", "read", "-", "-F", "jsonl"],
                               cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               env=buffered)
    try:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(path.read_bytes())
        process.stdin.flush()
        ready, _, _ = select.select([process.stdout], [], [], 60)
        assert ready, "no line while the pipe stayed open"
        line = json.loads(process.stdout.readline())
        assert line["event"] == "decided" and line["status"] == 403
        process.stdin.close()
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


# ---- Ctrl-C ------------------------------------------------------------------------------

def _wait_reading_an_empty_pipe(process: subprocess.Popen[bytes], most: float = 60.0) -> None:
    """Until ``process`` has taken every byte written to its standard input and sleeps in a
    read of the pipe (a fixed sleep was too short for a loaded machine's start-up)."""
    assert process.stdin is not None
    waiting = array.array("i", [0])
    deadline = time.monotonic() + most
    while time.monotonic() < deadline:
        fcntl.ioctl(process.stdin.fileno(), termios.FIONREAD, waiting)
        wchan = Path(f"/proc/{process.pid}/wchan").read_text()
        if waiting[0] == 0 and wchan.endswith("pipe_read"):  # anon_pipe_read on newer kernels
            time.sleep(0.2)  # the bytes read are analysed before the next read blocks
            return
        time.sleep(0.05)
    raise AssertionError(f"the reader did not drain its pipe within {most} s")


def test_ctrl_c_says_the_results_are_partial(tmp_path: Path) -> None:
    """The capture comes through a pipe that stays open (a capture still being written);
    SIGINT then stops the read: status 130, what was found so far, and a note on stderr."""
    path = tmp_path / "two.pcap"
    write_pcap(path, [_good(50000), _rejected(50001)])
    process = subprocess.Popen([sys.executable, "-m", "analyzer", "read", "-", "-F", "json"],
                               cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        assert process.stdin is not None
        process.stdin.write(path.read_bytes())
        process.stdin.flush()
        _wait_reading_an_empty_pipe(process)  # read and analysed; waiting for more
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "interrupted" in err.decode() and "partial" in err.decode()
    assert len(json.loads(out)["attempts"]) == 2
