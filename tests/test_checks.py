"""End-to-end tests of the check catalogue: builder conversation → pcap → pipeline → diagnosis.

Every catalogue entry has at least one case that triggers it and one near miss that does not
(``test_every_check_has_cases`` enforces it). Each case is a scripted TCP conversation written as
a real pcap, so frame numbers in the evidence are the ones Wireshark would show. Where the field
reference (/work/shared/reference/handshake-failures.md) quotes what real software sends, the
cases send exactly those bytes.

A case names some of its segments ("request", "response", "fin"...) so that evidence can be
stated as "the frames of the request and of the response" instead of hard-coded numbers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from analyzer.checks.catalogue import CATALOGUE
from analyzer.exchange.model import Attempt
from analyzer.pipeline import Analysis, analyze
from analyzer.source import read_captures
from analyzer.tls.keylog import load_keylog
from analyzer.verdict import Diagnosis, Verdict
from tests.builder import (
    DEFAULT_WS_KEY,
    Conversation,
    Opcode,
    Segment,
    TcpFlags,
    http_request,
    http_response,
    websocket_accept,
    websocket_request,
    websocket_response,
    write_pcap,
)
from tests.helpers import analyze_pcap, run_cli
from tests.test_correlate import PROXY_CASES
from tests.tls_memory import CLIENT, SERVER, alert_record, recorded

Marks = dict[str, list[int]]  # a name for some segments of a conversation -> their record indexes
Script = Callable[[Conversation], Marks]
Step = tuple[str, Callable[[Conversation], list[int]]]

SUCCEEDED, FAILED, DECLINED = Verdict.SUCCEEDED, Verdict.FAILED, Verdict.DECLINED
NO_RESPONSE, REFUSED = Verdict.NO_RESPONSE, Verdict.REFUSED
ABORTED, INCONCLUSIVE = Verdict.ABORTED, Verdict.INCONCLUSIVE


# --- scripts -------------------------------------------------------------------------------


def exchange(request: bytes, response: bytes | None = None, *steps: Step,
             request_split: list[int] | None = None,
             response_split: list[int] | None = None) -> Script:
    """TCP handshake, the request, the answer 2 ms later, then each step in order."""

    def script(conv: Conversation) -> Marks:
        marks = {"syn": conv.handshake()}
        marks["request"] = conv.client(request, split=request_split)
        if response is not None:
            marks["response"] = conv.server(response, split=response_split, delay=0.002)
        for name, action in steps:
            marks[name] = action(conv)
        return marks

    return script


def then(name: str, action: Callable[[Conversation], list[int]]) -> Step:
    """A named step after the exchange; its segments can be cited as evidence or dropped."""
    return (name, action)


def client_fin(delay: float = 0.001) -> Step:
    return then("client_fin", lambda c: c.client_fin(delay))


def server_fin(delay: float = 0.001) -> Step:
    return then("server_fin", lambda c: c.server_fin(delay))


# --- real bytes ----------------------------------------------------------------------------

DATE = "Tue, 04 Jun 2024 10:00:00 GMT"
HOST = "chat.example.com"
OTHER_KEY = "x3JJHMbDL1EzLkh9GBhXDw=="  # a valid 16-byte nonce other than the RFC sample
CURL_H2_SETTINGS = "AAMAAABkAAQCAAAAAAIAAAAA"  # what `curl --http2` sends (3 settings)
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
H2_EMPTY_SETTINGS = bytes.fromhex("000000040000000000")
H2_SERVER_SETTINGS = bytes.fromhex("000006040000000000") + bytes.fromhex("000300000064")
H2_HEADERS_FRAME = bytes.fromhex("000001010500000001") + b"\x88"  # HEADERS :status 200
TLS_CLIENT_HELLO_START = bytes.fromhex("160301020001") + bytes(8)


def ws_request(**options: object) -> bytes:
    """A browser-like WebSocket handshake (RFC 6455 §4.1) with the RFC's sample key."""
    return websocket_request(HOST, "/ws", origin=f"https://{HOST}", **options)  # type: ignore[arg-type]


def error_response(status: int, reason: str, body: bytes = b"",
                   headers: list[tuple[str, str]] | None = None) -> bytes:
    fields = [("Date", DATE), *(headers or []), ("Content-Length", str(len(body)))]
    return http_response(status, reason, fields, body)


# Postman in HTTP mode, answered by actix-web's HandshakeError::NoWebsocketUpgrade.
POSTMAN_GET = http_request("GET", "/ws", [
    ("User-Agent", "PostmanRuntime/7.39.0"), ("Accept", "*/*"),
    ("Postman-Token", "2f6ad1c5-0d7e-4b0e-9c1a-6f1c7e0b9a55"), ("Host", "localhost:8080"),
    ("Accept-Encoding", "gzip, deflate, br"), ("Connection", "keep-alive"),
])
ACTIX_NO_UPGRADE = http_response(400, "No WebSocket Upgrade header found",
                                 [("content-length", "0"), ("date", DATE)])
ACTIX_NO_VERSION = http_response(400, "WebSocket version header is required",
                                 [("content-length", "0"), ("date", DATE)])
ACTIX_NOT_GET = http_response(405, "Method Not Allowed",
                              [("content-length", "0"), ("allow", "GET"), ("date", DATE)])


def node_ws_abort(status: int, reason: str, message: str,
                  extra: list[tuple[str, str]] | None = None) -> bytes:
    """What Node ws's abortHandshake writes before ending the socket."""
    return http_response(status, reason, [
        ("Connection", "close"), ("Content-Type", "text/html"),
        ("Content-Length", str(len(message))), *(extra or []),
    ], message.encode())


UVICORN_HTTP_404 = (b"HTTP/1.1 404 Not Found\r\ndate: Mon, 07 Dec 2026 19:14:51 GMT\r\n"
                    b"server: uvicorn\r\ncontent-length: 9\r\n"
                    b"content-type: text/plain; charset=utf-8\r\n\r\nNot Found")
ENGINEIO_REFUSED = (b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-type: text/html\r\n"
                    b"Content-Length: 16\r\n\r\nforbidden origin")
NODE_WS_BAD_VERSION = node_ws_abort(400, "Bad Request",
                                    "Missing or invalid Sec-WebSocket-Version header",
                                    [("Sec-WebSocket-Version", "13, 8")])
NODE_WS_BAD_KEY = node_ws_abort(400, "Bad Request", "Missing or invalid Sec-WebSocket-Key header")
NODE_WS_UNAUTHORIZED = node_ws_abort(401, "Unauthorized", "Unauthorized")


def gorilla_error(status: int, reason: str) -> bytes:
    """gorilla/websocket's Upgrader.returnError: http.Error with the status text."""
    body = f"{reason}\n".encode()
    return http_response(status, reason, [
        ("Content-Type", "text/plain; charset=utf-8"), ("Sec-Websocket-Version", "13"),
        ("X-Content-Type-Options", "nosniff"), ("Date", DATE),
        ("Content-Length", str(len(body))),
    ], body)


def python_websockets_reject(status: int, reason: str, text: str,
                             extra: list[tuple[str, str]] | None = None) -> bytes:
    """python websockets' ServerProtocol.reject (new API), as sent over the wire."""
    body = text.encode()
    return http_response(status, reason, [
        ("Date", DATE), ("Connection", "close"), ("Content-Length", str(len(body))),
        ("Content-Type", "text/plain; charset=utf-8"), *(extra or []),
        ("Server", "Python/3.11 websockets/12.0"),
    ], body)


BROWSER_ADDRESS_BAR_GET = http_request("GET", "/", [
    ("Host", "localhost:8765"), ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:126.0)"),
    ("Accept", "text/html,application/xhtml+xml"), ("Connection", "keep-alive"),
])
PY_WEBSOCKETS_426 = python_websockets_reject(
    426, "Upgrade Required",
    "Failed to open a WebSocket connection: missing Connection header.\n\n"
    "You cannot access a WebSocket server directly with a browser. You need a WebSocket client.\n",
    [("Upgrade", "websocket")],
)
NGINX_502 = error_response(502, "Bad Gateway", b"<html>\r\n<head><title>502 Bad Gateway</title>"
                           b"</head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n"
                           b"<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
                           [("Server", "nginx"), ("Content-Type", "text/html")])
def nginx_page(status: int, reason: str, detail: str | None = None) -> bytes:
    """An error page of nginx 1.22 (ngx_http_special_response.c): the status line's reason in
    the heading, the cause it names, if any, in the title and a line of its own."""
    title = f"{status} {detail or reason}"
    cause = f"<center>{detail}</center>\r\n" if detail else ""
    body = (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>"
            f"{status} {reason}</h1></center>\r\n{cause}<hr><center>nginx/1.22.1</center>\r\n"
            f"</body>\r\n</html>\r\n").encode()
    return error_response(status, reason, body, [("Server", "nginx/1.22.1"),
                                                 ("Content-Type", "text/html"),
                                                 ("Connection", "close")])


NGINX_PLAIN_HTTP_TO_HTTPS = nginx_page(400, "Bad Request",
                                       "The plain HTTP request was sent to HTTPS port")
NGINX_TOO_LARGE = nginx_page(400, "Bad Request", "Request Header Or Cookie Too Large")
# nginx 1.22's answer to a request line past large_client_header_buffers (8 KiB)
NGINX_414 = nginx_page(414, "Request-URI Too Large")
LONG_TARGET_REQUEST = websocket_request(HOST, "/ws?subscribe=" + "topic," * 2800,
                                        origin=f"https://{HOST}")
NGINX_400 = nginx_page(400, "Bad Request")

HTML_PAGE = error_response(200, "OK", b"<!doctype html><title>Chat</title><h1>Chat</h1>\n",
                           [("Server", "nginx"), ("Content-Type", "text/html")])

# nginx without `proxy_set_header Upgrade/Connection`: the hop-by-hop headers are gone upstream.
STRIPPED_BY_NGINX = ws_request(omit=("Upgrade", "Connection"),
                               extra_headers=[("Connection", "close")])
H2C_OFFER = http_request("GET", "/", [
    ("Host", "localhost:8080"), ("User-Agent", "curl/8.5.0"), ("Accept", "*/*"),
    ("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"),
    ("HTTP2-Settings", CURL_H2_SETTINGS),
])
H2C_SWITCH = http_response(101, "Switching Protocols", [("Connection", "Upgrade"),
                                                        ("Upgrade", "h2c")])
PLAIN_OK = error_response(200, "OK", b"hello\n", [("Content-Type", "text/plain")])
CONNECT_REQUEST = http_request("CONNECT", "example.com:443", [
    ("Host", "example.com:443"), ("User-Agent", "curl/8.5.0"), ("Proxy-Connection", "Keep-Alive"),
])
# python websockets' CONNECT for wss://chat.example.com:8443 (its proxy= support)
CONNECT_8443 = http_request("CONNECT", "chat.example.com:8443", [
    ("Host", "chat.example.com:8443"), ("User-Agent", "Python/3.11 websockets/17.4")])


def squid_page(status: int, reason: str, error: str, system: str = "") -> bytes:
    """One of Squid 5.7's own error pages, shortened (its headers as it sent them, the page's
    body id and, for a failed connection, the system's words)."""
    said = f"<p id=\"sysmsg\">The system returned: <i>{system}</i></p>" if system else ""
    body = (f"<!DOCTYPE html>\n<html><head><title>ERROR</title></head><body id={error}>\n"
            f"<h2>The requested URL could not be retrieved</h2>{said}\n</body></html>\n"
            ).encode()
    number = system[1:system.index(")")] if system else "0"
    return error_response(status, reason, body, [
        ("Server", "squid/5.7"), ("Mime-Version", "1.0"),
        ("Content-Type", "text/html;charset=utf-8"), ("X-Squid-Error", f"{error} {number}"),
        ("Vary", "Accept-Language"), ("Content-Language", "en")])


def h2c_offer(*, connection: str = "Upgrade, HTTP2-Settings", upgrade: str = "h2c",
              settings: list[str] | None = None) -> bytes:
    fields = [("Host", "localhost:8080"), ("Connection", connection), ("Upgrade", upgrade)]
    settings = [CURL_H2_SETTINGS] if settings is None else settings
    fields += [("HTTP2-Settings", value) for value in settings]
    return http_request("GET", "/", fields)


def switched(*steps: Step, request: bytes | None = None, **response: object) -> Script:
    """A WebSocket handshake answered by 101 (valid unless ``response`` options say otherwise)."""
    return exchange(request or ws_request(), websocket_response(**response),  # type: ignore[arg-type]
                    *steps)


def client_frame(payload: str = "hello", **options: object) -> Step:
    return then("client_frame",
                lambda c: c.client_ws_frame(Opcode.TEXT, payload, **options))  # type: ignore[arg-type]


def server_frame(payload: str = "welcome", **options: object) -> Step:
    return then("server_frame",
                lambda c: c.server_ws_frame(Opcode.TEXT, payload, **options))  # type: ignore[arg-type]


def close(side: str, code: int, delay: float = 0.001, reason: str = "") -> Step:
    if side == "client":
        return then("close", lambda c: c.client_ws_close(code, reason, delay=delay))
    return then("close", lambda c: c.server_ws_close(code, reason, delay=delay))


# --- scripts that are not a plain exchange -------------------------------------------------


def syn_refused(conv: Conversation) -> Marks:
    return {"syn": conv.syn_rst()}


def syn_unanswered(retries: int) -> Script:
    def script(conv: Conversation) -> Marks:
        first, *again = conv.syn_only(retries=retries)
        return {"syn": [first], "retransmissions": again}

    return script


def request_then_ack(delay: float) -> Script:
    """The request, ACKed by the server ``delay`` later, when the capture ends."""

    def script(conv: Conversation) -> Marks:
        marks = {"syn": conv.handshake(), "request": conv.client(ws_request())}
        marks["ack"] = conv.server_ack(delay=delay)
        return marks

    return script


def lost_request_segment(conv: Conversation) -> Marks:
    marks = {"syn": conv.handshake(), "request": conv.client(ws_request(), split=[60])}
    marks["response"] = conv.server(websocket_response(), delay=0.002)
    marks["lost"] = marks["request"][:1]
    marks["after_hole"] = marks["request"][1:]
    return marks


def lost_response_segment(conv: Conversation) -> Marks:
    marks = {"syn": conv.handshake(), "request": conv.client(ws_request())}
    marks["response"] = conv.server(websocket_response(), split=[40], delay=0.002)
    marks["lost"] = marks["response"][:1]
    marks["after_hole"] = marks["response"][1:]
    marks["server_fin"] = conv.server_fin(0.010)
    return marks


