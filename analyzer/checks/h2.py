"""Rules for attempts carried on an HTTP/2 stream (RFC 9113; WebSockets: RFC 8441).

The HTTP/1 rules about Upgrade, Connection and the key/accept pair do not apply to an "h2"
attempt (``check_request``, ``check_response`` and ``check_after_switch`` hand such attempts
here); the status, subprotocol, extension and WebSocket-frame rules are shared with them.
"""

from __future__ import annotations

from dataclasses import replace

from analyzer.checks.after_switch import (
    close_notify,
    ended_without_close,
    websocket_frame_findings,
)
from analyzer.checks.catalogue import Finding
from analyzer.checks.facts import Facts, frames_of
from analyzer.checks.response import extension_findings, status_finding, subprotocol_findings
from analyzer.exchange.model import AfterSwitch, Attempt, H2Stream, TcpEvent
from analyzer.exchange.switch import DEFAULT_WINDOW

# RFC 9113 §8.2.2: "Connection, Upgrade, Keep-Alive, Proxy-Connection, Transfer-Encoding"
# ("TE" is allowed with the value "trailers" only).
_CONNECTION_SPECIFIC = ("connection", "upgrade", "keep-alive", "proxy-connection",
                        "transfer-encoding")
_NOT_PROCESSED = "REFUSED_STREAM"
_PROBLEM_CHECKS = {
    "hpack_error": "h2_hpack_error",
    "header_list_too_large": "h2_header_list_too_large",
    "hole": "",  # the capture's hole: the transport rules report it
}


def is_h2(attempt: Attempt) -> bool:
    return attempt.transport == "h2"


def h2_transport(attempt: Attempt, facts: Facts) -> list[Finding]:
    """Stream and connection ends before a response, and the connection's framing problems."""
    h2 = attempt.h2
    if h2 is None:
        return []
    findings: list[Finding] = []
    answer = attempt.other_answer
    if answer is not None:  # (its server read no HTTP/2: exchange/h2.py `_server_start`)
        findings.append(Finding("h2_answer_not_http2", "a SETTINGS frame, the server's "
                                "connection preface", answer.what,
                                tuple(sorted({*frames_of(attempt.request), answer.frame}))))
    for problem in h2.problems:
        check = _PROBLEM_CHECKS.get(problem.kind, "h2_frame_error")
        if check:
            findings.append(Finding(check, "valid HTTP/2",
                                    f"{problem.side}: {problem.kind.replace('_', ' ')}: "
                                    f"{problem.detail}", (problem.frame,)))
    if attempt.response is None:
        end = _unanswered_end(attempt, h2)
        if end is not None:
            findings.append(end)
    return findings


def decided_by_h2(attempt: Attempt) -> bool:
    """True when a RST_STREAM or GOAWAY explains the missing response (the TCP-level "no
    response" rules then say nothing)."""
    h2 = attempt.h2
    return h2 is not None and attempt.response is None and _unanswered_end(attempt, h2) is not None


def _unanswered_end(attempt: Attempt, h2: H2Stream) -> Finding | None:
    stream = attempt.stream_id or 0
    request = frames_of(attempt.request)
    if h2.reset is not None:
        if h2.reset.side == "client" and h2.reset.code == "CANCEL" and attempt.request:
            # the client gave up waiting (a page's close() while connecting, a timeout): the
            # wait that ran out, as over HTTP/1.1 (transport.py), not a refusal
            waited = h2.reset.time - attempt.request.time
            return Finding("no_response_client_gave_up", "a response",
                           f"client reset the stream (RST_STREAM CANCEL) after waiting "
                           f"{waited:.1f} s", request + (h2.reset.frame,))
        found = f"{h2.reset.side} sent RST_STREAM {h2.reset.code}"
        check = "h2_stream_refused" if h2.reset.code == _NOT_PROCESSED else "h2_stream_reset"
        return Finding(check, "a response", found, request + (h2.reset.frame,))
    goaway = h2.goaway
    if goaway is not None and goaway.side == "server":  # a client's GOAWAY is about pushes
        found = (f"{goaway.side} sent GOAWAY {goaway.code}, last stream {goaway.last_stream_id}"
                 f" (this is stream {stream})")
        if goaway.last_stream_id < stream:
            return Finding("h2_stream_refused", "a response", found, request + (goaway.frame,))
        return Finding("h2_goaway", "a response", found, request + (goaway.frame,))
    return None


