"""What a finding is: a catalogue entry (`Check`), one anomaly found in one attempt
(`Finding`), and the severity and effect on the verdict that each entry declares.

Kept apart from the entries themselves (catalogue_*.py) so that each module of entries can
build its `Check`s without importing the assembled catalogue.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import Enum


class Severity(Enum):
    ERROR = "error"  # breaks the handshake (or proves it broke)
    WARNING = "warning"  # legal or tolerated, but a known cause of failures
    INFO = "info"  # worth knowing when reading the exchange


class Effect(Enum):
    """What a finding does to the attempt's verdict; the verdict is the strongest effect present."""

    INCONCLUSIVE = "inconclusive"
    REFUSED = "refused"
    NO_RESPONSE = "no_response"
    FAIL = "failed"
    ABORT = "aborted"
    DROP = "dropped"  # worked past the watch window, then ended abnormally (analyzer/life)
    DECLINE = "declined"
    NOTE = "note"  # no effect on the verdict


# Strongest first: the verdict is the first of these that any finding has.
EFFECT_ORDER = (
    Effect.INCONCLUSIVE,
    Effect.REFUSED,
    Effect.NO_RESPONSE,
    Effect.FAIL,
    Effect.ABORT,
    Effect.DROP,
    Effect.DECLINE,
)


@dataclass(frozen=True, slots=True)
class Check:
    """One catalogue entry."""

    id: str  # stable snake_case identifier; never renamed once released
    severity: Severity
    effect: Effect
    rfc: str  # the section that states the rule, e.g. "RFC 6455 §4.2.2"
    title: str  # the reason in plain words, short enough for a table cell
    explanation: str  # what the rule says and what breaking it does
    fix: str  # the usual causes and what to change
    phase: str = ""  # capture, transport, request, response or after_switch (set by _phase)


@dataclass(frozen=True, slots=True)
class Finding:
    """One anomaly in one attempt, with the evidence."""

    check: str  # a catalogue id
    expected: str
    found: str
    frames: tuple[int, ...] = ()
    # "client" or "server" for what one side did after the switch (a hang-up, a Close, a bad
    # frame): the verdict's cause-before-symptom ranking pairs a reaction with the other
    # side's fault. Empty elsewhere.
    side: str = ""


# What joins a cause's `found` to the other side's reaction ("bogus; then client FIN 1 ms
# after the switch", verdict.py `_with_symptom`): `found_alone` takes the cause's own part,
# which is what the clients' lines quote.
THEN = "; then "


def found_alone(found: str) -> str:
    return found.split(THEN, 1)[0]


E, W, N = Severity.ERROR, Severity.WARNING, Severity.INFO  # short names keep the table legible


def from_data(entries: Iterable[tuple[str, str, str, str, str, str, str]]) -> tuple[Check, ...]:
    """Entries kept as plain data (catalogue_h2.py, catalogue_life.py) as Checks."""
    return tuple(Check(i, Severity(s), Effect(e), rfc, title, explanation, fix)
                 for i, s, e, rfc, title, explanation, fix in entries)


def in_phase(phase: str, *checks: Check) -> tuple[Check, ...]:
    return tuple(replace(check, phase=phase) for check in checks)
