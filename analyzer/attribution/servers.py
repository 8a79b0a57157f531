"""Fingerprints of the servers and gateways that answer handshakes, and what each one logs.

Each fingerprint looks only at what crossed the wire: the status line (custom reason phrases
are the strongest tell), headers such as `Sec-Websocket-Version` in gorilla's spelling or
`Via: kong`, the `Server` header, the first bytes of the body, or a silent close. Sources:
../shared/reference/handshake-failures.md §3 (read from each project's source).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from analyzer.exchange.model import Attempt
from analyzer.http.message import ResponseHead


@dataclass(frozen=True, slots=True)
class ServerMatch:
    server: str
    confidence: str  # "high": a text only this implementation sends; "medium"; "low"
    evidence: str
    log: str | None = None  # what it most likely logged for this rejection


@dataclass(frozen=True, slots=True)
class _Text:
    """A text that identifies an implementation, and what it logs when it sends that text."""

    where: str  # "reason" (status line) or "body"
    text: str  # compared case-sensitively: these are exact strings from the source
    server: str
    log: str | None


# Exact texts, most specific first. Where a server uses the same words as another (aiohttp and
# Spring both say 'Can "Upgrade" only to "WebSocket".'), the longer text comes first.
_TEXTS: tuple[_Text, ...] = (
    _Text("reason", "No WebSocket Upgrade header found", "actix-web", "NoWebsocketUpgrade"),
    _Text("reason", "No Connection upgrade", "actix-web", "NoConnectionUpgrade"),
    _Text("reason", "WebSocket version header is required", "actix-web", "NoVersionHeader"),
    _Text("reason", "Unsupported WebSocket version", "actix-web", "UnsupportedVersion"),
    _Text("reason", "Handshake error", "actix-web", "BadWebsocketKey"),
    _Text("reason", "Unsupported websocket version specification", "Jetty",
          "Unsupported Websocket version: N"),
    _Text("reason", "Invalid Upgrade Request", "Apache Traffic Server", None),
    _Text("body", "No WebSocket UPGRADE hdr:", "aiohttp",
          "HTTPBadRequest: No WebSocket UPGRADE hdr"),
    _Text("body", "No CONNECTION upgrade hdr:", "aiohttp",
          "HTTPBadRequest: No CONNECTION upgrade hdr"),
    _Text("body", "Unsupported version:", "aiohttp", "HTTPBadRequest: Unsupported version"),
    _Text("body", "Handshake error:", "aiohttp", "HTTPBadRequest: Handshake error"),
    _Text("body", "You cannot access a WebSocket server directly with a browser",
          "python websockets", None),
    _Text("body", "Failed to open a WebSocket connection:", "python websockets", None),
    _Text("body", "Request method must be `GET`", "axum", "MethodNotGet"),
    _Text("body", "Connection header did not include 'upgrade'", "axum", "InvalidConnectionHeader"),
    _Text("body", "`Upgrade` header did not include 'websocket'", "axum", "InvalidUpgradeHeader"),
    _Text("body", "`Sec-WebSocket-Version` header did not include '13'", "axum",
          "InvalidWebSocketVersionHeader"),
    _Text("body", "WebSocket protocol violation:", "coder/websocket", None),
    _Text("body", "unsupported WebSocket protocol version (only 13 is supported)",
          "coder/websocket", None),
    _Text("body", "must be a 16 byte base64 encoded string", "coder/websocket", None),
    _Text("body", "Missing or invalid Sec-WebSocket-Key header", "Node ws", None),
    _Text("body", "Missing or invalid Sec-WebSocket-Version header", "Node ws", None),
    _Text("body", "Invalid Upgrade header", "Node ws", None),
    _Text("body", "Invalid HTTP method", "Node ws", None),
    _Text("body", "Can \"Upgrade\" only to \"WebSocket\".", "Spring",
          "Handshake failed due to invalid Upgrade header"),
    _Text("body", "\"Connection\" must be \"upgrade\".", "Spring",
          "Handshake failed due to invalid Connection header"),
    _Text("body", "The plain HTTP request was sent to HTTPS port", "nginx", None),
    _Text("body", "Session ID unknown", "Socket.IO (Engine.IO)", None),
    _Text("body", "Transport unknown", "Socket.IO (Engine.IO)", None),
)

# The python websockets body carries the exception text: "Failed to open a WebSocket
# connection: missing Connection header." The server logs "opening handshake failed" with it.
_WEBSOCKETS_REASON = re.compile(rb"Failed to open a WebSocket connection: ([^\n]*?)\.?\s*(\n|$)")

# gorilla's own logs, by the status it answered (it sends only the status text as body).
_GORILLA_LOGS = {
    400: "websocket: the client is not using the websocket protocol: 'upgrade' token not found "
         "in 'Connection' header (or a bad key/version)",
    403: "websocket: request origin not allowed by Upgrader.CheckOrigin",
    405: "websocket: the client is not using the websocket protocol: request method is not GET",
    426: "websocket: the client is not using the websocket protocol: 'websocket' token not found "
         "in 'Upgrade' header",
}

# What tungstenite (and axum's base, tokio-tungstenite) logs when it closes without answering,
# by the request fault that most likely caused it.
TUNGSTENITE_LOGS = {
    "ws_method_not_get": "Unsupported HTTP method used - only GET is allowed",
    "request_http10": "HTTP version must be 1.1 or higher",
    "connection_without_upgrade": "No \"Connection: upgrade\" header",
    "request_without_upgrade": "No \"Upgrade: websocket\" header",
    "upgrade_header_missing": "No \"Upgrade: websocket\" header",
    "upgrade_not_websocket": "No \"Upgrade: websocket\" header",
    "ws_version_missing": "No \"Sec-WebSocket-Version: 13\" header",
    "ws_version_not_13": "No \"Sec-WebSocket-Version: 13\" header",
    "ws_key_missing": "No \"Sec-WebSocket-Key\" header",
    "early_client_data": "Junk after client request",
}

_SERVER_HEADER = (
    ("websockets/", "python websockets"),
    ("aiohttp/", "aiohttp"),
    ("hypercorn", "Hypercorn"),
    ("uvicorn", "uvicorn"),
    ("werkzeug", "Werkzeug"),
    ("gunicorn", "gunicorn"),
    ("jetty", "Jetty"),
    ("envoy", "Envoy"),
    ("istio-envoy", "Envoy (Istio)"),
    ("kong", "Kong"),
    ("ats/", "Apache Traffic Server"),
    ("nginx", "nginx"),
    ("apache", "Apache httpd"),
    ("microsoft-iis", "IIS"),
    ("cloudflare", "Cloudflare"),
)


# Each text with its latin-1 bytes (searched for in the body), encoded once here rather than
# for every response.
_NEEDLES: tuple[tuple[_Text, bool, str, bytes], ...] = tuple(
    (known, known.where == "reason", known.text, known.text.encode("latin-1"))
    for known in _TEXTS
)


# All the texts of each place in one pattern: a single scan rules them all out for an ordinary
# answer (the usual case), and only a hit walks _NEEDLES for the first text in the order above.
_ANY_REASON = re.compile("|".join(re.escape(k.text) for k in _TEXTS if k.where == "reason"))
_ANY_BODY = re.compile(
    b"|".join(re.escape(k.text.encode("latin-1")) for k in _TEXTS if k.where == "body")
)


def match_response(head: ResponseHead, body: bytes) -> ServerMatch | None:
    """The implementation a response's own words point at, if any."""
    if _ANY_REASON.search(head.reason) or _ANY_BODY.search(body):
        match = _match_text(head, body)
        if match is not None:
            return match
    headers = head.headers
    via = " ".join(headers.all("via")).lower()
    server_header = (headers.get("server") or "").lower()
    if "kong" in via or "kong" in server_header:
        return ServerMatch("Kong", "high", f"Via/Server: {headers.get('via') or server_header}")
    if "envoy" in server_header and head.status == 403:
        return ServerMatch("Envoy", "high", "Server: envoy with 403", "upgrade_failed")
    # (the case-insensitive look-up first: it rules out most responses without a walk)
    gorilla = headers.has("sec-websocket-version") and any(
        f.name == "Sec-Websocket-Version" for f in headers.fields
    )
    if gorilla and head.status >= 400:
        return ServerMatch("gorilla/websocket", "medium",
                           "header spelled 'Sec-Websocket-Version' (Go's canonical form)",
                           _GORILLA_LOGS.get(head.status))
    if head.status == 426 and headers.get("sec-websocket-version") and not server_header:
        return ServerMatch("Tomcat or Spring", "low", "426 with Sec-WebSocket-Version, no Server")
    for needle, name in _SERVER_HEADER if server_header else ():
        if needle in server_header:
            log = None
            if name == "nginx" and head.status == 502:
                log = "upstream prematurely closed connection (or connect() failed)"
            elif name == "nginx" and head.status == 504:
                log = "upstream timed out"
            return ServerMatch(name, "medium", f"Server: {headers.get('server')}", log)
    return None


