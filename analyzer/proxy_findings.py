"""The findings of a proxy's two legs once paired (correlate.py pairs them): what the proxy
changed between them (`compare_legs`), the back leg's own note and its end judged with the
proxy as its client, and a proxy's answer that no back leg matches."""

from __future__ import annotations

from urllib.parse import urlsplit

from analyzer.attribution.clients import back_leg_found
from analyzer.attribution.servers import backend_refused_found, match_response, passed_on_found
from analyzer.checks.catalogue import Finding
from analyzer.checks.facts import frames_of
from analyzer.checks.life import check_life
from analyzer.exchange.model import Attempt, TcpEvent, TcpFacts, came_first
from analyzer.http.message import RequestHead
from analyzer.life.model import FIN, RST, Lifetime
from analyzer.verdict import Diagnosis
from analyzer.websocket.handshake import accept_for_key

# A proxy passes its client's end on to the backend within moments (nginx, HAProxy and Apache
# at once); the other leg's clock may be a little off when the legs were captured apart
PASS_ON_S, PASS_ON_SKEW_S = 0.5, 0.05
_CLOSE = 0x8  # a Close frame's opcode (RFC 6455 §5.5.1)
# What a proxy answers when its backend took the request and did not answer in time (HAProxy's
# timeout server, nginx's proxy_read_timeout, Envoy's route timeout, Traefik's)
GATEWAY_TIMEOUTS = frozenset((504,))
# Apache httpd answers its ProxyTimeout with 502, not 504 (tests/test_apache_live.py): a 502
# is a timeout when the proxy itself gave up on a silent backend after at least this long
# (ProxyTimeout counts whole seconds; a backend that closed first is no timeout)
APACHE_MIN_TIMEOUT = 0.5


def back_leg(front: Diagnosis, back: Attempt) -> Finding:
    """The finding that marks ``back`` as the proxy's request for ``front``'s handshake (or
    its connection for it, refused)."""
    return Finding("proxy_back_leg", "", back_leg_found(str(front.attempt.server),
                                                       str(front.attempt.client),
                                                       refused=back.request_head is None),
                   frames_of(front.attempt.request) + (frames_of(back.request)
                                                       or _refusal_frames(back)), "client")


def _refusal_frames(attempt: Attempt) -> tuple[int, ...]:
    """A refused connection's SYN and the RST that answered it."""
    tcp = attempt.tcp
    return tuple(event.frame for event in (tcp.syn, tcp.server_rst) if event is not None)


def back_leg_findings(d: Diagnosis, front: Diagnosis | None = None) -> tuple[Finding, ...]:
    """``d``'s findings as a proxy's back leg: its end judged again with the proxy as its
    client (a quiet end is the proxy's idle timeout, as on the front leg: checks/life.py),
    or, when the end client left ``front`` just before the proxy ended this switched leg
    without a Close frame, the proxy passing that end on (`proxy_passed_client_end`, in
    place of the hang-up or the idle timeout the leg alone reads: behind an HTTP/1.0 client
    that gave up, Apache httpd's back leg read as a 2 or 3 s wait of its own)."""
    life = d.lifetime
    passed = _passed_on_end(d, front) if front is not None else None
    if passed is not None:
        old = check_life(life) if life is not None else []
        return tuple(f for f in d.findings if f not in old and not (
            f.check in _ENDS_OF_A_LEG and f.side == "client")) + (passed,)
    if life is None:
        return d.findings
    old, new = check_life(life), check_life(life, proxy_client=True)
    if old == new:
        return d.findings
    return tuple(f for f in d.findings if f not in old) + tuple(new)


def without_disproved(findings: tuple[Finding, ...], front: Attempt,
                      back: Attempt) -> tuple[Finding, ...]:
    """A front leg's ``findings`` without those its back leg disproves: a 426 that reached
    the client without Upgrade, where the backend's 426 named the protocol (Squid drops the
    hop-by-hop header from the answer as from the request): the server did what RFC 9110
    asks; the proxy did not pass it on."""
    head, back_head = front.response_head, back.response_head
    if (head is None or back_head is None or head.status != 426 or back_head.status != 426
            or not back_head.headers.has("upgrade")):
        return findings
    return tuple(f for f in findings if f.check != "upgrade_required_without_upgrade")


