"""Rules about TLS: why a session broke at the TLS layer, and TLS/cleartext mix-ups.

An `AttemptKind.TLS` attempt (analyzer/tls/layer.py) carries the handshake facts in
`attempt.tls`; these rules turn them into the `tls` phase's findings. The most specific cause
found is listed; the catalogue's order ranks it (specific causes before generic ones).
"""

from __future__ import annotations

from analyzer.attribution.texts import NGINX_CLIENT_CERTIFICATE
from analyzer.checks.catalogue import Finding
from analyzer.checks.copies import hello_copies, since_last_copy
from analyzer.checks.facts import Facts, frames_of
from analyzer.exchange.first_bytes import Start, classify_first_bytes, describe_start
from analyzer.exchange.model import (
    Attempt,
    AttemptKind,
    TcpEvent,
    TlsAlert,
    TlsInfo,
    came_first,
)

PATIENCE_SECONDS = 1.0  # as in transport.py: a capture that ends sooner cannot say "no answer"
# nginx's 400 bodies with `ssl_verify_client on`, from the one table of server texts
_NGINX_CLIENT_CERTIFICATE = tuple(text.encode() for text, _ in NGINX_CLIENT_CERTIFICATE)

# A client's fatal alert that says it refused the server's certificate (RFC 8446 §6.2).
_CERTIFICATE_ALERTS = frozenset({
    "bad_certificate", "unsupported_certificate", "certificate_revoked", "certificate_expired",
    "certificate_unknown", "unknown_ca", "access_denied", "decrypt_error",
})
_BY_ALERT = {
    "unrecognized_name": "tls_unrecognized_name",
    "protocol_version": "tls_protocol_version",
    "inappropriate_fallback": "tls_protocol_version",
    "handshake_failure": "tls_handshake_failure",
    "insufficient_security": "tls_handshake_failure",
    "no_application_protocol": "tls_no_application_protocol",
    "certificate_required": "tls_client_certificate_required",
}


def check_tls(attempt: Attempt, facts: Facts) -> list[Finding]:
    tls = attempt.tls
    if tls is None:  # (first: the usual attempt is cleartext)
        return _cleartext_to_tls_port(attempt)
    if attempt.kind is AttemptKind.TLS:
        return _broken_session(attempt, tls)
    return _inside_session(attempt, tls)


def tls_refused(attempt: Attempt) -> bool:
    """Whether the TLS layer explains a request that got no HTTP response (a fatal alert from
    the server, or a server that asked for a client certificate and got none)."""
    tls = attempt.tls
    if tls is None or attempt.response is not None:
        return False
    return _server_fatal(tls) is not None or (
        tls.certificate_request and tls.client_certificate_empty)


def _server_fatal(tls: TlsInfo) -> TlsAlert | None:
    return next((a for a in tls.alerts if a.level == "fatal" and a.side == "server"), None)


def _inside_session(attempt: Attempt, tls: TlsInfo) -> list[Finding]:
    """An HTTP exchange inside a decrypted session that TLS ended or refused."""
    evidence = frames_of(attempt.request)
    response = attempt.response
    if response is not None:
        if any(text in response.body_prefix for text in _NGINX_CLIENT_CERTIFICATE):
            return [Finding("tls_client_certificate_required", "a client certificate",
                            f"{attempt.response_head.status if attempt.response_head else ''} "
                            "from nginx: no (valid) client certificate",
                            evidence + frames_of(response))]
        return []
    alert = _server_fatal(tls)
    if alert is not None:
        return [_alert_finding(tls, alert, evidence)]
    end = _end_of("server", attempt)
    if tls.certificate_request and tls.client_certificate_empty:
        if end is not None:
            return [_server_ended(attempt, tls, end)]
        return [Finding("tls_client_certificate_required", "a client certificate the server "
                        "accepts", "client sent no certificate; the request got no answer",
                        evidence)]
    if tls.hole_side:  # the handshake bytes the capture lost may hold why (a certificate)
        return [_handshake_hole(attempt, tls, (tls.client_hello_frame,) if tls.client_hello_frame
                                else ())]
    return []