def _match_text(head: ResponseHead, body: bytes) -> ServerMatch | None:
    """The first of _TEXTS that the response carries, with what that server logs."""
    reason = head.reason
    for known, in_reason, text, encoded in _NEEDLES:
        if not (text in reason if in_reason else encoded in body):
            continue
        where = "reason phrase" if known.where == "reason" else "body"
        log = known.log
        if known.server == "python websockets":
            said = _WEBSOCKETS_REASON.search(body)
            if said:
                log = _websockets_log(said.group(1).decode("latin-1"))
        elif known.server == "aiohttp":
            # aiohttp raises HTTPBadRequest with the very text it sends as the body
            line = body.split(b"\n", 1)[0].decode("latin-1").strip()
            log = f"HTTPBadRequest {head.status}: {line}"
        return ServerMatch(known.server, "high", f'{where} "{known.text}"', log)
    return None


# python websockets' exception classes, by the start of the message they carry.
_WEBSOCKETS_EXCEPTIONS = (
    ("missing Connection header", "InvalidUpgrade"),
    ("invalid Connection header", "InvalidUpgrade"),
    ("missing Upgrade header", "InvalidUpgrade"),
    ("invalid Upgrade header", "InvalidUpgrade"),
    ("unsupported HTTP method", "InvalidMethod"),
    ("unsupported HTTP version", "InvalidProtocol"),
    ("invalid Origin header", "InvalidOrigin"),
    ("missing subprotocol", "NegotiationError"),
    ("invalid subprotocol", "NegotiationError"),
    ("missing ", "InvalidHeader"),
    ("invalid ", "InvalidHeaderValue"),
)


def _websockets_log(message: str) -> str:
    name = next((cls for start, cls in _WEBSOCKETS_EXCEPTIONS if message.startswith(start)),
                "InvalidHandshake")
    return f"opening handshake failed: {name}: {message}"


def match_silent_close(attempt: Attempt, fault: str | None) -> ServerMatch:
    """A server that closes without any response: the tungstenite family does exactly that."""
    log = TUNGSTENITE_LOGS.get(fault or "")
    return ServerMatch("tungstenite (tokio-tungstenite, axum's base)", "low",
                       "closed the connection without any HTTP response", log)
