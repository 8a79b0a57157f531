"""The table of attempts, sorted (printed at the end) or streamed (a line per attempt as it is
decided), fitted to a terminal's width or at its natural width when piped.

How it fits: on a terminal the reason column wraps (at most `REASON_LINES` lines) and keeps a
readable width: the request, offered and file columns are shortened, then the least needed
columns are left out (offered, status, time, frame, request: JSON and CSV have them all),
so the terminal never wraps a row. Piped, values keep their limits (request 40, reason 90
characters) and every column is there. The streamed table cannot measure rows it has not
seen, so its columns have set widths and longer values are shortened to them: the heading
stays over its column.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from analyzer.life.model import Ended
from analyzer.report.clock import UTC_CLOCK, Clock
from analyzer.report.fields import finding_text, reason_text, request_label
from analyzer.report.safe import Cleaner, markdown_text, neutralise, safe_target, safe_text
from analyzer.verdict import Diagnosis

REQUEST_LIMIT = 40  # characters of the request column, piped
REASON_LIMIT = 90  # characters of the reason column, piped
REASON_LINES = 4  # lines a wrapped reason takes at most on a terminal
COMFORTABLE = 40  # the reason's width on a terminal before other columns are left out
GAP = "  "


@dataclass(frozen=True, slots=True)
class TableStyle:
    """How a table is laid out: the clock, the terminal's width, the columns shown."""
    clock: Clock = UTC_CLOCK
    width: int | None = None  # the terminal's columns; None: natural width (piped)
    files: bool = False  # a file:frame column (several input files)
    show_secrets: bool = False


@dataclass(frozen=True, slots=True)
class _Spec:
    """One column of the table: its key, width and how it shrinks."""
    key: str
    streamed: int  # width in the streamed table (0: the rest of the line)
    right: bool = False
    shrink: str = "keep"  # "wrap", "clip" (end), "middle" (an address or file), "keep"
    minimum: int = 0
    drop: int = 0  # order in which a narrow terminal leaves it out (0: never)


_SPECS = {
    "#": _Spec("#", 4, right=True),
    "frame": _Spec("frame", 7, right=True, drop=4),
    "file:frame": _Spec("file:frame", 24, shrink="middle", minimum=12),
    "time": _Spec("time", 12, drop=3),
    "client": _Spec("client", 21, shrink="middle", minimum=12),
    "server": _Spec("server", 21, shrink="middle", minimum=12),
    "request": _Spec("request", 40, shrink="clip", minimum=14, drop=5),
    "offered": _Spec("offered", 10, shrink="clip", minimum=7, drop=1),
    "status": _Spec("status", 6, right=True, drop=2),
    "verdict": _Spec("verdict", 12),
    "reason": _Spec("reason", 0, shrink="wrap", minimum=20),
}


def _keys(style: TableStyle) -> list[str]:
    keys = list(_SPECS)
    if not style.files:
        keys.remove("file:frame")
    return keys


def _heading(key: str, style: TableStyle) -> str:
    return f"time ({style.clock.label})" if key == "time" else key


# The columns of an attempt's row that do not depend on where it ends up in the report (its
# number) or on the report's clock (its time): what a sorted report keeps of a row
# (report/kept.py) and the rest of `cells`.
LINE_KEYS = tuple(k for k in _SPECS if k not in ("#", "time"))


def line_cells(d: Diagnosis, style: TableStyle) -> tuple[str, ...]:
    """One attempt's values of `LINE_KEYS`, in that order, unshortened (safe to print:
    cleaned and redacted). Made for every attempt a sorted report keeps: its number and
    time, which it drops, are not made (and not its dictionary)."""
    a = d.attempt
    clean = Cleaner.for_attempt(a, style.show_secrets)
    origin = d.origin
    response = a.response_head
    return (
        str(a.first_frame),
        f"{neutralise(os.path.basename(origin[0]))}:{origin[1]}" if origin else "",
        str(a.client),
        str(a.server),
        request_label(d, style.show_secrets, clean),
        clean.text(",".join(d.facts.offered) or d.facts.protocol or "-"),
        str(response.status) if response else "",
        d.verdict.value,
        clean.text(reason_text(d)),
    )


