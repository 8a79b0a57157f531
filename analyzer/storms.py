"""Storms: attempts repeated by one client to one endpoint with the same outcome (reconnect
loops, scans), grouped for the summary, whole (`storms`) or counted by a hash of their key
where the attempts are kept on disk or decided in other processes (report/kept.py)."""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from analyzer.verdict import Diagnosis


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


def storm_hash(key: StormKey) -> int:
    """A hash of a storm key that every process agrees on (crc32), for a spilled report's
    count of repeated keys (report/kept.py): the record is made where the attempt is decided,
    a `--jobs` worker or a cluster's."""
    return zlib.crc32("\x1f".join(["\x00" if part is None else part for part in key]).encode(
        "utf-8", "surrogatepass"))  # (a lone surrogate from the capture)


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
