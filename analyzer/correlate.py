"""Correlation across attempts: the two legs of a proxy (repeated attempts are in storms.py,
redirects followed in redirects.py).

How it works
------------
A capture taken on a proxy host (``tcpdump -i any``) holds each handshake twice: the client's
request to the proxy (the front leg) and the proxy's request to the backend (the back leg).
Legs are paired by the same Sec-WebSocket-Key when the proxy forwarded it, else by the same
path within a short time, the back leg's request starting after the front's and its response
(if any) arriving before the front's. Comparing the two copies says which hop changed the
handshake. A back leg may also have no request: the proxy's connection to its backend was
refused (a SYN answered by RST, from the proxy's address after the front's request and before
its answer), and the proxy answered the client 502 or 503 itself; that refusal is the cause.
This needs the whole capture, so it runs once all attempts are known (read), not while
streaming.

Independent captures (``read --jobs`` or ``--scheduler`` over several files: one per host) may
hold the two legs of one handshake on two hosts whose clocks disagree. Between legs of two
different files (`Leg.source`) pairing then tolerates ``skew`` seconds (CLOCK_SKEW): the back
leg's request may appear that much before the front's, its response that much after, and the
window grows by as much. Such legs pair only by the same Sec-WebSocket-Key (the same request
line within a second of skew is ambiguous), and which leg is the front is read from the
addresses (the back leg comes from the host the front leg went to) before the two clocks.
"""

from __future__ import annotations

import re
import zlib
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any, NamedTuple

from analyzer.checks.catalogue import Finding
from analyzer.exchange.model import CONNECTION_ENDED, Attempt, AttemptKind, Endpoint
from analyzer.proxy_findings import (
    answered_itself,
    back_leg,
    back_leg_findings,
    compare_legs,
    without_disproved,
)
from analyzer.remembered import digest_key
from analyzer.verdict import Diagnosis, judge

PAIRING_WINDOW = 5.0  # seconds between a front leg's request and its back leg's request
# Clocks of two hosts whose captures are read as independent ones: NTP keeps servers within
# milliseconds, a host without it drifts seconds a day; one second covers the first.
CLOCK_SKEW = 1.0
# What a proxy answers when its connection to the backend was refused: nginx, Traefik and
# Caddy 502, HAProxy and Envoy 503
GATEWAY_ERRORS = frozenset((502, 503))


def correlate(diagnoses: Sequence[Diagnosis], skew: float = 0.0,
              aside: Sequence[Diagnosis] = ()) -> list[Diagnosis]:
    """The diagnoses with proxy findings added to front legs (order and numbers kept);
    ``skew``: the clock difference tolerated between legs of two files (see above);
    ``aside``: refused connections the report does not list (without --tcp), which may
    still be a proxy's back legs (only ``diagnoses`` come back)."""
    pairs = _pair_legs([*diagnoses, *aside] if aside else diagnoses, skew)
    proxy_endpoints = {front.attempt.server for front, _ in pairs}
    back_of = backs_by_front([(id(front), back) for front, back in pairs])
    front_of = {id(back): front for front, back in pairs}
    out = []
    for d in diagnoses:
        extra: list[Finding] = []
        backs, front = back_of.get(id(d), []), front_of.get(id(d))
        back = backs[0] if backs else None
        if back is not None:
            extra = compare_legs(d.attempt, back.attempt, retries=len(backs) - 1)
        if front is not None:
            extra.append(back_leg(front, d.attempt))
        elif (back is None and d.attempt.server in proxy_endpoints
              and d.attempt.request_head is not None and d.attempt.response is not None
              and not is_tunnel(d.attempt.request_head.method)):
            extra = [answered_itself(d.attempt)]
        if extra:
            findings = back_leg_findings(d, front) if front is not None else d.findings
            if back is not None:
                findings = without_disproved(findings, d.attempt, back.attempt)
            d = replace(judge(d.attempt, d.facts, findings + tuple(extra), d.number),
                        origin=d.origin, lifetime=d.lifetime)
        out.append(d)
    return out


