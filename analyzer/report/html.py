"""The postmortem report as one self-contained HTML page (`read --format html`).

How it works
------------
This module turns diagnoses into plain values (the JSON fields of ``report/fields.py``, the
ladder events and heads of ``report/detail.py``, the timeline of ``report/timeline.py``); the
jinja2 templates in ``templates/`` lay them out. Every string that came from the capture is
cleaned by ``Cleaner`` (secrets redacted, controls escaped) before it reaches a template, and
the templates autoescape, so a header holding ``<script>`` is shown as text. The page loads
nothing: styles, script and drawings are inline, and its Content-Security-Policy allows no
request at all and only the style and the script whose hashes it names.

The page is written in pieces as the template is rendered, so a large run is never one
string in memory. The first ``DETAIL_LIMIT`` attempts get a postmortem; the rest a table row
only. Postmortems and the rows past the limit are packed (gzip, base64: ``_pack``) and
unpacked by ``templates/report.js`` in the browser.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any, Protocol

import jinja2
from markupsafe import Markup

from analyzer import __version__
from analyzer.checks.catalogue import lookup
from analyzer.exchange.model import Attempt, Message
from analyzer.http.message import RequestHead
from analyzer.report.detail import (
    LadderEvent,
    body_lines,
    frames_not_drawn,
    head_lines,
    ladder_events,
    ladder_start,
    messages_of,
)
from analyzer.report.fields import attempt_fields, iso_time
from analyzer.report.render import capture_notes, summary_fields
from analyzer.report.safe import Cleaner, neutralise, safe_target
from analyzer.report.timeline import build_timeline
from analyzer.source.frame import CaptureWarning
from analyzer.storms import Storm, storms
from analyzer.values import RunStats
from analyzer.verdict import Diagnosis, Verdict

DETAIL_LIMIT = 2000  # attempts with a full postmortem; the rest are table rows only
PAGE_ROWS = 500  # rows displayed at once (the browser lays out a large table slowly)
REASON_WIDTH = 140  # characters of the reason in a table row (the detail has it whole)
_CHUNK = 1 << 16  # characters written at once

# Stacked bottom first on the timeline: what went wrong sits on the baseline.
STACK_ORDER = ("refused", "no_response", "failed", "aborted", "dropped", "inconclusive",
               "declined", "succeeded")

# Ladder geometry, in SVG user units (the font is monospace, 12 px: about 7.2 units a letter).
_LADDER = {"width": 760, "client_x": 150, "server_x": 740, "top": 46, "row": 26}
_LABEL_CHARS = 76


def render_html(diagnoses: Sequence[Diagnosis], stats: RunStats,
                warnings: Sequence[CaptureWarning], captures: Sequence[str] = (),
                show_secrets: bool = False, detail_limit: int | None = None) -> str:
    return "".join(iter_html(diagnoses, stats, warnings, captures, show_secrets, detail_limit))


def iter_html(diagnoses: Sequence[Diagnosis], stats: RunStats,
              warnings: Sequence[CaptureWarning], captures: Sequence[str] = (),
              show_secrets: bool = False, detail_limit: int | None = None, *,
              apart: Counter[str] | None = None,
              context: Sequence[Diagnosis] | None = None) -> Iterator[str]:
    """The page in pieces of about 64 K characters; postmortems for the first
    ``detail_limit`` attempts (default DETAIL_LIMIT). `apart` and `context` as for
    `summary_fields`."""
    if detail_limit is None:
        detail_limit = DETAIL_LIMIT
    return page(Run(summary_fields(diagnoses, stats, warnings, show_secrets, apart=apart,
                                   context=context),
                    storms(diagnoses), [(d.attempt.time, d.verdict.value) for d in diagnoses],
                    len(diagnoses), diagnoses[:detail_limit], iter(diagnoses[detail_limit:])),
                stats, captures, show_secrets, detail_limit)


class Attempts(Protocol):
    """Attempts that can be counted and read more than once (a list, or a spilled report's
    first attempts, read back from its file each time: report/spilled.py)."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Diagnosis]: ...


@dataclasses.dataclass(slots=True)
class Run:
    """What the page shows of a run, however the attempts were kept (a list, or a spilled
    report read back one attempt at a time: report/spilled.py)."""

    summary: dict[str, Any]  # render.summary_fields
    groups: list[Storm]
    points: Sequence[tuple[float, str]]  # (time, verdict) of every attempt
    total: int
    # the first detail_limit attempts, whole; iterated twice (rows, then postmortems)
    first: Attempts
    rest: Iterator[Diagnosis]  # the others, in order


