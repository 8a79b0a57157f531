"""The verdict: one word per attempt, and the primary reason, chosen deterministically."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from analyzer.attribution import attribute
from analyzer.attribution.model import Attribution
from analyzer.checks import run_checks
from analyzer.checks.catalogue import (
    CATALOGUE,
    EFFECT_ORDER,
    ORDER,
    REQUEST_FAULTS,
    Effect,
    Finding,
    Severity,
)
from analyzer.checks.facts import Facts
from analyzer.exchange.model import Attempt


class Verdict(Enum):
    SUCCEEDED = "succeeded"  # the switch happened and nothing killed it right away
    FAILED = "failed"  # the handshake broke a rule, or the server rejected it
    DECLINED = "declined"  # the server ignored a legitimate offer (RFC 9110 §7.8)
    NO_RESPONSE = "no_response"  # nothing answered (TCP or HTTP)
    REFUSED = "refused"  # the SYN was answered by RST
    ABORTED = "aborted"  # switched, then one side killed the connection at once
    INCONCLUSIVE = "inconclusive"  # the capture cannot tell


_BY_EFFECT = {
    Effect.INCONCLUSIVE: Verdict.INCONCLUSIVE,
    Effect.REFUSED: Verdict.REFUSED,
    Effect.NO_RESPONSE: Verdict.NO_RESPONSE,
    Effect.FAIL: Verdict.FAILED,
    Effect.ABORT: Verdict.ABORTED,
    Effect.DECLINE: Verdict.DECLINED,
}


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """An attempt with its verdict and findings, primary reason first."""

    number: int  # 1-based position among the attempts of the run
    attempt: Attempt
    facts: Facts
    verdict: Verdict
    findings: tuple[Finding, ...]  # primary first, then catalogue order
    attribution: Attribution = Attribution()
    # (input file, frame number within it) of the first frame, when several files are read
    origin: tuple[str, int] | None = None

    @property
    def primary(self) -> Finding | None:
        return self.findings[0] if self.findings else None


def diagnose(attempt: Attempt, number: int = 0) -> Diagnosis:
    facts, findings = run_checks(attempt)
    return judge(attempt, facts, findings, number)


def judge(
    attempt: Attempt, facts: Facts, findings: tuple[Finding, ...], number: int = 0
) -> Diagnosis:
    """The verdict and the ranking of findings (also used again when correlation adds some)."""
    switched = _switched(attempt)
    # a list, not a set: `in` on a list compares Enum members by identity, a set would call
    # their (Python-level) __hash__
    effects = [_effect(f, switched) for f in findings]
    deciding = next((e for e in EFFECT_ORDER if e in effects), None)
    verdict = _BY_EFFECT[deciding] if deciding is not None else Verdict.SUCCEEDED
    # deciding findings first; then the most severe; then root causes first (catalogue order)
    ranked = sorted(findings,
                    key=lambda f: (_effect(f, switched) is not deciding, _RANK[f.check]))
    if ranked and ranked[0].check in _SILENT_REJECTIONS:
        # A server that closes without a word (tungstenite does for every bad handshake) was
        # most likely rejecting the request's own fault: that fault is the reason to show.
        cause = next((f for f in ranked if f.check in REQUEST_FAULTS), None)
        if cause is not None:
            ranked.remove(cause)
            ranked.insert(0, cause)
    ordered = tuple(ranked)
    who = attribute(attempt, facts, verdict.value, ordered)
    return Diagnosis(number, attempt, facts, verdict, ordered, who)


_SEVERITY_RANK = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
# Per catalogue id, what ranks findings after the deciding effect: severity, then catalogue
# order. Worked out once here rather than through the catalogue entry of every finding.
_RANK = {check.id: (_SEVERITY_RANK[check.severity], ORDER[check.id]) for check in CATALOGUE}
_EFFECT = {check.id: check.effect for check in CATALOGUE}
_SILENT_REJECTIONS = ("no_response_server_closed", "no_response_server_reset")


def _effect(finding: Finding, switched: bool) -> Effect:
    if switched and finding.check in REQUEST_FAULTS:
        # The server switched anyway: the request's fault did not stop this handshake (it
        # stays listed, since a stricter server would reject it).
        return Effect.NOTE
    return _EFFECT[finding.check]


def _switched(attempt: Attempt) -> bool:
    response = attempt.response_head
    if response is None:
        return False
    request = attempt.request_head
    if request is not None and request.method.upper() == "CONNECT":
        return 200 <= response.status < 300
    return response.status == 101
