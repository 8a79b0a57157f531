"""The verdict: one word per attempt, and the primary reason, chosen deterministically."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
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
from analyzer.checks.finding import THEN
from analyzer.exchange.model import Attempt
from analyzer.life.model import Ended, Lifetime
from analyzer.slotted import slot_setters


class Verdict(Enum):
    SUCCEEDED = "succeeded"  # the switch happened and nothing killed it right away
    FAILED = "failed"  # the handshake broke a rule, or the server rejected it
    DECLINED = "declined"  # the server ignored a legitimate offer (RFC 9110 §7.8)
    NO_RESPONSE = "no_response"  # nothing answered (TCP or HTTP)
    REFUSED = "refused"  # the SYN was answered by RST
    ABORTED = "aborted"  # switched, then one side killed the connection at once
    DROPPED = "dropped"  # switched, worked past the watch window, then ended abnormally
    INCONCLUSIVE = "inconclusive"  # the capture cannot tell


_BY_EFFECT = {
    Effect.INCONCLUSIVE: Verdict.INCONCLUSIVE,
    Effect.REFUSED: Verdict.REFUSED,
    Effect.NO_RESPONSE: Verdict.NO_RESPONSE,
    Effect.FAIL: Verdict.FAILED,
    Effect.ABORT: Verdict.ABORTED,
    Effect.DROP: Verdict.DROPPED,
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
    # Who answered, what each side logged: None until `attribution` is first read. It is a
    # pure function of the fields above, so it is left out of equality, and only the formats
    # that print it pay for it (JSON, JSONL, detail, HTML; not the table or CSV), ≈ 10 % of
    # the pipeline on the dense benchmark mix (benchmarks/README.md).
    who: Attribution | None = field(default=None, compare=False, repr=False)
    # (input file, frame number within it) of the first frame, when several files are read
    origin: tuple[str, int] | None = None
    # how the connection lived after its watch window, once it ended (analyzer/life)
    lifetime: Lifetime | None = None

    @property
    def primary(self) -> Finding | None:
        return self.findings[0] if self.findings else None

    @property
    def attribution(self) -> Attribution:
        who = self.who
        if who is None:
            # (``_value_``: the member's own attribute; ``value`` is a property, ≈ 1 k more)
            who = attribute(self.attempt, self.facts, self.verdict._value_, self.findings,
                            self.lifetime)
            object.__setattr__(self, "who", who)  # a cache of a pure function: still frozen
        return who


# Every attempt makes two Diagnoses (judged, then renumbered by the CLI) of eight fields: the
# frozen ``__init__`` stores each through object.__setattr__. `made` stores them through the
# slots' own descriptors (as `http.message.header` does), the same value for less
# (tests/test_verdict.py compares it with the constructor).
_new_object = object.__new__
_DIAGNOSIS_SETTERS = slot_setters(Diagnosis, (
    "number", "attempt", "facts", "verdict", "findings", "who", "origin", "lifetime"))


def made(number: int, attempt: Attempt, facts: Facts, verdict: Verdict,
         findings: tuple[Finding, ...], who: Attribution | None = None,
         origin: tuple[str, int] | None = None, lifetime: Lifetime | None = None) -> Diagnosis:
    """``Diagnosis(number, attempt, ...)`` without the frozen ``__init__`` (its twin)."""
    d = _new_object(Diagnosis)
    s_number, s_attempt, s_facts, s_verdict, s_findings, s_who, s_origin, s_life = \
        _DIAGNOSIS_SETTERS
    s_number(d, number)
    s_attempt(d, attempt)
    s_facts(d, facts)
    s_verdict(d, verdict)
    s_findings(d, findings)
    s_who(d, who)
    s_origin(d, origin)
    s_life(d, lifetime)
    return d


def diagnose(attempt: Attempt, number: int = 0) -> Diagnosis:
    facts, findings = run_checks(attempt)
    return judge(attempt, facts, findings, number)


def judge(
    attempt: Attempt, facts: Facts, findings: tuple[Finding, ...], number: int = 0
) -> Diagnosis:
    """The verdict and the ranking of findings (also used again when correlation adds some).

    Ranking: the findings whose effect decided the verdict first, then the rest; within
    each, the most severe first, then catalogue order (root causes first). A cause of the
    deciding symptom (see `causes_of`) counts as deciding and comes just before its symptom.
    The first is the primary reason."""
    if len(findings) <= 1:  # most attempts: nothing to rank (`judge_ranked` is the twin)
        if not findings:
            return made(number, attempt, facts, Verdict.SUCCEEDED, findings)
        check = findings[0].check
        if _switched(facts) and check in REQUEST_FAULTS:
            verdict = Verdict.SUCCEEDED  # `_effect`: a request fault the server let pass
        else:
            verdict = _VERDICT_OF[check]
        return made(number, attempt, facts, verdict, findings)
    return judge_ranked(attempt, facts, findings, number)


def judge_ranked(
    attempt: Attempt, facts: Facts, findings: tuple[Finding, ...], number: int = 0
) -> Diagnosis:
    """`judge` for any number of findings (its plain twin for none or one,
    tests/test_verdict.py)."""
    switched = _switched(facts)
    # a list, not a set: `in` on a list compares Enum members by identity, a set would call
    # their (Python-level) __hash__
    effects = [_effect(f, switched) for f in findings]
    pairs = causes_of(findings) if len(findings) > 1 else []
    for cause, symptom in pairs:
        if findings[symptom].side == "client" and findings[cause].check in CLIENT_ENFORCED:
            # wave2-decisions.md: the client hung up on a 101 that broke a rule it enforces:
            # it rejected the handshake, so the attempt failed (the hang-up is the evidence).
            effects[cause] = _stronger(effects[cause], Effect.FAIL)
    deciding = next((e for e in EFFECT_ORDER if e in effects), None)
    verdict = _BY_EFFECT[deciding] if deciding is not None else Verdict.SUCCEEDED
    # A cause of a deciding symptom ranks as if it were deciding, and just before that
    # symptom (its own rank, if that comes first): never above a root cause listed earlier
    # in the catalogue (a proxy that forwarded the wrong Accept stays before the Accept).
    explains: dict[int, int] = {}  # cause -> the symptom it explains (reported with it)
    for cause, symptom in pairs:
        if (effects[symptom] is deciding or effects[cause] is deciding) and (
            cause not in explains
        ):
            explains[cause] = symptom

    def key(i: int) -> tuple[int, tuple[int, int], int]:
        rank = _RANK[findings[i].check]
        symptom = explains.get(i)
        if symptom is not None and effects[symptom] is deciding:
            return 0, min(rank, _RANK[findings[symptom].check]), 0
        return (0 if effects[i] is deciding else 1), rank, 1

    ranked = sorted(range(len(findings)), key=key)
    ordered = [findings[i] for i in ranked]
    if ordered and ranked[0] in explains:
        ordered[0] = _with_symptom(ordered[0], findings[explains[ranked[0]]])
    return Diagnosis(number, attempt, facts, verdict, tuple(ordered))


def judge_eagerly(
    attempt: Attempt, facts: Facts, findings: tuple[Finding, ...], number: int = 0
) -> Diagnosis:
    """`judge` with the attribution built at once, as every diagnosis was before it was made
    lazy: the plain twin the tests compare `Diagnosis.attribution` with."""
    diagnosis = judge(attempt, facts, findings, number)
    result = diagnosis.findings
    return replace(diagnosis, who=attribute(attempt, facts, diagnosis.verdict.value, result))


def after_life(decided: Verdict, findings: tuple[Finding, ...]) -> tuple[Verdict,
                                                                         tuple[Finding, ...]]:
    """The final verdict of an attempt whose connection lived past its watch window: the
    decided one, unless a life finding's effect is stronger (`dropped` after `succeeded`);
    the life findings ranked as `judge` ranks them (deciding effect, severity, catalogue)."""
    effects = [_EFFECT[f.check] for f in findings]
    verdict = decided
    for effect in EFFECT_ORDER:
        if effect in effects:
            if _STRENGTH[effect] < _STRENGTH.get(_EFFECT_OF.get(decided, Effect.NOTE),
                                                  len(EFFECT_ORDER)):
                verdict = _BY_EFFECT[effect]
            break
    deciding = next((e for e in EFFECT_ORDER if _BY_EFFECT[e] is verdict), None)
    ranked = sorted(findings, key=lambda f: (_EFFECT[f.check] is not deciding, _RANK[f.check]))
    return verdict, tuple(ranked)


def with_life(diagnosis: Diagnosis, ended: Ended) -> Diagnosis:
    """A decided attempt with its connection's end: judged again with the life findings
    (sorted reports list each attempt once, with its final verdict)."""
    findings = diagnosis.findings + tuple(f for f in ended.findings
                                          if f not in diagnosis.findings)
    again = judge(diagnosis.attempt, diagnosis.facts, findings, diagnosis.number)
    return replace(again, origin=diagnosis.origin, lifetime=ended.lifetime)


# --- cause before symptom ------------------------------------------------------------------
# A symptom is one side's reaction: it hung up, closed with an error code, or closed without
# answering. A cause is a rule the *other* side broke just before, which that reaction
# enforces. When both are in an attempt, the cause is the primary reason and the symptom stays
# listed as its evidence (and is quoted in the cause's `found`).

# Rules of the 101 that WebSocket clients enforce by failing the connection (RFC 6455 §4.1
# steps 1-6, and the subprotocol trap Chrome, Node ws and tungstenite fall into).
CLIENT_ENFORCED = frozenset({
    "switch_without_upgrade", "switch_to_unoffered", "switch_connection_without_upgrade",
    "ws_accept_missing", "ws_accept_mismatch", "ws_accept_repeated",
    "ws_protocol_not_offered", "ws_protocol_repeated", "ws_protocol_not_chosen",
    "ws_extension_not_offered", "ws_deflate_params_invalid",
})
# What one side does after the switch that the other side fails the connection for (a Ping
# left without a Pong: the pinging side's keepalive gives up).
_FRAME_FAULTS = frozenset({
    "ws_client_frame_unmasked", "ws_server_frame_masked", "ws_rsv_without_extension",
    "ws_opcode_reserved", "ws_control_frame_invalid", "ws_ping_unanswered",
    "ws_frame_length_not_minimal", "ws_text_not_utf8", "ws_close_reason_not_utf8",
})
# Reactions right after the switch; the finding's side says who reacted.
_HANG_UPS = frozenset({"client_hung_up_after_switch", "server_hung_up_after_switch",
                       "ws_closed_with_error"})
# ... and an end without a Close after frames went by: a reaction to a bad frame only (a side
# that took the switch and exchanged frames did not reject the 101). Node's WebSocket (undici)
# and Java's fail a connection so, at the frame, without a Close frame of their own
_ENDED_WITHOUT_CLOSE = "ended_without_close_after_switch"
_SILENT_REJECTIONS = frozenset({"no_response_server_closed", "no_response_server_reset"})
# how a wait for an answer ended, which a proxy that kept the backend's 101 explains
_UNANSWERED = frozenset({"no_response_client_gave_up", "no_response_capture_ended"})


def causes_of(findings: tuple[Finding, ...]) -> list[tuple[int, int]]:
    """(cause, symptom) index pairs: which findings explain which reaction.

    - a server that closed without a word (tungstenite does so for every bad handshake) was
      most likely rejecting the request's own fault: the first request fault is the cause;
    - a side that hung up or closed with an error code right after the switch reacted to the
      other side: to a 101 rule it enforces (the client) or to a bad frame the other side
      sent (either side); one that ended without a Close after frames went by, to such a
      frame only;
    - a client left without an answer while the proxy kept the backend's 101 to itself
      (`proxy_withheld_switch`, correlate.py) waited for that 101."""
    pairs: list[tuple[int, int]] = []
    for s, symptom in enumerate(findings):
        if symptom.check in _SILENT_REJECTIONS:
            cause = next((i for i, f in enumerate(findings) if f.check in REQUEST_FAULTS), None)
            if cause is not None:
                pairs.append((cause, s))
        elif symptom.check in _UNANSWERED:
            cause = next((i for i, f in enumerate(findings)
                          if f.check == "proxy_withheld_switch"), None)
            if cause is not None:
                pairs.append((cause, s))
        elif (symptom.check in _HANG_UPS or symptom.check == _ENDED_WITHOUT_CLOSE) and (
                symptom.side):
            enforced = symptom.side == "client" and symptom.check != _ENDED_WITHOUT_CLOSE
            for c, finding in enumerate(findings):
                if enforced and finding.check in CLIENT_ENFORCED or (
                    finding.check in _FRAME_FAULTS and finding.side
                    and finding.side != symptom.side
                ):
                    pairs.append((c, s))
    return pairs


def _with_symptom(cause: Finding, symptom: Finding) -> Finding:
    """The cause, its `found` saying what the other side then did (once: judge runs again
    when correlation adds findings)."""
    if symptom.check in _SILENT_REJECTIONS:
        return cause
    if symptom.check in ("ws_closed_with_error", _ENDED_WITHOUT_CLOSE):
        reaction = symptom.found  # "client sent Close 1002 (...) 3 ms after the 101"
    else:  # short: the table shows the cause's title and found in one 90-character cell
        # "client FIN 3 ms after the switch" (a wait's end names its side itself)
        reaction = f"{symptom.side} {symptom.found}" if symptom.side else symptom.found
    if cause.found.endswith(f"{THEN}{reaction}"):
        return cause
    frames = cause.frames + tuple(f for f in symptom.frames if f not in cause.frames)
    return replace(cause, found=f"{cause.found}{THEN}{reaction}", frames=frames)


def _stronger(a: Effect, b: Effect) -> Effect:
    return a if _STRENGTH.get(a, len(EFFECT_ORDER)) <= _STRENGTH.get(b, len(EFFECT_ORDER)) else b


_STRENGTH = {effect: index for index, effect in enumerate(EFFECT_ORDER)}
_SEVERITY_RANK = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
# Per catalogue id, what ranks findings after the deciding effect: severity, then catalogue
# order. Worked out once here rather than through the catalogue entry of every finding.
_RANK = {check.id: (_SEVERITY_RANK[check.severity], ORDER[check.id]) for check in CATALOGUE}
_EFFECT = {check.id: check.effect for check in CATALOGUE}
_EFFECT_OF = {verdict: effect for effect, verdict in _BY_EFFECT.items()}
# The verdict a catalogue id decides alone (a note's: succeeded), by id: an Enum member as a
# dict key is hashed through Python, ≈ 1 k instructions a look-up in `_BY_EFFECT`.
_VERDICT_OF = {check.id: _BY_EFFECT.get(check.effect, Verdict.SUCCEEDED) for check in CATALOGUE}


def _effect(finding: Finding, switched: bool) -> Effect:
    if switched and finding.check in REQUEST_FAULTS:
        # The server switched anyway: the request's fault did not stop this handshake (it
        # stays listed, since a stricter server would reject it).
        return Effect.NOTE
    return _EFFECT[finding.check]


def _switched(facts: Facts) -> bool:
    """Whether the server switched (the facts hold the attempt's heads: no property calls)."""
    response = facts.response_head
    if response is None:
        return False
    request = facts.request_head
    if request is not None and request.method.upper() == "CONNECT":
        return 200 <= response.status < 300
    return response.status == 101
