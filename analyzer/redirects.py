"""Redirect chains: a 3xx with a Location followed by the same client's request for it within
seconds, step by step (`redirect_chains`), and the redirects it followed out of sight (to
wss://, another host). The same walk serves the kept attempts of a spilled report, which reads
only the redirects and the windows after them (`chains`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import urlsplit

from analyzer.exchange.model import Endpoint
from analyzer.verdict import Diagnosis


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


class Hop(NamedTuple):
    """What following redirects needs of an attempt (see `Leg`)."""

    time: float
    client: Endpoint
    line: str  # "METHOD target", or "(no request)"
    target: str | None  # None: no request
    status: int | None
    location: str | None  # a 3xx response's Location
    verdict: str
    number: int  # the attempt's report number


def hop_of(d: Diagnosis) -> Hop:
    a = d.attempt
    head = a.request_head
    response = a.response_head
    location = (response.headers.get("location")
                if response is not None and 300 <= response.status < 400 else None)
    return Hop(a.time, a.client, f"{head.method} {head.target}" if head else "(no request)",
               head.target if head else None, response.status if response else None,
               location, d.verdict.value, d.number)


def redirect_chains(diagnoses: Sequence[Diagnosis]) -> list[Chain]:
    """Redirects the client followed (same client host, the Location's path, within seconds),
    and redirects it may have followed out of sight (to wss://, another host)."""
    by_time = [hop_of(d) for d in sorted(diagnoses, key=lambda d: d.attempt.time)]
    return list(chains(by_time.__getitem__, len(by_time)))


def chains(hop_at: Callable[[int], Hop], count: int,
           passed: Callable[[int], None] | None = None,
           redirect: Callable[[int], bool] | None = None) -> Iterator[Chain]:
    """The chains of the ``count`` attempts ``hop_at(0..count-1)`` (in time order, ties in
    report order). Looks at most FOLLOW_WINDOW past each redirect; ``passed(i)`` says no hop
    before ``i`` is asked for again (a spilled report lets them go); ``redirect(i)`` false
    says hop ``i`` has no Location, without reading it (a spilled report's hops are on
    disk: only the redirects and the windows after them are read)."""
    used: set[int] = set()
    for i in range(count):
        if passed is not None:
            passed(i)
        if redirect is not None and not redirect(i):
            continue
        start = hop_at(i)
        if i in used or start.location is None:
            continue
        steps, current, last = [], start, i
        numbers = [start.number]
        while (location := current.location) is not None:
            steps.append(f"{current.line} -> {current.status}")
            used.add(last)
            follow = _follower(hop_at, count, i + 1, current, location, used)
            if follow is None:
                break
            current, last = hop_at(follow), follow
            numbers.append(current.number)
        if last == i:
            yield Chain(start.client.ip, (*steps, start.location), "left the capture",
                        start.time, start.time, tuple(numbers))
        else:
            used.add(last)
            yield Chain(start.client.ip, (*steps, current.line), current.verdict, start.time,
                        current.time, tuple(numbers))


def _follower(hop_at: Callable[[int], Hop], count: int, start: int, redirect: Hop,
              location: str, used: set[int]) -> int | None:
    """The first attempt from ``start`` on that follows ``redirect`` to ``location``; the
    scan ends FOLLOW_WINDOW after the redirect (it used to run to the end of the list for
    every redirect nobody followed)."""
    since = redirect.time
    for n in range(start, count):
        hop = hop_at(n)
        if hop.time - since > FOLLOW_WINDOW:  # the expression `_follows` uses
            break
        if n not in used and _follows(redirect, hop, location):
            return n
    return None


def _follows(redirect: Hop, hop: Hop, location: str) -> bool:
    if hop.target is None or hop.client.address != redirect.client.address:
        return False
    if not 0 <= hop.time - redirect.time <= FOLLOW_WINDOW:
        return False
    # "/ws", "ws://host/ws" or "http://host:port/ws?x": compare the path and query
    parts = urlsplit(location)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return hop.target == path
