"""One attempt as plain fields: the single source of what every output format shows."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from analyzer.checks.catalogue import CATALOGUE, Finding, Severity, lookup
from analyzer.exchange.model import AttemptKind, Endpoint, TlsInfo
from analyzer.life.model import Lifetime
from analyzer.remembered import Remembered
from analyzer.report.safe import Cleaner, neutralise
from analyzer.verdict import Diagnosis, Verdict


def iso_time(seconds: float) -> str:
    """The time in UTC, ISO 8601 with microseconds and "Z". A timestamp that no year from 1
    to 9999 holds (a damaged or crafted capture: atheris found one) is no date, and is given as
    its seconds since 1970, "@14475000000000.000000", instead of ending the report.

    `iso_time_plain` with the date and time of day worked out once per second: building a
    datetime and its text was ≈ 20 k instructions, 3 % of an attempt's JSONL line."""
    # The microseconds as datetime.fromtimestamp rounds them (CPython's
    # _PyTime_DoubleToDenominator: modf, then round half to even, then carry).
    fraction, whole = math.modf(seconds)
    try:
        micro = round(fraction * 1e6)
        if micro >= 1_000_000:
            micro -= 1_000_000
            whole += 1.0
        elif micro < 0:
            micro += 1_000_000
            whole -= 1.0
        second = int(whole)
    except (OverflowError, ValueError):  # inf, nan
        return iso_time_plain(seconds)
    prefix = _seconds.get(second)
    if prefix is None:
        try:
            stamp = datetime.fromtimestamp(second, UTC)
        except (OverflowError, OSError, ValueError):
            return iso_time_plain(seconds)
        # attempts come in time order: an emptied memory does not need the old seconds
        prefix = _seconds.keep(second, stamp.isoformat(timespec="seconds")[:-6])  # no "+00:00"
    return f"{prefix}.{micro:06d}Z"


_seconds: Remembered[int, str] = Remembered()  # whole seconds since 1970 -> "YYYY-MM-DDTHH:MM:SS"


# `str(endpoint)` by (packed address, port): a JSONL line and the tally format an attempt's
# endpoints three times, ≈ 3.6 k instructions each through the dataclass's Python __str__;
# the look-up's key is built and hashed in C. A capture holds few endpoints; bounded.
_endpoint_texts: Remembered[tuple[bytes, int], str] = Remembered()


def endpoint_text(endpoint: Endpoint) -> str:
    """``str(endpoint)``, remembered (its plain twin; tests/test_fields.py)."""
    key = (endpoint.address, endpoint.port)
    text = _endpoint_texts.get(key)
    if text is None:
        text = _endpoint_texts.keep(key, str(endpoint))
    return text


def iso_time_plain(seconds: float) -> str:
    """`iso_time`'s plain twin, through datetime each time (tests/test_safe_output.py compares
    the two)."""
    try:
        stamp = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return f"@{seconds:.6f}"
    return stamp.isoformat(timespec="microseconds").replace("+00:00", "Z")


def time_of_day(iso: str, fraction: bool = True) -> str:
    """HH:MM:SS (with milliseconds if ``fraction``) of an `iso_time` text; one that is no
    date as it is."""
    if not iso.endswith("Z"):
        return iso
    return iso[11:23] if fraction else iso[11:19]


# (an Enum member read off its class costs ≈ 0.1 µs in Python 3.11, ≈ 1 k instructions: read
# once here, for the test every attempt takes)
_SUCCEEDED = Verdict.SUCCEEDED


