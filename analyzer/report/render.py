"""Output formats. Each renderer returns text; the CLI decides where it goes."""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from analyzer.correlate import Chain, Storm, redirect_chains, storms
from analyzer.report.fields import (
    attempt_fields,
    iso_time,
    reason_text,
    request_label,
    time_of_day,
)
from analyzer.report.safe import Cleaner, csv_cell, neutralise
from analyzer.source.frame import CaptureWarning
from analyzer.values import MAX_LISTED_TCP_ATTEMPTS, RunStats
from analyzer.verdict import Diagnosis

FORMATS = ("table", "json", "jsonl", "csv", "markdown")
_COLUMNS = ("#", "frame", "time", "client", "server", "request", "offered", "status", "verdict",
            "reason")
_CSV_FIELDS = ("number", "kind", "client", "server", "time", "method", "path", "host", "offered",
               "protocol", "status", "verdict", "reason", "reasons", "request_frame",
               "response_frame")


def table_rows(diagnoses: Sequence[Diagnosis], show_secrets: bool = False) -> list[list[Any]]:
    rows = []
    for d in diagnoses:
        a = d.attempt
        clean = Cleaner.for_attempt(a, show_secrets)
        status = a.response_head.status if a.response_head else ""
        rows.append([d.number, a.first_frame, time_of_day(iso_time(a.time)), str(a.client),
                     str(a.server), _clip(request_label(d, show_secrets), 40),
                     clean.text(",".join(d.facts.offered) or d.facts.protocol or "-"), status,
                     d.verdict.value, _clip(clean.text(reason_text(d)), 90)])
    return rows


def render_table(diagnoses: Sequence[Diagnosis], stats: RunStats,
                 warnings: Sequence[CaptureWarning], markdown: bool = False,
                 show_secrets: bool = False) -> str:
    # Imported here: tabulate pulls in wcwidth's Unicode tables, which cost more to import than
    # the whole analysis of a small capture, and json, jsonl and csv never need them.
    from tabulate import tabulate

    fmt = "github" if markdown else "simple"
    parts = []
    if diagnoses:
        rows = table_rows(diagnoses, show_secrets)
        if markdown:  # a '|' from the capture would start a new column
            rows = [[_markdown_cell(v) for v in row] for row in rows]
        parts.append(tabulate(rows, headers=_COLUMNS, tablefmt=fmt))
    else:
        parts.append("No upgrade attempts found.")
    parts.append("")
    parts.append(summary_text(diagnoses, stats, warnings))
    return "\n".join(parts)


def summary_fields(diagnoses: Sequence[Diagnosis], stats: RunStats,
                   warnings: Sequence[CaptureWarning]) -> dict[str, Any]:
    verdicts = Counter(d.verdict.value for d in diagnoses)
    reasons = Counter(d.primary.check for d in diagnoses if d.primary is not None
                      and d.verdict.value != "succeeded")
    return summary_of(len(diagnoses), verdicts, reasons, storms(diagnoses),
                      redirect_chains(diagnoses), stats, warnings)


def summary_of(attempts: int, verdicts: Counter[str], reasons: Counter[str],
               groups: Sequence[Storm], chains: Iterable[Chain], stats: RunStats,
               warnings: Sequence[CaptureWarning]) -> dict[str, Any]:
    """The summary from its parts (counts in report order), however they were gathered: from
    the attempts in memory, or from a spilled report's records (report/kept.py)."""
    return {
        "attempts": attempts,
        "verdicts": dict(sorted(verdicts.items())),
        "reasons": dict(reasons.most_common()),
        **capture_fields(stats),
        "first_time": iso_time(stats.first_time) if stats.first_time is not None else None,
        "last_time": iso_time(stats.last_time) if stats.last_time is not None else None,
        "warnings": [neutralise(f"{w.source}: {w.where}: {w.message}") for w in warnings],
        "repeated": repeated_fields(groups),
        "redirects": [
            {"client": c.client, "steps": [neutralise(s) for s in c.steps],
             "verdict": c.verdict, "first_time": iso_time(c.first), "last_time": iso_time(c.last)}
            for c in chains
        ],
    }


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
    }


def repeated_fields(groups: Sequence[Storm]) -> list[dict[str, Any]]:
    return [
        {"count": s.count, "client": s.client, "server": s.server,
         "request": neutralise(s.request), "verdict": s.verdict, "reason": s.reason,
         "first_time": iso_time(s.first), "last_time": iso_time(s.last)}
        for s in groups
    ]


