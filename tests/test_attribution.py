"""Who answered and what each side said: checked against what real software really said."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from analyzer.attribution.clients import client_name, rsv_values
from analyzer.attribution.closing import life_closing_values
from analyzer.attribution.servers import (
    GORILLA_CONNECTION,
    GORILLA_KEY_INVALID,
    GORILLA_UPGRADE,
    ServerMatch,
    match_response,
)
from analyzer.attribution.texts import TEXTS, KnownText
from analyzer.http.message import Headers, ResponseHead
from analyzer.life.model import CLOSE_FRAME, CLOSE_HANDSHAKE, Lifetime
from analyzer.verdict import Diagnosis
from tests.builder import (
    DEFAULT_WS_KEY,
    Conversation,
    Opcode,
    http_request,
    http_response,
    websocket_request,
    websocket_response,
    write_pcap,
)
from tests.helpers import analyze_pcap

CAPTURES = Path(__file__).resolve().parents[1] / "captures"


def _real_rejections() -> list[tuple[str, dict[str, object]]]:
    index = json.loads((CAPTURES / "expected.json").read_text())
    return [
        (capture["file"], attempt)
        for capture in index["captures"]
        if not capture.get("pending")  # expectations for a stage still to come
        and capture.get("generator") != "captures/generate_tls.py"  # tests/test_tls_verdicts.py
        for attempt in capture["attempts"]
        if attempt["verdict"] == "failed" and attempt.get("status") not in (None, 101)
        and str(attempt["server_software"]).split()[0] in ("websockets", "aiohttp")
        and "nginx" not in str(attempt["server_software"])
    ]


@pytest.mark.parametrize(("name", "expected"), _real_rejections(),
                         ids=lambda v: v if isinstance(v, str) else str(v["server"]))
def test_predicted_server_log_matches_what_the_real_server_logged(
    name: str, expected: dict[str, object]
) -> None:
    (diagnosis,) = [d for d in analyze_pcap(CAPTURES / name)
                    if str(d.attempt.server) == expected["server"]
                    and d.attempt.request_head is not None
                    and d.attempt.request_head.target == expected["path"]]
    who = diagnosis.attribution
    software = str(expected["server_software"]).split()[0]
    assert who.server == {"websockets": "python websockets", "aiohttp": "aiohttp"}[software]
    said = str(expected["server_said"])
    # the real log line, without the logger's own prefix: "InvalidUpgrade: missing ... header"
    real = re.search(r"(Invalid\w+|HTTP\w+|NegotiationError)[: ][^|]*", said)
    assert real is not None, said
    if who.server_log is None:
        # aiohttp's own status exceptions (404, 405, 302) carry no text but the status line
        assert re.match(r"HTTP\w+ (\d{3}): \1: ", said), said
        return
    assert real.group(0).strip() in who.server_log or who.server_log.split(": ", 1)[-1] in said


REFERENCE_REJECTIONS = [
    # (status line, headers, body, server, log contains)
    ("400 No WebSocket Upgrade header found", [], b"", "actix-web", "NoWebsocketUpgrade"),
    ("400 Bad Request", [("Sec-Websocket-Version", "13")], b"Bad Request\n",
     "gorilla/websocket", "'upgrade' token not found"),
    ("400 Bad Request", [("Connection", "close"), ("Content-Type", "text/html")],
     b"Missing or invalid Sec-WebSocket-Version header", "Node ws", None),
    ("400 Bad Request", [], b"Connection header did not include 'upgrade'", "axum",
     "InvalidConnectionHeader"),
    ("426 Upgrade Required", [("Via", "kong/3.4.0")], b"", "Kong", None),
    ("403 Forbidden", [("server", "envoy")], b"", "Envoy", "upgrade_failed"),
    ("400 Invalid Upgrade Request", [], b"", "Apache Traffic Server", None),
    ("400 Bad Request", [], b'{"code":1,"message":"Session ID unknown"}',
     "Socket.IO (Engine.IO)", None),
    # engine.io's abortUpgrade after allowRequest refused (sweep30b s6): not Node ws
    ("400 Bad Request", [("Connection", "close"), ("Content-type", "text/html")],
     b"forbidden origin", "Socket.IO (Engine.IO)", 'context { message: "forbidden origin" }'),
    ("502 Bad Gateway", [("Server", "nginx/1.22.1")], b"<html>", "nginx",
     "upstream prematurely closed"),
    ("400 Unsupported websocket version specification", [("Sec-WebSocket-Version", "13")], b"",
     "Jetty", "Unsupported Websocket version"),
    ("400 Bad Request", [], b'Can "Upgrade" only to "WebSocket".', "Spring",
     "invalid Upgrade header"),
    # the same words from tornado, which names itself (tests/test_servers_live.py); behind a
    # proxy that replaced the Server header they stay Spring's
    ("400 Bad Request", [("Server", "TornadoServer/6.6.1")],
     b'Can "Upgrade" only to "WebSocket".', "tornado", "WARNING:tornado.access:400 GET /ws"),
    ("400 Bad Request", [("Server", "nginx/1.22.1")], b'Can "Upgrade" only to "WebSocket".',
     "Spring", "invalid Upgrade header"),
    ("403 Forbidden", [("Server", "TornadoServer/6.6.1")],
     b"Cross origin websockets not allowed", "tornado", "WARNING:tornado.access:403 GET /ws"),
    ("400 Bad Request", [], b"WebSocket protocol violation: Connection header \"keep-alive\" "
     b"does not contain Upgrade", "coder/websocket", None),
    # documented, not captured (not installable here): Envoy's RBAC sandbox and router
    # timeout, Traefik's FAQ answers (the body is the bare status text)
    ("403 Forbidden", [("server", "envoy"), ("content-type", "text/plain")],
     b"RBAC: access denied", "Envoy (HTTP RBAC filter)", "rbac.denied"),
    ("504 Gateway Timeout", [("server", "envoy")], b"upstream request timeout", "Envoy",
     "response flag UT"),
    ("502 Bad Gateway", [("Content-Type", "text/plain; charset=utf-8")], b"Bad Gateway",
     "Traefik", "dial to the service failed"),
    ("503 Service Unavailable", [], b"Service Unavailable", "Traefik", "no server"),
    # Jetty 9.4's and Tomcat 10's own pages (as in captures/jetty9_websocket.pcap and
    # tomcat10_websocket.pcap)
    ("400 Bad Request", [("Server", "Jetty(9.4.57.v20241219)")],
     b"<body><h2>HTTP ERROR 400 Unsupported websocket version specification</h2>", "Jetty",
     "Jetty supports version: [13]"),
    ("403 Forbidden", [], b"<body><h2>HTTP ERROR 403 Origin not allowed</h2>", "Jetty", None),
    ("403 ", [], b"<h1>HTTP Status 403 \xe2\x80\x93 Forbidden</h1><hr class=\"line\" />"
     b"<h3>Apache Tomcat/10.1.60 (Debian)</h3>", "Apache Tomcat", "checkOrigin"),
    ("405 Method Not Allowed", [("Server", "Jetty(9.4.57.v20241219)")],
     b"<h2>HTTP ERROR 405 HTTP method GET is not supported by this URL</h2>",
     "Jetty (HttpServlet's default doGet)", None),
]


def test_bare_status_text_only_points_at_traefik_when_it_is_the_whole_body(
        tmp_path: Path) -> None:
    for body, server in ((b"Bad Gateway", "Traefik"),
                         (b"<html><title>502 Bad Gateway</title></html>", None)):
        conv = Conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 80))
        conv.handshake()
        conv.client(websocket_request("example.com", "/ws"))
        conv.server(http_response(502, "Bad Gateway", [("Content-Length", str(len(body)))],
                                  body))
        conv.server_fin()
        write_pcap(tmp_path / "r.pcap", [conv])
        (diagnosis,) = analyze_pcap(tmp_path / "r.pcap")
        assert diagnosis.attribution.server == server


@pytest.mark.parametrize(("status", "headers", "body", "server", "log"), REFERENCE_REJECTIONS,
                         ids=[r[3] for r in REFERENCE_REJECTIONS])
def test_fingerprints_of_reference_rejections(tmp_path: Path, status: str,
                                              headers: list[tuple[str, str]], body: bytes,
                                              server: str, log: str | None) -> None:
    code, reason = status.split(" ", 1)
    conv = Conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 80))
    conv.handshake()
    conv.client(websocket_request("example.com", "/ws"))
    conv.server(http_response(int(code), reason, [*headers, ("Content-Length", str(len(body)))],
                              body))
    conv.server_fin()
    write_pcap(tmp_path / "r.pcap", [conv])
    (diagnosis,) = analyze_pcap(tmp_path / "r.pcap")
    who = diagnosis.attribution
    assert who.server == server
    assert who.evidence
    if log is None:
        assert who.server_log is None or who.server_log
    else:
        assert who.server_log is not None and log in who.server_log
    assert any(line.startswith("Chrome: ") and f"Unexpected response code: {code}" in line
               for line in who.client_errors)


def test_no_fingerprint_for_a_plain_answer(tmp_path: Path) -> None:
    conv = Conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 80))
    conv.handshake()
    conv.client(websocket_request("example.com", "/ws"))
    conv.server(http_response(400, "Bad Request", [("Content-Length", "0")]))
    write_pcap(tmp_path / "r.pcap", [conv])
    (diagnosis,) = analyze_pcap(tmp_path / "r.pcap")
    assert diagnosis.attribution.server is None


def _answered(tmp: Path, request: bytes, answer: bytes | None = None,
              fin: float | None = None) -> Diagnosis:
    """The one diagnosis of a handshake ``request`` answered by ``answer`` (none: a silent
    server), then the server's FIN (``fin`` seconds later; the builder's gap by default)."""
    conv = Conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 80))
    conv.handshake()
    conv.client(request)
    if answer is not None:
        conv.server(answer)
    conv.server_fin(delay=fin)
    write_pcap(tmp / "r.pcap", [conv])
    (diagnosis,) = analyze_pcap(tmp / "r.pcap")
    return diagnosis


def _gorilla_answer(status: int, reason: str, *headers: str) -> bytes:
    """gorilla's http.Error: the status text as body, Sec-Websocket-Version in Go's spelling."""
    body = f"{reason}\n".encode()
    lines = [f"HTTP/1.1 {status} {reason}", "Content-Type: text/plain; charset=utf-8",
             "Sec-Websocket-Version: 13", *headers, "X-Content-Type-Options: nosniff",
             f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(lines).encode() + body


@pytest.mark.parametrize(("request_", "answer", "log"), [
    # gorilla's main branch (unreleased since 2024) answers a missing Upgrade token with 426
    (websocket_request("example.com", "/ws", omit=("Upgrade",)),
     _gorilla_answer(426, "Upgrade Required", "Upgrade: websocket"), GORILLA_UPGRADE),
    # 1.5.1 and later refuse a key that is not the base64 of 16 bytes (1.5.0 took it)
    (websocket_request("example.com", "/ws", key="c2hvcnQ="), _gorilla_answer(400, "Bad Request"),
     GORILLA_KEY_INVALID),
    # a request gorilla would take, answered 400 (a proxy between changed it): by status
    (websocket_request("example.com", "/ws"), _gorilla_answer(400, "Bad Request"),
     GORILLA_CONNECTION + " (or another of its 400s: the Upgrade token, the version, the key)"),
], ids=["426-upgrade", "400-short-key", "400-valid-request"])
def test_gorilla_log_is_told_from_the_request(tmp_path: Path, request_: bytes, answer: bytes,
                                              log: str) -> None:
    """The cases tests/test_gorilla_nodews_live.py cannot run with gorilla 1.5.0."""
    who = _answered(tmp_path, request_, answer).attribution
    assert who.server == "gorilla/websocket"
    assert who.server_log == log


@pytest.mark.parametrize(("bits", "node_ws", "gorilla", "chrome", "java", "undici"), [
    (0b100, "Invalid WebSocket frame: RSV1 must be clear", "websocket: RSV1 set",
     "reserved1 = 1, reserved2 = 0, reserved3 = 0", "1", "Expected RSV1 to be clear."),
    (0b110, "Invalid WebSocket frame: RSV2 and RSV3 must be clear",
     "websocket: RSV1 set, RSV2 set", "reserved1 = 1, reserved2 = 1, reserved3 = 0", "1",
     "Expected RSV1 to be clear."),
    (0b001, "Invalid WebSocket frame: RSV2 and RSV3 must be clear", "websocket: RSV3 set",
     "reserved1 = 0, reserved2 = 0, reserved3 = 1", "3", "RSV1, RSV2, RSV3 must be clear"),
])
def test_rsv_lines_name_the_bits_as_each_client_does(bits: int, node_ws: str, gorilla: str,
                                                    chrome: str, java: str,
                                                    undici: str) -> None:
    """RSV1 alone is read live (tests/test_gorilla_nodews_live.py,
    tests/test_java_undici_clients_live.py, Chromium's in tests/test_reserved_bits_live.py);
    the others from Node ws's receiver.js (RSV2 and RSV3 checked first), gorilla's conn.go
    (each bit set listed), Chromium's message, which names all three bits whichever are set,
    the JDK's MessageDecoder (the first bit set) and undici's receiver (RSV1 first, then all
    three)."""
    assert rsv_values(bits) == {"node_ws_rsv": node_ws, "gorilla_rsv": gorilla,
                                "chrome_rsv": chrome, "java_rsv": java, "undici_rsv": undici}


def test_silent_close_points_at_tungstenite_with_its_log(tmp_path: Path) -> None:
    diagnosis = _answered(tmp_path, websocket_request("example.com", "/ws",
                                                      omit=("Sec-WebSocket-Key",)), fin=0.001)
    assert diagnosis.verdict.value == "no_response"
    assert diagnosis.primary is not None and diagnosis.primary.check == "ws_key_missing"
    assert diagnosis.attribution.server is not None
    assert "tungstenite" in diagnosis.attribution.server
    assert diagnosis.attribution.server_log == 'No "Sec-WebSocket-Key" header'


@pytest.mark.parametrize(("response", "server", "log", "primary"), [
    # daphne (Autobahn's ConnectionDeny) when the application closed before accepting
    (b"HTTP/1.1 403 Access denied\r\n\r\n", "daphne (Autobahn)", '"WSREJECT /ws"',
     "ws_rejected_before_accept"),
    # uvicorn's 500 when the application raised before accepting, each back end's
    (b"HTTP/1.1 500 Internal Server Error\r\nDate: Mon, 07 Dec 2026 19:05:20 GMT\r\n"
     b"Connection: close\r\nContent-Length: 21\r\nContent-Type: text/plain; charset=utf-8"
     b"\r\n\r\nInternal Server Error", "uvicorn (websockets-sansio)",
     "Exception in ASGI application", "response_server_error"),
    (b"HTTP/1.1 500 \r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
     b"content-length: 21\r\n\r\nInternal Server Error", "uvicorn (wsproto)",
     "Exception in ASGI application", "response_server_error"),
    # uvicorn 0.55's answers to an application's denial response (websocket.http.response
    # .start, 401 with Content-Type and WWW-Authenticate, and one without headers), each back
    # end's (tests/test_uvicorn_denial_live.py runs them)
    *((response, server, '"WebSocket /ws" 401' + logged, "response_unauthorized")
      for server, logged, responses in (
          ("uvicorn (websockets)", " / connection rejected (401 Unauthorized)", (
              b"HTTP/1.1 401 Unauthorized\r\ncontent-type: text/plain\r\nwww-authenticate: "
              b"Bearer\r\nDate: Mon, 07 Dec 2026 22:19:14 GMT\r\nContent-Length: 12\r\n"
              b"Connection: close\r\n\r\nunauthorized",
              b"HTTP/1.1 401 Unauthorized\r\nDate: Mon, 07 Dec 2026 22:19:15 GMT\r\n"
              b"Content-Length: 0\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")),
          ("uvicorn (websockets-sansio)", " / connection rejected (401 Unauthorized)", (
              b"HTTP/1.1 401 Unauthorized\r\ncontent-type: text/plain\r\nwww-authenticate: "
              b"Bearer\r\nDate: Mon, 07 Dec 2026 22:19:18 GMT\r\nConnection: close\r\n"
              b"Content-Length: 12\r\n\r\nunauthorized",
              b"HTTP/1.1 401 Unauthorized\r\nDate: Mon, 07 Dec 2026 22:19:18 GMT\r\n"
              b"Connection: close\r\nContent-Length: 0\r\nContent-Type: text/plain; "
              b"charset=utf-8\r\n\r\n")),
          ("uvicorn (wsproto)", "", (
              b"HTTP/1.1 401 \r\ncontent-type: text/plain\r\nwww-authenticate: Bearer\r\n"
              b"Transfer-Encoding: chunked\r\n\r\nc\r\nunauthorized\r\n0\r\n\r\n",
              b"HTTP/1.1 401 \r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")))
      for response in responses),
])
def test_asgi_servers_refusals_known_by_their_shape(
        tmp_path: Path, response: bytes, server: str, log: str, primary: str) -> None:
    # the bytes of sweep30b s10 (daphne) and s1 (uvicorn), C3
    diagnosis = _answered(tmp_path, websocket_request("example.com", "/ws"), response)
    assert diagnosis.primary is not None and diagnosis.primary.check == primary
    who = diagnosis.attribution
    assert who.server == server
    assert who.server_log is not None and log in who.server_log


@pytest.mark.parametrize("response", [
    # python websockets' own rejection: the same headers, and its Server header
    b"HTTP/1.1 401 Unauthorized\r\nDate: Mon, 07 Dec 2026 22:19:15 GMT\r\nContent-Length: 0\r\n"
    b"Content-Type: text/plain\r\nConnection: close\r\nServer: Python/3.11 websockets/17.4"
    b"\r\n\r\n",
    # a reason phrase of the application's own; a Connection that is not "close"
    b"HTTP/1.1 401 Nope\r\nDate: Mon, 07 Dec 2026 22:19:15 GMT\r\nContent-Length: 0\r\n"
    b"Content-Type: text/plain\r\nConnection: close\r\n\r\n",
    b"HTTP/1.1 401 Unauthorized\r\nDate: Mon, 07 Dec 2026 22:19:15 GMT\r\nContent-Length: 0\r\n"
    b"Content-Type: text/plain\r\nConnection: keep-alive\r\n\r\n",
    # the set names in another order, or too few of them
    b"HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nDate: Mon, 07 Dec 2026 22:19:15 GMT\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 401 Unauthorized\r\nDate: Mon, 07 Dec 2026 22:19:15 GMT\r\nContent-Length: 0\r\n"
    b"Content-Type: text/plain\r\nX-Id: 1\r\nConnection: close\r\n\r\n",
    # no reason phrase, chunked, but dated (an h11 server of its own)
    b"HTTP/1.1 401 \r\ndate: Mon, 07 Dec 2026 22:19:15 GMT\r\nTransfer-Encoding: chunked\r\n"
    b"\r\n0\r\n\r\n",
])
def test_a_denial_response_like_uvicorns_but_not_its_is_not_uvicorn(
        tmp_path: Path, response: bytes) -> None:
    diagnosis = _answered(tmp_path, websocket_request("example.com", "/ws"), response)
    assert not (diagnosis.attribution.server or "").startswith("uvicorn"), diagnosis.attribution


@pytest.mark.parametrize(("status_line", "printed"), [
    (b"HTTP/1.1 403 \r\ncontent-length: 0\r\n\r\n", "403 Forbidden"),  # uvicorn (wsproto)
    (b"HTTP/1.1 403 Access denied\r\n\r\n", "403 Forbidden"),  # daphne
    (b"HTTP/1.1 413 \r\ncontent-length: 0\r\n\r\n", "413 Payload Too Large"),
    (b"HTTP/1.1 599 Whatever\r\ncontent-length: 0\r\n\r\n", "599 <unknown status code>"),
])
def test_tungstenite_prints_the_canonical_reason_not_the_wires(
        tmp_path: Path, status_line: bytes, printed: str) -> None:
    # tungstenite's Error::Http shows http::StatusCode: its canonical reason (sweep30b C2)
    diagnosis = _answered(tmp_path, websocket_request("example.com", "/ws"), status_line)
    assert f"tungstenite: HTTP error: {printed}" in diagnosis.attribution.client_errors


def test_a_silent_close_of_a_valid_request_names_nobody(tmp_path: Path) -> None:
    # tungstenite answers a valid handshake; a server that closes on one (uvicorn's wsproto
    # on an unoffered subprotocol, sweep30b s1) is not known by its silence
    diagnosis = _answered(tmp_path, websocket_request("example.com", "/ws", protocols=("chat",)),
                          fin=0.001)
    assert diagnosis.verdict.value == "no_response"
    assert diagnosis.attribution.server is None
    assert diagnosis.attribution.server_log is None


def test_wrong_accept_predicts_each_clients_words(tmp_path: Path) -> None:
    conv = Conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 80))
    conv.handshake()
    conv.client(websocket_request("example.com", "/ws", extra_headers=[
        ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                       "Chrome/120.0.0.0 Safari/537.36")]))
    conv.server(websocket_response(DEFAULT_WS_KEY, accept="d3JvbmcgYWNjZXB0IHZhbHVl"))
    conv.client_fin()
    write_pcap(tmp_path / "r.pcap", [conv])
    (diagnosis,) = analyze_pcap(tmp_path / "r.pcap")
    who = diagnosis.attribution
    assert who.client == "Chrome"
    assert who.client_errors[0] == ("Chrome: Error during WebSocket handshake: Incorrect "
                                    "'Sec-WebSocket-Accept' header value")
    assert any(line.startswith("Node ws: Invalid Sec-WebSocket-Accept") for line in
               who.client_errors)


_CHROME = [("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like "
                         "Gecko) Chrome/120.0.0.0 Safari/537.36")]


# The JDK's and undici's lines for the same frames (tests/test_java_undici_clients_live.py)
_JAVA_FRAME = ("Java HttpClient: Listener.onError: java.net.ProtocolException (Caused by: "
               "jdk.internal.net.http.websocket.FailWebSocketException: ")
_OTHERS = {"ws_text_not_utf8": (_JAVA_FRAME + "Invalid UTF-8 in frame TEXT) (CONTINUATION when "
                                              "the bytes are in a later fragment)",
                                "Node WebSocket (undici): Received invalid UTF-8 in text "
                                "frame."),
           "ws_server_frame_masked": (_JAVA_FRAME + "Masked frame received)",
                                      "Node WebSocket (undici): Frame cannot be masked")}


@pytest.mark.parametrize(("check", "server_sends", "client_sends", "line"), [
    ("ws_text_not_utf8", lambda c: c.server_ws_frame(Opcode.TEXT, b"caf\xe9"),
     lambda c: c.client_ws_frame(Opcode.TEXT, b"caf\xe9"),
     "Could not decode a text frame as UTF-8."),
    ("ws_server_frame_masked", lambda c: c.server_ws_frame(Opcode.TEXT, b"hi", mask=True),
     None, "A server must not mask any frames that it sends to the client."),
])
def test_a_frame_the_server_broke_predicts_chromes_words_only_when_the_server_sent_it(
        tmp_path: Path, check: str, server_sends: Any, client_sends: Any, line: str) -> None:
    """The server breaks a framing rule Chromium enforces, Chrome answers with Close 1002:
    Chrome printed its line for that rule. The near miss: the client broke the same rule and
    the server closed 1007; Chrome printed the Close it got, not that line."""
    said = f"Chrome: WebSocket connection to 'ws://example.com/ws' failed: {line}"
    for sender, sends in (("server", server_sends), ("client", client_sends)):
        if sends is None:
            continue
        conv = Conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 80))
        conv.handshake()
        conv.client(websocket_request("example.com", "/ws", extra_headers=_CHROME))
        conv.server(websocket_response())
        sends(conv)
        if sender == "server":
            conv.client_ws_close(1002, delay=0.001)
        else:
            conv.server_ws_close(1007, delay=0.001)
        path = tmp_path / f"{sender}.pcap"
        write_pcap(path, [conv])
        (diagnosis,) = analyze_pcap(path)
        assert diagnosis.verdict.value == "aborted"
        assert diagnosis.primary is not None and diagnosis.primary.check == check
        lines = diagnosis.attribution.client_errors
        if sender == "server":
            assert lines == (said, *_OTHERS[check])
        else:
            assert said not in lines and "Chrome: CloseEvent code 1007" in lines


@pytest.mark.parametrize(("sender", "code", "reserved"), [
    ("server", 1005, True), ("server", 1015, True),
    ("server", 1011, False),  # a code that may be sent: the close event gives it
    ("client", 1005, False),  # the client broke the rule: its close event has the answer
])
def test_a_server_close_with_a_reserved_code_predicts_the_clients_rejection(
        tmp_path: Path, sender: str, code: int, reserved: bool) -> None:
    """A server's Close carrying 1005, 1006 or 1015 (RFC 6455 §7.4.1: never sent; gunicorn's
    ASGI worker and websockify have done it): Chrome fails the channel with its console line
    (its close event then says 1006, not the code), Node ws, python websockets and gorilla
    reject the code (tests/test_close_code_live.py reads Chromium's and python websockets'
    lines from the real clients, tests/test_gorilla_nodews_live.py Node ws's and gorilla's);
    not "CloseEvent code 1005", which no client prints."""
    conv = Conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 80))
    conv.handshake()
    conv.client(websocket_request("example.com", "/ws", extra_headers=_CHROME))
    conv.server(websocket_response())
    if sender == "server":
        conv.server_ws_close(code)
        conv.client_ws_close(1002, delay=0.001)
    else:
        conv.client_ws_close(code)
        conv.server_ws_close(1002, delay=0.001)
    write_pcap(tmp_path / "r.pcap", [conv])
    (diagnosis,) = analyze_pcap(tmp_path / "r.pcap")
    lines = diagnosis.attribution.client_errors
    chrome = ("Chrome: WebSocket connection to 'ws://example.com/ws' failed: Received a broken "
              "close frame containing a reserved status code.")
    if code != 1011:  # (not 1005's meaning, "the Close frame had none": it had one)
        assert diagnosis.primary is not None
        assert "reserved for what a library reports" in diagnosis.primary.found
    if reserved:
        assert lines == (chrome, f"Node ws: Invalid WebSocket frame: invalid status code {code}",
                         "python websockets: ConnectionClosedError: sent 1002 (protocol "
                         "error) invalid status code; no close frame received",
                         f"gorilla/websocket: websocket: bad close code {code}",
                         _JAVA_FRAME + f"Illegal status code: {chr(code)})",
                         "Node WebSocket (undici): Invalid status code")
    elif sender == "server":  # the close event gives the code received
        assert lines == (f"Chrome: CloseEvent code {code}", f"Node ws: close event: code {code}",
                         "python websockets: ConnectionClosedError: received 1011 (internal "
                         "error); then sent 1002 (protocol error)",
                         "gorilla/websocket: websocket: close 1011 (internal server error)")
    else:  # the client's own Close: its close event gives the server's answer
        assert lines == ("Chrome: CloseEvent code 1002", "Node ws: close event: code 1002",
                         "python websockets: ConnectionClosedError: sent 1005 (no status "
                         "received [internal]); then received 1002 (protocol error)",
                         "gorilla/websocket: websocket: close 1002 (protocol error)")


@pytest.mark.parametrize(("agent", "name"), [
    ("PostmanRuntime/7.36.0", "Postman"),
    ("curl/8.5.0", "curl"),
    ("Go-http-client/1.1", "Go net/http (gorilla, coder/websocket)"),
    ("Python/3.11 websockets/17.4", "python websockets"),
    ("Python/3.11 aiohttp/3.14.5", "aiohttp"),
    # tornado.simple_httpclient's own, unless the request sets user_agent (its headers'
    # spellings, Sec-Websocket-Key, are any header-normalizing client's: not a name)
    ("Tornado/6.6.1", "tornado"),
    ("MyTornadoApp/1.0", "MyTornadoApp/1.0"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
     "Firefox"),
    ("Mozilla/5.0 AppleWebKit/537.36 Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0", "Edge"),
    ("kube-probe/1.28", "a health check"),
    # Java's and Node 20's built-in WebSocket (undici): tests/test_java_undici_clients_live.py
    ("Java-http-client/17.0.15", "Java HttpClient"),
    ("node", "Node WebSocket (undici)"),
    ("node-fetch/1.0", "Node.js"),
    ("unknown-tool/2 (x)", "unknown-tool/2"),
    ("\x1d\x1d\x1d", None),  # separators only (str.split's whitespace): no name, no crash
    (None, None),
])
def test_client_names(agent: str | None, name: str | None) -> None:
    assert client_name(agent) == name


def _response(reason: str) -> ResponseHead:
    return ResponseHead("HTTP/1.1", 400, reason, Headers(()), b"")


def test_every_known_text_is_found_in_its_place_and_the_first_listed_wins() -> None:
    # match_response rules all the texts out with one scan per place before it walks them in
    # order: each must still be found anywhere in its place, and the earlier-listed one must
    # win when a response carries two.
    def carrying(*texts: KnownText) -> ServerMatch | None:
        reason = " ".join(f"x {t.text} y" for t in texts if t.where == "reason") or "Bad Request"
        body = b"\n".join(b"<p>" + t.text.encode("latin-1") + b"</p>" for t in texts
                          if t.where == "body")
        return match_response(_response(reason), body)

    for i, first in enumerate(TEXTS):
        match = carrying(first)
        assert match is not None and match.server == first.server
        assert match.evidence.endswith(f'"{first.text}"')
        for later in TEXTS[i + 1:]:
            for texts in ((first, later), (later, first)):
                match = carrying(*texts)
                assert match is not None and match.evidence.endswith(f'"{first.text}"')
    assert carrying() is None


def test_every_server_text_names_catalogue_ids_and_adds_only_server_side_causes() -> None:
    from analyzer.attribution.texts import ENGINEIO_ABORT_UPGRADE, SHAPES
    from analyzer.checks.catalogue import CATALOGUE

    phases = {check.id: check.phase for check in CATALOGUE}
    for known in (*TEXTS, *SHAPES, ENGINEIO_ABORT_UPGRADE):
        assert set(known.names) <= set(phases), known
        if known.adds:
            # a cause only the server's words reveal: never one a request check finds
            assert phases[known.names[0]] == "rejection", known
        else:
            assert all(phases[name] != "rejection" for name in known.names), known
    assert len({known.text for known in SHAPES}) == len(SHAPES)


@pytest.mark.parametrize(("file", "server", "log"), [
    ("uvicorn_starlette_websockets.pcap", "uvicorn (websockets)", "connection rejected"),
    ("uvicorn_starlette_wsproto.pcap", "uvicorn (wsproto)", "403"),
    ("daphne_channels.pcap", "daphne (Autobahn)", "No route found"),
    ("haproxy_websockets.pcap", "HAProxy", "every connection to the chosen server failed"),
    ("caddy_websockets.pcap", "Caddy", "connect: connection refused"),
    ("socketio.pcap", "Socket.IO (Engine.IO)", None),
    ("node_ws_server.pcap", "Node ws", None),
    ("tomcat10_websocket.pcap", "Apache Tomcat", "nothing but the access log (404)"),
    ("jetty9_websocket.pcap", "Jetty", "Missing request header 'Sec-WebSocket-Key'"),
    ("jetty9_websocket.pcap", "Jetty (HttpServlet's default doGet)", "405"),
])
def test_who_answered_the_real_framework_rejections(file: str, server: str,
                                                    log: str | None) -> None:
    rejections = [d for d in analyze_pcap(CAPTURES / file)
                  if d.attempt.response_head is not None
                  and d.attempt.response_head.status >= 400]
    assert rejections
    who = [d.attribution for d in rejections if d.attribution.server == server]
    assert who, [d.attribution.server for d in rejections]
    if log is not None:
        assert who[0].server_log is not None and log in who[0].server_log


def test_predicted_uvicorn_log_lines_are_what_uvicorn_logged() -> None:
    index = json.loads((CAPTURES / "expected.json").read_text())
    entry = next(c for c in index["captures"]
                 if c["file"] == "uvicorn_starlette_websockets.pcap")
    logged = " ".join(str(entry["attempts"][0]["server_said"]).split())
    predicted = {str(d.attempt.request_head.target if d.attempt.request_head else ""):
                 d.attribution.server_log
                 for d in analyze_pcap(CAPTURES / entry["file"])
                 if d.attempt.response_head is not None
                 and d.attempt.response_head.status in (403, 404)}
    plain = predicted["/chat"]
    assert plain is not None and " ".join(plain.split()) in logged  # client, request, status
    unknown = predicted["/nope"]
    assert unknown is not None
    for line in unknown.split(" / "):
        assert line in logged, line


def _java_attempts(file: str) -> list[tuple[dict[str, object], str | None]]:
    """Each rejection of a Java server capture: what expected.json says the server logged,
    and the log line the attribution predicts."""
    index = json.loads((CAPTURES / "expected.json").read_text())
    entry = next(c for c in index["captures"] if c["file"] == file)
    found = analyze_pcap(CAPTURES / file)
    pairs = []
    for expected in entry["attempts"]:
        if expected["status"] in (101, None):
            continue
        (diagnosis,) = [d for d in found if str(d.attempt.client) == expected["client"]]
        pairs.append((expected, diagnosis.attribution.server_log))
    return pairs


def test_predicted_tomcat_log_is_what_tomcat_logged() -> None:
    # Tomcat logged nothing but its access log line for each rejection; the prediction says
    # so, with the status
    pairs = _java_attempts("tomcat10_websocket.pcap")
    assert len(pairs) == 5
    for expected, predicted in pairs:
        said = str(expected["server_said"])
        status = expected["status"]
        assert re.fullmatch(rf'127\.0\.0\.1:\d+ "GET \S+ HTTP/1\.1" {status} \S+', said), said
        assert predicted is not None and f"access log ({status})" in predicted


def test_predicted_jetty_log_lines_are_what_jetty_logged() -> None:
    pairs = {str(e["client_software"]).split("(")[-1]: (str(e["server_said"]), predicted)
             for e, predicted in _java_attempts("jetty9_websocket.pcap")}
    said, predicted = pairs["WebSocket headers without Sec-WebSocket-Key)"]
    # (the attribution puts the request's path in place of /PATH)
    assert predicted is not None and predicted.split(": ", 1)[1] in said
    said, predicted = pairs["Sec-WebSocket-Version: 8)"]
    assert predicted is not None
    for fixed in re.split(r"ADDRESS \(:PORT\)|\"\.\.\.\"|\[N\]", predicted.split(": ", 1)[1]):
        assert fixed.strip() in said, fixed


def test_lazy_attribution_equals_the_eager_one_on_every_bundled_capture() -> None:
    """`Diagnosis.attribution` is built when first read (verdict.py); `judge_eagerly` builds it
    with the verdict as before. Both must give the same attribution for every attempt."""
    from analyzer.verdict import judge_eagerly

    compared = 0
    for path in sorted(CAPTURES.glob("*.pcap")):
        for diagnosis in analyze_pcap(path):
            assert diagnosis.who is None  # nothing read it yet: it is not built
            eager = judge_eagerly(diagnosis.attempt, diagnosis.facts, diagnosis.findings,
                                  diagnosis.number)
            assert eager.who is not None
            assert diagnosis.attribution == eager.who
            assert diagnosis.who is diagnosis.attribution  # built once, then kept
            compared += 1
    assert compared > 100


def test_server_match_from_the_facts_words_equals_matching_again() -> None:
    """The attribution takes a rejection's known words from the checks' facts (`Facts.said`,
    found once) instead of scanning the response again: `match_known` with them equals
    `match_response` (its plain twin) on every response of every bundled capture and of the
    real-world ones."""
    from analyzer.attribution.servers import match_known
    from analyzer.attribution.texts import match_words

    real_world = Path(__file__).resolve().parents[1].parent / "shared" / "real-world"
    paths = sorted(CAPTURES.glob("*.pcap")) + sorted(real_world.rglob("*.pcap"))
    compared = 0
    for path in paths:
        for diagnosis in analyze_pcap(path):
            attempt = diagnosis.attempt
            head = attempt.response_head
            if head is None or attempt.response is None:
                continue
            body = attempt.response.body_prefix
            said = diagnosis.facts.said if head.status >= 300 else match_words(head, body)
            if head.status >= 300:
                assert said == match_words(head, body)
            assert match_known(head, body, said) == match_response(head, body)
            compared += said is not None
    assert compared > 20  # responses with known words (from the bundled captures alone)


def test_client_errors_equal_their_plain_twin() -> None:
    """`client_errors` (its lines' templates remembered per kind and client) gives what
    `client_errors_plain` gives: every kind, each client it quotes first and none, with all
    values, some missing (the line unformatted) and none, and again from the memory."""
    from analyzer.attribution.client_texts import CLIENT_LINES
    from analyzer.attribution.clients import _CLIENTS, client_errors, client_errors_plain

    full = dict(status=403, reason="Forbidden", url="ws://h/p?q={x}", value="v '1008'",
                server="10.0.0.1:80", host="h")
    compared = 0
    for kind in list(CLIENT_LINES) + ["no_such_kind"]:
        for client in sorted(_CLIENTS.get(kind, ())) + [None, "Unknown"]:
            for values in (full, {"status": 400}, {}):
                for _ in range(2):
                    assert client_errors(kind, client, **values) == client_errors_plain(
                        kind, client, **values)
                    compared += 1
    assert compared > 200


@pytest.mark.parametrize(("side", "how", "code", "reason", "received", "closing", "gorilla"), [
    ("server", CLOSE_HANDSHAKE, 1011, "boom", "1011",
     "received 1011 (internal error) boom; then sent 1011 (internal error) boom",
     "websocket: close 1011 (internal server error): boom"),
    ("client", CLOSE_HANDSHAKE, 4001, "bye", "4001",
     "sent 4001 (private use) bye; then received 4001 (private use) bye",
     "websocket: close 4001: bye"),
    ("client", CLOSE_FRAME, 1011, "keepalive ping timeout", "1006",
     "sent 1011 (internal error) keepalive ping timeout; no close frame received",
     "websocket: close 1006 (abnormal closure): unexpected EOF"),
    ("server", CLOSE_FRAME, 1013, "", "1013",
     "received 1013 (try again later); then sent 1013 (try again later)",
     "websocket: close 1013"),
])
def test_a_close_past_the_watch_window_gives_the_lines_of_its_first_close(
        side: str, how: str, code: int, reason: str, received: str, closing: str,
        gorilla: str) -> None:
    """A connection followed in life that ended with an error Close: the client's close event
    gives the code it received (1006 when its own Close went unanswered), python websockets
    both Closes in the order they went, the answer taken to echo the first (as clients do).
    captures/websocket_lives.pcap holds the server's 1011 to the real client's words
    (tests/test_captures.py)."""
    life = Lifetime(duration_s=30.0, closed_by=side, how=how, idle_before_end_s=0.1,
                    close_code=code, close_side=side, close_reason=reason)
    assert life_closing_values(life) == {"received": received, "closing": closing,
                                         "gorilla_closing": gorilla}


@pytest.mark.parametrize("url, location", [
    ("ws://127.0.0.1:18036/old", "/ws"),  # captures/redirect_302.pcap: followed
    ("ws://[::1]:18111/", "http://[::1]:18111/new"),  # nginx's `return 301`: absolute, http
    ("wss://chat.example.com/a", "ws://chat.example.com/b"),  # a downgrade
    ("wss://chat.example.com/a", "b?x=1"),
])
def test_what_python_websockets_does_with_a_redirect_is_what_it_does(url: str,
                                                                     location: str) -> None:
    """python websockets follows a redirect where it may (it prints nothing), else raises:
    the predicted line is the one its own URI check and downgrade rule give (the library
    itself is asked here, not a copy of its words)."""
    from urllib.parse import urljoin

    from websockets.exceptions import InvalidURI
    from websockets.uri import parse_uri

    from analyzer.attribution.clients import websockets_redirect

    target = urljoin(url, location)
    try:
        new = parse_uri(target)
    except InvalidURI as exc:
        expected = f"InvalidURI: {exc}"
    else:
        expected = (f"SecurityError: cannot follow redirect to non-secure URI {target}"
                    if parse_uri(url).secure and not new.secure
                    else f"(no error: follows the redirect to {target}, up to 10 in a row)")
    assert websockets_redirect(url, location) == expected


@pytest.mark.parametrize(("status", "location", "expected"), [
    (301, "/final", "(no error of its own: follows the redirect to ws://h:1/final, up to 10 "
                    "in a row)"),
    (308, "http://h:2/x", "(no error of its own: follows the redirect to http://h:2/x, up to "
                          "10 in a row)"),
    (302, "ws://h:1/final", "NonHttpUrlRedirectClientError: ws://h:1/final"),
    (302, " wss://h/a ", "NonHttpUrlRedirectClientError: wss://h/a"),
    (300, "/final", "WSServerHandshakeError: 300, message='Invalid response status', "
                    "url='ws://h:1/ws'"),
])
def test_what_aiohttp_does_with_a_redirect(status: int, location: str, expected: str) -> None:
    """aiohttp's ws_connect follows 301-303, 307 and 308 to http(s) or a relative reference
    and refuses any other scheme (its ClientSession._request; the real client in
    tests/test_aiohttp_tornado_clients_live.py)."""
    from analyzer.attribution.clients import aiohttp_redirect

    assert aiohttp_redirect("ws://h:1/ws", status, location) == expected


def test_a_redirect_predicts_the_status_lines_but_python_websockets_follows_it() -> None:
    """captures/redirect_302.pcap: the real websockets client followed the 302 (its second
    attempt succeeded), while browsers and Node ws stop at it."""
    first = analyze_pcap(CAPTURES / "redirect_302.pcap")[0]
    lines = first.attribution.client_errors
    assert lines[0] == ("python websockets: (no error: follows the redirect to "
                        "ws://127.0.0.1:18036/ws, up to 10 in a row)")
    assert "Node ws: Unexpected server response: 302" in lines


@pytest.mark.parametrize("after_a_frame", [False, True])
def test_a_server_that_ends_the_switched_connection_without_close_predicts_1006(
        tmp_path: Path, after_a_frame: bool) -> None:
    """A server that took the handshake and then closed the connection without a Close frame,
    at once (`server_hung_up_after_switch`) or after a frame each way within the first
    moments (`ended_without_close_after_switch`): python websockets, which accepted the 101,
    raises ConnectionClosedError "no close frame received or sent" (the words it printed in
    captures/websocket_ended_early.pcap, and on such a server in the sweep of the twenty-
    eighth session), Node ws and browsers report 1006. (A client that hangs up on a 101 it
    rejected gets the rejection's lines instead: test_wrong_accept_predicts_each_clients_words.)
    """
    conv = Conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 80))
    conv.handshake()
    conv.client(websocket_request("example.com", "/ws", extra_headers=[
        ("User-Agent", "Python/3.11 websockets/17.4")]))
    conv.server(websocket_response(DEFAULT_WS_KEY))
    if after_a_frame:
        conv.client_ws_frame(Opcode.TEXT, b"hello")
        conv.server_ws_frame(Opcode.TEXT, b"hello")
    conv.server_fin(0.2)
    conv.client_fin()
    write_pcap(tmp_path / "r.pcap", [conv])
    (diagnosis,) = analyze_pcap(tmp_path / "r.pcap")
    assert diagnosis.findings[0].check == ("ended_without_close_after_switch" if after_a_frame
                                           else "server_hung_up_after_switch")
    who = diagnosis.attribution
    assert who.client_errors[0] == ("python websockets: ConnectionClosedError: no close frame "
                                    "received or sent")
    assert "Node ws: close event: code 1006" in who.client_errors


@pytest.mark.parametrize("agent", ["curl/7.88.1", "Python/3.11 websockets/17.4"])
@pytest.mark.parametrize("after", [0.05, 1.5])
def test_a_client_that_hangs_up_after_the_101_is_a_refusal_at_once_and_a_wait_later(
        tmp_path: Path, agent: str, after: float) -> None:
    """A client that rejects a 101 hangs up at once; one that hangs up after a silence gave
    up waiting (tests/test_no_response_live.py has curl doing it). curl's timeout line is
    given for curl only: another client hanging up has reasons of its own."""
    conv = Conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 80))
    conv.handshake()
    conv.client(websocket_request("example.com", "/ws", extra_headers=[("User-Agent", agent)]))
    conv.server(websocket_response(DEFAULT_WS_KEY))
    conv.client_fin(after)
    conv.server_fin()
    write_pcap(tmp_path / "r.pcap", [conv])
    (diagnosis,) = analyze_pcap(tmp_path / "r.pcap")
    primary = diagnosis.primary
    assert primary is not None and primary.check == "client_hung_up_after_switch"
    assert ("gave up waiting for data" in primary.found) == (after >= 0.5), primary.found
    lines = diagnosis.attribution.client_errors
    if agent.startswith("curl"):
        assert len(lines) == 1 and lines[0].startswith("curl: (28) Operation timed out after ")
    else:
        assert not any(line.startswith("curl") for line in lines), lines


@pytest.mark.parametrize(("headers", "body", "node_ws"), [
    ([], b"Unauthorized", True),  # abortHandshake's own three headers
    ([("WWW-Authenticate", 'Bearer realm="ws"')], b"Unauthorized", True),  # and verifyClient's
    ([("WWW-Authenticate", 'Bearer realm="ws"')], b"token expired", False),  # another body
    ([("Date", "Mon, 07 Dec 2026 16:00:00 GMT")], b"Unauthorized", True),
])
def test_node_ws_is_known_by_its_shape_with_the_headers_its_application_added(
        tmp_path: Path, headers: list[tuple[str, str]], body: bytes, node_ws: bool) -> None:
    """Node ws's abortHandshake answers 401 with Connection, Content-Type and Content-Length,
    then the headers a verifyClient callback passed (the sweep of the twenty-eighth session:
    its 403 was named Node ws, its 401 with WWW-Authenticate was not), the status text as
    body. The near misses: another body, the same names in another order."""
    for order in ("node", "other"):
        fixed = [("Connection", "close"), ("Content-Type", "text/html"),
                 ("Content-Length", str(len(body)))]
        if order == "other":
            fixed = fixed[::-1]
        conv = Conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 80))
        conv.handshake()
        conv.client(websocket_request("example.com", "/ws"))
        head = "".join(f"{name}: {value}\r\n" for name, value in [*fixed, *headers])
        conv.server(f"HTTP/1.1 401 Unauthorized\r\n{head}\r\n".encode() + body)
        conv.server_fin()
        conv.client_fin()
        path = tmp_path / f"{order}.pcap"
        write_pcap(path, [conv])
        (diagnosis,) = analyze_pcap(path)
        assert diagnosis.verdict.value == "failed"
        named = diagnosis.attribution.server == "Node ws"
        assert named == (node_ws and order == "node"), diagnosis.attribution


def test_nginx_refusing_a_missing_client_certificate_with_400_predicts_the_400s_lines() -> None:
    """nginx with `ssl_verify_client on` finishes the handshake and answers the request with
    400 "No required SSL certificate was sent" (captures/tls_mtls_no_client_cert.pcap): the
    real python websockets printed the 400 (InvalidStatus), not a TLS alert's words, and
    nginx logged "client sent no required SSL certificate" (the sweep of the twenty-ninth
    session: curl printed the 400 page and exited 0). The near miss: the same capture's
    servers that close without an alert keep the TLS lines."""
    diagnoses = [d for d in analyze_pcap_with_keys(CAPTURES / "tls_mtls_no_client_cert.pcap")
                 if d.primary is not None
                 and d.primary.check == "tls_client_certificate_required"]
    by_400 = [d for d in diagnoses if d.attempt.response_head is not None]
    closed = [d for d in diagnoses if d.attempt.response_head is None]
    assert by_400 and closed
    for d in by_400:
        assert ("python websockets: server rejected WebSocket connection: HTTP 400"
                in d.attribution.client_errors)
        assert d.attribution.server_log == ("client sent no required SSL certificate while "
                                            "reading client request headers")
    for d in closed:
        assert not any("HTTP 400" in line for line in d.attribution.client_errors)


def analyze_pcap_with_keys(path: Path) -> list[Any]:
    """`analyze_pcap` with the key log bundled beside the capture."""
    from analyzer.pipeline import Analysis, analyze
    from analyzer.source import read_captures
    from analyzer.tls.keylog import load_keylog

    run = Analysis(secrets=load_keylog(path.with_suffix(".keys").read_bytes()))
    return [d for d in analyze(read_captures([str(path)], []), run) if isinstance(d, Diagnosis)]


def test_uvicorn_without_a_websocket_library_predicts_its_warnings(tmp_path: Path) -> None:
    """uvicorn's HTTP protocol answering an upgrade (sweep30b s12, ``--ws none``): the
    predicted log is its two warnings, then its access line, as it logged them."""
    from tests.test_checks import UVICORN_HTTP_404

    conv = Conversation(client=("127.0.0.1", 60338), server=("127.0.0.1", 21120))
    conv.handshake()
    conv.client(websocket_request("127.0.0.1:21120", "/ok"))
    conv.server(UVICORN_HTTP_404)
    write_pcap(tmp_path / "r.pcap", [conv])
    (diagnosis,) = analyze_pcap(tmp_path / "r.pcap")
    assert diagnosis.primary is not None
    assert diagnosis.primary.check == "uvicorn_websocket_unsupported"
    who = diagnosis.attribution
    assert who.server == "uvicorn"
    assert who.server_log == (
        "WARNING: Unsupported upgrade request. / WARNING: No supported WebSocket library "
        "detected. Please use \"pip install 'uvicorn[standard]'\", or install 'websockets' "
        "or 'wsproto' manually. / "
        'INFO: 127.0.0.1:60338 - "GET /ok HTTP/1.1" 404 Not Found')


@pytest.mark.parametrize("page", [b"<html><body id=ERR_ACCESS_DENIED>\n<p>Access Denied.</p>\n"
                                  b"</body></html>\n", b""], ids=["page", "header only"])
def test_squids_own_page_names_squid_with_its_access_log_line(tmp_path: Path,
                                                              page: bytes) -> None:
    """Squid's refusal of a CONNECT, known by the page's body id or, without the page, its
    X-Squid-Error header: its access.log line counts the bytes on the wire (as Squid 5.7 did
    in tests/test_squid_live.py), and the clients' lines are the tunnel's."""
    request = http_request("CONNECT", "10.0.0.9:8443", [("Host", "10.0.0.9:8443"),
                                                        ("User-Agent", "curl/7.88.1")])
    answer = http_response(403, "Forbidden", [
        ("Server", "squid/5.7"), ("X-Squid-Error", "ERR_ACCESS_DENIED 0"),
        ("Content-Length", str(len(page)))], page)
    who = _answered(tmp_path, request, answer).attribution
    assert who.server == "Squid" and who.confidence == "high", who
    assert who.server_log == (f"... 10.0.0.1 TCP_DENIED/403 {len(answer)} CONNECT "
                              "10.0.0.9:8443 - HIER_NONE/- text/html")
    assert who.client_errors[0] == "curl: (56) CONNECT tunnel failed, response 403"
    assert ("Chrome: WebSocket connection to '...://10.0.0.9:8443/...' failed: Establishing a "
            "tunnel via proxy server failed.") in who.client_errors


def test_a_request_in_absolute_form_is_the_url_the_client_opened(tmp_path: Path) -> None:
    """A ws:// handshake sent to a proxy names its URL in the request line: the clients'
    lines say ws://host/path, not the Host glued to the absolute target."""
    request = websocket_request("chat.example.com", "http://chat.example.com/ws")
    who = _answered(tmp_path, request, http_response(403, "Forbidden", [
        ("Content-Length", "0")])).attribution
    assert ("Chrome: WebSocket connection to 'ws://chat.example.com/ws' failed: Error during "
            "WebSocket handshake: Unexpected response code: 403") in who.client_errors


@pytest.mark.parametrize(("names", "named"), [
    # Node ws 8 (captures/node_ws_*.pcap): its four fields first, Node's HTTP client's Host last
    (("Sec-WebSocket-Version", "Sec-WebSocket-Key", "Connection", "Upgrade",
      "Sec-WebSocket-Extensions", "Host"), "Node ws"),
    (("Sec-WebSocket-Version", "Sec-WebSocket-Key", "Connection", "Upgrade", "Host"), "Node ws"),
    # near misses: a hand-written request (Host first), the same fields with Host not last
    (("Host", "Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version"), None),
    (("Sec-WebSocket-Version", "Sec-WebSocket-Key", "Connection", "Upgrade", "Host",
      "Origin"), None),
])
def test_a_client_without_user_agent_is_named_by_its_fields_order(
        names: tuple[str, ...], named: str | None) -> None:
    from analyzer.attribution.clients import client_without_agent
    from analyzer.http.message import Header, Headers

    assert client_without_agent(Headers(tuple(Header(n, "x") for n in names))) == named
