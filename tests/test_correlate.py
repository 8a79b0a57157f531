"""Proxy legs and storms: attempts judged together (two legs of one handshake in one capture)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from analyzer.correlate import correlate
from analyzer.storms import storms
from analyzer.verdict import Diagnosis
from tests.builder import (
    DEFAULT_WS_KEY,
    Conversation,
    http_request,
    http_response,
    websocket_request,
    websocket_response,
    write_pcap,
)
from tests.helpers import analyze_pcap

CLIENT, PROXY, BACKEND = "10.0.0.1", "10.0.0.2", "10.0.0.3"
BACKEND_KEY = "x3JJHMbDL1EzLkh9GBhXDw=="
FRAME_HI = b"\x81\x02hi"


def legs(front_request: bytes, back_request: bytes | None, back_response: bytes | None,
         front_response: bytes, *, front_fin: bool = True) -> list[Conversation]:
    """A client→proxy leg wrapped around a proxy→backend leg (times nest like a real proxy)."""
    t = 1_700_000_000.0
    front = Conversation(client=(CLIENT, 50000), server=(PROXY, 80), start=t)
    front.handshake()
    front.client(front_request)
    convs = [front]
    if back_request is not None:
        back = Conversation(client=(PROXY, 41000), server=(BACKEND, 8080), start=t + 0.01)
        back.handshake()
        back.client(back_request)
        if back_response is not None:
            back.server(back_response, delay=0.002)
        back.client_fin(delay=0.001)
        convs.append(back)
    front.server(front_response, delay=0.03)
    if front_fin:
        front.client_fin(delay=0.001)
    return convs


def refused_back_leg(source: str = PROXY, after: float = 0.01,
                     answer: bytes | None = None, retries: int = 0,
                     request: bytes | None = None) -> list[Conversation]:
    """A proxy in front of a backend where nothing listens: the client's handshake (or
    ``request``: a forward proxy's CONNECT), a connection from ``source`` to the backend
    ``after`` s in, its SYN answered by RST (and ``retries`` more, 5 ms apart), and the
    proxy's ``answer`` (nginx's 502) about 30 ms after the request."""
    t = 1_700_000_000.0
    front = Conversation(client=(CLIENT, 50000), server=(PROXY, 80), start=t)
    front.handshake()
    front.client(ws() if request is None else request)
    backs = []
    for n in range(retries + 1):
        back = Conversation(client=(source, 41000 + n), server=(BACKEND, 8080),
                            start=t + after + 0.005 * n)
        back.syn_rst()
        backs.append(back)
    front.server(BAD_GATEWAY if answer is None else answer, delay=0.03)
    front.client_fin(delay=0.001)
    return [front, *backs]


def withheld_switch(gave_up_after: float = 3.0, passed_on: float | None = None
                    ) -> list[Conversation]:
    """Apache in front of a backend, asked by an HTTP/1.0 client: the backend's 101 on the
    back leg, nothing to the client, which gives up ``gave_up_after`` s after its request;
    ``passed_on``: the proxy closes the back leg that long after the client's FIN."""
    t = 1_700_000_000.0
    front = Conversation(client=(CLIENT, 50000), server=(PROXY, 80), start=t)
    front.handshake()
    front.client(ws(http_version="HTTP/1.0"))
    back = Conversation(client=(PROXY, 41000), server=(BACKEND, 8080), start=t + 0.01)
    back.handshake()
    back.client(ws())
    back.server(SWITCH, delay=0.002)
    front.client_fin(delay=gave_up_after)
    if passed_on is not None:
        back.client_fin(delay=gave_up_after - 0.002 + passed_on)
    return [front, back]


def timed_out_back_leg(waited: float = 1.0, backend_closed: bool = False
                       ) -> list[Conversation]:
    """Apache in front of a silent backend: the proxy's request, its FIN ``waited`` s later
    (ProxyTimeout; or the backend's own FIN then, ``backend_closed``), then its 502 Proxy
    Error to the client."""
    t = 1_700_000_000.0
    front = Conversation(client=(CLIENT, 50000), server=(PROXY, 80), start=t)
    front.handshake()
    front.client(ws())
    back = Conversation(client=(PROXY, 41000), server=(BACKEND, 8080), start=t + 0.01)
    back.handshake()
    back.client(ws())
    (back.server_fin if backend_closed else back.client_fin)(delay=waited)
    front.server(PROXY_ERROR, delay=waited + 0.02)
    front.client_fin(delay=0.001)
    return [front, back]


def ws(host: str = "chat.example.com", **options: object) -> bytes:
    return websocket_request(host, "/ws", **options)  # type: ignore[arg-type]


STRIPPED = ws(omit=("Upgrade", "Connection"), extra_headers=[("Connection", "close"),
                                                             ("X-Real-IP", CLIENT)])
REJECT_426 = http_response(426, "Upgrade Required", [("Upgrade", "websocket"),
                                                     ("Content-Length", "0")])
SWITCH = websocket_response(DEFAULT_WS_KEY)
BACKEND_SWITCH = websocket_response(BACKEND_KEY)
FORBIDDEN = http_response(403, "Forbidden", [("Content-Length", "35")],
                          b"Cross origin websockets not allowed")
BAD_GATEWAY = http_response(502, "Bad Gateway", [("Server", "nginx"), ("Content-Length", "0")])
GATEWAY_TIMEOUT = http_response(504, "Gateway Time-out", [("Content-Length", "0")])
PROXY_ERROR = http_response(502, "Proxy Error", [("Server", "Apache/2.4.71 (Debian)"),
                                                ("Content-Length", "0")])
# a backend's 403 without a Server header (Go's net/http), and as Apache passed it on
BARE_FORBIDDEN = http_response(403, "Forbidden", [("Content-Length", "5")], b"nope!")
# a wss:// client's CONNECT to a forward proxy, and Squid's 503 when the target refused it
def connect(target: str = f"{BACKEND}:8080") -> bytes:
    return http_request("CONNECT", target, [("Host", target),
                                            ("User-Agent", "Python/3.11 websockets/17.4")])


