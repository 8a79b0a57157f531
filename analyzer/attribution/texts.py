"""The servers' own words: one table of the texts real servers put in a rejection, with who
sends each, what it logs, and the catalogue finding it names.

Both the attribution (who answered, what it logged) and the checks (the primary reason) read
this table, so a text is added once. Texts are exact strings from each project's source or from
running it (../shared/reference/handshake-failures.md §3, captures/expected.json), compared
case-sensitively. Most specific first: where one text contains another (python websockets'
"Failed to open a WebSocket connection: missing subprotocol" and its generic prefix), the
longer one is listed before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from analyzer.http.message import ResponseHead

# The causes a text can name, as families of catalogue ids: the request checks may already
# have found the same fault under a more precise id (a plain GET is request_without_upgrade,
# not upgrade_header_missing), and the server's words then confirm that finding.
UPGRADE = ("request_without_upgrade", "upgrade_header_missing", "upgrade_not_websocket")
CONNECTION = ("connection_without_upgrade",)
VERSION = ("ws_version_missing", "ws_version_not_13")
KEY = ("ws_key_missing", "ws_key_invalid", "ws_key_repeated")
METHOD = ("ws_method_not_get",)


@dataclass(frozen=True, slots=True)
class KnownText:
    """A text that identifies an implementation, what it logs when it sends it, and the cause."""

    where: str  # "reason" (status line), "body", or "shape" (see `shape_of`)
    text: str
    server: str
    log: str | None  # what that server logs; see `server_log` for texts that carry it
    names: tuple[str, ...] = ()  # catalogue ids of the cause this text names (a family)
    # True when the text names a cause no request check can see (the server's own policy:
    # "missing subprotocol"): the checks then add names[0] as a finding of its own.
    adds: bool = False


# nginx's 400 bodies with `ssl_verify_client on` (ngx_http_request.c) and what it logs with
# each (checks/tls.py reads the bodies: `tls_client_certificate_required`)
NGINX_CLIENT_CERTIFICATE = (
    ("No required SSL certificate was sent",
     "client sent no required SSL certificate while reading client request headers"),
    ("The SSL certificate error",
     "client SSL certificate verify error: (...) while reading client request headers"),
)
# nginx's log line for an RFC 8441 extended CONNECT (nginx has no RFC 8441: it answers 400;
# the sweep of the twenty-ninth session, nginx 1.22)
NGINX_H2_PROTOCOL_PSEUDO_HEADER = (
    'client sent unknown pseudo-header ":protocol" while reading client request headers')
_WS = "python websockets"
APACHE = "Apache httpd"
# What Apache httpd logs with its own pages, as templates: CLIENT is the client's address and
# port, /PATH the request's path, "..." what is not on the wire (the backend as ProxyPass
# names it, the file under DocumentRoot, an errno); attribution.servers.apache_log fills
# them, and writes the lines out whole when the proxy's other leg is in the capture.
APACHE_UNAVAILABLE = ("(...)...: AH00957: ...: attempt to connect to ... (...) failed / "
                      "[client CLIENT] AH01114: HTTP: failed to make connection to backend: ...")
APACHE_PROXY_ERROR = ("(...)...: [client CLIENT] AH01102: error reading status line from remote "
                      "server ...")
APACHE_DENIED = "[client CLIENT] AH01630: client denied by server configuration: ..."
APACHE_NOT_FOUND = ("nothing at LogLevel warn, the default (the access log's 404); at info: "
                    "[client CLIENT] AH00128: File does not exist: ...")
APACHE_TEMPLATES = frozenset((APACHE_UNAVAILABLE, APACHE_PROXY_ERROR, APACHE_DENIED,
                              APACHE_NOT_FOUND))
# Squid's own error pages (errorpage.cc; Debian's squid 5.7 run as a forward proxy in
# tests/test_squid_live.py): every page's <body> has the error's name as its id, in every
# language, and its X-Squid-Error header names it too (servers.py reads the header when the
# body was not captured). Its log line is the access.log entry in Squid's native format,
# rebuilt per attempt by attribution.servers.squid_log from these templates: CLIENT, BYTES
# (its count is the wire's, head and page), METHOD, URL, USER and PEER (the target's
# address) filled, "..." the time and the milliseconds it took.
SQUID = "Squid"
SQUID_DENIED = "... CLIENT TCP_DENIED/403 BYTES METHOD URL USER HIER_NONE/- text/html"
SQUID_AUTH = "... CLIENT TCP_DENIED/407 BYTES METHOD URL USER HIER_NONE/- text/html"
# (a CONNECT's: Squid 5.7 counts no byte of the 503 page it sends, and logs no type)
SQUID_CONNECT_FAIL = "... CLIENT NONE_NONE/503 0 METHOD URL USER HIER_DIRECT/PEER -"
SQUID_FORWARD_FAIL = "... CLIENT TCP_MISS/503 BYTES METHOD URL USER HIER_DIRECT/PEER text/html"
SQUID_OTHER = "... CLIENT .../STATUS BYTES METHOD URL USER .../... text/html"
TOMCAT = "Apache Tomcat"
SERVLET = "a Java servlet container (HttpServlet's default doGet)"
_FAILED = "Failed to open a WebSocket connection: "
TORNADO = "tornado"
SPRING_UPGRADE = "Can \"Upgrade\" only to \"WebSocket\"."
# Node ws writes no log line for a handshake it refuses (a 'wsClientError' listener would get
# the error instead, and the answer would be the application's)
NODE_WS_LOG = "nothing: ws logs no refused handshake"


def _websockets(message: str, names: tuple[str, ...] = (), adds: bool = False) -> KnownText:
    return KnownText("body", _FAILED + message, _WS, None, names, adds)


TEXTS: tuple[KnownText, ...] = (
    # actix-web (actix-http HandshakeError): custom reason phrases, empty body
    KnownText("reason", "No WebSocket Upgrade header found", "actix-web", "NoWebsocketUpgrade",
              UPGRADE),
    KnownText("reason", "No Connection upgrade", "actix-web", "NoConnectionUpgrade", CONNECTION),
    KnownText("reason", "WebSocket version header is required", "actix-web", "NoVersionHeader",
              VERSION),
    KnownText("reason", "Unsupported WebSocket version", "actix-web", "UnsupportedVersion",
              VERSION),
    KnownText("reason", "Handshake error", "actix-web", "BadWebsocketKey", KEY),
    KnownText("reason", "Unsupported websocket version specification", "Jetty",
              "Unsupported Websocket version: N", VERSION),
    # Jetty 9.4: the same words in its error page's body (reason phrase "Bad Request"), and
    # the missing key as a BadMessageException (captures/jetty9_websocket.pcap)
    KnownText("body", "Unsupported websocket version specification", "Jetty",
              "WARN oejws.WebSocketServerFactory: Client ADDRESS (:PORT) User Agent: \"...\" "
              "requested WebSocket version [N], Jetty supports version: [13]", VERSION),
    KnownText("body", "Missing request header &apos;Sec-WebSocket-Key&apos;", "Jetty",
              "WARN oejs.HttpChannel: handleException /PATH org.eclipse.jetty.http."
              "BadMessageException: 400: Missing request header 'Sec-WebSocket-Key'", KEY),
    # The Servlet API's HttpServlet.doGet, reached by a plain GET to a servlet that only
    # upgrades (Jetty's WebSocketServlet; captures/jetty9_websocket.pcap)
    KnownText("body", "HTTP method GET is not supported by this URL", SERVLET,
              "(nothing but the access log: 405)", UPGRADE),
    KnownText("reason", "Invalid Upgrade Request", "Apache Traffic Server", None),
    # aiohttp: HTTPBadRequest whose text is the body (and the log line, see server_log)
    KnownText("body", "No WebSocket UPGRADE hdr:", "aiohttp",
              "HTTPBadRequest: No WebSocket UPGRADE hdr", UPGRADE),
    KnownText("body", "No CONNECTION upgrade hdr:", "aiohttp",
              "HTTPBadRequest: No CONNECTION upgrade hdr", CONNECTION),
    KnownText("body", "Unsupported version:", "aiohttp", "HTTPBadRequest: Unsupported version",
              VERSION),
    KnownText("body", "Handshake error:", "aiohttp", "HTTPBadRequest: Handshake error", KEY),
    # python websockets (new API): "Failed to open a WebSocket connection: <exception text>."
    _websockets("missing subprotocol", ("ws_protocol_required",), adds=True),
    _websockets("invalid subprotocol; expected one of", ("ws_protocol_unsupported",),
                adds=True),
    _websockets("missing Connection header", CONNECTION),
    _websockets("invalid Connection header", CONNECTION),
    _websockets("missing Upgrade header", UPGRADE),
    _websockets("invalid Upgrade header", UPGRADE),
    _websockets("missing Sec-WebSocket-Key header", KEY),
    _websockets("invalid Sec-WebSocket-Key header", KEY),
    _websockets("missing Sec-WebSocket-Version header", VERSION),
    _websockets("invalid Sec-WebSocket-Version header", VERSION),
    KnownText("body", "You cannot access a WebSocket server directly with a browser", _WS, None),
    KnownText("body", _FAILED.rstrip(), _WS, None),
    # axum
    KnownText("body", "Request method must be `GET`", "axum", "MethodNotGet", METHOD),
    KnownText("body", "Connection header did not include 'upgrade'", "axum",
              "InvalidConnectionHeader", CONNECTION),
    KnownText("body", "`Upgrade` header did not include 'websocket'", "axum",
              "InvalidUpgradeHeader", UPGRADE),
    KnownText("body", "`Sec-WebSocket-Version` header did not include '13'", "axum",
              "InvalidWebSocketVersionHeader", VERSION),
    # coder/websocket (nhooyr): the body is the error text, which is also what it returns
    KnownText("body", "WebSocket protocol violation: Connection header", "coder/websocket",
              None, CONNECTION),
    KnownText("body", "WebSocket protocol violation: Upgrade header", "coder/websocket", None,
              UPGRADE),
    KnownText("body", "WebSocket protocol violation: handshake request method is not GET",
              "coder/websocket", None, METHOD),
    KnownText("body", "must be a 16 byte base64 encoded string", "coder/websocket", None, KEY),
    KnownText("body", "WebSocket protocol violation:", "coder/websocket", None),
    KnownText("body", "unsupported WebSocket protocol version (only 13 is supported)",
              "coder/websocket", None, VERSION),
    # Node ws (abortHandshake): the body is the message; ws logs nothing (8.11 run,
    # tests/test_gorilla_nodews_live.py: version 8 it takes, as 13)
    KnownText("body", "Missing or invalid Sec-WebSocket-Key header", "Node ws", NODE_WS_LOG,
              KEY),
    KnownText("body", "Missing or invalid Sec-WebSocket-Version header", "Node ws",
              NODE_WS_LOG, VERSION),
    KnownText("body", "Invalid Sec-WebSocket-Protocol header", "Node ws", NODE_WS_LOG),
    KnownText("body", "Invalid or unacceptable Sec-WebSocket-Extensions header", "Node ws",
              NODE_WS_LOG),
    KnownText("body", "Invalid Upgrade header", "Node ws", NODE_WS_LOG, UPGRADE),
    KnownText("body", "Invalid HTTP method", "Node ws", NODE_WS_LOG, METHOD),
    # Spring (AbstractHandshakeHandler); tornado's WebSocketHandler sends the first text too,
    # word for word (SHARED, below)
    KnownText("body", SPRING_UPGRADE, "Spring", "Handshake failed due to invalid Upgrade header",
              UPGRADE),
    KnownText("body", "\"Connection\" must be \"upgrade\".", "Spring",
              "Handshake failed due to invalid Connection header", CONNECTION),
    # tornado (WebSocketHandler.get, accept_connection): the body is the text it logs at
    # debug level; what it logs by default is its access line (attribution/__init__.py). Its
    # Connection text has a capital U where Spring's has "upgrade".
    KnownText("body", "\"Connection\" must be \"Upgrade\".", TORNADO, None, CONNECTION),
    KnownText("body", "Cross origin websockets not allowed", TORNADO, None),
    KnownText("body", "Missing/Invalid WebSocket headers", TORNADO, None,
              ("ws_host_missing", *KEY, *VERSION)),
    # nginx's own error pages
    *(KnownText("body", text, "nginx", log) for text, log in NGINX_CLIENT_CERTIFICATE),
    KnownText("body", "The plain HTTP request was sent to HTTPS port", "nginx",
              "client sent plain HTTP request to HTTPS port while reading client request "
              "headers", ("tls_plain_http_to_tls_port",), adds=True),
    KnownText("body", "Request Header Or Cookie Too Large", "nginx",
              "client sent too long header line", ("request_headers_too_large",), adds=True),
    KnownText("body", "414 Request-URI Too Large", "nginx",
              "client sent too long URI while reading client request line",
              ("request_target_too_long",), adds=True),
    # Apache httpd's own pages (core, mod_proxy): the log line of each is a template that
    # attribution.servers.apache_log fills per attempt (2.4.71 logged them so,
    # tests/test_apache_live.py). The 403 and 404 pages are those of 2.4.39 and later (before:
    # "...access /PATH on this server.", the same start).
    KnownText("body", "Size of a request header field exceeds server limit", APACHE,
              "AH00561: Size of a request header field exceeds server limit",
              ("request_headers_too_large",), adds=True),
    KnownText("body", "The server is temporarily unable to service your", APACHE,
              APACHE_UNAVAILABLE),
    KnownText("body", "The proxy server received an invalid", APACHE, APACHE_PROXY_ERROR),
    KnownText("body", "You don't have permission to access", APACHE, APACHE_DENIED),
    KnownText("body", "The requested URL was not found on this server.", APACHE,
              APACHE_NOT_FOUND),
    # Envoy (Istio, many gateways): documented texts, not captured (Envoy is not installable
    # here), with the access log's response flags
    KnownText("body", "upstream connect error or disconnect/reset before headers", "Envoy",
              "response flags UF/URX (upstream connection failure)"),
    KnownText("body", "no healthy upstream", "Envoy", "response flag UH (no healthy upstream)"),
    KnownText("body", "upstream request timeout", "Envoy",
              "response flag UT (upstream request timeout: the route's timeout, 15 s by default)"),
    # the HTTP RBAC filter's fixed 403 body (Envoy's RBAC sandbox); no response flag is set
    KnownText("body", "RBAC: access denied", "Envoy (HTTP RBAC filter)",
              "stat http.<stat_prefix>.rbac.denied: an RBAC policy denied the request"),
    # Go's http.NotFound: Traefik without a matching router, or any Go server's mux
    KnownText("body", "404 page not found", "Go net/http (Traefik without a matching router, "
              "or a Go server's mux)", None),
    # Servlet containers' own error pages, after the texts that name a cause: Tomcat's
    # ErrorReportValve (its version in the footer unless showServerInfo="false") and Jetty's
    # ErrorHandler (captures/tomcat10_websocket.pcap, jetty9_websocket.pcap)
    KnownText("body", "<h3>Apache Tomcat/", TOMCAT, None),
    KnownText("body", "<h1>HTTP Status ", TOMCAT + " (version hidden)", None),
    KnownText("body", "<h2>HTTP ERROR ", "Jetty", None),
    # Frameworks' own pages for a plain request to a WebSocket route (captures/)
    KnownText("body", "The browser (or proxy) sent a request that this server could not "
              "understand.", "Werkzeug (Flask; Flask-Sock's answer to a plain request)", None),
    KnownText("body", "The requested resource was not found on this server.",
              "Django (Channels: the path is only in the websocket router)",
              "Not Found: /PATH (django.request warning)"),
    # Engine.IO (Socket.IO's transport layer): JSON {"code":N,"message":"..."}
    KnownText("body", "Session ID unknown", "Socket.IO (Engine.IO)", None,
              ("engineio_session_unknown",), adds=True),
    KnownText("body", "Transport unknown", "Socket.IO (Engine.IO)", None,
              ("engineio_transport_unknown",), adds=True),
    # HAProxy's own error pages (the status finding already says "gateway"; the 403 and 429
    # are its `http-request deny` rules': HAProxy 2.6 answered a WebSocket upgrade so in
    # tests/test_haproxy_live.py). The log line of each is rebuilt by `servers.haproxy_log`.
    KnownText("body", "Request forbidden by administrative rules.", "HAProxy",
              "termination state PR: an http-request deny rule refused the request"),
    KnownText("body", "You have sent too many requests in a given amount of time.", "HAProxy",
              "termination state PR: an http-request deny rule (deny_status 429) refused the "
              "request"),
    KnownText("body", "No server is available to handle this request.", "HAProxy",
              "termination state SC: no server was up (<NOSRV>, with the alert 'backend "
              "... has no server available!'), or every connection to the chosen server "
              "failed, retries included (e.g. refused)"),
    KnownText("body", "The server returned an invalid or incomplete response.", "HAProxy",
              "termination state SH: the server aborted before sending a complete response"),
    KnownText("body", "The server didn't respond in time.", "HAProxy",
              "termination state sH: timeout server expired before the response"),
    # Squid's own pages (the templates above), its other pages after the ones run live
    KnownText("body", "<body id=ERR_ACCESS_DENIED>", SQUID, SQUID_DENIED),
    KnownText("body", "<body id=ERR_CACHE_ACCESS_DENIED>", SQUID, SQUID_AUTH),
    KnownText("body", "<body id=ERR_CONNECT_FAIL>", SQUID, SQUID_CONNECT_FAIL),
    KnownText("body", "<body id=ERR_", SQUID, SQUID_OTHER),
)

# Texts more than one server sends word for word: the other senders, each with the Server
# header that names it. tornado's WebSocketHandler answers an Upgrade other than websocket
# with Spring's words (tornado/websocket.py, 400).
SHARED: dict[str, tuple[tuple[str, KnownText], ...]] = {
    SPRING_UPGRADE: (("tornadoserver", KnownText("body", SPRING_UPGRADE, TORNADO, None,
                                                 UPGRADE)),),
}

# Rejections without telling words, known by their exact shape: status line and header names
# in order (`shape_of`). uvicorn answers 403 when the ASGI app closes a WebSocket before
# accepting it (no route, or the app refused), in each back end's own way; daphne's 500 is
# Autobahn's bare status line; Node ws's abortHandshake and Node's own 426 for a plain request
# to a standalone ws server have fixed header lists (captures/*.pcap of each).
_ASGI_CLOSED = ("ws_rejected_before_accept",)
# Node ws's bare refusals (the status text as body), by who refused: ws itself for a path
# that is not its own and while closing, else the application's verifyClient (401 unless it
# gives a code: 403 in the live test)
_VERIFY_CLIENT = "nothing from ws: the application's verifyClient refused it"
_NODE_WS_BARE = {
    "400 Bad Request": NODE_WS_LOG + " (a path other than its path option, or shouldHandle "
                       "said no)",
    "401 Unauthorized": _VERIFY_CLIENT,
    "403 Forbidden": _VERIFY_CLIENT,
    "405 Method Not Allowed": _VERIFY_CLIENT,
    "503 Service Unavailable": NODE_WS_LOG + " (the server was closing)",
}
_UVICORN_LOG = "\"WebSocket /PATH\" 403 / connection rejected (403 Forbidden)"
_UVICORN_500 = "ERROR: Exception in ASGI application (and its traceback)"
SHAPES: tuple[KnownText, ...] = (
    KnownText("shape", "403 |content-length", "uvicorn (wsproto)",
              "\"WebSocket /PATH\" 403", _ASGI_CLOSED, adds=True),
    KnownText("shape", "403 Forbidden|date,content-length,content-type,connection",
              "uvicorn (websockets)", _UVICORN_LOG, _ASGI_CLOSED, adds=True),
    KnownText("shape", "403 Forbidden|date,connection,content-length,content-type",
              "uvicorn (websockets-sansio)", _UVICORN_LOG, _ASGI_CLOSED, adds=True),
    # uvicorn's 500 when the application raised before accepting, in each back end's way
    # (sweep30b s1); its log is the exception's
    KnownText("shape", "500 Internal Server Error|date,connection,content-length,content-type",
              "uvicorn (websockets-sansio)",
              _UVICORN_500 + " / connection rejected (500 Internal Server Error)"),
    KnownText("shape", "500 |content-type,connection,content-length", "uvicorn (wsproto)",
              _UVICORN_500),
    # daphne (Autobahn's ConnectionDeny) when the application closed before accepting: a
    # bare status line (sweep30b s10)
    KnownText("shape", "403 Access denied|", "daphne (Autobahn)",
              "\"WSCONNECTING /PATH\" then \"WSREJECT /PATH\" (its access log)", _ASGI_CLOSED,
              adds=True),
    KnownText("shape", "500 Internal server error|", "daphne (Autobahn)",
              "Exception inside application (Channels: ValueError: No route found for path "
              "'...', or an exception in the consumer's connect)"),
    KnownText("shape", "426 Upgrade Required|content-length,content-type,date,connection,"
              "keep-alive", "Node ws (standalone server: Node's HTTP server)",
              "nothing: Node's HTTP server answers a request without Upgrade so itself",
              UPGRADE),
    *(KnownText("shape", f"{status}|connection,content-type,content-length", "Node ws", log)
      for status, log in _NODE_WS_BARE.items()),
)
_BY_SHAPE = {known.text: known for known in SHAPES}
# Engine.IO's abortUpgrade (engine.io lib/server.ts) refuses a WebSocket upgrade with Node
# ws's shape but its own spelling, "Content-type" (sweep30b s6_socketio.pcap), and the
# message as body: its own for its errors ("Transport unknown", in TEXTS), else the message
# the application's allowRequest callback gave (or "Forbidden" without one).
_ENGINEIO_SHAPE = "400 Bad Request|Connection,Content-type,Content-Length"
ENGINEIO_ABORT_UPGRADE = KnownText("shape", _ENGINEIO_SHAPE, "Socket.IO (Engine.IO)", None,
                                   ("engineio_request_refused",), adds=True)
# its other own messages (errorMessages 2, 3, 5) name no refusal of the application's
_ENGINEIO_ERROR = KnownText("shape", _ENGINEIO_SHAPE, "Socket.IO (Engine.IO)", None)
_ENGINEIO_OWN = (b"Bad handshake method", b"Bad request", b"Unsupported protocol version")
# Node ws's abortHandshake writes the headers a verifyClient callback adds after its own three
# (WWW-Authenticate on a 401, in the sweep of the twenty-eighth session): such an answer has
# its shape with more names after them, and the status text (Node's default message) as body.
_NODE_WS_NAMES = "connection,content-type,content-length"

# uvicorn's answer to an application's denial response ("websocket.http.response.start",
# the ASGI WebSocket Denial Response extension; uvicorn/protocols/websockets/*_impl.py, read
# against the real uvicorn in tests/test_uvicorn_denial_live.py): the application's headers,
# then those its back end sets when the application did not, in the back end's order, with
# the status's phrase and no Server header (python websockets' legacy server for
# "websockets", its sans-I/O Response for "websockets-sansio"); wsproto's (h11's) has no
# reason phrase and ends with Transfer-Encoding: chunked (the application gave no
# Content-Length), no Date, no Server. At least three of the set names must be there: fewer
# say too little. (The same answer without the application's headers to a 403 is uvicorn's
# refusal before accept, its shape in SHAPES, matched first.)
_UVICORN_DENIAL = (
    ("uvicorn (websockets)", ("date", "content-length", "content-type", "connection")),
    ("uvicorn (websockets-sansio)", ("date", "connection", "content-length", "content-type")),
)


def _uvicorn_denial(head: ResponseHead, shape: str) -> KnownText | None:
    """uvicorn's answer to an application's denial response, by the headers it adds after
    the application's (or None)."""
    names = shape.split("|", 1)[1].split(",")
    if "server" in names:
        return None
    log = f'"WebSocket /PATH" {head.status}'
    if not head.reason:
        if names[-1] == "transfer-encoding" and "date" not in names:
            return KnownText("shape", shape, "uvicorn (wsproto)", log)
        return None
    from http import HTTPStatus

    try:
        phrase = HTTPStatus(head.status).phrase
    except ValueError:
        return None
    if head.reason != phrase or (head.headers.get("connection") or "").lower() != "close":
        return None
    for server, order in _UVICORN_DENIAL:
        for count in (4, 3):
            given, added = names[:-count], names[-count:]
            if added == [name for name in order if name not in given]:
                return KnownText("shape", shape, server,
                                 f"{log} / connection rejected ({head.status} {phrase})")
    return None


