"""Correlation across attempts: the two legs of a proxy, and repeated attempts (storms).

How it works
------------
A capture taken on a proxy host (``tcpdump -i any``) holds each handshake twice: the client's
request to the proxy (the front leg) and the proxy's request to the backend (the back leg).
Legs are paired by the same Sec-WebSocket-Key when the proxy forwarded it, else by the same
path within a short time, the back leg's request starting after the front's and its response
(if any) arriving before the front's. Comparing the two copies says which hop changed the
handshake. This needs the whole capture, so it runs once all attempts are known (read), not
while streaming.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from analyzer.checks.catalogue import Finding
from analyzer.checks.facts import frames_of
from analyzer.exchange.model import Attempt
from analyzer.http.message import RequestHead
from analyzer.verdict import Diagnosis, judge
from analyzer.websocket.handshake import accept_for_key

PAIRING_WINDOW = 5.0  # seconds between a front leg's request and its back leg's request


def correlate(diagnoses: Sequence[Diagnosis]) -> list[Diagnosis]:
    """The diagnoses with proxy findings added to front legs (order and numbers kept)."""
    pairs = _pair_legs(diagnoses)
    proxy_endpoints = {front.attempt.server for front, _ in pairs}
    back_of = {id(front): back for front, back in pairs}
    back_legs = {id(back) for _, back in pairs}
    out = []
    for d in diagnoses:
        extra: list[Finding] = []
        back = back_of.get(id(d))
        if back is not None:
            extra = _compare(d.attempt, back.attempt)
        elif (d.attempt.server in proxy_endpoints and d.attempt.request_head is not None
              and d.attempt.response is not None and id(d) not in back_legs):
            extra = [Finding("proxy_answered_itself", "a backend request",
                             "no backend request matches this one",
                             frames_of(d.attempt.response))]
        if extra:
            d = replace(judge(d.attempt, d.facts, d.findings + tuple(extra), d.number),
                        origin=d.origin)
        out.append(d)
    return out


def _pair_legs(diagnoses: Sequence[Diagnosis]) -> list[tuple[Diagnosis, Diagnosis]]:
    """Each front leg with the first later attempt, within PAIRING_WINDOW, that
    `_legs_of_one_handshake` accepts and no earlier front took.

    A back leg shares the front's Sec-WebSocket-Key, or its request line and comes from the
    front's server address, so only the attempts indexed under those two keys are tried:
    comparing every pair within the window was quadratic (5,000 attempts in 15 s of a capture
    took 1.5 s, benchmarks/README.md).
    """
    candidates = [d for d in diagnoses if d.attempt.request_head is not None]
    candidates.sort(key=lambda d: d.attempt.time)
    by_key: dict[str, list[int]] = defaultdict(list)
    by_line: dict[tuple[str, str, bytes], list[int]] = defaultdict(list)
    for n, d in enumerate(candidates):
        head = d.attempt.request_head
        assert head is not None
        key = head.headers.get("sec-websocket-key")
        if key:
            by_key[key].append(n)
        by_line[(head.method, head.target, d.attempt.client.address)].append(n)
    taken: set[int] = set()
    pairs = []
    for i, front in enumerate(candidates):
        if i in taken:
            continue
        head = front.attempt.request_head
        assert head is not None
        key = head.headers.get("sec-websocket-key")
        found = [n for n in (
            _first_back_leg(candidates, i, by_key[key] if key else [], taken),
            _first_back_leg(candidates, i,
                            by_line.get((head.method, head.target,
                                         front.attempt.server.address), []), taken),
        ) if n is not None]
        if found:
            best = min(found)
            taken.update((i, best))
            pairs.append((front, candidates[best]))
    return pairs


def _first_back_leg(candidates: list[Diagnosis], i: int, indexed: list[int],
                    taken: set[int]) -> int | None:
    """The first position after ``i`` in ``indexed`` (ascending positions in ``candidates``)
    within the window whose attempt is a back leg of ``candidates[i]``'s."""
    front = candidates[i].attempt
    for j in range(bisect_right(indexed, i), len(indexed)):
        n = indexed[j]
        back = candidates[n].attempt
        if back.time - front.time > PAIRING_WINDOW:
            break
        if n not in taken and _legs_of_one_handshake(front, back):
            return n
    return None


def _legs_of_one_handshake(front: Attempt, back: Attempt) -> bool:
    f, b = front.request_head, back.request_head
    assert f is not None and b is not None
    if back.server == front.server or back.client == front.client:
        return False
    if front.response is not None and back.response is not None and (
        back.response.time > front.response.time
    ):
        return False
    key_f, key_b = f.headers.get("sec-websocket-key"), b.headers.get("sec-websocket-key")
    if key_f and key_b and key_f == key_b:
        return True
    # Without a shared key: the same request line, and the back leg must come from the host
    # the front leg went to (a proxy opens the back leg from its own address).
    return (f.method, f.target) == (b.method, b.target) and (
        back.client.address == front.server.address
    )