def lost_exchange_then_upgrade(conv: Conversation) -> Marks:
    """A plain GET and its 200 lost by the capture, then the upgrade and its 101, then both
    close: tshark shows the GET /ws and the 101, and so must we (inconclusive: what the holes
    held, and so the pairing, is a guess)."""
    marks = {"syn": conv.handshake(), "plain": conv.client(http_request("GET", "/", [
        ("Host", HOST)]))}
    marks["ok"] = conv.server(error_response(200, "OK", b"hi"))
    marks["request"] = conv.client(ws_request())
    marks["response"] = conv.server(websocket_response(), delay=0.002)
    marks["close"] = conv.client_ws_close(1000, delay=1) + conv.server_ws_close(1000)
    marks["lost"] = marks["plain"] + marks["ok"]
    marks["server_fin"] = conv.server_fin()
    marks["client_fin"] = conv.client_fin()
    return marks


def lost_frame_after_switch(conv: Conversation) -> Marks:
    marks = switched()(conv)
    marks["frame"] = conv.server_ws_frame(Opcode.TEXT, "x" * 100, split=[50])
    marks["lost"] = marks["frame"][:1]
    marks["after_hole"] = marks["frame"][1:]
    return marks


def response_without_request(conv: Conversation) -> Marks:
    conv.handshake()
    conv.client(ws_request())
    conv.capture_starts_mid_stream()
    return {"response": conv.server(websocket_response(), delay=0.002)}


def capture_starts_before_request(conv: Conversation) -> Marks:
    conv.handshake()
    conv.capture_starts_mid_stream()
    marks = {"request": conv.client(ws_request())}
    marks["response"] = conv.server(websocket_response(), delay=0.002)
    return marks


def early_frame(conv: Conversation) -> Marks:
    """The client sends a frame right behind its request, before the 101 arrives."""
    marks = {"syn": conv.handshake(), "request": conv.client(ws_request())}
    marks["early"] = conv.client_ws_frame(Opcode.TEXT, "too soon")
    marks["response"] = conv.server(websocket_response(), delay=0.002)
    return marks


def resent_request(forged: bool) -> Script:
    """The request, then its bytes sent again at the same sequence numbers: changed (the
    IDS-evasion overlap) or unchanged (an ordinary retransmission)."""

    def script(conv: Conversation) -> Marks:
        request = ws_request()
        marks = {"syn": conv.handshake(), "request": conv.client(request)}
        again = request.replace(b"GET /ws", b"GET /xx") if forged else request
        start = conv.next_seq(True) - len(request)
        marks["resent"] = [conv._emit(True, conv._time(None), TcpFlags.ACK | TcpFlags.PSH,
                                      again, seq=start)]
        marks["response"] = conv.server(websocket_response(), delay=0.002)
        return marks

    return script


def request_sent_again(after: float, answer: str, acked_first: bool = False) -> Script:
    """The request, no acknowledgement, the same bytes again ``after`` seconds later (the
    client's retransmission timeout: the first copy was lost past the capture point), then
    the server's ``answer``: "101" or "fin" 175 ms later. ``acked_first``: the server
    acknowledged the first copy (the re-send was spurious, the server had the request)."""

    def script(conv: Conversation) -> Marks:
        request = ws_request()
        marks = {"syn": conv.handshake(), "request": conv.client(request)}
        if acked_first:
            marks["ack"] = conv.server_ack(delay=0.001)
        start = conv.next_seq(True) - len(request)
        marks["resent"] = [conv._emit(True, conv._time(after), TcpFlags.ACK | TcpFlags.PSH,
                                      request, seq=start)]
        if answer == "101":
            marks["response"] = conv.server(websocket_response(), delay=0.175)
        else:
            marks["server_fin"] = conv.server_fin(0.175)
        return marks

    return script


def response_sent_again(after: float, then: str) -> Script:
    """The request, the 101, no acknowledgement, the 101 again ``after`` seconds later (the
    server's retransmission timeout: the path towards the client lost the first copy), then
    ``then``: "reset" (the client gave up 50 ms later) or "close" (the client got it and
    closes normally)."""

    def script(conv: Conversation) -> Marks:
        marks = {"syn": conv.handshake(), "request": conv.client(ws_request())}
        response = websocket_response()
        marks["response"] = conv.server(response, delay=0.002)
        start = conv.next_seq(False) - len(response)
        marks["resent"] = [conv._emit(False, conv._time(after), TcpFlags.ACK | TcpFlags.PSH,
                                      response, seq=start)]
        if then == "reset":
            marks["client_rst"] = conv.client_rst(0.05)
        else:
            marks["close"] = conv.client_ws_close(1000, delay=0.001)
            marks["server_close"] = conv.server_ws_close(1000, delay=0.001)
        return marks

    return script


def tls_talk(scenario: str, *, take: int | None = None, extra: tuple[tuple[int, bytes], ...] = (),
             end: str = "") -> Script:
    """A recorded real TLS conversation (tests/tls_memory.py), its first ``take`` chunks, then
    ``extra`` chunks and an ``end`` ("client_fin", "server_fin", "server_rst", "" for none;
    several, comma-separated, in that order)."""

    def script(conv: Conversation) -> Marks:
        chunks = recorded(scenario)[0]
        marks = {"syn": conv.handshake()}
        sent = list(chunks if take is None else chunks[:take]) + list(extra)
        for index, (side, data) in enumerate(sent):
            name = "hello" if index == 0 else f"{'client' if side == CLIENT else 'server'}{index}"
            marks[name] = conv.send(side == CLIENT, data, delay=0.002)
        for step in filter(None, end.split(",")):
            marks[step] = getattr(conv, step)(0.002)
        return marks

    return script


def tls_keys(scenario: str, zeroed: bool = False) -> Callable[[], bytes]:
    def keys() -> bytes:
        text = recorded(scenario)[1]
        if zeroed:  # the right client random, the wrong secret
            text = re.sub(rb"(CLIENT_RANDOM [0-9a-f]{64}) [0-9a-f]+", rb"\1 " + b"00" * 48, text)
        return text

    return keys


TLS_CASES: tuple[Case, ...]  # defined after Case


# --- the case table ------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    script: Script
    verdict: Verdict
    primary: str | None  # diagnosis.findings[0].check; None: no finding at all
    present: tuple[str, ...] = ()  # besides the primary
    absent: tuple[str, ...] = ()  # the near misses: ids this case must not report
    evidence: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # id -> mark names
    found: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # id -> text in `found`
    drop: str | None = None  # mark whose segments the capture lost
    keys: Callable[[], bytes] | None = None  # a key log to read the capture with (TLS)

    @property
    def triggered(self) -> set[str]:
        return set(self.present) | ({self.primary} if self.primary else set())


TUNNEL_CHECKS = ("proxy_tunnel_denied", "proxy_tunnel_failed", "proxy_auth_required")
STATUS_CHECKS = ("response_redirect", "response_unauthorized", "response_forbidden",
                 "response_not_found", "response_method_not_allowed",
                 "response_upgrade_required", "response_bad_request", "response_client_error",
                 "response_gateway_error", "response_server_error", "response_ordinary",
                 "upgrade_declined", "response_rate_limited", "response_service_unavailable")


def others(*ids: str) -> tuple[str, ...]:
    """The status checks a response with one of ``ids`` must not also report."""
    return tuple(c for c in STATUS_CHECKS if c not in ids)