def h2_request(attempt: Attempt, facts: Facts) -> list[Finding]:
    head = attempt.request_head
    h2 = attempt.h2
    if head is None:
        return []
    ev = frames_of(attempt.request)
    headers = head.headers
    findings: list[Finding] = []
    protocol = headers.get(":protocol")
    if protocol is not None and h2 is not None and not h2.connect_protocol:
        seen = ("the server's SETTINGS did not enable it" if h2.server_settings is not None
                else "no SETTINGS from the server before the request")
        findings.append(Finding("h2_connect_protocol_not_enabled",
                                "SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 from the server", seen, ev))
    if protocol is None and head.method == "CONNECT":
        extra = [name for name in (":scheme", ":path") if headers.has(name)]
        if extra:
            findings.append(Finding("h2_connect_malformed", ":protocol websocket, or no "
                                    ":scheme and :path", "CONNECT with " + " and ".join(extra)
                                    + ", without :protocol", ev))
    if protocol is not None:
        missing = [name for name in (":scheme", ":path", ":authority") if not headers.get(name)]
        if missing:
            findings.append(Finding("h2_pseudo_header_missing", ":scheme, :path, :authority",
                                    "no " + ", ".join(missing), ev))
    specific = _connection_specific(attempt, request=True)
    if specific:
        findings.append(Finding("h2_connection_header_in_request", "none", specific, ev))
    if facts.websocket and protocol is None:
        # a plain request that a WebSocket endpoint rejected (the answer said so): over
        # HTTP/2 the missing offer is extended CONNECT, as Upgrade is over HTTP/1.1
        # (HTTP/2 has no Upgrade: a client that negotiated h2 by ALPN and sent a plain GET,
        # as curl --http2 with WebSocket headers does, must use HTTP/1.1 or RFC 8441)
        findings.append(Finding("request_without_upgrade", "CONNECT with :protocol websocket",
                                f"plain {head.method} {head.target} over HTTP/2, which has no "
                                "Upgrade: open it with an extended CONNECT (RFC 8441), or over "
                                "HTTP/1.1 (ALPN http/1.1, curl --http1.1)", ev))
    elif facts.websocket:
        if headers.has("sec-websocket-key"):
            findings.append(Finding("h2_websocket_key_present", "no Sec-WebSocket-Key",
                                    "Sec-WebSocket-Key", ev))
        # RFC 8441 §5: Sec-WebSocket-Version is used as in RFC 6455 §4.1
        versions = headers.all("sec-websocket-version")
        if not versions:
            findings.append(Finding("ws_version_missing", "Sec-WebSocket-Version: 13",
                                    "no version header", ev))
        elif [v.strip() for v in versions] != ["13"]:
            findings.append(Finding("ws_version_not_13", "13", ", ".join(versions), ev))
    return findings


def h2_response(attempt: Attempt, facts: Facts) -> list[Finding]:
    head = attempt.response_head
    request = attempt.request_head
    if head is None:
        return []
    ev = frames_of(attempt.response)
    findings: list[Finding] = []
    specific = _connection_specific(attempt, request=False)
    if specific:
        findings.append(Finding("h2_connection_header_in_response", "none", specific, ev))
    if facts.websocket and head.headers.has("sec-websocket-accept"):
        findings.append(Finding("h2_websocket_key_present", "no Sec-WebSocket-Accept",
                                "Sec-WebSocket-Accept", ev))
    connect = request is not None and request.method.upper() == "CONNECT"
    if connect and head.status == 101:
        findings.append(Finding("h2_status_101", "200", "101", ev))
    elif not (connect and 200 <= head.status < 300):
        if head.status:  # 0: the header block was not decoded (its problem is reported)
            status = status_finding(head, facts, ev)  # HTTP/2 has no reason phrase: say so
            findings.append(replace(status, expected="200", found=f"HTTP/2 {status.found}"))
    elif facts.websocket and request is not None:
        findings.extend(subprotocol_findings(request, head, ev))
        findings.extend(extension_findings(request, head, ev))
    return findings


