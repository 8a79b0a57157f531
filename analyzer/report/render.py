"""Output formats. Each renderer returns text; the CLI decides where it goes."""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from analyzer.attribution import ended_client_errors
from analyzer.checks.catalogue import lookup
from analyzer.exchange.model import NO_KEY, NOT_IN_EMBEDDED_KEYS, NOT_IN_KEY_LOG
from analyzer.life.groups import ClosedGroup, ClosedTally, abnormal_end
from analyzer.life.model import Ended
from analyzer.redirects import Chain, redirect_chains
from analyzer.report.clock import UTC_CLOCK, Clock
from analyzer.report.fields import (
    attempt_fields,
    finding_text,
    iso_time,
    lifetime_fields,
    time_of_day,
)
from analyzer.report.jsonl import decided_line
from analyzer.report.safe import (
    Cleaner,
    csv_cell,
    markdown_text,
    neutralise,
    safe_target,
    safe_text,
)
from analyzer.report.table import TableStyle, markdown_table, sorted_table
from analyzer.source.frame import CaptureWarning
from analyzer.storms import Storm, storms
from analyzer.values import MAX_LISTED_TCP_ATTEMPTS, RunStats
from analyzer.verdict import Diagnosis

SCHEMA = 2  # of the JSON document and the JSONL lines (wave2-decisions.md)
FORMATS = ("table", "json", "jsonl", "csv", "markdown")
READ_FORMATS = (*FORMATS, "html")  # a page is written once, at the end: not for `live`
_CSV_FIELDS = ("number", "kind", "client", "server", "time", "method", "path", "host", "offered",
               "protocol", "status", "verdict", "reason", "reasons", "request_frame",
               "response_frame", "transport", "stream_id", "tls_version", "tls_suite",
               "tls_sni", "tls_alpn", "tls_decrypted", "lifetime_s", "closed_by", "end_how",
               "idle_before_end_s", "close_code", "file", "file_frame")
# CSV columns read from the `lifetime` object (flattened)
_CSV_LIFETIME = {"lifetime_s": "duration_s", "closed_by": "closed_by", "end_how": "how",
                 "idle_before_end_s": "idle_before_end_s", "close_code": "close_code"}


def render_table(diagnoses: Sequence[Diagnosis], stats: RunStats,
                 warnings: Sequence[CaptureWarning], markdown: bool = False,
                 show_secrets: bool = False, *, style: TableStyle | None = None,
                 apart: Counter[str] | None = None,
                 context: Sequence[Diagnosis] | None = None) -> str:
    """The table (or Markdown) and the summary. `style` fits it to a terminal, names files and
    sets the clock; `apart` and `context` as for `summary_fields`."""
    style = style or TableStyle(show_secrets=show_secrets)
    clock = style.clock.spanning([d.attempt.time for d in diagnoses])
    style = TableStyle(clock, style.width, style.files, style.show_secrets)
    parts = []
    if diagnoses:
        parts.append(markdown_table(diagnoses, style) if markdown
                     else sorted_table(diagnoses, style))
    else:
        parts.append("No upgrade attempts found.")
    parts.append("")
    summary = summary_text(diagnoses, stats, warnings, style.show_secrets, clock=clock,
                           apart=apart, context=context)
    parts.append(markdown_text(summary) if markdown else summary)  # '<img', '![' from the capture
    return "\n".join(parts)


def summary_fields(diagnoses: Sequence[Diagnosis], stats: RunStats,
                   warnings: Sequence[CaptureWarning], show_secrets: bool = False, *,
                   apart: Counter[str] | None = None,
                   context: Sequence[Diagnosis] | None = None) -> dict[str, Any]:
    """The summary of the attempts listed. `apart`: connection attempts that never reached
    HTTP, not listed (no --tcp), by verdict. `context`: every attempt before the user's
    filters, so that a redirect chain ends where it really ended even when the attempt that
    followed it is filtered out (`--failed`); chains are shown when they hold a listed one."""
    verdicts = Counter(d.verdict.value for d in diagnoses)
    reasons = Counter(d.primary.check for d in diagnoses if d.primary is not None
                      and d.verdict.value != "succeeded")
    return summary_of(len(diagnoses), verdicts, reasons, storms(diagnoses),
                      _chains(diagnoses, context), stats, warnings, show_secrets, apart=apart,
                      closed=_closed_tally(diagnoses))