# How a switched leg's end without a Close frame reads on its own (the watch's and the
# life's), which a proxy that passed its client's end on explains
_ENDS_OF_A_LEG = frozenset({"client_hung_up_after_switch", "ended_without_close_after_switch",
                            "idle_timeout_after_switch", "closed_without_close_frame"})


def _passed_on_end(back: Diagnosis, front: Diagnosis) -> Finding | None:
    """`proxy_passed_client_end` when the proxy (``back``'s client) ended the switched back
    leg with a FIN or RST, no Close frame, right after the end client ended ``front``."""
    life, attempt = back.lifetime, back.attempt
    if (life is None or not life.ended) and (attempt.after is None or any(
            seen.ws.opcode == _CLOSE for seen in attempt.after.frames)):
        return None
    end, left = _client_end(life, attempt.tcp), _client_end(front.lifetime, front.attempt.tcp)
    if end is None or left is None or not -PASS_ON_SKEW_S <= end[0] - left[0] <= PASS_ON_S:
        return None
    when, frame, how = end
    since = life.duration_s if life is not None and life.ended else (
        when - attempt.after.switch_time if attempt.after is not None else 0.0)
    proxy = f"the proxy {life.closer}" if life is not None and life.closer else "the proxy"
    return Finding("proxy_passed_client_end", "a Close frame from the proxy",
                   f"{proxy} sent a {how} {1000 * max(0.0, when - left[0]):.0f} ms after its "
                   f"client's {left[2]} on the front leg (frame {left[1]}), {since:.1f} s "
                   "after the switch", tuple(f for f in (frame, left[1]) if f), side="client")


def _client_end(life: Lifetime | None, tcp: TcpFacts) -> tuple[float, int, str] | None:
    """When, in which frame and how (FIN, reset) a leg's client side ended it first: its
    life's end when it lived on, else its first FIN or RST, unless the server side's end
    came before it (a proxy's idle timeout ends the front first, both legs at once)."""
    if life is not None and life.ended:
        if life.closed_by != "client" or life.how not in (FIN, RST):
            return None
        return life.end_time, life.end_frame, "reset" if life.how == RST else "FIN"
    ends = [(event, how) for event, how in ((tcp.client_fin, "FIN"), (tcp.client_rst, "reset"))
            if event is not None]
    if not ends:
        return None
    event, how = min(ends, key=lambda end: end[0].frame)
    if any(came_first(other, event) for other in (tcp.server_fin, tcp.server_rst)
           if other is not None):
        return None
    return event.time, event.frame, how


def answered_itself(attempt: Attempt) -> Finding:
    """The finding of an attempt to a proxy that no backend request matches."""
    return Finding("proxy_answered_itself", "a backend request",
                   "no backend request matches this one", frames_of(attempt.response))


def _backend_timed_out(front: Attempt, back: Attempt) -> Finding | None:
    """`proxy_backend_timeout`: the backend took the proxy's request and answered nothing,
    and the proxy answered the client 504 (HAProxy's timeout server, nginx's
    proxy_read_timeout), ending the back leg itself if the capture shows it, or 502 after it
    ended the back leg itself (Apache's ProxyTimeout, `_proxy_timed_out`)."""
    answer, status = front.response, _status_as_http1(front)
    if back.response is not None or back.request is None or answer is None or (
            status not in GATEWAY_TIMEOUTS and status != 502):
        return None
    tcp = back.tcp
    gave_up = tcp.client_fin or tcp.client_rst
    if gave_up is not None and gave_up.time > answer.time + 1.0:
        gave_up = None  # (an end long after the 504 is not the one that made it)
    if status == 502 and not _proxy_timed_out(back, gave_up, answer.time):
        return None
    end = gave_up.time if gave_up is not None else answer.time
    how = ("" if gave_up is None else
           f"; the proxy {'reset' if gave_up is tcp.client_rst else 'closed'} it")
    return Finding("proxy_backend_timeout", "the backend's answer within the proxy's timeout",
                   f"{back.server} took the proxy's request and answered nothing in "
                   f"{end - back.request.time:.1f} s{how}; the proxy answered {status}",
                   frames_of(back.request) + ((gave_up.frame,) if gave_up else ())
                   + frames_of(answer))