def cells(d: Diagnosis, style: TableStyle) -> dict[str, object]:
    """One attempt's values, unshortened (safe to print: cleaned and redacted), by column."""
    values: dict[str, object] = {"#": d.number}
    values.update(zip(LINE_KEYS, line_cells(d, style), strict=True))
    values["time"] = style.clock.time(d.attempt.time)
    return {k: values[k] for k in _SPECS}


def fit(keys: list[str], widths: dict[str, int], total: int) -> tuple[list[str], dict[str, int]]:
    """The columns kept and their widths so that a row takes at most ``total`` characters:
    the reason keeps a readable width (`COMFORTABLE`, or less when shorter) by shortening the
    request, offered and file columns, then by leaving columns out; addresses are shortened
    last; then the reason takes what is left."""
    widths = dict(widths)
    keys = list(keys)
    natural = widths["reason"]
    wanted = min(natural, COMFORTABLE)

    def room() -> int:
        return (total - sum(widths[k] for k in keys if k != "reason")
                - len(GAP) * (len(keys) - 1))

    for key in ("request", "offered", "file:frame"):
        if key in keys and room() < wanted:
            floor = max(_SPECS[key].minimum, len(key))
            widths[key] = max(floor, widths[key] - (wanted - room()))
    for key in sorted((k for k in keys if _SPECS[k].drop), key=lambda k: _SPECS[k].drop):
        if room() >= wanted:
            break
        keys.remove(key)
    for key in ("client", "server"):  # a very narrow terminal
        if room() < _SPECS["reason"].minimum:
            widths[key] = max(12, widths[key] - (_SPECS["reason"].minimum - room()))
    widths["reason"] = max(8, min(natural, room()))
    return keys, widths


def _shorten(text: str, width: int, how: str) -> list[str]:
    if how == "wrap":
        if len(text) <= width and text.isprintable() and text == text.strip():
            # What textwrap gives a text that fits, holds no tab, newline or other space
            # than " " and neither starts nor ends with one: itself. Every reason of a
            # piped table fits (its column is as wide as the longest): ≈ 10 µs a row less.
            return [text]
        return _wrapped(text, width)
    if len(text) <= width:
        return [text]
    if how == "middle":
        head = (width - 1) // 2
        return [text[:head] + "…" + text[len(text) - (width - 1 - head):]]
    return [_clip(text, width)]


def _wrapped(text: str, width: int) -> list[str]:
    """The reason's lines through textwrap (`_shorten`'s plain twin for "wrap",
    tests/test_fields.py)."""
    import textwrap  # here: only a terminal's table wraps (a plain read imports nothing)

    lines = textwrap.wrap(text, width, break_on_hyphens=False) or [""]
    if len(lines) > REASON_LINES:
        lines = lines[:REASON_LINES]
        last = lines[-1]
        lines[-1] = (last if len(last) < width else last[: width - 1]) + "…"
    return lines


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _render_row(keys: list[str], widths: dict[str, int], values: dict[str, list[str]]) -> str:
    height = max(len(values[k]) for k in keys)
    lines = []
    for n in range(height):
        parts = []
        for key in keys:
            text = values[key][n] if n < len(values[key]) else ""
            width = widths[key]
            parts.append(text.rjust(width) if _SPECS[key].right else text.ljust(width))
        lines.append(GAP.join(parts).rstrip())
    return "\n".join(lines)


def cell_text(key: str, value: object) -> str:
    """A value as its column shows it unshortened (a request and a reason clipped to their
    limits): what `Widths` measures."""
    text = str(value)
    if key == "request":
        return _clip(text, REQUEST_LIMIT)
    if key == "reason":
        return _clip(text, REASON_LIMIT)
    return text