def summary_of(attempts: int, verdicts: Counter[str], reasons: Counter[str],
               groups: Sequence[Storm], chains: Iterable[Chain], stats: RunStats,
               warnings: Sequence[CaptureWarning], show_secrets: bool = False, *,
               apart: Counter[str] | None = None,
               closed: ClosedTally | None = None) -> dict[str, Any]:
    """The summary from its parts (counts in report order), however they were gathered: from
    the attempts in memory, or from a spilled report's records (report/kept.py)."""
    fields = {
        "attempts": attempts,
        "verdicts": dict(sorted(verdicts.items())),
        "reasons": dict(reasons.most_common()),
        **capture_fields(stats),
        "first_time": iso_time(stats.first_time) if stats.first_time is not None else None,
        "last_time": iso_time(stats.last_time) if stats.last_time is not None else None,
        "warnings": warning_texts(warnings, show_secrets),
        "repeated": repeated_fields(groups, show_secrets),
        "closed": closed_fields(closed or ClosedTally(), show_secrets),
        "redirects": [
            {"client": c.client, "steps": [safe_target(s, show_secrets) for s in c.steps],
             "verdict": c.verdict, "first_time": iso_time(c.first), "last_time": iso_time(c.last)}
            for c in chains
        ],
    }
    if apart is not None:
        fields["tcp_only_attempts"] = dict(sorted(apart.items()))
    return fields


def _chains(diagnoses: Sequence[Diagnosis], context: Sequence[Diagnosis] | None) -> list[Chain]:
    if context is None:
        return redirect_chains(diagnoses)
    listed = {d.number for d in diagnoses}
    return [c for c in redirect_chains(context) if listed.intersection(c.numbers)]


def capture_fields(stats: RunStats) -> dict[str, Any]:
    """The summary fields about the capture itself (shared by `read` and `live`)."""
    return {
        "frames": stats.frames,
        "tcp_segments": stats.tcp_segments,
        "connections": stats.connections,
        "http_connections": stats.http_connections,
        "ordinary_http_exchanges": stats.ordinary_exchanges,
        "frames_without_tcp": dict(stats.skipped.most_common()),
        "evicted_connections": stats.evicted_connections,
        "unlisted_tcp_attempts": dict(stats.unlisted_tcp_attempts.most_common()),
        "abandoned_heads": stats.abandoned_heads,
        "snaplen_cut_segments": stats.snaplen_cut_segments,
        "connections_captured_twice": stats.connections_captured_twice,
        "timestamps_backwards": stats.timestamps_backwards,
        "timestamps_backwards_first_frame": stats.timestamps_backwards_first_frame or None,
        "timestamps_backwards_largest_s": round(stats.timestamps_backwards_largest_s, 6),
        "tls_decrypted": stats.tls_decrypted,
        "tls_not_inspected": stats.tls_uninspected,
        "tls_unused": stats.tls_unused,
        "tls_sessions_not_inspected": [
            {"client": str(s.client), "server": str(s.server), "sni": safe_text(s.sni) or None,
             "alpn": safe_text(s.alpn) or None,
             "alpn_offered": safe_text(s.alpn_offered).split(",") if s.alpn_offered else [],
             "version": s.version or None,
             "first_frame": s.first_frame, "last_frame": s.last_frame, "reason": s.reason}
            for s in stats.tls_uninspected_listed],
        "keylog_lines_ignored": stats.keylog_ignored_lines,
        "quic_flows": stats.quic_flows,
    }


def warning_texts(warnings: Sequence[CaptureWarning], show_secrets: bool = False) -> list[str]:
    """The capture's warnings as shown (a file name or a damaged field may quote a secret)."""
    return [safe_text(f"{w.source}: {w.where}: {w.message}", show_secrets) for w in warnings]


