"""What several ends say together: a server that ended many connections at one moment (a
restart), many connections ended at one age (a maximum lifetime), and the "Closed:" summary
lines that group like ends ("37 WebSockets to /ws were closed by 10.0.0.5 60.0 s after their
last frame")."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from analyzer.checks.catalogue import Finding
from analyzer.life.model import FIN, RST, Lifetime

MASS_MINIMUM = 3  # connections ended together before it is a mass end
MASS_WINDOW_S = 1.0  # "the same moment"
AGE_TOLERANCE_S = 1.0  # "the same age" (or 2 % of it, whichever is larger)
AGE_MINIMUM_S = 10.0  # shorter lives are not called a maximum lifetime
GROUP_MINIMUM = 2  # ends alike before a "Closed:" line is printed


@dataclass(frozen=True, slots=True)
class End:
    """One ended connection as the group rules see it."""

    index: int  # the caller's handle (its place in a list)
    server: str  # the server's address (no port)
    target: str
    lifetime: Lifetime


def _abnormal(life: Lifetime) -> bool:
    return life.websocket and life.how in (FIN, RST) and life.close_code is None


def group_findings(ends: Sequence[End]) -> dict[int, list[Finding]]:
    """Findings to add, by End.index: `server_reset_many` for the ends that fell within
    MASS_WINDOW_S of each other at one server (by its side, without a Close frame), and
    `max_lifetime_reached` for ends at one server whose ages agree while their end times do
    not."""
    out: dict[int, list[Finding]] = {}
    by_server: dict[str, list[End]] = {}
    for end in ends:
        if end.lifetime.ended:
            by_server.setdefault(end.server, []).append(end)
    for server, group in by_server.items():
        closed = sorted((e for e in group if _abnormal(e.lifetime)
                         and e.lifetime.closed_by == "server"),
                        key=lambda e: e.lifetime.end_time)
        for run in _runs(closed, lambda e: e.lifetime.end_time, MASS_WINDOW_S):
            ages = [e.lifetime.duration_s for e in run]
            if len(run) < MASS_MINIMUM or max(ages) - min(ages) < MASS_WINDOW_S:
                continue  # ended together, but they also started together: not a restart
            how = "reset" if all(e.lifetime.how == RST for e in run) else "closed"
            for e in run:
                out.setdefault(e.index, []).append(Finding(
                    "server_reset_many", "connections that end one by one",
                    f"{server} {how} {len(run)} connections within {MASS_WINDOW_S:.0f} s "
                    f"(ages {min(ages):.1f}-{max(ages):.1f} s)",
                    (e.lifetime.end_frame,) if e.lifetime.end_frame else (), side="server"))
        # busy until their end (a connection silent for most of its life is an idle
        # timeout's, whose age follows from its silence)
        aged = sorted((e for e in group if _abnormal(e.lifetime)
                       and e.lifetime.duration_s >= AGE_MINIMUM_S
                       and e.lifetime.idle_before_end_s < 0.5 * e.lifetime.duration_s),
                      key=lambda e: e.lifetime.duration_s)
        for run in _runs(aged, lambda e: e.lifetime.duration_s, AGE_TOLERANCE_S,
                         relative=0.02):
            times = [e.lifetime.end_time for e in run]
            if len(run) < MASS_MINIMUM or max(times) - min(times) < MASS_WINDOW_S:
                continue
            age = sum(e.lifetime.duration_s for e in run) / len(run)
            for e in run:
                out.setdefault(e.index, []).append(Finding(
                    "max_lifetime_reached", "connections that last as long as they are used",
                    f"{len(run)} connections to {server} ended {age:.1f} s after their switch, "
                    f"at different times",
                    (e.lifetime.end_frame,) if e.lifetime.end_frame else (),
                    side=e.lifetime.closed_by))
    return out


def _runs(items: list[End], get: Callable[[End], float], width: float,
          relative: float = 0.0) -> list[list[End]]:
    """Sorted ``items`` cut where two neighbours' values differ by more than ``width``."""
    runs: list[list[End]] = []
    for item in items:
        v = get(item)
        if runs:
            last = get(runs[-1][-1])
            if v - last <= max(width, relative * v):
                runs[-1].append(item)
                continue
        runs.append([item])
    return runs


@dataclass(frozen=True, slots=True)
class ClosedGroup:
    """Connections to one target that one side closed alike (a group rule's finding)."""
    count: int
    target: str
    closer: str  # the address that closed
    idle_s: float  # their mean silence before the end
    how: str

    def line(self) -> str:
        kind = "WebSockets" if self.count > 1 else "WebSocket"
        return (f"Closed: {self.count} {kind} to {self.target} were closed by {self.closer} "
                f"{self.idle_s:.1f} s after their last frame ({self.how}, no Close frame)")


class ClosedTally:
    """Abnormal ends counted by (target, closer, how, whole seconds of silence): what the
    "Closed:" lines need, bounded like the `Repeated:` groups (the smaller half is forgotten
    past ``most`` keys)."""

    __slots__ = ("buckets", "most")

    def __init__(self, most: int = 4096) -> None:
        self.buckets: dict[tuple[str, str, str, int], list[float]] = {}  # [count, idle sum]
        self.most = most

    def add(self, target: str, closer: str, idle: float, how: str) -> None:
        key = (target, closer, how, round(idle))
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) >= self.most:
                ranked = sorted(self.buckets, key=lambda k: self.buckets[k][0])
                for old in ranked[: len(ranked) // 2]:
                    del self.buckets[old]
            bucket = self.buckets[key] = [0, 0.0]
        bucket[0] += 1
        bucket[1] += idle

    def groups(self) -> list[ClosedGroup]:
        out = [ClosedGroup(int(n), target, closer, total / n, how)
               for (target, closer, how, _), (n, total) in self.buckets.items()
               if n >= GROUP_MINIMUM]
        return sorted(out, key=lambda g: (-g.count, g.target, g.closer))


def abnormal_end(life: Lifetime) -> bool:
    """An end that the "Closed:" lines group: a FIN or RST without a Close frame."""
    return _abnormal(life)