SQUID_CONNECT_FAIL = http_response(503, "Service Unavailable", [
    ("Server", "squid/5.7"), ("X-Squid-Error", "ERR_CONNECT_FAIL 111"),
    ("Content-Length", "0")])
APACHE_FORBIDDEN = http_response(403, "Forbidden", [("Server", "Apache/2.4.71 (Debian)"),
                                                    ("Content-Length", "5")], b"nope!")


@dataclass(frozen=True)
class ProxyCase:
    name: str
    build: Callable[[], list[Conversation]]
    front_verdict: str
    front_primary: str | None
    present: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()

    @property
    def triggered(self) -> set[str]:
        return set(self.present) | ({self.front_primary} if self.front_primary else set())


ALL_PROXY = ("proxy_stripped_upgrade", "proxy_http10_upstream",
             "proxy_http10_upstream_switched", "proxy_accept_forwarded",
             "proxy_rekeyed", "proxy_rewrote_response", "proxy_answered_itself",
             "proxy_backend_refused", "proxy_backend_timeout", "proxy_withheld_switch",
             "proxy_passed_on")

PROXY_CASES = (
    ProxyCase("nginx without proxy_set_header: backend got no Upgrade, 426 passed back",
              lambda: legs(ws(), STRIPPED, REJECT_426, REJECT_426), "failed",
              "proxy_stripped_upgrade", present=("response_upgrade_required",),
              absent=("proxy_http10_upstream", "proxy_rewrote_response")),
    ProxyCase("Squid stripped the Upgrade both ways: the backend's 426 named websocket",
              lambda: legs(ws(), STRIPPED, REJECT_426, http_response(
                  426, "Upgrade Required", [("Via", "1.1 squid (squid/5.7)"),
                                            ("Content-Length", "0")])),
              "failed", "proxy_stripped_upgrade", present=("response_upgrade_required",),
              absent=("upgrade_required_without_upgrade",)),
    ProxyCase("nginx default HTTP/1.0 upstream: 505 passed back",
              lambda: legs(ws(), ws(http_version="HTTP/1.0"),
                           http_response(505, "HTTP Version Not Supported",
                                         [("Content-Length", "0")]),
                           http_response(505, "HTTP Version Not Supported",
                                         [("Content-Length", "0")])),
              "failed", "proxy_http10_upstream", present=("response_server_error",),
              absent=("proxy_stripped_upgrade", "proxy_rekeyed", "via_proxy")),
    ProxyCase("nginx default HTTP/1.0 upstream, a backend that switched anyway (uvicorn)",
              lambda: legs(ws(), ws(http_version="HTTP/1.0"), SWITCH + FRAME_HI,
                           SWITCH + FRAME_HI, front_fin=False),
              "succeeded", "proxy_http10_upstream_switched",
              absent=("proxy_http10_upstream", "proxy_rewrote_response")),
    ProxyCase("nginx default HTTP/1.0 upstream, a backend that switched, then closed at once "
              "(tornado)",
              lambda: legs(ws(), ws(http_version="HTTP/1.0"), SWITCH, SWITCH),
              "failed", "proxy_http10_upstream", absent=("proxy_http10_upstream_switched",)),
    ProxyCase("nginx default HTTP/1.0 upstream, the client's first frame forwarded, the backend "
              "silent (tornado resets)",
              lambda: legs(ws(), ws(http_version="HTTP/1.0") + b"\x81\x82abcdhi", SWITCH,
                           SWITCH),
              "failed", "proxy_http10_upstream", absent=("proxy_http10_upstream_switched",)),
    ProxyCase("nginx's default Host to the backend, a same-origin page refused there (tornado)",
              lambda: legs(ws(extra_headers=[("Origin", "http://chat.example.com")]),
                           ws(extra_headers=[("Origin", "http://chat.example.com")],
                              host="backend:8080"),
                           FORBIDDEN, FORBIDDEN),
              "failed", "proxy_host_rewritten", present=("response_forbidden",)),
    ProxyCase("the same Host forwarded, the Origin refused anyway: not the proxy's doing",
              lambda: legs(ws(extra_headers=[("Origin", "http://chat.example.com")]),
                           ws(extra_headers=[("Origin", "http://chat.example.com")]),
                           FORBIDDEN, FORBIDDEN),
              "failed", "response_forbidden", absent=("proxy_host_rewritten",)),
    ProxyCase("Host rewritten, the backend switched: harmless",
              lambda: legs(ws(extra_headers=[("Origin", "http://chat.example.com")]),
                           ws(extra_headers=[("Origin", "http://chat.example.com")],
                              host="backend:8080"),
                           SWITCH + FRAME_HI, SWITCH + FRAME_HI, front_fin=False),
              "succeeded", None, absent=ALL_PROXY + ("proxy_host_rewritten",)),
    ProxyCase("proxy re-keyed and forwarded the backend's Accept",
              lambda: legs(ws(), ws(key=BACKEND_KEY), BACKEND_SWITCH, BACKEND_SWITCH),
              "failed", "proxy_accept_forwarded", present=("ws_accept_mismatch",),
              absent=("proxy_rekeyed", "proxy_stripped_upgrade")),
    ProxyCase("proxy terminates WebSocket itself: new key, right Accept to the client",
              lambda: legs(ws(), ws(key=BACKEND_KEY), BACKEND_SWITCH, SWITCH + FRAME_HI,
                           front_fin=False),
              "succeeded", "proxy_rekeyed", absent=("proxy_accept_forwarded",
                                                     "ws_accept_mismatch")),
    ProxyCase("backend switched but the proxy answered 502",
              lambda: legs(ws(), ws(), SWITCH, BAD_GATEWAY), "failed", "response_gateway_error",
              present=("proxy_rewrote_response",), absent=("proxy_stripped_upgrade",)),
    ProxyCase("proxy configured right: the same handshake on both legs",
              lambda: legs(ws(), ws(), SWITCH + FRAME_HI, SWITCH + FRAME_HI, front_fin=False),
              "succeeded", None, absent=ALL_PROXY),
    ProxyCase("nginx in front of a backend that refused the connection: 502",
              refused_back_leg, "failed", "proxy_backend_refused",
              present=("response_gateway_error",),
              absent=("proxy_answered_itself", "proxy_rewrote_response")),
    ProxyCase("HAProxy in front of a backend that refused the connection: 503",
              lambda: refused_back_leg(answer=http_response(
                  503, "Service Unavailable", [("Content-Length", "0")])),
              "failed", "proxy_backend_refused", present=("response_gateway_error",)),
    ProxyCase("HAProxy's 504: the backend took the request and never answered",
              lambda: legs(ws(), ws(), None, GATEWAY_TIMEOUT), "failed",
              "proxy_backend_timeout", present=("response_gateway_error",),
              absent=("proxy_answered_itself", "proxy_rewrote_response")),
    ProxyCase("a 502 for a backend that took the request and never answered: no timeout",
              lambda: legs(ws(), ws(), None, BAD_GATEWAY), "failed", "response_gateway_error",
              absent=("proxy_backend_timeout", "proxy_answered_itself")),
    ProxyCase("Apache's 502 Proxy Error: it closed the silent back leg after ProxyTimeout",
              timed_out_back_leg, "failed", "proxy_backend_timeout",
              present=("response_gateway_error",), absent=("proxy_rewrote_response",)),
    ProxyCase("a 502 after the backend closed the back leg without a word: no timeout",
              lambda: timed_out_back_leg(backend_closed=True), "failed",
              "response_gateway_error", absent=("proxy_backend_timeout",)),
    ProxyCase("a 504 passed on from the backend: it answered, no timeout of the proxy's",
              lambda: legs(ws(), ws(), GATEWAY_TIMEOUT, GATEWAY_TIMEOUT), "failed",
              "response_gateway_error", absent=("proxy_backend_timeout",)),
    ProxyCase("HAProxy's 503 after its 3 retries, each refused",
              lambda: refused_back_leg(answer=http_response(
                  503, "Service Unavailable", [("Content-Length", "0")]), retries=3),
              "failed", "proxy_backend_refused", present=("response_gateway_error",)),
    ProxyCase("Squid's 503 to a CONNECT whose target refused its connection",
              lambda: refused_back_leg(answer=SQUID_CONNECT_FAIL, request=connect()),
              "failed", "proxy_backend_refused", present=("proxy_tunnel_failed",),
              absent=("proxy_answered_itself", "response_gateway_error")),
    ProxyCase("a refusal from the proxy to another address than the CONNECT's target",
              lambda: refused_back_leg(answer=SQUID_CONNECT_FAIL,
                                       request=connect("10.0.0.4:443")),
              "failed", "proxy_tunnel_failed", absent=ALL_PROXY),
    ProxyCase("a connection refused from another host during the 502: not the proxy's",
              lambda: refused_back_leg(source="10.0.0.9"), "failed", "response_gateway_error",
              absent=ALL_PROXY),
    ProxyCase("the proxy's connection refused after its 502: not for this handshake",
              lambda: refused_back_leg(after=0.2), "failed", "response_gateway_error",
              absent=ALL_PROXY),
    ProxyCase("a connection refused from the proxy while it answered 426: not a gateway error",
              lambda: refused_back_leg(answer=REJECT_426), "failed",
              "response_upgrade_required", absent=ALL_PROXY),
    ProxyCase("Apache: the backend's 403 without a Server header, passed on with Apache's",
              lambda: legs(ws(), ws(), BARE_FORBIDDEN, APACHE_FORBIDDEN), "failed",
              "response_forbidden", present=("proxy_passed_on",),
              absent=("proxy_rewrote_response", "proxy_answered_itself")),
    ProxyCase("Apache: an HTTP/1.0 client's upgrade switched by the backend, the 101 kept",
              withheld_switch, "no_response", "proxy_withheld_switch",
              present=("no_response_client_gave_up", "request_http10")),
    ProxyCase("a client that gave up before the backend's 101: nothing to pass on yet",
              lambda: withheld_switch(gave_up_after=0.001), "no_response",
              "no_response_client_gave_up", absent=ALL_PROXY),
    ProxyCase("single leg with X-Forwarded-For: a proxy is on the way",
              lambda: legs(ws(extra_headers=[("X-Forwarded-For", "192.0.2.7")]), None, None,
                           REJECT_426),
              "failed", "response_upgrade_required", present=("via_proxy",), absent=ALL_PROXY),
)