def repeated_fields(groups: Sequence[Storm], show_secrets: bool = False) -> list[dict[str, Any]]:
    return [
        {"count": s.count, "client": s.client, "server": s.server,
         "request": safe_target(s.request, show_secrets), "verdict": s.verdict, "reason": s.reason,
         "first_time": iso_time(s.first), "last_time": iso_time(s.last)}
        for s in groups
    ]


def _closed_tally(diagnoses: Sequence[Diagnosis]) -> ClosedTally:
    tally = ClosedTally()
    for d in diagnoses:
        life = d.lifetime
        if life is not None and abnormal_end(life):
            tally.add(d.attempt.request_head.target if d.attempt.request_head else "",
                      life.closer.ip if life.closer else "?", life.idle_before_end_s, life.how)
    return tally


def closed_fields(tally: ClosedTally, show_secrets: bool = False) -> list[dict[str, Any]]:
    """Groups of like abnormal ends (the `Closed:` lines)."""
    return [{"count": g.count, "path": safe_target(g.target, show_secrets), "closer": g.closer,
             "idle_before_end_s": round(g.idle_s, 1), "how": g.how} for g in tally.groups()]


def closed_lines(groups: Sequence[dict[str, Any]], most: int = 10) -> list[str]:
    """ "Closed: 37 WebSockets to /ws were closed by 10.0.0.5 60.0 s after their last frame"."""
    return [ClosedGroup(g["count"], g["path"], g["closer"], g["idle_before_end_s"],
                        g["how"]).line() for g in groups[:most]]


def repeated_lines(groups: Sequence[dict[str, Any]], most: int = 10,
                   clock: Clock = UTC_CLOCK) -> list[str]:
    """One summary line per group of repeated attempts (reconnect loops, scans)."""
    return [
        f"Repeated: {g['count']} x {g['client']} -> {g['server']} {g['request']}: {g['verdict']}"
        + (f" ({g['reason']})" if g["reason"] else "")
        + f", {_clock_time(g['first_time'], clock)} to {_clock_time(g['last_time'], clock)}"
        + _RETRIED.get(g["reason"] or "", "")
        for g in groups[:most]
    ]


# Repeats that the client's own stack makes, not its application: a stream refused before
# any processing may be retried (RFC 9113 §8.7), and Chromium retries one new WebSocket's
# refused stream on its own (three streams in the sweep of the twenty-ninth session)
_RETRIED = {"h2_stream_refused": "; HTTP/2 clients retry a refused stream on their own "
                                 "(Chromium does): fewer WebSockets than attempts, perhaps one"}


def _clock_time(iso: str, clock: Clock) -> str:
    if clock is UTC_CLOCK or not iso.endswith("Z"):
        return time_of_day(iso, False)
    return clock.time(datetime.fromisoformat(iso).timestamp(), fraction=False)


def apart_line(apart: Counter[str] | dict[str, int]) -> str | None:
    """The summary line for connection attempts that never reached HTTP and are not listed."""
    if not apart:
        return None
    verdicts = ", ".join(f"{n} {v}" for v, n in sorted(apart.items()))
    return (f"Never reached HTTP (refused or unanswered connections; --tcp lists them): "
            f"{sum(apart.values())} ({verdicts})")


def summary_text(diagnoses: Sequence[Diagnosis], stats: RunStats,
                 warnings: Sequence[CaptureWarning], show_secrets: bool = False, *,
                 clock: Clock = UTC_CLOCK, apart: Counter[str] | None = None,
                 context: Sequence[Diagnosis] | None = None) -> str:
    return summary_lines(summary_fields(diagnoses, stats, warnings, show_secrets, apart=apart,
                                        context=context), clock)


