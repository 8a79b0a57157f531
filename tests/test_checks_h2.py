"""The HTTP/2 catalogue entries (RFC 9113, RFC 8441): a triggering case and a near miss each.

Same table shape as ``test_checks.py`` (whose meta test counts these cases too): each case is a
scripted TCP conversation carrying hand-built HTTP/2 frames (``tests/h2builder.py``), written as
a real pcap and read by the whole pipeline.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from analyzer.verdict import Verdict
from tests import h2builder as h2
from tests.builder import Conversation, Opcode, write_pcap, ws_close_payload, ws_frame
from tests.helpers import analyze_pcap, run_cli
from tests.test_checks import (
    H2C_OFFER,
    H2C_SWITCH,
    Case,
    Marks,
    assert_case,
    exchange,
    run_case,
    server_fin,
    summary,
    then,
    ws_request,
)

SUCCEEDED, FAILED, NO_RESPONSE = Verdict.SUCCEEDED, Verdict.FAILED, Verdict.NO_RESPONSE
ABORTED, INCONCLUSIVE = Verdict.ABORTED, Verdict.INCONCLUSIVE

H2Step = tuple[str, Callable[[Conversation, h2.H2Conversation], list[int]]]
ENABLED = ((h2.ENABLE_CONNECT_PROTOCOL, 1),)
OK = [(":status", "200")]
H2_CHECKS = ("h2_stream_refused", "h2_stream_reset", "h2_goaway", "h2_frame_error",
             "h2_hpack_error", "h2_header_list_too_large", "h2_connect_protocol_not_enabled",
             "h2_pseudo_header_missing", "h2_connect_malformed", "h2_connection_header_in_request",
             "h2_websocket_key_present", "h2_connection_header_in_response", "h2_status_101",
             "h2_client_ended_after_switch", "h2_server_ended_after_switch",
             "h2_answer_not_http2")


def h2_exchange(request: h2.Fields, response: h2.Fields | None = None, *steps: H2Step,
                server_settings: tuple[tuple[int, int], ...] = ENABLED,
                response_end: bool = False) -> Callable[[Conversation], Marks]:
    """TCP handshake, the client preface, the server's SETTINGS, the request on stream 1, the
    answer 2 ms later, then each step in order (as a browser does: it waits for SETTINGS)."""

    def script(conv: Conversation) -> Marks:
        hpack_state = h2.H2Conversation()
        marks = {"syn": conv.handshake()}
        marks["preface"] = conv.client(h2.PREFACE + h2.settings())
        marks["settings"] = conv.server(h2.settings(server_settings) + h2.settings(ack=True))
        conv.client(h2.settings(ack=True))
        marks["request"] = conv.client(hpack_state.headers(True, 1, request))
        if response is not None:
            marks["response"] = conv.server(
                hpack_state.headers(False, 1, response, end_stream=response_end), delay=0.002)
        for name, action in steps:
            marks[name] = action(conv, hpack_state)
        return marks

    return script


def prior_knowledge(answer: bytes, request_first: bool = False) -> Callable[[Conversation], Marks]:
    """curl --http2-prior-knowledge to a server that speaks HTTP/1 only: its preface and
    SETTINGS, the server's ``answer`` and FIN, curl's GET on stream 1 (before the answer when
    ``request_first``), its GOAWAY PROTOCOL_ERROR "SETTINGS expected" and FIN (as curl 7.88
    did against nginx and python's http.server)."""

    def script(conv: Conversation) -> Marks:
        hpack_state = h2.H2Conversation()
        marks = {"syn": conv.handshake()}
        marks["preface"] = conv.client(h2.PREFACE + h2.settings(((3, 100), (4, 33554432))))
        request = hpack_state.headers(True, 1, PLAIN_GET, end_stream=True)
        if request_first:
            marks["request"] = conv.client(request)
        marks["answer"] = conv.server(answer, delay=0.002)
        marks["server_fin"] = conv.server_fin(0.001)
        if not request_first:
            marks["request"] = conv.client(request)
        marks["goaway"] = conv.client(h2.goaway(0, h2.PROTOCOL_ERROR, b"SETTINGS expected"))
        marks["client_fin"] = conv.client_fin(0.001)
        return marks

    return script


PLAIN_GET = [(":method", "GET"), (":path", "/"), (":scheme", "http"),
             (":authority", "127.0.0.1:8080"), ("user-agent", "curl/7.88.1"),
             ("accept", "*/*")]
NGINX_400 = (b"HTTP/1.1 400 Bad Request\r\nServer: nginx/1.22.1\r\nContent-Type: text/html\r\n"
             b"Content-Length: 0\r\nConnection: close\r\n\r\n")
# python's http.server: its error page without a status line (the request's version, 2.0,
# is refused with 505 as HTTP/0.9 would be)
HTTP_SERVER_505 = (b"<!DOCTYPE HTML>\n<html lang=\"en\">\n    <head>\n"
                   b"        <meta charset=\"utf-8\">\n        <title>Error response</title>\n")


def step(name: str, from_client: bool, data: bytes, delay: float = 0.001) -> H2Step:
    def action(conv: Conversation, _: h2.H2Conversation) -> list[int]:
        return conv.client(data, delay=delay) if from_client else conv.server(data, delay=delay)

    return (name, action)


def ws_data(from_client: bool, frame: bytes, name: str = "frame",
            end_stream: bool = False) -> H2Step:
    return step(name, from_client, h2.data(1, frame, end_stream))


CLIENT_HELLO = ws_frame(Opcode.TEXT, "hello", mask=True)
SERVER_HELLO = ws_frame(Opcode.TEXT, "welcome")
UNKNOWN_INDEX = h2.frame(h2.HEADERS, h2.END_HEADERS, 1, b"\xfe")  # RFC 7541 §2.3.3: no entry 126
KEY, ACCEPT = "dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 §1.3
HUGE = [("cookie", "c" * 1000)] * 80  # 80,000 bytes of header list


def others(*ids: str) -> tuple[str, ...]:
    return tuple(c for c in H2_CHECKS if c not in ids)


H2_CASES: tuple[Case, ...] = (
    Case("h2: extended CONNECT accepted, frames both ways",
         h2_exchange(h2.websocket_connect(extra=[("sec-websocket-protocol", "chat")]),
                     OK + [("sec-websocket-protocol", "chat")],
                     ws_data(True, CLIENT_HELLO), ws_data(False, SERVER_HELLO, "reply")),
         SUCCEEDED, None, absent=(*H2_CHECKS, "ws_protocol_not_chosen", "ws_version_missing",
                                  "response_not_http")),
    Case("h2: :protocol sent, server never enabled it, nginx 400",
         h2_exchange(h2.websocket_connect(), [(":status", "400"), ("server", "nginx/1.22.1")],
                     server_settings=((3, 128),), response_end=True),
         FAILED, "h2_connect_protocol_not_enabled", present=("response_bad_request",),
         evidence={"h2_connect_protocol_not_enabled": ("request",)}),
    Case("h2: :protocol to a server without it, RST_STREAM PROTOCOL_ERROR",
         h2_exchange(h2.websocket_connect(), None,
                     step("rst", False, h2.rst_stream(1, h2.PROTOCOL_ERROR)),
                     server_settings=()),
         FAILED, "h2_connect_protocol_not_enabled", present=("h2_stream_reset",),
         found={"h2_stream_reset": ("RST_STREAM PROTOCOL_ERROR",)},
         evidence={"h2_stream_reset": ("request", "rst")}),
    Case("h2: extended CONNECT without :path",
         h2_exchange(h2.websocket_connect(omit=[":path"]), [(":status", "400")],
                     response_end=True),
         FAILED, "h2_pseudo_header_missing", found={"h2_pseudo_header_missing": (":path",)},
         absent=("h2_connect_protocol_not_enabled",)),
    Case("h2: a CONNECT with :scheme and :path but no :protocol, GOAWAY PROTOCOL_ERROR "
         "(Hypercorn)",
         h2_exchange(h2.websocket_connect(omit=[":protocol"]), None,
                     step("goaway", False, h2.goaway(1, h2.PROTOCOL_ERROR))),
         FAILED, "h2_connect_malformed", present=("h2_goaway",),
         found={"h2_connect_malformed": (":scheme and :path",)},
         evidence={"h2_connect_malformed": ("request",)},
         absent=("h2_pseudo_header_missing", "h2_connect_protocol_not_enabled")),
    Case("h2: HTTP/1.1 handshake fields copied into HTTP/2",
         h2_exchange(h2.websocket_connect(extra=[("upgrade", "websocket"),
                                                 ("connection", "Upgrade"),
                                                 ("sec-websocket-key", KEY)]),
                     None, step("rst", False, h2.rst_stream(1, h2.PROTOCOL_ERROR))),
         FAILED, "h2_connection_header_in_request",
         present=("h2_websocket_key_present", "h2_stream_reset")),
    Case("h2: server answered 101 with Upgrade",
         h2_exchange(h2.websocket_connect(), [(":status", "101"), ("upgrade", "websocket"),
                                              ("sec-websocket-accept", ACCEPT)],
                     step("rst", True, h2.rst_stream(1, h2.PROTOCOL_ERROR))),
         FAILED, "h2_status_101",
         present=("h2_connection_header_in_response", "h2_websocket_key_present")),
    Case("h2: app refused with 403",
         h2_exchange(h2.websocket_connect(), [(":status", "403"), ("content-length", "0")],
                     response_end=True),
         FAILED, "response_forbidden", absent=others()),
    Case("h2: unknown path 404",
         h2_exchange(h2.websocket_connect("/nope"), [(":status", "404")],
                     step("body", False, h2.data(1, b"Not Found", end_stream=True))),
         FAILED, "response_not_found", absent=others()),
    Case("h2: REFUSED_STREAM",
         h2_exchange(h2.websocket_connect(), None,
                     step("rst", False, h2.rst_stream(1, h2.REFUSED_STREAM))),
         NO_RESPONSE, "h2_stream_refused", absent=("h2_stream_reset", "no_response_server_closed"),
         found={"h2_stream_refused": ("REFUSED_STREAM",)}),
    Case("h2: GOAWAY below the stream",
         h2_exchange(h2.websocket_connect(), None,
                     step("goaway", False, h2.goaway(0, h2.NO_ERROR)),
                     ("fin", lambda c, _: c.server_fin(0.001))),
         NO_RESPONSE, "h2_stream_refused", absent=("h2_goaway", "no_response_server_closed")),
    Case("h2: GOAWAY ENHANCE_YOUR_CALM covering the stream",
         h2_exchange(h2.websocket_connect(), None,
                     step("goaway", False, h2.goaway(1, 0xB, b"too many")),
                     ("fin", lambda c, _: c.server_fin(0.001))),
         FAILED, "h2_goaway", found={"h2_goaway": ("ENHANCE_YOUR_CALM",)},
         absent=("h2_stream_refused",)),
    Case("h2: frames, then the client's GOAWAY NO_ERROR, the server's FIN answering it, "
         "then the client's (the sweep of the twenty-ninth session, inside TLS)",
         h2_exchange(h2.websocket_connect(), OK, ws_data(True, CLIENT_HELLO),
                     ws_data(False, SERVER_HELLO, "reply"),
                     step("goaway", True, h2.goaway(0, 0), delay=0.1),
                     ("fin", lambda c, _: c.server_fin(0.002)),
                     ("fin2", lambda c, _: c.client_fin(0.002))),
         ABORTED, "ended_without_close_after_switch",
         found={"ended_without_close_after_switch": ("client sent a GOAWAY NO_ERROR",)}),
    Case("h2: Close 1008 3 ms after the 200",
         h2_exchange(h2.websocket_connect(), OK,
                     ws_data(False, ws_frame(Opcode.CLOSE, ws_close_payload(1008, "policy")),
                             "close")),
         ABORTED, "ws_closed_with_error", found={"ws_closed_with_error": ("after the 200",)},
         absent=("h2_server_ended_after_switch",)),
    Case("h2: the client gives up waiting and cancels the stream (no response)",
         h2_exchange(h2.websocket_connect(), None,
                     step("rst", True, h2.rst_stream(1, h2.CANCEL), delay=1.5)),
         NO_RESPONSE, "no_response_client_gave_up", absent=("h2_stream_reset",),
         found={"no_response_client_gave_up": ("RST_STREAM CANCEL", "after waiting 1.5 s")},
         evidence={"no_response_client_gave_up": ("request", "rst")}),
    Case("h2: client reset the stream right after the 200",
         h2_exchange(h2.websocket_connect(), OK,
                     step("rst", True, h2.rst_stream(1, h2.CANCEL))),
         ABORTED, "h2_client_ended_after_switch",
         found={"h2_client_ended_after_switch": ("RST_STREAM CANCEL",)},
         absent=("h2_server_ended_after_switch", "h2_stream_reset")),
    Case("h2: server ended the stream right after the 200",
         h2_exchange(h2.websocket_connect(), OK, step("end", False, h2.data(1, b"", True))),
         ABORTED, "h2_server_ended_after_switch",
         found={"h2_server_ended_after_switch": ("END_STREAM",)},
         absent=("h2_client_ended_after_switch",)),
    Case("h2: a frame each way, then the server resets the stream 0.5 s in, no Close",
         h2_exchange(h2.websocket_connect(), OK,
                     ws_data(True, ws_frame(Opcode.TEXT, "hi", mask=True), "hi"),
                     ws_data(False, ws_frame(Opcode.TEXT, "hi"), "echo"),
                     step("rst", False, h2.rst_stream(1, h2.INTERNAL_ERROR), delay=0.5)),
         ABORTED, "ended_without_close_after_switch",
         found={"ended_without_close_after_switch": ("server sent a RST_STREAM INTERNAL_ERROR",
                                                     "after the 200")},
         evidence={"ended_without_close_after_switch": ("response", "echo", "rst")},
         absent=("h2_server_ended_after_switch",)),
    Case("h2: a frame each way, then the client's GOAWAY and FIN 0.5 s in, no Close",
         h2_exchange(h2.websocket_connect(), OK,
                     ws_data(True, ws_frame(Opcode.TEXT, "hi", mask=True), "hi"),
                     ws_data(False, ws_frame(Opcode.TEXT, "hi"), "echo"),
                     step("goaway", True, h2.goaway(0, h2.NO_ERROR), delay=0.5),
                     ("fin", lambda c, _: c.client_fin(0.001))),
         ABORTED, "ended_without_close_after_switch",
         found={"ended_without_close_after_switch": ("client sent a GOAWAY NO_ERROR of the "
                                                     "connection",)}),
    Case("h2: a frame each way, Close both ways, then the server resets the stream",
         h2_exchange(h2.websocket_connect(), OK,
                     ws_data(True, ws_frame(Opcode.TEXT, "hi", mask=True), "hi"),
                     ws_data(False, ws_frame(Opcode.CLOSE, ws_close_payload(1000, "")), "close"),
                     ws_data(True, ws_frame(Opcode.CLOSE, ws_close_payload(1000, ""),
                                            mask=True), "close2"),
                     step("rst", False, h2.rst_stream(1, h2.NO_ERROR), delay=0.5)),
         SUCCEEDED, "ws_closed_normally", absent=("ended_without_close_after_switch",)),
    Case("h2: curl --http2 with WebSocket headers: a plain GET, the endpoint's 426",
         h2_exchange([(":method", "GET"), (":scheme", "https"), (":path", "/ws"),
                      (":authority", "example.com"), ("user-agent", "curl/7.88.1"),
                      ("sec-websocket-version", "13")],
                     [(":status", "426"), ("upgrade", "websocket")], response_end=True),
         FAILED, "request_without_upgrade",
         found={"request_without_upgrade": ("over HTTP/2, which has no Upgrade",
                                            "curl --http1.1")}),
    Case("h2: response header block with an unknown HPACK index",
         h2_exchange(h2.websocket_connect(), None, step("response", False, UNKNOWN_INDEX)),
         FAILED, "h2_hpack_error", absent=("h2_header_list_too_large",)),
    Case("h2: DATA frame longer than SETTINGS_MAX_FRAME_SIZE",
         h2_exchange(h2.websocket_connect(), OK,
                     step("big", False, h2.data(1, b"\x82\x7e" + bytes(20_000)))),
         FAILED, "h2_frame_error", found={"h2_frame_error": ("frame too large",)}),
    Case("h2: curl's prior knowledge answered 400 in HTTP/1.1 (nginx without http2)",
         prior_knowledge(NGINX_400), FAILED, "h2_answer_not_http2",
         found={"h2_answer_not_http2": ('"HTTP/1.1 400 Bad Request"',)},
         absent=others("h2_answer_not_http2"),
         evidence={"h2_answer_not_http2": ("answer", "request")}),
    Case("h2: curl's prior knowledge answered with an error page without a status line "
         "(python's http.server)",
         prior_knowledge(HTTP_SERVER_505, request_first=True), FAILED, "h2_answer_not_http2",
         found={"h2_answer_not_http2": ('text without an HTTP status line "<!DOCTYPE HTML>"',)},
         absent=others("h2_answer_not_http2")),
    Case("h2: header list over 64 KiB",
         h2_exchange(h2.websocket_connect(extra=HUGE), None,
                     ("fin", lambda c, _: c.server_fin(0.5))),
         INCONCLUSIVE, "h2_header_list_too_large", absent=("h2_hpack_error",)),
)

# HTTP/1.1 requests answered in another protocol (the tracker's "not HTTP/1" answer).
H2_ONLY_ANSWER = h2.settings(((3, 100),)) + h2.goaway(0, h2.PROTOCOL_ERROR)
TLS_ALERT = b"\x15\x03\x01\x00\x02\x02\x46"  # fatal protocol_version(70)
NOT_HTTP_CASES: tuple[Case, ...] = (
    Case("HTTP/1.1 WebSocket request to an HTTP/2-only server",
         exchange(ws_request(), H2_ONLY_ANSWER, server_fin()),
         FAILED, "response_not_http", found={"response_not_http": ("HTTP/2 SETTINGS",)},
         absent=("no_response_server_closed",),
         evidence={"response_not_http": ("request", "response")}),
    Case("HTTP/1.1 WebSocket request to a TLS port",
         exchange(ws_request(), TLS_ALERT, server_fin()),
         # the TLS checks name the cause; response_not_http still says what the bytes were
         FAILED, "tls_plain_http_to_tls_port", present=("response_not_http",),
         found={"response_not_http": ("TLS alert",)}),
    Case("HTTP/1.1 WebSocket request to an SSH port",
         exchange(ws_request(), b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", server_fin()),
         FAILED, "response_not_http", found={"response_not_http": ("SSH-2.0-OpenSSH_9.2p1",)}),
    Case("HTTP/1.1 WebSocket request answered with binary junk",
         exchange(ws_request(), b"\x01\x02\x03\x04\r\n\r\n", server_fin()),
         FAILED, "response_not_http", found={"response_not_http": ("01 02 03 04",)}),
    Case("HTTP/1.1 WebSocket request, server closed without a byte",
         exchange(ws_request(), None, then("fin", lambda c: c.server_fin(0.002))),
         Verdict.NO_RESPONSE, "no_response_server_closed", absent=("response_not_http",)),
)
H2C_ANSWER = (h2.settings() + h2.H2Conversation().headers(False, 1, [(":status", "404")]) +
              h2.data(1, b"gone", end_stream=True))
NOT_HTTP_CASES += (
    Case("h2c accepted, the upgraded request answered 404 on stream 1",
         exchange(H2C_OFFER, H2C_SWITCH + H2C_ANSWER,
                  then("preface", lambda c: c.client(h2.PREFACE + h2.settings()))),
         Verdict.SUCCEEDED, "h2c_upgraded_request_status",
         found={"h2c_upgraded_request_status": ("404 on stream 1",)},
         absent=("h2c_no_client_preface", "h2c_no_server_settings")),
)
ALL_CASES = H2_CASES + NOT_HTTP_CASES
BY_NAME = {case.name: case for case in H2_CASES}


@pytest.mark.parametrize("case", NOT_HTTP_CASES, ids=[c.name for c in NOT_HTTP_CASES])
def test_answer_that_is_not_http1(case: Case, tmp_path: Path) -> None:
    diagnoses, segments, marks = run_case(case, tmp_path / "case.pcap")
    [diagnosis] = diagnoses
    ids = [f.check for f in diagnosis.findings]
    context = [(f.check, f.expected, f.found, f.frames) for f in diagnosis.findings]
    assert diagnosis.verdict is case.verdict, context
    assert ids[0] == case.primary and not set(case.absent) & set(ids), context
    assert case.triggered <= set(ids), context
    findings = {f.check: f for f in diagnosis.findings}
    for check, texts in case.found.items():
        assert all(text in findings[check].found for text in texts), context
    from tests.test_checks import frames_of_marks

    for check, names in case.evidence.items():
        assert findings[check].frames == frames_of_marks(names, marks, segments), context


@pytest.mark.parametrize("case", H2_CASES, ids=[c.name for c in H2_CASES])
def test_h2_case(case: Case, tmp_path: Path) -> None:
    diagnosis = assert_case(case, tmp_path)
    assert diagnosis.attempt.transport == "h2" and diagnosis.attempt.stream_id == 1


MANGLING = ({"mss": 1}, {"mss": 3, "reorder": 1}, {"mss": 7, "duplicate": 2},
            {"mss": 40, "overlap": 5})


@pytest.mark.parametrize("mangling", MANGLING,
                         ids=lambda m: "-".join(f"{k}{v}" for k, v in m.items()))
@pytest.mark.parametrize("name", ["h2: extended CONNECT accepted, frames both ways",
                                  "h2: curl's prior knowledge answered 400 in HTTP/1.1 (nginx "
                                  "without http2)",
                                  "h2: :protocol to a server without it, RST_STREAM "
                                  "PROTOCOL_ERROR", "h2: Close 1008 3 ms after the 200",
                                  "h2: unknown path 404"])
def test_same_diagnosis_whatever_the_segmentation(name: str, mangling: dict[str, int],
                                                  tmp_path: Path) -> None:
    case = BY_NAME[name]
    whole, _, _ = run_case(case, tmp_path / "whole.pcap")
    mangled, _, _ = run_case(case, tmp_path / "mangled.pcap", **mangling)
    assert summary(mangled) == summary(whole)


@pytest.mark.parametrize(("name", "rows"), [
    ("h2: Close 1008 3 ms after the 200",
     ["SETTINGS ENABLE_CONNECT_PROTOCOL=1", "HEADERS CONNECT /chat :protocol websocket",
      "HEADERS :status 200", "DATA 10 B", "Close 1008 'policy'"]),
    ("h2: REFUSED_STREAM", ["RST_STREAM REFUSED_STREAM"]),
    ("h2: GOAWAY below the stream", ["GOAWAY last stream 0 NO_ERROR"]),
    ("h2: unknown path 404", ["HEADERS :status 404", "DATA 9 B END_STREAM"]),
])
def test_detail_ladder_shows_http2_frames_with_their_numbers(name: str, rows: list[str],
                                                             tmp_path: Path) -> None:
    from analyzer.report.detail import render_detail
    from analyzer.report.fields import attempt_fields

    [diagnosis], segments, _ = run_case(BY_NAME[name], tmp_path / "case.pcap")
    text = render_detail(diagnosis)
    assert "over HTTP/2, stream 1" in text
    ladder = text.split("\n\n")[1].splitlines()
    for row in rows:
        [line] = [line for line in ladder if row in line]
        frame = int(line.split()[1].split("-")[0])
        # the frame number is the capture frame whose payload carries those bytes
        assert segments[frame - 1].payload, (row, frame)
    fields = attempt_fields(diagnosis)
    assert fields["transport"] == "h2" and fields["stream_id"] == 1
    assert fields["host"] == "example.com"


def test_the_ladder_draws_the_clients_settings_before_its_request_in_one_segment(
        tmp_path: Path) -> None:
    """A client that sends its preface, SETTINGS and the extended CONNECT in one segment
    (python's h2 library did, in the sweep of the twenty-ninth session): the ladder drew the
    HEADERS first, against the bytes."""
    from analyzer.pipeline import Analysis, analyze
    from analyzer.report.detail import render_detail
    from analyzer.source import read_captures

    conv = Conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 80))
    state = h2.H2Conversation()
    conv.handshake()
    conv.server(h2.settings(ENABLED))
    conv.client(h2.PREFACE + h2.settings(((h2.ENABLE_CONNECT_PROTOCOL, 0),))
                + h2.settings(ack=True) + state.headers(True, 1, h2.websocket_connect()))
    conv.server(state.headers(False, 1, OK), delay=0.002)
    conv.client(h2.data(1, CLIENT_HELLO), delay=0.01)
    write_pcap(tmp_path / "one-segment.pcap", [conv])
    (diagnosis,) = [d for d in analyze(read_captures([str(tmp_path / "one-segment.pcap")], []),
                                       Analysis()) if hasattr(d, "verdict")]
    ladder = render_detail(diagnosis).split("\n\n")[1].splitlines()
    rows = [next(n for n, line in enumerate(ladder) if text in line)
            for text in ("SETTINGS ENABLE_CONNECT_PROTOCOL=0", "HEADERS CONNECT /chat")]
    assert rows[0] < rows[1], ladder


