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

from analyzer.attribution.model import Attribution
from analyzer.checks.catalogue import Finding, lookup
from analyzer.exchange.model import AttemptKind
from analyzer.remembered import Remembered
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
# (an Enum member read off its class costs ≈ 0.1 µs in Python 3.11, ≈ 1 k instructions: read
# once here, for the test every attempt takes)
_HTTP_KIND = AttemptKind.HTTP


def decided_line(diagnosis: Diagnosis, show_secrets: bool = False) -> str:
    """``{"event": "decided", **attempt_fields(diagnosis, show_secrets)}`` as one JSON line."""
    return numbered_line(diagnosis.number, decided_tail(diagnosis, show_secrets))


def numbered_line(number: int, tail: str) -> str:
    """A `decided` line from its number and the rest (`decided_tail`)."""
    return f'{{"event": "decided", "number": {number}{tail}'


def decided_tail(diagnosis: Diagnosis, show_secrets: bool = False) -> str:
    """The `decided` line of ``diagnosis`` after its number: what a `read --jobs` worker
    renders, before the merge numbers the attempts (report/digest.py)."""
    attempt = diagnosis.attempt
    clean = Cleaner.for_attempt(attempt, show_secrets)
    text = clean.text
    facts = diagnosis.facts
    request = facts.request_head  # (the heads as the facts hold them: no property call)
    response = facts.response_head
    if request is not None:
        headers = request.headers
        host = headers.get("host") or headers.get(":authority")
        asked = _asked(request.method, request.target, host, facts.offered, facts.protocol,
                       clean)
    else:
        asked = _asked_plain(None, None, None, facts.offered, facts.protocol, clean)
    if response is not None:
        status = str(response.status)
        status_reason = _quote(text(response.reason))
    else:
        status = status_reason = "null"
    findings = diagnosis.findings
    # (an Enum member's ``_value_`` is its value: ``.value`` is a property, ≈ 1 k instructions)
    message, answer, syn = attempt.request, attempt.response, attempt.tcp.syn
    origin, tls, life = diagnosis.origin, attempt.tls, diagnosis.lifetime
    return (
        f', "kind": {_quote(attempt.kind._value_)}, '
        f'"client": {_quote(endpoint_text(attempt.client))}, '
        f'"server": {_quote(endpoint_text(attempt.server))}, '
        f'"time": {_quote(iso_time(attempt.time))}, '
        f'{asked}, '
        f'"status": {status}, "status_reason": {status_reason}, '
        f'"verdict": {_quote(diagnosis.verdict._value_)}, '
        f'"reason": {_quote(text(reason_text(diagnosis)))}, '
        f'"reasons": [{", ".join([_quote(f.check) for f in findings])}], '
        f'"findings": [{", ".join([_finding(f, clean) for f in findings])}], '
        f'"request_frame": {message.first_frame if message is not None else "null"}, '
        f'"response_frame": {answer.first_frame if answer is not None else "null"}, '
        f'"syn_frame": {syn.frame if syn is not None else "null"}, '
        f'"connection_exchange": '
        f'{attempt.sequence if attempt.kind is _HTTP_KIND else "null"}, '
        f'"transport": {_quote(attempt.transport)}, '
        f'"stream_id": {"null" if attempt.stream_id is None else attempt.stream_id}, '
        f'"attribution": {_attribution(diagnosis, clean)}, '
        f'"tls": {"null" if tls is None else _encode(tls_fields(tls, clean))}, '
        f'"lifetime": {"null" if life is None else _encode(lifetime_fields(life, clean))}'
        + ("}" if origin is None else
           f', "file": {_quote(neutralise(origin[0]))}, "file_frame": {_encode(origin[1])}}}')
    )


# `_asked_plain`'s text for attempts without secret values, by what it is made of: a run's
# requests repeat their method, target, host and offer (a client's reconnects, a storm), and
# cleaning and quoting those five texts again cost ≈ 5 k instructions a line. Requests whose
# texts are short only (a hostile head's long target or host is not kept), bounded.
_ASKED: Remembered[tuple[object, ...], str] = Remembered()
_ASKED_KEPT_LENGTH = 512  # characters of target and host together


def _asked(method: str, target: str, host: str | None, offered: tuple[str, ...],
           protocol: str, clean: Cleaner) -> str:
    """`_asked_plain`, remembered when ``clean`` depends on nothing but the text."""
    if clean.show_secrets or clean.secrets or (
            len(target) + (len(host) if host else 0) > _ASKED_KEPT_LENGTH):
        return _asked_plain(method, target, host, offered, protocol, clean)
    key = (method, target, host, offered, protocol)
    made = _ASKED.get(key)
    if made is None:
        made = _ASKED.keep(key, _asked_plain(method, target, host, offered, protocol, clean))
    return made