CASES: tuple[Case, ...] = (
    # --- successes: the near misses of most rules -------------------------------------------
    Case("websocket: valid handshake, frames both ways",
         switched(client_frame(), server_frame()), SUCCEEDED, None,
         absent=("client_hung_up_after_switch", "server_hung_up_after_switch",
                 "ws_client_frame_unmasked", "ws_server_frame_masked", "early_client_data",
                 "ws_protocol_not_chosen", "ws_closed_normally", "ws_closed_with_error",
                 "switch_without_upgrade", "ws_accept_missing", "ws_accept_mismatch",
                 "ws_host_missing", "ws_method_not_get", "request_http10", "ws_version_missing",
                 "ws_version_not_13", "ws_key_invalid", "upgrade_token_repeated",
                 "connection_without_upgrade", "connection_upgrade_with_others",
                 *STATUS_CHECKS)),
    Case("h2c accepted: 101, server SETTINGS, client preface",
         exchange(H2C_OFFER, H2C_SWITCH + H2_SERVER_SETTINGS,
                  then("preface", lambda c: c.client(H2_PREFACE + H2_EMPTY_SETTINGS))),
         SUCCEEDED, None,
         absent=("h2c_no_client_preface", "h2c_no_server_settings", "upgrade_declined",
                 "h2c_settings_count", "h2c_settings_invalid", "h2c_connection_settings_missing",
                 "h2_token_in_cleartext", "switch_to_unoffered", "switch_not_offered",
                 "h2c_upgraded_request_status")),
    Case("CONNECT answered 200, then TLS through the tunnel",
         exchange(CONNECT_REQUEST, http_response(200, "Connection established"),
                  then("tls", lambda c: c.client(TLS_CLIENT_HELLO_START))),
         SUCCEEDED, "tunnel_carried", absent=("response_unauthorized", "response_ordinary",
                                              "connect_target_invalid"),
         found={"tunnel_carried": ("client: a TLS handshake record",)},
         evidence={"tunnel_carried": ("tls",)}),
    Case("CONNECT answered 200, nothing sent through yet",
         exchange(CONNECT_REQUEST, http_response(200, "Connection established")),
         SUCCEEDED, None, absent=("tunnel_carried", *TUNNEL_CHECKS)),
    # Squid 5.7's refusals of a CONNECT (tests/test_squid_live.py ran the real one)
    Case("Squid refuses a CONNECT to a port outside SSL_ports: 403 ERR_ACCESS_DENIED",
         exchange(CONNECT_8443, squid_page(403, "Forbidden", "ERR_ACCESS_DENIED")),
         FAILED, "proxy_tunnel_denied",
         absent=("response_forbidden", "proxy_tunnel_failed", "tunnel_carried"),
         found={"proxy_tunnel_denied": ("403 Forbidden (Squid: ERR_ACCESS_DENIED); the target's "
                                        "port 8443 is not 443",)},
         evidence={"proxy_tunnel_denied": ("response",)}),
    Case("a proxy's 403 to a CONNECT on 443: its own rules, not the port's",
         exchange(CONNECT_REQUEST, error_response(403, "Forbidden")), FAILED,
         "proxy_tunnel_denied", absent=("response_forbidden",),
         found={"proxy_tunnel_denied": ("403 Forbidden",)}),
    Case("Squid could not reach the CONNECT target: 503 ERR_CONNECT_FAIL",
         exchange(CONNECT_8443, squid_page(503, "Service Unavailable", "ERR_CONNECT_FAIL",
                                           "(111) Connection refused")),
         FAILED, "proxy_tunnel_failed",
         absent=("response_gateway_error", "response_service_unavailable",
                 "proxy_tunnel_denied"),
         found={"proxy_tunnel_failed": ("(Squid: ERR_CONNECT_FAIL, (111) Connection refused)",)}),
    Case("Squid wants credentials for the tunnel: 407 ERR_CACHE_ACCESS_DENIED",
         exchange(CONNECT_8443, squid_page(407, "Proxy Authentication Required",
                                           "ERR_CACHE_ACCESS_DENIED")
                  .replace(b"\r\nVary:", b"\r\nProxy-Authenticate: Basic realm=\"corp\""
                                         b"\r\nVary:")),
         FAILED, "proxy_auth_required",
         absent=("response_unauthorized", "proxy_tunnel_denied"),
         found={"proxy_auth_required": ('(Proxy-Authenticate: Basic realm="corp")',)}),
    # zeek's connect-with-smtp.pcap: a spam relay's "CONNECT host:25 / HTTP/1.0"
    Case("CONNECT with a stray path after the authority",
         exchange(http_request("CONNECT", "mailin.example.de:25 /", [], version="HTTP/1.0"),
                  http_response(200, "Connection established", version="HTTP/1.0"),
                  then("smtp", lambda c: c.server(b"220 mailin.example.de ESMTP\r\n"))),
         SUCCEEDED, "connect_target_invalid", present=("tunnel_carried",),
         evidence={"connect_target_invalid": ("request",)},
         found={"tunnel_carried": ("server: an SMTP greeting",)}),

    # --- capture ------------------------------------------------------------------------------
    Case("a request segment was lost by the capture", lost_request_segment, INCONCLUSIVE,
         "capture_gap_request", drop="lost", evidence={"capture_gap_request": ("after_hole",)}),
    Case("request and response split in segments, nothing lost",
         exchange(ws_request(), websocket_response(), request_split=[60],
                  response_split=[40]),
         SUCCEEDED, None, absent=("capture_gap_request", "capture_gap_response")),
    # the near miss of request_target_too_long: the same 16 KiB request line, accepted by a
    # server with a larger limit, is an attempt like any other
    Case("a request line past 8 KiB, accepted",
         exchange(LONG_TARGET_REQUEST, websocket_response(),
                  request_split=list(range(1400, len(LONG_TARGET_REQUEST), 1400))),
         SUCCEEDED, None, absent=("request_target_too_long", "capture_gap_request")),
    Case("a response segment was lost by the capture", lost_response_segment, INCONCLUSIVE,
         "capture_gap_response", drop="lost",
         absent=("no_response_server_closed", "capture_gap_request"),
         evidence={"capture_gap_response": ("request", "after_hole")}),
    Case("response captured without its request (capture started mid-stream)",
         response_without_request, INCONCLUSIVE, "request_not_captured",
         evidence={"request_not_captured": ("response",)}),
    Case("capture started after the TCP handshake but before the request",
         capture_starts_before_request, SUCCEEDED, None,
         absent=("request_not_captured", "capture_gap_request")),
    Case("capture ends 100 ms after the request", request_then_ack(0.1), INCONCLUSIVE,
         "capture_ended_too_soon", absent=("no_response_capture_ended",),
         evidence={"capture_ended_too_soon": ("request",)},
         found={"capture_ended_too_soon": ("100 ms",)}),
    Case("capture ends at once after a lone SYN", syn_unanswered(0), INCONCLUSIVE,
         "capture_ended_too_soon", absent=("tcp_syn_unanswered",),
         evidence={"capture_ended_too_soon": ("syn",)}),
    Case("a frame after the 101 was lost by the capture", lost_frame_after_switch, SUCCEEDED,
         "capture_gap_after_switch", drop="lost",
         evidence={"capture_gap_after_switch": ("after_hole",)}),
    Case("a frame after the 101 split in two, nothing lost",
         switched(then("frame", lambda c: c.server_ws_frame(Opcode.TEXT, "x" * 100,
                                                            split=[50]))),
         SUCCEEDED, None, absent=("capture_gap_after_switch",)),

    # --- transport ----------------------------------------------------------------------------
    Case("SYN answered by RST (nothing listens)", syn_refused, REFUSED, "tcp_refused",
         evidence={"tcp_refused": ("syn",)}),
    Case("SYN and two retransmissions unanswered", syn_unanswered(2), NO_RESPONSE,
         "tcp_syn_unanswered", absent=("capture_ended_too_soon", "tcp_refused"),
         evidence={"tcp_syn_unanswered": ("syn",)}, found={"tcp_syn_unanswered": ("3 SYN",)}),
    Case("tungstenite: server FIN after the request, no response",
         exchange(ws_request(), None, server_fin(0.003)), NO_RESPONSE,
         "no_response_server_closed", absent=("no_response_client_gave_up",),
         evidence={"no_response_server_closed": ("request", "server_fin")}),
    Case("Node ws: 400 then server FIN",
         exchange(ws_request(version="7"), NODE_WS_BAD_VERSION, server_fin()), FAILED,
         "ws_version_not_13", present=("response_bad_request",),
         absent=("no_response_server_closed", "no_response_server_reset",
                 *others("response_bad_request")),
         # Node ws's body names the version: the server's words join the request's evidence
         evidence={"ws_version_not_13": ("request", "response"),
                   "response_bad_request": ("response",)},
         found={"ws_version_not_13": ('the server said 400 "Missing or invalid '
                                      'Sec-WebSocket-Version header"',)}),
    Case("server RST after the request, no response",
         exchange(ws_request(), None, then("server_rst", lambda c: c.server_rst(0.004))),
         NO_RESPONSE, "no_response_server_reset", absent=("tcp_refused",),
         evidence={"no_response_server_reset": ("request", "server_rst")}),
    Case("nginx 502 then RST", exchange(ws_request(), NGINX_502,
                                        then("server_rst", lambda c: c.server_rst())),
         FAILED, "response_gateway_error",
         absent=("no_response_server_reset", *others("response_gateway_error"))),
    Case("client gave up after 5 s without a response",
         exchange(ws_request(), None, client_fin(5.0)), NO_RESPONSE,
         "no_response_client_gave_up",
         absent=("no_response_server_closed", "no_response_capture_ended",
                 "request_head_incomplete"),
         evidence={"no_response_client_gave_up": ("request", "client_fin")},
         found={"no_response_client_gave_up": ("5.0 s",)}),
    # python websockets' process_request refusing with 503 (sweep30b s4): the origin's own
    # overload, not a gateway's; the same 503 from nginx, or with no Server header, stays
    # a gateway's
    Case("python websockets 503 with Retry-After: the origin is overloaded",
         exchange(ws_request(), error_response(
             503, "Service Unavailable", b"server overloaded, retry later\n",
             [("Server", "Python/3.11 websockets/17.4"), ("Retry-After", "30"),
              ("Content-Type", "text/plain; charset=utf-8"), ("Connection", "close")]),
             server_fin()),
         FAILED, "response_service_unavailable",
         absent=others("response_service_unavailable"),
         found={"response_service_unavailable": ("from python websockets",
                                                 "(Retry-After: 30)")}),
    Case("nginx 503: a gateway",
         exchange(ws_request(), error_response(503, "Service Temporarily Unavailable",
                                               b"<html>503</html>",
                                               [("Server", "nginx/1.22.1")]), server_fin()),
         FAILED, "response_gateway_error", absent=others("response_gateway_error")),
    Case("a 503 without a Server header: a gateway",
         exchange(ws_request(), error_response(503, "Service Unavailable",
                                               headers=[("Retry-After", "5")]), server_fin()),
         FAILED, "response_gateway_error",
         absent=(*others("response_gateway_error"), "proxy_tunnel_failed")),
    Case("418: another 4xx",
         exchange(ws_request(), error_response(418, "I'm a teapot"), server_fin()),
         FAILED, "response_client_error", absent=others("response_client_error")),
    Case("client closes after a 404",
         exchange(ws_request(), error_response(404, "Not Found"), client_fin()), FAILED,
         "response_not_found",
         absent=("no_response_client_gave_up", *others("response_not_found"))),
    Case("client FIN 2 s into a request head that never ended",
         exchange(ws_request()[:-2], None, client_fin(2.0)), FAILED, "request_head_incomplete",
         absent=("no_response_client_gave_up", "connection_without_upgrade", "ws_key_missing"),
         evidence={"request_head_incomplete": ("request", "client_fin")},
         found={"request_head_incomplete": ("client FIN 2000 ms",)}),
    Case("the capture ends inside a request head", exchange(ws_request()[:60]), INCONCLUSIVE,
         "capture_ended_too_soon", absent=("request_head_incomplete",),
         evidence={"capture_ended_too_soon": ("request",)}),
    Case("a lost response and its request, then an upgrade after both holes",
         lost_exchange_then_upgrade, INCONCLUSIVE, "capture_gap_request",
         present=("capture_gap_response",), drop="lost"),
    Case("request unanswered for 3 s until the capture ended", request_then_ack(3.0),
         NO_RESPONSE, "no_response_capture_ended", absent=("capture_ended_too_soon",),
         evidence={"no_response_capture_ended": ("request",)}),

    # --- request ------------------------------------------------------------------------------
    Case("Postman plain GET to actix-web", exchange(POSTMAN_GET, ACTIX_NO_UPGRADE), FAILED,
         "request_without_upgrade", present=("response_bad_request",),
         absent=("upgrade_header_missing", "connection_without_upgrade", "ws_key_missing"),
         evidence={"request_without_upgrade": ("request", "response"),
                   "response_bad_request": ("response",)},
         found={"request_without_upgrade": ("No WebSocket Upgrade header found",)}),
    Case("browser address bar to python websockets (426 Upgrade: websocket)",
         exchange(BROWSER_ADDRESS_BAR_GET, PY_WEBSOCKETS_426), FAILED,
         "request_without_upgrade", present=("response_upgrade_required",),
         absent=("upgrade_required_without_upgrade", "ws_version_missing"),
         found={"response_upgrade_required": ("websocket",)}),
    Case("nginx stripped Upgrade/Connection: ordinary 200 page",
         exchange(STRIPPED_BY_NGINX, HTML_PAGE), FAILED, "upgrade_header_missing",
         present=("response_ordinary",),
         absent=("request_without_upgrade", "upgrade_declined", "ws_key_missing"),
         evidence={"upgrade_header_missing": ("request",)}),
    Case("gorilla 426 (Sec-Websocket-Version: 13) to a request without Upgrade",
         exchange(ws_request(omit=("Upgrade",)), gorilla_error(426, "Upgrade Required")),
         FAILED, "upgrade_header_missing",
         present=("response_upgrade_required", "upgrade_required_without_upgrade"),
         absent=("request_without_upgrade", "connection_without_upgrade"),
         found={"response_upgrade_required": ("13",)}),
    Case("HTTP/1.0 upgrade answered 505",
         exchange(ws_request(http_version="HTTP/1.0"),
                  python_websockets_reject(505, "HTTP Version Not Supported",
                                           "Failed to open a WebSocket connection.\n")),
         FAILED, "request_http10", present=("response_server_error",),
         evidence={"request_http10": ("request",)}),
    # the verdict says what happened (no answer); the primary reason says why (the silent
    # rejection of an HTTP/1.0 request)
    Case("HTTP/1.0 from nginx's default upstream, tungstenite closes",
         exchange(ws_request(http_version="HTTP/1.0"), None, server_fin()), NO_RESPONSE,
         "request_http10", present=("no_response_server_closed",)),
    Case("POST handshake to actix-web (405 Allow: GET)",
         exchange(ws_request(method="POST"), ACTIX_NOT_GET), FAILED, "ws_method_not_get",
         present=("response_method_not_allowed",), absent=others("response_method_not_allowed")),
    Case("GET handshake to a POST-only path (405)",
         exchange(ws_request(), error_response(405, "Method Not Allowed", b"",
                                               [("Allow", "POST")])),
         FAILED, "response_method_not_allowed",
         absent=("ws_method_not_get", *others("response_method_not_allowed"))),
    Case("no Host header: Go net/http 400",
         exchange(ws_request(omit=("Host",)), http_response(400, "Bad Request", [
             ("Content-Type", "text/plain; charset=utf-8"), ("Connection", "close"),
         ], b"400 Bad Request: missing required Host header"), server_fin()),
         FAILED, "ws_host_missing", present=("response_bad_request",)),
    Case("Upgrade: web-socket, aiohttp 400",
         exchange(ws_request(omit=("Upgrade",), extra_headers=[("Upgrade", "web-socket")]),
                  error_response(400, "Bad Request",
                                 b'No WebSocket UPGRADE hdr: web-socket\n Can "Upgrade" only '
                                 b'to "WebSocket".', [("Content-Type", "text/plain")])),
         FAILED, "upgrade_not_websocket", present=("response_bad_request",),
         absent=("upgrade_header_missing",)),
    Case("Upgrade: WebSocket in mixed case",
         switched(request=ws_request(omit=("Upgrade",),
                                     extra_headers=[("Upgrade", "WebSocket")])),
         SUCCEEDED, None, absent=("upgrade_not_websocket", "upgrade_token_repeated")),
    Case("Upgrade: websocket, websocket, tungstenite closes",
         exchange(ws_request(omit=("Upgrade",),
                             extra_headers=[("Upgrade", "websocket, websocket")]),
                  None, server_fin()),
         NO_RESPONSE, "no_response_server_closed", present=("upgrade_token_repeated",),
         absent=("upgrade_not_websocket",),
         evidence={"upgrade_token_repeated": ("request",)}),
    Case("Connection: keep-alive, gorilla 400",
         exchange(ws_request(omit=("Connection",), extra_headers=[("Connection", "keep-alive")]),
                  gorilla_error(400, "Bad Request")),
         FAILED, "connection_without_upgrade", present=("response_bad_request",),
         absent=("connection_upgrade_with_others", "upgrade_header_missing"),
         found={"connection_without_upgrade": ("keep-alive",)}),
    Case("Firefox: Connection: keep-alive, Upgrade, switched",
         switched(request=ws_request(omit=("Connection",),
                                     extra_headers=[("Connection", "keep-alive, Upgrade")])),
         SUCCEEDED, "connection_upgrade_with_others", absent=("connection_without_upgrade",),
         evidence={"connection_upgrade_with_others": ("request",)}),
    Case("Firefox: Connection: keep-alive, Upgrade, strict server 426",
         exchange(ws_request(omit=("Connection",),
                             extra_headers=[("Connection", "keep-alive, Upgrade")]),
                  error_response(426, "Upgrade Required", b"",
                                 [("Upgrade", "websocket"), ("Connection", "Upgrade")])),
         FAILED, "response_upgrade_required", present=("connection_upgrade_with_others",),
         absent=("upgrade_required_without_upgrade", *others("response_upgrade_required"))),
    Case("no Sec-WebSocket-Key, Node ws 400",
         exchange(ws_request(omit=("Sec-WebSocket-Key",)), NODE_WS_BAD_KEY, server_fin()),
         FAILED, "ws_key_missing", present=("response_bad_request",),
         absent=("ws_key_invalid", "ws_accept_mismatch")),
    Case("Sec-WebSocket-Key without its padding, gorilla 400",
         exchange(ws_request(key=DEFAULT_WS_KEY.rstrip("=")), gorilla_error(400, "Bad Request")),
         FAILED, "ws_key_invalid", present=("response_bad_request",),
         absent=("ws_key_missing", "ws_key_repeated")),
    Case("another valid key, its own Accept",
         switched(request=ws_request(key=OTHER_KEY), key=OTHER_KEY), SUCCEEDED, None,
         absent=("ws_key_invalid", "ws_key_missing", "ws_key_repeated", "ws_accept_mismatch")),
    Case("Sec-WebSocket-Key sent twice",
         exchange(ws_request(extra_headers=[("Sec-WebSocket-Key", OTHER_KEY)]),
                  gorilla_error(400, "Bad Request")),
         FAILED, "ws_key_repeated", present=("response_bad_request",),
         absent=("ws_key_invalid",)),
    Case("no Sec-WebSocket-Version, actix 400",
         exchange(ws_request(omit=("Sec-WebSocket-Version",)), ACTIX_NO_VERSION), FAILED,
         "ws_version_missing", present=("response_bad_request",), absent=("ws_version_not_13",)),
    Case("Sec-WebSocket-Version: 13 sent once, valid", switched(), SUCCEEDED, None,
         absent=("ws_version_missing", "ws_version_not_13", "ws_key_repeated",
                 "ws_accept_repeated", "ws_protocol_not_offered", "ws_protocol_repeated",
                 "ws_extension_not_offered", "switch_connection_without_upgrade")),
    Case("version 8 accepted anyway: the request fault does not decide",
         switched(request=ws_request(version="8")), SUCCEEDED, "ws_version_not_13",
         absent=("ws_version_missing",)),
    Case("Upgrade: h2 in cleartext, ignored with 200",
         exchange(h2c_offer(upgrade="h2"), PLAIN_OK), FAILED, "h2_token_in_cleartext",
         present=("upgrade_declined",), found={"h2_token_in_cleartext": ("h2",)}),
    Case("h2c declined with 200 (curl --http2)", exchange(H2C_OFFER, PLAIN_OK), DECLINED,
         "upgrade_declined",
         absent=("h2_token_in_cleartext", "h2c_settings_count", "h2c_settings_invalid",
                 "h2c_connection_settings_missing", "response_ordinary"),
         evidence={"upgrade_declined": ("response",)}),
    Case("h2c without HTTP2-Settings, Traffic Server 400",
         exchange(h2c_offer(connection="Upgrade", settings=[]),
                  error_response(400, "Invalid Upgrade Request")),
         FAILED, "h2c_settings_count", present=("response_bad_request",),
         absent=("h2c_connection_settings_missing", "h2c_settings_invalid")),
    Case("h2c with two HTTP2-Settings",
         exchange(h2c_offer(settings=[CURL_H2_SETTINGS, CURL_H2_SETTINGS]), PLAIN_OK), FAILED,
         "h2c_settings_count", present=("upgrade_declined",)),
    Case("h2c with padded HTTP2-Settings",
         exchange(h2c_offer(settings=["AAMAAABkAAQCAAAAAAIAAAAA=="]), PLAIN_OK), FAILED,
         "h2c_settings_invalid", absent=("h2c_settings_count",)),
    Case("h2c whose Connection lacks HTTP2-Settings",
         exchange(h2c_offer(connection="Upgrade"), PLAIN_OK), FAILED,
         "h2c_connection_settings_missing", absent=("connection_without_upgrade",)),
    Case("client frame before the 101", early_frame, SUCCEEDED, "early_client_data",
         evidence={"early_client_data": ("early",)}),
    Case("client frame right after the 101", switched(client_frame()), SUCCEEDED, None,
         absent=("early_client_data",)),

    # --- response -----------------------------------------------------------------------------
    Case("301 to https",
         exchange(ws_request(), error_response(301, "Moved Permanently", b"",
                                               [("Location", f"https://{HOST}/ws")])),
         FAILED, "response_redirect", absent=others("response_redirect"),
         found={"response_redirect": (f"https://{HOST}/ws",)}),
    Case("Node ws verifyClient refuses: 401", exchange(ws_request(), NODE_WS_UNAUTHORIZED),
         FAILED, "response_unauthorized",
         absent=(*others("response_unauthorized"), "proxy_auth_required")),
    Case("a ws:// GET sent to a proxy that wants credentials: 407",
         exchange(http_request("GET", "http://chat.example.com/ws", [
             ("Host", "chat.example.com"), ("Connection", "Upgrade"), ("Upgrade", "websocket"),
             ("Sec-WebSocket-Version", "13"), ("Sec-WebSocket-Key", DEFAULT_WS_KEY)]),
             error_response(407, "Proxy Authentication Required", b"",
                            [("Proxy-Authenticate", 'Basic realm="proxy"')])),
         FAILED, "proxy_auth_required", absent=others(),
         found={"proxy_auth_required": ('407 Proxy Authentication Required (Proxy-Authenticate: '
                                        'Basic realm="proxy")',)}),
    Case("python websockets refuses the Origin: 403",
         exchange(ws_request(), python_websockets_reject(
             403, "Forbidden",
             "Failed to open a WebSocket connection: invalid Origin header: https://evil.example.\n")),
         FAILED, "response_forbidden", absent=others("response_forbidden")),
    Case("Socket.IO session unknown: 400",
         exchange(ws_request(), error_response(400, "Bad Request",
                                               b'{"code":1,"message":"Session ID unknown"}',
                                               [("Content-Type", "application/json")])),
         FAILED, "engineio_session_unknown", present=("response_bad_request",),
         absent=("request_without_upgrade", "engineio_transport_unknown",
                 *others("response_bad_request")),
         evidence={"engineio_session_unknown": ("response",)},
         found={"engineio_session_unknown": ("Session ID unknown",)}),
    # --- the server's own words name the cause ------------------------------------------------
    Case("python websockets requires a subprotocol: 400 'missing subprotocol'",
         exchange(ws_request(), python_websockets_reject(
             400, "Bad Request", "Failed to open a WebSocket connection: missing subprotocol.\n")),
         FAILED, "ws_protocol_required", present=("response_bad_request",),
         absent=("ws_protocol_unsupported", "ws_protocol_not_chosen"),
         evidence={"ws_protocol_required": ("response",)},
         found={"ws_protocol_required": ('400 "Failed to open a WebSocket connection: missing '
                                         'subprotocol."',)}),
    Case("python websockets knows none of the offered subprotocols",
         exchange(ws_request(protocols=("chat.v2",)), python_websockets_reject(
             400, "Bad Request", "Failed to open a WebSocket connection: invalid subprotocol; "
             "expected one of chat.v1.\n")),
         FAILED, "ws_protocol_unsupported", present=("response_bad_request",),
         absent=("ws_protocol_required",),
         found={"ws_protocol_unsupported": ("expected one of chat.v1",)}),
    # near miss: a 400 whose words name nothing we know
    Case("python websockets 400 for a bad key: the request check names it",
         exchange(ws_request(key="short"), python_websockets_reject(
             400, "Bad Request",
             "Failed to open a WebSocket connection: invalid Sec-WebSocket-Key header: short.\n")),
         FAILED, "ws_key_invalid", present=("response_bad_request",),
         absent=("ws_protocol_required", "ws_protocol_unsupported"),
         found={"ws_key_invalid": ("the server said 400",)}),
    # uvicorn answers 403 with no words when the ASGI app closes before accepting (no route)
    Case("uvicorn (wsproto): bare 403 to a WebSocket path without a route",
         exchange(ws_request(), b"HTTP/1.1 403 \r\ncontent-length: 0\r\n\r\n"), FAILED,
         "ws_rejected_before_accept", present=("response_forbidden",),
         evidence={"ws_rejected_before_accept": ("response",)},
         found={"ws_rejected_before_accept": ("403 (no reason phrase), empty body",)}),
    Case("uvicorn (websockets): 403 Forbidden, empty body, Connection: close",
         exchange(ws_request(), http_response(403, "Forbidden", [
             ("Date", DATE), ("Content-Length", "0"), ("Content-Type", "text/plain"),
             ("Connection", "close")])),
         FAILED, "ws_rejected_before_accept", present=("response_forbidden",)),
    # uvicorn without websockets/wsproto (or --ws none) hands the upgrade to the application
    # as HTTP: Starlette's 404 for a WebSocket-only route, from uvicorn's HTTP protocol (the
    # bytes of sweep30b s12_uvicorn_options.pcap, attempt 1)
    Case("uvicorn without a WebSocket library: 404 from its HTTP protocol",
         exchange(ws_request(), UVICORN_HTTP_404), FAILED, "uvicorn_websocket_unsupported",
         present=("response_not_found",), absent=("ws_rejected_before_accept",),
         evidence={"uvicorn_websocket_unsupported": ("response",)},
         found={"uvicorn_websocket_unsupported": ("404 Not Found with uvicorn's own Server",)}),
    # near misses: the same answer to a plain GET (uvicorn had nothing to upgrade), and to an
    # upgrade whose Connection lacks upgrade (uvicorn would not switch it either way)
    Case("uvicorn's 404 to a plain GET on a WebSocket path",
         exchange(http_request("GET", "/ws", [("Host", HOST)]), UVICORN_HTTP_404), FAILED,
         "request_without_upgrade", absent=("uvicorn_websocket_unsupported",)),
    Case("uvicorn's 404 to an upgrade without Connection: upgrade",
         exchange(ws_request(omit=("Connection",)), UVICORN_HTTP_404), FAILED,
         "connection_without_upgrade", absent=("uvicorn_websocket_unsupported",)),
    # near miss: the same headers with a body are some other server's refusal
    Case("403 with the same headers and a body",
         exchange(ws_request(), http_response(403, "Forbidden", [
             ("Date", DATE), ("Content-Length", "6"), ("Content-Type", "text/plain"),
             ("Connection", "close")], b"denied")),
         FAILED, "response_forbidden", absent=("ws_rejected_before_accept",)),
    Case("nginx: plain HTTP to its TLS port",
         exchange(ws_request(), NGINX_PLAIN_HTTP_TO_HTTPS, server_fin()), FAILED,
         "tls_plain_http_to_tls_port", present=("response_bad_request",),
         absent=("request_headers_too_large",),
         found={"tls_plain_http_to_tls_port": ("plain HTTP request was sent to HTTPS port",)}),
    Case("nginx: its generic 400 page", exchange(ws_request(), NGINX_400, server_fin()), FAILED,
         "response_bad_request", absent=("tls_plain_http_to_tls_port",
                                         "request_headers_too_large")),
    Case("nginx: request header or cookie too large",
         exchange(ws_request(extra_headers=[("Cookie", "c=" + "x" * 9000)]), NGINX_TOO_LARGE,
                  server_fin()),
         FAILED, "request_headers_too_large", present=("response_bad_request",),
         absent=("tls_plain_http_to_tls_port",)),
    # a request line past 8 KiB, in 1,400-byte segments: still an attempt (http/start.py
    # MAX_REQUEST_LINE), refused for its length
    Case("nginx: request line too long (414)",
         exchange(LONG_TARGET_REQUEST, NGINX_414, server_fin(),
                  request_split=list(range(1400, len(LONG_TARGET_REQUEST), 1400))),
         FAILED, "request_target_too_long",
         absent=(*others(), "request_headers_too_large"),
         found={"request_target_too_long": ("414 Request-URI Too Large",)}),
    Case("431 Request Header Fields Too Large (Node http)",
         exchange(ws_request(), http_response(431, "Request Header Fields Too Large",
                                              [("Connection", "close")])),
         FAILED, "request_headers_too_large", absent=others()),
    # a websocket-only client has no polling session to fall back to
    Case("Engine.IO: websocket transport not allowed",
         exchange(websocket_request(HOST, "/socket.io/?EIO=4&transport=websocket"),
                  error_response(400, "Bad Request", b'{"code":0,"message":"Transport unknown"}',
                                 [("Content-Type", "application/json")])),
         FAILED, "engineio_transport_unknown", present=("response_bad_request",),
         absent=("engineio_session_unknown", "engineio_stays_on_polling")),
    # engine.io's abortUpgrade: plain text; the client keeps polling with its sid
    Case("Engine.IO: the upgrade of a polling session reaches another node",
         exchange(websocket_request(HOST, "/socket.io/?EIO=4&transport=websocket&sid=Matv0a"),
                  http_response(400, "Bad Request", [("content-type", "text/html"),
                                                     ("content-length", "18")],
                                b"Session ID unknown")),
         FAILED, "engineio_session_unknown",
         present=("response_bad_request", "engineio_stays_on_polling"),
         evidence={"engineio_stays_on_polling": ("response",)}),
    # engine.io's abortUpgrade for a request its allowRequest refused: Node ws's shape in its
    # own spelling ("Content-type"), the application's message as body (the bytes of
    # sweep30b s6_socketio.pcap, attempt 4)
    Case("Engine.IO: allowRequest refused the upgrade",
         exchange(websocket_request(HOST, "/socket.io/?EIO=4&transport=websocket"),
                  ENGINEIO_REFUSED, server_fin()),
         FAILED, "engineio_request_refused", present=("response_bad_request",),
         absent=("engineio_stays_on_polling", "engineio_transport_unknown",
                 *others("response_bad_request")),
         evidence={"engineio_request_refused": ("response",)},
         found={"engineio_request_refused": ('400 Bad Request, body "forbidden origin"',)}),
    # the near misses: Node ws's own abortHandshake (its spelling) with an application's
    # message on the same path, and engine.io's own message for a client of another version
    Case("Node ws: verifyClient's 400 on a Socket.IO path",
         exchange(websocket_request(HOST, "/socket.io/?EIO=4&transport=websocket"),
                  node_ws_abort(400, "Bad Request", "forbidden origin"), server_fin()),
         FAILED, "response_bad_request", absent=("engineio_request_refused",)),
    Case("Engine.IO: unsupported protocol version",
         exchange(websocket_request(HOST, "/socket.io/?EIO=3&transport=websocket"),
                  ENGINEIO_REFUSED.replace(b"16\r\n\r\nforbidden origin",
                                           b"28\r\n\r\nUnsupported protocol version"),
                  server_fin()),
         FAILED, "response_bad_request", absent=("engineio_request_refused",)),
    Case("429 Too Many Requests",
         exchange(ws_request(), error_response(429, "Too Many Requests", b"",
                                               [("Retry-After", "30")])),
         FAILED, "response_rate_limited", absent=others("response_rate_limited"),
         found={"response_rate_limited": ("429 Too Many Requests (Retry-After: 30)",)}),
    Case("python websockets 500",
         exchange(ws_request(), python_websockets_reject(
             500, "Internal Server Error",
             "Failed to open a WebSocket connection.\nSee server log for more information.\n")),
         FAILED, "response_server_error", absent=others("response_server_error")),
    Case("WebSocket handshake answered by an ordinary 200 page",
         exchange(ws_request(), HTML_PAGE), FAILED, "response_ordinary",
         absent=("upgrade_header_missing", *others("response_ordinary"))),
    Case("426 without Upgrade", exchange(ws_request(), error_response(426, "Upgrade Required")),
         FAILED, "response_upgrade_required", present=("upgrade_required_without_upgrade",)),
    Case("101 to a request that offered nothing",
         exchange(http_request("GET", "/events", [("Host", HOST)]),
                  http_response(101, "Switching Protocols", [("Upgrade", "foo"),
                                                             ("Connection", "Upgrade")])),
         FAILED, "switch_not_offered", absent=("switch_to_unoffered",),
         evidence={"switch_not_offered": ("request", "response")}),
    Case("plain GET answered by a WebSocket 101",
         exchange(http_request("GET", "/ws", [("Host", HOST)]), websocket_response()), FAILED,
         "switch_not_offered", present=("request_without_upgrade",),
         absent=("ws_accept_mismatch",)),
    Case("101 without Upgrade", switched(omit=("Upgrade",)), FAILED, "switch_without_upgrade",
         absent=("switch_to_unoffered", "switch_not_offered"),
         evidence={"switch_without_upgrade": ("response",)}),
    Case("101 with Upgrade: WebSocket in another case",
         switched(omit=("Upgrade",), extra_headers=[("Upgrade", "WebSocket")]), SUCCEEDED,
         None, absent=("switch_without_upgrade", "switch_to_unoffered")),
    Case("h2c offered, 101 to websocket",
         exchange(H2C_OFFER, websocket_response()), FAILED, "switch_to_unoffered",
         absent=("switch_not_offered",)),
    Case("h2c offered, 101 Upgrade: H2C in capitals",
         exchange(H2C_OFFER, http_response(101, "Switching Protocols",
                                           [("Connection", "Upgrade"), ("Upgrade", "H2C")])),
         SUCCEEDED, None, absent=("switch_to_unoffered",)),
    Case("Kong: 101 with Connection: keep-alive, client hangs up",
         switched(client_fin(), omit=("Connection",),
                  extra_headers=[("Connection", "keep-alive")]),
         FAILED, "switch_connection_without_upgrade", present=("client_hung_up_after_switch",),
         evidence={"switch_connection_without_upgrade": ("response", "client_fin")},
         found={"switch_connection_without_upgrade": ("keep-alive; then client FIN",)}),
    Case("101 with Connection: upgrade in lower case",
         switched(omit=("Connection",), extra_headers=[("Connection", "upgrade")]), SUCCEEDED,
         None, absent=("switch_connection_without_upgrade",)),
    Case("IIS without the WebSocket feature: 101 without Accept",
         switched(client_fin(), omit=("Sec-WebSocket-Accept",),
                  extra_headers=[("Server", "Microsoft-IIS/10.0")]),
         FAILED, "ws_accept_missing", present=("client_hung_up_after_switch",),
         absent=("ws_accept_mismatch",)),
    Case("proxy re-keyed the request: wrong Accept, client FIN",
         switched(client_fin(), accept=websocket_accept(OTHER_KEY)), FAILED, "ws_accept_mismatch",
         present=("client_hung_up_after_switch",), absent=("ws_accept_missing",),
         evidence={"ws_accept_mismatch": ("request", "response", "client_fin"),
                   "client_hung_up_after_switch": ("response", "client_fin")}),
    Case("key with surrounding spaces: Accept from the trimmed key",
         switched(request=ws_request(omit=("Sec-WebSocket-Key",),
                                     extra_headers=[("Sec-WebSocket-Key",
                                                     f"  {DEFAULT_WS_KEY} ")])),
         SUCCEEDED, None, absent=("ws_accept_mismatch", "ws_key_invalid")),
    Case("Sec-WebSocket-Accept sent twice (app and proxy)",
         switched(extra_headers=[("Sec-WebSocket-Accept", websocket_accept(DEFAULT_WS_KEY))]),
         FAILED, "ws_accept_repeated", absent=("ws_accept_mismatch",)),
    Case("unrequested subprotocol, client hangs up",
         switched(client_fin(), protocol="chat"), FAILED, "ws_protocol_not_offered",
         present=("client_hung_up_after_switch",), absent=("ws_protocol_not_chosen",),
         found={"ws_protocol_not_offered": ("chat",)}),
    Case("requested subprotocol chosen",
         switched(request=ws_request(protocols=("chat", "superchat")), protocol="chat"),
         SUCCEEDED, None,
         absent=("ws_protocol_not_offered", "ws_protocol_repeated", "ws_protocol_not_chosen")),
    Case("two subprotocols chosen",
         switched(request=ws_request(protocols=("chat", "superchat")),
                  protocol="chat, superchat"),
         FAILED, "ws_protocol_repeated", absent=("ws_protocol_not_offered",)),
    Case("subprotocol offered, none chosen, python websockets client goes on",
         switched(client_frame(), request=ws_request(protocols=("graphql-ws",))), SUCCEEDED,
         "ws_protocol_not_chosen", absent=("client_hung_up_after_switch",)),
    # cause before symptom: the client hung up *because* no subprotocol was chosen
    Case("subprotocol offered, none chosen, Chrome hangs up",
         switched(client_fin(0.003), request=ws_request(protocols=("graphql-ws",))), FAILED,
         "ws_protocol_not_chosen", present=("client_hung_up_after_switch",),
         evidence={"ws_protocol_not_chosen": ("response", "client_fin")},
         found={"ws_protocol_not_chosen": ("none; then client FIN 3 ms after the switch",)}),
    Case("subprotocol offered, none chosen, the client resets",
         switched(then("client_rst", lambda c: c.client_rst(0.002)),
                  request=ws_request(protocols=("chat.v2",))), FAILED,
         "ws_protocol_not_chosen", present=("client_hung_up_after_switch",),
         found={"ws_protocol_not_chosen": ("RST 2 ms after",)}),
    # the server answered the client's hang-up with a Close (Tomcat 1002, Jetty 1001:
    # captures/tomcat10_websocket.pcap, jetty9_websocket.pcap): still the client's rejection
    Case("subprotocol offered, none chosen, the client hangs up, the server answers Close",
         switched(client_fin(0.010), close("server", 1002, 0.007),
                  request=ws_request(protocols=("chat.v2",))), FAILED,
         "ws_protocol_not_chosen", present=("client_hung_up_after_switch",),
         absent=("ws_closed_with_error",),
         found={"client_hung_up_after_switch": ("FIN 10 ms", "server sent Close 1002")}),
    # near miss: the server's Close came first, so the server ended it
    Case("subprotocol offered, none chosen, the server closes 1002, then the client FIN",
         switched(close("server", 1002, 0.003), client_fin(0.007),
                  request=ws_request(protocols=("chat.v2",))), ABORTED,
         "ws_closed_with_error", present=("ws_protocol_not_chosen",),
         absent=("client_hung_up_after_switch",)),
    # near misses: the server hung up (it did not react to its own answer), or the client
    # left long after the switch
    Case("subprotocol offered, none chosen, the server hangs up",
         switched(server_fin(0.002), request=ws_request(protocols=("graphql-ws",))), ABORTED,
         "server_hung_up_after_switch", present=("ws_protocol_not_chosen",)),
    Case("subprotocol offered, none chosen, the client leaves after 5 s",
         switched(client_fin(5.0), request=ws_request(protocols=("graphql-ws",))), SUCCEEDED,
         "ws_protocol_not_chosen", absent=("client_hung_up_after_switch",)),
    Case("unrequested extension, then the client hangs up",
         switched(client_fin(), extensions="x-webkit-deflate-frame"), FAILED,
         "ws_extension_not_offered", present=("client_hung_up_after_switch",),
         found={"ws_extension_not_offered": ("then client FIN",)}),
    Case("unrequested permessage-deflate",
         switched(extensions="permessage-deflate"), FAILED, "ws_extension_not_offered",
         found={"ws_extension_not_offered": ("permessage-deflate",)}),
    Case("requested permessage-deflate, compressed frame",
         switched(server_frame(rsv=4), request=ws_request(
             extensions=("permessage-deflate; client_max_window_bits",)),
             extensions="permessage-deflate; client_max_window_bits=12"),
         SUCCEEDED, None, absent=("ws_extension_not_offered", "ws_rsv_without_extension",
                                  "ws_deflate_params_invalid")),
    Case("permessage-deflate answered with client_max_window_bits the client did not offer",
         switched(request=ws_request(extensions=("permessage-deflate",)),
                  extensions="permessage-deflate; client_max_window_bits=10"),
         FAILED, "ws_deflate_params_invalid", absent=("ws_extension_not_offered",),
         found={"ws_deflate_params_invalid": ("client_max_window_bits",)}),
    Case("permessage-deflate answered with server_max_window_bits=16",
         switched(request=ws_request(extensions=("permessage-deflate",)),
                  extensions="permessage-deflate; server_max_window_bits=16"),
         FAILED, "ws_deflate_params_invalid",
         found={"ws_deflate_params_invalid": ("not 8-15",)}),

    # --- after the switch ---------------------------------------------------------------------
    Case("client FIN 1 ms after a valid 101", switched(client_fin()), ABORTED,
         "client_hung_up_after_switch", absent=("server_hung_up_after_switch",),
         evidence={"client_hung_up_after_switch": ("response", "client_fin")}),
    Case("client FIN 5 s after a quiet 101", switched(client_fin(5.0)), SUCCEEDED, None,
         absent=("client_hung_up_after_switch",)),
    Case("server FIN 2 ms after a valid 101", switched(server_fin(0.002)), ABORTED,
         "server_hung_up_after_switch", absent=("client_hung_up_after_switch",),
         evidence={"server_hung_up_after_switch": ("response", "server_fin")}),
    # frames, then an end without a Close frame within the window: an abnormal closure in the
    # first moments (the life's rules, checks/life.py, judge one after them: `dropped`)
    Case("server sends a frame, then FIN", switched(server_frame(), server_fin()), ABORTED,
         "ended_without_close_after_switch", absent=("server_hung_up_after_switch",),
         evidence={"ended_without_close_after_switch":
                   ("response", "server_frame", "server_fin")},
         found={"ended_without_close_after_switch": ("server sent a FIN", "after the last frame",
                                                     "without a Close frame")}),
    Case("frames both ways, then a client RST", switched(
        client_frame(), server_frame(), then("client_rst", lambda c: c.client_rst(0.5))),
         ABORTED, "ended_without_close_after_switch", absent=("client_hung_up_after_switch",),
         evidence={"ended_without_close_after_switch":
                   ("response", "server_frame", "client_rst")},
         found={"ended_without_close_after_switch": ("client sent a RST", "500 ms after")}),
    Case("frames, then FIN after the observation window", switched(
        client_frame(), server_frame(), server_fin(5.0)), SUCCEEDED, None,
         absent=("ended_without_close_after_switch",)),
    Case("frames, then Close 1000, then FIN", switched(
        client_frame(), close("server", 1000, 0.2), server_fin()), SUCCEEDED,
         "ws_closed_normally", absent=("ended_without_close_after_switch",)),
    Case("server Close 1008 3 ms after the 101", switched(close("server", 1008, 0.003)),
         ABORTED, "ws_closed_with_error", absent=("ws_closed_normally", "ws_close_code_invalid"),
         evidence={"ws_closed_with_error": ("close",)},
         found={"ws_closed_with_error": ("1008", "3 ms")}),
    Case("client Close 1000 soon after the 101", switched(close("client", 1000, 0.010)),
         SUCCEEDED, "ws_closed_normally", absent=("ws_closed_with_error",),
         evidence={"ws_closed_normally": ("close",)}),
    Case("server Close 1008 after the observation window",
         switched(close("server", 1008, 5.0)), SUCCEEDED, None,
         absent=("ws_closed_with_error",)),
    Case("server Close 1006 (never sent on the wire)", switched(close("server", 1006)), ABORTED,
         "ws_closed_with_error", present=("ws_close_code_invalid",),
         evidence={"ws_close_code_invalid": ("close",)}),
    # zeek's oversized-close-frame.pcapng: a Close with a 127-byte payload
    Case("server Close 1000 with a 125-byte reason (127-byte payload)",
         switched(client_frame(), close("server", 1000, 1.0, reason="x" * 125)), SUCCEEDED,
         "ws_control_frame_invalid", absent=("ws_closed_with_error", "ws_opcode_reserved"),
         evidence={"ws_control_frame_invalid": ("close",)}),
    Case("server frame with reserved opcode 0x3, client closes 1002",
         switched(then("odd", lambda c: c.server_ws_frame(3, b"?")), close("client", 1002)),
         ABORTED, "ws_opcode_reserved", present=("ws_closed_with_error",),
         evidence={"ws_opcode_reserved": ("odd", "close")},
         found={"ws_opcode_reserved": ("then client sent Close 1002",)}),
    # RFC 6455 §5.2's length encoding: Chromium's parser fails the connection (1002)
    Case("server frame of 7 bytes in the 16-bit length form, the client closes 1002",
         switched(server_frame(length_form=16), close("client", 1002)), ABORTED,
         "ws_frame_length_not_minimal", present=("ws_closed_with_error",),
         evidence={"ws_frame_length_not_minimal": ("server_frame", "close")},
         found={"ws_frame_length_not_minimal": ("server frame of 7 bytes with a 16-bit length",
                                                "then client sent Close 1002")}),
    Case("client frames of 5 bytes in the 64-bit length form, said once",
         switched(then("long", lambda c: c.client_ws_frame(Opcode.TEXT, "hello", length_form=64)),
                  then("again", lambda c: c.client_ws_frame(Opcode.TEXT, "hi", length_form=64))),
         SUCCEEDED, "ws_frame_length_not_minimal",
         evidence={"ws_frame_length_not_minimal": ("long",)},
         found={"ws_frame_length_not_minimal": ("client frame of 5 bytes with a 64-bit",)}),
    Case("server frame whose 64-bit length has its top bit set",
         switched(then("huge", lambda c: c.server(b"\x82\x7f" + b"\xff" * 8 + b"x" * 200))),
         SUCCEEDED, "ws_frame_length_not_minimal",
         found={"ws_frame_length_not_minimal": ("64-bit form with its top bit set",)}),
    # RFC 6455 §8.1: text that is not UTF-8 (browsers: "Could not decode a text frame as UTF-8.")
    Case("server text frame of Latin-1 text, the client closes 1007",
         switched(server_frame(b"caf\xe9 cr\xe8me"), close("client", 1007)), ABORTED,
         "ws_text_not_utf8", present=("ws_closed_with_error",),
         evidence={"ws_text_not_utf8": ("server_frame", "close")},
         found={"ws_text_not_utf8": ("server text frame of 10 bytes: invalid continuation byte "
                                     "at byte 3", "then client sent Close 1007")}),
    Case("client text frames of binary bytes, said once",
         switched(then("bytes", lambda c: c.client_ws_frame(Opcode.TEXT, b"\x00\xff\xfe")),
                  then("more", lambda c: c.client_ws_frame(Opcode.TEXT, b"\xff"))),
         SUCCEEDED, "ws_text_not_utf8", evidence={"ws_text_not_utf8": ("bytes",)},
         found={"ws_text_not_utf8": ("client text frame of 3 bytes: invalid start byte",)}),
    Case("server Close 1000 whose reason is not UTF-8",
         switched(then("close", lambda c: c.server_ws_close(1000, b"bye \xff"))), SUCCEEDED,
         "ws_close_reason_not_utf8", present=("ws_closed_normally",),
         absent=("ws_text_not_utf8",),
         found={"ws_close_reason_not_utf8": ("server Close reason: invalid start byte at "
                                             "byte 6",)}),
    # near misses: UTF-8 of several bytes a character, one the kept 125 bytes cut, binary
    # bytes in a binary frame, a compressed text frame (its bytes are not the text)
    Case("UTF-8 text, a long one cut inside a character, binary bytes, compressed text",
         switched(server_frame("héllo €"), client_frame("x" * 124 + "€" * 10),
                  then("binary", lambda c: c.server_ws_frame(Opcode.BINARY, b"\xff\xfe")),
                  server_frame(b"\xf2\x48\xcd", rsv=4),
                  request=ws_request(extensions=("permessage-deflate",)),
                  extensions="permessage-deflate"),
         SUCCEEDED, None, absent=("ws_text_not_utf8", "ws_rsv_without_extension")),
    Case("server Close 1000 with a UTF-8 reason of several bytes a character",
         switched(close("server", 1000, reason="à bientôt")), SUCCEEDED, "ws_closed_normally",
         absent=("ws_close_reason_not_utf8",)),
    # near misses: each form used where it is the fewest bytes
    Case("frames of 126 and 65,536 bytes in the 16- and 64-bit forms",
         switched(server_frame("x" * 126), client_frame("y" * 65536, max_segment=1400)),
         SUCCEEDED, None,
         absent=("ws_frame_length_not_minimal",)),
    Case("server Ping, the client sends data but no Pong",
         switched(then("ping", lambda c: c.server_ws_frame(Opcode.PING, "hb")),
                  client_frame(delay=0.5)),
         SUCCEEDED, "ws_ping_unanswered", evidence={"ws_ping_unanswered": ("ping",)},
         found={"ws_ping_unanswered": ("server Ping; the client sent 1 frame(s) after it",)}),
    Case("client Ping, the server silent for 1.5 s",
         switched(then("ping", lambda c: c.client_ws_frame(Opcode.PING, "hb")),
                  then("ack", lambda c: c.server_ack(delay=1.5))),
         SUCCEEDED, "ws_ping_unanswered",
         found={"ws_ping_unanswered": ("nothing from the server in 1500 ms",)}),
    # near misses: answered; or the capture ends before a Pong could be expected
    Case("server Ping answered by a Pong",
         switched(then("ping", lambda c: c.server_ws_frame(Opcode.PING, "hb")),
                  then("pong", lambda c: c.client_ws_frame(Opcode.PONG, "hb")),
                  client_frame(delay=0.5)),
         SUCCEEDED, None, absent=("ws_ping_unanswered",)),
    Case("server Ping just before the capture ends",
         switched(then("ping", lambda c: c.server_ws_frame(Opcode.PING, "hb"))),
         SUCCEEDED, None, absent=("ws_ping_unanswered",)),
    # keepalive timeouts within the window: the pinging side closes, the other said nothing
    Case("server Ping, client silent, server FIN 0.5 s later (aiohttp's heartbeat)",
         switched(then("ping", lambda c: c.server_ws_frame(Opcode.PING, b"", delay=0.2)),
                  then("fin", lambda c: c.server_fin(0.5)), client_fin()),
         ABORTED, "keepalive_timeout_after_switch",
         evidence={"keepalive_timeout_after_switch": ("ping", "fin")},
         absent=("ws_ping_unanswered",),
         found={"keepalive_timeout_after_switch": (
             "server pinged 200 ms after the switch; nothing from the client for 500 ms; "
             "then the server sent a FIN",)}),
    Case("server Ping, client silent, server Close 1000 'ping timed out' 1 s later (tornado)",
         switched(then("ping", lambda c: c.server_ws_frame(Opcode.PING, b"", delay=0.2)),
                  close("server", 1000, 1.0, "ping timed out")),
         ABORTED, "keepalive_timeout_after_switch",
         evidence={"keepalive_timeout_after_switch": ("ping", "close")},
         found={"keepalive_timeout_after_switch": ("Close 1000 ('ping timed out')",)}),
    Case("Engine.IO 4: server text '2', client silent, server Close 0.5 s later (Socket.IO)",
         switched(then("ping", lambda c: c.server_ws_frame(Opcode.TEXT, "2", delay=0.2)),
                  close("server", 1000, 0.5),
                  request=websocket_request(HOST, "/socket.io/?EIO=4&transport=websocket")),
         ABORTED, "keepalive_timeout_after_switch",
         evidence={"keepalive_timeout_after_switch": ("ping", "close")}),
    # near misses: answered by a Pong; a text "2" outside Engine.IO; a close at once
    Case("server Ping answered by a Pong, then server Close 1000",
         switched(then("ping", lambda c: c.server_ws_frame(Opcode.PING, b"", delay=0.2)),
                  then("pong", lambda c: c.client_ws_frame(Opcode.PONG, b"", delay=0.01)),
                  close("server", 1000, 1.0)),
         SUCCEEDED, "ws_closed_normally", absent=("keepalive_timeout_after_switch",)),
    Case("server text '2' on a plain WebSocket, client silent, server Close 1000",
         switched(then("ping", lambda c: c.server_ws_frame(Opcode.TEXT, "2", delay=0.2)),
                  close("server", 1000, 0.5)),
         SUCCEEDED, "ws_closed_normally", absent=("keepalive_timeout_after_switch",)),
    Case("client Ping, a quiet server, client Close 1000 without a reason 1 s later (wstunnel)",
         switched(then("ping", lambda c: c.client_ws_frame(Opcode.PING, b"abcd", delay=0.2)),
                  close("client", 1000, 1.0)),
         SUCCEEDED, "ws_ping_unanswered", absent=("keepalive_timeout_after_switch",)),
    Case("server Ping then server Close 10 ms later",
         switched(then("ping", lambda c: c.server_ws_frame(Opcode.PING, b"", delay=0.2)),
                  close("server", 1000, 0.01)),
         SUCCEEDED, "ws_closed_normally", absent=("keepalive_timeout_after_switch",)),
    Case("server Close 1011", switched(close("server", 1011, reason="internal error")),
         ABORTED, "ws_closed_with_error",
         absent=("ws_close_code_invalid", "ws_control_frame_invalid", "ws_opcode_reserved"),
         found={"ws_closed_with_error": ("1011", "internal error")}),
    Case("unmasked client frame, server closes 1002",
         switched(client_frame(mask=False), close("server", 1002)), ABORTED,
         "ws_client_frame_unmasked", present=("ws_closed_with_error",),
         absent=("ws_server_frame_masked",),
         evidence={"ws_client_frame_unmasked": ("client_frame", "close")}),
    # near miss: the side that broke the rule is the one that closed, so it is no cause
    Case("unmasked client frame, the client itself closes 1002",
         switched(client_frame(mask=False), close("client", 1002)), ABORTED,
         "ws_closed_with_error", present=("ws_client_frame_unmasked",)),
    Case("unmasked client frame, then the server hangs up",
         switched(client_frame(mask=False), server_fin(0.002)), ABORTED,
         "ws_client_frame_unmasked", present=("server_hung_up_after_switch",),
         found={"ws_client_frame_unmasked": ("then server FIN",)}),
    Case("masked server frame, client closes 1002",
         switched(server_frame(mask=True), close("client", 1002)), ABORTED,
         "ws_server_frame_masked", present=("ws_closed_with_error",),
         absent=("ws_client_frame_unmasked",),
         evidence={"ws_server_frame_masked": ("server_frame", "close")}),
    Case("RSV1 without permessage-deflate, client closes 1002",
         switched(server_frame(rsv=4), close("client", 1002)), ABORTED,
         "ws_rsv_without_extension", present=("ws_closed_with_error",),
         evidence={"ws_rsv_without_extension": ("server_frame", "close")}),
    Case("h2c: client speaks HTTP/1.1 after the 101",
         exchange(H2C_OFFER, H2C_SWITCH + H2_SERVER_SETTINGS,
                  then("client_data", lambda c: c.client(b"GET /next HTTP/1.1\r\n\r\n"))),
         ABORTED, "h2c_no_client_preface", absent=("h2c_no_server_settings",),
         evidence={"h2c_no_client_preface": ("client_data",)}),
    Case("request re-sent with different bytes (overlap conflict)", resent_request(True),
         SUCCEEDED, "tcp_overlap_conflict", evidence={"tcp_overlap_conflict": ("resent",)},
         found={"tcp_overlap_conflict": ("client offset 5",)}),
    Case("request re-sent unchanged (ordinary retransmission)", resent_request(False),
         SUCCEEDED, None, absent=("tcp_overlap_conflict",)),
    Case("request lost past the capture point, sent again 1 s later, then the 101",
         request_sent_again(1.0, "101"), SUCCEEDED, "request_resent",
         evidence={"request_resent": ("request", "resent")},
         found={"request_resent": ("again 1 time (frame 5)", "1000 ms after the first copy")}),
    Case("request sent again 3 s later, then the server's FIN: timed from both copies",
         request_sent_again(3.0, "fin"), NO_RESPONSE, "no_response_server_closed",
         present=("request_resent",),
         found={"no_response_server_closed": ("server FIN 3175 ms after the request, 175 ms "
                                              "after its last copy (frame 5)",)}),
    Case("the same request captured twice 10 ms apart (not a retransmission timeout)",
         request_sent_again(0.01, "101"), SUCCEEDED, None, absent=("request_resent",)),
    Case("request sent again after the server acknowledged it (a spurious re-send)",
         request_sent_again(1.0, "101", acked_first=True), SUCCEEDED, None,
         absent=("request_resent",)),
    Case("101 lost towards the client, sent again 400 ms later, then the client's reset",
         response_sent_again(0.4, "reset"), ABORTED, "client_hung_up_after_switch",
         present=("response_resent",),
         evidence={"response_resent": ("response", "resent")},
         found={"response_resent": ("again 1 time (frame 6)", "400 ms after the first copy")}),
    Case("101 sent again 400 ms later, then a normal close", response_sent_again(0.4, "close"),
         SUCCEEDED, "response_resent", absent=("request_resent",)),
    Case("101 captured twice 5 ms apart (not a retransmission timeout)",
         response_sent_again(0.005, "close"), SUCCEEDED, "ws_closed_normally",
         absent=("response_resent",)),
    Case("101 carrying a body (Content-Length and bytes after the head)",
         exchange(ws_request(), websocket_response().replace(
             b"\r\n\r\n", b"\r\nContent-Length: 13\r\n\r\n") + b"Hello, world!"),
         SUCCEEDED, "switch_with_body", evidence={"switch_with_body": ("response",)},
         found={"switch_with_body": ("Content-Length: 13",)}),
    Case("101 without Content-Length (no body)", switched(), SUCCEEDED, None,
         absent=("switch_with_body",)),
    Case("h2c: server's first frame is HEADERS",
         exchange(H2C_OFFER, H2C_SWITCH + H2_HEADERS_FRAME,
                  then("preface", lambda c: c.client(H2_PREFACE + H2_EMPTY_SETTINGS))),
         ABORTED, "h2c_no_server_settings", absent=("h2c_no_client_preface",),
         evidence={"h2c_no_server_settings": ("response",)}),
)

