"""Which client sent the handshake, and what clients print for each kind of failure.

Texts are quoted exactly (../shared/reference/handshake-failures.md §4) because users paste them
into a search box: the point is to let them match our verdict to the error in their console.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import urljoin, urlsplit

from analyzer.attribution.closing import GORILLA_ABNORMAL
from analyzer.remembered import Remembered

# User-Agent → client name, first match wins (Edge and Opera also say "Chrome").
_AGENTS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), name)
    for pattern, name in (
        (r"PostmanRuntime/", "Postman"),
        (r"insomnia/", "Insomnia"),
        (r"\bcurl/", "curl"),
        (r"\bwget/", "Wget"),
        (r"Edg/", "Edge"),
        (r"OPR/", "Opera"),
        (r"Firefox/", "Firefox"),
        (r"Chrome/", "Chrome"),
        (r"Safari/", "Safari"),
        (r"\bwebsockets/", "python websockets"),
        (r"\baiohttp/", "aiohttp"),
        (r"^Tornado/", "tornado"),  # (tornado.simple_httpclient's default: "Tornado/6.6.1")
        (r"python-requests/", "python requests"),
        (r"Go-http-client/", "Go net/http (gorilla, coder/websocket)"),
        (r"okhttp/", "OkHttp"),
        (r"Java-http-client/", "Java HttpClient"),
        # (Node 20's WebSocket, undici's, says just "node"; Node ws sends no User-Agent)
        (r"^node$", "Node WebSocket (undici)"),
        (r"node-fetch|undici|axios/", "Node.js"),
        (r"k6/", "k6"),
        (r"kube-probe/|ELB-HealthChecker|GoogleHC/", "a health check"),
    )
)

# tornado's client (tornado.websocket.websocket_connect) checks a 101 with `assert`s and
# header look-ups: a failed one is logged by tornado.application as "Uncaught exception" with
# its traceback, and the caller's await raises StreamClosedError (read from the real client in
# tests/test_aiohttp_tornado_clients_live.py; under `python -O` the asserts are gone and the
# 101 is taken)
def _tornado_logged(cause: str) -> str:
    """What tornado's client prints for a 101 that failed one of its checks: what it raises,
    and the end of the traceback it logged first."""
    return ("StreamClosedError: Stream is closed (tornado.application logged first: Uncaught "
            f"exception ... {cause})")


# aiohttp's WSServerHandshakeError (ClientSession.ws_connect), as str() shows it: the status,
# the message and the URL it asked for
def _aiohttp_handshake(message: str, status: str = "101") -> str:
    return f"WSServerHandshakeError: {status}, message='{message}', url='{{url}}'"


# Failure kind → (client, what it prints). {status}, {reason}, {canonical_reason}, {value}... are
# filled in. aiohttp's and tornado's lines are what the real clients raised
# (tests/test_aiohttp_tornado_clients_live.py); "(accepts it: ...)" says a client raised
# nothing. Node ws's lines (8.11) and gorilla/websocket's (1.5.0: Dial's error, or
# ReadMessage's after the switch) are what each printed against raw servers failing so
# (tests/test_gorilla_nodews_live.py); "..." stands for what varies (a client's address).
# Node's HTTP client takes a 101 as an upgrade only with both Connection: upgrade and an
# Upgrade header: without either, Node ws never sees the switch and words it as any status.
_BAD_HANDSHAKE = "websocket: bad handshake"  # gorilla: any status, Upgrade, Connection, Accept
_NODE_WS_NO_SWITCH = "Unexpected server response: 101"
_ACCEPTS = "(accepts it: no error)"
JAVA, UNDICI = "Java HttpClient", "Node WebSocket (undici)"


# Java's client (JDK 17's java.net.http, HttpClient.newWebSocketBuilder().buildAsync) fails
# its future with the exception below, which a stack trace shows with its cause; after the
# switch its Listener's onError gets one (tests/test_java_undici_clients_live.py)
def _java_check(message: str) -> str:
    """A handshake the JDK's checks refused: WebSocketHandshakeException, without a message
    of its own, caused by the check that failed."""
    return ("java.net.http.WebSocketHandshakeException (Caused by: "
            f"jdk.internal.net.http.websocket.CheckFailedException: {message})")


def _java_frame(message: str) -> str:
    """A frame from the server the JDK's reader refused: Listener.onError's exception."""
    return ("Listener.onError: java.net.ProtocolException (Caused by: "
            f"jdk.internal.net.http.websocket.FailWebSocketException: {message})")


def _java_no_bytes(cause: str) -> str:
    """The connection ended before any byte of an answer: the JDK sends the GET once more on
    a new connection first (its retry of an idempotent request)."""
    return (f"java.io.IOException: HTTP/1.1 header parser received no bytes (Caused by: {cause}) "
            "(after sending the request once more on a new connection: the JDK retries a GET "
            "once)")


# Node's built-in WebSocket (undici 6, Node 20) gives the message of its error event; a failed
# handshake fires no close event. Its HTTP client takes a 101 for an upgrade only with
# Connection: upgrade and an Upgrade header: to it any other 101 is an interim response, and it
# waits for the final one until the application gives up (close()) or the server closes.
_UNDICI_NO_SWITCH = ("Connection was closed before it was established. (when the application "
                     "calls close(): it waits until then, a 101 without Upgrade and "
                     "Connection: upgrade being an interim response to undici)")
_UNDICI_FAILED = "Received network error or non-101 status code."
_ERRORS: dict[str, tuple[tuple[str, str], ...]] = {
    "status": (
        ("Chrome", "WebSocket connection to '{url}' failed: Error during WebSocket handshake: "
                   "Unexpected response code: {status}"),
        ("Node ws", "Unexpected server response: {status}"),
        ("python websockets", "server rejected WebSocket connection: HTTP {status}"),
        ("aiohttp", _aiohttp_handshake("Invalid response status", "{status}")),
        # (the wire's reason phrase; without one, Python's for the status)
        ("tornado", "HTTPClientError: HTTP {status}: {tornado_reason}"),
        ("tungstenite", "HTTP error: {status} {canonical_reason}"),
        ("gorilla/websocket", _BAD_HANDSHAKE),
        ("coder/websocket", "expected handshake response status code 101 but got {status}"),
        (".NET", "The server returned status code '{status}' when status code '101' was "
                 "expected."),
        ("socket.io-client", "connect_error: websocket error (Unexpected server response: "
                             "{status})"),
        (JAVA, _java_check("Unexpected HTTP response status code {status}") + "{java_note}"),
        (UNDICI, _UNDICI_FAILED),
        # (with --fail, as a handshake is probed by hand: without it curl prints the page)
        ("curl", "curl: (22) The requested URL returned error: {status}"),
    ),
    # A 101 without Upgrade (one naming another protocol: "upgrade_unoffered", below)
    "upgrade": (
        ("Chrome", "Error during WebSocket handshake: 'Upgrade' header is missing"),
        ("Node ws", _NODE_WS_NO_SWITCH),
        ("python websockets", "InvalidUpgrade: missing Upgrade header"),
        ("aiohttp", _aiohttp_handshake("Invalid upgrade header")),
        ("tornado", _tornado_logged("KeyError: 'Upgrade'")),
        ("tungstenite", "No \"Upgrade: websocket\" header"),
        ("gorilla/websocket", _BAD_HANDSHAKE),
        (JAVA, _java_check("Response field missing: Upgrade")),
        (UNDICI, _UNDICI_NO_SWITCH),
    ),
    # A 101 whose Connection lacks "upgrade" (without Connection: "connection_missing"):
    # aiohttp and tornado want the whole value to be "upgrade" (any case)
    "connection": (
        ("Chrome", "Error during WebSocket handshake: 'Connection' header value must contain "
                   "'Upgrade'"),
        ("Node ws", _NODE_WS_NO_SWITCH),
        ("python websockets", "InvalidUpgrade: invalid Connection header: {value}"),
        ("aiohttp", _aiohttp_handshake("Invalid connection header")),
        ("tornado", _tornado_logged("AssertionError")),
        ("tungstenite", "No \"Connection: upgrade\" header"),
        ("gorilla/websocket", _BAD_HANDSHAKE),
        (JAVA, _java_check("Bad response field: Connection")),
        (UNDICI, _UNDICI_NO_SWITCH),
    ),
    "accept": (
        ("Chrome", "Error during WebSocket handshake: Incorrect 'Sec-WebSocket-Accept' header "
                   "value"),
        ("Node ws", "Invalid Sec-WebSocket-Accept header"),
        ("python websockets", "invalid Sec-WebSocket-Accept header: {value}"),
        ("aiohttp", _aiohttp_handshake("Invalid challenge response")),
        ("tornado", _tornado_logged("AssertionError")),
        ("tungstenite", "Key mismatch in \"Sec-WebSocket-Accept\" header"),
        ("gorilla/websocket", _BAD_HANDSHAKE),
        (JAVA, _java_check("Bad Sec-WebSocket-Accept")),
        (UNDICI, "Incorrect hash received in Sec-WebSocket-Accept header."),
    ),
    "accept_missing": (
        ("Chrome", "Error during WebSocket handshake: 'Sec-WebSocket-Accept' header is missing"),
        ("Node ws", "Invalid Sec-WebSocket-Accept header"),
        ("python websockets", "missing Sec-WebSocket-Accept header"),
        ("aiohttp", _aiohttp_handshake("Invalid challenge response")),
        ("tornado", _tornado_logged("KeyError: 'Sec-Websocket-Accept'")),
        ("gorilla/websocket", _BAD_HANDSHAKE),
        (JAVA, _java_check("Response field missing: Sec-WebSocket-Accept")),
        (UNDICI, "Incorrect hash received in Sec-WebSocket-Accept header."),
    ),
    # aiohttp keeps a subprotocol of the answer only when it offered it, tornado takes the
    # answer's as it is: neither checks it against its offer (RFC 6455 §4.1)
    "protocol_not_chosen": (
        ("Chrome", "Error during WebSocket handshake: Sent non-empty 'Sec-WebSocket-Protocol' "
                   "header but no response was received"),
        ("Node ws", "Server sent no subprotocol"),
        ("tungstenite", "Server sent no subprotocol"),
        ("python websockets", _ACCEPTS),
        ("aiohttp", "(accepts it: no error; ws.protocol is None)"),
        ("tornado", "(accepts it: no error; selected_subprotocol is None)"),
        ("gorilla/websocket", _ACCEPTS),
        (JAVA, _ACCEPTS),
        (UNDICI, "Server did not respond with sent protocols."),
    ),
    # Node ws's words depend on whether the client offered any (`negotiation_values`);
    # gorilla takes whatever subprotocol the server names
    "protocol_not_offered": (
        ("Chrome", "WebSocket connection to '{url}' failed: Error during WebSocket handshake: "
                   "'Sec-WebSocket-Protocol' header value '{value}' in response does not match "
                   "any of sent values"),
        ("Node ws", "{node_ws_protocol}"),
        ("python websockets", "NegotiationError: unsupported subprotocol: {value}"),
        ("aiohttp", "(accepts it: no error; ws.protocol is None)"),
        ("tornado", "(accepts it: no error; selected_subprotocol is '{value}')"),
        ("gorilla/websocket", _ACCEPTS),
        (JAVA, _java_check("Unexpected subprotocol: {value}")),
        (UNDICI, "{undici_protocol}"),
    ),
    # Node ws's words depend on whether the client offered an extension, gorilla's on the
    # server's permessage-deflate answer (`negotiation_values`). aiohttp reads
    # Sec-WebSocket-Extensions only when it offered permessage-deflate (ws_connect's
    # compress, 0 by default) and ignores any other extension: it takes the 101 whatever the
    # server enabled (RFC 6455 §9.1 notwithstanding), and a compressed frame from the server
    # then fails the connection (its receive() gives a WSMsgType.ERROR message, and it sends
    # Close 1002). tornado fails on any extension but a permessage-deflate it offered
    # (compression_options)
    "extension": (
        ("Chrome", "WebSocket connection to '{url}' failed: Error during WebSocket handshake: "
                   "Found an unsupported extension '{value}' in 'Sec-WebSocket-Extensions' "
                   "header"),
        ("Node ws", "{node_ws_extension}"),
        ("python websockets", "NegotiationError: no extensions supported"),
        ("aiohttp", "(accepts it: no error; a compressed frame from the server then fails it: "
                    "WebSocketError: Received frame with non-zero reserved bits, Close 1002)"),
        ("tornado", _tornado_logged("ValueError: unsupported extension (...)")),
        ("gorilla/websocket", "{gorilla_extension}"),
        # (Java offers none: any answer's values, as its HttpHeaders list them)
        (JAVA, _java_check("Response field 'Sec-WebSocket-Extensions' present: "
                           "{java_extensions}")),
        (UNDICI, "{undici_extension}"),
    ),
    # A permessage-deflate answer with parameters the client cannot take (RFC 7692 §7.1):
    # Chromium's line ends with which one (an unexpected or an invalid parameter), python
    # websockets' with the parameters as it parsed them (both read from the real clients in
    # tests/test_negotiation_live.py; Node ws's from the sweep of the thirtieth session)
    "deflate_params": (
        ("Chrome", "WebSocket connection to '{url}' failed: Error during WebSocket handshake: "
                   "Error in permessage-deflate: ..."),
        ("Node ws", "Invalid Sec-WebSocket-Extensions header"),
        ("python websockets", "NegotiationError: Unsupported extension: name = "
                              "permessage-deflate, params = ..."),
        ("gorilla/websocket", "{gorilla_extension}"),
        # (undici reads server_max_window_bits only when the first compressed frame comes)
        (UNDICI, "(accepts it: no error; an invalid server_max_window_bits then fails the first "
                 "compressed frame from the server: Invalid server_max_window_bits)"),
    ),
    # No answer to the handshake, by how the wait ended (checks/transport.py): every line
    # below is what the real client printed against a server that did that
    # (tests/test_no_response_live.py). Still waiting when the capture ended: what each
    # client prints when its own timer runs out (Chrome has none short of minutes: a page
    # that gives up calls close())
    "no_response": (
        ("Node ws", "Opening handshake has timed out"),
        ("gorilla/websocket", "read tcp ...->{server}: i/o timeout"),  # (Dialer.HandshakeTimeout)
        ("python websockets", "TimeoutError: timed out during opening handshake"),  # (asyncio)
        ("python websockets", "TimeoutError: timed out while waiting for handshake response"),
        # (aiohttp: its session's ClientTimeout, total or sock_read; 300 s in all by default)
        ("aiohttp", "TimeoutError"),
        ("aiohttp", "SocketTimeoutError: Timeout on reading data from socket"),
        ("tornado", "HTTPTimeoutError: Timeout during request"),  # (request_timeout, 20 s)
        ("Chrome", "WebSocket connection to '{url}' failed: WebSocket is closed before the "
                   "connection is established."),
        # (the Builder's connectTimeout bounds the whole handshake; without one it waits)
        (JAVA, "java.net.http.HttpTimeoutException: request timed out (when the WebSocket "
               "builder's connectTimeout runs out)"),
        (UNDICI, "Connection was closed before it was established. (when the application calls "
                 "close(): undici has no timer of its own)"),
    ),
    # ... the server closed the connection (FIN) without an answer
    "no_response_closed": (
        ("Chrome", "WebSocket connection to '{url}' failed: Connection closed before receiving "
                   "a handshake response"),
        ("Node ws", "socket hang up"),
        ("python websockets", "InvalidMessage: did not receive a valid HTTP response"),
        ("aiohttp", "ServerDisconnectedError: Server disconnected (after sending the request "
                    "once more on a new connection: aiohttp retries a GET once)"),
        ("tornado", "HTTPStreamClosedError: Stream closed"),
        ("curl", "curl: (52) Empty reply from server"),
        ("gorilla/websocket", "unexpected EOF"),
        (JAVA, _java_no_bytes("java.io.EOFException: EOF reached while reading")),
        (UNDICI, _UNDICI_FAILED),
    ),
    # ... the server reset it
    "no_response_reset": (
        ("Chrome", "WebSocket connection to '{url}' failed: Error during WebSocket handshake: "
                   "net::ERR_CONNECTION_RESET"),
        ("Node ws", "read ECONNRESET"),
        ("python websockets", "InvalidMessage: did not receive a valid HTTP response"),
        ("aiohttp", "ClientOSError: [Errno 104] Connection reset by peer (after sending the "
                    "request once more on a new connection: aiohttp retries a GET once)"),
        ("tornado", "ConnectionResetError: [Errno 104] Connection reset by peer"),
        ("curl", "curl: (56) Recv failure: Connection reset by peer"),
        ("gorilla/websocket", "read tcp ...->{server}: read: connection reset by peer"),
        (JAVA, _java_no_bytes("java.net.SocketException: Connection reset")),
        (UNDICI, _UNDICI_FAILED),
    ),
    # The server answered in another protocol (an HTTP/2-only server's SETTINGS, a TLS
    # record, a banner): each line printed by the real client (tests/test_not_http_live.py)
    "not_http": (
        ("curl", "curl: (1) Received HTTP/0.9 when not allowed"),
        ("python websockets", "InvalidMessage: did not receive a valid HTTP response"),
        ("Node ws", "Parse Error: Expected HTTP/, RTSP/ or ICE/"),
        ("aiohttp", "ClientResponseError: 400, message=\"Bad status line:...Expected HTTP/, "
                    "RTSP/ or ICE/:...\", url='{url}'"),
        ("tornado", "HTTPStreamClosedError: Stream closed"),  # (no head ends: it waits for one)
        ("Chrome", "WebSocket connection to '{url}' failed: Error during WebSocket handshake: "
                   "net::ERR_INVALID_HTTP_RESPONSE"),
        ("gorilla/websocket", "malformed HTTP response \"...\""),  # (Go's net/http, %q)
        # (the bytes it read, as characters, until the server closed)
        (JAVA, "java.io.IOException: parsing HTTP/1.1 status line, receiving [...], parser "
               "state [STATUS_LINE] (Caused by: java.io.EOFException: EOF reached while "
               "reading)"),
        (UNDICI, _UNDICI_FAILED),
    ),
    "refused": (
        ("Node ws", "connect ECONNREFUSED {server}"),
        ("python websockets", "ConnectionRefusedError: [Errno 111] Connection refused"),
        ("tornado", "ConnectionRefusedError: [Errno 111] Connection refused"),
        # (the URL's host first, the address it tried in the brackets)
        ("aiohttp", "ClientConnectorError: Cannot connect to host ...:{port} ssl:default "
                    "[Connect call failed ('{host}', {port})]"),
        ("Chrome", "net::ERR_CONNECTION_REFUSED"),
        ("gorilla/websocket", "dial tcp {server}: connect: connection refused"),
        (JAVA, "java.net.ConnectException (Caused by: java.nio.channels.ClosedChannelException)"),
        (UNDICI, _UNDICI_FAILED),
    ),
    # Frames the server sent against RFC 6455 (checks/after_switch.py): Chromium's (and
    # WebKit's) WebSocketChannel fails the connection with these console lines (their
    # sources and tests, and users' reports of them)
    "text_not_utf8": (
        ("Chrome", "WebSocket connection to '{url}' failed: Could not decode a text frame as "
                   "UTF-8."),
        (JAVA, _java_frame("Invalid UTF-8 in frame TEXT") + " (CONTINUATION when the bytes "
                                                            "are in a later fragment)"),
        (UNDICI, "Received invalid UTF-8 in text frame."),
    ),
    "server_frame_masked": (
        ("Chrome", "WebSocket connection to '{url}' failed: A server must not mask any "
                   "frames that it sends to the client."),
        (JAVA, _java_frame("Masked frame received")),
        (UNDICI, "Frame cannot be masked"),
    ),
    # A Close with a code that may never be sent (1005, 1006, 1015: RFC 6455 §7.4.1), sent
    # by the server: Chromium's ParseClose fails the channel (its close event then says
    # 1006, not the code); Node ws and python websockets reject it and close with 1002 (both
    # lines printed by the real clients against a server sending Close 1005)
    "close_code_reserved": (
        ("Chrome", "WebSocket connection to '{url}' failed: Received a broken close frame "
                   "containing a reserved status code."),
        ("Node ws", "Invalid WebSocket frame: invalid status code {value}"),
        ("python websockets", "ConnectionClosedError: sent 1002 (protocol error) invalid "
                              "status code; no close frame received"),
        ("gorilla/websocket", "websocket: bad close code {value}"),
        # (the JDK puts the code into its message as a char: 1005 is "\u03ed")
        (JAVA, _java_frame("Illegal status code: {java_close_code}")),
        (UNDICI, "Invalid status code"),
    ),
    # A server frame with RSV bits no extension was negotiated for (RFC 6455 §5.2): Node ws
    # and gorilla fail the connection with a Close 1002 (their lines: `rsv_values`), python
    # websockets too (its line is its Closes', `closing_values`), Chromium fails the channel
    # (its close event says 1006) with its console line naming the bits (each printed by the
    # real client: tests/test_gorilla_nodews_live.py, tests/test_reserved_bits_live.py)
    "rsv": (
        ("Chrome", "WebSocket connection to '{url}' failed: One or more reserved bits are on: "
                   "{chrome_rsv}"),
        ("Node ws", "{node_ws_rsv}"),
        ("python websockets", "ConnectionClosedError: {closing}"),
        ("gorilla/websocket", "{gorilla_rsv}"),
        (JAVA, _java_frame("Unexpected rsv{java_rsv} bit")),
        (UNDICI, "{undici_rsv}"),
    ),
    # A Close with an error code in the watch window, from either side: what the client's
    # close event says is the code it received, python websockets prints both Closes in the
    # order they went (attribution/closing.py `closing_values`)
    "closed": (
        ("Node ws", "close event: code {received}"),
        ("python websockets", "ConnectionClosedError: {closing}"),
        ("Chrome", "CloseEvent code {received}"),
        ("gorilla/websocket", "{gorilla_closing}"),  # (ReadMessage's CloseError)
    ),
    # A connection followed past its watch window (analyzer/life) that ended without a Close
    # frame: every client reports an abnormal closure (python websockets' line as it printed
    # it in captures/websocket_lives.pcap)
    "abnormal_close": (
        ("Node ws", "close event: code 1006"),
        ("python websockets", "ConnectionClosedError: no close frame received or sent"),
        ("Chrome", "CloseEvent code 1006"),
        ("gorilla/websocket", GORILLA_ABNORMAL),
    ),
}
# ... the client gave up waiting: its timer's line, and curl's for --max-time (its count of
# milliseconds runs from the start of the transfer: the SYN's time)
_ERRORS["no_response_gave_up"] = (*_ERRORS["no_response"], (
    "curl", "curl: (28) Operation timed out after {waited_ms} milliseconds with 0 bytes "
            "received"))
# A client that took the 101 and hung up after waiting in silence: curl, which does not speak
# WebSocket (before 7.86, or built without it), waits for data until --max-time. Given only
# for the clients it names (NAMED_ONLY): another client hanging up has its own reasons.
_ERRORS["gave_up_after_switch"] = (_ERRORS["no_response_gave_up"][-1],)
NAMED_ONLY = frozenset({"gave_up_after_switch"})
# ... and one that ended with a Close frame carrying an error code: the same lines as in the
# watch window, their values read from the connection's lifetime (closing.py)
_ERRORS["closed_in_life"] = _ERRORS["closed"]
_REDIRECT_LINES = {
    "python websockets": "{websockets_redirect}", "aiohttp": "{aiohttp_redirect}",
    JAVA: _java_check("Unexpected HTTP response status code {status}") + (
        " (a client built with followRedirects NORMAL or ALWAYS follows it instead, with a GET "
        "that has neither Upgrade nor Connection, and fails on that answer's status)"),
    UNDICI: _UNDICI_FAILED + " (it never follows one: its fetch's redirect mode is \"error\")"}
# A redirect (300-303, 307, 308 with a Location): every client prints what it prints for any
# other status, but python websockets follows it (websockets.asyncio.client `process_redirect`,
# up to 10): it prints nothing and connects again where the Location points, unless that is
# not a ws:// or wss:// URI (nginx's `return 301` writes an absolute http:// one) or leaves
# wss for ws. Its line is worked out per attempt (`websockets_redirect`).
# aiohttp follows 301, 302, 303, 307 and 308 too (its session's allow_redirects, up to 10),
# raising NonHttpUrlRedirectClientError for a Location in another scheme than http(s): a
# ws:// one included (`aiohttp_redirect`). Java's client follows one only when its HttpClient
# was built to (NEVER by default); undici's WebSocket never does.
# (curl's --fail takes a status of 400 or more only: not a redirect's, nor a 2xx's)
_ERRORS["redirect"] = tuple(
    (name, _REDIRECT_LINES.get(name, text)) for name, text in _ERRORS["status"]
    if name != "curl")
REDIRECT_STATUSES = frozenset({300, 301, 302, 303, 307, 308})
# A 2xx to a WebSocket handshake: tornado's client raises no HTTP error for it
_ERRORS["status_2xx"] = tuple(
    (name, "WebSocketError: Non-websocket response" if name == "tornado" else text)
    for name, text in _ERRORS["status"] if name != "curl")
# A 101 whose Upgrade names another protocol than the one offered (switch_to_unoffered):
# Chromium's, python websockets', aiohttp's, tornado's and Node ws's lines read from the real
# clients (tests/test_upgrade_unoffered_live.py and the clients' own tests; Node's HTTP client
# sees the switch, and ws words the value); the others' are those of a missing Upgrade
_ERRORS["upgrade_unoffered"] = tuple((name, {
    "Chrome": "Error during WebSocket handshake: 'Upgrade' header value is not 'WebSocket': "
              "{value}",
    "python websockets": "InvalidUpgrade: invalid Upgrade header: {value}",
    "tornado": _tornado_logged("AssertionError"),
    "Node ws": "Invalid Upgrade header",
    JAVA: _java_check("Bad response field: Upgrade"),
    UNDICI: "Server did not set Upgrade header to \"websocket\".",
}.get(name, text)) for name, text in _ERRORS["upgrade"])
# ... and one without Connection (python websockets', aiohttp's and tornado's read from the
# real clients)
_ERRORS["connection_missing"] = tuple((name, {
    "python websockets": "InvalidUpgrade: missing Connection header",
    "tornado": _tornado_logged("KeyError: 'Connection'"),
    JAVA: _java_check("Response field missing: Connection"),
}.get(name, text)) for name, text in _ERRORS["connection"])
# The clients among _ERRORS' that open WebSockets over HTTP/2 (RFC 8441), as the starts of
# their lines: Chromium does; Node ws, python websockets, aiohttp, gorilla, tungstenite and
# the others speak HTTP/1.1 only
H2_WEBSOCKET_CLIENTS = ("Chrome: ",)
# WebSocket over HTTP/2 (RFC 8441), as Chromium 156 logged it (read through DevTools in the
# sweep of the twenty-ninth session): a 401 with nothing after "failed: " (it keeps the
# reason to itself when it could authenticate), and a stream reset by its net error, which
# maps REFUSED_STREAM to its own code and the error codes to PROTOCOL_ERROR
_ERRORS["h2_unauthorized"] = tuple(
    ("Chrome", "WebSocket connection to '{url}' failed: ") if name == "Chrome" else (name, text)
    for name, text in _ERRORS["status"])
_ERRORS["h2_refused"] = (
    ("Chrome", "WebSocket connection to '{url}' failed: Stream closed with error: "
               "net::ERR_HTTP2_SERVER_REFUSED_STREAM"),
)
_ERRORS["h2_reset"] = (
    ("Chrome", "WebSocket connection to '{url}' failed: Stream closed with error: "
               "net::ERR_HTTP2_PROTOCOL_ERROR"),
)


# What undici's handshake check throws when the server names a subprotocol and none was
# offered (it reads the offer, null, as a list): uncaught, it ends Node's process
_UNDICI_NO_OFFER = ("TypeError: Cannot read properties of null (reading 'includes') (uncaught: "
                    "it ends the process)")


def negotiation_values(protocols_offered: bool, extensions_offered: bool,
                       extensions_answered: list[str],
                       extension_fields: tuple[str, ...] = ()) -> dict[str, str]:
    """The lines of Node ws, gorilla, Java and undici for a 101 that chose what the client did
    not offer (or deflate parameters it cannot take), from ``extensions_answered`` (the
    answer's extensions) and ``extension_fields`` (its Sec-WebSocket-Extensions fields as
    sent): Node ws words a subprotocol or extension by whether the client offered any
    (websocket.js), gorilla refuses a permessage-deflate answer without both
    no_context_takeover parameters (the only mode it has) and takes any other extension or
    subprotocol without a word (client.go). Java lists the fields. undici, which offers
    permessage-deflate, takes any answer with a ";"-separated part named so (it cuts the
    fields, joined, at ";" only), and reads a chosen subprotocol against an offer it may not
    have made: without one, its check throws."""
    deflate = [extension for extension in extensions_answered
               if extension.split(";")[0].strip() == "permessage-deflate"]
    parts = ", ".join(extension_fields).split(";")
    undici_takes = any(part.split("=")[0].lstrip(" \t\r\n") == "permessage-deflate"
                       for part in parts)
    return {
        "node_ws_protocol": ("Server sent an invalid subprotocol" if protocols_offered else
                             "Server sent a subprotocol but none was requested"),
        "node_ws_extension": ("Server indicated an extension that was not requested"
                              if extensions_offered else "Server sent a "
                              "Sec-WebSocket-Extensions header but no extension was requested"),
        "gorilla_extension": ("websocket: invalid compression negotiation" if any(
            not {"server_no_context_takeover", "client_no_context_takeover"} <= {
                part.split("=")[0].strip() for part in extension.split(";")[1:]}
            for extension in deflate) else _ACCEPTS),
        "java_extensions": f"[{', '.join(extension_fields)}]",
        "undici_extension": _ACCEPTS if undici_takes else "Sec-WebSocket-Extensions header "
                                                          "does not match.",
        "undici_protocol": ("Protocol was not set in the opening handshake." if protocols_offered
                            else _UNDICI_NO_OFFER),
    }


def rsv_values(bits: int) -> dict[str, str]:
    """Node ws's, gorilla's, Chromium's, Java's and undici's lines for a server frame with RSV
    bits ``bits`` (RSV1 = 4) set: Node ws checks RSV2 and RSV3 first (receiver.js), gorilla
    lists each bit set (conn.go), Chromium names all three ("reserved1 = 1, reserved2 = 0,
    ..."), Java names the first set (MessageDecoder), undici RSV1 alone, else all three."""
    node_ws = "RSV2 and RSV3 must be clear" if bits & 3 else "RSV1 must be clear"
    gorilla = ", ".join(f"RSV{n} set" for n, bit in ((1, 4), (2, 2), (3, 1)) if bits & bit)
    chrome = ", ".join(f"reserved{n} = {int(bool(bits & bit))}"
                       for n, bit in ((1, 4), (2, 2), (3, 1)))
    return {"node_ws_rsv": f"Invalid WebSocket frame: {node_ws}",
            "gorilla_rsv": f"websocket: {gorilla}", "chrome_rsv": chrome,
            "java_rsv": "1" if bits & 4 else "2" if bits & 2 else "3",
            "undici_rsv": ("Expected RSV1 to be clear." if bits & 4 else
                           "RSV1, RSV2, RSV3 must be clear")}


def java_close_code(code: str) -> str:
    """A Close code as the JDK's "Illegal status code" message has it: the code read as a
    Java char, and put in the text as that character (1005: "\u03ed")."""
    return chr(int(code)) if code.isdigit() and int(code) < 0x10000 else code


# Java's HttpClient, when built to follow redirects, sends the followed GET without Upgrade
# and Connection (JDK 17: only the first request carries them): a handshake of its without
# Upgrade is most likely such a GET, not one a proxy stripped
JAVA_WITHOUT_UPGRADE = (" (its GET had no Upgrade, as the one Java's client sends when it follows "
                        "a redirect: without Upgrade and Connection)")


def websockets_redirect(url: str, location: str) -> str:
    """What python websockets does with a redirect of ``url`` (ws:// or wss://, the request's)
    to ``location``: follow it (nothing printed), or the error it raises instead."""
    target = urljoin(url, location)
    scheme = urlsplit(target).scheme.lower()
    if scheme not in ("ws", "wss"):
        return f"InvalidURI: {target} isn't a valid URI: scheme isn't ws or wss"
    if url.startswith("wss:") and scheme == "ws":
        return f"SecurityError: cannot follow redirect to non-secure URI {target}"
    return f"(no error: follows the redirect to {target}, up to 10 in a row)"


_AIOHTTP_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def aiohttp_redirect(url: str, status: int, location: str) -> str:
    """What aiohttp's ws_connect does with a redirect of ``url`` (the request's) to
    ``location``: follow it, or the error it raises (aiohttp's ClientSession._request)."""
    if status not in _AIOHTTP_REDIRECTS:
        return _aiohttp_handshake("Invalid response status", str(status)).replace(
            "{url}", url)
    scheme = urlsplit(location.strip()).scheme.lower()
    if scheme not in ("http", "https", ""):
        return f"NonHttpUrlRedirectClientError: {location.strip()}"
    return (f"(no error of its own: follows the redirect to {urljoin(url, location.strip())}, "
            "up to 10 in a row)")


def _node_openssl(function_and_reason: str, code: str) -> str:
    """Node (OpenSSL 3) words a TLS error as OpenSSL's error string, with its code after."""
    return f"Error: ...:SSL routines:{function_and_reason} (ERR_SSL_{code})"


def _node_alert(reason: str, alert_number: int, code: str) -> str:
    """An alert the server sent, as Node 20 prints it (checked against the real client)."""
    return _node_openssl(f"ssl3_read_bytes:{reason}:...:SSL alert number {alert_number}", code)


# A handshake_failure alert from the server, as the OpenSSL clients and Go word it (Chrome
# words it by what it was about: a suite or version, or a client certificate)
_HANDSHAKE_FAILURE = (
    ("python", "SSLError: [SSL: SSLV3_ALERT_HANDSHAKE_FAILURE] sslv3 alert handshake failure"),
    ("curl", "curl: (35) OpenSSL: error:0A000410:SSL routines::sslv3 alert handshake failure"),
    ("Node", _node_alert("sslv3 alert handshake failure", 40, "SSLV3_ALERT_HANDSHAKE_FAILURE")),
    ("Go", "remote error: tls: handshake failure"),
)


def _aiohttp_certificate(reason: str, quote: str = "'") -> str:
    """aiohttp wraps `ssl`'s verification error in its own, after the host and port it asked
    for (and its ssl argument: True by default); `repr` quotes the error's text with " when
    the text holds a '."""
    return ("ClientConnectorCertificateError: Cannot connect to host ...:{port} ssl:... "
            "[SSLCertVerificationError: (1, " + quote + "[SSL: CERTIFICATE_VERIFY_FAILED] "
            "certificate verify failed: " + reason + quote + ")]")


# TLS failures (checks/tls.py), as OpenSSL-based clients (Python, curl, Node), Go's crypto/tls
# and Chrome's net stack word them. Python's lines are what `ssl` raises inside websockets and
# tornado (aiohttp wraps it: its own lines); Chrome shows its net:: code on the error page /
# in chrome://net-export.
_ERRORS.update({
    "tls_untrusted": (
        ("python", "SSLCertVerificationError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate "
                   "verify failed: self-signed certificate (_ssl.c:...) (or, for a chain: "
                   "self-signed certificate in certificate chain; unable to get local issuer "
                   "certificate)"),
        ("aiohttp", _aiohttp_certificate("self-signed certificate (_ssl.c:...)")),
        ("curl", "curl: (60) SSL certificate problem: unable to get local issuer certificate"),
        ("Node", "Error: unable to verify the first certificate "
                 "(UNABLE_TO_VERIFY_LEAF_SIGNATURE)"),
        ("Go", "x509: certificate signed by unknown authority"),
        ("Chrome", "net::ERR_CERT_AUTHORITY_INVALID"),
    ),
    "tls_name": (
        ("python", "SSLCertVerificationError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate "
                   "verify failed: Hostname mismatch, certificate is not valid for '{host}'. "
                   "(_ssl.c:...)"),
        ("aiohttp", _aiohttp_certificate("Hostname mismatch, certificate is not valid for "
                                         "'{host}'. (_ssl.c:...)", '"')),
        ("curl", "curl: (60) SSL: no alternative certificate subject name matches target host "
                 "name '{host}'"),
        ("Node", "Error [ERR_TLS_CERT_ALTNAME_INVALID]: Hostname/IP does not match "
                 "certificate's altnames"),
        ("Go", "x509: certificate is valid for ..., not {host}"),
        ("Chrome", "net::ERR_CERT_COMMON_NAME_INVALID"),
    ),
    "tls_expired": (
        ("python", "SSLCertVerificationError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate "
                   "verify failed: certificate has expired (_ssl.c:...)"),
        ("aiohttp", _aiohttp_certificate("certificate has expired (_ssl.c:...)")),
        ("curl", "curl: (60) SSL certificate problem: certificate has expired"),
        ("Node", "Error: certificate has expired (CERT_HAS_EXPIRED)"),
        ("Go", "x509: certificate has expired or is not yet valid"),
        ("Chrome", "net::ERR_CERT_DATE_INVALID"),
    ),
    "tls_not_tls": (
        ("python", "SSLError: [SSL: WRONG_VERSION_NUMBER] wrong version number"),
        ("curl", "curl: (35) OpenSSL: error:0A00010B:SSL routines::wrong version number"),
        ("Node", _node_openssl("ssl3_get_record:wrong version number:...",
                               "WRONG_VERSION_NUMBER")),
        ("Go", "tls: first record does not look like a TLS handshake"),
        ("Chrome", "net::ERR_SSL_PROTOCOL_ERROR"),
    ),
    "tls_eof": (
        ("python", "ConnectionResetError (or SSLEOFError: [SSL: UNEXPECTED_EOF_WHILE_READING] "
                   "EOF occurred in violation of protocol)"),
        ("curl", "curl: (35) OpenSSL SSL_connect: SSL_ERROR_SYSCALL"),
        ("Node", "Error: Client network socket disconnected before secure TLS connection was "
                 "established (ECONNRESET) (or: Error: read ECONNRESET (ECONNRESET))"),
        ("Go", "EOF (or: read: connection reset by peer)"),
        ("Chrome", "net::ERR_CONNECTION_CLOSED"),
    ),
    # The client's own timeout ran out before the server's TLS answer (every line printed by
    # the real client against a TLS server that answers late: the sweep of the twenty-ninth
    # session; curl counts from the start, the SYN)
    "tls_gave_up": (
        ("curl", "curl: (28) Connection timed out after {waited_ms} milliseconds"),
        ("Node ws", "Opening handshake has timed out"),
        ("python websockets", "TimeoutError: timed out during opening handshake"),
        ("python websockets", "TimeoutError: _ssl.c:989: The handshake operation timed out"),
    ),
    # The client finished the handshake, then closed without a request: Node verifies the
    # server's chain only after the handshake (its 'secureConnect'), and closes without an
    # alert when it does not trust it (the sweep of the twenty-ninth session: Node 18's ws
    # client against nginx with a CA it did not know)
    "tls_closed_after_handshake": (
        ("Node", "Error: self-signed certificate in certificate chain (SELF_SIGNED_CERT_IN_CHAIN) "
                 "(or: unable to verify the first certificate)"),
    ),
    "tls_plain_to_tls": (
        ("python websockets", "InvalidMessage: did not receive a valid HTTP response"),
        ("Node ws", "Unexpected server response: 400"),
        ("Chrome", "Error during WebSocket handshake: Unexpected response code: 400"),
        ("curl", "400 The plain HTTP request was sent to HTTPS port (nginx's page)"),
    ),
    "tls_client_certificate": (
        ("python websockets", "InvalidMessage: did not receive a valid HTTP response (TLS 1.3: "
                              "the server closed after the request); TLS 1.2: "
                              "ConnectionResetError"),
        ("python", "SSLError: [SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert "
                   "certificate required (when the server sends the alert)"),
        ("curl", "curl: (56) OpenSSL SSL_read: ... tlsv13 alert certificate required"),
        ("Node", _node_alert("tlsv13 alert certificate required", 116,
                             "TLSV13_ALERT_CERTIFICATE_REQUIRED")),
        ("Go", "remote error: tls: certificate required"),
        ("Chrome", "net::ERR_BAD_SSL_CLIENT_AUTH_CERT"),
    ),
    # TLS 1.2 has no certificate_required alert: an OpenSSL server (Node's `requestCert`,
    # `openssl s_server -Verify`) refuses a missing certificate with handshake_failure, and
    # that is what OpenSSL clients print (python, curl and Node read from the real clients)
    "tls_client_certificate_handshake_failure": (
        *_HANDSHAKE_FAILURE,
        ("Chrome", "net::ERR_BAD_SSL_CLIENT_AUTH_CERT"),
    ),
    "tls_unrecognized_name": (
        ("python", "SSLError: [SSL: TLSV1_UNRECOGNIZED_NAME] tlsv1 unrecognized name"),
        ("curl", "curl: (35) OpenSSL: error:0A000458:SSL routines::tlsv1 unrecognized name"),
        ("Node", _node_alert("tlsv1 unrecognized name", 112, "TLSV1_UNRECOGNIZED_NAME")),
        ("Go", "remote error: tls: unrecognized name"),
        ("Chrome", "net::ERR_SSL_UNRECOGNIZED_NAME_ALERT"),
    ),
    "tls_version": (
        ("python", "SSLError: [SSL: TLSV1_ALERT_PROTOCOL_VERSION] tlsv1 alert protocol "
                   "version"),
        ("curl", "curl: (35) OpenSSL: error:0A00042E:SSL routines::tlsv1 alert protocol version"),
        ("Node", _node_alert("tlsv1 alert protocol version", 70,
                             "TLSV1_ALERT_PROTOCOL_VERSION")),
        ("Go", "remote error: tls: protocol version not supported"),
        ("Chrome", "net::ERR_SSL_VERSION_OR_CIPHER_MISMATCH"),
    ),
    "tls_handshake_failure": (
        *_HANDSHAKE_FAILURE,
        ("Chrome", "net::ERR_SSL_VERSION_OR_CIPHER_MISMATCH"),
    ),
    "tls_alpn": (
        ("python", "SSLError: [SSL: TLSV1_ALERT_NO_APPLICATION_PROTOCOL] tlsv1 alert no "
                   "application protocol"),
        ("curl", "curl: (35) OpenSSL: ... tlsv1 alert no application protocol"),
        ("Node", _node_alert("tlsv1 alert no application protocol", 120,
                             "TLSV1_ALERT_NO_APPLICATION_PROTOCOL")),
        ("Go", "remote error: tls: no application protocol"),
    ),
})

# h2c, offered by Upgrade (RFC 7540 §3.2) or opened with prior knowledge (RFC 9113 §3.3): of
# the clients above only curl speaks it (--http2, --http2-prior-knowledge), and its lines are
# the ones curl 7.88 printed against real servers (tests/test_curl_h2c_live.py). An Upgrade
# answered in HTTP/2 frames (an HTTP/2-only port) reads to curl as the HTTP/0.9 it refuses,
# as a WebSocket offer does; a preface answered in HTTP/1 (nginx's 400, python's http.server
# error page without a status line) fails nghttp2's "SETTINGS expected", and curl says it
# got no reply at all.
_ERRORS["h2c_not_http"] = tuple(line for line in _ERRORS["not_http"] if line[0] == "curl")
_ERRORS["h2_answer_not_http2"] = (("curl", "curl: (52) Empty reply from server"),)
# Finding id → the h2c failure kind (`attribute` asks it for an attempt whose protocol is h2c)
H2C_KIND_OF_FINDING = {"response_not_http": "h2c_not_http",
                       "h2_answer_not_http2": "h2_answer_not_http2"}

# Failure kinds a client reports about what the server sent: a finding of that kind on the
# client's own side (the client sent the bad text) is not what the client printed.
SERVER_SENT_KINDS = frozenset({"text_not_utf8", "server_frame_masked", "rsv"})

# Failure kind → the clients _ERRORS quotes for it.
_CLIENTS = {kind: frozenset(name for name, _ in lines) for kind, lines in _ERRORS.items()}

def clients_of(kind: str) -> frozenset[str]:
    """The clients whose lines a failure kind quotes."""
    return _CLIENTS.get(kind, frozenset())


# Finding id → failure kind in _ERRORS.
KIND_OF_FINDING = {
    "switch_without_upgrade": "upgrade",
    "switch_to_unoffered": "upgrade_unoffered",
    "switch_connection_without_upgrade": "connection",
    "ws_accept_mismatch": "accept",
    "ws_accept_missing": "accept_missing",
    "ws_protocol_not_chosen": "protocol_not_chosen",
    "ws_protocol_not_offered": "protocol_not_offered",
    "ws_extension_not_offered": "extension",
    "ws_deflate_params_invalid": "deflate_params",
    "ws_closed_with_error": "closed",
    "ws_text_not_utf8": "text_not_utf8",
    "ws_server_frame_masked": "server_frame_masked",
    "ws_rsv_without_extension": "rsv",
    # the life rules (checks/life.py): how a connection followed past its watch window ended
    "close_message_too_big": "closed_in_life",
    "close_internal_error": "closed_in_life",
    "close_service_restart": "closed_in_life",
    "close_try_again_later": "closed_in_life",
    "close_bad_gateway": "closed_in_life",
    "close_application_error": "closed_in_life",
    "close_error_in_life": "closed_in_life",
    "ended_without_close_after_switch": "abnormal_close",
    "server_hung_up_after_switch": "abnormal_close",  # the client took the 101, then EOF
    "idle_timeout_after_switch": "abnormal_close",
    "closed_without_close_frame": "abnormal_close",
    "h2_shutdown_in_life": "abnormal_close",
    "server_reset_many": "abnormal_close",
    "tcp_refused": "refused",
    "response_not_http": "not_http",
    "no_response_server_closed": "no_response_closed",
    "no_response_server_reset": "no_response_reset",
    "no_response_client_gave_up": "no_response_gave_up",
    "h2_stream_refused": "h2_refused",
    "h2_stream_reset": "h2_reset",
    "client_hung_up_after_switch": "gave_up_after_switch",
    "tls_certificate_rejected": "tls_untrusted",
    "tls_certificate_name_mismatch": "tls_name",
    "tls_certificate_expired": "tls_expired",
    "tls_client_hello_to_cleartext_port": "tls_not_tls",
    "tls_no_server_hello": "tls_eof",
    "tls_client_gave_up": "tls_gave_up",
    "tls_client_closed_after_handshake": "tls_closed_after_handshake",
    "tls_server_closed_during_handshake": "tls_eof",
    "tls_plain_http_to_tls_port": "tls_plain_to_tls",
    "tls_client_certificate_required": "tls_client_certificate",
    "tls_unrecognized_name": "tls_unrecognized_name",
    "tls_protocol_version": "tls_version",
    "tls_handshake_failure": "tls_handshake_failure",
    "tls_no_application_protocol": "tls_alpn",
}


# The client of a proxy's back leg (correlate.py pairs the legs): the proxy, named in the
# `proxy_back_leg` finding's text, which these two functions write and read.
_FORWARDED = " forwarded the handshake of "
_TRIED = " tried to forward the handshake of "  # (a connection refused: nothing went through)


def back_leg_found(proxy: str, client: str, refused: bool = False) -> str:
    """The `proxy_back_leg` finding's text: the proxy at ``proxy`` (its address on the front
    leg) forwarded ``client``'s handshake (``refused``: its connection to the backend was
    refused). The proxy's software is not named: the front leg's answer names the server
    behind it as often as the proxy (nginx and HAProxy pass the backend's answers on)."""
    if refused:
        return f"the proxy at {proxy}{_TRIED}{client}: its connection was refused"
    return f"the proxy at {proxy}{_FORWARDED}{client}"


def proxy_of_back_leg(found: str) -> str:
    """Who the client of a back leg is, from its `proxy_back_leg` text: "proxy at
    ADDRESS"."""
    return found.split(_FORWARDED, 1)[0].split(_TRIED, 1)[0].removeprefix("the ")


@lru_cache(maxsize=1024)  # a capture repeats a few User-Agents; each miss runs ~all _AGENTS
def client_name(user_agent: str | None) -> str | None:
    if not user_agent:
        return None
    for pattern, name in _AGENTS:
        if pattern.search(user_agent):
            return name
    words = user_agent.split()  # (a value of separators only, "\x1d" too, has no word)
    return words[0][:40] if words else None


# (kind, client) -> the lines "NAME: TEXT" as `client_errors` orders them: a failure's
# attempt formats ≈ 7 of them, and sorting and joining each time cost more than the
# formatting. A client name is a User-Agent's first word at worst: bounded.
_TEMPLATES: Remembered[tuple[str, str | None], tuple[str, ...]] = Remembered(1024)
# (the names hold no brace: "NAME: TEXT".format_map is "NAME: " + TEXT.format_map)
assert not any("{" in name or "}" in name for lines in _ERRORS.values() for name, _ in lines)


# (kind, client, values) -> the lines `client_errors` gives: a run's failures repeat their
# status, URL and server (the dense benchmark mix: 102 distinct sets of lines for 714
# failures), and formatting ≈ 7 lines each time cost ≈ 5 µs a failure. The values are the
# attribution's texts and numbers (str, int): no two of them are equal with a different
# text, so their items are a key. Bounded, in number and length (a long URL is not kept).
_LINES: Remembered[tuple[object, ...], tuple[str, ...]] = Remembered(1024)


# The http crate's canonical reason phrases where they differ from Python's (RFC 9110's names)
_HTTP_CRATE_REASONS = {413: "Payload Too Large", 414: "URI Too Long",
                       416: "Range Not Satisfiable", 422: "Unprocessable Entity"}


def python_reason(status: int) -> str:
    """The reason phrase Python's http module has for a status ("Unknown" without one):
    tornado's client puts it in its HTTPClientError when the status line had none."""
    from http import HTTPStatus  # (only for a failed status, and cheap)

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def canonical_reason(status: int) -> str:
    """The reason phrase tungstenite prints for a status: the http crate's StatusCode shows
    its canonical reason, whatever the wire's reason phrase said (an empty one included)."""
    reason = _HTTP_CRATE_REASONS.get(status)
    if reason is None:
        from http import HTTPStatus  # (only for a failed status, and cheap)

        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "<unknown status code>"
    return reason


def client_errors(kind: str, client: str | None, **values: object) -> tuple[str, ...]:
    """What clients print for a failure kind; the named client's line first when it is known
    (`client_errors_plain` is the twin, tests/test_attribution.py)."""
    key = (kind, client, *values.items())
    lines = _LINES.get(key)
    if lines is None:
        lines = _formatted(kind, client, values)
        _LINES.keep(key, lines, sum(map(len, lines)))
    return lines


def _formatted(kind: str, client: str | None, values: dict[str, object]) -> tuple[str, ...]:
    """`client_errors`' lines, formatted from the templates remembered per kind and client."""
    key = (kind, client)
    templates = _TEMPLATES.get(key)
    if templates is None:
        lines = _ERRORS.get(kind, ())
        if client in _CLIENTS.get(kind, ()):
            lines = tuple(sorted(lines, key=lambda line: line[0] != client))
        templates = _TEMPLATES.keep(key, tuple(map(_named, lines)))
    out = []
    for template in templates:
        try:
            out.append(template.format_map(values))  # `values` as is, not copied
        except (KeyError, IndexError):
            out.append(template)
    return tuple(out)


def client_errors_plain(kind: str, client: str | None, **values: object) -> tuple[str, ...]:
    """`client_errors` with the lines sorted and formatted each time (its plain twin)."""
    lines = _ERRORS.get(kind, ())
    if client in _CLIENTS.get(kind, ()):
        lines = tuple(sorted(lines, key=lambda line: line[0] != client))
    out = []
    for name, text in lines:
        try:
            out.append(_named((name, text.format_map(values))))  # `values` as is, not copied
        except (KeyError, IndexError):
            out.append(_named((name, text)))
    return tuple(out)


def _named(line: tuple[str, str]) -> str:
    """"NAME: TEXT", or TEXT alone when it starts with the name already (curl prints
    "curl: (28) ...")."""
    name, text = line
    return text if text.startswith(f"{name}: ") else f"{name}: {text}"