@pytest.mark.parametrize(("name", "retried"), [("h2: REFUSED_STREAM", True),
                                               ("h2: app refused with 403", False)])
def test_repeated_refused_streams_may_be_the_clients_own_retries(
        tmp_path: Path, name: str, retried: bool) -> None:
    """Chromium retries a refused stream on its own (three for one `new WebSocket` in the
    sweep of the twenty-ninth session): the `Repeated:` line says so, which read like a
    reconnect loop of the application. The near miss: three 403s, which no stack retries."""
    case = BY_NAME[name]
    conversations = []
    for n in range(3):
        conv = Conversation(client=("10.0.0.1", 51000 + n), start=1_700_000_000 + n * 0.1)
        case.script(conv)
        conversations.append(conv)
    write_pcap(tmp_path / "three.pcap", conversations)
    result = run_cli("read", str(tmp_path / "three.pcap"))
    [line] = [line for line in result.stdout.splitlines() if line.startswith("Repeated: 3 x")]
    assert ("retry a refused stream on their own" in line) == retried, line


@pytest.mark.parametrize("silence", [0.0, 3.0])
def test_a_server_reset_of_a_quiet_h2_websocket_past_its_window_ends_its_life(
        tmp_path: Path, silence: float) -> None:
    """A server's RST_STREAM 3 s after the last frame came after the watch window, in the
    first packet after a silence: the watch is over before that packet is read, so the
    stream is followed into life and the reset ends it there (`dropped`, with a lifetime; it
    was `succeeded`, decided by the reset with no finding: the sweep of the twenty-ninth
    session, Hypercorn behind a raw h2 server). The near miss: the same reset with frames
    going on until it is not in silence, and is read in the watch, within the window."""
    steps = [ws_data(True, ws_frame(Opcode.TEXT, "hi", mask=True), "hi"),
             ws_data(False, ws_frame(Opcode.TEXT, "hi"), "echo")]
    if not silence:
        steps.append(step("rst", False, h2.rst_stream(1, h2.INTERNAL_ERROR), delay=0.3))
    else:
        steps.append(step("rst", False, h2.rst_stream(1, h2.INTERNAL_ERROR), delay=silence))
    steps.append(("fin", lambda c, _: c.client_fin(0.01)))
    conv = Conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 80))
    h2_exchange(h2.websocket_connect(), OK, *steps)(conv)
    path = tmp_path / "reset.pcap"
    write_pcap(path, [conv])
    result = run_cli("read", path, "-F", "json")
    (attempt,) = json.loads(result.output)["attempts"]
    if silence:
        assert attempt["verdict"] == "dropped", attempt["reason"]
        assert attempt["lifetime"] is not None and attempt["lifetime"]["closed_by"] == "server"
    else:
        assert attempt["verdict"] == "aborted", attempt["reason"]
        assert attempt["reasons"][0] == "ended_without_close_after_switch"



