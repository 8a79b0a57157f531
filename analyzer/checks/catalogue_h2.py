"""The catalogue's HTTP/2 entries (RFC 9113, and WebSockets over HTTP/2, RFC 8441), by phase.

Plain data, kept apart so that ``catalogue.py`` stays readable: it turns each entry into a
``Check`` and places each group inside its phase, so the order that breaks ties between
primary reasons stays "root causes first". Fields: id, severity, effect, RFC section, title,
explanation, fix (as ``catalogue.Check``).
"""

from __future__ import annotations

Entry = tuple[str, str, str, str, str, str, str]

TRANSPORT: tuple[Entry, ...] = (
    ("h2_answer_not_http2", "error", "failed", "RFC 9113 §3.4",
     "the server answered the HTTP/2 preface in another protocol (it does not speak HTTP/2)",
     "\"The server connection preface consists of a potentially empty SETTINGS frame ... that "
     "MUST be the first frame the server sends in the HTTP/2 connection.\" This server's first "
     "bytes were not a SETTINGS frame: an HTTP/1 server reads the client's preface as the "
     "request line \"PRI * HTTP/2.0\" and refuses it (nginx without http2 on the port: 400; "
     "python's http.server: an error page without a status line). The client opened HTTP/2 "
     "with prior knowledge (RFC 9113 §3.3) of a server that has none: curl "
     "--http2-prior-knowledge then reports an empty reply.",
     "Use HTTP/1.1 on that port (curl: drop --http2-prior-knowledge, or offer h2c with "
     "--http2), or enable cleartext HTTP/2 on the server (nginx: listen ... http2)."),
    ("h2_stream_refused", "error", "no_response", "RFC 9113 §8.7",
     "the HTTP/2 stream was not processed (REFUSED_STREAM or GOAWAY)",
     "The server reset the stream with REFUSED_STREAM, or sent a GOAWAY whose last stream id "
     "is below this stream: \"the stream was refused before any application processing\", "
     "so the request never reached the application and may be retried.",
     "Look for a server at its stream or connection limit (SETTINGS_MAX_CONCURRENT_STREAMS) "
     "or shutting down (a GOAWAY during a deploy); the client should retry on a new "
     "connection."),
    ("h2_frame_error", "error", "failed", "RFC 9113 §4.2",
     "an HTTP/2 frame broke the framing rules (a connection error)",
     "A frame was longer than the receiver's SETTINGS_MAX_FRAME_SIZE, malformed for its type, "
     "wrongly padded, interrupted a header block, the client preface was wrong, or the "
     "connection ended inside a frame. An endpoint must treat these as connection errors "
     "(FRAME_SIZE_ERROR or PROTOCOL_ERROR) and close the connection.",
     "Fix the sender named in the finding (often a proxy or a hand-written HTTP/2 stack); "
     "check that both sides really speak HTTP/2 (prior knowledge only works when both do)."),
    ("h2_hpack_error", "error", "failed", "RFC 9113 §4.3",
     "an HTTP/2 header block could not be decoded (COMPRESSION_ERROR)",
     "The header block references a table entry that does not exist or is otherwise invalid "
     "HPACK (RFC 7541). \"A decoding error in a field block MUST be treated as a connection "
     "error of type COMPRESSION_ERROR\"; the decoder state is then lost, so no later header "
     "block on that direction can be read either.",
     "Fix the encoder named in the finding (a proxy mixing up the dynamic tables of two "
     "connections is a classic cause)."),
    ("h2_header_list_too_large", "warning", "inconclusive", "RFC 9113 §10.5.1",
     "an HTTP/2 header list exceeds 64 KiB: not read",
     "A header block is longer than 64 KiB, compressed or decoded (the bound this analyzer "
     "uses, like the one for HTTP/1 heads), so it is not read, and neither is any later "
     "block of that direction (the HPACK state is lost). Servers usually refuse such "
     "requests with 431 or a reset.",
     "Send fewer or shorter header fields (cookies are the usual cause)."),
)