def _compare(front: Attempt, back: Attempt) -> list[Finding]:
    f, b = front.request_head, back.request_head
    assert isinstance(f, RequestHead) and isinstance(b, RequestHead)
    ev = frames_of(front.request) + frames_of(back.request)
    findings: list[Finding] = []
    offered_front = f.headers.has("upgrade") and "upgrade" in f.headers.tokens("connection")
    offered_back = b.headers.has("upgrade") and "upgrade" in b.headers.tokens("connection")
    if offered_front and not offered_back:
        sent = ", ".join(f"{n}: {', '.join(b.headers.all(n)) or '(none)'}"
                         for n in ("Upgrade", "Connection"))
        findings.append(Finding("proxy_stripped_upgrade", "Upgrade and Connection forwarded",
                                f"backend got {sent}", ev))
    if f.version.upper() != "HTTP/1.0" and b.version.upper() == "HTTP/1.0":
        findings.append(Finding("proxy_http10_upstream", f.version, f"backend got {b.version}",
                                ev))
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
    front_status = front.response_head.status if front.response_head else None
    back_status = back.response_head.status if back.response_head else None
    if back_status is not None and front_status is not None and front_status != back_status:
        findings.append(Finding("proxy_rewrote_response", f"{back_status} from the backend",
                                f"{front_status} to the client",
                                frames_of(back.response) + frames_of(front.response)))
    return findings


@dataclass(frozen=True, slots=True)
class Storm:
    """Attempts repeated by one client to one endpoint with the same outcome."""

    count: int
    client: str  # client IP
    server: str
    request: str
    verdict: str
    reason: str | None
    first: float
    last: float


# client IP, server endpoint, request line, verdict, primary reason
StormKey = tuple[str, str, str, str, str | None]


def storm_key(d: Diagnosis) -> StormKey:
    """What repeated attempts have in common: same client host, endpoint, request, outcome."""
    a = d.attempt
    head = a.request_head
    request = f"{head.method} {head.target}" if head else "(TCP only)"
    reason = d.primary.check if d.primary else None
    return (a.client.ip, str(a.server), request, d.verdict.value, reason)


def storms(diagnoses: Sequence[Diagnosis], minimum: int = 3) -> list[Storm]:
    """Groups of at least ``minimum`` like attempts, largest first (reconnect loops, scans)."""
    groups: dict[StormKey, list[Diagnosis]] = defaultdict(list)
    for d in diagnoses:
        groups[storm_key(d)].append(d)
    out = [
        Storm(len(ds), key[0], key[1], key[2], key[3], key[4],
              min(d.attempt.time for d in ds), max(d.attempt.time for d in ds))
        for key, ds in groups.items() if len(ds) >= minimum
    ]
    return sorted(out, key=lambda s: (-s.count, s.first))


@dataclass(frozen=True, slots=True)
class Chain:
    """A redirect followed by the client: the attempts it took, and where it ended."""

    client: str  # client IP
    steps: tuple[str, ...]  # "GET /old -> 302", ..., the last request line
    verdict: str  # the verdict of the last attempt, or "left the capture" (e.g. to wss://)
    first: float
    last: float
    numbers: tuple[int, ...] = ()  # the attempts of the chain (report numbers)


FOLLOW_WINDOW = 10.0  # seconds between a redirect and the request that follows it


def redirect_chains(diagnoses: Sequence[Diagnosis]) -> list[Chain]:
    """Redirects the client followed (same client host, the Location's path, within seconds),
    and redirects it may have followed out of sight (to wss://, another host)."""
    by_time = sorted(diagnoses, key=lambda d: d.attempt.time)
    used: set[int] = set()
    chains = []
    for i, start in enumerate(by_time):
        if id(start) in used or _location(start) is None:
            continue
        steps, current, last = [], start, start
        numbers = [start.number]
        while (location := _location(current)) is not None:
            steps.append(f"{_request_line(current)} -> {current.attempt.response_head.status}"
                         if current.attempt.response_head else _request_line(current))
            used.add(id(current))
            follow = _follower(by_time, i + 1, current, location, used)
            if follow is None:
                break
            current = last = follow
            numbers.append(follow.number)
        if last is start:
            location = _location(start) or ""
            chains.append(Chain(start.attempt.client.ip, (*steps, location),
                                "left the capture", start.attempt.time, start.attempt.time,
                                tuple(numbers)))
        else:
            used.add(id(last))
            chains.append(Chain(start.attempt.client.ip, (*steps, _request_line(last)),
                                last.verdict.value, start.attempt.time, last.attempt.time,
                                tuple(numbers)))
    return chains


def _follower(by_time: list[Diagnosis], start: int, redirect: Diagnosis, location: str,
              used: set[int]) -> Diagnosis | None:
    """The first attempt from ``by_time[start:]`` that follows ``redirect`` to ``location``;
    the scan ends FOLLOW_WINDOW after the redirect (it used to run to the end of the list for
    every redirect nobody followed)."""
    since = redirect.attempt.time
    for n in range(start, len(by_time)):
        d = by_time[n]
        if d.attempt.time - since > FOLLOW_WINDOW:  # the expression `_follows` uses
            break
        if id(d) not in used and _follows(redirect, d, location):
            return d
    return None


def _location(d: Diagnosis) -> str | None:
    head = d.attempt.response_head
    if head is None or not 300 <= head.status < 400:
        return None
    return head.headers.get("location")


def _request_line(d: Diagnosis) -> str:
    head = d.attempt.request_head
    return f"{head.method} {head.target}" if head else "(no request)"


def _follows(redirect: Diagnosis, d: Diagnosis, location: str) -> bool:
    a, b = redirect.attempt, d.attempt
    head = b.request_head
    if head is None or b.client.address != a.client.address:
        return False
    if not 0 <= b.time - a.time <= FOLLOW_WINDOW:
        return False
    # "/ws", "ws://host/ws" or "http://host:port/ws?x": compare the path and query
    parts = urlsplit(location)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return head.target == path