# The python websockets body carries the exception text: "Failed to open a WebSocket
# connection: missing Connection header." The server logs "opening handshake failed" with it.
_WEBSOCKETS_REASON = re.compile(rb"Failed to open a WebSocket connection: ([^\n]*?)\.?\s*(\n|$)")

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

# Servers whose body *is* the message they raise or log.
_BODY_IS_LOG = ("aiohttp", "coder/websocket")

_NEEDLES: tuple[tuple[KnownText, bool, str, bytes], ...] = tuple(
    (known, known.where == "reason", known.text, known.text.encode("latin-1")) for known in TEXTS
)
# All the texts of each place in one pattern: one scan rules them all out for an ordinary
# answer (the usual case); only a hit walks _NEEDLES for the first text in the order above.
_ANY_REASON = re.compile("|".join(re.escape(k.text) for k in TEXTS if k.where == "reason"))
_ANY_BODY = re.compile(
    b"|".join(re.escape(k.text.encode("latin-1")) for k in TEXTS if k.where == "body")
)


def match_text(reason: str, body: bytes) -> KnownText | None:
    """The first text of TEXTS that a response's reason phrase or body carries, if any."""
    # (an empty body holds no text: most answers, a 101's always, skip that scan)
    if not (_ANY_REASON.search(reason) or body and _ANY_BODY.search(body)):
        return None
    for known, in_reason, text, encoded in _NEEDLES:
        if text in reason if in_reason else encoded in body:
            return known
    return None