def repeated_lines(groups: Sequence[dict[str, Any]], most: int = 10) -> list[str]:
    """One summary line per group of repeated attempts (reconnect loops, scans)."""
    return [
        f"Repeated: {g['count']} x {g['client']} -> {g['server']} {g['request']}: {g['verdict']}"
        + (f" ({g['reason']})" if g["reason"] else "")
        + f", {time_of_day(g['first_time'], False)} to {time_of_day(g['last_time'], False)}"
        for g in groups[:most]
    ]


def summary_text(diagnoses: Sequence[Diagnosis], stats: RunStats,
                 warnings: Sequence[CaptureWarning]) -> str:
    return summary_lines(summary_fields(diagnoses, stats, warnings))


def summary_lines(s: dict[str, Any]) -> str:
    """The summary as text, from `summary_fields`."""
    lines = []
    verdicts = ", ".join(f"{n} {v}" for v, n in s["verdicts"].items()) or "none"
    lines.append(f"Attempts: {s['attempts']} ({verdicts})")
    if s["reasons"]:
        lines.append("Reasons: " + ", ".join(f"{r} x{n}" for r, n in s["reasons"].items()))
    lines.extend(repeated_lines(s["repeated"]))
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
    return lines


def unlisted_line(counts: dict[str, int]) -> str:
    """The summary line for connection attempts counted instead of listed (a SYN flood)."""
    reasons = ", ".join(f"{r} x{n}" for r, n in counts.items())
    return (f"Connection attempts not listed (never reached HTTP; only the first "
            f"{MAX_LISTED_TCP_ATTEMPTS} are): {sum(counts.values())} ({reasons})")


def render_json(diagnoses: Sequence[Diagnosis], stats: RunStats,
                warnings: Sequence[CaptureWarning], show_secrets: bool = False) -> str:
    return "".join(iter_json(diagnoses, stats, warnings, show_secrets))


def iter_json(diagnoses: Sequence[Diagnosis], stats: RunStats,
              warnings: Sequence[CaptureWarning], show_secrets: bool = False) -> Iterator[str]:
    """The JSON report, ``{"attempts": [...], "summary": {...}}`` as ``json.dumps(document,
    indent=2)`` writes it, in pieces: one per attempt, so the whole text never has to be in
    memory at once (on a 1 GB capture the one string, built from a million small pieces,
    peaked at 40 MB more than the analysis itself; benchmarks/README.md)."""
    yield JSON_START
    for n, d in enumerate(diagnoses):
        yield ("\n    " if n == 0 else ",\n    ") + json_attempt(d, show_secrets)
    yield json_end(bool(diagnoses), summary_fields(diagnoses, stats, warnings))


JSON_START = '{\n  "attempts": ['


def json_attempt(diagnosis: Diagnosis, show_secrets: bool = False) -> str:
    """One attempt as an element of the JSON report's list."""
    text = json.dumps(attempt_fields(diagnosis, show_secrets), indent=2)
    # An element of the list is two levels deep. JSON text has no raw newline inside a
    # string, so every "\n" starts a line.
    return text.replace("\n", "\n    ")


def json_end(any_attempts: bool, summary: dict[str, Any]) -> str:
    """The end of the JSON report: the list closed, then the summary."""
    text = json.dumps(summary, indent=2)
    return (("\n  ]," if any_attempts else "],") + '\n  "summary": '
            + text.replace("\n", "\n  ") + "\n}")


# json.dumps's own settings, made once for every line rather than per call. The cycle check is
# off: the fields are a tree freshly built by attempt_fields, and the output is the same.
_JSONL_ENCODER = json.JSONEncoder(check_circular=False)


def render_jsonl_line(diagnosis: Diagnosis, show_secrets: bool = False) -> str:
    return _JSONL_ENCODER.encode(attempt_fields(diagnosis, show_secrets))


def render_csv(diagnoses: Sequence[Diagnosis], show_secrets: bool = False) -> str:
    import csv  # here: only this format needs it

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(_CSV_FIELDS)
    for d in diagnoses:
        fields = attempt_fields(d, show_secrets)
        row = []
        for name in _CSV_FIELDS:
            value = fields[name]
            if isinstance(value, list):
                value = " ".join(str(v) for v in value)
            row.append("" if value is None else csv_cell(value) if isinstance(value, str)
                       else value)
        writer.writerow(row)
    return out.getvalue()


def _markdown_cell(value: Any) -> Any:
    return value.replace("|", "\\|") if isinstance(value, str) else value


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