def is_tunnel(method: str) -> bool:
    """A CONNECT (a forward proxy's tunnel: its 2xx means the proxy did reach the target,
    through a connection that is no back leg of a request; its refusals are its own findings,
    checks/response.py), never "answered itself". (An RFC 8441 extended CONNECT is a GET on
    a leg: `leg_of`.)"""
    return method.upper() == "CONNECT"


def backs_by_front(pairs: Iterable[tuple[Any, Any]]) -> dict[Any, list[Any]]:
    """Each front's back legs from `pair_legs`' pairs, in order: one, or a refused
    connection and the proxy's retries refused after it."""
    backs: dict[Any, list[Any]] = {}
    for front, back in pairs:
        backs.setdefault(front, []).append(back)
    return backs


class Leg(NamedTuple):
    """What pairing needs of an attempt with a request (a few hundred bytes, so that a sorted
    report over a spill file can pair a million attempts: analyzer/report/kept.py)."""

    time: float
    key: str | None  # Sec-WebSocket-Key as sent
    line: tuple[str, str]  # method, target (a long one by its digest: MAX_KEPT_TARGET)
    client: Endpoint
    server: Endpoint
    response_time: float | None  # None: no response
    source: str | None = None  # the file, when several were read
    ended: float | None = None  # when its connection ended, if before its attempt was decided
    status: int | None = None  # its answer's status (a proxy's 502 may have a refused back leg)
    # a connection refused (its SYN answered by RST): no request, and a back leg only (its
    # `line` is empty)
    refused: bool = False


# A longer target is compared by its digest: pairing a spilled report's legs held their whole
# targets (72 MB traced for 6,000 attempts with 8 KB paths, benchmarks/memory.py --cases long).
MAX_KEPT_TARGET = 256


def is_refused(attempt: Attempt) -> bool:
    """A connection refused (a SYN answered by RST): a back leg when a proxy opened it."""
    return attempt.kind is AttemptKind.TCP and attempt.tcp.server_rst is not None


def leg_of(attempt: Attempt, source: str | None = None) -> Leg | None:
    head = attempt.request_head
    if head is None:
        if is_refused(attempt):
            return Leg(attempt.time, None, ("", ""), attempt.client, attempt.server, None,
                       source, attempt.tcp.end_time, None, True)
        return None
    target = head.target if len(head.target) <= MAX_KEPT_TARGET else digest_key(head.target)
    tcp = attempt.tcp
    # An RFC 8441 extended CONNECT is a GET with Upgrade on an HTTP/1.1 leg: proxies convert
    # one into the other (HAProxy's h2 front to its HTTP/1.1 backends)
    method = "GET" if head.method == "CONNECT" and head.headers.has(":protocol") else (
        head.method)
    response = attempt.response_head
    return Leg(attempt.time, head.headers.get("sec-websocket-key"), (method, target),
               attempt.client, attempt.server,
               attempt.response.time if attempt.response is not None else None, source,
               tcp.end_time if tcp.end_reason in CONNECTION_ENDED else None,
               response.status if response is not None else None)


def source_of(d: Diagnosis) -> str | None:
    return d.origin[0] if d.origin is not None else None


def _pair_legs(diagnoses: Sequence[Diagnosis],
               skew: float = 0.0) -> list[tuple[Diagnosis, Diagnosis]]:
    with_legs = [(d, leg) for d in diagnoses if (leg := leg_of(d.attempt, source_of(d)))]
    with_legs.sort(key=lambda pair: pair[0].attempt.time)
    return [(with_legs[front][0], with_legs[back][0])
            for front, back in pair_legs((leg for _, leg in with_legs), skew)]