def _cleartext_to_tls_port(attempt: Attempt) -> list[Finding]:
    """A cleartext request answered with TLS bytes (an alert). nginx's own 400 page for the
    same mistake is found by its words (checks/words.py), under the same id."""
    answer = attempt.other_answer
    if answer is not None and classify_first_bytes(answer.prefix) is Start.TLS:
        return [Finding("tls_plain_http_to_tls_port", "an HTTP response",
                        f"{answer.what} from the server",
                        frames_of(attempt.request) + (answer.frame,))]
    return []


def _broken_session(attempt: Attempt, tls: TlsInfo) -> list[Finding]:
    hello = (tls.client_hello_frame,) if tls.client_hello_frame else ()
    if tls.hole_side and not any(a.level == "fatal" for a in tls.alerts):
        return [_handshake_hole(attempt, tls, hello)]
    if tls.key == "mismatch":
        return [Finding("tls_key_mismatch", "records that open with the logged secrets",
                        f"the record in frame {tls.key_frame} fails authentication",
                        (tls.key_frame,) if tls.key_frame else hello)]
    if tls.server_answer:
        kind = classify_first_bytes(tls.server_answer)
        found = describe_start(kind, tls.server_answer)
        if attempt.response_head is not None:
            found = (f"HTTP {attempt.response_head.status} "
                     f"{attempt.response_head.reason}").rstrip()  # (Hypercorn's has none)
        return [Finding("tls_client_hello_to_cleartext_port", "a ServerHello", found,
                        hello + frames_of(attempt.response))]
    findings = _certificate_findings(attempt, tls)
    fatal = next((a for a in tls.alerts if a.level == "fatal" and not (
        a.side == "server" and _answers_client_end(attempt, tls, a))), None)
    if fatal is not None:
        return [*findings, _alert_finding(tls, fatal, hello)] if fatal.side == "client" and \
            fatal.description in _CERTIFICATE_ALERTS else [_alert_finding(tls, fatal, hello)]
    if not tls.server_hello_frame:
        return [_no_server_hello(attempt, hello)]
    return _after_server_hello(attempt, tls, findings)


def _answers_client_end(attempt: Attempt, tls: TlsInfo, alert: TlsAlert) -> bool:
    """Whether the server's alert came after a client that had completed the handshake, or
    had the server's flight, left (its FIN or RST): the server's word on an abandoned
    connection, not why it ended. A client that rejects the certificate may close without an
    alert: aiohttp's (asyncio's ssl) does, and an OpenSSL 3 server answers the bare FIN with
    decode_error, which was "the TLS handshake ended with a fatal alert"."""
    end = attempt.tcp.client_fin or attempt.tcp.client_rst
    if end is None or alert.frame <= end.frame:
        return False
    return tls.client_finished or 0 < tls.server_hello_frame < end.frame


def _handshake_hole(attempt: Attempt, tls: TlsInfo, hello: tuple[int, ...]) -> Finding:
    lost = " and ".join(name for name, frame in (("the ClientHello", tls.client_hello_frame),
                                                 ("the ServerHello", tls.server_hello_frame))
                        if not frame) or "handshake records"
    key = {"used": "; the key log has this session's key",
           "present": "; the key log has this session's key", "mismatch": "; the key log has "
           "this session's key, but the records after the hole do not open with it"}
    # (a hole written off at the connection's end, shown only by a FIN or an ACK, has no
    # frame of its own)
    where = f"at frame {tls.hole_frame}" if tls.hole_frame else "at the connection's end"
    if any(gap.side == tls.hole_side and gap.cause == "snaplen" for gap in attempt.tcp.gaps):
        # (its records are in the capture, cut short: `tcpdump -s 200` and a ClientHello)
        lost = lost.replace(" missing", "")
        said = (f"{lost} cut: the capture's snapshot length cut what the {tls.hole_side} "
                f"sent ({where}); capture with -s 0")
    else:
        said = (f"{lost} missing: the capture lost bytes the {tls.hole_side} sent (found "
                f"missing {where})")
    return Finding("capture_gap_tls_handshake", "the whole TLS handshake",
                   f"{said}{key.get(tls.key, '')}",
                   hello + ((tls.hole_frame,) if tls.hole_frame else ()))


