"""Rules about the connection itself: refused, unanswered, closed without a response, gaps."""

from __future__ import annotations

from analyzer.checks.catalogue import Finding
from analyzer.checks.copies import (
    hello_copies,
    request_copies,
    resent_finding,
    response_copies,
    since_last_copy,
)
from analyzer.checks.facts import Facts, frames_of
from analyzer.checks.h2 import decided_by_h2
from analyzer.checks.tls import tls_refused
from analyzer.exchange.model import (
    Attempt,
    AttemptKind,
    Gap,
    Message,
    TlsAlert,
    came_first,
)
from analyzer.exchange.tracker import RESPONSE_TIMEOUT

# An answer is not yet overdue this soon after a SYN or a request (the first SYN retransmission
# comes after 1 s, RFC 6298 §2.1): a capture that ends sooner cannot say "no response".
PATIENCE_SECONDS = 1.0
_CAPTURE_END = "end of capture"
# (an Enum member read off its class costs ≈ 0.1 µs in Python 3.11, ≈ 1 k instructions: read
# once here, for the test every attempt takes)
_TLS_KIND, _TCP_KIND = AttemptKind.TLS, AttemptKind.TCP


def check_transport(attempt: Attempt, facts: Facts) -> list[Finding]:
    tcp = attempt.tcp
    if attempt.kind is _TLS_KIND:  # a session that broke at the TLS layer: checks/tls.py says why
        return _hello_resent(attempt) if tcp.resent else []
    if attempt.kind is _TCP_KIND:
        syn_frames = (tcp.syn.frame,) if tcp.syn else ()
        if tcp.server_rst is not None:
            return [Finding("tcp_refused", "SYN-ACK", "RST",
                            syn_frames + (tcp.server_rst.frame,))]
        waited = tcp.end_time - tcp.syn.time if tcp.syn else 0.0
        if tcp.end_reason == _CAPTURE_END and waited < PATIENCE_SECONDS and tcp.syn_count < 2:
            return [Finding("capture_ended_too_soon", "an answer to the SYN",
                            f"capture ended {waited * 1000:.0f} ms after the SYN", syn_frames)]
        return [Finding("tcp_syn_unanswered", "SYN-ACK",
                        f"no answer to {tcp.syn_count} SYN(s) in {waited:.1f} s", syn_frames)]
    findings: list[Finding] = []
    for conflict in tcp.conflicts[:1]:
        findings.append(Finding(
            "tcp_overlap_conflict", "re-sent bytes equal to the first copy",
            f"{conflict.length} byte(s) at {conflict.side} offset {conflict.offset} differ "
            f"({len(tcp.conflicts)} conflicting overlap(s))",
            tuple(c.frame for c in tcp.conflicts[:3])))
    request_gap: Gap | None = None
    response_gap: Gap | None = None
    if tcp.gaps:  # (most connections have none: no generators to make then)
        request_gap = next((g for g in tcp.gaps if g.side == "client"), None)
        response_gap = next((g for g in tcp.gaps if g.side == "server"), None)
    request = attempt.request
    request_cut = (_cutting(tcp.gaps, "client", request)
                   if request is not None and not request.head_complete and attempt.request_gap
                   else None)
    if request_cut is not None and request is not None:
        findings.append(_cut_head_finding("capture_gap_request", "request", request_cut,
                                          request))
    elif attempt.request_gap and request_gap is not None:
        findings.append(_decryption_stop(attempt, request_gap) or Finding(
            "capture_gap_request", "every byte of the request",
            f"{request_gap.length} bytes missing at client offset {request_gap.offset}",
            _seen(request_gap.frame)))
    unasked = attempt.request is None and attempt.response is not None and not attempt.request_gap
    if unasked and (request_gap is not None or tcp.syn is not None):
        # The connection's start was captured, so the request was lost by the capture, not
        # sent before it started.
        where = (f"{request_gap.length} bytes missing at client offset {request_gap.offset}"
                 if request_gap is not None else "no request bytes before the response")
        findings.append(Finding("capture_gap_request", "every byte of the request", where,
                                _seen(request_gap.frame) if request_gap is not None
                                else frames_of(attempt.response)))
    elif unasked:
        findings.append(Finding("request_not_captured", "the request before its response",
                                "a response with no captured request",
                                frames_of(attempt.response)))
    response = attempt.response
    response_cut = (_cutting(tcp.gaps, "server", response)
                    if response is not None and not response.head_complete
                    and attempt.response_gap else None)
    if response_cut is not None and response is not None:
        findings.append(_cut_head_finding("capture_gap_response", "response", response_cut,
                                          response))
    elif attempt.response is not None and attempt.response_gap and response_gap is not None:
        # interpretation resumed at this response after a hole: which request it answers
        # (and what the hole held) is a guess
        findings.append(_decryption_stop(attempt, response_gap) or Finding(
            "capture_gap_response", "every byte of the server's side",
            f"{response_gap.length} bytes missing at server offset {response_gap.offset}, "
            "before this response", _seen(response_gap.frame)))
    if tcp.resent:  # (most connections re-send nothing)
        if attempt.tls is not None and attempt.sequence == 0:
            findings.extend(_hello_resent(attempt))  # (said once, with the session's first)
        if request is not None and (copies := request_copies(attempt)):
            findings.append(resent_finding("request_resent", "request", "client",
                                           request.first_frame, request.time, copies))
        if response is not None and (copies := response_copies(attempt)):
            findings.append(resent_finding("response_resent", "response", "server",
                                           response.first_frame, response.time, copies))
    # An HTTP/2 RST_STREAM or GOAWAY, an answer in another protocol, or a TLS session that
    # broke is a response of sorts: the checks that read it say what happened instead.
    if request is not None and not request.head_complete and request_cut is None:
        findings.append(_unfinished_head(attempt, request))
    elif (attempt.response is None and attempt.other_answer is None and not tls_refused(attempt)
            and not decided_by_h2(attempt)):
        findings.extend(_no_response(attempt, response_gap))
    after = attempt.after
    if after is not None and not after.complete:
        gap_frames = tuple(g.frame for g in tcp.gaps if g.time >= after.switch_time and g.frame)
        findings.append(Finding("capture_gap_after_switch", "every byte after the 101",
                                "a hole in the captured bytes", gap_frames[:3]))
    return findings