@pytest.mark.parametrize("goaway", [True, False])
def test_a_server_that_shut_its_http2_connection_down_under_a_websocket(
        tmp_path: Path, goaway: bool) -> None:
    """Hypercorn stopping under an RFC 8441 WebSocket in life: a graceful GOAWAY, then the
    connection's end, 3 s after the last frame (the sweep of the twenty-ninth session, and
    its recheck): it was "most likely an idle timeout", with proxies' timers to read. The
    near miss: the same end without the GOAWAY, an idle timeout indeed."""
    steps = [ws_data(True, ws_frame(Opcode.TEXT, "hi", mask=True), "hi"),
             ws_data(False, ws_frame(Opcode.TEXT, "hi"), "echo")]
    if goaway:
        steps.append(step("goaway", False, h2.goaway(1, h2.NO_ERROR), delay=3.0))
    steps += [("fin", lambda c, _: c.server_fin(0.001 if goaway else 3.0)),
              ("fin2", lambda c, _: c.client_fin(0.001))]
    conv = Conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 80))
    h2_exchange(h2.websocket_connect(), OK, *steps)(conv)
    path = tmp_path / "shutdown.pcap"
    write_pcap(path, [conv])
    (attempt,) = json.loads(run_cli("read", path, "-F", "json").output)["attempts"]
    assert attempt["verdict"] == "dropped", attempt["reason"]
    assert attempt["reasons"][0] == ("h2_shutdown_in_life" if goaway
                                     else "idle_timeout_after_switch"), attempt["reasons"]
    assert attempt["lifetime"]["closed_by"] == "server", attempt["lifetime"]


