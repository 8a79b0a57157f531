"""The catalogue of findings: every anomaly the analyzer can report, with its rule and its fix.

Entries are data. Their order is meaningful: when several findings have the effect that decides
the verdict, the one listed first here is the primary reason. Entries are therefore grouped by
phase, root causes first: capture, transport, proxy, request, the causes a rejection's own words
name, response, after the switch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from analyzer.checks import catalogue_h2 as _h2
from analyzer.checks import catalogue_life as _life


class Severity(Enum):
    ERROR = "error"  # breaks the handshake (or proves it broke)
    WARNING = "warning"  # legal or tolerated, but a known cause of failures
    INFO = "info"  # worth knowing when reading the exchange


class Effect(Enum):
    """What a finding does to the attempt's verdict; the verdict is the strongest effect present."""

    INCONCLUSIVE = "inconclusive"
    REFUSED = "refused"
    NO_RESPONSE = "no_response"
    FAIL = "failed"
    ABORT = "aborted"
    DROP = "dropped"  # worked past the watch window, then ended abnormally (analyzer/life)
    DECLINE = "declined"
    NOTE = "note"  # no effect on the verdict


# Strongest first: the verdict is the first of these that any finding has.
EFFECT_ORDER = (
    Effect.INCONCLUSIVE,
    Effect.REFUSED,
    Effect.NO_RESPONSE,
    Effect.FAIL,
    Effect.ABORT,
    Effect.DROP,
    Effect.DECLINE,
)


@dataclass(frozen=True, slots=True)
class Check:
    """One catalogue entry."""

    id: str  # stable snake_case identifier; never renamed once released
    severity: Severity
    effect: Effect
    rfc: str  # the section that states the rule, e.g. "RFC 6455 §4.2.2"
    title: str  # the reason in plain words, short enough for a table cell
    explanation: str  # what the rule says and what breaking it does
    fix: str  # the usual causes and what to change
    phase: str = ""  # capture, transport, request, response or after_switch (set by _phase)


@dataclass(frozen=True, slots=True)
class Finding:
    """One anomaly in one attempt, with the evidence."""

    check: str  # a catalogue id
    expected: str
    found: str
    frames: tuple[int, ...] = ()
    # "client" or "server" for what one side did after the switch (a hang-up, a Close, a bad
    # frame): the verdict's cause-before-symptom ranking pairs a reaction with the other
    # side's fault. Empty elsewhere.
    side: str = ""


E, W, N = Severity.ERROR, Severity.WARNING, Severity.INFO  # short names keep the table legible



def _from_data(entries: tuple[_h2.Entry, ...]) -> tuple[Check, ...]:
    """Entries kept as plain data in another module (catalogue_h2.py) as Checks."""
    return tuple(Check(i, Severity(s), Effect(e), rfc, title, explanation, fix)
                 for i, s, e, rfc, title, explanation, fix in entries)


def _phase(phase: str, *checks: Check) -> tuple[Check, ...]:
    return tuple(replace(check, phase=phase) for check in checks)