def _front(diagnoses: list[Diagnosis]) -> Diagnosis:
    (front,) = [d for d in diagnoses if d.attempt.client.ip == CLIENT]
    return front


@pytest.mark.parametrize("case", PROXY_CASES, ids=[c.name for c in PROXY_CASES])
def test_proxy_legs(case: ProxyCase, tmp_path: Path) -> None:
    path = tmp_path / "legs.pcap"
    write_pcap(path, case.build())
    diagnoses = correlate(sorted(analyze_pcap(path), key=lambda d: d.attempt.first_frame))
    front = _front(diagnoses)
    ids = [f.check for f in front.findings]
    assert front.verdict.value == case.front_verdict, ids
    assert (ids[0] if ids else None) == case.front_primary, ids
    assert case.triggered <= set(ids), ids
    assert not set(case.absent) & set(ids), ids


@pytest.mark.parametrize("passed_on", [0.0003, 1.5])
def test_a_back_leg_the_proxy_closed_as_its_client_left_says_so(
        tmp_path: Path, passed_on: float) -> None:
    """The proxy's FIN on the back leg 0.3 ms after the client's on the front: it passed the
    end on (not a hang-up of its own); 1.5 s after, the near miss: a hang-up of its own."""
    path = tmp_path / "passed.pcap"
    write_pcap(path, withheld_switch(gave_up_after=0.5, passed_on=passed_on))
    diagnoses = correlate(sorted(analyze_pcap(path), key=lambda d: d.attempt.first_frame))
    (back,) = [d for d in diagnoses if d.attempt.client.ip == PROXY]
    ids = [f.check for f in back.findings]
    if passed_on < 1:
        assert "proxy_passed_client_end" in ids and "client_hung_up_after_switch" not in ids
        assert back.verdict.value == "succeeded", ids
        (found,) = [f.found for f in back.findings if f.check == "proxy_passed_client_end"]
        waited = re.match(r"the proxy sent a FIN (\d+) ms after its client's FIN on the "
                          r"front leg \(frame \d+\), 0\.5 s after the switch", found)
        assert waited is not None and int(waited.group(1)) <= 20, found
    else:
        assert "proxy_passed_client_end" not in ids and "client_hung_up_after_switch" in ids