@pytest.mark.parametrize(("response", "answer", "line"), [
    (None, step("rst", False, h2.rst_stream(1, h2.REFUSED_STREAM)),
     "Stream closed with error: net::ERR_HTTP2_SERVER_REFUSED_STREAM"),
    (None, step("rst", False, h2.rst_stream(1, h2.INTERNAL_ERROR)),
     "Stream closed with error: net::ERR_HTTP2_PROTOCOL_ERROR"),
    ([(":status", "401")], None, ""),
    ([(":status", "403")], None, "Error during WebSocket handshake: Unexpected response code: 403"),
    (None, step("goaway", False, h2.goaway(0, h2.NO_ERROR)), None),
])
def test_chromes_words_for_http2_websocket_failures(
        tmp_path: Path, response: h2.Fields | None, answer: H2Step | None,
        line: str | None) -> None:
    """What Chromium 156 logged for an RFC 8441 WebSocket the server refused (read from
    the browser through DevTools in the sweep of the twenty-ninth session, against a raw h2
    server and Hypercorn): a reset stream by its net error, a 401 with nothing after
    "failed: " (a 403 as over HTTP/1.1, the near miss); for a stream a GOAWAY left
    unprocessed nothing is claimed (the words given before were a page's own close())."""
    steps = [answer] if answer is not None else []
    conv = Conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 443))
    h2_exchange(h2.websocket_connect(), response, *steps,
                ("fin", lambda c, _: c.server_fin(0.01)), response_end=True)(conv)
    path = tmp_path / "chrome.pcap"
    write_pcap(path, [conv])
    (attempt,) = json.loads(run_cli("read", path, "-F", "json").output)["attempts"]
    assert attempt["attribution"]["client"] == "Chrome"
    chrome = [text for text in attempt["attribution"]["client_errors"]
              if text.startswith("Chrome: ")]
    # (Node ws, python websockets and the other HTTP/1.1-only libraries cannot have sent it)
    assert chrome == attempt["attribution"]["client_errors"]
    if line is None:
        assert chrome == []
    else:
        assert chrome == [f"Chrome: WebSocket connection to 'ws://example.com/chat' failed: {line}"]