def shape_of(head: ResponseHead) -> str:
    """'STATUS REASON|header,names,in,order' (lowercased names) of a response."""
    names = ",".join([field.name.lower() for field in head.headers.fields])  # (no generator)
    return f"{head.status} {head.reason}|{names}"


def match_words(head: ResponseHead, body: bytes) -> KnownText | None:
    """What a rejection's own words (or, without words, its exact shape) say: the first text
    of TEXTS it carries (or its twin in SHARED, when the response names that sender), else the
    shape in SHAPES it has."""
    known = match_text(head.reason, body)
    if known is not None and known.text in SHARED:
        return _sender(known, head)
    if known is None and head.status >= 400:
        shape = shape_of(head)
        known = (_BY_SHAPE.get(shape) or _node_ws_with_headers(head, shape, body)
                 or _uvicorn_denial(head, shape))
        if known is not None and known.adds and body:
            return None  # the uvicorn shapes have no body; with one, it is someone else
        if known is not None and known.server == "Node ws" and (
                head.headers.fields[1].name == "Content-type"):
            return _ENGINEIO_ERROR if body in _ENGINEIO_OWN else ENGINEIO_ABORT_UPGRADE
    return known


def _sender(known: KnownText, head: ResponseHead) -> KnownText:
    """Which of the servers that send a shared text sent this one: the twin whose own Server
    header the response carries, else the TEXTS entry. (Only the sender's own header counts:
    a proxy in front replaces Server with its own, and the words stay the backend's.)"""
    server = (head.headers.get("server") or "").lower()
    for needle, twin in SHARED[known.text] if server else ():
        if needle in server:
            return twin
    return known