def summary_lines(s: dict[str, Any], clock: Clock = UTC_CLOCK) -> str:
    """The summary as text, from `summary_fields` (or `summary_of`)."""
    lines = []
    verdicts = ", ".join(f"{n} {v}" for v, n in s["verdicts"].items()) or "none"
    lines.append(f"Attempts: {s['attempts']} ({verdicts})")
    if s["reasons"]:
        lines.append("Reasons: " + ", ".join(f"{r} x{n}" for r, n in s["reasons"].items()))
    if (line := apart_line(s.get("tcp_only_attempts") or {})) is not None:
        lines.append(line)
    lines.extend(repeated_lines(s["repeated"], clock=clock))
    lines.extend(closed_lines(s["closed"]))
    lines.extend(f"Redirected: {c['client']}: {' -> '.join(c['steps'])}: {c['verdict']}"
                 for c in s["redirects"][:10])
    lines.extend(capture_lines(s))
    lines.extend(f"Warning: {w}" for w in s["warnings"])
    return "\n".join(lines)


def capture_lines(s: dict[str, Any]) -> list[str]:
    """The summary lines about the capture itself (shared by `read` and `live`)."""
    lines = [
        f"Frames: {s['frames']}, TCP segments: {s['tcp_segments']}, connections: "
        f"{s['connections']} ({s['http_connections']} HTTP), ordinary HTTP exchanges: "
        f"{s['ordinary_http_exchanges']}"
    ]
    if s["frames_without_tcp"]:
        lines.append("Frames without TCP: " + ", ".join(
            f"{r} x{n}" for r, n in s["frames_without_tcp"].items()))
    if s["evicted_connections"]:
        lines.append(f"Connections evicted (table full): {s['evicted_connections']}")
    if s["unlisted_tcp_attempts"]:
        lines.append(unlisted_line(s["unlisted_tcp_attempts"]))
    if s["abandoned_heads"]:
        lines.append(f"HTTP heads abandoned (no end within 64 KiB): {s['abandoned_heads']}")
    if s.get("snaplen_cut_segments"):
        lines.append(f"Segments cut by the capture's snapshot length: "
                     f"{s['snaplen_cut_segments']} (their bytes past it are holes: handshakes "
                     "whose heads were cut may be missing or inconclusive; capture again with "
                     "tcpdump -s 0)")
    lines.extend(capture_notes(s))
    if s["tls_not_inspected"]:
        lines.append(tls_uninspected_line(s["tls_not_inspected"],
                                          s["tls_sessions_not_inspected"]))
    if s["tls_decrypted"]:
        lines.append(f"TLS sessions decrypted: {s['tls_decrypted']}")
    if s.get("tls_unused"):
        lines.append(f"TLS sessions never used: {s['tls_unused']} (the client completed the "
                     "handshake, then sent no request and no alert: a browser's spare or "
                     "preconnected connections, or ones the server closed idle)")
    if s["keylog_lines_ignored"]:
        lines.append(f"Key log: {s['keylog_lines_ignored']} line(s) ignored (not a secret)")
    if s.get("quic_flows"):
        lines.append(f"QUIC flows seen (HTTP/3, not analysed): {s['quic_flows']}")
    return lines


# Steps back smaller than this are not said in the text summaries (JSON counts them all): a
# capture on several queues or interfaces steps back by microseconds (CheckOCPP's real
# capture: once, 2 µs), which changes no duration the report gives in milliseconds.
BACKWARDS_WORTH_SAYING = 0.001


def capture_notes(s: dict[str, Any]) -> list[str]:
    """What the capture's own making changes in what the report measures, as sentences (the
    text summaries' lines, the HTML page's): timestamps that step back, connections captured
    twice. None of them when it did not happen (or in a summary written before they were
    counted), nor for steps back under `BACKWARDS_WORTH_SAYING`."""
    notes = []
    back = s.get("timestamps_backwards")
    if back and s["timestamps_backwards_largest_s"] >= BACKWARDS_WORTH_SAYING:
        notes.append(
            f"Timestamps go backwards {back:,} time{'' if back == 1 else 's'} (first at frame "
            f"{s['timestamps_backwards_first_frame'] or 0:,}, by up to "
            f"{_step(s['timestamps_backwards_largest_s'])}): durations and timeouts near those "
            "frames may be wrong; sort the capture with reordercap")
    if twice := s.get("connections_captured_twice"):
        notes.append(
            f"{twice:,} connection{' was' if twice == 1 else 's were'} captured twice (the "
            f"same SYN seen again after {'its' if twice == 1 else 'their'} end: a capture on "
            "several interfaces, or merged files); counted once")
    return notes