@pytest.mark.parametrize(("destination", "listed"), [("image", 0), ("document", 1)])
def test_a_browsers_own_fetch_over_http2_answered_426_is_no_attempt(
        tmp_path: Path, destination: str, listed: int) -> None:
    """Chromium's favicon on its HTTP/2 connection, answered 426 by the WebSocket server
    behind HAProxy (the sweep of the thirtieth session): not a WebSocket attempt. The near
    miss: a page's address (document), a plain request to a WebSocket endpoint."""
    request = [(":method", "GET"), (":scheme", "https"), (":path", "/favicon.ico"),
               (":authority", "example.com"), ("sec-fetch-dest", destination),
               ("user-agent", "Mozilla/5.0 Chrome/156.0")]
    conv = Conversation()
    h2_exchange(request, [(":status", "426"), ("upgrade", "websocket")],
                response_end=True)(conv)
    write_pcap(tmp_path / "favicon.pcap", [conv])
    assert len(analyze_pcap(tmp_path / "favicon.pcap")) == listed


def _h2_tls_end(tmp: Path, server_says_close_notify: bool, after: float) -> dict[str, Any]:
    """The JSON attempt of a TLS 1.3 RFC 8441 WebSocket (tls_memory.h2_tls_chunks) that
    ends ``after`` seconds past its last frame: the server's close_notify then the client's
    FIN 1 ms later, or (the near miss) the client's FIN alone; the server's FIN last."""
    from tests.tls_memory import h2_tls_chunks

    chunks, keys = h2_tls_chunks(tmp, server_close_notify=server_says_close_notify)
    conv = Conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 443))
    conv.handshake()
    talked = chunks[:-1] if server_says_close_notify else chunks
    for from_client, data in talked:
        conv.send(from_client, data, delay=0.002)
    if server_says_close_notify:
        conv.send(False, chunks[-1][1], delay=after)
        conv.client_fin(0.001)
    else:
        conv.client_fin(after)
    conv.server_fin(0.001)
    path, keylog = tmp / "h2.pcap", tmp / "keys.log"
    write_pcap(path, [conv])
    keylog.write_bytes(keys)
    (attempt,) = json.loads(run_cli("read", path, "--keylog", keylog, "-F", "json").output)[
        "attempts"]
    return dict(attempt)