def _gave_up_before_the_flight(conv: Conversation) -> Marks:
    """A ClientHello, the client's FIN, and only then the server's flight (a slow server:
    curl -m 1 and Node's handshake timeout did this in the sweep of the twenty-ninth
    session), then the server's FIN."""
    chunks = recorded("untrusted13")[0]
    marks = {"syn": conv.handshake(), "hello": conv.send(True, chunks[0][1], delay=0.002)}
    marks["client_fin"] = conv.client_fin(1.0)
    marks["server1"] = conv.send(False, chunks[1][1], delay=1.5)
    marks["server_fin"] = conv.server_fin(0.002)
    return marks


def _hello_sent_again(after: float) -> Script:
    """A ClientHello, no acknowledgement, the same bytes again ``after`` seconds later (the
    path lost the first copy past the capture point), then the client gives up 1 s after
    the copy (its FIN)."""

    def script(conv: Conversation) -> Marks:
        hello = recorded("untrusted13")[0][0][1]
        marks = {"syn": conv.handshake(), "hello": conv.send(True, hello, delay=0.002)}
        start = conv.next_seq(True) - len(hello)
        marks["resent"] = [conv._emit(True, conv._time(after), TcpFlags.ACK | TcpFlags.PSH,
                                      hello, seq=start)]
        marks["client_fin"] = conv.client_fin(1.0)
        return marks

    return script


