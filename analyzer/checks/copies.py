"""Bytes a side sent again before the capture saw them acknowledged: which copies tell that
the path lost a request, a response or a TLS ClientHello after the capture point, and how
long the other side really had to answer (from the last copy, not the first).

Reassembly reports every such copy (`Reassembler`'s ``on_resent``); the attempt carries the
last 16 as `TcpFacts.resent`. The notes `request_resent`, `response_resent` and
`tls_client_hello_resent` come from here (checks/transport.py lists them), and the
no-response findings of transport.py and tls.py add the wait from the last copy.
"""

from __future__ import annotations

from analyzer.checks.catalogue import Finding
from analyzer.exchange.model import Attempt, Resend

# A copy sooner than this after the first is no retransmission worth a word: the same packet
# captured twice (on two interfaces, or in merged files) or a tail-loss probe that cost a few
# ms. (Linux's first retransmission timeout is 200 ms at the least, RFC 6298 says 1 s.)
RESEND_MIN_WAIT = 0.05


def resent_finding(check: str, what: str, sender: str, first_frame: int, first_time: float,
                   copies: tuple[Resend, ...]) -> Finding:
    """``check`` (`request_resent`, `response_resent`, `tls_client_hello_resent`): ``what``,
    first sent in ``first_frame`` at ``first_time``, sent again as ``copies`` by ``sender``."""
    count = len(copies)
    frames = ", ".join(str(copy.frame) for copy in copies[:3]) + (", ..." if count > 3 else "")
    return Finding(
        check, f"an acknowledgement of the {what}'s first copy",
        f"the {sender} sent it again {count} time{'s' if count > 1 else ''} "
        f"(frame{'s' if count > 1 else ''} {frames}), the last "
        f"{1000 * max(0.0, copies[-1].time - first_time):.0f} ms after the first copy, which "
        "nothing acknowledged", (first_frame,) + tuple(copy.frame for copy in copies[:3]))


def request_copies(attempt: Attempt) -> tuple[Resend, ...]:
    """The client's copies sent again after its request began and before the server's first
    answer (its response, else anything of the server's after the request, else the end):
    the server could read the request only once a copy reached it. In order."""
    request = attempt.request
    if request is None:
        return ()
    response = attempt.response
    until = response.first_frame if response is not None else 0
    return tuple(copy for copy in attempt.tcp.resent if copy.side == "client"
                 and copy.frame > request.first_frame and (not until or copy.frame < until)
                 and copy.time - request.time >= RESEND_MIN_WAIT)


def response_copies(attempt: Attempt) -> tuple[Resend, ...]:
    """The server's copies sent again after its response began, before it sent anything
    after it and before the client said anything more (its first bytes after the switch, its
    FIN or RST: from then on it has shown what it made of the answer). In order.

    Why not later copies: a copy does not say which bytes it carries of those the stage
    above read (inside TLS its offsets are the records'), and after the server's first
    bytes past the response a copy may be of those alone (zeek's connect-with-smtp: the
    SMTP greeting re-sent 3 s after the client had acknowledged the 200). So a 101 followed
    at once by the server's first message (socket.io's open packet) is not looked at."""
    response = attempt.response
    if response is None:
        return ()
    tcp, after = attempt.tcp, attempt.after
    said = [event.frame for event in (tcp.client_fin, tcp.client_rst) if event is not None]
    if after is not None:
        said += [event.frame for event in (after.client_first, after.server_first)
                 if event is not None]
    until = min(said, default=0)
    return tuple(copy for copy in tcp.resent if copy.side == "server"
                 and copy.frame > response.first_frame and (not until or copy.frame < until)
                 and copy.time - response.time >= RESEND_MIN_WAIT)


def hello_copies(attempt: Attempt) -> tuple[Resend, ...]:
    """The client's copies sent again after its TLS ClientHello began and before the server's
    ServerHello (else the end): nothing else of the client's comes before that answer (a
    second ClientHello follows a HelloRetryRequest, which is a ServerHello), so they are the
    ClientHello's bytes, and the server could answer only once a copy reached it. In order."""
    tls = attempt.tls
    if tls is None or not tls.client_hello_frame or not attempt.tcp.resent:
        return ()
    until = tls.server_hello_frame
    return tuple(copy for copy in attempt.tcp.resent if copy.side == "client"
                 and copy.frame > tls.client_hello_frame
                 and (not until or copy.frame < until)
                 and copy.time - tls.client_hello_time >= RESEND_MIN_WAIT)


def since_last_copy(copies: tuple[Resend, ...], when: float) -> str:
    """", N ms after its last copy (frame F)" when one of ``copies`` came before ``when``:
    the first copy's time overstates the other side's wait."""
    last = next((copy for copy in reversed(copies) if copy.time <= when), None)
    if last is None:
        return ""
    return f", {1000 * (when - last.time):.0f} ms after its last copy (frame {last.frame})"