@pytest.mark.parametrize("server_says_close_notify", [True, False])
def test_an_h2_websocket_whose_server_said_close_notify_in_its_window(
        tmp_path: Path, server_says_close_notify: bool) -> None:
    """Hypercorn's connection handler crashing under Chromium's RFC 8441 streams: its
    close_notify 50 ms after the 200, the browser's FIN 1 ms after that (the sweep of the
    thirtieth session): the server ended the streams, not the client. The near miss: no
    close_notify, the client's FIN first."""
    attempt = _h2_tls_end(tmp_path, server_says_close_notify, 0.05)
    (finding,) = [f for f in attempt["findings"]
                  if f["id"] == "ended_without_close_after_switch"]
    side = "server" if server_says_close_notify else "client"
    assert finding["found"].startswith(f"{side} sent a "), finding
    assert ("close_notify" in finding["found"]) == server_says_close_notify, finding


@pytest.mark.parametrize("server_says_close_notify", [True, False])
def test_an_h2_websocket_in_life_closed_by_the_servers_close_notify(
        tmp_path: Path, server_says_close_notify: bool) -> None:
    """Hypercorn shutting down under an RFC 8441 WebSocket in life: GOAWAY, then its
    close_notify, then the browser's FIN before the server's (the sweep of the twenty-ninth
    session): the server closed. The near miss: no close_notify, the client's FIN first."""
    attempt = _h2_tls_end(tmp_path, server_says_close_notify, 4.0)  # (in life by then)
    assert attempt["lifetime"] is not None
    assert attempt["lifetime"]["closed_by"] == ("server" if server_says_close_notify
                                                else "client")


