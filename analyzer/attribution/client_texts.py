"""What each client prints for each kind of failure: the one table of client texts
(`CLIENT_LINES`, failure kind → (client, line)), read by the attribution (clients.py fills in
the values) and by the tests that compare each line with what the real client printed.

Texts are quoted exactly (../shared/reference/handshake-failures.md §4) because users paste them
into a search box: the point is to let them match our verdict to the error in their console.
The TLS kinds are in client_texts_tls.py.
"""

from __future__ import annotations

from analyzer.attribution.client_texts_tls import TLS_LINES
from analyzer.attribution.closing import GORILLA_ABNORMAL


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
def aiohttp_handshake(message: str, status: str = "101") -> str:
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
ACCEPTS = "(accepts it: no error)"
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
CLIENT_LINES: dict[str, tuple[tuple[str, str], ...]] = {
    "status": (
        ("Chrome", "WebSocket connection to '{url}' failed: Error during WebSocket handshake: "
                   "Unexpected response code: {status}"),
        ("Node ws", "Unexpected server response: {status}"),
        ("python websockets", "server rejected WebSocket connection: HTTP {status}"),
        ("aiohttp", aiohttp_handshake("Invalid response status", "{status}")),
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
        ("aiohttp", aiohttp_handshake("Invalid upgrade header")),
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
        ("aiohttp", aiohttp_handshake("Invalid connection header")),
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
        ("aiohttp", aiohttp_handshake("Invalid challenge response")),
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
        ("aiohttp", aiohttp_handshake("Invalid challenge response")),
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
        ("python websockets", ACCEPTS),
        ("aiohttp", "(accepts it: no error; ws.protocol is None)"),
        ("tornado", "(accepts it: no error; selected_subprotocol is None)"),
        ("gorilla/websocket", ACCEPTS),
        (JAVA, ACCEPTS),
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
        ("gorilla/websocket", ACCEPTS),
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
CLIENT_LINES["no_response_gave_up"] = (*CLIENT_LINES["no_response"], (
    "curl", "curl: (28) Operation timed out after {waited_ms} milliseconds with 0 bytes "
            "received"))
# A client that took the 101 and hung up after waiting in silence: curl, which does not speak
# WebSocket (before 7.86, or built without it), waits for data until --max-time. Given only
# for the clients it names (NAMED_ONLY): another client hanging up has its own reasons.
CLIENT_LINES["gave_up_after_switch"] = (CLIENT_LINES["no_response_gave_up"][-1],)
NAMED_ONLY = frozenset({"gave_up_after_switch"})
# ... and one that ended with a Close frame carrying an error code: the same lines as in the
# watch window, their values read from the connection's lifetime (closing.py)
CLIENT_LINES["closed_in_life"] = CLIENT_LINES["closed"]
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
CLIENT_LINES["redirect"] = tuple(
    (name, _REDIRECT_LINES.get(name, text)) for name, text in CLIENT_LINES["status"]
    if name != "curl")
REDIRECT_STATUSES = frozenset({300, 301, 302, 303, 307, 308})
# A 2xx to a WebSocket handshake: tornado's client raises no HTTP error for it
CLIENT_LINES["status_2xx"] = tuple(
    (name, "WebSocketError: Non-websocket response" if name == "tornado" else text)
    for name, text in CLIENT_LINES["status"] if name != "curl")
# A 101 whose Upgrade names another protocol than the one offered (switch_to_unoffered):
# Chromium's, python websockets', aiohttp's, tornado's and Node ws's lines read from the real
# clients (tests/test_negotiation_live.py and the clients' own tests; Node's HTTP client
# sees the switch, and ws words the value); the others' are those of a missing Upgrade
CLIENT_LINES["upgrade_unoffered"] = tuple((name, {
    "Chrome": "Error during WebSocket handshake: 'Upgrade' header value is not 'WebSocket': "
              "{value}",
    "python websockets": "InvalidUpgrade: invalid Upgrade header: {value}",
    "tornado": _tornado_logged("AssertionError"),
    "Node ws": "Invalid Upgrade header",
    JAVA: _java_check("Bad response field: Upgrade"),
    UNDICI: "Server did not set Upgrade header to \"websocket\".",
}.get(name, text)) for name, text in CLIENT_LINES["upgrade"])
# ... and one without Connection (python websockets', aiohttp's and tornado's read from the
# real clients)
CLIENT_LINES["connection_missing"] = tuple((name, {
    "python websockets": "InvalidUpgrade: missing Connection header",
    "tornado": _tornado_logged("KeyError: 'Connection'"),
    JAVA: _java_check("Response field missing: Connection"),
}.get(name, text)) for name, text in CLIENT_LINES["connection"])
# The clients among CLIENT_LINES' that open WebSockets over HTTP/2 (RFC 8441), as the starts of
# their lines: Chromium does; Node ws, python websockets, aiohttp, gorilla, tungstenite and
# the others speak HTTP/1.1 only
H2_WEBSOCKET_CLIENTS = ("Chrome: ",)
# WebSocket over HTTP/2 (RFC 8441), as Chromium 156 logged it (read through DevTools in the
# sweep of the twenty-ninth session): a 401 with nothing after "failed: " (it keeps the
# reason to itself when it could authenticate), and a stream reset by its net error, which
# maps REFUSED_STREAM to its own code and the error codes to PROTOCOL_ERROR
CLIENT_LINES["h2_unauthorized"] = tuple(
    ("Chrome", "WebSocket connection to '{url}' failed: ") if name == "Chrome" else (name, text)
    for name, text in CLIENT_LINES["status"])
CLIENT_LINES["h2_refused"] = (
    ("Chrome", "WebSocket connection to '{url}' failed: Stream closed with error: "
               "net::ERR_HTTP2_SERVER_REFUSED_STREAM"),
)
CLIENT_LINES["h2_reset"] = (
    ("Chrome", "WebSocket connection to '{url}' failed: Stream closed with error: "
               "net::ERR_HTTP2_PROTOCOL_ERROR"),
)


# What undici's handshake check throws when the server names a subprotocol and none was
# offered (it reads the offer, null, as a list): uncaught, it ends Node's process
UNDICI_NO_OFFER = ("TypeError: Cannot read properties of null (reading 'includes') (uncaught: "
                    "it ends the process)")



CLIENT_LINES.update(TLS_LINES)

# A forward proxy's refusal of CONNECT (the tunnel a wss:// client asks for first; browsers
# tunnel ws:// too), any status of 400 or more, and its 407: what each client printed
# through real Squid 5.7 (tests/test_squid_live.py; `attribute` chooses the kind by the
# status). The browser's URL has the tunnel's host and port; its path is not on the wire.
_TUNNEL_REFUSED = (("curl", "curl: (56) CONNECT tunnel failed, response {status}"),
                   ("curl", "curl: (22) The requested URL returned error: {status} (with "
                            "--fail)"),
                   ("python websockets",
                    "InvalidProxyStatus: proxy rejected connection: HTTP {status}"))
CLIENT_LINES["tunnel"] = (*_TUNNEL_REFUSED, (
    "Chrome", "WebSocket connection to '{url}' failed: Establishing a tunnel via proxy server "
              "failed."))
CLIENT_LINES["proxy_auth"] = (*_TUNNEL_REFUSED, (
    "Chrome", "WebSocket connection to '{url}' failed: Proxy authentication failed"))

# h2c, offered by Upgrade (RFC 7540 §3.2) or opened with prior knowledge (RFC 9113 §3.3): of
# the clients above only curl speaks it (--http2, --http2-prior-knowledge), and its lines are
# the ones curl 7.88 printed against real servers (tests/test_curl_h2c_live.py). An Upgrade
# answered in HTTP/2 frames (an HTTP/2-only port) reads to curl as the HTTP/0.9 it refuses,
# as a WebSocket offer does; a preface answered in HTTP/1 (nginx's 400, python's http.server
# error page without a status line) fails nghttp2's "SETTINGS expected", and curl says it
# got no reply at all.
CLIENT_LINES["h2c_not_http"] = tuple(line for line in CLIENT_LINES["not_http"] if line[0] == "curl")
# (when the server's close beat curl's last write of its preface and SETTINGS, the kernel's
# reset fails that write: seen once in a loaded CI run of tests/test_curl_h2c_live.py)
CLIENT_LINES["h2_answer_not_http2"] = (
    ("curl", "curl: (52) Empty reply from server"),
    ("curl", "curl: (55) Send failure: Broken pipe (when the server closed before curl had "
             "sent all of its preface)"))