def _one_through_one_answered_by_the_proxy(tmp_path: Path) -> Path:
    """One handshake through the proxy reaches the backend; a second one is answered 403 by
    the proxy alone."""
    convs = legs(ws(), ws(), SWITCH + FRAME_HI, SWITCH + FRAME_HI, front_fin=False)
    alone = Conversation(client=(CLIENT, 50001), server=(PROXY, 80), start=1_700_000_100.0)
    alone.handshake()
    alone.client(ws(key=BACKEND_KEY))
    alone.server(http_response(403, "Forbidden", [("Content-Length", "0")]), delay=0.002)
    path = tmp_path / "alone.pcap"
    write_pcap(path, [*convs, alone])
    return path


def test_proxy_answered_itself_when_other_handshakes_reached_the_backend(tmp_path: Path) -> None:
    path = _one_through_one_answered_by_the_proxy(tmp_path)
    diagnoses = correlate(sorted(analyze_pcap(path), key=lambda d: d.attempt.first_frame))
    by_port = {d.attempt.client.port: d for d in diagnoses}
    assert "proxy_answered_itself" in [f.check for f in by_port[50001].findings]
    assert "proxy_answered_itself" not in [f.check for f in by_port[50000].findings]
    assert by_port[50001].verdict.value == "failed"


def tunnel_beside_legs() -> list[Conversation]:
    """A handshake through a proxy that reached the backend, then a CONNECT (from client
    port 50001) the proxy answered 200."""
    convs = legs(ws(), ws(), SWITCH + FRAME_HI, SWITCH + FRAME_HI, front_fin=False)
    tunnel = Conversation(client=(CLIENT, 50001), server=(PROXY, 80), start=1_700_000_001.0)
    tunnel.handshake()
    tunnel.client(connect(f"{BACKEND}:443"))
    tunnel.server(http_response(200, "Connection established"), delay=0.002)
    return [*convs, tunnel]


def test_a_tunnel_the_proxy_opened_is_not_an_answer_of_its_own(tmp_path: Path) -> None:
    """A CONNECT answered 200 by a proxy whose other handshakes reach a backend: the proxy
    did connect to the target (the tunnel's bytes went there), it did not answer itself."""
    path = tmp_path / "tunnel.pcap"
    write_pcap(path, tunnel_beside_legs())
    diagnoses = correlate(sorted(analyze_pcap(path), key=lambda d: d.attempt.first_frame))
    by_port = {d.attempt.client.port: d for d in diagnoses}
    assert by_port[50001].verdict.value == "succeeded"
    assert "proxy_answered_itself" not in [f.check for f in by_port[50001].findings]


def test_storms_group_repeated_attempts(tmp_path: Path) -> None:
    convs = []
    for n in range(5):
        conv = Conversation(client=(CLIENT, 51000 + n), server=(PROXY, 80),
                            start=1_700_000_000.0 + n)
        conv.handshake()
        conv.client(http_request("GET", "/ws", [("Host", "chat.example.com")]))
        conv.server(http_response(400, "No WebSocket Upgrade header found",
                                  [("Content-Length", "0")]), delay=0.001)
        convs.append(conv)
    other = Conversation(client=("10.0.0.9", 52000), server=(PROXY, 80), start=1_700_000_010.0)
    other.handshake()
    other.client(ws())
    other.server(SWITCH + FRAME_HI, delay=0.001)
    path = tmp_path / "storm.pcap"
    write_pcap(path, [*convs, other])
    (storm,) = storms(analyze_pcap(path))
    assert storm.count == 5 and storm.client == CLIENT and storm.request == "GET /ws"
    assert storm.reason == "request_without_upgrade"
    assert storm.last - storm.first == pytest.approx(4.0, abs=0.01)


CAPTURES = Path(__file__).resolve().parents[1] / "captures"


def test_redirect_followed_by_the_real_websockets_client_is_one_chain() -> None:
    from analyzer.redirects import redirect_chains

    (chain,) = redirect_chains(analyze_pcap(CAPTURES / "redirect_302.pcap"))
    assert chain.steps == ("GET /old -> 302", "GET /ws")
    assert chain.verdict == "succeeded"


def _redirect(tmp_path: Path, location: str, follower: str | None) -> list[Diagnosis]:
    first = Conversation(client=(CLIENT, 53000), server=(PROXY, 80), start=1_700_000_000.0)
    first.handshake()
    first.client(ws())
    first.server(http_response(301, "Moved Permanently", [("Location", location),
                                                           ("Content-Length", "0")]))
    convs = [first]
    if follower is not None:
        again = Conversation(client=(follower, 53001), server=(PROXY, 80),
                             start=1_700_000_000.5)
        again.handshake()
        again.client(ws())
        again.server(SWITCH + FRAME_HI, delay=0.001)
        convs.append(again)
    write_pcap(tmp_path / "r.pcap", convs)
    return analyze_pcap(tmp_path / "r.pcap")


def test_redirect_to_wss_leaves_the_capture(tmp_path: Path) -> None:
    from analyzer.redirects import redirect_chains

    (chain,) = redirect_chains(_redirect(tmp_path, "wss://chat.example.com/ws", None))
    assert chain.verdict == "left the capture"
    assert chain.steps[-1] == "wss://chat.example.com/ws"


def test_another_clients_request_is_not_the_follow_up(tmp_path: Path) -> None:
    from analyzer.redirects import redirect_chains

    followed = redirect_chains(_redirect(tmp_path, "http://chat.example.com/ws", CLIENT))
    assert [c.verdict for c in followed] == ["succeeded"]
    other = redirect_chains(_redirect(tmp_path, "http://chat.example.com/ws", "10.0.0.99"))
    assert [c.verdict for c in other] == ["left the capture"]