# A TLS 1.3 record as an encrypted alert looks without keys: application data, 2 bytes of
# content, the content type and a 16-byte tag (RFC 8446 §5.2)
ENCRYPTED_ALERT = bytes((23, 3, 3, 0, 19)) + bytes(range(19))

TLS_CASES = (
    Case("TLS: the client gives up before the server's flight comes",
         _gave_up_before_the_flight, NO_RESPONSE, "tls_client_gave_up",
         absent=("tls_certificate_rejected", "tls_no_server_hello"),
         evidence={"tls_client_gave_up": ("hello", "client_fin", "server1")},
         found={"tls_client_gave_up": ("client gave up after 1.0 s", "came after")}),
    Case("TLS: the ClientHello sent again 300 ms later, then the client gives up",
         _hello_sent_again(0.3), NO_RESPONSE, "tls_client_gave_up",
         present=("tls_client_hello_resent",),
         evidence={"tls_client_hello_resent": ("hello", "resent")},
         found={"tls_client_hello_resent": ("again 1 time (frame 5)",
                                            "300 ms after the first copy"),
                "tls_client_gave_up": ("client gave up after 1.3 s, 1000 ms after its last "
                                       "copy (frame 5)",)}),
    Case("TLS: the same ClientHello captured twice 10 ms apart (no retransmission timeout)",
         _hello_sent_again(0.01), NO_RESPONSE, "tls_client_gave_up",
         absent=("tls_client_hello_resent",)),
    Case("TLS 1.3: the client's encrypted alert, then the server's FIN before the client's",
         tls_talk("untrusted13", take=2, extra=((CLIENT, ENCRYPTED_ALERT),),
                  end="server_fin,client_fin"), FAILED, "tls_certificate_rejected",
         absent=("tls_server_closed_during_handshake",),
         found={"tls_certificate_rejected": ("after an encrypted alert",)}),
    Case("wss: TLS 1.2 with the right key, switched", tls_talk("ws12"), SUCCEEDED, None,
         absent=("tls_key_mismatch", "tls_client_closed_after_handshake",
                 "tls_certificate_rejected", "capture_gap_tls_handshake"), keys=tls_keys("ws12")),
    Case("wss: TLS 1.2 with the right key, the ServerHello lost by the capture",
         tls_talk("ws12"), INCONCLUSIVE, "capture_gap_tls_handshake", drop="server1",
         absent=("tls_key_mismatch", "tls_no_server_hello", "tls_client_hello_to_cleartext_port"),
         keys=tls_keys("ws12"), evidence={"capture_gap_tls_handshake": ("hello", "client2")},
         found={"capture_gap_tls_handshake": ("ServerHello", "has this session's key")}),
    Case("wss: TLS 1.3, the client's Finished lost, the rest decrypts", tls_talk("ws13"),
         SUCCEEDED, None, drop="client2", keys=tls_keys("ws13"),
         absent=("capture_gap_tls_handshake", "capture_gap_request", "tls_key_mismatch")),
    Case("TLS 1.3: the server's flight lost, the client's Finished, the server closes",
         tls_talk("ws13", take=3, end="server_fin"), INCONCLUSIVE, "capture_gap_tls_handshake",
         drop="server1", absent=("tls_server_closed_during_handshake", "tls_no_server_hello"),
         found={"capture_gap_tls_handshake": ("the ServerHello missing",)}),
    Case("wss: TLS 1.2 with a key that does not open it", tls_talk("ws12"), INCONCLUSIVE,
         "tls_key_mismatch", keys=tls_keys("ws12", zeroed=True)),
    Case("ClientHello to a cleartext port: HTTP 400", tls_talk(
        "hello", extra=((1, error_response(400, "Bad Request", b"Bad Request")),),
        end="server_fin"), FAILED, "tls_client_hello_to_cleartext_port",
        absent=("tls_no_server_hello",),
        found={"tls_client_hello_to_cleartext_port": ("HTTP 400",)}),
    Case("ClientHello answered by RST", tls_talk("hello", end="server_rst"), NO_RESPONSE,
         "tls_no_server_hello", absent=("tls_client_hello_to_cleartext_port",),
         evidence={"tls_no_server_hello": ("hello", "server_rst")}),
    Case("ClientHello, server silent, capture ends at once", tls_talk("hello"), INCONCLUSIVE,
         "capture_ended_too_soon", absent=("tls_no_server_hello",)),
    Case("cleartext WebSocket request to a TLS port: alert",
         exchange(ws_request(), alert_record(50), server_fin()), FAILED,
         "tls_plain_http_to_tls_port", absent=("no_response_server_closed",)),
    Case("plain 400 from a cleartext server", exchange(ws_request(), ACTIX_NO_VERSION), FAILED,
         "response_bad_request", absent=("tls_plain_http_to_tls_port",)),
    Case("TLS 1.2: certificate for another name, client alert", tls_talk(
        "wrong_name", end="client_fin"), FAILED, "tls_certificate_name_mismatch",
        present=("tls_certificate_rejected",), absent=("tls_certificate_expired",),
        found={"tls_certificate_name_mismatch": ("api.example.com",)}),
    Case("TLS 1.2: expired certificate, client alert", tls_talk("expired", end="client_fin"),
         FAILED, "tls_certificate_expired", present=("tls_certificate_rejected",),
         absent=("tls_certificate_name_mismatch",), found={"tls_certificate_expired": ("2020",)}),
    Case("TLS 1.2: untrusted CA, client alert unknown_ca", tls_talk(
        "untrusted12", end="client_fin"), FAILED, "tls_certificate_rejected",
        absent=("tls_certificate_name_mismatch", "tls_certificate_expired",
                "tls_handshake_incomplete"),
        found={"tls_certificate_rejected": ("unknown_ca",)}),
    Case("TLS 1.3: client hangs up after the server's flight (no alert)", tls_talk(
        "untrusted13", take=2, end="client_fin"), FAILED, "tls_certificate_rejected",
        absent=("tls_handshake_incomplete", "tls_client_closed_after_handshake",
                "tls_client_gave_up"),
        found={"tls_certificate_rejected": ("right after the server's flight",)}),
    Case("TLS 1.3: that client's FIN lost, the server's FIN acknowledges it", tls_talk(
        "untrusted13", take=2, end="client_fin,server_fin"), FAILED,
         "tls_certificate_rejected", drop="client_fin",
         absent=("capture_gap_tls_handshake", "tls_server_closed_during_handshake"),
         found={"tls_certificate_rejected": ("FIN (not captured)",)},
         evidence={"tls_certificate_rejected": ("server1", "server_fin")}),
    Case("TLS 1.3: the server closes first, the client's FIN after it lost", tls_talk(
        "untrusted13", take=2, end="server_fin,client_fin"), FAILED,
         "tls_server_closed_during_handshake", drop="client_fin",
         absent=("tls_certificate_rejected", "capture_gap_tls_handshake")),
    Case("TLS 1.3: server flight, then the capture ends", tls_talk("untrusted13", take=2),
         INCONCLUSIVE, "tls_handshake_incomplete", absent=("tls_certificate_rejected",)),
    Case("mutual TLS: no client certificate, server alert", tls_talk("mutual", end="server_fin"),
         FAILED, "tls_client_certificate_required", absent=("tls_handshake_failure",)),
    Case("TLS 1.2: server closes after the client's Finished, no certificate asked",
         tls_talk("handshake_only", take=3, end="server_fin"), FAILED,
         "tls_server_closed_during_handshake", absent=("tls_client_certificate_required",)),
    Case("TLS 1.2: handshake done, client closes without a request",
         tls_talk("handshake_only", end="client_fin"), FAILED,
         "tls_client_closed_after_handshake", absent=("tls_server_closed_during_handshake",)),
    Case("wss: a request, the server's close_notify, then the client's FIN 1 ms later",
         tls_talk("request13_closed", end="client_fin,server_fin"), NO_RESPONSE,
         "no_response_server_closed", keys=tls_keys("request13_closed"),
         absent=("no_response_client_gave_up",),
         found={"no_response_server_closed": ("close_notify",)}),
    Case("wss: a request, no answer, the client's FIN first (no close_notify)",
         tls_talk("request13_closed", take=-1, end="client_fin,server_fin"), NO_RESPONSE,
         "no_response_client_gave_up", keys=tls_keys("request13_closed"),
         absent=("no_response_server_closed",)),
    Case("TLS 1.3 with keys: handshake done, the client's close_notify, no request",
         tls_talk("closed13", end="client_fin"), FAILED, "tls_client_closed_after_handshake",
         keys=tls_keys("closed13"), absent=("tls_key_mismatch",),
         found={"tls_client_closed_after_handshake": ("with an encrypted alert",)}),
    Case("TLS 1.3 with keys: the client's close_notify, then the server's FIN before the "
         "client's (curl rejecting a name)",
         tls_talk("closed13", end="server_fin,client_fin"), FAILED,
         "tls_client_closed_after_handshake", keys=tls_keys("closed13"),
         absent=("tls_server_closed_during_handshake",)),
    Case("TLS 1.3 without keys: the client's encrypted alert, then the server's FIN first",
         tls_talk("closed13", end="server_fin,client_fin"), FAILED,
         "tls_client_closed_after_handshake", absent=("tls_server_closed_during_handshake",)),
    Case("wss: the client's close_notify after the 101, then the server's FIN before the "
         "client's", tls_talk("ws13_closed", end="server_fin,client_fin"), ABORTED,
         "client_hung_up_after_switch", keys=tls_keys("ws13_closed"),
         absent=("server_hung_up_after_switch",),
         found={"client_hung_up_after_switch": ("close_notify",)}),
    Case("wss: the server's FIN after the 101, no alert before it",
         tls_talk("ws13", end="server_fin,client_fin"), ABORTED, "server_hung_up_after_switch",
         keys=tls_keys("ws13"), absent=("client_hung_up_after_switch",)),
    Case("TLS 1.3: unknown SNI name, alert unrecognized_name", tls_talk(
        "unknown_name", end="server_fin"), FAILED, "tls_unrecognized_name",
        absent=("tls_fatal_alert",)),
    Case("TLS 1.2 client, TLS 1.3-only server: protocol_version", tls_talk(
        "old_client", end="server_fin"), FAILED, "tls_protocol_version",
        absent=("tls_handshake_failure",)),
    Case("no cipher suite in common: handshake_failure", tls_talk(
        "no_common_suite", end="server_fin"), FAILED, "tls_handshake_failure",
        absent=("tls_protocol_version",)),
    Case("no ALPN protocol in common: no_application_protocol", tls_talk(
        "hello", extra=((1, alert_record(120)),), end="server_fin"), FAILED,
        "tls_no_application_protocol", absent=("tls_fatal_alert", "tls_unrecognized_name"),
        found={"tls_no_application_protocol": ("http/1.1",)}),
    Case("server alert internal_error", tls_talk(
        "hello", extra=((1, alert_record(80)),), end="server_fin"), FAILED, "tls_fatal_alert",
        absent=("tls_no_application_protocol",), found={"tls_fatal_alert": ("internal_error",)}),
)
CASES = CASES + TLS_CASES

