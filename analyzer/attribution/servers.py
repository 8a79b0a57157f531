"""Fingerprints of the servers and gateways that answer handshakes, and what each one logs.

Each fingerprint looks only at what crossed the wire: the status line (custom reason phrases
are the strongest tell), headers such as `Sec-Websocket-Version` in gorilla's spelling or
`Via: kong`, the `Server` header, the first bytes of the body, or a silent close. Sources:
../shared/reference/handshake-failures.md §3 (read from each project's source).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from analyzer.attribution.texts import (
    APACHE,
    APACHE_PROXY_ERROR,
    APACHE_UNAVAILABLE,
    SERVLET,
    SQUID,
    SQUID_AUTH,
    SQUID_CONNECT_FAIL,
    SQUID_DENIED,
    SQUID_FORWARD_FAIL,
    SQUID_OTHER,
    KnownText,
    match_words,
    server_log,
)
from analyzer.exchange.model import Attempt, Endpoint
from analyzer.http.message import RequestHead, ResponseHead


@dataclass(frozen=True, slots=True)
class ServerMatch:
    """The server implementation a response's texts point to, and how surely."""
    server: str
    confidence: str  # "high": a text only this implementation sends; "medium"; "low"
    evidence: str
    log: str | None = None  # what it most likely logged for this rejection


# gorilla's Upgrader.Upgrade (server.go) checks a request in this order and answers the
# first fault with http.Error (the status text as the body, `Sec-Websocket-Version: 13`
# added); it logs nothing itself: it returns the error, which the application logs (its
# examples: log.Print("upgrade:", err)). Each text as gorilla 1.5.0 returned it
# (tests/test_gorilla_nodews_live.py); the 426 for the Upgrade token is its main branch's
# since 2024 (unreleased: 1.5.3 still answers 400), the key's second text 1.5.1's and later.
GORILLA = "gorilla/websocket"
_GORILLA_NOT_WEBSOCKET = "websocket: the client is not using the websocket protocol: "
GORILLA_CONNECTION = _GORILLA_NOT_WEBSOCKET + "'upgrade' token not found in 'Connection' header"
GORILLA_UPGRADE = _GORILLA_NOT_WEBSOCKET + "'websocket' token not found in 'Upgrade' header"
GORILLA_METHOD = _GORILLA_NOT_WEBSOCKET + "request method is not GET"
GORILLA_VERSION = "websocket: unsupported version: 13 not found in 'Sec-Websocket-Version' header"
GORILLA_ORIGIN = "websocket: request origin not allowed by Upgrader.CheckOrigin"
_GORILLA_KEY = "websocket: not a websocket handshake: 'Sec-WebSocket-Key' header "
GORILLA_KEY_INVALID = _GORILLA_KEY + "must be Base64 encoded value of 16-byte in length"
GORILLA_KEY_MISSING = (f"{_GORILLA_KEY}is missing or blank (1.5.0 and older) / "
                       f"{GORILLA_KEY_INVALID} (1.5.1 and later)")
# by the status alone, when the request itself passes gorilla's checks (a proxy between
# changed it): its first check of that status
_GORILLA_LOGS = {
    400: GORILLA_CONNECTION + " (or another of its 400s: the Upgrade token, the version, "
         "the key)",
    403: GORILLA_ORIGIN,
    405: GORILLA_METHOD,
    426: GORILLA_UPGRADE,
}


def gorilla_log(request: RequestHead | None, status: int) -> str | None:
    """The error gorilla's Upgrade returned for ``request`` answered with ``status``: its
    first check the request fails (in gorilla's order), else its first text for the
    status."""
    if request is not None:
        headers = request.headers
        key = (headers.get("sec-websocket-key") or "").strip()
        for failed, text, statuses in (
                ("upgrade" not in headers.tokens("connection"), GORILLA_CONNECTION, (400,)),
                ("websocket" not in headers.tokens("upgrade"), GORILLA_UPGRADE, (400, 426)),
                (request.method != "GET", GORILLA_METHOD, (405,)),
                ("13" not in headers.tokens("sec-websocket-version"), GORILLA_VERSION, (400,)),
                (status == 403, GORILLA_ORIGIN, (403,)),
                (not key, GORILLA_KEY_MISSING, (400,)),
                (not _KEY.fullmatch(key), GORILLA_KEY_INVALID, (400,))):
            if failed:
                return text if status in statuses else _GORILLA_LOGS.get(status)
    return _GORILLA_LOGS.get(status)