def _pairs_by_definition(diagnoses: list[Diagnosis]) -> list[tuple[Diagnosis, Diagnosis]]:
    """The pairing rule stated plainly (every later attempt in the window is tried, those
    with a request before refused connections): the indexed `_pair_legs` must give exactly
    this."""
    from analyzer.correlate import PAIRING_WINDOW, _legs_of_one_handshake, leg_of

    legs = {id(d): leg for d in diagnoses if (leg := leg_of(d.attempt)) is not None}
    candidates = sorted((d for d in diagnoses if id(d) in legs), key=lambda d: d.attempt.time)
    taken: set[int] = set()
    pairs = []
    for i, front in enumerate(candidates):
        if id(front) in taken:
            continue
        later = [back for back in candidates[i + 1:]
                 if back.attempt.time - front.attempt.time <= PAIRING_WINDOW]
        for refused in (False, True):
            back = next((back for back in later if id(back) not in taken
                         and legs[id(back)].refused == refused
                         and _legs_of_one_handshake(legs[id(front)], legs[id(back)])), None)
            if back is not None:
                taken.update((id(front), id(back)))
                pairs.append((front, back))
                break
    return pairs


# the second: a path of its own per client, 8 KB long, compared by its digest (MAX_KEPT_TARGET)
@pytest.mark.parametrize("target", ["/ws", "/ws/{i:02d}/" + "p" * 8000])
def test_a_busy_proxy_pairs_each_front_leg_with_its_own_back_leg(tmp_path: Path,
                                                                 target: str) -> None:
    """40 clients through one proxy within two seconds, all asking for /ws: half of the back
    legs carry the client's key (paired by key), half a key of the proxy's own (paired by
    request line and the proxy's address). Each front leg gets its own back leg, as the
    plain definition of the rule says."""
    from analyzer.correlate import _pair_legs

    convs = []
    t = 1_700_000_000.0
    for i in range(40):
        key = f"client-key-{i:02d}-AAAAAA=="
        back_key = key if i % 2 else f"proxy-key-{i:02d}-AAAAAAA=="
        front = Conversation(client=(f"10.0.1.{i + 1}", 50000 + i), server=(PROXY, 80),
                             start=t + 0.05 * i)
        front.handshake()
        front.client(websocket_request("chat.example.com", target.format(i=i), key=key))
        back = Conversation(client=(PROXY, 41000 + i), server=(BACKEND, 8080),
                            start=t + 0.05 * i + 0.01)
        back.handshake()
        back.client(websocket_request("chat.example.com", target.format(i=i), key=back_key))
        back.server(websocket_response(back_key), delay=0.002)
        front.server(websocket_response(key), delay=0.03)
        convs += [front, back]
    path = tmp_path / "busy.pcap"
    write_pcap(path, convs)
    diagnoses = analyze_pcap(path)
    pairs = _pair_legs(diagnoses)
    assert [(f.attempt.client.port - 50000, b.attempt.client.port - 41000) for f, b in pairs] \
        == [(i, i) for i in range(40)]
    assert pairs == _pairs_by_definition(diagnoses)
    by_port = {d.attempt.client.port: d for d in correlate(diagnoses)}
    rekeyed = [p - 50000 for p, d in by_port.items()
               if "proxy_rekeyed" in [f.check for f in d.findings]]
    assert sorted(rekeyed) == list(range(0, 40, 2))


def test_pairing_on_the_bundled_captures_follows_the_definition() -> None:
    from analyzer.correlate import _pair_legs

    repo = Path(__file__).resolve().parents[1]
    paired = 0
    for path in sorted((repo / "captures").glob("*.pcap*")):
        diagnoses = analyze_pcap(path)
        pairs = _pair_legs(diagnoses)
        assert pairs == _pairs_by_definition(diagnoses), path.name
        paired += len(pairs)
    assert paired >= 2  # the nginx captures hold proxy legs


@pytest.mark.parametrize(("file", "path", "front_port", "back_port"), [
    ("apache_proxy.pcap", "/plain/", 18150, 18151),
    ("nginx_proxy_no_upgrade_headers.pcap", "/chat", 18023, 18024),
])
def test_real_proxy_that_dropped_the_upgrade_is_named_on_the_client_leg(
    file: str, path: str, front_port: int, back_port: int
) -> None:
    # captures/: Apache's ProxyPass http:// without upgrade=websocket, and nginx without
    # proxy_set_header Upgrade/Connection; both legs recorded with tcpdump -i any
    captures = Path(__file__).resolve().parents[1] / "captures"
    found = correlate(sorted(analyze_pcap(captures / file), key=lambda d: d.attempt.first_frame))
    legs = {d.attempt.server.port: d for d in found
            if d.attempt.request_head is not None and d.attempt.request_head.target == path}
    front, back = legs[front_port], legs[back_port]
    assert front.primary is not None and front.primary.check == "proxy_stripped_upgrade"
    assert back.primary is not None and back.primary.check == "upgrade_header_missing"


def test_correlation_keeps_the_lifetime_of_an_attempt_it_judges_again(tmp_path: Path) -> None:
    """A proxy finding re-judges the attempt: how its connection lived stays with it (it was
    lost, so a switched front followed to its end lost its lifetime in sorted reports)."""
    import dataclasses

    from analyzer.life.model import FIN, Lifetime

    path = _one_through_one_answered_by_the_proxy(tmp_path)
    life = Lifetime(61.0, "server", FIN, 60.0, None)
    diagnoses = [dataclasses.replace(d, lifetime=life)
                 for d in sorted(analyze_pcap(path), key=lambda d: d.attempt.first_frame)]
    judged = {d.attempt.client.port: d for d in correlate(diagnoses)}
    assert "proxy_answered_itself" in [f.check for f in judged[50001].findings]
    assert all(d.lifetime == life for d in judged.values())


