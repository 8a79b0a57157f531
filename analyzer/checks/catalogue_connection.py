"""The catalogue's entries about the connection around HTTP: the capture itself, TCP, TLS and
proxies on the way. Root causes, so they come first in the catalogue (catalogue.py explains
why the order matters).
"""

from __future__ import annotations

from analyzer.checks import catalogue_h2 as _h2
from analyzer.checks.finding import Check, E, Effect, N, W, from_data, in_phase

CONNECTION: tuple[Check, ...] = in_phase(
    "capture",
    Check("capture_gap_request", E, Effect.INCONCLUSIVE, "RFC 9293 §3.4",
          "bytes of the request are missing from the capture",
          "The client's bytes have a hole (packets lost by the capture, or cut by the snaplen) "
          "where the request or what precedes it should be, so the request cannot be judged.",
          "Capture closer to the client, with a larger buffer (-B) and no snaplen (-s 0)."),
    Check("capture_gap_response", E, Effect.INCONCLUSIVE, "RFC 9293 §3.4",
          "bytes of the response are missing from the capture",
          "The server's bytes have a hole where the response (or what precedes it) should be, "
          "so whether and how the server answered, or which request a later response "
          "answers, cannot be told.",
          "Capture with a larger buffer (-B) and no snaplen (-s 0); check capture drops."),
    Check("request_not_captured", W, Effect.INCONCLUSIVE, "RFC 9110 §15.2.2",
          "the request is not in the capture (it started mid-connection)",
          "A response was captured without the request it answers, so the offer cannot be "
          "compared with the answer.",
          "Start the capture before the client connects."),
    Check("capture_ended_too_soon", W, Effect.INCONCLUSIVE, "RFC 9293 §3.8.1",
          "the capture ended too soon after the last packet to tell",
          "The capture stopped less than a second after the SYN or the request, before an "
          "answer could reasonably be expected, so 'no response' cannot be claimed.",
          "Capture for longer, until the attempt has visibly succeeded or failed."),
    Check("capture_gap_tls_handshake", E, Effect.INCONCLUSIVE, "RFC 8446 §4",
          "bytes of the TLS handshake are missing from the capture",
          "Packets of the TLS handshake (the ClientHello, the ServerHello or a side's flight) "
          "are not in the capture: the capture dropped them (a full buffer; tcpdump reports "
          "'packets dropped by kernel'), or they took another interface. Without them the "
          "session's keys cannot be set up (the ServerHello names the suite and carries the "
          "server random) nor the handshake judged, even with the right key log; nothing "
          "inside the session is guessed.",
          "Capture with a larger buffer (tcpdump -B 8192, dumpcap -B), on the interface that "
          "carries both directions (-i any), with no snaplen (-s 0); check the drop counters "
          "tcpdump prints at the end."),
    Check("capture_gap_after_switch", W, Effect.NOTE, "RFC 9293 §3.4",
          "bytes after the switch are missing from the capture",
          "A hole after the 101 hides part of what the two sides did right after the switch.",
          "Capture with a larger buffer (-B) and no snaplen (-s 0)."),
) + in_phase(
    "transport",
    Check("tcp_refused", E, Effect.REFUSED, "RFC 9293 §3.10.7.1",
          "connection refused: the SYN was answered by RST",
          "Nothing listens on the server port (or a firewall rejects): the host reset the "
          "connection attempt.",
          "Check the server is running and listening on that address and port, and firewalls."),
    Check("tcp_syn_unanswered", E, Effect.NO_RESPONSE, "RFC 9293 §3.8.1",
          "TCP got no answer: the SYN was never answered",
          "The client's SYN (and its retransmissions) got no SYN-ACK: the address is wrong, "
          "the host is down, or a firewall drops the packets. HTTP was never reached.",
          "Check the address, routes and firewall rules (drops, not rejects)."),
    Check("tcp_overlap_conflict", W, Effect.NOTE, "RFC 9293 §3.10.7.4",
          "TCP segments overlap with different bytes",
          "A segment re-sent bytes that were already sent, but with different content. A real "
          "retransmission repeats the same bytes; different ones are the classic IDS/proxy "
          "evasion (Ptacek & Newsham): the receiver keeps one copy and a monitor may keep the "
          "other. This report judged the copy that arrived first; the receiver may have used "
          "the later one, so the heads shown may not be what the endpoint read.",
          "Treat it as hostile or as a broken middlebox rewriting packets: find which host sent "
          "both copies (the frames) and capture nearer to the receiver to see which one won."),
    Check("request_resent", W, Effect.NOTE, "RFC 9293 §3.8.1",
          "the client sent the request again: its first copy was not acknowledged",
          "The capture shows the request's bytes (or bytes before them) sent more than once "
          "before any answer, and no acknowledgement of the first copy: the client's TCP "
          "timed out and retransmitted (RFC 6298: 200 ms to 1 s at first, doubling each "
          "time). The first copy was lost after the capture point, or the acknowledgement "
          "was; either way the server could not answer before a copy reached it, so a wait "
          "counted from the first copy is not the server's. Times after the last copy are "
          "given with the findings.",
          "Look for loss between the capture point and the server: interface errors and "
          "drops (ip -s link, ethtool -S), a congested or policed link, a firewall or load "
          "balancer dropping packets (a full conntrack table). A capture at the server's side "
          "shows which copy arrived."),
    Check("response_resent", W, Effect.NOTE, "RFC 9293 §3.8.1",
          "the server sent its response again: its first copy was not acknowledged",
          "The capture shows the response's bytes (or what followed them) sent more than "
          "once, and nothing acknowledged the first copy: the server's TCP timed out and "
          "retransmitted. The path towards the client lost the first copy (or the client's "
          "acknowledgement): the client saw the response late, or, if it gave up meanwhile "
          "(a handshake timeout), never; what it did next answered a response it may not "
          "have had.",
          "Look for loss between the capture point and the client: interface errors and "
          "drops, a congested or policed link, a firewall, NAT or load balancer dropping "
          "packets on the way back (asymmetric routing). A capture at the client's side "
          "shows which copy arrived."),
    Check("tls_client_hello_resent", W, Effect.NOTE, "RFC 9293 §3.8.1",
          "the client sent its TLS ClientHello again: its first copy was not acknowledged",
          "The capture shows the ClientHello's bytes sent more than once before any "
          "ServerHello, and nothing acknowledged the first copy: the client's TCP timed out "
          "and retransmitted. The first copy was lost after the capture point (or its "
          "acknowledgement was), so the server could not answer before a copy reached it: a "
          "wait counted from the first copy is not the server's. A ClientHello is often the "
          "connection's first segment larger than a few hundred bytes (over 1,500 with the "
          "post-quantum key shares of current browsers and OpenSSL 3.5), so a path that "
          "drops large packets loses it while the SYNs got through.",
          "Look for loss between the capture point and the server: a path MTU black hole (a "
          "tunnel or VPN with a smaller MTU and the ICMP 'fragmentation needed' messages "
          "blocked: clamp the TCP MSS on that link, or allow those ICMP messages), a "
          "firewall or TLS inspection box dropping the ClientHello (over its SNI), interface "
          "errors and drops. A capture at the server's side shows which copy arrived."),
    Check("request_head_incomplete", E, Effect.FAIL, "RFC 9112 §2.1",
          "the connection ended before the request head did",
          "The request head never reached the empty line that ends it (RFC 9112 §2.1: start "
          "line, header fields, then CRLF) before the connection closed, so the server had no "
          "request to answer. The request is shown as far as it went.",
          "Look at the client (crashed, timed out while writing, or a bug that never ends the "
          "head) or at a middlebox that cut the connection; a server that closes on slow "
          "clients (a header timeout) does this to slowloris-like senders."),
    Check("no_response_server_closed", E, Effect.NO_RESPONSE, "RFC 9112 §9.6",
          "the server closed the connection without answering",
          "The server sent FIN after the request and no response. Some servers (tungstenite, "
          "axum's base) do exactly this for every handshake they reject.",
          "Read the server's log for the rejection reason; compare the request with RFC 6455 "
          "§4.1."),
    Check("no_response_server_reset", E, Effect.NO_RESPONSE, "RFC 9293 §3.10.7.4",
          "the server reset the connection without answering",
          "The server (or a middlebox) sent RST after the request and no response.",
          "Look for a crash, a proxy or a firewall that kills the connection; read its log."),
    Check("no_response_client_gave_up", E, Effect.NO_RESPONSE, "RFC 6455 §4.1",
          "no response: the client gave up waiting",
          "The client closed the connection after waiting for a response that never came: a "
          "handshake timeout (Node ws: 'Opening handshake has timed out').",
          "Find where the request stalls: a proxy buffering it, a server not handling the "
          "path, or an upstream that never answers."),
    Check("no_response_capture_ended", W, Effect.NO_RESPONSE, "RFC 9110 §15",
          "no response before the capture or the wait ended",
          "The request was captured but no response arrived before the capture ended (or, "
          "live, before the response timeout).",
          "Capture for longer, or look at the server side for why it did not answer."),
    *from_data(_h2.TRANSPORT),
) + in_phase(
    "tls",
    # A connection that broke at the TLS layer (an AttemptKind.TLS attempt, analyzer/tls/layer.py)
    # or a TLS/cleartext mix-up; analyzer/checks/tls.py. Specific causes come before the
    # generic ones: catalogue order breaks ties for the primary reason.
    Check("tls_key_mismatch", E, Effect.INCONCLUSIVE, "RFC 8446 §5.2",
          "the key log has a key for this TLS session, but it does not decrypt it",
          "The key log holds secrets for this session's client random, yet the first protected "
          "record fails authentication with them. Nothing inside the session can be judged; "
          "no guess is made.",
          "Use the key log written by the very client process of this capture (SSLKEYLOGFILE, "
          "keylog_filename); a file appended by several runs, or edited, can hold stale or "
          "damaged lines."),
    Check("tls_decryption_stopped", E, Effect.INCONCLUSIVE, "RFC 8446 §5.4",
          "decryption stopped inside the TLS session: a later record did not open",
          "Large records in a body are counted as application data without being opened, "
          "once the sender's first records showed no padding. A record after them failed "
          "to open with the same keys, so one of them was not data (most likely a KeyUpdate "
          "padded past that size, RFC 8446 §4.6.3) or the capture damaged it. What follows "
          "in that direction is not read; no guess is made.",
          "Report the capture to the analyzer's developers: it is the case this rule exists "
          "for. The traffic itself may be fine."),
    Check("tls_client_hello_to_cleartext_port", E, Effect.FAIL, "RFC 8446 §4.1.2",
          "a TLS ClientHello was sent to a cleartext (HTTP) port",
          "The client started TLS (wss:// or https://), but the server speaks cleartext HTTP on "
          "that port: it answered the ClientHello with an HTTP error (aiohttp and nginx send "
          "400) or with other non-TLS bytes. Python websockets servers reset instead.",
          "Use ws:// / http:// for this port, or terminate TLS on it (a TLS listener, or a "
          "proxy with TLS in front of the server)."),
    Check("tls_certificate_name_mismatch", E, Effect.FAIL, "RFC 6125 §6.4",
          "the server's certificate does not cover the name the client asked for",
          "The leaf certificate (in cleartext before TLS 1.3, or decrypted) lists no name that "
          "matches the SNI (or the address the client dialled), and the client ended the "
          "handshake: host name verification failed.",
          "Serve a certificate whose subjectAltName includes that host name (a wildcard covers "
          "one label), or have the client use a name the certificate covers."),
    Check("tls_certificate_expired", E, Effect.FAIL, "RFC 5280 §4.1.2.5",
          "the server's certificate was expired or not yet valid at the time of the capture",
          "At the capture's time the leaf certificate was outside its validity period "
          "(notBefore..notAfter), and the client ended the handshake.",
          "Renew the certificate (check the renewal job, e.g. certbot), or fix the clock of "
          "the client or server if the dates look right."),
    Check("tls_certificate_rejected", E, Effect.FAIL, "RFC 8446 §6.2",
          "the client rejected the server's certificate",
          "The client answered the server's certificate with a fatal alert (unknown_ca, "
          "bad_certificate, certificate_expired, certificate_unknown...), or hung up right "
          "after the server's handshake flight without finishing the handshake and without an "
          "alert that could be read: Python's ssl (websockets, aiohttp) and Go clients reject a "
          "certificate that way (unknown CA, wrong host name, expired). In TLS 1.3 the "
          "certificate itself is encrypted; a key log shows it.",
          "Serve the full chain (leaf and intermediates) signed by a CA the client trusts; for "
          "a private CA, add it to the client's trust store (e.g. SSL_CERT_FILE, "
          "NODE_EXTRA_CA_CERTS, certifi) rather than disabling verification."),
    Check("tls_client_certificate_required", E, Effect.FAIL, "RFC 8446 §4.4.2.4",
          "the server required a client certificate (mutual TLS) and got none",
          "The server sent a CertificateRequest; the client answered with no certificate (or "
          "one the server refused), and the server ended the handshake (certificate_required, "
          "handshake_failure or bad_certificate alert, or a silent close).",
          "Configure the client with its certificate and key (e.g. ssl_context."
          "load_cert_chain, curl --cert), or make client certificates optional on the server."),
    Check("tls_unrecognized_name", E, Effect.FAIL, "RFC 6066 §3",
          "the server does not serve the requested name (unrecognized_name)",
          "The server answered the ClientHello's server_name with the fatal alert "
          "unrecognized_name: no virtual host / certificate is configured for it (nginx with "
          "ssl_reject_handshake does this for unknown names).",
          "Use the host name the server is configured for, or add a server block / "
          "certificate for this name; check the client sends SNI at all."),
    Check("tls_protocol_version", E, Effect.FAIL, "RFC 8446 §4.2.1",
          "the client and server share no TLS version (protocol_version)",
          "An endpoint answered with the fatal alert protocol_version (or "
          "inappropriate_fallback): the versions one side offers are all refused by the other "
          "(e.g. a TLS 1.3-only server and a TLS 1.2 client, or TLS 1.0 switched off).",
          "Enable a version both sides support (TLS 1.2 at least); update the old side."),
    Check("tls_handshake_failure", E, Effect.FAIL, "RFC 8446 §6.2",
          "the TLS handshake failed: no acceptable parameters (handshake_failure)",
          "An endpoint answered with the fatal alert handshake_failure or "
          "insufficient_security: usually no cipher suite, group or signature algorithm in "
          "common.",
          "Compare the suites and groups both sides allow (openssl s_client -connect ...); "
          "re-enable a modern ECDHE + AES-GCM suite on the stricter side."),
    Check("tls_no_application_protocol", E, Effect.FAIL, "RFC 7301 §3.2",
          "no common application protocol (ALPN: no_application_protocol)",
          "The server supports none of the protocols the client listed in ALPN and ended the "
          "handshake with no_application_protocol (e.g. an h2-only server and a client "
          "offering only http/1.1, as WebSocket clients do).",
          "Enable http/1.1 in the server's ALPN list, or have the client offer what the server "
          "speaks."),
    Check("tls_fatal_alert", E, Effect.FAIL, "RFC 8446 §6.2",
          "the TLS handshake ended with a fatal alert",
          "An endpoint sent a fatal alert during the handshake; its name says which check "
          "failed.",
          "Look up the alert's name on the side that received it; the side that sent it "
          "usually logs the detail."),
    Check("tls_client_closed_after_handshake", E, Effect.FAIL, "RFC 8446 §6.1",
          "the client completed the TLS handshake, then closed without sending a request",
          "The handshake finished, but the client closed (often with an alert, encrypted) "
          "before any application data: a client that verifies the host name after the "
          "handshake (curl with TLS 1.2) or refuses the negotiated ALPN protocol does this, "
          "and Node closes so, without an alert, when it does not trust the server's chain.",
          "Check the certificate's chain and names and the ALPN protocol the server chose "
          "against what the client trusts and expects (the client's own error says which); "
          "without a key log, a key log shows the name of the client's alert, when it sent "
          "one."),
    Check("tls_server_closed_during_handshake", E, Effect.FAIL, "RFC 8446 §4",
          "the server closed the connection during the TLS handshake",
          "After its ServerHello the server closed or reset the connection before the "
          "handshake finished, without an alert that could be read.",
          "Read the server's TLS error log (a client certificate it refused, a handshake "
          "timeout, a crashed worker)."),
    Check("tls_no_server_hello", E, Effect.NO_RESPONSE, "RFC 8446 §4.1.3",
          "the server never answered the TLS ClientHello",
          "The client sent a ClientHello and the server closed, reset or stayed silent without "
          "a ServerHello: something on that port accepts TCP but not this TLS handshake (a "
          "cleartext server that resets, a TLS server that cannot parse it, a firewall "
          "inspecting SNI).",
          "Check what listens on the port (openssl s_client -connect host:port); if it is a "
          "cleartext server use ws://, otherwise read its logs for the refused handshake."),
    Check("tls_client_gave_up", E, Effect.NO_RESPONSE, "RFC 8446 §4.1.3",
          "the client gave up before the server answered its TLS ClientHello",
          "The client sent a ClientHello and closed the connection before any ServerHello "
          "came: its own timeout ran out (curl --connect-timeout or -m, a WebSocket library's "
          "open timeout, a browser's preconnect it no longer needed). A ServerHello that "
          "arrived after the client had gone answered nobody. The server (or a proxy in "
          "front of it) was slow to answer: overloaded, stuck on a slow certificate or key "
          "operation, or waiting on its own upstream.",
          "Look at the server's load and its TLS handshake times at that moment; raise the "
          "client's timeout if the server is merely slow."),
    Check("tls_handshake_incomplete", W, Effect.INCONCLUSIVE, "RFC 8446 §4",
          "the TLS handshake did not complete and the capture does not say why",
          "The connection ended (or the capture did) before the handshake finished, without "
          "an alert, a close right after a flight, or another sign of who gave up.",
          "Capture for longer, or from the start of the connection; a key log may show an "
          "encrypted alert."),
) + in_phase(
    "proxy",
    # Found by pairing the two legs of a proxy captured together (analyzer/correlate.py), or
    # by the marks a proxy leaves on one leg. Listed before the request rules: when a proxy
    # broke the handshake, that is the root cause the user must fix.
    Check("proxy_backend_refused", E, Effect.FAIL, "RFC 9110 §15.6.3",
          "the proxy's connection to the backend was refused",
          "For this handshake the proxy opened a connection to its backend, and the backend's "
          "host answered the SYN with RST: nothing listens on that address and port. The "
          "proxy then answered the client itself (nginx: 502 Bad Gateway, logging "
          "'connect() failed (111: Connection refused) while connecting to upstream'; "
          "Apache httpd: 503 Service Unavailable, logging 'AH00957: http: attempt to connect "
          "to ... failed'; HAProxy and Envoy: 503). The client's request was fine; the "
          "backend was not there.",
          "Start the backend (or wait for its restart), or point the proxy at the address "
          "and port it listens on (nginx: proxy_pass; a backend bound to 127.0.0.1 in "
          "another container or host cannot be reached). Behind a forward proxy (a CONNECT "
          "answered 503, Squid's ERR_CONNECT_FAIL '(111) Connection refused'), the backend is "
          "the wss:// server the client named: check its address and port."),
    Check("proxy_backend_timeout", E, Effect.FAIL, "RFC 9110 §15.6.5",
          "the backend took the proxy's request and did not answer in time",
          "For this handshake the proxy forwarded the request to its backend, which accepted "
          "the connection and the request and sent nothing back; the proxy gave up when its "
          "timeout ran out, closed that connection and answered the client 504 itself "
          "(HAProxy: timeout server, logged with termination state sH; nginx: "
          "proxy_read_timeout, 60 s by default, 'upstream timed out (110: Connection timed "
          "out) while reading response header from upstream'), or 502 (Apache httpd: "
          "ProxyTimeout, else Timeout, 60 s by default, '502 Proxy Error' and 'AH01102: "
          "error reading status line from remote server'). The client's request was "
          "fine; the backend's handler was stuck or slow before it answered the upgrade.",
          "Look at the backend at that moment: a handler that waits on something (a "
          "database, an authentication call) before it accepts the WebSocket, a blocked "
          "event loop, a full worker pool. Raise the proxy's timeout only for a backend "
          "that is slow to answer by design."),
    # A forward proxy's answer to CONNECT (checks/response.py): the tunnel a wss:// client
    # behind a corporate proxy needs before its TLS and its handshake (RFC 9110 §9.3.6)
    Check("proxy_tunnel_denied", E, Effect.FAIL, "RFC 9110 §9.3.6",
          "the forward proxy refused the CONNECT tunnel",
          "The client asked its proxy to CONNECT to the server (as every client does for "
          "wss://, and browsers for ws:// too), and the proxy refused by its own rules: the "
          "TLS handshake and the WebSocket upgrade never started. Squid answers 403 with its "
          "ERR_ACCESS_DENIED page; its default configuration (Debian's too) has 'http_access "
          "deny CONNECT !SSL_ports' with SSL_ports port 443, so a CONNECT to any other port "
          "is refused before any allow rule, and a destination or domain ACL refuses the same "
          "way. Its access.log says TCP_DENIED/403 ... HIER_NONE.",
          "Serve the WebSocket on port 443, or allow its port and destination on the proxy "
          "(Squid: acl SSL_ports port 8443, placed before 'http_access deny CONNECT "
          "!SSL_ports', and an http_access allow for the destination); or exclude the host "
          "from the proxy (NO_PROXY, the browser's bypass list)."),
    Check("proxy_auth_required", E, Effect.FAIL, "RFC 9110 §15.5.8",
          "the proxy wants credentials (407)",
          "A 407 comes from a proxy, never from the server behind it: the proxy requires the "
          "client to authenticate (Proxy-Authenticate names the scheme: Basic, Negotiate, "
          "NTLM) before it opens a tunnel or forwards a request. WebSocket libraries rarely "
          "answer the challenge themselves: python websockets takes credentials only in the "
          "proxy URL (http://user:pass@proxy:3128), curl with --proxy-user, and browsers ask "
          "the user or use the system's (Kerberos, NTLM) credentials.",
          "Give the client the proxy's credentials (in the proxy URL, curl -U user:pass), or "
          "let the destination through without authentication (Squid: an http_access allow "
          "for it before the proxy_auth rule)."),
    Check("proxy_tunnel_failed", E, Effect.FAIL, "RFC 9110 §9.3.6",
          "the forward proxy could not reach the CONNECT target",
          "The proxy accepted the CONNECT but could not open the connection to the target, "
          "and answered the client 502, 503 or 504 itself: the target refused it (Squid's 503 "
          "ERR_CONNECT_FAIL with '(111) Connection refused'), did not answer in time "
          "('(110) Connection timed out'), or its name did not resolve (ERR_DNS_FAIL). The "
          "client's request was fine; the server it named was not reachable from the proxy.",
          "Check the server's address and port from the proxy's host (its firewall and "
          "routes, not the client's), and that the server is running."),
    Check("proxy_stripped_upgrade", E, Effect.FAIL, "RFC 9110 §7.6.1",
          "a proxy removed Upgrade/Connection before the backend",
          "Upgrade and Connection are hop-by-hop: a proxy drops them unless configured to "
          "forward them, and the backend then sees a plain request (nginx does this by "
          "default). The client's request was fine; the backend's copy was not.",
          "nginx: proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; "
          "proxy_set_header Connection \"upgrade\"; Apache httpd: upgrade=websocket on the "
          "ProxyPass http:// line (or ProxyPass ws://, mod_proxy_wstunnel); Squid (a ws:// "
          "request forwarded in absolute form: it drops Upgrade unless told): "
          "http_upgrade_request_protocols websocket allow all (5.0 and later; the name is "
          "case-sensitive and clients send 'websocket': a rule for 'WebSocket' never "
          "matches); other proxies: enable WebSocket support."),
    Check("proxy_http10_upstream", E, Effect.FAIL, "RFC 9110 §7.8",
          "a proxy spoke HTTP/1.0 to the backend",
          "The proxy forwarded the handshake as HTTP/1.0, in which a server MUST ignore "
          "Upgrade; nginx uses HTTP/1.0 to upstreams unless told otherwise, Apache httpd "
          "with force-proxy-request-1.0 set (it then drops the Upgrade too).",
          "nginx: proxy_http_version 1.1 in the location that proxies WebSockets; Apache "
          "httpd: no force-proxy-request-1.0 where it proxies WebSockets."),
    Check("proxy_http10_upstream_switched", W, Effect.NOTE, "RFC 9110 §7.8",
          "a proxy spoke HTTP/1.0 to the backend, which switched anyway",
          "The proxy forwarded the handshake as HTTP/1.0, in which a server MUST ignore "
          "Upgrade; this backend switched anyway (uvicorn, aiohttp and Node ws do), so the "
          "WebSocket works. A backend that follows the rule fails behind the same proxy "
          "(python websockets answers 505, tornado closes after its 101).",
          "nginx: proxy_http_version 1.1 in the location that proxies WebSockets."),
    Check("proxy_accept_forwarded", E, Effect.FAIL, "RFC 6455 §4.2.2",
          "a proxy forwarded an Accept computed for a different key",
          "The proxy sent the backend a new Sec-WebSocket-Key but passed the backend's "
          "Sec-WebSocket-Accept back unchanged, so it does not match the client's key.",
          "Make the proxy forward Sec-WebSocket-Key unchanged, or tunnel the handshake as is."),
    Check("proxy_rekeyed", W, Effect.NOTE, "RFC 6455 §4.1",
          "a proxy replaced the Sec-WebSocket-Key",
          "The backend received a different key than the client sent: the proxy terminates "
          "the WebSocket itself, and must then compute the client's Accept itself.",
          "Nothing to fix if the proxy answers with the Accept for the client's key."),
    Check("proxy_host_rewritten", E, Effect.FAIL, "RFC 6455 §10.2",
          "a proxy changed the Host, and the backend refused the page's Origin",
          "The proxy sent the backend another Host than the client's, and the backend "
          "refused the handshake. Servers that accept only same-origin WebSockets compare "
          "Origin with Host (tornado's check_origin, gorilla/websocket's default CheckOrigin, "
          "Spring's same-origin default): behind a proxy that rewrites Host, a page served "
          "from the client's Host looks cross-origin to the backend.",
          "nginx: proxy_set_header Host $http_host (it keeps the port; $host drops it); or "
          "allow the page's origin on the backend."),
    Check("proxy_rewrote_response", W, Effect.NOTE, "RFC 9110 §7.6",
          "a proxy answered the client differently from the backend",
          "The backend's status differs from the one the client received: the proxy replaced "
          "the answer (for example a 101 from the backend turned into an error).",
          "Read the proxy's log for why it replaced the backend's answer."),
    Check("proxy_withheld_switch", E, Effect.NO_RESPONSE, "RFC 9110 §15.2",
          "the backend switched, and the proxy never passed the 101 on",
          "The backend answered the proxy's request 101 Switching Protocols, and the client "
          "got nothing: the proxy kept the backend's switch to itself and left the client "
          "waiting. Apache httpd does this to an HTTP/1.0 request: it forwards the upgrade "
          "to the backend as HTTP/1.1, and its 101 may not go to an HTTP/1.0 client (\"a "
          "server MUST NOT send a 1xx response to an HTTP/1.0 client\"), so the client waits "
          "until it gives up, while the access log says 101.",
          "Make the client speak HTTP/1.1 (curl: drop --http1.0 or -0); a WebSocket needs "
          "it (RFC 6455 §4.1)."),
    Check("proxy_passed_on", N, Effect.NOTE, "RFC 9110 §10.2.4",
          "the backend wrote this answer; the proxy passed it on under its own Server header",
          "The backend's leg carries the same answer, so the backend wrote it, not the "
          "proxy; the proxy added its own Server header (Apache httpd does when the backend "
          "sent none, as Go's net/http and Node's servers do) or replaced the backend's "
          "(nginx), so the header names the proxy, not the answer's author.",
          "Read the backend's log for this answer, not the proxy's."),
    Check("proxy_back_leg", N, Effect.NOTE, "RFC 9110 §7.6",
          "the proxy's own request to the backend (the back leg of a proxied handshake)",
          "This connection is the request a proxy made to its backend for a client's "
          "handshake captured too (the front leg, paired by Sec-WebSocket-Key, or by request "
          "line and time), or its connection for it, refused (the front leg then answered "
          "502 or 503). Its client is the proxy, not the program the forwarded User-Agent "
          "names: what the end client saw and printed is on the front leg, and what went "
          "wrong on this leg is in the proxy's error log (nginx: 'upstream timed out', "
          "'upstream prematurely closed connection'; HAProxy: its log line's termination "
          "state).",
          "Read the front leg for the client's side, the proxy's error log for this one."),
    Check("proxy_answered_itself", N, Effect.NOTE, "RFC 9110 §7.6",
          "the proxy answered without asking the backend",
          "Other handshakes through this proxy reached a backend in the same capture, but no "
          "backend request matches this one: the proxy (or a gateway rule) answered itself.",
          "Check the proxy's routing, auth and upgrade rules for this path."),
    Check("via_proxy", N, Effect.NOTE, "RFC 9110 §7.6.3",
          "the request went through a proxy",
          "Headers such as Via, Forwarded or X-Forwarded-For show a proxy on the way; "
          "proxies are the most common cause of broken upgrades (stripped hop-by-hop headers, "
          "HTTP/1.0 upstream, timeouts).",
          "If the upgrade failed, capture the proxy's other leg too (tcpdump -i any on the "
          "proxy host) to see which hop changed the handshake."),
)