def sorted_table(diagnoses: Sequence[Diagnosis], style: TableStyle) -> str:
    """The whole table: headings, a rule, a row per attempt (columns sized to their values)."""
    full = [{k: str(v) for k, v in cells(d, style).items()} for d in diagnoses]
    widths = Widths(style)
    for row in full:
        widths.add(row)
    return "\n".join(widths.lines(iter(full)))


class Widths:
    """The columns of a sorted table, measured a row at a time (a spilled report,
    report/spilled.py, measures rows it reads back from disk and does not keep)."""

    def __init__(self, style: TableStyle) -> None:
        self.style = style
        self.keys = _keys(style)
        self.widths = {k: len(_heading(k, style)) for k in self.keys}

    def widen(self, widest: dict[str, int]) -> None:
        """Columns at least as wide as ``widest`` says (the lengths of `cell_text` values: what
        `add` measures, measured elsewhere); keys not shown are passed over."""
        widths = self.widths
        for key, length in widest.items():
            if key in widths and length > widths[key]:
                widths[key] = length

    def add(self, row: dict[str, str]) -> None:
        """One row's values, unshortened (`cells`, as strings)."""
        widths = self.widths
        for k in self.keys:
            n = len(cell_text(k, row[k]))
            if n > widths[k]:
                widths[k] = n

    def lines(self, rows: Iterator[dict[str, str]], plain: bool = False) -> Iterator[str]:
        """The headings, the rule, then a line (or a few, wrapped) per row of ``rows``.
        Piped, a row on one line is laid out by a format string (`_piped`); ``plain`` lays
        out every row by `_render_row`, its twin (tests/test_fields.py)."""
        style, keys, widths = self.style, self.keys, self.widths
        if style.width is not None:
            keys, widths = fit(keys, widths, style.width)
        yield from _head(keys, widths, style)
        if style.width is None and not plain:
            yield from _piped(([row[k] for k in keys] for row in rows), keys, widths)
            return
        for row in rows:
            if style.width is None:
                row = {k: cell_text(k, row[k]) for k in keys}
            yield _render_row(keys, widths, {k: _shorten(row[k], widths[k], _SPECS[k].shrink)
                                             for k in keys})

    def piped_lines(self, rows: Iterator[Sequence[str]]) -> Iterator[str]:
        """`lines` of a piped table (no terminal width) whose rows come as their values in
        the order of `keys`, not as dictionaries: a spilled report's rows (report/
        spilled.py; its tests compare its table with the one `lines` gives)."""
        assert self.style.width is None
        yield from _head(self.keys, self.widths, self.style)
        yield from _piped(rows, self.keys, self.widths)


def _head(keys: list[str], widths: dict[str, int], style: TableStyle) -> Iterator[str]:
    """The headings and the rule under them."""
    yield _render_row(keys, widths, {k: [_heading(k, style)] for k in keys})
    yield _render_row(keys, widths, {k: ["-" * widths[k]] for k in keys})


def _piped(rows: Iterator[Sequence[str]], keys: list[str],
           widths: dict[str, int]) -> Iterator[str]:
    """The rows (each its values in the order of ``keys``) of a piped table (natural
    widths, measured over every row): what `_render_row` gives a row whose values each fit
    on one line, by one format string (a sorted table of the dense benchmark mix spent a
    third of its layout building each cell's list of lines). A row with a reason that
    textwrap would change (a line break, a tab, a space at an end) goes to `_render_row`."""
    line = GAP.join(f"{{:{'>' if _SPECS[k].right else '<'}{widths[k]}}}" for k in keys).format
    request, reason = keys.index("request"), keys.index("reason")
    for row in rows:
        texts = list(row)
        texts[request] = _clip(texts[request], REQUEST_LIMIT)
        text = texts[reason] = _clip(texts[reason], REASON_LIMIT)
        if text.isprintable() and text == text.strip():  # `_shorten`'s test for "wrap"
            yield line(*texts).rstrip()
        else:
            yield _render_row(keys, widths, {k: _shorten(cell_text(k, v), widths[k],
                                                         _SPECS[k].shrink)
                                             for k, v in zip(keys, row, strict=True)})