def _legs_of(diagnoses: list[Diagnosis]) -> list:
    from analyzer.correlate import leg_of, source_of

    ordered = sorted(diagnoses, key=lambda d: d.attempt.time)
    return [leg_of(d.attempt, source_of(d)) for d in ordered]


def _pairs_of_the_marked(legs: list, skew: float) -> list[tuple[int, int]]:
    """`pair_legs` over the legs `may_pair` marks (what a spilled report reads), as
    positions among all the legs."""
    from analyzer.correlate import may_pair, pair_legs, pairing_hints

    hints = [pairing_hints(leg) for leg in legs]
    marks = may_pair(*([h[n] for h in hints] for n in range(4)), len(legs))
    kept = [n for n, leg in enumerate(legs) if leg is not None and marks[n]]
    return [(kept[f], kept[b]) for f, b in pair_legs((legs[n] for n in kept), skew)]


def _pairs_of_all(legs: list, skew: float) -> list[tuple[int, int]]:
    from analyzer.correlate import pair_legs

    kept = [n for n, leg in enumerate(legs) if leg is not None]
    return [(kept[f], kept[b]) for f, b in pair_legs((legs[n] for n in kept), skew)]


@pytest.mark.parametrize("seed", range(60))
def test_the_legs_that_may_pair_give_the_pairs_of_every_leg(seed: int) -> None:
    """A spilled report pairs only the legs `may_pair` marks from their hashes: the same
    pairs as over every leg, on legs of few keys, lines, hosts and two files (so that keys,
    lines and addresses repeat, across files and within the skew), some without a request,
    some refused connections and proxies' 502s (a refused back leg pairs with those)."""
    import random

    from analyzer.correlate import Leg
    from analyzer.exchange.model import Endpoint

    rng = random.Random(seed)
    hosts = [bytes([10, 0, 0, n]) for n in range(1, 5)]
    legs: list[Leg | None] = []
    t = 1_700_000_000.0
    for _ in range(rng.randrange(2, 60)):
        t += rng.choice([0.0, 0.01, 0.5, 2.0, 6.0])
        if rng.random() < 0.1:
            legs.append(None)
            continue
        client, server = rng.sample(hosts, 2)
        if rng.random() < 0.15:
            legs.append(Leg(t, None, ("", ""), Endpoint(client, rng.randrange(40000, 40004)),
                            Endpoint(server, rng.choice([80, 8080])), None,
                            rng.choice([None, "a.pcap", "b.pcap"]), t, None, True))
            continue
        legs.append(Leg(t, rng.choice([None, "", "k1", "k2", "k1", "k2", "k3"]),
                        ("GET", rng.choice(["/a", "/b"])),
                        Endpoint(client, rng.randrange(40000, 40004)),
                        Endpoint(server, rng.choice([80, 8080])),
                        rng.choice([None, t + rng.choice([0.001, 0.1, 3.0])]),
                        rng.choice([None, "a.pcap", "b.pcap"]),
                        rng.choice([None, t + rng.choice([0.005, 0.2, 4.0])]),
                        rng.choice([None, 101, 502, 503])))
    for skew in (0.0, 1.0):
        every = _pairs_of_all(legs, skew)
        assert _pairs_of_the_marked(legs, skew) == every


def test_the_bundled_captures_legs_that_may_pair_give_their_pairs() -> None:
    repo = Path(__file__).resolve().parents[1]
    paired = 0
    for path in sorted((repo / "captures").glob("*.pcap*")):
        legs = _legs_of(analyze_pcap(path))
        every = _pairs_of_all(legs, 0.0)
        assert _pairs_of_the_marked(legs, 0.0) == every, path.name
        paired += len(every)
    assert paired >= 2  # the nginx captures hold proxy legs


def test_the_hashes_a_worker_files_are_those_of_every_other_process() -> None:
    """A `--jobs` worker or a cluster's makes the storm and pairing hashes that the parent
    compares (report/kept.py `Filed`): two processes of different string hash seeds agree."""
    import subprocess
    import sys

    program = (
        "from analyzer.correlate import Leg, pairing_hints\n"
        "from analyzer.storms import storm_hash\n"
        "from analyzer.exchange.model import Endpoint\n"
        "leg = Leg(1.0, 'k\\udc80', ('GET', '/ws'), Endpoint(b'\\x0a\\0\\0\\1', 5),"
        " Endpoint(b'\\x0a\\0\\0\\2', 80), None)\n"
        "print(pairing_hints(leg), storm_hash(('10.0.0.1', '10.0.0.2:80', 'GET /ws',"
        " 'failed', None)))\n")
    outputs = {subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                              check=True, timeout=60, cwd=Path(__file__).resolve().parents[1],
                              env={**__import__("os").environ, "PYTHONHASHSEED": seed}).stdout
               for seed in ("1", "2")}
    assert len(outputs) == 1 and "(0," not in outputs.pop()


def test_a_front_leg_that_had_ended_pairs_with_no_later_request_of_its_line() -> None:
    """Without a shared key, a back leg is a request of the front's line from the front's
    server address: on one host's loopback every server shares that address. The front of
    captures/tls_mtls_no_client_cert.pcap (a websockets server that closed, unanswered, on a
    client without a certificate) paired with the next scenario's request to nginx half a
    second later. A proxy forwards a handshake while it holds it: a request after the front's
    connection ended is not its back leg; one while it was open is (the near miss)."""
    from analyzer.correlate import Leg, pair_legs
    from analyzer.exchange.model import Endpoint

    host = bytes([127, 0, 0, 1])
    t = 1_700_000_000.0

    def front(ended: float | None) -> Leg:
        return Leg(t, "front-key", ("GET", "/chat"), Endpoint(host, 35498), Endpoint(host, 18127),
                   None, None, ended)

    later = Leg(t + 0.55, "other-key", ("GET", "/chat"), Endpoint(host, 36676),
                Endpoint(host, 18133), t + 0.56, None, t + 0.57)
    assert list(pair_legs([front(t + 0.2), later])) == []
    assert list(pair_legs([front(t + 0.9), later])) == [(0, 1)]
    assert list(pair_legs([front(None), later])) == [(0, 1)]  # still open when decided