def _step(seconds: float) -> str:
    """A step back in time for people: "40 µs", "12.5 ms", "2.5 s", "3,600 s"."""
    if seconds < 0.001:
        return f"{seconds * 1e6:.3g} µs"
    if seconds < 1:
        return f"{seconds * 1000:.3g} ms"
    return f"{seconds:.3g} s" if seconds < 1000 else f"{seconds:,.0f} s"


_CLIENT_KEY_LOG = ("the key log of the client process that made them (SSLKEYLOGFILE set "
                   "before it started)")
# The hint for the first of these reasons among the sessions listed, in this order
_KEY_HINTS = (
    (NO_KEY, "; use --keylog"),
    (NOT_IN_EMBEDDED_KEYS, f"; use --keylog with {_CLIENT_KEY_LOG}"),
    (NOT_IN_KEY_LOG, f"; use {_CLIENT_KEY_LOG}"),
)


def tls_uninspected_line(count: int, listed: Sequence[dict[str, Any]]) -> str:
    """"N TLS sessions could not be inspected (no key): M to SNI x with ALPN y; use --keylog";
    when a key log was given and lacks them, where their keys must come from instead. The
    ALPN is the server's choice when the capture shows it (TLS 1.2), else the client's offer
    ("offering ALPN h2,http/1.1": TLS 1.3 encrypts the choice)."""
    groups = Counter((s["sni"] or "(no SNI)", _alpn_words(s), s["reason"]) for s in listed)
    parts = [f"{n} to SNI {sni} {alpn}" + ("" if why == NO_KEY else f" ({why})")
             for (sni, alpn, why), n in groups.most_common(3)]
    more = "; ..." if len(groups) > 3 else ""
    reasons = {s["reason"] for s in listed}
    hint = next((hint for why, hint in _KEY_HINTS if why in reasons), "")
    return (f"{count} TLS session(s) could not be inspected (no key): {'; '.join(parts)}{more}"
            f"{hint}")


def _alpn_words(session: dict[str, Any]) -> str:
    if session["alpn"]:
        return f"with ALPN {session['alpn']}"
    offered = session.get("alpn_offered")  # (absent from the JSON of older versions)
    return f"offering ALPN {','.join(offered)}" if offered else "without ALPN"


def unlisted_line(counts: dict[str, int]) -> str:
    """The summary line for connection attempts counted instead of listed (a SYN flood)."""
    reasons = ", ".join(f"{r} x{n}" for r, n in counts.items())
    return (f"Connection attempts not listed (never reached HTTP; only the first "
            f"{MAX_LISTED_TCP_ATTEMPTS} are): {sum(counts.values())} ({reasons})")


def render_json(diagnoses: Sequence[Diagnosis], stats: RunStats,
                warnings: Sequence[CaptureWarning], show_secrets: bool = False) -> str:
    return "".join(iter_json(diagnoses, stats, warnings, show_secrets))


def iter_json(diagnoses: Sequence[Diagnosis], stats: RunStats,
              warnings: Sequence[CaptureWarning], show_secrets: bool = False, *,
              apart: Counter[str] | None = None,
              context: Sequence[Diagnosis] | None = None) -> Iterator[str]:
    """The JSON report, ``{"attempts": [...], "summary": {...}}`` as ``json.dumps(document,
    indent=2)`` writes it, in pieces: one per attempt, so the whole text never has to be in
    memory at once (on a 1 GB capture the one string, built from a million small pieces,
    peaked at 40 MB more than the analysis itself; benchmarks/README.md)."""
    yield JSON_START
    for n, d in enumerate(diagnoses):
        yield ("\n    " if n == 0 else ",\n    ") + json_attempt(d, show_secrets)
    yield json_end(bool(diagnoses), summary_fields(diagnoses, stats, warnings, show_secrets,
                                                   apart=apart, context=context))


