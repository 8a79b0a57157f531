"""The catalogue of findings: every anomaly the analyzer can report, with its rule and its fix.

Entries are data. Their order is meaningful: when several findings have the effect that decides
the verdict, the one listed first here is the primary reason. Entries are therefore grouped by
phase, root causes first: capture, transport, proxy, request, the causes a rejection's own words
name, response, after the switch.
"""

from __future__ import annotations

from analyzer.checks import catalogue_life as _life
from analyzer.checks.catalogue_connection import CONNECTION
from analyzer.checks.catalogue_http import HTTP
from analyzer.checks.finding import (  # re-exported: every check module imports them here
    EFFECT_ORDER,
    Check,
    Effect,
    Finding,
    Severity,
    from_data,
    in_phase,
)

__all__ = ["CATALOGUE", "EFFECT_ORDER", "ORDER", "REQUEST_FAULTS", "Check", "Effect", "Finding",
           "Severity", "lookup"]

CATALOGUE: tuple[Check, ...] = CONNECTION + HTTP + in_phase("life", *from_data(_life.LIFE))

_BY_ID = {check.id: check for check in CATALOGUE}
ORDER = {check.id: index for index, check in enumerate(CATALOGUE)}
# Faults of the request itself (a server may reject it for them): the verdict treats them as
# notes when the server switched anyway, and as the likely reason for a silent close.
REQUEST_FAULTS = frozenset(
    check.id for check in CATALOGUE if check.phase == "request" and check.effect is Effect.FAIL
)


def lookup(check_id: str) -> Check:
    """The catalogue entry for ``check_id`` (KeyError for an unknown id)."""
    return _BY_ID[check_id]