def reason_text(diagnosis: Diagnosis) -> str:
    """The primary reason in plain words, with what was found (raw: see ``Cleaner.text``)."""
    attempt = diagnosis.attempt
    if diagnosis.verdict is _SUCCEEDED:
        facts = diagnosis.facts  # (its heads: the attempt's, without the properties' calls)
        protocol = facts.protocol or "the new protocol"
        tunnel = attempt.transport != "h2" or facts.protocol == "connect"
        request = facts.request_head
        if tunnel and request is not None and request.method.upper() == "CONNECT":
            carried = next((f.found for f in diagnosis.findings if f.check == "tunnel_carried"),
                           None)
            return f"tunnel established ({carried})" if carried else "tunnel established"
        text = f"switched to {protocol}"
        # (loops, not generators: every success's line asks, and most have one finding)
        for finding in diagnosis.findings:
            if finding.check == "h2c_upgraded_request_status":
                if finding.found:
                    text += f" (answer: {finding.found})"
                break
        response = facts.response_head
        chosen = response.headers.get("sec-websocket-protocol") if response else None
        if chosen:
            text += f" (subprotocol {chosen})"
        for finding in diagnosis.findings:
            title = _NOTE_TITLES.get(finding.check)
            if title is not None:  # the first finding that is more than information
                text += f"; note: {title}"
                break
        return text
    primary = diagnosis.primary
    return "" if primary is None else finding_text(primary)


# The titles of the catalogue's entries above information (`reason_text`'s notes), by id.
# (`is not` INFO: the Enum's identity, not its ``value`` property's text)
_NOTE_TITLES = {check.id: check.title for check in CATALOGUE if check.severity is not Severity.INFO}


def finding_text(finding: Finding) -> str:
    """A finding as a reason: its title, with what was found (every format's `reason`, the
    `ended` lines of a connection in life too)."""
    title = lookup(finding.check).title
    return f"{title} ({finding.found})" if finding.found else title


def attempt_fields(diagnosis: Diagnosis, show_secrets: bool = False) -> dict[str, Any]:
    """The documented per-attempt schema (README: "JSON fields").

    Every string that came from the capture is neutralised, and redacted unless
    ``show_secrets``: JSON escaping alone leaves ``jq -r`` printing a raw ESC.
    """
    attempt = diagnosis.attempt
    clean = Cleaner.for_attempt(attempt, show_secrets)
    request = attempt.request_head
    response = attempt.response_head
    host = request.headers.get("host") or request.headers.get(":authority") if request else None
    findings = []
    for finding in diagnosis.findings:
        check = lookup(finding.check)
        findings.append(
            {
                "id": check.id,
                "severity": check.severity.value,
                "rfc": check.rfc,
                "title": check.title,
                "expected": clean.text(finding.expected),
                "found": clean.text(finding.found),
                "frames": list(finding.frames),
            }
        )
    return {
        "number": diagnosis.number,
        "kind": attempt.kind.value,
        "client": str(attempt.client),
        "server": str(attempt.server),
        "time": iso_time(attempt.time),
        "method": clean.text(request.method) if request else None,
        "path": clean.target(request.target) if request else None,
        "host": clean.text(host) if host is not None else None,
        "offered": clean.texts(diagnosis.facts.offered),
        "protocol": clean.text(diagnosis.facts.protocol) or None,
        "status": response.status if response else None,
        "status_reason": clean.text(response.reason) if response else None,
        "verdict": diagnosis.verdict.value,
        "reason": clean.text(reason_text(diagnosis)),
        "reasons": [f.check for f in diagnosis.findings],
        "findings": findings,
        "request_frame": attempt.request.first_frame if attempt.request else None,
        "response_frame": attempt.response.first_frame if attempt.response else None,
        "syn_frame": attempt.tcp.syn.frame if attempt.tcp.syn else None,
        "connection_exchange": attempt.sequence if attempt.kind is AttemptKind.HTTP else None,
        "transport": attempt.transport,
        "stream_id": attempt.stream_id,
        "attribution": _attribution_fields(diagnosis, clean),
        "tls": tls_fields(attempt.tls, clean),
        "lifetime": lifetime_fields(diagnosis.lifetime, clean),
        **_origin_fields(diagnosis),
    }


def lifetime_fields(life: Lifetime | None, clean: Cleaner) -> dict[str, Any] | None:
    """How a switched connection lived after its watch window (None: it ended inside it,
    or was not switched). The close reason is the peer's text: it goes through ``clean``."""
    if life is None:
        return None
    return {
        "duration_s": life.duration_s,
        "closed_by": life.closed_by or None,
        "closer": str(life.closer) if life.closer is not None else None,
        "how": life.how,
        "idle_before_end_s": life.idle_before_end_s,
        "close_code": life.close_code,
        "close_side": life.close_side or None,
        "close_reason": clean.text(life.close_reason) or None,
        "client_bytes": life.client_bytes,
        "server_bytes": life.server_bytes,
        "client_last": iso_time(life.client_last) if life.client_last else None,
        "server_last": iso_time(life.server_last) if life.server_last else None,
        "end_frame": life.end_frame or None,
        "end_time": iso_time(life.end_time) if life.end_time else None,
    }