def _node_ws_with_headers(head: ResponseHead, shape: str, body: bytes) -> KnownText | None:
    """Node ws's rejection with headers its application added after its own (or None)."""
    status, names = shape.split("|", 1)
    if not names.startswith(_NODE_WS_NAMES + ",") or body != head.reason.encode("latin-1"):
        return None
    return _BY_SHAPE.get(f"{status}|{_NODE_WS_NAMES}")


def quote(known: KnownText, head: ResponseHead, body: bytes) -> str:
    """The server's words around a known text, as evidence: the status and a short quotation
    (at most one line), e.g. '400 "Failed to open a WebSocket connection: missing ..."'."""
    if known.where == "reason":
        return f'{head.status} "{head.reason}"'
    if known.where == "shape":
        line = _line(body, 0) if body else ""
        return f"{head.status} {head.reason or '(no reason phrase)'}, " + (
            f'body "{line}"' if line else "empty body")
    return f'{head.status} "{_line(body, body.find(known.text.encode("latin-1")))}"'


def _line(body: bytes, start: int) -> str:
    line_start = body.rfind(b"\n", 0, start) + 1
    line_end = body.find(b"\n", start)
    line = body[line_start: line_end if line_end >= 0 else len(body)].decode("latin-1")
    # an HTML error page's line: the words, not the markup (Jetty writes &apos; for ')
    text = _TAG.sub(" ", line)
    if "&" in text:  # html.unescape changes nothing else; its entity table is ≈ 4 ms to import
        import html

        text = html.unescape(text)
    return " ".join(text.split())[:160]