def _seen(frame: int) -> tuple[int, ...]:
    """A hole's frame as evidence: none when the hole was only found at the connection's end
    (frame 0: no frame shows it; frames count from 1)."""
    return (frame,) if frame else ()


def _hello_resent(attempt: Attempt) -> list[Finding]:
    """`tls_client_hello_resent` when the client sent its ClientHello again unacknowledged."""
    tls = attempt.tls
    copies = hello_copies(attempt)
    if tls is None or not copies:
        return []
    return [resent_finding("tls_client_hello_resent", "ClientHello", "client",
                           tls.client_hello_frame, tls.client_hello_time, copies)]


def _since_copies(attempt: Attempt, when: float) -> str:
    """", N ms after its last copy (frame F)" when the client sent the request again before
    ``when``: the first copy's time overstates the server's wait."""
    return since_last_copy(request_copies(attempt), when)


def _cutting(gaps: tuple[Gap, ...], side: str, head: Message) -> Gap | None:
    """The hole that cut a head read as far as it went (`Message.head_complete` False with
    a hole flagged): the side's first one declared at or after the head's last frame (a
    head the connection's end cut has none, a hole ends the head it is in)."""
    return next((g for g in gaps if g.side == side and g.frame >= head.last_frame), None)


def _cut_head_finding(check: str, what: str, gap: Gap, head: Message) -> Finding:
    """capture_gap_request / capture_gap_response for a head a hole cut: what was read of
    it, and, when the record said so (`Gap.cause` "snaplen"), that the capture's snapshot
    length cut it."""
    read = f"{len(head.head.raw)} bytes of its head read"
    if gap.cause == "snaplen":
        found = (f"the {what} head was cut by the capture's snapshot length ({read}, "
                 f"{gap.length} bytes cut at {gap.side} offset {gap.offset}); capture with -s 0")
    else:
        found = (f"the {what} head was cut by a hole in the capture ({read}, {gap.length} "
                 f"bytes missing at {gap.side} offset {gap.offset})")
    return Finding(check, f"every byte of the {what} head", found,
                   frames_of(head) + tuple(f for f in _seen(gap.frame) if f not in frames_of(head)))


def _decryption_stop(attempt: Attempt, gap: Gap,
                     evidence: tuple[int, ...] = ()) -> Finding | None:
    """The hole is the TLS stage's own (told where decryption stopped after records counted
    unopened, tls/session.py `_protected`), not bytes the capture lost."""
    tls = attempt.tls
    if gap.cause != "decryption" or tls is None:
        return None
    return Finding("tls_decryption_stopped", f"every record of the {gap.side} to open",
                   f"the record in frame {tls.hole_stop_frame} does not open after records "
                   "counted unopened", evidence + (tls.hole_stop_frame,))