def _proxy_timed_out(back: Attempt, gave_up: TcpEvent | None, answered: float) -> bool:
    """Whether a 502 was the proxy's timeout (Apache httpd's ProxyTimeout: "502 Proxy
    Error", "AH01102: error reading status line from remote server"): the proxy ended the
    back leg itself, at least APACHE_MIN_TIMEOUT after its request and before its answer,
    the backend silent until then. (A backend that closed first is nginx's "upstream
    prematurely closed connection": no timeout.)"""
    if gave_up is None or back.request is None or gave_up.time > answered:
        return False
    tcp = back.tcp
    closed = [e.time for e in (tcp.server_fin, tcp.server_rst) if e is not None]
    return gave_up.time - back.request.time >= APACHE_MIN_TIMEOUT and (
        not closed or min(closed) > gave_up.time)


def _status_as_http1(attempt: Attempt) -> int | None:
    """The answer's status, an HTTP/2 WebSocket's 2xx as the 101 it is over HTTP/1.1 (RFC
    8441 §5): a proxy that converts one leg into the other rewrote nothing."""
    head = attempt.response_head
    if head is None:
        return None
    if attempt.transport == "h2" and 200 <= head.status < 300 and attempt.request_head is not None \
            and attempt.request_head.headers.has(":protocol"):
        return 101
    return head.status


def _host_rewritten(front: RequestHead, back: RequestHead) -> tuple[str, str, str] | None:
    """(the client's Host, the backend's, the Origin) when the client's request was
    same-origin (its Origin names its Host) and the proxy sent another Host."""
    origin = front.headers.get("origin")
    host_front = front.headers.get("host") or front.headers.get(":authority")
    host_back = back.headers.get("host") or back.headers.get(":authority")
    if not (origin and host_front and host_back):
        return None
    parts = urlsplit(origin.strip())
    default = {"http": ":80", "https": ":443"}.get(parts.scheme.lower(), "")

    def plain(host: str) -> str:
        host = host.strip().lower()
        return host[:-len(default)] if default and host.endswith(default) else host

    named = plain(parts.netloc)
    if plain(host_front) != named or plain(host_back) == named:
        return None
    return host_front.strip(), host_back.strip(), origin.strip()