CATALOGUE: tuple[Check, ...] = _phase(
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
    Check("capture_gap_after_switch", W, Effect.NOTE, "RFC 9293 §3.4",
          "bytes after the switch are missing from the capture",
          "A hole after the 101 hides part of what the two sides did right after the switch.",
          "Capture with a larger buffer (-B) and no snaplen (-s 0)."),
) + _phase(
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
    *_from_data(_h2.TRANSPORT),
) + _phase(
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
          "handshake (curl with TLS 1.2) or refuses the negotiated ALPN protocol does this.",
          "Check the certificate's names and the ALPN protocol the server chose against what "
          "the client expects; a key log shows the alert's name."),
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
    Check("tls_handshake_incomplete", W, Effect.INCONCLUSIVE, "RFC 8446 §4",
          "the TLS handshake did not complete and the capture does not say why",
          "The connection ended (or the capture did) before the handshake finished, without "
          "an alert, a close right after a flight, or another sign of who gave up.",
          "Capture for longer, or from the start of the connection; a key log may show an "
          "encrypted alert."),
) + _phase(
    "proxy",
    # Found by pairing the two legs of a proxy captured together (analyzer/correlate.py), or
    # by the marks a proxy leaves on one leg. Listed before the request rules: when a proxy
    # broke the handshake, that is the root cause the user must fix.
    Check("proxy_stripped_upgrade", E, Effect.FAIL, "RFC 9110 §7.6.1",
          "a proxy removed Upgrade/Connection before the backend",
          "Upgrade and Connection are hop-by-hop: a proxy drops them unless configured to "
          "forward them, and the backend then sees a plain request (nginx does this by "
          "default). The client's request was fine; the backend's copy was not.",
          "nginx: proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; "
          "proxy_set_header Connection \"upgrade\"; other proxies: enable WebSocket support."),
    Check("proxy_http10_upstream", E, Effect.FAIL, "RFC 9110 §7.8",
          "a proxy spoke HTTP/1.0 to the backend",
          "The proxy forwarded the handshake as HTTP/1.0, in which a server MUST ignore "
          "Upgrade; nginx uses HTTP/1.0 to upstreams unless told otherwise.",
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
    Check("proxy_rewrote_response", W, Effect.NOTE, "RFC 9110 §7.6",
          "a proxy answered the client differently from the backend",
          "The backend's status differs from the one the client received: the proxy replaced "
          "the answer (for example a 101 from the backend turned into an error).",
          "Read the proxy's log for why it replaced the backend's answer."),
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
) + _phase(
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
          "been base64-encoded\". gorilla and coder/websocket reject other keys with 400.",
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
    *_from_data(_h2.REQUEST),
) + _phase(
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
    Check("engineio_transport_unknown", E, Effect.FAIL, "Engine.IO protocol v4 §Transports",
          "Socket.IO/Engine.IO refused the transport ('Transport unknown')",
          'Engine.IO answers 400 {"code":0,"message":"Transport unknown"} when the '
          "request's transport query parameter names a transport the server does not allow, "
          "or is missing: a client forcing transports: ['websocket'] against a server "
          "configured for polling only, or a plain WebSocket client pointed at /socket.io/.",
          "Allow the transport on the server (transports: ['polling', 'websocket']), or "
          "connect with a Socket.IO client using the server's transports. (A client that "
          "started on polling stays on polling: it works, with more latency and load.)"),
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
) + _phase(
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
          "authentication required (401/407)",
          "The server or a proxy requires credentials the handshake did not carry.",
          "Send the credentials the challenge asks for (WWW-Authenticate / Proxy-Authenticate)."),
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
    Check("response_client_error", E, Effect.FAIL, "RFC 9110 §15.5",
          "the server rejected the request (4xx)",
          "The server refused the request with a client-error status.",
          "Read the response body and the server's log."),
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
    *_from_data(_h2.RESPONSE),
) + _phase(
    "after_switch",
    Check("client_hung_up_after_switch", E, Effect.ABORT, "RFC 6455 §7.1.7",
          "the client closed the connection right after the 101, without a frame",
          "A client that rejects the server's handshake fails the connection, which may omit "
          "the Close frame: on the wire that is a FIN or RST right after the 101.",
          "Look at the client's error (often a 101 it did not accept: Accept, subprotocol, "
          "extensions) and the findings on the response."),
    Check("server_hung_up_after_switch", E, Effect.ABORT, "RFC 6455 §7.1.7",
          "the server closed the connection right after the 101, without a frame",
          "The server switched and then dropped the connection without a Close frame.",
          "Read the server's log: the handler failed right after the upgrade."),
    Check("ws_closed_with_error", E, Effect.ABORT, "RFC 6455 §7.4.1",
          "the connection was closed with an error code right after the switch",
          "A Close frame with a code other than 1000/1001 soon after the 101 means the "
          "upgrade worked but the other side refused the session (1008: policy, often "
          "authentication; 1002: protocol error; 1011: server error).",
          "Read the close reason and the closing side's log."),
    Check("ws_closed_normally", N, Effect.NOTE, "RFC 6455 §7.4.1",
          "closed normally soon after the switch",
          "A Close with 1000 (normal) or 1001 (going away) soon after the 101.",
          "Nothing to fix if the session was meant to be short."),
    Check("ws_close_code_invalid", E, Effect.NOTE, "RFC 6455 §7.4.1",
          "Close frame with a code that must not be sent",
          "1005, 1006 and 1015 are reserved for reporting and must never be sent; codes below "
          "1000 are not used.",
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
    *_from_data(_h2.AFTER_SWITCH),
) + _phase("life", *_from_data(_life.LIFE))

_BY_ID = {check.id: check for check in CATALOGUE}
ORDER = {check.id: index for index, check in enumerate(CATALOGUE)}
# Faults of the request itself (a server may reject it for them): the verdict treats them as
# notes when the server switched anyway, and as the likely reason for a silent close.
REQUEST_FAULTS = frozenset(
    check.id for check in CATALOGUE if check.phase == "request" and check.effect is Effect.FAIL
)


def lookup(check_id: str) -> Check:
    """The catalogue entry for ``check_id`` (KeyError for an unknown id)."""
    return _BY_ID[check_id]