# a Sec-WebSocket-Key gorilla 1.5.1 and later take: the base64 of 16 bytes
_KEY = re.compile(r"[A-Za-z0-9+/]{22}==")

# Traefik's own answers (documented, not captured: Traefik is not installable here). Its FAQ
# ("Why is Traefik answering XXX?"): 502 when contacting the service failed, 503 when the
# service has no healthy server, 504 when the service did not answer in time; the body is
# the bare status text, and no Server header. (404 without a matching router is Go's
# "404 page not found": texts.py.)
_TRAEFIK = {
    502: ("Bad Gateway", "500/502 in the access log: the dial to the service failed (a "
          "connection refused, or a service on another network)"),
    503: ("Service Unavailable", "503: the service has no server, or health checks marked all "
          "of them down"),
    504: ("Gateway Timeout", "504: the service did not answer within forwardingTimeouts"),
}

# A proxy's connection to its backend refused (correlate.py `proxy_backend_refused`): its
# finding's text, which these functions write and read, and nginx's error log line for it
# (ngx_http_upstream.c, with ngx_http_log_error's context: the client's address, the server
# block's server_name, the request line, the upstream as the proxy's scheme, peer and URI,
# and the Host header). nginx 1.22 wrote it so against a refused backend
# (tests/test_proxy_refused_live.py); the server_name is nginx's configuration, not on the
# wire ("..."), and the upstream's scheme and URI are those of `proxy_pass http://ADDRESS;`,
# which passes the request's own target.
_REFUSED = " refused the proxy's connection from "


def backend_refused_found(backend: str, proxy: str, retries: int = 0) -> str:
    """The `proxy_backend_refused` finding's text: ``backend`` refused the connection the
    proxy opened from ``proxy`` (RST to its SYN), and the ``retries`` after it."""
    again = f", and its {retries} {'retry' if retries == 1 else 'retries'} alike" if (
        retries) else ""
    return f"{backend}{_REFUSED}{proxy} (RST to its SYN){again}"


def refused_backend(found: str) -> str:
    """The backend's address in a `proxy_backend_refused` text."""
    return found.split(_REFUSED, 1)[0]


def refused_retries(found: str) -> int:
    """How many retries a `proxy_backend_refused` text counts."""
    counted = _RETRIES.search(found)
    return int(counted.group(1)) if counted else 0


_RETRIES = re.compile(r", and its (\d+) retr")


def nginx_upstream_refused(backend: str, client_ip: str, method: str, target: str,
                           version: str, host: str | None) -> str:
    """What nginx logged (at error) when ``backend`` refused its connection for a request."""
    line = (f"connect() failed (111: Connection refused) while connecting to upstream, "
            f'client: {client_ip}, server: ..., request: "{method} {target} {version}", '
            f'upstream: "http://{backend}{target}"')
    return line + (f', host: "{host}"' if host is not None else "")


def apache_log(template: str, client: str, path: str, body: bytes, refused: str | None = None,
               timed_out: str | None = None) -> str:
    """What Apache httpd logged with one of its own pages (``template``: the page's
    texts.APACHE_* line) for the request of ``client`` to ``path``: the template filled, or
    the whole lines when the proxy's other leg is in the capture (correlate.py): ``refused``,
    the backend that refused its connection (the 503), ``timed_out``, the backend that did
    not answer within ProxyTimeout (the 502). Apache's 502 page says why (its "Reason:"),
    which it logged as AH00898 too."""
    if template == APACHE_UNAVAILABLE and refused is not None:
        host = refused.rsplit(":", 1)[0].strip("[]")
        return (f"(111)Connection refused: AH00957: ...: attempt to connect to {refused} "
                f"({refused}) failed / [client {client}] AH01114: HTTP: failed to make "
                f"connection to backend: {host}")
    line = template.replace("CLIENT", client)
    if template == APACHE_PROXY_ERROR:
        if timed_out is not None:
            line = (f"(70007)The timeout specified has expired: [client {client}] AH01102: "
                    f"error reading status line from remote server {timed_out}")
        reason = _APACHE_REASON.search(body)
        if reason is not None:
            said = reason.group(1).decode("latin-1")
            # (AH01102 comes before this reason only: its others are logged on their own)
            line = (f"{line} / " if said == _APACHE_READING else "") + (
                f"[client {client}] AH00898: {said} returned by {path}")
    return line