def _alert_finding(tls: TlsInfo, alert: TlsAlert, hello: tuple[int, ...]) -> Finding:
    found = f"{alert.side} sent fatal alert {alert.description}"
    if alert.description == "no_application_protocol":
        found += f" (client offered {', '.join(tls.alpn_offered) or 'nothing'})"
    check = _BY_ALERT.get(alert.description, "tls_fatal_alert")
    if alert.side == "client" and alert.description in _CERTIFICATE_ALERTS:
        check = "tls_certificate_rejected"
    elif alert.side == "server" and tls.certificate_request and alert.description in (
            "handshake_failure", "bad_certificate", "certificate_required", "unknown_ca",
            "certificate_unknown", "access_denied"):
        check = "tls_client_certificate_required"
        if tls.client_certificate_empty:
            found += " after the client sent no certificate"
    expected = {
        "tls_no_application_protocol": f"a protocol in common with {list(tls.alpn_offered)}",
        "tls_protocol_version": f"a version in common with {list(tls.versions_offered)}",
        "tls_unrecognized_name": f"a server configured for {tls.sni or '(no SNI sent)'}",
    }.get(check, "a completed handshake")
    return Finding(check, expected, found, hello + (alert.frame,))


def _certificate_findings(attempt: Attempt, tls: TlsInfo) -> list[Finding]:
    """What is wrong with the leaf certificate, when it was readable (TLS 1.2, or decrypted)."""
    if not tls.certificates:
        return []
    from analyzer.tls.handshake import name_covers  # here: a capture without TLS never needs it

    leaf = tls.certificates[0]
    findings = []
    host = tls.sni or attempt.server.ip
    if not name_covers(leaf.san_names, host):
        findings.append(Finding("tls_certificate_name_mismatch", f"a certificate for {host}",
                                f"certificate for {', '.join(leaf.san_names) or leaf.subject}",
                                (tls.server_flight_frame or tls.server_hello_frame,)))
    moment = tls_time(attempt)
    if moment and not leaf.not_before <= moment <= leaf.not_after:
        when = (f"expired on {_date(leaf.not_after)}" if moment > leaf.not_after
                else f"valid only from {_date(leaf.not_before)}")
        findings.append(Finding("tls_certificate_expired",
                                f"valid {_date(leaf.not_before)} to {_date(leaf.not_after)}",
                                f"{when}; the capture is from {_date(moment)}",
                                (tls.server_flight_frame or tls.server_hello_frame,)))
    return findings


def tls_time(attempt: Attempt) -> float:
    syn = attempt.tcp.syn
    return syn.time if syn is not None else attempt.tcp.end_time


def _date(seconds: float) -> str:
    import datetime

    try:
        return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%d %H:%M")
    except (OverflowError, OSError, ValueError):
        return f"@{seconds:.0f}"


def _end_of(side: str, attempt: Attempt) -> TcpEvent | None:
    tcp = attempt.tcp
    events = [tcp.client_fin, tcp.client_rst] if side == "client" else \
        [tcp.server_fin, tcp.server_rst]
    present = [event for event in events if event is not None]
    return min(present, key=lambda event: event.frame) if present else None


def _no_server_hello(attempt: Attempt, hello: tuple[int, ...]) -> Finding:
    tcp = attempt.tcp
    start = attempt.tcp.syn.time if attempt.tcp.syn else 0.0
    server_end, client_end = _end_of("server", attempt), _end_of("client", attempt)
    copies = hello_copies(attempt)  # (the server's wait began at the copy that reached it)
    if server_end is not None and (client_end is None or not came_first(client_end, server_end)):
        how = "RST" if server_end is tcp.server_rst else "FIN"
        return Finding("tls_no_server_hello", "a ServerHello",
                       f"server {how} after the ClientHello"
                       + since_last_copy(copies, server_end.time), hello + (server_end.frame,))
    if client_end is not None:
        return Finding("tls_client_gave_up", "a ServerHello",
                       f"client gave up after {client_end.time - start:.1f} s"
                       + since_last_copy(copies, client_end.time), hello + (client_end.frame,))
    waited = max(0.0, tcp.end_time - start)
    if tcp.end_reason == "end of capture" and waited < PATIENCE_SECONDS:
        return Finding("capture_ended_too_soon", "a ServerHello",
                       f"capture ended {waited * 1000:.0f} ms after the ClientHello", hello)
    return Finding("tls_no_server_hello", "a ServerHello",
                   f"nothing in {waited:.1f} s until the {tcp.end_reason}"
                   + since_last_copy(copies, tcp.end_time), hello)