BY_NAME = {case.name: case for case in CASES}


# --- running a case ------------------------------------------------------------------------


def run_case(case: Case, path: Path, *, mss: int | None = None,
             **transforms: int) -> tuple[list[Diagnosis], list[Segment], Marks]:
    conv = Conversation(mss=mss)
    marks = case.script(conv)
    drop = marks[case.drop] if case.drop else []
    segments = write_pcap(path, [conv], drop=drop, **transforms)  # type: ignore[arg-type]
    if case.keys is not None:
        run = Analysis(secrets=load_keylog(case.keys()))
        return list(analyze(read_captures([str(path)], []), run)), segments, marks
    return analyze_pcap(path), segments, marks


def frames_of_marks(names: tuple[str, ...], marks: Marks,
                    segments: list[Segment]) -> tuple[int, ...]:
    """Frame numbers of named segments: one per single-segment mark, else its first and last."""
    number: dict[int, int] = {}
    for position, segment in enumerate(segments, start=1):
        number.setdefault(segment.index, position)
    out: list[int] = []
    for name in names:
        present = [number[i] for i in marks[name] if i in number]
        out += present[:1] if len(present) == 1 else [present[0], present[-1]]
    return tuple(out)


def summary(diagnoses: list[Diagnosis]) -> list[tuple[str, list[str]]]:
    return [(d.verdict.value, sorted(f.check for f in d.findings)) for d in diagnoses]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case: Case, tmp_path: Path) -> None:
    assert_case(case, tmp_path)