def pair_legs(legs: Iterable[Leg], skew: float = 0.0) -> Iterator[tuple[int, int]]:
    """Pairs (front, back) of positions in ``legs`` (attempts with a request, in time order,
    ties in report order): each front leg with the first later attempt, within
    PAIRING_WINDOW, that `_legs_of_one_handshake` accepts and no earlier front took. A front
    whose back leg is a refused connection is paired, after it, with the proxy's retries
    refused alike (`backs_by_front` gathers them).

    A back leg shares the front's Sec-WebSocket-Key, or its request line and comes from the
    front's server address, so only the attempts indexed under those two keys are tried:
    comparing every pair within the window was quadratic (5,000 attempts in 15 s of a capture
    took 1.5 s, benchmarks/README.md). Only the legs within the window of the front being
    paired are held (indexed by position), so memory follows the busiest 5 s, not the run.

    With ``skew`` (legs of two files, see the module's docstring) the window is longer by
    ``skew``, and the legs that had their turn within the last ``skew`` seconds are kept
    (`_Earlier`) for a front whose back leg's clock was behind.
    """
    source = iter(legs)
    earlier = _Earlier(skew)
    window: dict[int, Leg] = {}
    by_key: dict[str, deque[int]] = defaultdict(deque)
    by_line: dict[tuple[str, str, bytes], deque[int]] = defaultdict(deque)
    # refused connections (back legs only) by the address they came from
    by_refused: dict[bytes, deque[int]] = defaultdict(deque)
    taken: set[int] = set()
    waiting: list[Leg] = []  # fronts answered 502 or 503, for `_retries`
    loaded = 0
    upcoming = next(source, None)
    i = 0
    while True:
        if i == loaded:  # the window is empty: the next leg starts it
            if upcoming is None:
                return
            window[loaded], loaded, upcoming = upcoming, loaded + 1, next(source, None)
            _index(window[i], i, by_key, by_line, by_refused)
        front = window[i]
        # every later leg within the window of this front (times ascend, so a contiguous run)
        while upcoming is not None and not upcoming.time - front.time > PAIRING_WINDOW + skew:
            window[loaded] = upcoming
            _index(upcoming, loaded, by_key, by_line, by_refused)
            loaded, upcoming = loaded + 1, next(source, None)
        # this leg leaves the indexes (it is the oldest in its queues)
        if front.key:
            _forget(by_key, front.key, i)
        if front.refused:
            _forget(by_refused, front.client.address, i)
        else:
            _forget(by_line, (*front.line, front.client.address), i)
        if i in taken:
            taken.discard(i)
        elif not front.refused:  # (a refused connection has no back leg)
            found = [n for n in (
                _first_back_leg(window, front, by_key.get(front.key) if front.key else None,
                                taken, skew),
                _first_back_leg(window, front,
                                by_line.get((*front.line, front.server.address)), taken, skew),
            ) if n is not None]
            if not found and front.status in GATEWAY_ERRORS:
                # (a back leg with a request first: the proxy may have been refused by one
                # backend, then tried the next)
                refused = _first_back_leg(window, front, by_refused.get(front.server.address),
                                          taken)
                found = [refused] if refused is not None else []
            best = min(found) if found else earlier.back_leg_of(front)
            if best is not None:
                taken.add(best)
                earlier.pair(i, best)
                yield i, best
                if best in window and window[best].refused:
                    yield from ((i, n) for n in _retries(window, i, loaded, by_refused, taken,
                                                         waiting))
            if front.status in GATEWAY_ERRORS and front.response_time is not None:
                waiting.append(front)
        earlier.add(i, front)
        del window[i]
        i += 1


# --- which legs may pair, from hashes (a spilled report reads only those legs) -----------------

_HINT_BITS = 1 << 21  # bits of each bitmap `may_pair` fills: 256 KB (the four: 1 MB)
_HINT_MASK = _HINT_BITS - 1


def pairing_hints(leg: Leg | None) -> tuple[int, int, int, int]:
    """Hashes of what `pair_legs` looks a leg up by, 32 bits each, never 0 (0: no such
    value, or no leg): its Sec-WebSocket-Key, its request line with its server's address (a
    front leg's way to its back leg) and with its client's (a back leg's), and the address a
    refused connection came from, or that a proxy's 502 or 503 came from (the two sides of a
    refused back leg: `GATEWAY_ERRORS`). By crc32, which every process agrees on (a `--jobs`
    worker or a cluster's makes them, the parent compares them)."""
    if leg is None:
        return 0, 0, 0, 0
    if leg.refused:  # (found only through the fourth: the address it came from)
        return 0, 0, 0, zlib.crc32(leg.client.address) or 1
    line = zlib.crc32(_utf8("\x1f".join(leg.line)))
    return ((zlib.crc32(_utf8(leg.key)) or 1) if leg.key else 0,
            zlib.crc32(leg.server.address, line) or 1,
            zlib.crc32(leg.client.address, line) or 1,
            (zlib.crc32(leg.server.address) or 1) if leg.status in GATEWAY_ERRORS else 0)


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # (a lone surrogate from the capture)