def page(run: Run, stats: RunStats, captures: Sequence[str], show_secrets: bool,
         detail_limit: int) -> Iterator[str]:
    env = _environment()
    # Our own files, inlined; the page's policy names each by hash and allows nothing else.
    script = env.get_template("report.js").render()
    style = env.get_template("report.css").render()
    summary = run.summary
    diagnoses = run.first  # at most detail_limit
    many_days = _many_days(run.points)
    repeated = [_clean_storm(s, show_secrets) for s in run.groups]
    verdicts = _verdict_counts(summary["verdicts"])
    # a column once the JSON fields name each attempt's file (several files read as one)
    multi_file = "file" in attempt_fields(next(iter(diagnoses))) if diagnoses else False
    columns = 11 if multi_file else 10
    macros: Any = env.get_template("attempt.html").module
    context: dict[str, Any] = {
        "version": __version__,
        "generated": _readable(iso_time(datetime.now(UTC).timestamp()))[:19],
        "captures": [neutralise(c) for c in captures],
        "span": _span(stats),
        "summary": summary,
        "capture_notes": capture_notes(summary),
        "verdicts": verdicts,
        "failed": sum(n for v, n in verdicts if v != Verdict.SUCCEEDED.value),
        "reasons": [(check, n, lookup(check).title) for check, n in summary["reasons"].items()],
        "repeated": repeated,
        "redirects": summary["redirects"],
        "timeline": build_timeline(run.points, STACK_ORDER, repeated),
        "show_secrets": show_secrets,
        "total": run.total,
        "detail_limit": detail_limit,
        "page_rows": PAGE_ROWS,
        "detailed": min(detail_limit, len(diagnoses)),
        "multi_file": multi_file,
        # the first detail_limit rows are plain markup; the rest, and every postmortem, packed
        "attempts": (_attempt_view(d, False, show_secrets, many_days)
                     for d in diagnoses),
        "rows": _pack(str(macros.row(_attempt_view(d, False, show_secrets, many_days),
                                     multi_file))
                      for d in run.rest),
        "details": _pack(str(macros.detail_row(_attempt_view(d, True, show_secrets, many_days),
                                               _LADDER, columns))
                         for d in diagnoses),
        "script": Markup(script),  # our own files, not capture data
        "script_hash": _csp_hash(script),
        "style": Markup(style),
        "style_hash": _csp_hash(style),
        "ladder": _LADDER,
    }
    pending: list[str] = []
    size = 0
    for piece in env.get_template("report.html").generate(context):
        pending.append(piece)
        size += len(piece)
        if size >= _CHUNK:
            yield "".join(pending)
            pending, size = [], 0
    yield "".join(pending)


def _pack(pieces: Iterable[str]) -> Iterator[str]:
    """``pieces`` of markup, gzip-compressed and base64-encoded, in pieces (nothing at all
    for no pieces).

    Why: a postmortem is about 4 KB of markup and a table row 400 bytes, and the attempts of
    a storm are nearly identical. On 3,000 attempts of a storm (2,000 with postmortems) the
    page took 9.5 MB as plain markup and 1.6 MB with the postmortems packed (they shrink 30
    times); with the rows past the limit packed too, a run of any size stays attachable.
    report.js unpacks them with the browser's DecompressionStream and parses them as HTML:
    what the templates escaped stays escaped."""
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: a gzip stream
    pending, started = b"", False
    for piece in pieces:
        started = True
        pending += packer.compress(piece.encode("utf-8"))
        if len(pending) >= _CHUNK:
            whole = len(pending) - len(pending) % 3  # base64 pieces must not pad midway
            yield base64.b64encode(pending[:whole]).decode("ascii")
            pending = pending[whole:]
    if started:
        yield base64.b64encode(pending + packer.flush()).decode("ascii")


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("analyzer.report", "templates"),
        autoescape=True,  # every value is HTML-escaped unless marked safe here, in code
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["clock"] = _clock
    env.filters["seconds"] = _duration
    env.filters["n"] = "{:,}".format  # 20,000: counts an eye can read
    return env


def _csp_hash(script: str) -> str:
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")


# -- the run -----------------------------------------------------------------------------------


def _span(stats: RunStats) -> dict[str, Any] | None:
    if stats.first_time is None or stats.last_time is None:
        return None
    first, last = iso_time(stats.first_time), iso_time(stats.last_time)
    return {"first": _readable(first), "last": _readable(last),
            # the date once when both ends fall on the same day
            "last_short": (last[11:23] if last.endswith("Z") and last[:10] == first[:10]
                           else _readable(last)),
            "duration": _duration(stats.last_time - stats.first_time)}


def _clock(seconds: float) -> str:
    """HH:MM:SS in UTC; a time that is no date as `iso_time` writes it."""
    iso = iso_time(seconds)
    return iso[11:19] if iso.endswith("Z") else iso


def _readable(iso: str) -> str:
    """2026-12-04 15:07:53.976 from an `iso_time` text; one that is no date as it is."""
    return f"{iso[:10]} {iso[11:23]}" if iso.endswith("Z") else iso