def _unfinished_head(attempt: Attempt, request: Message) -> Finding:
    """The connection ended inside the request head: who ended it, or the capture did."""
    tcp = attempt.tcp
    size = f"{len(request.head.raw)} bytes of head"
    ends = [(e.time, who, e) for who, e in (
        ("client FIN", tcp.client_fin), ("client RST", tcp.client_rst),
        ("server FIN", tcp.server_fin), ("server RST", tcp.server_rst)) if e is not None]
    if not ends:
        waited = max(0.0, tcp.end_time - request.time)
        return Finding("capture_ended_too_soon", "the end of the request head",
                       f"capture ended {waited * 1000:.0f} ms into the head ({size})",
                       frames_of(request))
    when, who, end = min(ends, key=lambda e: e[0])
    return Finding("request_head_incomplete", "the empty line that ends the head",
                   f"{who} {1000 * max(0.0, when - request.time):.0f} ms after the head began, "
                   f"{size} and no end", frames_of(request) + (end.frame,))


def _server_alert_after(attempt: Attempt, start: float) -> TlsAlert | None:
    """The server's first TLS alert (its close_notify, mostly) at or after ``start``."""
    tls = attempt.tls
    if tls is None:
        return None
    return next((alert for alert in tls.alerts
                 if alert.side == "server" and alert.time >= start), None)


def _no_response(attempt: Attempt, response_gap: Gap | None) -> list[Finding]:
    tcp = attempt.tcp
    request = attempt.request
    evidence = frames_of(request)
    if attempt.response_gap and response_gap is not None:
        return [_decryption_stop(attempt, response_gap, evidence) or Finding(
            "capture_gap_response", "every byte of the response",
            f"{response_gap.length} bytes missing at server offset {response_gap.offset}",
            evidence + _seen(response_gap.frame))]
    start = request.time if request is not None else 0.0
    if tcp.server_rst is not None and tcp.server_rst.time >= start:
        return [Finding("no_response_server_reset", "a response",
                        f"server RST {1000 * (tcp.server_rst.time - start):.0f} ms after the "
                        "request" + _since_copies(attempt, tcp.server_rst.time),
                        evidence + (tcp.server_rst.frame,))]
    client_end = tcp.client_fin or tcp.client_rst
    alert = _server_alert_after(attempt, start)
    if alert is not None and (client_end is None or alert.time <= client_end.time):
        # inside TLS the server's close_notify begins its close, before any FIN (Hypercorn
        # crashing under Chromium's streams: the browser's FIN came 1 ms after it)
        said = alert.description or "encrypted alert"
        return [Finding("no_response_server_closed", "a response",
                        f"server TLS {said} {1000 * (alert.time - start):.0f} ms after the "
                        "request" + _since_copies(attempt, alert.time), evidence + (alert.frame,))]
    if tcp.server_fin is not None and tcp.server_fin.time >= start and (
        # (a lost client FIN has the time of the server's FIN that acknowledged it)
        tcp.client_fin is None or tcp.server_fin.time <= tcp.client_fin.time
        and not came_first(tcp.client_fin, tcp.server_fin)
    ):
        return [Finding("no_response_server_closed", "a response",
                        f"server FIN {1000 * (tcp.server_fin.time - start):.0f} ms after the "
                        "request" + _since_copies(attempt, tcp.server_fin.time),
                        evidence + (tcp.server_fin.frame,))]
    if client_end is not None and client_end.time >= start:
        return [Finding("no_response_client_gave_up", "a response",
                        f"client closed after waiting {client_end.time - start:.1f} s"
                        + _since_copies(attempt, client_end.time),
                        evidence + (client_end.frame,))]
    waited = max(0.0, tcp.end_time - start)
    if tcp.end_reason == _CAPTURE_END and waited < PATIENCE_SECONDS:
        return [Finding("capture_ended_too_soon", "a response",
                        f"capture ended {waited * 1000:.0f} ms after the request", evidence)]
    if tcp.end_reason == RESPONSE_TIMEOUT:
        return [Finding("no_response_capture_ended", "a response",
                        f"nothing in {waited:.1f} s (response timeout)", evidence)]
    return [Finding("no_response_capture_ended", "a response",
                    f"nothing in {max(0.0, tcp.end_time - start):.1f} s until the {tcp.end_reason}",
                    evidence)]
