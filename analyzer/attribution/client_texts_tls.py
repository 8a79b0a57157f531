"""What clients print when a connection fails at the TLS layer (checks/tls.py): one section of
the client texts' table (`client_texts.CLIENT_LINES` takes these kinds in), kept apart for its
size. The OpenSSL-based clients (Python, curl, Node), Go's crypto/tls and Chrome's net stack,
as each words a failure; every line was read from the real client (the live TLS tests)."""

from __future__ import annotations


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
TLS_LINES: dict[str, tuple[tuple[str, str], ...]] = {
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
}
