"""Reports that grow while a capture runs: a table printed row by row, and running counts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from analyzer.http.message import RequestHead
from analyzer.life.groups import ClosedTally, End, abnormal_end, group_findings
from analyzer.life.model import Ended
from analyzer.report.clock import UTC_CLOCK, Clock
from analyzer.report.fields import endpoint_text
from analyzer.report.render import (
    apart_line,
    capture_fields,
    capture_lines,
    closed_fields,
    closed_lines,
    render_csv,
    repeated_fields,
    repeated_lines,
    warning_texts,
)
from analyzer.report.safe import safe_text
from analyzer.source.frame import CaptureWarning
from analyzer.storms import Storm, StormKey, storm_key
from analyzer.values import RunStats
from analyzer.verdict import Diagnosis, Verdict


class NumberSet:
    """A set of attempt numbers (1, 2, ...) as one bit each: the streamed report's attempts
    printed while their connection lives on (a set of ints was ≈ 74 bytes an entry)."""

    __slots__ = ("_bits",)

    def __init__(self) -> None:
        self._bits = bytearray()

    def add(self, number: int) -> None:
        byte = number >> 3
        if byte >= len(self._bits):
            self._bits.extend(bytes(byte + 1 - len(self._bits)))
        self._bits[byte] |= 1 << (number & 7)

    def discard(self, number: int) -> None:
        if number >> 3 < len(self._bits):
            self._bits[number >> 3] &= ~(1 << (number & 7)) & 0xFF

    def __contains__(self, number: int) -> bool:
        byte = number >> 3
        return byte < len(self._bits) and bool(self._bits[byte] >> (number & 7) & 1)


def csv_head() -> str:
    return render_csv([]).rstrip("\r\n")


def csv_line(diagnosis: Diagnosis) -> str:
    """One attempt as one CSV record (render_csv's, so quoting and cleaning are the same)."""
    text = render_csv([diagnosis])
    return text[text.index("\n") + 1:].rstrip("\r\n")


# Groups of like attempts (storms) a streamed run keeps: a live run sees endless distinct
# clients and query strings, and each group costs its key. Past the bound the less repeated
# half is forgotten (its attempts stay counted by verdict and reason); a storm keeps growing
# its own group, so it is reported with its exact count unless it had been forgotten while it
# was still small.
MAX_GROUPS = 4096
MAX_GROUP_REQUEST = 200  # characters of the request line a group key keeps
# Abnormal ends a streamed run keeps for the rules over several ends (life/groups.py), the
# most recent ones: ~200 bytes each. A mass reset falls within a second, so only a maximum
# lifetime seen over more than this many abnormal ends can be missed.
MAX_GROUP_ENDS = 10_000


def group_key(d: Diagnosis) -> StormKey:
    """`storms.storm_key` with its request clipped to MAX_GROUP_REQUEST characters, the
    endpoint's text remembered and the properties read once (`group_key_plain` is the twin,
    tests/test_stream.py): every listed attempt of a streamed run is grouped."""
    a = d.attempt
    request = a.request
    head = request.head if request is not None else None
    line = (f"{head.method} {head.target}"[:MAX_GROUP_REQUEST]
            if isinstance(head, RequestHead) else "(TCP only)")
    findings = d.findings
    return (a.client.ip, endpoint_text(a.server), line, d.verdict._value_,
            findings[0].check if findings else None)


def group_key_plain(d: Diagnosis) -> StormKey:
    """`group_key` as it was written first: `storm_key`, its request clipped."""
    client, server, request, verdict, reason = storm_key(d)
    return client, server, request[:MAX_GROUP_REQUEST], verdict, reason


# (an Enum member read off its class costs ≈ 0.1 µs in Python 3.11, ≈ 1 k instructions: read
# once here, for the test every attempt takes)
_SUCCEEDED = Verdict.SUCCEEDED.value


@dataclass(slots=True)
class Tally:
    """Counts by verdict and primary reason: the summary of a run that keeps no attempt."""

    attempts: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    groups: dict[StormKey, list[float]] = field(default_factory=dict)  # [count, first, last]
    max_groups: int = MAX_GROUPS
    forgotten: int = 0  # groups dropped to stay within max_groups
    # connection attempts that never reached HTTP, not listed (no --tcp), by verdict
    apart: Counter[str] = field(default_factory=Counter)
    closed: ClosedTally = field(default_factory=ClosedTally)  # abnormal ends alike
    ends: list[End] = field(default_factory=list)  # abnormal ends, for the group rules

    def ended(self, ended: Ended, counted: bool) -> None:
        """An attempt's connection ended after its watch window: its verdict is the final one
        (``counted``: its decided line was counted, so that count moves), and an abnormal end
        joins the `Closed:` groups."""
        if counted:
            self.verdicts[ended.decided.value] -= 1
            if not self.verdicts[ended.decided.value]:
                del self.verdicts[ended.decided.value]
        else:
            self.attempts += 1
        self.verdicts[ended.verdict.value] += 1
        if ended.primary is not None and ended.verdict is not ended.decided:
            self.reasons[ended.primary.check] += 1
        life = ended.lifetime
        if abnormal_end(life):
            self.closed.add(ended.target, life.closer.ip if life.closer else "?",
                            life.idle_before_end_s, life.how)
            if len(self.ends) >= MAX_GROUP_ENDS:
                del self.ends[: MAX_GROUP_ENDS // 2]
            self.ends.append(End(ended.number, ended.server.ip, ended.target, life))

    def grouped(self) -> list[tuple[str, str, list[int]]]:
        """What the rules over several ends found (`server_reset_many`,
        `max_lifetime_reached`): (catalogue id, its text, the attempts' numbers), the lines
        were printed before the rule could be known, so the summary says it (sorted reports
        put the finding on each attempt instead)."""
        out: dict[tuple[str, str], list[int]] = {}
        for number, findings in group_findings(self.ends).items():
            for finding in findings:
                out.setdefault((finding.check, finding.found), []).append(number)
        return sorted(((check, found, sorted(numbers))
                       for (check, found), numbers in out.items()),
                      key=lambda g: (g[2][0], g[0]))

    def add(self, diagnosis: Diagnosis) -> None:
        # (`.value`: a property, ≈ 1 k instructions more than `_value_`)
        self.count(diagnosis.verdict._value_, group_key(diagnosis), diagnosis.attempt.time)

    def count(self, verdict: str, key: StormKey, when: float) -> None:
        """`add` from what it reads: the verdict's value, the attempt's `group_key` (whose
        last part is its primary reason) and its time (a `Digest` carries them)."""
        self.attempts += 1
        self.verdicts[verdict] += 1
        reason = key[4]
        if reason is not None and verdict != _SUCCEEDED:
            self.reasons[reason] += 1
        group = self.groups.get(key)
        if group is None:
            if len(self.groups) >= self.max_groups:
                self._forget()
            group = self.groups[key] = [0, when, when]
        group[0] += 1
        group[1], group[2] = min(group[1], when), max(group[2], when)

    def _forget(self) -> None:
        """Drops the less repeated half of the groups (the least recent among equals)."""
        ranked = sorted(self.groups, key=lambda k: (self.groups[k][0], self.groups[k][2]))
        for key in ranked[: len(ranked) // 2]:
            del self.groups[key]
        self.forgotten += len(ranked) // 2

    @property
    def failed(self) -> bool:
        return any(v != Verdict.SUCCEEDED.value for v in self.verdicts)

    def storms(self, minimum: int = 3) -> list[Storm]:
        out = [Storm(int(g[0]), *key, g[1], g[2]) for key, g in self.groups.items()
               if g[0] >= minimum]
        return sorted(out, key=lambda s: (-s.count, s.first))


def tally_summary(tally: Tally, stats: RunStats, received: int | None = None,
                  dropped: int | None = None,
                  warnings: Sequence[CaptureWarning] = (),
                  show_secrets: bool = False) -> dict[str, Any]:
    """The summary of a streamed run (live, or read as it goes) as fields."""
    return {
        "attempts": tally.attempts,
        "verdicts": dict(sorted(tally.verdicts.items())),
        "reasons": dict(tally.reasons.most_common()),
        "repeated": repeated_fields(tally.storms(), show_secrets),
        "closed": closed_fields(tally.closed, show_secrets),
        "groups": [{"id": check, "found": safe_text(found, show_secrets), "attempts": numbers}
                   for check, found, numbers in tally.grouped()],
        "tcp_only_attempts": dict(sorted(tally.apart.items())),
        "warnings": warning_texts(warnings, show_secrets),
        "packets_received": received,
        "packets_dropped": dropped,
        **capture_fields(stats),
    }


def tally_summary_text(tally: Tally, stats: RunStats, received: int | None = None,
                       dropped: int | None = None,
                       warnings: Sequence[CaptureWarning] = (),
                       show_secrets: bool = False, clock: Clock = UTC_CLOCK) -> str:
    """The summary of a streamed run, worded like `read`'s; live adds the kernel's counts."""
    s = tally_summary(tally, stats, received, dropped, warnings, show_secrets)
    verdicts = ", ".join(f"{n} {v}" for v, n in s["verdicts"].items()) or "none"
    lines = [f"Attempts: {s['attempts']} ({verdicts})"]
    if s["reasons"]:
        lines.append("Reasons: " + ", ".join(f"{r} x{n}" for r, n in s["reasons"].items()))
    if (line := apart_line(s["tcp_only_attempts"])) is not None:
        lines.append(line)
    lines.extend(repeated_lines(s["repeated"], clock=clock))
    lines.extend(closed_lines(s["closed"]))
    lines.extend(f"Group: {g['id']}: {g['found']} (attempts "
                 f"{', '.join(map(str, g['attempts']))})" for g in s["groups"])
    if received is not None:
        lines.append(f"Packets: {received} received, {dropped} dropped by the kernel")
    lines.extend(capture_lines(s))
    lines.extend(f"Warning: {w}" for w in s["warnings"])
    return "\n".join(lines)