REQUEST: tuple[Entry, ...] = (
    ("h2_connect_protocol_not_enabled", "error", "failed", "RFC 8441 §3, §4",
     "extended CONNECT (:protocol) sent without the server enabling it",
     "A client may send the :protocol pseudo-header field only after the server's SETTINGS "
     "carried SETTINGS_ENABLE_CONNECT_PROTOCOL = 1; to a server that did not, the request is "
     "malformed (nginx 1.22 answers 400 and logs \"client sent unknown pseudo-header "
     "':protocol'\"; others reset the stream with PROTOCOL_ERROR).",
     "Enable WebSockets over HTTP/2 on the server (or the proxy in front of it), or make the "
     "client fall back to HTTP/1.1 (Chromium opens a new connection with ALPN http/1.1 when "
     "the server does not advertise it)."),
    ("h2_pseudo_header_missing", "error", "failed", "RFC 8441 §4",
     "extended CONNECT without :scheme, :path or :authority",
     "\"On requests that contain the :protocol pseudo-header field, the :scheme and :path "
     "pseudo-header fields of the target URI MUST also be included\", and :authority names "
     "the target (RFC 9113 §8.3.1). Without them the request is malformed.",
     "Fix the client's (or proxy's) HTTP/2 request."),
    ("h2_connect_malformed", "error", "failed", "RFC 9113 §8.5",
     "a CONNECT without :protocol that carried :scheme or :path",
     "A plain HTTP/2 CONNECT opens a TCP tunnel: \"The :scheme and :path pseudo-header fields "
     "MUST be omitted\", and a request that has them is malformed (servers answer with a "
     "stream or connection error: Hypercorn sends GOAWAY PROTOCOL_ERROR). A WebSocket over "
     "HTTP/2 is the extended CONNECT of RFC 8441, which keeps them and adds :protocol "
     "websocket: this request looks like one that lost its :protocol.",
     "Send :protocol websocket with the CONNECT (and only after the server's SETTINGS "
     "enabled SETTINGS_ENABLE_CONNECT_PROTOCOL); a tunnel CONNECT carries :authority alone."),
    ("h2_connection_header_in_request", "error", "failed", "RFC 9113 §8.2.2",
     "HTTP/2 request with connection-specific header fields (Upgrade, Connection...)",
     "\"An endpoint MUST NOT generate an HTTP/2 message containing connection-specific header "
     "fields\" (Connection, Upgrade, Keep-Alive, Proxy-Connection, Transfer-Encoding); such a "
     "message \"MUST be treated as malformed\". An HTTP/1.1 WebSocket handshake copied onto "
     "HTTP/2 carries exactly these.",
     "Drop Upgrade and Connection in HTTP/2; a WebSocket over HTTP/2 is opened with "
     "extended CONNECT and :protocol websocket (RFC 8441 §4)."),
    ("h2_websocket_key_present", "warning", "note", "RFC 8441 §5",
     "Sec-WebSocket-Key or Sec-WebSocket-Accept in an HTTP/2 WebSocket handshake",
     "Over HTTP/2 \"the processing of the Sec-WebSocket-Key and Sec-WebSocket-Accept header "
     "fields of RFC 6455\" is not done: :protocol replaces them. They are harmless but show "
     "an HTTP/1.1 handshake translated field by field (HAProxy 2.6's HTTP/2 front passes "
     "on its HTTP/1.1 backend's Sec-WebSocket-Accept in the 200).",
     "Leave them out over HTTP/2."),
)

# A reset or GOAWAY is the server's answer to the stream: after the request's own faults (the
# root cause when a server resets a malformed request), like the statuses.
RESPONSE: tuple[Entry, ...] = (
    ("h2_stream_reset", "error", "failed", "RFC 9113 §6.4",
     "the HTTP/2 stream was reset before a response",
     "A RST_STREAM ended the stream before the server answered; its error code (RFC 9113 §7) "
     "says why: PROTOCOL_ERROR for a malformed request (a server without extended CONNECT "
     "resets a request carrying :protocol), CONNECT_ERROR "
     "when a proxy's connection to the target failed.",
     "Read the error code; for PROTOCOL_ERROR compare the request with RFC 8441 §4 and "
     "RFC 9113 §8.3 (pseudo-header fields), for CANCEL look at the client's timeout."),
    ("h2_goaway", "error", "failed", "RFC 9113 §6.8",
     "the HTTP/2 connection was closed (GOAWAY) before a response",
     "The server (or the client) sent GOAWAY and no response came on this stream although "
     "its id was not above the last stream id: the connection ended with the code shown.",
     "Read the code and debug data of the GOAWAY and the sender's log (ENHANCE_YOUR_CALM: "
     "rate limiting; PROTOCOL_ERROR or COMPRESSION_ERROR: a broken peer)."),
    ("h2_status_101", "error", "failed", "RFC 8441 §5",
     "the server answered an HTTP/2 WebSocket handshake with 101 instead of 200",
     "Over HTTP/2 a WebSocket is accepted with a 2xx (200) on the CONNECT stream; HTTP/2 has "
     "no 101 at all (RFC 9113 §8.6: \"does not support the 101 (Switching Protocols) "
     "informational status code\"). A client treats the response as malformed.",
     "Fix the server or proxy that translated an HTTP/1.1 101 into HTTP/2 as it was."),
    ("h2_connection_header_in_response", "error", "failed", "RFC 9113 §8.2.2",
     "HTTP/2 response with connection-specific header fields (Upgrade, Connection...)",
     "\"An endpoint MUST NOT generate an HTTP/2 message containing connection-specific header "
     "fields\"; a client treats the response as malformed and resets the stream.",
     "Remove Upgrade/Connection from the HTTP/2 response (a proxy copying an HTTP/1.1 101's "
     "fields is the usual cause)."),
)

AFTER_SWITCH: tuple[Entry, ...] = (
    ("h2_client_ended_after_switch", "error", "aborted", "RFC 8441 §5",
     "the client ended the HTTP/2 stream right after the 200, without a WebSocket frame",
     "Over HTTP/2 the stream's END_STREAM takes the place of TCP FIN and RST_STREAM that of "
     "RST: the client ended the WebSocket stream at once, which is how a client that rejects "
     "the handshake (a subprotocol or extension it did not accept) fails it.",
     "Look at the client's error and the findings on the response."),
    ("h2_server_ended_after_switch", "error", "aborted", "RFC 8441 §5",
     "the server ended the HTTP/2 stream right after the 200, without a WebSocket frame",
     "The server accepted the extended CONNECT and then ended (END_STREAM) or reset "
     "(RST_STREAM) the stream without a Close frame.",
     "Read the server's log: the handler failed right after accepting."),
)
