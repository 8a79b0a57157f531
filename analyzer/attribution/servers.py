"""Fingerprints of the servers and gateways that answer handshakes, and what each one logs.

Each fingerprint looks only at what crossed the wire: the status line (custom reason phrases
are the strongest tell), headers such as `Sec-Websocket-Version` in gorilla's spelling or
`Via: kong`, the `Server` header, the first bytes of the body, or a silent close. Sources:
../shared/reference/handshake-failures.md §3 (read from each project's source).
"""

from __future__ import annotations

from dataclasses import dataclass

from analyzer.attribution.texts import match_words, server_log
from analyzer.exchange.model import Attempt
from analyzer.http.message import ResponseHead


@dataclass(frozen=True, slots=True)
class ServerMatch:
    server: str
    confidence: str  # "high": a text only this implementation sends; "medium"; "low"
    evidence: str
    log: str | None = None  # what it most likely logged for this rejection


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
    ("caddy", "Caddy"),
    ("apache", "Apache httpd"),
    ("microsoft-iis", "IIS"),
    ("cloudflare", "Cloudflare"),
)


def match_response(head: ResponseHead, body: bytes) -> ServerMatch | None:
    """The implementation a response's own words point at, if any."""
    known = match_words(head, body)
    if known is not None:
        if known.where == "shape":  # a shape is a weaker tell than words
            return ServerMatch(known.server, "medium",
                               f'status line and header names exactly "{known.text}"',
                               known.log)
        where = "reason phrase" if known.where == "reason" else "body"
        return ServerMatch(known.server, "high", f'{where} "{known.text}"',
                           server_log(known, head.status, body))
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
            elif name == "Caddy" and head.status == 502:
                # http.log.error, from reverse_proxy (captures/caddy_websockets.pcap)
                log = "dial tcp BACKEND: connect: connection refused (or another dial error)"
            return ServerMatch(name, "medium", f"Server: {headers.get('server')}", log)
    return None


def match_silent_close(attempt: Attempt, fault: str | None) -> ServerMatch:
    """A server that closes without any response: the tungstenite family does exactly that."""
    log = TUNGSTENITE_LOGS.get(fault or "")
    return ServerMatch("tungstenite (tokio-tungstenite, axum's base)", "low",
                       "closed the connection without any HTTP response", log)