@pytest.mark.parametrize("status", [200, 401])
def test_an_http2_websocket_pairs_with_the_http11_upgrade_a_proxy_made_of_it(
        tmp_path: Path, status: int) -> None:
    """HAProxy's h2 front speaks RFC 8441 and opens an HTTP/1.1 Upgrade to its backend: the
    extended CONNECT and the GET are one handshake's legs, and the front's 200 is the back's
    101 (RFC 8441 §5). Every such front leg was "the proxy answered itself", and its back
    leg a client's own attempt with the browser's lines (the sweep of the thirtieth
    session)."""
    from tests import h2builder as h2

    t = 1_700_000_000.0
    front = Conversation(client=(CLIENT, 50000), server=(PROXY, 443), start=t)
    state = h2.H2Conversation()
    front.handshake()
    front.client(h2.PREFACE + h2.settings())
    front.server(h2.settings(((h2.ENABLE_CONNECT_PROTOCOL, 1),)) + h2.settings(ack=True))
    front.client(state.headers(True, 1, h2.websocket_connect("/ws")))
    back = Conversation(client=(PROXY, 41000), server=(BACKEND, 8080), start=t + 0.01)
    back.handshake()
    back.client(ws())
    back.server(SWITCH if status == 200 else http_response(401, "Unauthorized", [
        ("Content-Length", "0")]), delay=0.002)
    front.server(state.headers(False, 1, [(":status", str(status))], end_stream=status != 200),
                 delay=0.03)
    write_pcap(tmp_path / "h2-front.pcap", [front, back])
    diagnoses = correlate(analyze_pcap(tmp_path / "h2-front.pcap"))
    by_server = {str(d.attempt.server.ip): d for d in diagnoses}
    checks = {ip: {f.check for f in d.findings} for ip, d in by_server.items()}
    assert "proxy_back_leg" in checks[BACKEND], checks
    assert not {"proxy_answered_itself", "proxy_rewrote_response"} & checks[PROXY], checks
    assert by_server[BACKEND].attribution.client_errors == ()  # (the proxy's, not Chrome's)


def test_a_request_after_the_fronts_answer_is_not_its_back_leg() -> None:
    """Without a shared key, a request of the front's line made after the front was answered
    is not the proxy's: a proxy asks its backend before it answers (curl's POST to daphne,
    answered 405, then the same POST to a websockets server 150 ms later, on one host's
    loopback, were paired, and daphne's 13 other attempts said it answered them itself).
    The near miss: the same request made before the answer."""
    from analyzer.correlate import Leg, pair_legs
    from analyzer.exchange.model import Endpoint

    host = bytes([127, 0, 0, 1])
    t = 1_700_000_000.0
    front = Leg(t, None, ("POST", "/"), Endpoint(host, 44450), Endpoint(host, 21100), t + 0.01,
                None, None)

    def back(after: float) -> Leg:
        return Leg(t + after, None, ("POST", "/"), Endpoint(host, 40144), Endpoint(host, 21105),
                   None, None, None)

    assert list(pair_legs([front, back(0.15)])) == []
    assert list(pair_legs([front, back(0.005)])) == [(0, 1)]


def test_the_bundled_loopback_captures_pair_only_real_proxy_legs() -> None:
    """Every pair in the bundled captures is a proxy's two legs (its back leg's server is a
    backend the scenario put behind a proxy): no scenario's client is taken for a back leg."""
    from analyzer.pipeline import Analysis, analyze
    from analyzer.source import read_captures
    from analyzer.tls.keylog import load_keylog

    repo = Path(__file__).resolve().parents[1]
    fronts_and_backs = set()
    for path in sorted((repo / "captures").glob("*.pcap*")):
        keys = path.with_suffix(".keys")  # (the TLS fronts have a request only with keys)
        run = Analysis(secrets=load_keylog(keys.read_bytes()) if keys.exists() else None)
        diagnoses = [d for d in analyze(read_captures([str(path)], [], run.add_secrets), run)
                     if isinstance(d, Diagnosis)]
        for d in correlate(diagnoses):
            for f in d.findings:
                if f.check == "proxy_back_leg":
                    fronts_and_backs.add((path.name, str(d.attempt.server)))
    assert ("tls_mtls_no_client_cert.pcap", "127.0.0.1:18133") not in fronts_and_backs
    assert ("nginx_proxy_ok.pcap", "127.0.0.1:18022") in fronts_and_backs
    # the connections Caddy and HAProxy made to a backend that was down, refused
    assert ("caddy_websockets.pcap", "127.0.0.1:18173") in fronts_and_backs
    assert ("haproxy_websockets.pcap", "127.0.0.1:18143") in fronts_and_backs
    assert ("socketio_no_sticky_sessions.pcap", "127.0.0.1:18167") in fronts_and_backs


def test_a_refused_back_leg_names_the_proxys_log_line_and_the_proxy_as_its_client(
        tmp_path: Path) -> None:
    """nginx's 502 with the refused connection it made captured too: the front leg's cause is
    that refusal, nginx's log line is the one it writes for it (tests/test_proxy_refused_live.py
    reads the real one), and the refused connection's client is the proxy, not the end
    client (whose library's "connection refused" lines it was given)."""
    path = tmp_path / "refused.pcap"
    write_pcap(path, refused_back_leg())
    by_server = {str(d.attempt.server): d for d in correlate(analyze_pcap(path))}
    front, back = by_server[f"{PROXY}:80"], by_server[f"{BACKEND}:8080"]
    assert front.primary is not None and front.primary.check == "proxy_backend_refused"
    assert front.attribution.server_log == (
        f"connect() failed (111: Connection refused) while connecting to upstream, client: "
        f'{CLIENT}, server: ..., request: "GET /ws HTTP/1.1", upstream: '
        f'"http://{BACKEND}:8080/ws", host: "chat.example.com"')
    assert back.verdict.value == "refused" and "proxy_back_leg" in [f.check for f in back.findings]
    assert back.attribution.client == f"proxy at {PROXY}:80"
    assert back.attribution.client_errors == ()