def tls_fields(tls: TlsInfo | None, clean: Cleaner) -> dict[str, Any] | None:
    """The TLS session an attempt travelled in (None for cleartext). No key material, ever."""
    if tls is None:
        return None
    leaf = tls.certificates[0] if tls.certificates else None
    return {
        "version": tls.version or None,
        "suite": tls.cipher_suite or None,
        "sni": clean.text(tls.sni) or None,
        "alpn": clean.text(tls.alpn) or None,
        "alpn_offered": clean.texts(tls.alpn_offered),
        "decrypted": tls.decrypted,
        "resumed": tls.resumed,
        "key": tls.key or None,
        "alerts": [{"side": a.side, "level": a.level, "description": a.description or None,
                    "frame": a.frame} for a in tls.alerts],
        "certificate": None if leaf is None else {
            "subject": clean.text(leaf.subject), "issuer": clean.text(leaf.issuer),
            "names": clean.texts(leaf.san_names),
            "not_before": iso_time(leaf.not_before), "not_after": iso_time(leaf.not_after)},
        "client_hello_frame": tls.client_hello_frame or None,
        "server_hello_frame": tls.server_hello_frame or None,
        "handshake_hole_frame": tls.hole_frame or None,
        "decryption_stopped_frame": tls.hole_stop_frame or None,
        "early_data": tls.early_data or None,
    }


def scheme(diagnosis: Diagnosis) -> str:
    """"wss" or "https" for an attempt inside TLS (what the client dialled), else ""."""
    if diagnosis.attempt.tls is None:
        return ""
    return "wss" if diagnosis.facts.websocket else "https"


def _origin_fields(diagnosis: Diagnosis) -> dict[str, Any]:
    """`file` and `file_frame` when several files are read: where to open the attempt in
    Wireshark (frame numbers elsewhere count over the merged capture)."""
    if diagnosis.origin is None:
        return {}
    return {"file": neutralise(diagnosis.origin[0]), "file_frame": diagnosis.origin[1]}


def _attribution_fields(diagnosis: Diagnosis, clean: Cleaner) -> dict[str, Any]:
    who = diagnosis.attribution
    return {
        "server": who.server,
        "confidence": who.confidence or None,
        "evidence": clean.texts(who.evidence),
        "server_log": clean.text(who.server_log) if who.server_log else None,
        "client": clean.text(who.client) if who.client else None,
        "client_errors": clean.texts(who.client_errors),
    }


def request_label(diagnosis: Diagnosis, show_secrets: bool = False,
                  clean: Cleaner | None = None) -> str:
    """``METHOD target`` of the request, safe to print (``clean``: the attempt's Cleaner,
    when the caller has made it already)."""
    request = diagnosis.attempt.request_head
    if clean is None:
        clean = Cleaner.for_attempt(diagnosis.attempt, show_secrets)
    tls = diagnosis.attempt.tls
    if diagnosis.attempt.kind is AttemptKind.TLS and tls is not None:
        return f"(TLS {clean.text(tls.sni)})" if tls.sni else "(TLS only)"
    if request is None:
        if diagnosis.attempt.transport == "h2":  # (a connection's attempt: exchange/h2.py)
            return "(HTTP/2 preface only)"
        return "(TCP only)" if diagnosis.attempt.kind is AttemptKind.TCP else "(not captured)"
    label = f"{clean.text(request.method)} {clean.target(request.target)}"
    if diagnosis.attempt.transport == "h2":  # which stream of the HTTP/2 connection
        label = f"[h2 #{diagnosis.attempt.stream_id}] {label}"
    return f"{label} ({scheme(diagnosis)})" if tls is not None else label