def assert_case(case: Case, tmp_path: Path) -> Diagnosis:
    """Runs one case as a capture and checks its one attempt against the case; returns it."""
    diagnoses, segments, marks = run_case(case, tmp_path / "case.pcap")
    assert len(diagnoses) == 1, summary(diagnoses)
    diagnosis = diagnoses[0]
    ids = [f.check for f in diagnosis.findings]
    context = [(f.check, f.expected, f.found, f.frames) for f in diagnosis.findings]
    assert diagnosis.verdict is case.verdict, context
    assert (ids[0] if ids else None) == case.primary, context
    assert case.triggered <= set(ids), context
    assert not set(case.absent) & set(ids), context
    findings = {f.check: f for f in diagnosis.findings}
    for check, names in case.evidence.items():
        assert findings[check].frames == frames_of_marks(names, marks, segments), context
    for check, texts in case.found.items():
        for text in texts:
            assert text in findings[check].found, context
    return diagnosis


def test_every_check_has_cases() -> None:
    ids = [check.id for check in CATALOGUE]
    assert len(ids) == len(set(ids))
    for check in CATALOGUE:
        assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", check.id), check.id
        # an RFC section, or a named protocol document's section (Engine.IO has no RFC)
        assert re.match(r"(RFC \d+|[A-Z][\w.]*( [\w.]+)* protocol v\d+) §", check.rfc), check.id
        assert check.title.strip() and check.explanation.strip() and check.fix.strip(), check.id
    # proxy findings need two legs of one handshake: their cases live in test_correlate.py;
    # the HTTP/2 ones in test_checks_h2.py, the life ones in test_checks_life.py (imported
    # here: they import this module)
    from tests.test_checks_h2 import ALL_CASES
    from tests.test_checks_life import GROUP_CASES, LIFE_CASES  # the life phase's

    every = (*CASES, *PROXY_CASES, *ALL_CASES, *LIFE_CASES, *GROUP_CASES)
    triggered = set().union(*(case.triggered for case in every))
    missed = set().union(*(case.absent for case in every))
    triggered.add("proxy_answered_itself")  # test_proxy_answered_itself_when_...
    # tests/test_kept.py: the back leg of real nginx's legs, and its near misses (the front leg,
    # a client of the same backend that no proxy forwarded), kept in memory and spilled
    triggered.add("proxy_back_leg")
    missed.add("proxy_back_leg")
    # both in tests/test_correlate.py (test_a_back_leg_the_proxy_closed_as_its_client_left_
    # says_so: a FIN passed on at once, and one 1.5 s later), and tests/test_apache_live.py
    triggered.add("proxy_passed_client_end")
    missed.add("proxy_passed_client_end")
    # both in tests/test_tls_passing_live.py: it needs the compiled skip, OpenSSL's KeyUpdate
    # and records counted unopened (its near miss: the same capture read as it is)
    triggered.add("tls_decryption_stopped")
    missed.add("tls_decryption_stopped")
    # both in tests/test_checks_h2.py (an HTTP/2 stream's life ended by a graceful GOAWAY,
    # and its near miss without one)
    triggered.add("h2_shutdown_in_life")
    missed.add("h2_shutdown_in_life")
    assert triggered | missed <= set(ids), "cases cite unknown ids"
    assert not set(ids) - triggered, "checks no case triggers"
    assert not set(ids) - missed, "checks without a near miss"


# The same diagnosis whatever the segmentation, reordering or duplication of the packets.
STABLE = (
    "Postman plain GET to actix-web",
    "Node ws: 400 then server FIN",
    "nginx stripped Upgrade/Connection: ordinary 200 page",
    "proxy re-keyed the request: wrong Accept, client FIN",
    "server Close 1008 3 ms after the 101",
    "h2c accepted: 101, server SETTINGS, client preface",
    "h2c declined with 200 (curl --http2)",
    "tungstenite: server FIN after the request, no response",
    "websocket: valid handshake, frames both ways",
    "subprotocol offered, none chosen, Chrome hangs up",
    "python websockets requires a subprotocol: 400 'missing subprotocol'",
    "uvicorn (wsproto): bare 403 to a WebSocket path without a route",
    "unmasked client frame, server closes 1002",
    "wss: TLS 1.2 with the right key, switched",  # records cut into 1-byte segments, reordered
    "mutual TLS: no client certificate, server alert",
)
MANGLING = (
    {"mss": 1},
    {"mss": 2, "reorder": 1},
    {"mss": 5, "duplicate": 2},
    {"mss": 13, "reorder": 3, "duplicate": 4},
    {"mss": 40, "overlap": 5},
)


@pytest.mark.parametrize("mangling", MANGLING,
                         ids=lambda m: "-".join(f"{k}{v}" for k, v in m.items()))
@pytest.mark.parametrize("name", STABLE)
def test_same_diagnosis_whatever_the_segmentation(name: str, mangling: dict[str, int],
                                                  tmp_path: Path) -> None:
    case = BY_NAME[name]
    whole, _, _ = run_case(case, tmp_path / "whole.pcap")
    mangled, _, _ = run_case(case, tmp_path / "mangled.pcap", **mangling)
    assert summary(mangled) == summary(whole)


def test_cli_reports_the_same_verdict(tmp_path: Path) -> None:
    case = BY_NAME["Postman plain GET to actix-web"]
    run_case(case, tmp_path / "postman.pcap")
    result = run_cli("read", tmp_path / "postman.pcap", "--format", "json")
    assert result.exit_code == 0, result.output
    assert '"failed"' in result.output and "request_without_upgrade" in result.output


def _bundled_attempts() -> list[Attempt]:
    """Every bundled capture's attempts (with its key log where it has one)."""
    captures = Path(__file__).resolve().parent.parent / "captures"
    attempts: list[Attempt] = []
    for path in sorted(captures.glob("*.pcap*")):
        keys = path.with_suffix(".keys")
        run = Analysis(secrets=load_keylog(keys.read_bytes()) if keys.exists() else None)
        attempts += [d.attempt for d in analyze(read_captures([str(path)], [], run.add_secrets),
                                                run) if isinstance(d, Diagnosis)]
    return attempts


