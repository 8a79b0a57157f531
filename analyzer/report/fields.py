"""One attempt as plain fields: the single source of what every output format shows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from analyzer.checks.catalogue import lookup
from analyzer.exchange.model import AttemptKind
from analyzer.verdict import Diagnosis, Verdict


def iso_time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="microseconds").replace(
        "+00:00", "Z"
    )


def reason_text(diagnosis: Diagnosis) -> str:
    """The primary reason in plain words, with what was found."""
    attempt = diagnosis.attempt
    if diagnosis.verdict is Verdict.SUCCEEDED:
        protocol = diagnosis.facts.protocol or "the new protocol"
        if attempt.request_head is not None and attempt.request_head.method.upper() == "CONNECT":
            return "tunnel established"
        text = f"switched to {protocol}"
        response = attempt.response_head
        chosen = response.headers.get("sec-websocket-protocol") if response else None
        if chosen:
            text += f" (subprotocol {chosen})"
        notes = [f for f in diagnosis.findings if lookup(f.check).severity.value != "info"]
        if notes:
            text += f"; note: {lookup(notes[0].check).title}"
        return text
    primary = diagnosis.primary
    if primary is None:
        return ""
    title = lookup(primary.check).title
    return f"{title} ({primary.found})" if primary.found else title


def attempt_fields(diagnosis: Diagnosis) -> dict[str, Any]:
    """The documented per-attempt schema (README: "JSON fields")."""
    attempt = diagnosis.attempt
    request = attempt.request_head
    response = attempt.response_head
    findings = []
    for finding in diagnosis.findings:
        check = lookup(finding.check)
        findings.append(
            {
                "id": check.id,
                "severity": check.severity.value,
                "rfc": check.rfc,
                "title": check.title,
                "expected": finding.expected,
                "found": finding.found,
                "frames": list(finding.frames),
            }
        )
    return {
        "number": diagnosis.number,
        "kind": attempt.kind.value,
        "client": str(attempt.client),
        "server": str(attempt.server),
        "time": iso_time(attempt.time),
        "method": request.method if request else None,
        "path": request.target if request else None,
        "host": request.headers.get("host") if request else None,
        "offered": list(diagnosis.facts.offered),
        "protocol": diagnosis.facts.protocol or None,
        "status": response.status if response else None,
        "status_reason": response.reason if response else None,
        "verdict": diagnosis.verdict.value,
        "reason": reason_text(diagnosis),
        "reasons": [f.check for f in diagnosis.findings],
        "findings": findings,
        "request_frame": attempt.request.first_frame if attempt.request else None,
        "response_frame": attempt.response.first_frame if attempt.response else None,
        "syn_frame": attempt.tcp.syn.frame if attempt.tcp.syn else None,
        "connection_exchange": attempt.sequence if attempt.kind is AttemptKind.HTTP else None,
    }


def request_label(diagnosis: Diagnosis) -> str:
    request = diagnosis.attempt.request_head
    if request is None:
        return "(TCP only)" if diagnosis.attempt.kind is AttemptKind.TCP else "(not captured)"
    return f"{request.method} {request.target}"