def may_pair(keys: Iterable[int], fronts: Iterable[int], backs: Iterable[int],
             refusals: Iterable[int], count: int) -> bytearray:
    """1 for each of ``count`` legs (`pairing_hints` of each, in four sequences read twice)
    that `pair_legs` could pair: its key is another leg's, or its line and server address
    are another's line and client address, or the other way round, or its refusal hash is
    another's (a refused connection from the address of a proxy's 502 or 503). Any other leg
    is found by nobody and finds nobody (`_first_back_leg` looks only under those keys;
    between two files, `_Earlier` pairs by the key only), so `pair_legs` over the legs marked
    1 gives the same pairs. The hashes go to bitmaps of a fixed size (keys and refusals share
    theirs): a collision only marks a leg more."""
    seen, twice, front_bits, back_bits = (bytearray(_HINT_BITS >> 3) for _ in range(4))
    for key, front, back, refusal in zip(keys, fronts, backs, refusals, strict=True):
        for shared in (key, refusal):
            if shared:
                at, bit = (shared & _HINT_MASK) >> 3, 1 << (shared & 7)
                if seen[at] & bit:
                    twice[at] |= bit
                seen[at] |= bit
        if front:
            front_bits[(front & _HINT_MASK) >> 3] |= 1 << (front & 7)
            back_bits[(back & _HINT_MASK) >> 3] |= 1 << (back & 7)
    marks = bytearray(count)
    for n, (key, front, back, refusal) in enumerate(
            zip(keys, fronts, backs, refusals, strict=True)):
        if (front and ((key and twice[(key & _HINT_MASK) >> 3] & 1 << (key & 7))
                       or back_bits[(front & _HINT_MASK) >> 3] & 1 << (front & 7)
                       or front_bits[(back & _HINT_MASK) >> 3] & 1 << (back & 7))
                or refusal and twice[(refusal & _HINT_MASK) >> 3] & 1 << (refusal & 7)):
            marks[n] = 1
    return marks


class _Earlier:
    """The legs whose turn came within the last ``skew`` seconds, for a front of another file
    whose back leg's clock was behind (a few legs: those of one second)."""

    def __init__(self, skew: float) -> None:
        self.skew = skew
        self.legs: deque[tuple[int, Leg]] = deque()
        self.paired: set[int] = set()  # positions in a pair (as front or back leg)

    def add(self, n: int, leg: Leg) -> None:
        if self.skew > 0:
            self.legs.append((n, leg))

    def pair(self, front: int, back: int) -> None:
        if self.skew > 0:
            self.paired.update((front, back))

    def back_leg_of(self, front: Leg) -> int | None:
        """The latest earlier leg of another file that is a back leg of ``front``."""
        legs = self.legs
        if not self.skew:
            return None
        while legs and front.time - legs[0][1].time > self.skew:
            self.paired.discard(legs.popleft()[0])
        for n, leg in reversed(legs):
            if (n not in self.paired and _other_files(front, leg)
                    and _legs_of_one_handshake(front, leg, self.skew)):
                return n
        return None


def _other_files(a: Leg, b: Leg) -> bool:
    return a.source is not None and b.source is not None and a.source != b.source


def _forget(index: dict[Any, deque[int]], name: Any, n: int) -> None:
    queue = index[name]
    first = queue.popleft()
    assert first == n
    if not queue:
        del index[name]


def _index(leg: Leg, n: int, by_key: dict[str, deque[int]],
           by_line: dict[tuple[str, str, bytes], deque[int]],
           by_refused: dict[bytes, deque[int]]) -> None:
    if leg.refused:
        by_refused[leg.client.address].append(n)
        return
    if leg.key:
        by_key[leg.key].append(n)
    by_line[(*leg.line, leg.client.address)].append(n)


