"""Folding the ends into the attempts they belong to, for reports that list each attempt once
with its final verdict (sorted formats, `read --jobs`), and the rules over several ends."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from analyzer.checks.catalogue import Finding
from analyzer.exchange.model import WINDOW_OVER
from analyzer.life.groups import End, group_findings
from analyzer.life.model import Ended, attempt_key
from analyzer.verdict import Diagnosis, judge, with_life


def fold(events: Iterable[Diagnosis | Ended]) -> list[Diagnosis]:
    """The diagnoses in order, each updated by its `Ended` (matched by attempt key)."""
    out: list[Diagnosis] = []
    index: dict[tuple[int, int, int], int] = {}
    for event in events:
        if isinstance(event, Ended):
            at = index.pop(event.key, None)
            if at is not None:
                out[at] = with_life(out[at], event)
            continue
        a = event.attempt
        if a.after is not None:
            index[attempt_key(a.first_frame, a.sequence, a.stream_id)] = len(out)
        out.append(event)
    return out


def with_groups(diagnoses: Sequence[Diagnosis]) -> list[Diagnosis]:
    """The diagnoses, those whose ends several connections explain together (a mass reset,
    a maximum lifetime: analyzer/life/groups.py) judged again with those findings."""
    ends = [e for i, d in enumerate(diagnoses) if (e := end_of(i, d)) is not None]
    added = group_findings(ends)
    if not added:
        return list(diagnoses)
    out = list(diagnoses)
    for i, findings in added.items():
        out[i] = with_findings(out[i], findings)
    return out


def end_of(index: int, d: Diagnosis) -> End | None:
    """What the group rules read of a diagnosis (None when its connection was not followed)."""
    if d.lifetime is None:
        return None
    head = d.attempt.request_head
    return End(index, d.attempt.server.ip, head.target if head else "", d.lifetime)


def with_findings(d: Diagnosis, findings: Sequence[Finding]) -> Diagnosis:
    """``d`` judged again with the group rules' findings."""
    again = judge(d.attempt, d.facts, d.findings + tuple(findings), d.number)
    return Diagnosis(again.number, again.attempt, again.facts, again.verdict, again.findings,
                     again.attribution, d.origin, d.lifetime)


def lifetime_seconds(d: Diagnosis) -> float | None:
    """How long the connection lived after its switch: the lifetime once followed to its
    end, the time to its end when that came inside the watch window, None when unknown yet
    (still in life) or when there was no switch."""
    if d.lifetime is not None:
        return d.lifetime.duration_s
    after = d.attempt.after
    tcp = d.attempt.tcp
    if after is None or tcp.end_reason == WINDOW_OVER or not tcp.end_time:
        return None
    return max(tcp.end_time - after.switch_time, 0.0)
