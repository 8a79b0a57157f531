"""The catalogue's entries about the HTTP exchange: the request, the causes a rejection's own
words name, the response, and what happened right after the switch (catalogue.py explains
why the order matters).
"""

from __future__ import annotations

from analyzer.checks import catalogue_h2 as _h2
from analyzer.checks.finding import Check, E, Effect, N, W, from_data, in_phase

HTTP: tuple[Check, ...] = in_phase(
    "request",
    Check("request_without_upgrade", E, Effect.FAIL, "RFC 6455 §4.1",
          "plain HTTP request sent to a WebSocket endpoint (no Upgrade header)",
          "The request offered no upgrade at all and the server rejected it as a failed "
          "WebSocket handshake. Typical of Postman in HTTP mode, a browser address bar, a health "
          "check, or a proxy that removed the hop-by-hop Upgrade/Connection headers.",
          "Use a WebSocket client; behind nginx set proxy_http_version 1.1 and "
          "proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection \"upgrade\"."),
    Check("upgrade_header_missing", E, Effect.FAIL, "RFC 6455 §4.1",
          "WebSocket request without an Upgrade header",
          "The request carries WebSocket headers (Sec-WebSocket-*) but no Upgrade header: the "
          "hop-by-hop header was most likely stripped by a proxy on the way.",
          "Make every proxy forward Upgrade and Connection (nginx: proxy_set_header Upgrade "
          "$http_upgrade; proxy_set_header Connection \"upgrade\")."),
    Check("request_http10", E, Effect.FAIL, "RFC 9110 §7.8",
          "upgrade offered in an HTTP/1.0 request",
          "\"A server MUST ignore an Upgrade header field that is received in an HTTP/1.0 "
          "request.\" WebSocket needs HTTP/1.1 (RFC 6455 §4.1). nginx speaks HTTP/1.0 to "
          "upstreams by default.",
          "Behind nginx set proxy_http_version 1.1; make the client use HTTP/1.1."),
    Check("ws_method_not_get", E, Effect.FAIL, "RFC 6455 §4.1",
          "WebSocket handshake with a method other than GET",
          "\"The method of the request MUST be GET.\" Servers answer 405 (actix-web, Spring, "
          "gorilla) or 400.",
          "Send the handshake as GET; an RFC 8441 CONNECT cannot reach an HTTP/1.1 handler."),
    Check("ws_host_missing", E, Effect.FAIL, "RFC 6455 §4.1",
          "WebSocket request without a Host header",
          "\"The request MUST contain a |Host| header field.\" (also RFC 9112 §3.2)",
          "Fix the client or the proxy that rewrote the request."),
    Check("upgrade_not_websocket", E, Effect.FAIL, "RFC 6455 §4.1",
          "WebSocket request whose Upgrade header does not name websocket",
          "\"The request MUST contain an |Upgrade| header field whose value MUST include the "
          "'websocket' keyword.\"",
          "Send Upgrade: websocket."),
    Check("upgrade_token_repeated", W, Effect.NOTE, "RFC 6455 §4.1",
          "the Upgrade header names the same protocol more than once",
          "Legal list syntax, but servers that compare the whole value (tungstenite requires "
          "exactly 'websocket') reject 'websocket, websocket' or a repeated header.",
          "Send the token once; look for a proxy that appends Upgrade instead of replacing it."),
    Check("connection_without_upgrade", E, Effect.FAIL, "RFC 9110 §7.8",
          "the request's Connection header lacks the upgrade token",
          "\"A sender of Upgrade MUST also send an 'Upgrade' connection option\" (RFC 6455 §4.1: "
          "Connection MUST include Upgrade). Without it, proxies and servers drop the offer.",
          "Send Connection: Upgrade (behind nginx: proxy_set_header Connection \"upgrade\")."),
    Check("connection_upgrade_with_others", N, Effect.NOTE, "RFC 9110 §7.6.1",
          "Connection lists other options beside upgrade (strict-server trap)",
          "'Connection: keep-alive, Upgrade' (Firefox) is valid, but servers that compare the "
          "whole value for equality with 'Upgrade' reject it.",
          "Servers must look for the token in the list; nothing to change on the client."),
    Check("ws_key_missing", E, Effect.FAIL, "RFC 6455 §4.1",
          "WebSocket request without Sec-WebSocket-Key",
          "\"The request MUST include a header field with the name |Sec-WebSocket-Key|.\"",
          "Fix the client or a proxy that drops the header."),
    Check("ws_key_invalid", E, Effect.FAIL, "RFC 6455 §4.1",
          "Sec-WebSocket-Key is not the base64 of 16 bytes",
          "The key \"MUST be a nonce consisting of a randomly selected 16-byte value that has "
          "been base64-encoded\". Node ws, coder/websocket and gorilla 1.5.1 and later "
          "reject other keys with 400 (gorilla 1.5.0 and older take any key not empty).",
          "Generate 16 random bytes and base64-encode them (24 characters ending in '==')."),
    Check("ws_key_repeated", E, Effect.FAIL, "RFC 6455 §11.3.1",
          "Sec-WebSocket-Key sent more than once",
          "\"The |Sec-WebSocket-Key| header field MUST NOT appear more than once in an HTTP "
          "request.\"",
          "Look for a proxy that adds the header instead of forwarding it."),
    Check("ws_version_missing", E, Effect.FAIL, "RFC 6455 §4.1",
          "WebSocket request without Sec-WebSocket-Version",
          "\"The request MUST include a header field with the name |Sec-WebSocket-Version|. "
          "The value of this header field MUST be 13.\"",
          "Send Sec-WebSocket-Version: 13."),
    Check("ws_version_not_13", E, Effect.FAIL, "RFC 6455 §4.4",
          "WebSocket version other than 13 requested",
          "Only version 13 is standard; servers answer 426 (or 400) with the versions they "
          "support in Sec-WebSocket-Version.",
          "Use a client that speaks RFC 6455 (version 13)."),
    Check("h2_token_in_cleartext", E, Effect.FAIL, "RFC 7540 §3.2",
          "'h2' offered in a cleartext Upgrade",
          "\"The 'h2' string ... MUST NOT be sent by a client or selected by a server\" in "
          "a cleartext upgrade; only 'h2c' is valid there.",
          "Offer h2c over cleartext; h2 is negotiated with TLS ALPN."),
    Check("h2c_settings_count", E, Effect.FAIL, "RFC 7540 §3.2.1",
          "h2c upgrade without exactly one HTTP2-Settings header",
          "\"A request that upgrades from HTTP/1.1 to HTTP/2 MUST include exactly one "
          "HTTP2-Settings header field.\"",
          "Send one HTTP2-Settings header with the base64url SETTINGS payload."),
    Check("h2c_settings_invalid", E, Effect.FAIL, "RFC 7540 §3.2.1",
          "HTTP2-Settings is not a base64url SETTINGS payload",
          "The value is the base64url encoding of a SETTINGS frame payload: a multiple of 6 "
          "bytes, without padding.",
          "Fix the client's encoding (base64url, no '=' padding)."),
    Check("h2c_connection_settings_missing", E, Effect.FAIL, "RFC 7540 §3.2.1",
          "Connection does not list HTTP2-Settings",
          "HTTP2-Settings is a connection-specific header field, so Connection must list it "
          "beside Upgrade or intermediaries may forward it.",
          "Send Connection: Upgrade, HTTP2-Settings."),
    Check("connect_target_invalid", W, Effect.NOTE, "RFC 9112 §3.2.3",
          "CONNECT target is not host:port",
          "\"The CONNECT method requests that the recipient establish a tunnel to the "
          "destination origin server identified by the request-target\": it must be in "
          "authority-form, host and port, nothing else.",
          "Send CONNECT host:port (no scheme, no path)."),
    Check("early_client_data", W, Effect.NOTE, "RFC 6455 §4.1",
          "the client sent data before the server answered",
          "\"Once the client's opening handshake has been sent, the client MUST wait for a "
          "response from the server before sending any further data.\"",
          "Make the client wait for the 101 before sending frames."),
    *from_data(_h2.REQUEST),
) + in_phase(
    "rejection",
    # Causes named by the server's own words in its rejection (analyzer/attribution/texts.py):
    # a request check cannot see them (they are the server's policy or configuration), and
    # they explain the status better than the status findings below them.
    Check("ws_protocol_required", E, Effect.FAIL, "RFC 6455 §4.2.2",
          "the server requires a subprotocol and the client offered none",
          "The server accepts only handshakes that name one of its subprotocols and the request "
          "had no Sec-WebSocket-Protocol. RFC 6455 lets a server refuse a handshake it does not "
          "want; python websockets with subprotocols=[...] answers 400 'missing subprotocol' "
          "and logs NegotiationError.",
          "Make the client offer the subprotocol the server expects (browser: new "
          "WebSocket(url, ['chat.v1'])), or let the server accept connections without one."),
    Check("ws_protocol_unsupported", E, Effect.FAIL, "RFC 6455 §4.2.2",
          "the server supports none of the offered subprotocols",
          "The client offered subprotocols and the server knows none of them, and refused the "
          "handshake instead of answering without a subprotocol (python websockets: 400 "
          "'invalid subprotocol; expected one of ...').",
          "Offer a subprotocol the server lists (the body names them), or add the client's to "
          "the server's list; check both sides agree on the version in the name."),
    Check("ws_rejected_before_accept", E, Effect.FAIL, "RFC 6455 §4.2.2",
          "the application closed the WebSocket before accepting it (403)",
          "An ASGI server answers 403 when the application closes the WebSocket before "
          "accepting it: no WebSocket route matches the path (starlette, FastAPI), or the "
          "application refused the connection (authentication, origin). uvicorn logs "
          "'\"WebSocket /path\" 403' and 'connection rejected (403 Forbidden)'.",
          "Check the WebSocket route's path (prefix, trailing slash) and the application's "
          "accept conditions; the server log names the path."),
    Check("uvicorn_websocket_unsupported", E, Effect.FAIL, "RFC 9110 §7.8",
          "uvicorn has no WebSocket library: it served the upgrade as plain HTTP",
          "uvicorn switches to WebSocket only with the websockets or wsproto package "
          "installed (pip install 'uvicorn[standard]'); without one it ignores the upgrade, "
          "logs 'Unsupported upgrade request.' and 'No supported WebSocket library "
          "detected', and passes the request to the application as HTTP: a WebSocket-only "
          "route answers 404 Not Found, another route its HTTP answer. With a library it "
          "answers a path without a WebSocket route with 403, not 404. (--ws none does the "
          "same on purpose; a proxy in front that drops Upgrade looks alike, and its own "
          "finding then comes first.)",
          "Install a WebSocket library where uvicorn runs: pip install 'uvicorn[standard]' "
          "(or websockets, or wsproto), check the deployed image and lock file have it, and "
          "do not start it with --ws none."),
    Check("tls_plain_http_to_tls_port", E, Effect.FAIL, "RFC 9110 §4.2.2",
          "plain HTTP sent to a TLS (https/wss) port",
          "The client spoke cleartext HTTP to a port that expects TLS: nginx answers 400 'The "
          "plain HTTP request was sent to HTTPS port'. A ws:// URL where wss:// was needed, or "
          "a proxy whose upstream is https:// but which connects with http://.",
          "Use wss:// (https://) for that port; in a proxy, proxy_pass https://... to a TLS "
          "upstream, or point it at the backend's cleartext port."),
    Check("request_headers_too_large", E, Effect.FAIL, "RFC 6585 §5",
          "the request's headers are larger than the server accepts",
          "The server refused the request because a header line or the whole head is over "
          "its limit: 431 Request Header Fields Too Large, nginx's 400 'Request Header Or "
          "Cookie Too Large', Apache's 'Size of a request header field exceeds server limit'. "
          "Usually cookies or a token grown too large.",
          "Send smaller cookies/tokens, or raise the limit: nginx large_client_header_buffers, "
          "Apache LimitRequestFieldSize, Node --max-http-header-size, uvicorn h11 max size."),
    Check("request_target_too_long", E, Effect.FAIL, "RFC 9110 §15.5.15",
          "the request's URL is longer than the server accepts (414)",
          "The server refused the request line because its target (path and query) is over "
          "its limit: 414 URI Too Long (nginx: '414 Request-URI Too Large' past its 8 KiB "
          "large_client_header_buffers; Apache LimitRequestLine, 8,190 bytes), or a reset. "
          "Usually a token, a session state or a list of subscriptions carried in the query "
          "string.",
          "Carry large values in a header, a cookie or the first WebSocket message instead of "
          "the URL, or raise the limit: nginx large_client_header_buffers, Apache "
          "LimitRequestLine."),
    Check("engineio_transport_unknown", E, Effect.FAIL, "Engine.IO protocol v4 §Transports",
          "Socket.IO/Engine.IO refused the transport ('Transport unknown')",
          'Engine.IO answers 400 {"code":0,"message":"Transport unknown"} when the '
          "request's transport query parameter names a transport the server does not allow, "
          "or is missing: a client forcing transports: ['websocket'] against a server "
          "configured for polling only, or a plain WebSocket client pointed at /socket.io/.",
          "Allow the transport on the server (transports: ['polling', 'websocket']), or "
          "connect with a Socket.IO client using the server's transports. (A client that "
          "started on polling stays on polling: it works, with more latency and load.)"),
    Check("engineio_request_refused", E, Effect.FAIL, "RFC 6455 §4.2.2",
          "the Socket.IO application refused the connection (allowRequest)",
          "The request was a valid WebSocket upgrade to Engine.IO; the server's allowRequest "
          "option (the application's own check: origin, authentication, a limit) called back "
          "with false, and Engine.IO answered 400 with the application's message as the body "
          "('Forbidden' without one). The server emits connection_error with code 4 and "
          "logs nothing by default; socket.io-client reports connect_error 'websocket error'.",
          "Read the message (the application's words) and the allowRequest function in the "
          "Socket.IO server's options; send what it checks (Origin, a token, cookies)."),
    Check("engineio_session_unknown", E, Effect.FAIL, "Engine.IO protocol v4 §Upgrade",
          "Socket.IO/Engine.IO does not know the session id (no sticky sessions?)",
          "Engine.IO answers 400 'Session ID unknown' (a poll gets it as JSON, code 1; the "
          "WebSocket upgrade as plain text) when the sid "
          "of a poll or of the WebSocket upgrade was made by another server process: the load "
          "balancer sent this request to a node other than the one that did the handshake, "
          "or the server restarted. A failed WebSocket upgrade leaves the client on long "
          "polling (it still works, slower); a failed poll disconnects it.",
          "Enable sticky sessions (cookie or source-IP affinity) for the Socket.IO path, or "
          "connect with transports: ['websocket'] only."),
) + in_phase(
    "response",
    Check("response_not_http", E, Effect.FAIL, "RFC 9112 §2.1",
          "the server answered in another protocol, not HTTP/1",
          "An HTTP/1.1 response starts with a status line (\"HTTP/1.1 101 ...\"); the server "
          "sent something else: an HTTP/2 SETTINGS frame (a server that speaks HTTP/2 with "
          "prior knowledge only), a TLS record (a TLS port: the client should have used "
          "https:// or wss://), an SSH banner or other binary data (the wrong port, or a "
          "load balancer forwarding to the wrong backend).",
          "Point the client at the right port and scheme: wss:// for a TLS port; for an "
          "HTTP/2-only server enable HTTP/1.1 on it or use an HTTP/2 client."),
    Check("response_redirect", E, Effect.FAIL, "RFC 6455 §4.1",
          "the server redirected the handshake",
          "\"If the status code received from the server is not 101, the client handles the "
          "response per HTTP procedures\"; browsers fail on any status but 101 and Node ws "
          "does not follow by default (followRedirects=false); python websockets follows up "
          "to 10 redirects, as a new attempt each.",
          "Connect to the final URL (often wss:// instead of ws://, or a trailing slash)."),
    Check("response_unauthorized", E, Effect.FAIL, "RFC 9110 §15.5.2",
          "authentication required (401)",
          "The server (or a gateway in front of it) requires credentials the handshake did not "
          "carry. (A proxy's 407 is proxy_auth_required.)",
          "Send the credentials the challenge asks for (WWW-Authenticate)."),
    Check("response_forbidden", E, Effect.FAIL, "RFC 6455 §4.2.2",
          "the server refused the handshake (403), often over Origin",
          "Servers refuse an Origin they do not trust with 403 (python websockets, gorilla "
          "CheckOrigin, Spring); gateways such as Envoy answer 403 to upgrades they do not allow.",
          "Allow the client's Origin on the server, or send an allowed Origin."),
    Check("response_not_found", E, Effect.FAIL, "RFC 9110 §15.5.5",
          "no WebSocket endpoint at that path (404)",
          "The path of the request is not served, or a proxy routes it elsewhere.",
          "Check the URL path and the proxy's location rules."),
    Check("response_method_not_allowed", E, Effect.FAIL, "RFC 6455 §4.1",
          "the server refused the method (405)",
          "WebSocket handshakes must be GET; servers answer 405 with Allow: GET otherwise.",
          "Send the handshake as GET."),
    Check("response_upgrade_required", E, Effect.FAIL, "RFC 9110 §15.5.22",
          "the server demands an upgrade the request did not make (426)",
          "426 says the server refuses to serve the request over the current protocol and "
          "lists in Upgrade what it wants; WebSocket servers also use it for a wrong version "
          "(with Sec-WebSocket-Version) or a missing Upgrade.",
          "Offer the protocol named in the 426's Upgrade header, with the version it lists."),
    Check("upgrade_required_without_upgrade", W, Effect.NOTE, "RFC 9110 §15.5.22",
          "426 response without an Upgrade header",
          "\"The server MUST send an Upgrade header field in a 426 response to indicate the "
          "required protocol(s).\"",
          "Fix the server to name the protocols it requires."),
    Check("response_bad_request", E, Effect.FAIL, "RFC 6455 §4.2.1",
          "the server rejected the handshake as malformed (400)",
          "Servers answer 400 to a handshake they find invalid; the reason phrase or body often "
          "says which header they disliked.",
          "Read the reason in the response; compare the request with RFC 6455 §4.1."),
    Check("response_rate_limited", E, Effect.FAIL, "RFC 6585 §4",
          "the server is rate limiting this client (429)",
          "429 Too Many Requests: \"the user has sent too many requests in a given amount of "
          "time\". A rate limiter in the server or a gateway counts handshakes per client, "
          "token or address; clients that reconnect at once after every failure (a retry loop "
          "without backoff) run into it. Retry-After, when sent, says how long to wait.",
          "Wait as long as Retry-After says before reconnecting, and reconnect with "
          "exponential backoff and jitter; raise the limit if these clients are legitimate."),
    Check("response_client_error", E, Effect.FAIL, "RFC 9110 §15.5",
          "the server rejected the request (4xx)",
          "The server refused the request with a client-error status.",
          "Read the response body and the server's log."),
    Check("response_service_unavailable", E, Effect.FAIL, "RFC 9110 §15.6.4",
          "the WebSocket server itself is unavailable or overloaded (503)",
          "The 503 came from the origin server (its Server header or its own words name a "
          "WebSocket server or framework, not a gateway): \"the server is currently unable to "
          "handle the request due to a temporary overload or scheduled maintenance\". "
          "Applications answer it from a connection limit, a drain before shutdown or a "
          "health check of their own (python websockets' process_request, Node ws' "
          "verifyClient). Retry-After, when sent, says when to come back.",
          "Read the server's log for why it refused (load, a limit, maintenance); make clients "
          "wait as long as Retry-After says and reconnect with backoff."),
    Check("response_gateway_error", E, Effect.FAIL, "RFC 9110 §15.6",
          "a gateway failed to reach the backend (502/503/504)",
          "A proxy answered because the backend closed, refused, or timed out (nginx: "
          "'upstream prematurely closed connection', 'upstream timed out').",
          "Check the backend is up and that the proxy forwards Upgrade/Connection over HTTP/1.1."),
    Check("response_server_error", E, Effect.FAIL, "RFC 9110 §15.6",
          "the server failed (5xx)",
          "The server hit an error while handling the handshake.",
          "Read the server's log."),
    Check("response_ordinary", E, Effect.FAIL, "RFC 6455 §4.1",
          "the server answered with an ordinary response instead of switching",
          "A WebSocket client MUST fail the connection on any status but 101. A 2xx means the "
          "server (or the proxy in front of it) served the request as plain HTTP: the Upgrade "
          "was stripped on the way or the endpoint is not a WebSocket endpoint.",
          "Check the path and that every proxy forwards Upgrade/Connection over HTTP/1.1."),
    Check("engineio_stays_on_polling", W, Effect.NOTE, "Engine.IO protocol v4 §Upgrade",
          "the Socket.IO client stays on long polling (its WebSocket upgrade failed)",
          "The request upgrades an existing Engine.IO session (its query has sid=): when the "
          "upgrade fails the client keeps the long-polling transport it started with. The "
          "application still works, with more latency, more requests and more load, so the "
          "failure often goes unnoticed.",
          "Fix the upgrade's own failure (the primary reason); behind a load balancer keep "
          "sticky sessions and forward Upgrade/Connection for /socket.io/."),
    Check("upgrade_declined", N, Effect.DECLINE, "RFC 9110 §7.8",
          "the server ignored the upgrade offer and answered normally",
          "\"A server MAY ignore a received Upgrade header field if it wishes to continue using "
          "the current protocol on that connection.\" The exchange went on in HTTP/1.1.",
          "Nothing is broken; enable the protocol on the server if the switch was wanted."),
    Check("switch_not_offered", E, Effect.FAIL, "RFC 9110 §15.2.2",
          "101 Switching Protocols without an upgrade offer",
          "A server \"MUST NOT switch to a protocol that was not indicated by the client in the "
          "corresponding request's Upgrade header field.\"",
          "Fix the server (or the middlebox) sending 101 to a request that offered nothing."),
    Check("switch_without_upgrade", E, Effect.FAIL, "RFC 9110 §15.2.2",
          "101 response without an Upgrade header",
          "\"The server MUST generate an Upgrade header field in the response that indicates "
          "which protocol(s) will be in use after this response.\" Clients fail without it "
          "(Chrome: 'Upgrade' header is missing).",
          "Fix the server or the proxy that removed Upgrade from the response."),
    Check("switch_with_body", W, Effect.NOTE, "RFC 9110 §8.6",
          "101 Switching Protocols announces a body",
          "\"A server MUST NOT send a Content-Length header field in any response with a status "
          "code of 1xx\", and a 101 has no content: the bytes after its empty line are the new "
          "protocol. A client or proxy that honours the length eats the first frames as a "
          "body (or waits for a body that never comes); one that ignores it parses the 'body' "
          "as frames (often a protocol error right after the switch).",
          "Remove Content-Length/Transfer-Encoding from the 101 (a framework adding it to "
          "every response, or a proxy rewriting the switch)."),
    Check("switch_to_unoffered", E, Effect.FAIL, "RFC 9110 §7.8",
          "101 switches to a protocol the client did not offer",
          "The server must switch only to a protocol listed in the request's Upgrade header.",
          "Fix the server's protocol selection."),
    Check("switch_connection_without_upgrade", E, Effect.FAIL, "RFC 6455 §4.1",
          "101 whose Connection header lacks upgrade",
          "\"If the response lacks a |Connection| header field or the |Connection| header field "
          "doesn't contain a token that is an ASCII case-insensitive match for the value "
          "'Upgrade', the client MUST _Fail the WebSocket Connection_.\" Kong sent "
          "'Connection: keep-alive'; actix-http 3.13.0 sent 'Connection: close'.",
          "Make the server (or gateway) send Connection: Upgrade in the 101."),
    Check("ws_accept_missing", E, Effect.FAIL, "RFC 6455 §4.1",
          "101 without Sec-WebSocket-Accept",
          "\"If the response lacks a |Sec-WebSocket-Accept| header field ... the client MUST "
          "_Fail the WebSocket Connection_.\" Typical of IIS without the WebSocket feature.",
          "Make the server compute and send Sec-WebSocket-Accept."),
    Check("ws_accept_mismatch", E, Effect.FAIL, "RFC 6455 §4.2.2",
          "Sec-WebSocket-Accept does not match the request's key",
          "The Accept value must be base64(SHA-1(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11')). "
          "A mismatch usually means a proxy re-generated the key toward the backend but "
          "forwarded the backend's Accept.",
          "Make the proxy pass Sec-WebSocket-Key through unchanged, or fix the server's Accept."),
    Check("ws_accept_repeated", E, Effect.FAIL, "RFC 6455 §11.3.3",
          "Sec-WebSocket-Accept sent more than once",
          "\"The |Sec-WebSocket-Accept| header MUST NOT appear more than once in an HTTP "
          "response.\"",
          "Look for two layers (app and proxy) both adding the header."),
    Check("ws_protocol_not_offered", E, Effect.FAIL, "RFC 6455 §4.1",
          "the server chose a subprotocol the client did not offer",
          "\"If the response includes a |Sec-WebSocket-Protocol| header field and this header "
          "field indicates the use of a subprotocol that was not present in the client's "
          "handshake ... the client MUST _Fail the WebSocket Connection_.\"",
          "Make the server choose only among the client's offers."),
    Check("ws_protocol_repeated", E, Effect.FAIL, "RFC 6455 §11.3.4",
          "the server chose more than one subprotocol",
          "The server selects at most one subprotocol; Sec-WebSocket-Protocol must appear at "
          "most once in the response, with one value.",
          "Make the server choose a single subprotocol."),
    Check("ws_protocol_not_chosen", W, Effect.NOTE, "RFC 6455 §4.2.2",
          "the server chose no offered subprotocol",
          "Legal per the RFC, but Chrome ('Sent non-empty Sec-WebSocket-Protocol header but no "
          "response was received'), Node ws ('Server sent no subprotocol') and tungstenite "
          "fail the connection; python websockets and Firefox accept it. When the client hangs "
          "up right after such a 101, it rejected the handshake: the attempt failed.",
          "Make the server select one of the offered subprotocols."),
    Check("ws_deflate_params_invalid", E, Effect.FAIL, "RFC 7692 §7.1",
          "permessage-deflate answered with parameters the client cannot accept",
          "The server's permessage-deflate response may only use known parameters, each once, "
          "window bits 8-15, and client_max_window_bits only if the client offered it; "
          "otherwise the client must fail the connection (RFC 7692 §5.1, §7.1.2).",
          "Fix the server's (or proxy's) deflate negotiation, or disable compression."),
    Check("ws_extension_not_offered", E, Effect.FAIL, "RFC 6455 §9.1",
          "the server enabled an extension the client did not offer",
          "\"The server MUST NOT include extensions the client did not request\"; the client "
          "MUST fail the connection (§4.1).",
          "Fix the server's extension negotiation."),
    *from_data(_h2.RESPONSE),
) + in_phase(
    "after_switch",
    Check("client_hung_up_after_switch", E, Effect.ABORT, "RFC 6455 §7.1.7",
          "the client closed the connection after the 101 without sending a frame",
          "A client that rejects the server's handshake fails the connection, which may omit "
          "the Close frame: on the wire that is a FIN or RST right after the 101. A client "
          "that hangs up later, after waiting in silence, gave up instead: curl (which does "
          "not speak WebSocket) waits for data until --max-time or Ctrl-C.",
          "Look at the client's error (often a 101 it did not accept: Accept, subprotocol, "
          "extensions) and the findings on the response; after a wait, use a WebSocket "
          "client (websocat, wscat, curl 7.86+ built with WebSocket support) to test."),
    Check("server_hung_up_after_switch", E, Effect.ABORT, "RFC 6455 §7.1.7",
          "the server closed the connection after the 101 without sending a frame",
          "The server switched and then dropped the connection without a Close frame: its "
          "handler failed or refused the session right after the upgrade. When the end came "
          "after a second or more of silence (the found time says), a short idle timeout of "
          "a proxy in front of it (nginx proxy_read_timeout, HAProxy timeout tunnel) ends a "
          "connection the same way.",
          "Read the server's log (and the proxy's, if one is in front) at that time: the "
          "handler's error, or a proxy's 'upstream timed out'."),
    Check("keepalive_timeout_after_switch", E, Effect.ABORT, "RFC 6455 §5.5.2, §5.5.3",
          "a keepalive ping got no answer: the side that pinged gave up and closed",
          "One side sent a keepalive ping (a Ping frame, or Engine.IO's ping packet \"2\", "
          "which must be answered \"3\"), the other side sent nothing at all after it "
          "(no Pong, no data), and the pinging side then closed the connection, with a "
          "Close frame or a bare FIN or RST, within the first moments. \"Upon receipt of a "
          "Ping frame, an endpoint MUST send a Pong frame in response\" (§5.5.2); the "
          "pinging side's keepalive timer ran out: python websockets and uvicorn close with "
          "1011 'keepalive ping timeout', tornado with 1000 'ping timed out', aiohttp's "
          "heartbeat closes the TCP connection without a Close frame, Socket.IO after "
          "pingTimeout. The silent side was stalled (a blocked event loop, a long "
          "synchronous task, a process suspended or paused in a debugger), overloaded, "
          "or a proxy or middlebox on the path dropped the frames.",
          "Look at the silent side at that moment: its event loop, CPU and memory, its "
          "network path (and whether a proxy passes Ping and Pong frames). If it is only "
          "slow, raise the pinging side's ping timeout (websockets ping_timeout, tornado "
          "websocket_ping_timeout, aiohttp heartbeat, Socket.IO pingTimeout). Pinging more "
          "often does not help."),
    Check("ended_without_close_after_switch", E, Effect.ABORT, "RFC 6455 §7.1.5",
          "the connection ended without a Close frame soon after the switch",
          "Frames went by after the 101, then the connection ended with a FIN or a RST within "
          "the first moments, and neither side sent a Close frame. \"If _The WebSocket "
          "Connection is Closed_ and no Close control frame was received by the endpoint ... "
          "the WebSocket connection close code is considered to be 1006\": python websockets "
          "raises 'no close frame received or sent', browsers report close code 1006. Usual "
          "causes: a short idle timeout on a proxy (nginx proxy_read_timeout, HAProxy timeout "
          "tunnel) when the side that closed had been silent, the closing process crashed or "
          "was killed, a proxy or firewall cut the connection.",
          "Read the closing address's log at that time (a proxy's 'upstream timed out', a "
          "crash, a kill); make both sides send a Close frame when they shut down, and ping "
          "more often than the shortest idle timeout on the path."),
    Check("ws_closed_with_error", E, Effect.ABORT, "RFC 6455 §7.4.1",
          "the connection was closed with an error code right after the switch",
          "A Close frame with a code other than 1000/1001 soon after the 101 means the "
          "upgrade worked but the other side refused the session (1008: policy, often "
          "authentication; 1002: protocol error; 1009: a message over the receiver's size "
          "limit, python websockets' max_size of 1 MiB by default or Node ws' maxPayload; "
          "1011: server error).",
          "Read the close reason and the closing side's log; for 1009, raise the receiver's "
          "message size limit or send smaller messages."),
    Check("ws_closed_normally", N, Effect.NOTE, "RFC 6455 §7.4.1",
          "closed normally soon after the switch",
          "A Close with 1000 (normal) or 1001 (going away) soon after the 101.",
          "Nothing to fix if the session was meant to be short."),
    Check("ws_close_code_invalid", E, Effect.NOTE, "RFC 6455 §7.4.1",
          "Close frame with a code that must not be sent",
          "1005, 1006 and 1015 are reserved for reporting and must never be sent; codes below "
          "1000 are not used. Clients reject such a Close from a server: Chrome prints "
          "\"Received a broken close frame containing a reserved status code.\" (and its "
          "close event says 1006), Node ws and python websockets \"invalid status code\" and "
          "close with 1002. Typical of a server that echoes the 1005 its library reported "
          "for a Close without a code.",
          "Fix the sender's close code."),
    Check("ws_client_frame_unmasked", E, Effect.NOTE, "RFC 6455 §5.1",
          "the client sent an unmasked frame",
          "\"A client MUST mask all frames that it sends to the server\"; the server must close "
          "with 1002.",
          "Fix the client's framing."),
    Check("ws_server_frame_masked", E, Effect.NOTE, "RFC 6455 §5.1",
          "the server sent a masked frame",
          "\"A server MUST NOT mask any frames that it sends to the client\"; the client must "
          "close the connection.",
          "Fix the server's framing."),
    Check("ws_rsv_without_extension", E, Effect.NOTE, "RFC 6455 §5.2",
          "a frame sets RSV bits no extension was negotiated for",
          "\"RSV1, RSV2, RSV3: MUST be 0 unless an extension is negotiated that defines "
          "meanings for non-zero values.\" Typical of permessage-deflate on one side only.",
          "Negotiate the extension in the handshake, or stop compressing."),
    Check("ws_control_frame_invalid", E, Effect.NOTE, "RFC 6455 §5.5",
          "a control frame is fragmented or longer than 125 bytes",
          "\"All control frames MUST have a payload length of 125 bytes or less and MUST NOT "
          "be fragmented.\" The peer must close with 1002.",
          "Fix the sender's Close/Ping/Pong framing (a long close reason is the usual cause)."),
    Check("ws_frame_length_not_minimal", E, Effect.NOTE, "RFC 6455 §5.2",
          "a frame's payload length is not encoded in the fewest bytes",
          "\"in all cases, the minimal number of bytes MUST be used to encode the length\" (a "
          "length up to 125 in the 7-bit field, up to 65,535 in the 16-bit form), and in the "
          "64-bit form \"the most significant bit MUST be 0\". Strict peers (Chromium's "
          "frame parser, tungstenite, several Go libraries) fail the connection with 1002; "
          "lenient ones read on, so the same sender works with one peer and not another.",
          "Fix the sender's frame encoder (typically a hand-written one that always uses the "
          "16- or 64-bit form)."),
    Check("ws_text_not_utf8", E, Effect.NOTE, "RFC 6455 §8.1",
          "a text frame is not valid UTF-8",
          "\"When an endpoint is to interpret a byte stream as UTF-8 but finds that the byte "
          "stream is not, in fact, a valid UTF-8 stream, that endpoint MUST _Fail the "
          "WebSocket Connection_.\" Browsers print \"Could not decode a text frame as "
          "UTF-8.\" and drop the connection; server libraries close with 1007 (invalid "
          "payload data). Typical of binary data, or text in another encoding, sent in a text "
          "frame.",
          "Send binary data in binary frames (opcode 0x2), and text as UTF-8."),
    Check("ws_close_reason_not_utf8", E, Effect.NOTE, "RFC 6455 §5.5.1",
          "a Close frame's reason is not valid UTF-8",
          "After the status code, a Close frame's body \"MAY contain UTF-8-encoded data with "
          "value /reason/\", and §8.1 makes bytes that are not UTF-8 a failure of the "
          "connection: Chrome prints \"Received a broken close frame containing invalid "
          "UTF-8.\" where the Close would have ended it cleanly. Typical of a reason cut at "
          "a byte count inside a character, or written in another encoding.",
          "Encode the reason as UTF-8 and cut it only between characters (at most 123 "
          "bytes)."),
    Check("ws_opcode_reserved", E, Effect.NOTE, "RFC 6455 §5.2",
          "a frame uses a reserved opcode",
          "Opcodes 0x3-0x7 and 0xB-0xF are reserved; \"if an unknown opcode is received, the "
          "receiving endpoint MUST _Fail the WebSocket Connection_.\"",
          "Fix the sender, or check that both sides really speak WebSocket after the 101."),
    Check("ws_ping_unanswered", W, Effect.NOTE, "RFC 6455 §5.5.2",
          "a Ping got no Pong in the first moments",
          "\"Upon receipt of a Ping frame, an endpoint MUST send a Pong frame in response ... "
          "as soon as is practical.\" A side (or a proxy) that does not answer makes the other "
          "side's heartbeat fail later: python websockets closes with 1011 'keepalive ping "
          "timeout', a Node ws heartbeat calls terminate(), browsers' peers drop the socket.",
          "Make the peer answer pings (hand-written servers and some proxies do not), or "
          "lengthen the ping timeout on the side that pings."),
    Check("tunnel_carried", N, Effect.NOTE, "RFC 9110 §9.3.6",
          "what went through the CONNECT tunnel",
          "After a 2xx to CONNECT the connection is a blind tunnel; its first bytes say what "
          "the client (and the far end) spoke through it, e.g. TLS for an https:// target.",
          "Nothing to fix; a protocol other than the one expected points at the client."),
    Check("h2c_no_client_preface", E, Effect.ABORT, "RFC 7540 §3.5",
          "after the 101 the client did not send the HTTP/2 preface",
          "\"Upon receipt of the 101 response, the client MUST send a connection preface\" "
          "(PRI * HTTP/2.0...).",
          "Fix the client's h2c handling."),
    Check("h2c_upgraded_request_status", N, Effect.NOTE, "RFC 7540 §3.2",
          "the answer to the upgraded request, over HTTP/2 on stream 1",
          "After a 101 to h2c the request that carried the upgrade is stream 1 of the new "
          "HTTP/2 connection, and the server answers it there: its :status is what the "
          "client's request finally got.",
          "Nothing to fix for the upgrade; a 4xx/5xx here is the application's answer."),
    Check("h2c_no_server_settings", E, Effect.ABORT, "RFC 7540 §3.5",
          "after the 101 the server's first frame was not SETTINGS",
          "\"The server connection preface consists of a potentially empty SETTINGS frame that "
          "MUST be the first frame the server sends.\"",
          "Fix the server's h2c handling."),
    *from_data(_h2.AFTER_SWITCH),
)