JSON_START = '{\n  "schema": ' + str(SCHEMA) + ',\n  "attempts": ['


def json_attempt(diagnosis: Diagnosis, show_secrets: bool = False) -> str:
    """One attempt as an element of the JSON report's list (two levels deep): its JSONL line
    (the same fields, written as compact text without a dict: report/jsonl.py) laid out in C
    (decode/_indent.pxi). A refused handshake's fields as a dict indented in Python took
    ≈ 85-115 µs, its line laid out ≈ 20-45 µs (benchmarks/README.md, "Twenty-third
    session"). Without the compiled module, or for a line it does not take, `json_attempt_dict`."""
    if _indent_json is not None:
        line = decided_line(diagnosis, show_secrets)
        if line.startswith(_DECIDED_HEAD):
            text: str | None = _indent_json("{" + line[len(_DECIDED_HEAD):], "\n    ")
            if text is not None:
                return text
    return json_attempt_dict(diagnosis, show_secrets)


def json_attempt_dict(diagnosis: Diagnosis, show_secrets: bool = False) -> str:
    """`json_attempt` from the fields as a dict, indented in Python (`indented_json`)."""
    return indented_json(attempt_fields(diagnosis, show_secrets), "\n    ")


_DECIDED_HEAD = '{"event": "decided", '  # the JSONL line's first field, not the JSON report's
try:
    from analyzer.decode._fastpath import indent_json as _indent_json
except ImportError:  # pragma: no cover - exercised by the pure-Python install
    _indent_json = None


def json_attempt_plain(diagnosis: Diagnosis, show_secrets: bool = False) -> str:
    """`json_attempt` through ``json.dumps`` (its plain twin, tests/test_fields.py)."""
    text = json.dumps(attempt_fields(diagnosis, show_secrets), indent=2)
    # JSON text has no raw newline inside a string, so every "\n" starts a line.
    return text.replace("\n", "\n    ")


class _NotPlain(Exception):
    """A value `indented_json` leaves to ``json.dumps`` (a key that is not a string, a type
    JSON has no plain form for)."""


_quote = json.encoder.encode_basestring_ascii  # json.dumps's own (C) string encoder
_int_text = int.__repr__  # what json.dumps writes for an int (and an int Enum)
_float_text = float.__repr__
_INFINITY = float("inf")


def indented_json(value: Any, indent: str = "\n") -> str:
    """``json.dumps(value, indent=2)``, each line after the first starting with ``indent``
    less its newline. json.dumps indents in Python (its C encoder cannot), through closures
    that refer to each other: ≈ 20 µs an attempt and ≈ 30 objects of cyclic garbage each,
    which the collector walked every attempt kept (≈ 0.66 s of a JSON report of 100,000
    attempts); this is ≈ 12 µs and makes none."""
    try:
        return _indented(value, indent)
    except _NotPlain:
        return json.dumps(value, indent=2).replace("\n", indent)


def _indented(value: Any, indent: str) -> str:
    if isinstance(value, str):
        return _quote(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return _int_text(value)
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value == _INFINITY or value == -_INFINITY:
            return "Infinity" if value > 0 else "-Infinity"
        return _float_text(value)
    inner = indent + "  "
    if isinstance(value, dict):
        if not value:
            return "{}"
        parts = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise _NotPlain
            kind = type(item)  # the usual values inline, without a call
            if kind is str:
                text = _quote(item)
            elif item is None:
                text = "null"
            elif kind is int:
                text = _int_text(item)
            else:
                text = _indented(item, inner)
            parts.append(_quote(key) + ": " + text)
        return "{" + inner + ("," + inner).join(parts) + indent + "}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        return "[" + inner + ("," + inner).join([
            _quote(item) if type(item) is str else _indented(item, inner) for item in value
        ]) + indent + "]"
    raise _NotPlain