def h2_after_switch(attempt: Attempt, facts: Facts) -> list[Finding]:
    after, h2 = attempt.after, attempt.h2
    if after is None or h2 is None:
        return []
    findings: list[Finding] = []
    if facts.websocket:
        findings.extend(websocket_frame_findings(attempt, after, DEFAULT_WINDOW.seconds, "200"))
    if any(f.check.startswith("ws_closed") for f in findings):
        return findings
    tcp = attempt.tcp
    ends = []
    for check, first, end, side, fin, rst in (
        ("h2_client_ended_after_switch", after.client_first, h2.client_end, "client",
         tcp.client_fin, tcp.client_rst),
        ("h2_server_ended_after_switch", after.server_first, h2.server_end, "server",
         tcp.server_fin, tcp.server_rst),
    ):
        reset = h2.reset if h2.reset is not None and h2.reset.side == side else None
        event = TcpEvent(reset.frame, reset.time) if reset is not None else end
        if event is not None:
            how = f"RST_STREAM {reset.code}" if reset is not None else "END_STREAM"
            ends.append((event.time, check, first, event, how, side))
        # the connection's own end ends every stream on it (a GOAWAY, then the TCP close;
        # inside TLS a side's close_notify first: Hypercorn crashing under Chromium)
        for tcp_end, named in ((fin, "FIN"), (rst, "RST"),
                               (close_notify(attempt, side, after), "close_notify")):
            if tcp_end is not None:
                ends.append((tcp_end.time, check, first, tcp_end,
                             f"{named} of the connection", side))
        # ... and the GOAWAY that began that end is its sender's (a client's GOAWAY, then
        # the server's close_notify answering it: the client closed)
        goaway = h2.goaway
        if goaway is not None and goaway.side == side and _connection_ended_after(
                attempt, after, goaway.time):
            ends.append((goaway.time, check, first, TcpEvent(goaway.frame, goaway.time),
                         f"GOAWAY {goaway.code} of the connection", side))
    if ends:
        when, check, first, event, how, side = min(ends, key=lambda e: e[0])
        in_window = 0 <= when - after.switch_time <= DEFAULT_WINDOW.seconds
        if first is None and in_window:
            findings.append(Finding(check, "WebSocket frames" if facts.websocket else "data",
                                    f"{how} {(when - after.switch_time) * 1000:.0f} ms after "
                                    "the 200", frames_of(attempt.response) + (event.frame,)))
        elif facts.websocket and in_window:
            # Frames went by, then the stream (or its connection) ended within the first
            # moments and no Close came before it (a Close returned above): an abnormal
            # closure, as over HTTP/1 (`after_switch._ended_without_close`)
            findings.append(ended_without_close(
                after, side, how, when, frames_of(attempt.response) + (event.frame,), "200"))
    return findings


def _connection_ended_after(attempt: Attempt, after: AfterSwitch, time: float) -> bool:
    """Whether the connection ended (a FIN, a RST or a close_notify of either side) after
    ``time``: a GOAWAY followed by that end began it."""
    tcp = attempt.tcp
    ends = (tcp.client_fin, tcp.server_fin, tcp.client_rst, tcp.server_rst,
            close_notify(attempt, "client", after), close_notify(attempt, "server", after))
    return any(end is not None and end.time >= time for end in ends)


def _connection_specific(attempt: Attempt, *, request: bool) -> str:
    head = attempt.request_head if request else attempt.response_head
    if head is None:
        return ""
    found = [f"{f.name}: {f.value}" for f in head.headers.fields
             if f.name.lower() in _CONNECTION_SPECIFIC
             or (f.name.lower() == "te" and f.value.strip().lower() != "trailers")]
    return "; ".join(found)[:120]