def test_a_proxys_retries_refused_alike_are_back_legs_and_counted_in_haproxys_line(
        tmp_path: Path) -> None:
    """HAProxy retries a refused connection (`retries`, 3 by default) before its 503: every
    refused connection is a back leg of the one handshake (none is left to the end client's
    library's "connection refused" lines), and HAProxy's log line counts the retries."""
    path = tmp_path / "retries.pcap"
    page = b"<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle " \
           b"this request.\n</body></html>\n"
    write_pcap(path, refused_back_leg(answer=http_response(
        503, "Service Unavailable", [("Content-Length", str(len(page)))], page), retries=3))
    diagnoses = correlate(analyze_pcap(path))
    front = _front(diagnoses)
    assert front.primary is not None and front.primary.check == "proxy_backend_refused"
    assert front.primary.found.endswith("(RST to its SYN), and its 3 retries alike")
    assert front.attribution.server == "HAProxy"
    assert front.attribution.server_log == (
        f'{CLIENT}:50000 [...] ... .../... .../.../-1/-1/... 503 ... - - SC-- '
        f'.../.../.../.../3 .../... "GET /ws HTTP/1.1"')
    backs = [d for d in diagnoses if d is not front]
    assert len(backs) == 4 and all(
        "proxy_back_leg" in [f.check for f in d.findings] and d.attribution.client_errors == ()
        for d in backs)


def test_retries_of_two_clients_refused_at_once_are_not_counted(tmp_path: Path) -> None:
    """During an outage every client's retries interleave (two handshakes through HAProxy,
    each refused then retried): which refusal is whose cannot be told, so each front keeps
    its first refused back leg only and claims no retries; HAProxy's line leaves the count
    open. The near miss is the test above: one client, its retries counted."""
    t = 1_700_000_000.0
    page = b"<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle " \
           b"this request.\n</body></html>\n"
    conversations = []
    for n in range(2):
        front = Conversation(client=(CLIENT, 50000 + n), server=(PROXY, 80), start=t + 0.01 * n)
        front.handshake()
        front.client(ws())
        conversations.append(front)
    for n in range(4):  # first refusals, then one retry each: 0, 1, 0, 1
        back = Conversation(client=(PROXY, 41000 + n), server=(BACKEND, 8080),
                            start=t + 0.02 + 0.01 * n)
        back.syn_rst()
        conversations.append(back)
    for front in conversations[:2]:
        front.server(http_response(503, "Service Unavailable",
                                   [("Content-Length", str(len(page)))], page), delay=0.1)
        front.client_fin(delay=0.001)
    path = tmp_path / "outage.pcap"
    write_pcap(path, conversations)
    diagnoses = correlate(analyze_pcap(path))
    fronts = [d for d in diagnoses if d.attempt.client.ip == CLIENT]
    assert len(fronts) == 2
    for front in fronts:
        assert front.primary is not None and front.primary.check == "proxy_backend_refused"
        assert front.primary.found.endswith("(RST to its SYN)"), front.primary.found
        assert front.attribution.server_log is not None
        assert " SC-- .../.../.../.../... " in front.attribution.server_log
    paired = [d for d in diagnoses if "proxy_back_leg" in [f.check for f in d.findings]]
    assert sorted(d.attempt.client.port for d in paired) == [41000, 41001]


def test_haproxys_log_line_for_its_503_is_the_one_it_wrote() -> None:
    """captures/haproxy_websockets.pcap: HAProxy's 503 for a backend that was down (retries
    0), its refused connection captured too; the line rebuilt is the one HAProxy logged
    (expected.json), "..." standing for what is not on the wire."""
    from tests.helpers import matches_with_dots

    front, said = _front_and_server_said("haproxy_websockets.pcap", "127.0.0.1:18142")
    (logged,) = [line.strip() for line in said.removeprefix("haproxy: ").split(" | ")
                 if " SC-- " in line]
    assert front.attribution.server_log is not None
    assert matches_with_dots(front.attribution.server_log, logged), (
        front.attribution.server_log, logged)


def _front_and_server_said(file: str, server: str) -> tuple[Diagnosis, str]:
    """A bundled capture's one attempt to ``server``, correlated, and what the real server
    said of it (captures/expected.json's ``server_said``)."""
    import json

    repo = Path(__file__).resolve().parents[1]
    diagnoses = correlate(analyze_pcap(repo / "captures" / file))
    (front,) = [d for d in diagnoses if str(d.attempt.server) == server]
    entry = next(e for e in json.loads((repo / "captures" / "expected.json").read_text())[
        "captures"] if e["file"] == file)
    said: str = next(a for a in entry["attempts"] if a["server"] == server)["server_said"]
    return front, said


def test_caddys_log_line_for_its_refused_dial_is_the_one_it_wrote() -> None:
    """captures/caddy_websockets.pcap: Caddy's 502 for a backend that was down, and its dial
    refused, both captured; Caddy logged 'dial tcp 127.0.0.1:18173: connect: connection
    refused' (expected.json)."""
    front, said = _front_and_server_said("caddy_websockets.pcap", "127.0.0.1:18172")
    assert front.attribution.server_log is not None
    assert f'"msg":"{front.attribution.server_log}"' in said


def test_an_answer_passed_on_under_the_proxys_server_header_names_the_backend(
        tmp_path: Path) -> None:
    """Apache adds its own Server header to a backend's answer without one: alone, the front
    leg's 403 reads as Apache's; with the back leg, its author is the backend."""
    path = tmp_path / "passed.pcap"
    write_pcap(path, legs(ws(), ws(), BARE_FORBIDDEN, APACHE_FORBIDDEN))
    alone = _front(sorted(analyze_pcap(path), key=lambda d: d.attempt.first_frame))
    assert alone.attribution.server == "Apache httpd"
    front = _front(correlate(sorted(analyze_pcap(path), key=lambda d: d.attempt.first_frame)))
    assert front.attribution.server == f"the backend at {BACKEND}:8080"
    assert front.attribution.evidence[0].endswith(
        "(with no Server header); the proxy sent it on with Server: Apache/2.4.71 (Debian)")