def test_remembered_close_and_plain_key_test_equal_their_twins() -> None:
    """`after_switch._close_of` (Closes remembered by payload) gives what `parse_close` gives,
    made and remembered; `request._is_valid_key` (binascii directly) what
    ``base64.b64decode(key, validate=True)`` says: every Close payload and WebSocket key of
    the bundled captures, and crafted ones (no code, one byte, bad UTF-8, a code never sent,
    non-ASCII, bad padding)."""
    import base64
    import binascii

    from analyzer.checks import after_switch
    from analyzer.checks.request import _is_valid_key
    from analyzer.websocket.frames import parse_close

    def plain_key_test(key: str) -> bool:
        try:
            return len(base64.b64decode(key.strip(), validate=True)) == 16
        except (binascii.Error, ValueError):
            return False

    attempts = _bundled_attempts()
    payloads = [seen.ws.payload_prefix for a in attempts if a.after is not None
                for seen in a.after.frames if seen.ws.opcode == 8]
    payloads += [b"", b"\x03", b"\x03\xe8", b"\x03\xed", b"\x03\xe9bye \xff", b"\x0f\xa0ok"]
    keys = [v for a in attempts if a.request is not None
            for v in a.request.head.headers.all("sec-websocket-key")]
    keys += ["dGhlIHNhbXBsZSBub25jZQ==", " dGhlIHNhbXBsZSBub25jZQ== ", "dGhlIHNhbXBsZSBub25jZQ=",
             "dGhlIHNhbXBsZSBub25jZQ", "=dGhlIHNhbXBsZSBub25jZQ=", "d\xe9hlIHNhbXBsZSBub25jZQ==",
             "dGhlIHNhbXBs ZSBub25jZQ==", "", "AAAAAAAAAAAAAAAAAAAAAAAA"]
    assert len(payloads) > 20 and len(keys) > 20
    after_switch._CLOSES.clear()
    for _ in range(2):  # made, then remembered
        for payload in payloads:
            assert after_switch._close_of(payload) == parse_close(payload), payload
    for key in keys:
        assert _is_valid_key(key) == plain_key_test(key), key


@pytest.mark.parametrize("after", [0.05, 0.4, 0.6, 1.0])
def test_a_server_that_hangs_up_after_a_silence_reads_as_a_timeout_not_a_failed_handler(
        tmp_path: Path, after: float) -> None:
    """A handler that fails closes at once; nginx's proxy_read_timeout of 1 s closed a quiet
    switched connection 996 ms after the 101 in the sweep of the twenty-eighth session, and
    was called a failed handler "right after the 101". From half a second of silence on
    (`after_switch.WAITED_S`) the found text offers the timeout."""
    conv = Conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 80))
    conv.handshake()
    conv.client(websocket_request("example.com", "/ws"))
    conv.server(websocket_response(DEFAULT_WS_KEY))
    conv.server_fin(after)
    conv.client_fin()
    write_pcap(tmp_path / "r.pcap", [conv])
    (diagnosis,) = analyze_pcap(tmp_path / "r.pcap")
    assert diagnosis.verdict is Verdict.ABORTED
    primary = diagnosis.primary
    assert primary is not None and primary.check == "server_hung_up_after_switch"
    assert primary.found.startswith(f"FIN {after * 1000:.0f} ms after the switch")
    assert ("more likely a short idle timeout" in primary.found) == (after >= 0.5), primary.found


def _grease_first_suite(hello: bytes) -> bytes:
    """A ClientHello record with its first cipher suite made a GREASE value (RFC 8701), as
    Chromium's are."""
    at = 5 + 4 + 2 + 32  # record header, handshake header, legacy version, random
    at += 1 + hello[at]  # the legacy session id
    at += 2  # the suites' length
    return hello[:at] + b"\x0a\x0a" + hello[at + 2:]


@pytest.mark.parametrize(("browser", "server_closes_first", "listed"), [
    (False, False, True),  # a client that closes unheard: Node rejects a CA so, an attempt
    (True, False, False),  # Chromium's spare connection: counted, not an attempt
    (False, True, False),  # an idle connection the server closed with close_notify
])
def test_a_tls_session_never_used_is_counted_not_listed(
        tmp_path: Path, browser: bool, server_closes_first: bool, listed: bool) -> None:
    """A client that completes the handshake and closes with no request and no alert:
    Chromium's spare connection (GREASE in its ClientHello) or one the server closed idle
    is counted as never used (every Chromium capture of the sweep of the twenty-ninth
    session had one, called `failed` with a certificate fix); any other client stays an
    attempt, since Node closes so when it does not trust the certificate."""
    from analyzer.pipeline import Analysis

    chunks = list(recorded("handshake_only")[0])
    if browser:
        chunks[0] = (chunks[0][0], _grease_first_suite(chunks[0][1]))
    conv = Conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 443))
    conv.handshake()
    for side, data in chunks:
        conv.send(side == CLIENT, data, delay=0.002)
    if server_closes_first:
        # a TLS 1.2 alert after the ChangeCipherSpec is encrypted: unreadable without keys
        conv.send(False, bytes((21, 3, 3, 0, 26)) + bytes(26), delay=5.0)
        conv.server_fin(0.001)
    conv.client_fin(0.05)
    if not server_closes_first:
        conv.server_fin(0.001)
    path = tmp_path / "unused.pcap"
    write_pcap(path, [conv])
    analysis = Analysis()
    found = [d for d in analyze(read_captures([str(path)], []), analysis)
             if isinstance(d, Diagnosis)]
    assert len(found) == int(listed), [d.primary for d in found]
    assert analysis.stats.tls_unused == int(not listed)
    if listed:
        assert found[0].primary is not None
        assert found[0].primary.check == "tls_client_closed_after_handshake"
        # Node's words for a chain it does not trust, which it says after the handshake
        assert any("SELF_SIGNED_CERT_IN_CHAIN" in line
                   for line in found[0].attribution.client_errors)


@pytest.mark.parametrize(("scenario", "browser", "keyed", "listed"), [
    ("eof13", False, True, True),  # read: a client closed unheard (Node), not the alert
    ("eof13", True, True, False),  # Chromium's spare connection, whatever the server said
    ("eof13", False, False, True),  # unread: the server did not close first
    ("eof13", True, False, False),
    ("get13_eof", False, True, False),  # an ordinary GET: no attempt at all
])
def test_a_servers_alert_that_answered_the_clients_fin_is_not_why_the_session_ended(
        tmp_path: Path, scenario: str, browser: bool, keyed: bool, listed: bool) -> None:
    """An OpenSSL 3 server answers a client's bare FIN with a fatal decode_error alert
    (Hypercorn to Chromium's spare connections, the sweep of the twenty-ninth session): it
    was "the TLS handshake ended with a fatal alert" for a handshake completed seconds
    before, or, unread, a server that closed the session first. The client had left: the
    session is judged as if the alert were not there."""
    from analyzer.pipeline import Analysis
    from analyzer.tls.keylog import load_keylog

    chunks, keys = recorded(scenario)
    chunks = list(chunks)
    if browser:
        chunks[0] = (chunks[0][0], _grease_first_suite(chunks[0][1]))
    *conversation, (side, alert) = chunks
    assert side == SERVER and alert[0] == 23  # (TLS 1.3: an encrypted record)
    conv = Conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 443))
    conv.handshake()
    for side, data in conversation:
        conv.send(side == CLIENT, data, delay=0.002)
    conv.client_fin(4.0)
    conv.send(False, alert, delay=0.03)
    conv.server_fin(0.001)
    path = tmp_path / "eof.pcap"
    write_pcap(path, [conv])
    analysis = Analysis(secrets=load_keylog(keys) if keyed else None)
    found = [d for d in analyze(read_captures([str(path)], []), analysis)
             if isinstance(d, Diagnosis)]
    assert len(found) == int(listed), [d.primary for d in found]
    if listed:
        assert found[0].primary is not None
        assert found[0].primary.check == "tls_client_closed_after_handshake", found[0].primary
    elif scenario == "eof13":
        assert analysis.stats.tls_unused == 1
    else:
        assert analysis.stats.tls_unused == 0 and analysis.stats.tls_decrypted == 1


@pytest.mark.parametrize("answered", [True, False])
def test_a_servers_alert_to_a_client_that_left_after_its_flight_is_not_why_it_ended(
        tmp_path: Path, answered: bool) -> None:
    """aiohttp (asyncio's ssl) rejects a TLS 1.2 server's certificate by closing without an
    alert, right after the server's flight; an OpenSSL 3 server answers that bare FIN with a
    fatal decode_error, then the client resets (tests/test_aiohttp_tornado_clients_live.py).
    It was "the TLS handshake ended with a fatal alert", with no client's line: the client had
    left, so it is the certificate it rejected. The near miss: the same alert before the
    client's FIN is why the session ended."""
    conv = Conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 443))
    conv.handshake()
    for side, data in recorded("untrusted12")[0][:2]:  # the ClientHello, the server's flight
        conv.send(side == CLIENT, data, delay=0.002)
    if answered:
        conv.client_fin(0.001)
    conv.send(False, alert_record(50), delay=0.011)
    if answered:
        conv.client_rst(0.001)
    else:
        conv.client_fin(0.001)
    path = tmp_path / "bare-fin.pcap"
    write_pcap(path, [conv])
    (diagnosis,) = analyze_pcap(path)
    assert diagnosis.verdict is FAILED
    assert diagnosis.primary is not None
    if not answered:
        assert diagnosis.primary.check == "tls_fatal_alert", diagnosis.primary
        return
    assert diagnosis.primary.check == "tls_certificate_rejected", diagnosis.primary
    assert "right after the server's flight" in diagnosis.primary.found
    assert any(line.startswith("aiohttp: ClientConnectorCertificateError: ")
               for line in diagnosis.attribution.client_errors)


@pytest.mark.parametrize("opened", [True, False])
def test_a_servers_record_to_a_client_that_never_spoke_is_no_session(
        tmp_path: Path, opened: bool) -> None:
    """A browser's preconnect: SYN, then the client's FIN with no ClientHello; the server
    answers with a TLS alert record, the client with a RST (Chromium and Hypercorn, the sweep
    of the twenty-ninth session). It was counted as a session that "could not be inspected
    (the capture started after the handshake)", with the SYN in the capture. The near miss:
    without the SYN the capture may have started mid-session, as it says."""
    from analyzer.pipeline import Analysis

    conv = Conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 443))
    if opened:
        conv.handshake()
    conv.client_fin(0.024)
    conv.send(False, alert_record(50), delay=0.05)
    conv.client_rst(0.001)
    path = tmp_path / "preconnect.pcap"
    write_pcap(path, [conv])
    analysis = Analysis()
    found = [d for d in analyze(read_captures([str(path)], []), analysis)
             if isinstance(d, Diagnosis)]
    assert found == []
    assert analysis.stats.tls_uninspected == int(not opened)


@pytest.mark.parametrize("alert", [True, False])
def test_in_life_a_close_notify_before_the_fins_says_who_closed(
        tmp_path: Path, alert: bool) -> None:
    """A decrypted WebSocket in life whose client says close_notify 3 s in, after its watch
    window ran out in the silence; the server's FIN comes before the client's (curl giving
    up through nginx, the sweep of the twenty-ninth session): the client closed, not the
    server after a silence. The alert used to be read while the watch was still open, and
    lost. The near miss: no alert, the server's FIN first: the server closed."""
    scenario = "ws13_closed" if alert else "ws13"
    chunks = recorded(scenario)[0]
    conv = Conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 443))
    conv.handshake()
    talked = chunks[:-1] if alert else chunks
    for side, data in talked:
        conv.send(side == CLIENT, data, delay=0.002)
    if alert:
        conv.send(True, chunks[-1][1], delay=3.0)
        conv.server_fin(0.001)
    else:
        conv.server_fin(3.0)
    conv.client_fin(0.001)
    path, keys = tmp_path / "life.pcap", tmp_path / "keys.log"
    write_pcap(path, [conv])
    keys.write_bytes(tls_keys(scenario)())
    (attempt,) = json.loads(run_cli("read", path, "--keylog", keys, "-F", "json").output)[
        "attempts"]
    assert attempt["verdict"] == "dropped", attempt["reason"]
    assert attempt["lifetime"]["closed_by"] == ("client" if alert else "server")


@pytest.mark.parametrize("tls", [False, True])
def test_a_request_carried_in_the_syn_is_read_whole(tmp_path: Path, tls: bool) -> None:
    """TCP Fast Open (RFC 7413): the SYN carries the request (curl --tcp-fastopen to nginx
    with `fastopen`) or the ClientHello. Its data starts at the sequence number after the
    SYN's: the first byte was dropped, `GET /forbid` read as `ET /forbid` (failed
    ws_method_not_get), and a ClientHello so cut made the session vanish (the sweep of the
    thirtieth session)."""
    from analyzer.pipeline import Analysis
    from analyzer.tls.keylog import load_keylog

    conv = Conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 443 if tls else 80))
    if tls:
        chunks, keys = recorded("ws13")
        conv.fast_open(chunks[0][1])
        for side, data in chunks[1:]:
            conv.send(side == CLIENT, data, delay=0.002)
    else:
        conv.fast_open(ws_request())
        conv.server(http_response(403, "Forbidden", [("Content-Length", "0")]), delay=0.002)
    conv.client_fin(0.01)
    conv.server_fin(0.001)
    write_pcap(tmp_path / "tfo.pcap", [conv])
    analysis = Analysis(secrets=load_keylog(keys) if tls else None)
    (diagnosis,) = [d for d in analyze(read_captures([str(tmp_path / "tfo.pcap")], []),
                                       analysis) if isinstance(d, Diagnosis)]
    head = diagnosis.attempt.request_head
    assert head is not None and head.method == "GET", head
    assert diagnosis.attempt.response_head is not None
    assert diagnosis.attempt.response_head.status == (101 if tls else 403)
    assert "ws_method_not_get" not in [f.check for f in diagnosis.findings]


@pytest.mark.parametrize("cut", [True, False])
def test_a_handshake_the_snaplen_cut_says_so(tmp_path: Path, cut: bool) -> None:
    """`tcpdump -s 200` of a TLS session: the ClientHello is in the capture, cut short. It
    was "the ClientHello missing: the capture lost bytes the client sent" (the sweep of the
    thirtieth session). The near miss: the ClientHello's segment lost, as said."""
    from analyzer.pipeline import Analysis
    from analyzer.tls.keylog import load_keylog

    chunks, keys = recorded("ws13")
    conv = Conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 443))
    conv.handshake()
    marks = [conv.send(side == CLIENT, data, delay=0.002) for side, data in chunks]
    conv.client_fin(0.01)
    conv.server_fin(0.001)
    path = tmp_path / "tls.pcap"
    write_pcap(path, [conv], **({"snaplen": 200} if cut else {"drop": marks[0]}))
    run = Analysis(secrets=load_keylog(keys))
    (diagnosis,) = [d for d in analyze(read_captures([str(path)], []), run)
                    if isinstance(d, Diagnosis)]
    assert diagnosis.primary is not None
    found = diagnosis.primary.found
    assert ("snapshot length" in found) == cut and ("missing:" in found) == (not cut), found
    # the cut ClientHello still shows its random: its key is in the log ("present")
    tls = diagnosis.attempt.tls
    assert tls is not None and tls.key == ("present" if cut else "missing"), tls.key