def _asked_plain(method: str | None, target: str | None, host: str | None,
                 offered: tuple[str, ...], protocol: str, clean: Cleaner) -> str:
    """The request's part of a line: ``"method": ..., "path": ..., "host": ..., "offered":
    [...], "protocol": ...`` (null for what is None, or a protocol that is "")."""
    text = clean.text
    method_text = "null" if method is None else _quote(text(method))
    path = "null" if target is None else _quote(clean.target(target))
    host_text = "null" if host is None else _quote(text(host))
    protocol_text = text(protocol)
    return (f'"method": {method_text}, "path": {path}, "host": {host_text}, '
            f'"offered": {_texts(offered, text)}, '
            f'"protocol": {_quote(protocol_text) if protocol_text else "null"}')


def _texts(texts: tuple[str, ...], text: Callable[[str], str]) -> str:
    """``clean.texts(texts)`` as a JSON list (``text``: the cleaner's `text`)."""
    if not texts:
        return "[]"
    return "[" + ", ".join([_quote(text(t)) for t in texts]) + "]"


# `_finding`'s text up to its frame numbers, for attempts without secret values (as
# `_ATTRIBUTION_TEXTS`), by (check, expected, found): a run's findings repeat their texts
# (a Close's, a status's), only the frames are each attempt's own. Bounded.
_FINDING_STARTS: Remembered[tuple[str, str, str], str] = Remembered()


def _finding(finding: Finding, clean: Cleaner) -> str:
    """A finding as a JSON object (`_finding_start`, remembered when ``clean`` depends on
    nothing but the text, then its frames)."""
    start: str | None
    if clean.show_secrets or clean.secrets:
        start = _finding_start(finding, clean.text)
    else:
        key = (finding.check, finding.expected, finding.found)
        start = _FINDING_STARTS.get(key)
        if start is None:
            start = _finding_start(finding, clean.text)
            _FINDING_STARTS.keep(key, start, len(start))
    return f'{start}{", ".join(map(str, finding.frames))}]}}'


def _finding_start(finding: Finding, text: Callable[[str], str]) -> str:
    """A finding's JSON object up to its frame numbers: `_finding`'s plain twin (``text``:
    the cleaner's `text`)."""
    head = _FINDING_HEADS.get(finding.check)
    if head is None:
        check = lookup(finding.check)
        head = _FINDING_HEADS[finding.check] = (
            f'{{"id": {_encode(check.id)}, "severity": {_encode(check.severity.value)}, '
            f'"rfc": {_encode(check.rfc)}, "title": {_encode(check.title)}, "expected": ')
    return (f'{head}{_quote(text(finding.expected))}, '
            f'"found": {_quote(text(finding.found))}, "frames": [')


# `_attribution`'s text for attempts without secret values (the shared plain Cleaner, whose
# `text` is a pure function), by the attribution's fields: a run's attempts share a handful
# of attributions (a success names only its client; a failure's client error lines repeat
# with its status and URL), and cleaning and quoting each of their ≈ 9 texts again cost
# ≈ 15 k instructions a line. Bounded, like the Cleaner's own memory.
# An attribution's JSON is ≈ 120-950 characters (the dense mix); a run has a few hundred.
_ATTRIBUTION_TEXTS: Remembered[tuple[object, ...], str] = Remembered(1024, longest=2048)


def _attribution(diagnosis: Diagnosis, clean: Cleaner) -> str:
    """The attribution as a JSON object (`_attribution_plain`, remembered when ``clean``
    depends on nothing but the text)."""
    who = diagnosis.attribution
    if clean.show_secrets or clean.secrets:
        return _attribution_plain(who, clean)
    key = (who.server, who.confidence, who.evidence, who.server_log, who.client,
           who.client_errors)
    made = _ATTRIBUTION_TEXTS.get(key)
    if made is None:
        made = _attribution_plain(who, clean)
        _ATTRIBUTION_TEXTS.keep(key, made, len(made))
    return made


def _attribution_plain(who: Attribution, clean: Cleaner) -> str:
    """The attribution as a JSON object, every text cleaned (`_attribution`'s plain twin)."""
    text = clean.text
    return (
        f'{{"server": {"null" if who.server is None else _quote(who.server)}, '
        f'"confidence": {_quote(who.confidence) if who.confidence else "null"}, '
        f'"evidence": {_texts(who.evidence, text)}, '
        f'"server_log": {_quote(text(who.server_log)) if who.server_log else "null"}, '
        f'"client": {_quote(text(who.client)) if who.client else "null"}, '
        f'"client_errors": {_texts(who.client_errors, text)}}}'
    )
