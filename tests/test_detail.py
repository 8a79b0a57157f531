"""The postmortem view (`read --detail`, `read --attempt N`): ladder, heads, findings, colour.

Each case is a scripted conversation written as a real pcap and read by the real command line,
so the frame numbers on the ladder are the ones Wireshark shows (``frames[N - 1]`` is frame N).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from analyzer.report.detail import render_detail
from tests.builder import (
    DEFAULT_WS_KEY,
    Conversation,
    Segment,
    TcpFlags,
    http_request,
    http_response,
    websocket_request,
    websocket_response,
    write_pcap,
)
from tests.helpers import analyze_pcap, run_cli

START = 1_700_000_000


def _aborted() -> Conversation:
    """Switched, a text frame each way, then the server closes with 1008 and both FIN."""
    conv = Conversation(client=("10.0.0.1", 50000), server=("10.0.0.2", 8080), start=START)
    conv.handshake()  # SYN 0 ms, SYN-ACK 1 ms, ACK 2 ms
    conv.client(websocket_request("example.com", "/chat"))  # 3 ms
    conv.server(websocket_response(DEFAULT_WS_KEY), delay=0.002)  # 5 ms
    conv.client_ws_frame(payload=b"hello")  # 6 ms
    conv.server_ws_close(1008, "policy", delay=0.003)  # 9 ms
    conv.client_ws_close(1008)  # 10 ms
    conv.server_fin()  # 11 ms
    conv.client_fin()  # 12 ms
    return conv


def _rejected() -> Conversation:
    """Postman in HTTP mode against actix-web: 400 with a reason and a body."""
    conv = Conversation(client=("10.0.0.3", 50001), server=("10.0.0.2", 8080), start=START + 1)
    conv.handshake()
    conv.client(http_request("GET", "/chat", [("Host", "example.com"),
                                              ("User-Agent", "PostmanRuntime/7.36.0")]))
    body = b"No WebSocket Upgrade header found\r\nsee the docs\r\n"
    conv.server(http_response(400, "Bad Request", [("Content-Length", str(len(body)))], body),
                delay=0.004)  # 7 ms
    conv.server_fin()
    conv.client_fin()
    return conv


def _refused() -> Conversation:
    conv = Conversation(client=("10.0.0.4", 50002), server=("10.0.0.2", 9), start=START + 2)
    conv.syn_rst(rtt=0.0005)
    return conv


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Segment]]:
    path = tmp_path_factory.mktemp("detail") / "three.pcap"
    frames = write_pcap(path, [_aborted(), _rejected(), _refused()])
    return path, frames


def _frame(frames: list[Segment], src_port: int, flags: TcpFlags, payload_start: bytes = b"",
           nth: int = 0) -> int:
    """The 1-based frame number of the nth segment from ``src_port`` with those flags/payload."""
    found = [n for n, s in enumerate(frames, start=1)
             if s.src[1] == src_port and s.flags & flags == flags
             and s.payload.startswith(payload_start) and (payload_start or not s.payload)]
    return found[nth]


def _row(text: str, label: str) -> tuple[float, str, str]:
    """(ms, frames, arrow) of the ladder row whose arrow carries ``label``."""
    for line in text.splitlines():
        match = re.match(r"^\s*(\d+\.\d{3})\s+(\d+(?:-\d+)?)\s+(\|.*\|)$", line)
        if match and f" {label} " in match.group(3):
            return float(match.group(1)), match.group(2), match.group(3)
    raise AssertionError(f"no ladder row {label!r} in:\n{text}")


def _to_server(arrow: str) -> bool:
    assert arrow.startswith("|--") and arrow.endswith(">|") or arrow.startswith("|<-"), arrow
    return arrow.endswith(">|")


def _section(text: str, number: int) -> str:
    """The detail of attempt ``number`` out of a `--detail` listing."""
    parts = re.split(r"^(?=#\d+ )", text, flags=re.MULTILINE)
    return next(p for p in parts if p.startswith(f"#{number} "))


def test_ladder_of_a_switch_closed_with_1008(capture: tuple[Path, list[Segment]]) -> None:
    path, frames = capture
    result = run_cli("read", path, "--detail")
    assert result.exit_code == 0
    text = _section(result.stdout, 1)
    assert text.splitlines()[0].startswith("#1 ABORTED  ws_closed_with_error")
    assert "10.0.0.1:50000 → 10.0.0.2:8080  protocol websocket" in text
    client, server = 50000, 8080
    expected = [  # label, ms from the SYN, frame, towards the server
        ("SYN", 0.0, _frame(frames, client, TcpFlags.SYN), True),
        ("SYN-ACK", 1.0, _frame(frames, server, TcpFlags.SYN | TcpFlags.ACK), False),
        ("GET /chat HTTP/1.1", 3.0, _frame(frames, client, TcpFlags.ACK, b"GET"), True),
        ("101 Switching Protocols", 5.0, _frame(frames, server, TcpFlags.ACK, b"HTTP/1.1 101"),
         False),
        ("Text 5 B, masked", 6.0, _frame(frames, client, TcpFlags.ACK, b"\x81"), True),
        ("Close 1008 'policy', unmasked", 9.0, _frame(frames, server, TcpFlags.ACK, b"\x88"),
         False),
        ("Close 1008, masked", 10.0, _frame(frames, client, TcpFlags.ACK, b"\x88"), True),
        ("FIN", 11.0, _frame(frames, server, TcpFlags.FIN), False),
    ]
    rows = []
    for label, ms, frame, to_server in expected:
        at, shown, arrow = _row(text, label)
        assert (at, shown, _to_server(arrow)) == (ms, str(frame), to_server), label
        rows.append(text.index(arrow))
    assert rows == sorted(rows), "the ladder is in frame order"
    # the client's FIN is the last row; both FINs are drawn
    fins = [line for line in text.splitlines() if " FIN " in line]
    assert len(fins) == 2 and fins[1].rstrip().endswith(">|")
    assert f"{_frame(frames, client, TcpFlags.FIN)}  |" in fins[1]
    # the findings and the fix follow the ladder
    assert "ERROR ws_closed_with_error (RFC 6455 §7.4.1)" in text
    assert "found:    server sent Close 1008 (policy violation" in text
    assert "fix:" in text


def test_ladder_heads_and_findings_of_a_400(capture: tuple[Path, list[Segment]]) -> None:
    path, frames = capture
    text = _section(run_cli("read", path, "--detail").stdout, 2)
    assert text.startswith("#2 FAILED  request_without_upgrade")
    request = _frame(frames, 50001, TcpFlags.ACK, b"GET")
    response = _frame(frames, 8080, TcpFlags.ACK, b"HTTP/1.1 400")
    ms, shown, arrow = _row(text, "400 Bad Request (+49 body bytes)")
    assert (ms, shown, _to_server(arrow)) == (7.0, str(response), False)
    assert _row(text, "GET /chat HTTP/1.1")[1] == str(request)
    # the heads as sent, one header per line, and the start of the body
    assert f"Request (frame {request}," in text
    assert "  User-Agent: PostmanRuntime/7.36.0\n" in text
    assert f"Response (frame {response}," in text
    assert "  Content-Length: 49\n\n  No WebSocket Upgrade header found\n  see the docs\n" in text
    assert "ERROR request_without_upgrade (RFC 6455 §4.1)" in text
    assert "expected: Upgrade: websocket" in text
    assert f"frames:   {request}" in text


def test_ladder_of_a_refused_syn(capture: tuple[Path, list[Segment]]) -> None:
    path, frames = capture
    text = _section(run_cli("read", path, "--detail", "--tcp").stdout, 3)
    assert text.startswith("#3 REFUSED  tcp_refused")
    syn_ms, syn, syn_arrow = _row(text, "SYN")
    rst_ms, rst, rst_arrow = _row(text, "RST")
    assert (syn_ms, syn, _to_server(syn_arrow)) == (0.0, str(_frame(frames, 50002, TcpFlags.SYN)),
                                                    True)
    assert (rst_ms, rst, _to_server(rst_arrow)) == (0.5, str(_frame(frames, 9, TcpFlags.RST)),
                                                    False)
    assert "Request (frame" not in text and "|<-- SYN-ACK" not in text


def test_attempt_n_shows_only_that_attempt(capture: tuple[Path, list[Segment]]) -> None:
    path, _ = capture
    result = run_cli("read", path, "--attempt", "2")
    assert result.exit_code == 0
    headers = re.findall(r"^#\d+ ", result.stdout, flags=re.MULTILINE)
    assert headers == ["#2 "]
    assert "10.0.0.3:50001" in result.stdout and "10.0.0.1:50000" not in result.stdout
    assert "Attempts:" not in result.stdout


def test_attempt_out_of_range_is_a_one_line_usage_error(
        capture: tuple[Path, list[Segment]]) -> None:
    path, _ = capture
    result = run_cli("read", path, "--attempt", "99")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "no attempt 99" in result.stderr
    assert "Traceback" not in result.stderr


def test_detail_is_a_text_view(capture: tuple[Path, list[Segment]]) -> None:
    path, _ = capture
    assert run_cli("read", path, "--detail", "-F", "json").exit_code == 2
    assert run_cli("read", path, "--attempt", "0").exit_code == 2


def test_colour_only_on_a_terminal_or_when_asked(capture: tuple[Path, list[Segment]]) -> None:
    path, _ = capture
    # a real pipe: not a terminal, so plain text
    piped = subprocess.run([sys.executable, "-m", "analyzer", "read", str(path), "--detail"],
                           capture_output=True, text=True, timeout=60)
    assert piped.returncode == 0 and "ABORTED" in piped.stdout
    assert "\x1b" not in piped.stdout
    plain = run_cli("read", path, "--attempt", "1").stdout
    assert "\x1b" not in plain
    coloured = run_cli("read", path, "--attempt", "1", "--color").stdout
    assert "\x1b[1;31mABORTED\x1b[0m" in coloured
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain
    assert "\x1b" not in run_cli("read", path, "--detail", "--no-color").stdout


def test_render_detail_is_pure_and_shows_attribution(
        capture: tuple[Path, list[Segment]]) -> None:
    import dataclasses

    from analyzer.verdict import Attribution

    path, _ = capture
    diagnosis = analyze_pcap(path)[0]
    who = Attribution(server="actix-web", confidence="high", evidence=("400 reason text",),
                      server_log="WebSocket upgrade failed", client="Postman",
                      client_errors=("Postman: Error: Unexpected server response: 400",))
    text = render_detail(dataclasses.replace(diagnosis, who=who))
    assert text == render_detail(dataclasses.replace(diagnosis, who=who))
    assert "answered by: actix-web (confidence high)" in text
    assert "evidence: 400 reason text" in text
    assert "server log (most likely): WebSocket upgrade failed" in text
    assert "client: Postman" in text
    assert "Postman: Error: Unexpected server response: 400" in text
    bare = render_detail(dataclasses.replace(diagnosis, who=Attribution()))
    assert "Attribution:" not in bare


@pytest.mark.parametrize("blank", [b"\x0b", b"\x1c", b"\x0c  "])
def test_a_head_line_of_whitespace_alone_is_shown(tmp_path: Path, blank: bytes) -> None:
    """A request head with a line of whitespace that is not a fold (found by fuzzing: the
    view split it into no word and crashed with a traceback): shown as the other malformed
    lines are, and a credential after such a line is still redacted."""
    conv = Conversation(client=("10.0.0.5", 50005), server=("10.0.0.2", 8080), start=START)
    conv.handshake()
    head = websocket_request("example.com", "/chat").replace(
        b"\r\n\r\n", b"\r\n" + blank + b"\r\nAuthorization Bearer sekrit-token\r\n\r\n")
    conv.client(head)
    conv.server(http_response(400, "Bad Request", [("Content-Length", "0")]), delay=0.002)
    conv.server_fin()
    conv.client_fin()
    path = tmp_path / "blank.pcap"
    write_pcap(path, [conv])
    result = run_cli("read", path, "--detail")  # (an exception would propagate)
    assert result.exit_code == 0
    assert "Authorization Bearer" in result.stdout and "sekrit-token" not in result.stdout
    assert "GET /chat HTTP/1.1" in result.stdout


def test_a_report_that_fails_is_one_line_and_status_70(
        capture: tuple[Path, list[Segment]], monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug while the report is written (a fault put into the --detail renderer) ends with
    one line on standard error and the internal-error status, as one while reading does,
    not a traceback."""
    import analyzer.report.detail as detail

    def broken(*args: object, **kwargs: object) -> str:
        raise ValueError("a fault put in by the test")

    monkeypatch.setattr(detail, "render_detail", broken)
    path, _ = capture
    result = run_cli("read", path, "--detail")
    assert result.exit_code == 70
    assert result.stderr.strip().splitlines() == [
        "upgrade-analyzer: error: internal error while writing the report: ValueError: a fault "
        "put in by the test (please report this capture)"]