def timed_out_backend(found: str) -> str:
    """The backend's address in a `proxy_backend_timeout` text (correlate.py writes it)."""
    return found.split(" took the proxy's request", 1)[0]


# mod_proxy's 502 page: "<p>Reason: <strong>Error reading from remote server</strong></p>"
_APACHE_REASON = re.compile(rb"Reason: <strong>([^<\n]*)</strong>")
_APACHE_READING = "Error reading from remote server"


# Squid's own error pages (texts.SQUID_*): the error's name in X-Squid-Error with the errno
# Squid met ("ERR_CONNECT_FAIL 111", 0 for none), or in the page's <body id=...>; the system's
# words for it on the English page ("The system returned: <i>(111) Connection refused</i>"),
# else Linux's for the errno
_SQUID_LOGS = {"ERR_ACCESS_DENIED": SQUID_DENIED, "ERR_CACHE_ACCESS_DENIED": SQUID_AUTH,
               "ERR_CONNECT_FAIL": SQUID_CONNECT_FAIL}
_SQUID_BODY_ID = re.compile(rb"<body id=(ERR_[A-Z_]+)>")
_SQUID_SYSTEM = re.compile(rb"The system returned: <i>([^<\n]{1,120})</i>")
_LINUX_ERRNO = {101: "Network is unreachable", 104: "Connection reset by peer",
                110: "Connection timed out", 111: "Connection refused", 113: "No route to host"}


def squid_error(head: ResponseHead, body: bytes) -> tuple[str, str] | None:
    """(the error's name, the system's words for what failed, "" for none) of one of Squid's
    own pages, or None for an answer Squid did not write itself."""
    said = (head.headers.get("x-squid-error") or "").split()
    if said:
        name, number = said[0], said[1] if len(said) > 1 else ""
    else:
        page = _SQUID_BODY_ID.search(body) if body else None
        if page is None:
            return None
        name, number = page.group(1).decode(), ""
    system = _SQUID_SYSTEM.search(body) if body else None
    if system is not None:
        return name, system.group(1).decode("latin-1")
    text = _LINUX_ERRNO.get(int(number)) if number.isdigit() else None
    return name, f"({number}) {text}" if text else ""


def squid_log(template: str, status: int, client_ip: str, request: RequestHead,
              sent: int) -> str:
    """Squid's access.log line (its native format) for its own page (``template``: the
    texts.SQUID_* line of the page) answering ``client_ip``'s ``request``, ``sent`` bytes on
    the wire."""
    method, target = request.method, request.target
    connect = method.upper() == "CONNECT"
    if template == SQUID_CONNECT_FAIL and not connect:
        template = SQUID_FORWARD_FAIL  # (a request it forwards: the page is counted)
    # the URL as Squid logs it: a CONNECT's authority, a proxied request's absolute URL (an
    # accelerator's, built from its own configuration, is not on the wire)
    url = target if connect or "://" in target else "..."
    host = _host_of(target if connect else target.split("://", 1)[-1].split("/", 1)[0])
    peer = host if _IP_LITERAL.fullmatch(host) else "..."  # (a name it resolved: not here)
    user = "..." if request.headers.has("proxy-authorization") else "-"
    values = {"CLIENT": client_ip, "BYTES": str(sent), "METHOD": method, "URL": url,
              "USER": user, "PEER": peer, "STATUS": str(status)}
    # (in one pass: a URL may hold a placeholder's word)
    return _PLACEHOLDER.sub(lambda m: values[m.group(0)], template)


def _host_of(authority: str) -> str:
    """The host of ``host:port`` (an IPv6 address without its brackets)."""
    if authority.startswith("["):
        return authority[1:].split("]", 1)[0]
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


_PLACEHOLDER = re.compile(r"\b(CLIENT|BYTES|METHOD|URL|USER|PEER|STATUS)\b")
_IP_LITERAL = re.compile(r"[0-9]+(\.[0-9]+){3}|[0-9A-Fa-f]*:[0-9A-Fa-f:.]*")


def caddy_dial_refused(backend: str) -> str:
    """The message of Caddy's http.log.error line when ``backend`` refused its dial (as
    captures/caddy_websockets.pcap's Caddy logged it, expected.json)."""
    return f"dial tcp {backend}: connect: connection refused"


