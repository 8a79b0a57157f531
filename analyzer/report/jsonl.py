"""The JSONL `decided` line written directly: the text ``json.dumps`` gives for
`attempt_fields`, without building the dict first.

Why: a streamed read writes one such line per attempt, and building the fields as a dict
(≈ 106 k instructions an attempt on the dense benchmark mix) and then encoding it (≈ 110 k:
json's C encoder walks the dict, item by item, through its accumulator) was ≈ 40 % of what
an attempt costs between being decided and being printed. Here each value is cleaned as
`attempt_fields` cleans it and quoted by json's own C function (``encode_basestring_ascii``,
the one ``json.dumps`` uses with ``ensure_ascii``), the keys and separators are constant
text, and what is the same for every finding of a check (its id, severity, RFC and title) is
quoted once per run. The rare nested objects (TLS, lifetime) are `fields`' own dicts given to
the encoder. `attempt_fields` stays the schema: `render.render_jsonl_line_plain` encodes it,
and tests/test_fields.py compares the two on every bundled capture, both with and without
``--show-secrets`` (a field added there must be added here).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import encode_basestring_ascii

from analyzer.checks.catalogue import Finding, lookup
from analyzer.exchange.model import AttemptKind
from analyzer.report.fields import (
    endpoint_text,
    iso_time,
    lifetime_fields,
    reason_text,
    tls_fields,
)
from analyzer.report.safe import Cleaner, neutralise
from analyzer.verdict import Diagnosis

_quote = encode_basestring_ascii  # a str as JSON text, exactly as json.dumps writes it
# The encoder `render_jsonl_line_plain` uses (json.dumps's settings), for the nested objects.
_encode = json.JSONEncoder(check_circular=False).encode

# "{"id": ..., "title": ..., "expected": " of each check met so far (the catalogue is fixed)
_FINDING_HEADS: dict[str, str] = {}


def decided_line(diagnosis: Diagnosis, show_secrets: bool = False) -> str:
    """``{"event": "decided", **attempt_fields(diagnosis, show_secrets)}`` as one JSON line."""
    attempt = diagnosis.attempt
    clean = Cleaner.for_attempt(attempt, show_secrets)
    text = clean.text
    facts = diagnosis.facts
    request = facts.request_head  # (the heads as the facts hold them: no property call)
    response = facts.response_head
    if request is not None:
        headers = request.headers
        host = headers.get("host") or headers.get(":authority")
        method = _quote(text(request.method))
        path = _quote(clean.target(request.target))
        host_text = _quote(text(host)) if host is not None else "null"
    else:
        method = path = host_text = "null"
    if response is not None:
        status = str(response.status)
        status_reason = _quote(text(response.reason))
    else:
        status = status_reason = "null"
    protocol = text(facts.protocol)
    findings = diagnosis.findings
    # (an Enum member's ``_value_`` is its value: ``.value`` is a property, ≈ 1 k instructions)
    message, answer, syn = attempt.request, attempt.response, attempt.tcp.syn
    origin, tls, life = diagnosis.origin, attempt.tls, diagnosis.lifetime
    return (
        f'{{"event": "decided", "number": {diagnosis.number}, '
        f'"kind": {_quote(attempt.kind._value_)}, '
        f'"client": {_quote(endpoint_text(attempt.client))}, '
        f'"server": {_quote(endpoint_text(attempt.server))}, '
        f'"time": {_quote(iso_time(attempt.time))}, '
        f'"method": {method}, "path": {path}, "host": {host_text}, '
        f'"offered": {_texts(facts.offered, text)}, '
        f'"protocol": {_quote(protocol) if protocol else "null"}, '
        f'"status": {status}, "status_reason": {status_reason}, '
        f'"verdict": {_quote(diagnosis.verdict._value_)}, '
        f'"reason": {_quote(text(reason_text(diagnosis)))}, '
        f'"reasons": [{", ".join([_quote(f.check) for f in findings])}], '
        f'"findings": [{", ".join([_finding(f, text) for f in findings])}], '
        f'"request_frame": {message.first_frame if message is not None else "null"}, '
        f'"response_frame": {answer.first_frame if answer is not None else "null"}, '
        f'"syn_frame": {syn.frame if syn is not None else "null"}, '
        f'"connection_exchange": '
        f'{attempt.sequence if attempt.kind is AttemptKind.HTTP else "null"}, '
        f'"transport": {_quote(attempt.transport)}, '
        f'"stream_id": {"null" if attempt.stream_id is None else attempt.stream_id}, '
        f'"attribution": {_attribution(diagnosis, clean)}, '
        f'"tls": {"null" if tls is None else _encode(tls_fields(tls, clean))}, '
        f'"lifetime": {"null" if life is None else _encode(lifetime_fields(life, clean))}'
        + ("}" if origin is None else
           f', "file": {_quote(neutralise(origin[0]))}, "file_frame": {_encode(origin[1])}}}')
    )


def _texts(texts: tuple[str, ...], text: Callable[[str], str]) -> str:
    """``clean.texts(texts)`` as a JSON list (``text``: the cleaner's `text`)."""
    if not texts:
        return "[]"
    return "[" + ", ".join([_quote(text(t)) for t in texts]) + "]"


def _finding(finding: Finding, text: Callable[[str], str]) -> str:
    head = _FINDING_HEADS.get(finding.check)
    if head is None:
        check = lookup(finding.check)
        head = _FINDING_HEADS[finding.check] = (
            f'{{"id": {_encode(check.id)}, "severity": {_encode(check.severity.value)}, '
            f'"rfc": {_encode(check.rfc)}, "title": {_encode(check.title)}, "expected": ')
    return (f'{head}{_quote(text(finding.expected))}, '
            f'"found": {_quote(text(finding.found))}, '
            f'"frames": [{", ".join([str(n) for n in finding.frames])}]}}')


def _attribution(diagnosis: Diagnosis, clean: Cleaner) -> str:
    who = diagnosis.attribution
    text = clean.text
    return (
        f'{{"server": {"null" if who.server is None else _quote(who.server)}, '
        f'"confidence": {_quote(who.confidence) if who.confidence else "null"}, '
        f'"evidence": {_texts(who.evidence, text)}, '
        f'"server_log": {_quote(text(who.server_log)) if who.server_log else "null"}, '
        f'"client": {_quote(text(who.client)) if who.client else "null"}, '
        f'"client_errors": {_texts(who.client_errors, text)}}}'
    )
