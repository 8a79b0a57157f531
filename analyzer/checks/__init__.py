"""The checks: pure functions from an Attempt to Findings drawn from the catalogue."""

from __future__ import annotations

from analyzer.checks.after_switch import check_after_switch
from analyzer.checks.catalogue import Finding
from analyzer.checks.facts import Facts, facts_of
from analyzer.checks.h2 import h2_after_switch, h2_request, h2_response, h2_transport
from analyzer.checks.request import check_request
from analyzer.checks.response import check_response
from analyzer.checks.tls import check_tls
from analyzer.checks.transport import check_transport
from analyzer.checks.words import with_server_words
from analyzer.exchange.model import Attempt

RULES = (check_transport, check_tls, check_request, check_response, check_after_switch)
# An HTTP/2 stream: the same transport and TLS rules, then its own (which share the status,
# negotiation and WebSocket-frame rules with HTTP/1's).
H2_RULES = (check_transport, check_tls, h2_transport, h2_request, h2_response, h2_after_switch)


def run_checks(attempt: Attempt) -> tuple[Facts, tuple[Finding, ...]]:
    """Every finding of every rule for one attempt, in rule order."""
    facts = facts_of(attempt)
    findings: list[Finding] = []
    for rule in H2_RULES if attempt.transport == "h2" else RULES:
        findings.extend(rule(attempt, facts))
    return facts, tuple(with_server_words(attempt, facts, findings))