def json_end(any_attempts: bool, summary: dict[str, Any]) -> str:
    """The end of the JSON report: the list closed, then the summary."""
    text = json.dumps(summary, indent=2)
    return (("\n  ]," if any_attempts else "],") + '\n  "summary": '
            + text.replace("\n", "\n  ") + "\n}")


# json.dumps's own settings, made once for every line rather than per call. The cycle check is
# off: the fields are a tree freshly built by attempt_fields, and the output is the same.
_JSONL_ENCODER = json.JSONEncoder(check_circular=False)


def summary_document(fields: dict[str, Any], fmt: str) -> str:
    """``--summary-only`` as JSON: a document with the schema like the full report
    (``-F json``), or one line (``-F jsonl``: its lines carry no schema, as the others)."""
    if fmt == "json":
        return json.dumps({"schema": SCHEMA, "summary": fields}, indent=2)
    return json.dumps({"summary": fields})


def render_jsonl_line(diagnosis: Diagnosis, show_secrets: bool = False) -> str:
    """The `decided` line of an attempt (wave2-decisions.md, "Streamed output"), written
    directly (report/jsonl.py): the same text as `render_jsonl_line_plain`."""
    return decided_line(diagnosis, show_secrets)


def render_jsonl_line_plain(diagnosis: Diagnosis, show_secrets: bool = False) -> str:
    """`render_jsonl_line`'s plain twin: the fields, then the encoder (tests/test_fields.py)."""
    return _JSONL_ENCODER.encode({"event": "decided", **attempt_fields(diagnosis, show_secrets)})


def ended_fields(ended: Ended, show_secrets: bool = False) -> dict[str, Any]:
    """The `ended` event of an attempt whose connection was followed past its watch window:
    the same `number`, the final verdict, the life findings, the `lifetime` object and what
    clients print for that end."""
    clean = Cleaner(show_secrets=show_secrets)
    return {
        "event": "ended",
        "number": ended.number,
        "client": str(ended.client),
        "server": str(ended.server),
        "path": safe_target(ended.target, show_secrets) or None,
        "verdict": ended.verdict.value,
        "decided_verdict": ended.decided.value,
        "reason": clean.text(finding_text(ended.primary)) if ended.primary is not None else None,
        "reasons": [f.check for f in ended.findings],
        "findings": [{"id": f.check, "severity": lookup(f.check).severity.value,
                      "rfc": lookup(f.check).rfc, "title": lookup(f.check).title,
                      "expected": clean.text(f.expected), "found": clean.text(f.found),
                      "frames": list(f.frames)} for f in ended.findings],
        "lifetime": lifetime_fields(ended.lifetime, clean),
        "client_errors": [clean.text(line) for line in
                          ended_client_errors(ended.findings, ended.lifetime)],
        # when several files are read, as on the `decided` line
        **({} if ended.origin is None else
           {"file": neutralise(ended.origin[0]), "file_frame": ended.origin[1]}),
    }


def render_jsonl_ended(ended: Ended, show_secrets: bool = False) -> str:
    return _JSONL_ENCODER.encode(ended_fields(ended, show_secrets))


def render_csv(diagnoses: Sequence[Diagnosis], show_secrets: bool = False) -> str:
    import csv  # here: only this format needs it

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(_CSV_FIELDS)
    for d in diagnoses:
        fields = attempt_fields(d, show_secrets)
        tls = fields["tls"] or {}
        row = []
        for name in _CSV_FIELDS:
            if name in _CSV_LIFETIME:
                value = (fields["lifetime"] or {}).get(_CSV_LIFETIME[name])
            else:  # (file and file_frame: only when several files are read)
                value = tls.get(name[4:]) if name.startswith("tls_") else fields.get(name)
            if isinstance(value, list):
                value = " ".join(str(v) for v in value)
            row.append("" if value is None else csv_cell(value) if isinstance(value, str)
                       else value)
        writer.writerow(row)
    return out.getvalue()