@pytest.mark.parametrize("request_sent", [True, False])
def test_curls_words_when_its_prior_knowledge_meets_an_http1_server(
        tmp_path: Path, request_sent: bool) -> None:
    """curl --http2-prior-knowledge to nginx without http2 on the port: nginx answers the
    preface ("PRI * HTTP/2.0") with 400 and closes, and curl printed "curl: (52) Empty reply
    from server" (tests/test_curl_h2c_live.py). The connection was only counted as an
    ordinary exchange: no attempt, nothing said. Its first stream is now the attempt, with
    curl's line alone (the WebSocket clients' lines are not about HTTP/2 in cleartext); a
    client that sent no request (the preface alone) still gets its attempt, on no stream."""
    conv = Conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 80))
    if request_sent:
        prior_knowledge(NGINX_400)(conv)
    else:
        conv.handshake()
        conv.client(h2.PREFACE + h2.settings())
        conv.server(NGINX_400, delay=0.002)
        conv.server_fin(0.001)
        conv.client_fin(0.001)
    path = tmp_path / "prior-knowledge.pcap"
    write_pcap(path, [conv])
    (diagnosis,) = analyze_pcap(path)
    assert diagnosis.primary is not None and diagnosis.primary.check == "h2_answer_not_http2"
    assert diagnosis.facts.protocol == "h2c"
    assert diagnosis.attempt.stream_id == (1 if request_sent else None)
    assert diagnosis.attribution.client == ("curl" if request_sent else None)
    lines = diagnosis.attribution.client_errors
    assert lines[0] == "curl: (52) Empty reply from server"  # (then its write-race variant)
    assert all(line.startswith("curl: (") for line in lines), lines


def test_curls_words_when_its_h2c_upgrade_is_answered_in_http2_frames(tmp_path: Path) -> None:
    """curl --http2 offers h2c by Upgrade; a port that speaks HTTP/2 only (nginx's `listen
    ... http2` without TLS) answers with its SETTINGS frame and a GOAWAY, and curl printed
    "curl: (1) Received HTTP/0.9 when not allowed" (tests/test_curl_h2c_live.py). The
    finding gave lines for WebSocket clients only: none for h2c. The near miss: the same
    answer to a WebSocket request keeps the WebSocket clients' lines."""
    for request, lines in ((H2C_OFFER, ("curl: (1) Received HTTP/0.9 when not allowed",)),
                           (ws_request(), None)):
        conv = Conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 80))
        exchange(request, H2_ONLY_ANSWER, server_fin())(conv)
        path = tmp_path / "h2-only.pcap"
        write_pcap(path, [conv])
        (diagnosis,) = analyze_pcap(path)
        assert diagnosis.primary is not None and diagnosis.primary.check == "response_not_http"
        errors = diagnosis.attribution.client_errors
        if lines is not None:
            assert errors == lines
        else:
            assert any(line.startswith("python websockets: ") for line in errors), errors