# A backend's answer that a proxy passed on under its own Server header (correlate.py
# `proxy_passed_on`): its finding's text, which these functions write and read. Its author is
# named by the back leg's answer (its words, its own Server header), else by its address.
_WROTE = " wrote this "


def passed_on_found(author: str, status: int, proxy_server: str, backend_server: str | None
                    ) -> str:
    """The `proxy_passed_on` text: ``author`` wrote the answer (``status``) that the proxy
    sent on with Server: ``proxy_server`` (the backend's own: ``backend_server``)."""
    backend = f"Server: {backend_server}" if backend_server else "no Server header"
    return (f"{author}{_WROTE}{status} (with {backend}); the proxy sent it on with Server: "
            f"{proxy_server}")


def passed_on_author(found: str) -> str:
    """Who wrote the answer a `proxy_passed_on` text is about."""
    return found.split(_WROTE, 1)[0]


# HAProxy's log line with `option httplog` (Debian's haproxy.cfg sets it): the client's
# address, [the accept date], the frontend, backend/server, the timers TR/Tw/Tc/Tr/Ta, the
# status, the bytes sent to the client, the captured cookies (none: "- -"), the termination
# state, actconn/feconn/beconn/srv_conn/retries, the server's and backend's queues, and the
# request line (src/log.c). What is not on the wire is "...": the date (HAProxy's local
# time), the names (its configuration), what it counted and measured, except the -1 timers a
# state implies and the retries a capture holds refused. Its byte count is not the wire's
# (HAProxy 2.6 logged 192 for its own 189-byte 403, 167 for a backend's 168-byte one). By
# termination state, the timers and the server, for the states an answer tells (an
# http-request deny's 403 or 429: PR; its 504: sH, timeout server; its 503 with the refused
# connections captured: SC), as HAProxy 2.6 logged each in tests/test_haproxy_live.py.
_HAPROXY_STATES = {
    "PR": (".../-1/-1/-1/...", "<NOSRV>"),
    "sH": (".../.../.../-1/...", "..."),
    "SC": (".../.../-1/-1/...", "..."),
}
_HAPROXY_STATE_OF = {403: "PR", 429: "PR", 504: "sH"}


def haproxy_state(status: int, refused: bool) -> str | None:
    """The termination state HAProxy logged with its own answer ``status`` (``refused``: the
    capture holds its connection to the backend refused), when the answer tells."""
    if status == 503:
        return "SC" if refused else None  # (503 is also a queue's timeout, sQ)
    return _HAPROXY_STATE_OF.get(status)


def haproxy_log(state: str, client: Endpoint, status: int, method: str, target: str,
                version: str, retries: int | None = None) -> str:
    """HAProxy's httplog line for its own answer ``status`` to ``client``'s request, ended in
    termination ``state`` (`haproxy_state`)."""
    timers, server = _HAPROXY_STATES[state]
    counts = ".../.../.../.../" + ("..." if retries is None else str(retries))
    return (f"{client.ip}:{client.port} [...] ... .../{server} {timers} {status} ... - - "
            f'{state}-- {counts} .../... "{method} {target} {version}"')


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
    ("tornadoserver", "tornado"),
    ("daphne", "daphne"),
    ("gunicorn", "gunicorn"),
    ("jetty", "Jetty"),
    ("envoy", "Envoy"),
    ("istio-envoy", "Envoy (Istio)"),
    ("kong", "Kong"),
    ("ats/", "Apache Traffic Server"),
    ("nginx", "nginx"),
    ("caddy", "Caddy"),
    ("apache", APACHE),
    ("squid/", SQUID),
    ("microsoft-iis", "IIS"),
    ("cloudflare", "Cloudflare"),
)


def match_response(head: ResponseHead, body: bytes) -> ServerMatch | None:
    """The implementation a response's own words point at, if any."""
    return match_known(head, body, match_words(head, body))