def markdown_headings(style: TableStyle) -> list[str]:
    return [_heading(k, style) for k in _keys(style)]


def markdown_row(values: Mapping[str, object], style: TableStyle) -> list[str]:
    """One row of the Markdown table from `cells`' values."""
    keys = _keys(style)
    return [_markdown_cell(cell_text(k, v)) for k, v in values.items() if k in keys]


def markdown_table(diagnoses: Sequence[Diagnosis], style: TableStyle) -> str:
    """The table as GitHub Markdown (for tickets and documents: never fitted to a terminal)."""
    from tabulate import tabulate  # its Unicode width tables cost more than a small analysis

    rows = [markdown_row(cells(d, style), style) for d in diagnoses]
    return tabulate(rows, headers=markdown_headings(style), tablefmt="github")


def _markdown_cell(value: str) -> str:
    # a '|' from the capture would start a new column, '<img' and '![' would be markup
    return markdown_text(value)


class StreamedTable:
    """The table printed a row at a time: set column widths, the heading once, a date line
    whenever the day changes between two rows (a capture or a live run across midnight)."""

    def __init__(self, style: TableStyle) -> None:
        self.style = style
        keys = _keys(style)
        widths = {k: max(_SPECS[k].streamed, len(_heading(k, style))) for k in keys}
        widths["reason"] = 0  # piped: the rest of the line
        if style.width is not None:
            widths["reason"] = max(_SPECS["reason"].minimum,
                                   style.width - sum(widths[k] for k in keys if k != "reason")
                                   - len(GAP) * (len(keys) - 1))
            keys, widths = fit(keys, widths, style.width)
        self.keys, self.widths = keys, widths
        self._day: str | None = None

    def head(self) -> str:
        """The two heading lines, printed once before the first row."""
        return (_render_row(self.keys, self.widths,
                            {k: [_heading(k, self.style)] for k in self.keys}) + "\n"
                + _render_row(self.keys, self.widths,
                              {k: ["-" * max(self.widths[k], len(_heading(k, self.style)))]
                               for k in self.keys}))

    def line(self, d: Diagnosis) -> str:
        """One attempt (a few lines when its reason wraps on a terminal), after a date line
        when its day differs from the previous row's."""
        return self._line(cells(d, self.style), d.attempt.time)

    def ended_line(self, e: Ended) -> str:
        """The row of an attempt whose connection ended after its watch window with another
        verdict than the one printed (live, `read -`): its number, the end's time."""
        life = e.lifetime
        primary = e.primary
        reason = finding_text(primary) if primary else "ended"
        values: dict[str, object] = {
            "#": e.number, "frame": life.end_frame or "", "file:frame": "",
            "time": self.style.clock.time(life.end_time or e.time),
            "client": str(e.client), "server": str(e.server),
            "request": f"(ended) {safe_target(e.target, self.style.show_secrets)}",
            "offered": "-", "status": "", "verdict": e.verdict.value,
            "reason": safe_text(reason, self.style.show_secrets),
        }
        return self._line(values, life.end_time or e.time)

    def _line(self, values: dict[str, object], when: float) -> str:
        out = []
        day = self.style.clock.day(when)
        if self._day is not None and day != self._day:
            out.append(f"-- {day} ({self.style.clock.label}) --")
        self._day = day
        shortened = {}
        for key in self.keys:
            width = self.widths[key]
            text = cell_text(key, values[key]) if self.style.width is None else str(values[key])
            if width == 0:  # the last column, piped: the rest of the line
                shortened[key] = [text]
            else:
                how = _SPECS[key].shrink
                shortened[key] = _shorten(text, width, "clip" if how == "keep" else how)
        out.append(_render_row(self.keys, self.widths, shortened))
        return "\n".join(out)