_TAG = re.compile(r"<[^>]*>")


# Tomcat logs nothing but its access log line for a refused handshake (catalina's console
# stays silent: captures/tomcat10_websocket.pcap); what that status means there.
_TOMCAT_LOGS = {
    400: "nothing but the access log (400): UpgradeUtil refused a missing or invalid "
         "Sec-WebSocket-Key",
    403: "nothing but the access log (403): the endpoint's Configurator.checkOrigin() "
         "returned false",
    404: "nothing but the access log (404): no endpoint or servlet at that path (a request "
         "without Upgrade to an endpoint's path also ends here: WsFilter takes only upgrades)",
}


def server_log(known: KnownText, status: int, body: bytes) -> str | None:
    """What the server most likely logged when it sent this text."""
    if known.server.startswith(TOMCAT):
        return _TOMCAT_LOGS.get(status, f"nothing but the access log ({status})")
    if known.server == _WS:
        said = _WEBSOCKETS_REASON.search(body)
        if said:
            message = said.group(1).decode("latin-1")
            name = next((cls for start, cls in _WEBSOCKETS_EXCEPTIONS
                         if message.startswith(start)), "InvalidHandshake")
            return f"opening handshake failed: {name}: {message}"
        return known.log
    if known is ENGINEIO_ABORT_UPGRADE:
        message = _line(body, 0)
        return (f'nothing by default; io.engine emits "connection_error" with code 4 '
                f'("Forbidden") and context {{ message: "{message}" }}')
    if known.server in _BODY_IS_LOG and known.where == "body":
        line = body.split(b"\n", 1)[0].decode("latin-1").strip()
        if known.server == "aiohttp":
            # aiohttp raises HTTPBadRequest with the very text it sends as the body
            return f"HTTPBadRequest {status}: {line}"
        return line
    return known.log