def _retries(window: dict[int, Leg], i: int, loaded: int, by_refused: dict[bytes, deque[int]],
             taken: set[int], waiting: list[Leg]) -> list[int]:
    """The proxy's retries for front ``i``, whose first refused back leg is paired: the
    later refusals from its address before its answer (HAProxy's `retries`, 3 by default,
    a second apart), taken into ``taken``. None when another front answered 502 or 503 by
    the same proxy waited then too (``waiting``, the earlier ones; later ones are in the
    window): during an outage every client's retries interleave, and which are whose cannot
    be told, so none is claimed (the front's count is then not given)."""
    front = window[i]
    found = [n for n in by_refused.get(front.server.address, ())
             if n not in taken and _legs_of_one_handshake(front, window[n])]
    if not found:
        return []
    assert front.response_time is not None  # (a refused back leg pairs only then)
    waiting[:] = [leg for leg in waiting if leg.response_time is not None
                  and leg.response_time >= front.time]
    others = [leg for leg in waiting if leg.server.address == front.server.address]
    for n in range(i + 1, loaded):  # (the later fronts that waited with it: in time order)
        leg = window.get(n)
        if leg is None or leg.time > front.response_time:
            break
        if not leg.refused and leg.status in GATEWAY_ERRORS and (
                leg.server.address == front.server.address):
            others.append(leg)
    if any(other.time <= window[n].time <= (other.response_time or 0.0)
           for other in others for n in found):
        return []
    taken.update(found)
    return found


def _may_be_target(front: Leg, back: Leg) -> bool:
    """Whether a refused connection may be the one a forward proxy opened for ``front``'s
    CONNECT: to its target, when the target is an address (a name was resolved: any)."""
    method, target = front.line
    if method != "CONNECT":
        return True
    host, _, port = target.rpartition(":")
    host = host.strip("[]")
    if not port.isdigit() or not (_IPV4.fullmatch(host) or ":" in host):
        return True
    return back.server.port == int(port) and back.server.ip == host


_IPV4 = re.compile(r"[0-9]+(\.[0-9]+){3}")


def _first_back_leg(window: dict[int, Leg], front: Leg, indexed: deque[int] | None,
                    taken: set[int], skew: float = 0.0) -> int | None:
    """The first position in ``indexed`` (ascending, all after the front's and within its
    window) whose leg is a back leg of ``front``."""
    for n in indexed or ():
        back = window[n]
        if skew and back.time - front.time > PAIRING_WINDOW and not _other_files(front, back):
            continue  # the window is longer by the skew only between two files
        if n not in taken and _legs_of_one_handshake(front, back, skew):
            return n
    return None


def _legs_of_one_handshake(front: Leg, back: Leg, skew: float = 0.0) -> bool:
    if back.server == front.server or back.client == front.client or front.refused:
        return False
    tolerance = skew if _other_files(front, back) else 0.0
    if back.refused:
        # the proxy's connection to its backend, refused: from the host the front leg went
        # to, after the front's request and before the proxy's own answer (502, 503), within
        # one capture (a refusal carries no key to pair across clocks by)
        return (not tolerance and front.status in GATEWAY_ERRORS
                and front.response_time is not None
                and back.client.address == front.server.address
                and front.time <= back.time <= front.response_time
                and _may_be_target(front, back))
    if tolerance and front.client.address == back.server.address != back.client.address:
        return False  # the front leg comes from the other's server: it is the back leg
    if front.response_time is not None and back.response_time is not None and (
        back.response_time > front.response_time + tolerance
    ):
        return False
    if front.key and back.key and front.key == back.key:
        return True
    if tolerance:
        # Between two clocks the key is the only identity: the same request line within a
        # second of skew is ambiguous as soon as clients come more often than that.
        return False
    # Without a shared key: the same request line, and the back leg must come from the host
    # the front leg went to (a proxy opens the back leg from its own address), while the
    # front's connection was open (a proxy forwards a handshake it holds: on one host's
    # loopback every server shares the address, and a later request of the same line to
    # another server paired with a front that had closed unanswered).
    if front.ended is not None and back.time > front.ended:
        return False
    # ... and before the front's answer: a proxy that answers before asking the backend
    # answered itself (daphne's 405 to a POST, then the same POST to another local server
    # 150 ms later, paired, in the sweep of the thirtieth session)
    if front.response_time is not None and back.time > front.response_time:
        return False
    return front.line == back.line and back.client.address == front.server.address