def _after_server_hello(attempt: Attempt, tls: TlsInfo, findings: list[Finding]) -> list[Finding]:
    server_end, client_end = _end_of("server", attempt), _end_of("client", attempt)
    client_first = client_end is not None and (
        server_end is None or came_first(client_end, server_end))
    flight = tls.server_flight_frame or tls.server_hello_frame
    client_alert = next((a for a in tls.alerts if a.side == "client"), None)
    # An alert of the client's before the server's end says who ended the session, however
    # close the two FINs (nginx's FIN can beat the client's by microseconds; curl's
    # close_notify after a name it rejects comes before the server's FIN and its own)
    alerted_first = client_alert is not None and server_end is not None and (
        client_alert.frame < server_end.frame)
    if not tls.client_finished:
        if client_first and client_end is not None and not client_end.lost and (
                client_end.frame < tls.server_hello_frame):
            # The client had gone when the ServerHello came: it rejected nothing, it waited
            # (a slow server, a short client timeout, a preconnect no longer needed)
            start = attempt.tcp.syn.time if attempt.tcp.syn else client_end.time
            return [Finding("tls_client_gave_up", "a ServerHello",
                            f"client gave up after {client_end.time - start:.1f} s; the "
                            f"server's ServerHello (frame {tls.server_hello_frame}) came after",
                            ((tls.client_hello_frame,) if tls.client_hello_frame else ())
                            + (client_end.frame, tls.server_hello_frame))]
        if (client_first or alerted_first) and client_end is not None:
            how = "RST" if client_end is attempt.tcp.client_rst else \
                "FIN (not captured)" if client_end.lost else "FIN"
            said = " after an encrypted alert" if client_alert is not None else ""
            return [*findings, Finding(
                "tls_certificate_rejected", "the client's Finished",
                f"client {how}{said} right after the server's flight (frame {flight}), without "
                "finishing the handshake", (flight, client_end.frame))]
        if server_end is not None:
            return [_server_ended(attempt, tls, server_end)]
        return [Finding("tls_handshake_incomplete", "a completed handshake",
                        f"the {attempt.tcp.end_reason or 'capture'} came first", (flight,))]
    if server_end is not None and not client_first and not alerted_first:
        return [_server_ended(attempt, tls, server_end)]
    if client_end is not None:
        said = " with an encrypted alert" if client_alert is not None else ""
        if findings:  # the certificate is wrong: a client that checks it late (curl) hung up
            return [*findings, Finding(
                "tls_certificate_rejected", "a request",
                f"client closed{said} right after the handshake, before any request (as "
                "clients that check the name after the handshake do, e.g. curl with TLS 1.2)",
                (flight, client_end.frame))]
        return [*findings, Finding("tls_client_closed_after_handshake", "a request",
                                   f"client closed{said} right after the handshake",
                                   (flight, client_end.frame))]
    return [Finding("tls_handshake_incomplete", "application data",
                    f"none before the {attempt.tcp.end_reason or 'end'}", (flight,))]


def _server_ended(attempt: Attempt, tls: TlsInfo, end: TcpEvent) -> Finding:
    how = "RST" if end is attempt.tcp.server_rst else "FIN"
    if tls.certificate_request:
        what = "no certificate" if tls.client_certificate_empty else "its certificate"
        return Finding("tls_client_certificate_required", "a client certificate the server accepts",
                       f"client sent {what}; server {how}", (tls.server_hello_frame, end.frame))
    return Finding("tls_server_closed_during_handshake", "a completed handshake",
                   f"server {how} before the handshake finished",
                   (tls.server_hello_frame, end.frame))