def _duration(seconds: float, short: bool = False) -> str:
    """A duration for people: "350 ms", "31.7 s", "73 min 57 s", "5 h 2 min" (``short``:
    whole units only, for a narrow label)."""
    if seconds < 1:
        return f"{seconds * 1000:.3g} ms"
    if seconds < 120:
        return f"{seconds:.0f} s" if short else f"{seconds:.3g} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 120:
        return f"{minutes} min" if short else f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    if short:
        return f"{hours} h" if hours < 48 else f"{hours // 24} d"
    return f"{hours} h {minutes} min"


def _many_days(points: Sequence[tuple[float, str]]) -> bool:
    if not points:
        return False
    times = [t for t, _ in points]
    return iso_time(min(times))[:10] != iso_time(max(times))[:10]


def _verdict_counts(counts: dict[str, int]) -> list[tuple[str, int]]:
    """Every verdict of the run with its count, in the README's order."""
    known = [v.value for v in Verdict]
    return ([(v, counts[v]) for v in known if v in counts]
            + sorted((v, n) for v, n in counts.items() if v not in known))


def _clean_storm(storm: Storm, show_secrets: bool) -> Storm:
    """A repeated group as the timeline labels it (its request line is the raw target)."""
    return dataclasses.replace(storm, request=safe_target(storm.request, show_secrets))


# -- one attempt -------------------------------------------------------------------------------


def _attempt_view(d: Diagnosis, detailed: bool, show_secrets: bool,
                  many_days: bool) -> dict[str, Any]:
    fields = attempt_fields(d, show_secrets)
    time = fields["time"]
    request = (f"{fields['method']} {fields['path']}" if fields["method"] is not None
               else "(TCP only)" if fields["kind"] == "tcp"
               else "(HTTP/2 preface only)" if fields["transport"] == "h2" else "(not captured)")
    reason = fields["reason"]
    view: dict[str, Any] = {
        "f": fields,
        "t": f"{d.attempt.time:.6f}",
        "frame": d.attempt.first_frame,
        "clock": _readable(time) if many_days or not time.endswith("Z") else time[11:23],
        "request": request,
        "offered": ",".join(fields["offered"]) or fields["protocol"] or "-",
        "reason_id": fields["reasons"][0] if fields["reasons"] else "",
        "reason_short": reason if len(reason) <= REASON_WIDTH
        else reason[: REASON_WIDTH - 1] + "…",
        "detail": None,
    }
    if detailed:
        clean = Cleaner.for_attempt(d.attempt, show_secrets)
        view["detail"] = {
            "ladder": _ladder(d.attempt, clean),
            "heads": [_head(title, m, clean) for title, m in messages_of(d.attempt)],
            "findings": [dict(f, fix=lookup(f["id"]).fix) for f in fields["findings"]],
        }
    return view


def _ladder(a: Attempt, clean: Cleaner) -> dict[str, Any] | None:
    events = ladder_events(a, clean)
    if not events:
        return None
    start = ladder_start(a, events)
    top, row = _LADDER["top"], _LADDER["row"]
    rows = [
        {"y": top + n * row, "ms": f"{(e.time - start) * 1000:.3f}",
         "frames": f"{e.frame}" if e.last_frame <= e.frame else f"{e.frame}-{e.last_frame}",
         "from_client": e.from_client, "kind": _kind(e), "full": e.label,
         "label": e.label if len(e.label) <= _LABEL_CHARS
         else e.label[: _LABEL_CHARS - 1] + "…"}
        for n, e in enumerate(events)
    ]
    return {
        "rows": rows,
        "height": top + len(rows) * row,
        "client": f"client {a.client}",
        "server": f"server {a.server}",
        "more": frames_not_drawn(a),
        "end": clean.text(a.tcp.end_reason) if a.tcp.end_reason else "",
    }


def _kind(event: LadderEvent) -> str:
    """The arrow's colour class. detail.py names TCP events with fixed words (and a hole
    with a bracketed note); anything else is a message or a WebSocket frame."""
    label = event.label
    if label.startswith("[capture lost"):
        return "gap"
    if label == "RST":
        return "rst"
    if label == "FIN":
        return "fin"
    if label.startswith(("SYN", "SYN-ACK")):
        return "syn"
    return "c2s" if event.from_client else "s2c"


def _head(title: str, message: Message, clean: Cleaner) -> dict[str, Any]:
    """One head as sent: its start line, its fields (name, value; a line without a colon or
    an obs-fold continuation has no name) and the start of its body."""
    lines = head_lines(message.head, clean)
    fields: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        folded = line[:1] in (" ", "\t")
        fields.append((name, value) if colon and not folded else ("", line))
    frames = (f"frame {message.first_frame}" if message.last_frame <= message.first_frame
              else f"frames {message.first_frame}-{message.last_frame}")
    return {
        "title": title,
        "frames": frames,
        "bytes": len(message.head.raw),
        "start": lines[0] if lines else "",
        "fields": fields,
        "body": [line for line in body_lines(message, clean) if line],
        "is_request": isinstance(message.head, RequestHead),
    }