def compare_legs(front: Attempt, back: Attempt, retries: int = 0) -> list[Finding]:
    """What the proxy changed between the two legs of one handshake; ``retries``: the
    proxy's connections refused after ``back``, itself refused."""
    f, b = front.request_head, back.request_head
    if b is None:  # the proxy's connection to the backend, refused (`Leg.refused`)
        return [Finding("proxy_backend_refused", "the backend accepts the proxy's connection",
                        backend_refused_found(str(back.server), str(back.client), retries),
                        _refusal_frames(back) + frames_of(front.response))]
    assert isinstance(f, RequestHead) and isinstance(b, RequestHead)
    ev = frames_of(front.request) + frames_of(back.request)
    findings: list[Finding] = []
    offered_front = f.headers.has("upgrade") and "upgrade" in f.headers.tokens("connection")
    offered_back = b.headers.has("upgrade") and "upgrade" in b.headers.tokens("connection")
    if offered_front and not offered_back:
        sent = ", ".join(f"{n}: {', '.join(b.headers.all(n)) or '(none)'}"
                         for n in ("Upgrade", "Connection"))
        if "(squid/" in " ".join(b.headers.all("via")).lower():
            # (Squid forwards a ws:// request in absolute form; before 5.0 it could not pass
            # an upgrade on at all)
            sent += ("; Squid drops Upgrade unless an http_upgrade_request_protocols rule "
                     "allows the offered protocol by its exact, case-sensitive name")
        findings.append(Finding("proxy_stripped_upgrade", "Upgrade and Connection forwarded",
                                f"backend got {sent}", ev))
    if f.version.upper() != "HTTP/1.0" and b.version.upper() == "HTTP/1.0":
        # (a backend that switched anyway and then spoke made it work: a risk, not the
        # failure; tornado switches, then closes or resets at the client's first frame)
        switched = back.response_head is not None and back.response_head.status == 101 and (
            back.after is not None and any(seen.side == "server" for seen in back.after.frames))
        findings.append(Finding("proxy_http10_upstream_switched" if switched
                                else "proxy_http10_upstream", f.version,
                                f"backend got {b.version}", ev))
    key_f, key_b = f.headers.get("sec-websocket-key"), b.headers.get("sec-websocket-key")
    if key_f and key_b and key_f.strip() != key_b.strip():
        response = front.response_head
        accept = response.headers.get("sec-websocket-accept") if response else None
        if accept and accept.strip() == accept_for_key(key_b):
            findings.append(Finding("proxy_accept_forwarded", accept_for_key(key_f),
                                    f"{accept} (the Accept for the backend's key)",
                                    ev + frames_of(front.response)))
        else:
            findings.append(Finding("proxy_rekeyed", key_f, key_b, ev))
    rewritten = _host_rewritten(f, b)
    if rewritten and back.response_head is not None and back.response_head.status == 403:
        findings.append(Finding("proxy_host_rewritten", f"Host {rewritten[0]}",
                                f"backend got Host {rewritten[1]}; the Origin is "
                                f"{rewritten[2]}", ev + frames_of(back.response)))
    timed_out = _backend_timed_out(front, back)
    if timed_out is not None:
        findings.append(timed_out)
    front_status, back_status = _status_as_http1(front), _status_as_http1(back)
    if back_status is not None and front_status is not None and front_status != back_status:
        findings.append(Finding("proxy_rewrote_response", f"{back_status} from the backend",
                                f"{front_status} to the client",
                                frames_of(back.response) + frames_of(front.response)))
    elif back_status is not None and front_status is not None and back_status != 101:
        passed = _passed_on(front, back)
        if passed is not None:
            findings.append(passed)
    if back_status == 101 and front.response is None and back.response is not None:
        # (only a front that ended after that 101 was left without it: one that ended
        # before gave up before there was anything to pass on)
        tcp = front.tcp
        ends = [e.time for e in (tcp.client_fin, tcp.client_rst, tcp.server_fin,
                                 tcp.server_rst) if e is not None]
        if ends and min(ends) > back.response.time:
            findings.append(_withheld(front, back))
    return findings


def _passed_on(front: Attempt, back: Attempt) -> Finding | None:
    """`proxy_passed_on`: the backend's answer, passed on with another Server header than
    the backend's own (Apache adds its own to an answer without one, nginx replaces it),
    which would name the proxy as its author."""
    head, back_head = front.response_head, back.response_head
    assert head is not None and back_head is not None and back.response is not None
    ours, theirs = head.headers.get("server"), back_head.headers.get("server")
    if not ours or theirs is not None and ours.strip() == theirs.strip():
        return None
    named = match_response(back_head, back.response.body_prefix)
    author = named.server if named is not None else f"the backend at {back.server}"
    return Finding("proxy_passed_on", "the answer's author named by its Server header",
                   passed_on_found(author, back_head.status, ours.strip(),
                                   theirs.strip() if theirs else None),
                   frames_of(back.response) + frames_of(front.response))


def _withheld(front: Attempt, back: Attempt) -> Finding:
    """`proxy_withheld_switch`: the backend's 101, which the client never got."""
    assert back.response is not None and front.request_head is not None
    http10 = front.request_head.version.upper() == "HTTP/1.0"
    return Finding("proxy_withheld_switch", "the backend's 101 passed on to the client",
                   f"{back.server} answered 101; the client got nothing"
                   + (" (its request was HTTP/1.0: no 1xx may be sent to it)" if http10
                      else ""),
                   frames_of(front.request) + frames_of(back.response))