def match_known(head: ResponseHead, body: bytes, known: KnownText | None) -> ServerMatch | None:
    """`match_response` given ``match_words(head, body)``, which the checks' facts already
    hold for a rejection (`Facts.said`): the attribution does not scan the texts again
    (`match_response` is its plain twin, tests/test_attribution.py)."""
    if known is not None:
        if known.server == SERVLET:
            # the Servlet API's words: the Server header, if any, names the container
            named = _by_server_header((head.headers.get("server") or "").lower())
            server = f"{named} (HttpServlet's default doGet)" if named else known.server
            return ServerMatch(server, "high", f'body "{known.text}"', known.log)
        if known.where == "shape":  # a shape is a weaker tell than words
            return ServerMatch(known.server, "medium",
                               f'status line and header names exactly "{known.text}"',
                               server_log(known, head.status, body))
        where = "reason phrase" if known.where == "reason" else "body"
        return ServerMatch(known.server, "high", f'{where} "{known.text}"',
                           server_log(known, head.status, body))
    headers = head.headers
    via = " ".join(headers.all("via")).lower()
    server_header = (headers.get("server") or "").lower()
    if "kong" in via or "kong" in server_header:
        return ServerMatch("Kong", "high", f"Via/Server: {headers.get('via') or server_header}")
    squid = headers.get("x-squid-error")
    if squid:  # (its page's body was not captured: texts.py knows the pages by their id)
        error = squid.split()[0] if squid.split() else ""
        return ServerMatch(SQUID, "high", f"X-Squid-Error: {squid.strip()}",
                           _SQUID_LOGS.get(error, SQUID_OTHER))
    if "envoy" in server_header and head.status == 403:
        return ServerMatch("Envoy", "high", "Server: envoy with 403", "upgrade_failed")
    # (the status and the case-insensitive look-up first: they rule out most responses,
    # every 101 among them, without a walk)
    gorilla = head.status >= 400 and headers.has("sec-websocket-version") and any(
        f.name == "Sec-Websocket-Version" for f in headers.fields
    )
    if gorilla:
        return ServerMatch(GORILLA, "medium",
                           "header spelled 'Sec-Websocket-Version' (Go's canonical form)",
                           _GORILLA_LOGS.get(head.status))
    if head.status == 426 and headers.get("sec-websocket-version") and not server_header:
        # Tomcat's answer to a version other than 13 (captures/tomcat10_websocket.pcap: no
        # reason phrase, no body); Spring's handshake handler answers the same
        return ServerMatch("Tomcat or Spring", "low", "426 with Sec-WebSocket-Version, no Server",
                           "Tomcat: nothing but the access log (426); Spring: Handshake failed "
                           "due to unsupported WebSocket version")
    traefik = _TRAEFIK.get(head.status)
    if traefik is not None and body.strip() == traefik[0].encode():
        return ServerMatch("Traefik", "low", f'{head.status} with the body exactly '
                           f'"{traefik[0]}"', traefik[1])
    name = _by_server_header(server_header)
    if name is not None:
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


# The implementations in the tables above that are origin servers (a WebSocket library, an
# application server), never a gateway in front of one: a 5xx such a server sends is its own.
_ORIGINS = frozenset(("python websockets", "aiohttp", "Hypercorn", "uvicorn", "Werkzeug",
                      "gunicorn", "Jetty", "tornado", "Node ws"))


def origin_server(head: ResponseHead, said: KnownText | None) -> str | None:
    """The origin server that wrote a response, when its words or its own Server header name
    one (a gateway's answer carries the gateway's Server header, or none: unknown is None).
    A proxy that passes the answer on leaves its author's header in place (nginx hides it
    and writes its own), so the header names who wrote the status."""
    if said is not None:
        return said.server if said.server in _ORIGINS else None
    name = _by_server_header((head.headers.get("server") or "").lower())
    return name if name in _ORIGINS else None


def _by_server_header(server_header: str) -> str | None:
    for needle, name in _SERVER_HEADER if server_header else ():
        if needle in server_header:
            return name
    return None


def match_silent_close(attempt: Attempt, fault: str | None) -> ServerMatch | None:
    """A server that closes without any response to a request with ``fault``: the tungstenite
    family does exactly that for the faults it names in its log (TUNGSTENITE_LOGS). A silent
    close alone names nobody: tungstenite answers a valid request, and many servers close
    on their own errors without a word (uvicorn's wsproto on an unoffered subprotocol,
    python websockets on a request with a body, daphne's reset: sweep30b B11)."""
    log = TUNGSTENITE_LOGS.get(fault or "")
    if log is None:
        return None
    return ServerMatch("tungstenite (tokio-tungstenite, axum's base)", "low",
                       f"closed the connection without any HTTP response to a request "
                       f"tungstenite refuses so ({fault})", log)
