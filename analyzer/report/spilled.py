"""A spilled sorted report (report/kept.py) printed from its records, in each format, with the
same bytes as the report of the same attempts kept in memory (report/render.py)."""

from __future__ import annotations

import sys
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import click

from analyzer.correlate import Chain, Hop, Storm, chains
from analyzer.report.kept import _JSON_NUMBER, Spill
from analyzer.report.render import (
    _COLUMNS,
    JSON_START,
    _markdown_cell,
    json_end,
    render_csv,
    summary_lines,
    summary_of,
)
from analyzer.source.frame import CaptureWarning
from analyzer.values import RunStats
from analyzer.verdict import Diagnosis, Verdict

_SUCCEEDED = Verdict.SUCCEEDED.value
# Rows given to tabulate at once: each call lays out this many rows under two more that
# carry the widest value and the most general type of every column over the whole report,
# so that each slice is laid out exactly as the whole table would be.
TABLE_SLICE = 2_000


class SpilledReport:
    """The attempts of a report spilled to a temporary file, in report order."""

    def __init__(self, spill: Spill, order: array[int], by_time: array[int]) -> None:
        self.spill = spill
        self.order = order  # attempt index (order of decision) by rank (report order)
        self.by_time = by_time  # ranks in time order
        self.keep = bytearray(len(order))  # by rank: passes the filters
        self.attempts = 0
        self.verdicts: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.groups: dict[Any, list[Any]] = {}  # storm key -> [count, first, last]
        self.failed = False
        self._redirects = False
        self._columns: _Columns | None = None
        self._scanned = False

    def __len__(self) -> int:
        self._scan()
        return self.attempts

    def __iter__(self) -> Iterator[Diagnosis]:
        """The kept attempts whole (numbered), for a renderer that needs them whole; slow."""
        self._scan()
        whole = self.spill.owner.whole
        rebuilt: list[int] = []
        if not whole:  # every attempt rebuilt once, into the pickle file
            assert self.spill.owner.rebuild is not None
            rebuilt = [self.spill.put_whole(d) for d in self.spill.owner.rebuild()]
        for rank, index in enumerate(self.order):
            if self.keep[rank]:
                record = self.spill.get(index)
                d = self.spill.whole(record.full if whole and record.full >= 0
                                     else rebuilt[index])
                yield _numbered(d, rank + 1)

    def _scan(self, table: bool = False, markdown: bool = False) -> None:
        """One pass in report order: the filters, the summary's counts, the table's columns."""
        if self._scanned:
            return
        self._scanned = True
        columns = self._columns = _Columns(markdown) if table else None
        for rank, index in enumerate(self.order):
            record = self.spill.get(index)
            if not record.keep:
                continue
            self.keep[rank] = 1
            self.attempts += 1
            self.verdicts[record.verdict] += 1
            if record.verdict != _SUCCEEDED:
                self.failed = True
                if record.reason is not None:
                    self.reasons[record.reason] += 1
            when = record.hop.time
            group = self.groups.setdefault(record.storm, [0, when, when])
            group[0] += 1
            group[1], group[2] = min(group[1], when), max(group[2], when)
            if record.hop.location is not None:
                self._redirects = True
            if columns is not None:
                columns.add([rank + 1, *record.line])

    def summary(self, stats: RunStats, warnings: Sequence[CaptureWarning]) -> dict[str, Any]:
        self._scan()
        storms = sorted((Storm(g[0], key[0], key[1], key[2], key[3], key[4], g[1], g[2])
                         for key, g in self.groups.items()
                         if g[0] >= 3), key=lambda s: (-s.count, s.first))
        return summary_of(self.attempts, self.verdicts, self.reasons, storms, self._chains(),
                          stats, warnings)

    def _chains(self) -> list[Chain]:
        if not self._redirects:
            return []
        kept = array("q", (rank for rank in self.by_time if self.keep[rank]))
        cache: dict[int, Hop] = {}

        def hop_at(n: int) -> Hop:
            hop = cache.get(n)
            if hop is None:
                hop = cache[n] = self.spill.get(self.order[kept[n]]).hop
            return hop

        def passed(i: int) -> None:  # hops before i are not asked for again
            cache.pop(i - 1, None)

        return list(chains(hop_at, len(kept), passed))

    # --- the formats ------------------------------------------------------------------------

    def write_json(self, stats: RunStats, warnings: Sequence[CaptureWarning],
                   write: Callable[[str], Any]) -> None:
        self._scan()
        write(JSON_START)
        first = True
        for rank, record in self._kept_records():
            write(("\n    " if first else ",\n    ") + _JSON_NUMBER + str(rank + 1) + record.line)
            first = False
        write(json_end(not first, self.summary(stats, warnings)))
        write("\n")

    def write_csv(self, write: Callable[[str], Any]) -> None:
        self._scan()
        write(render_csv([]))
        for rank, record in self._kept_records():
            write(f"{rank + 1}," + record.line)

    def write_table(self, stats: RunStats, warnings: Sequence[CaptureWarning], markdown: bool,
                    write: Callable[[str], Any]) -> None:
        self._scan(table=True, markdown=markdown)
        columns = self._columns
        assert columns is not None
        if not self.attempts:
            write("No upgrade attempts found.")
        else:
            rows = ([rank + 1, *record.line] for rank, record in self._kept_records())
            columns.write(rows, write)
        write("\n\n" + summary_lines(self.summary(stats, warnings)) + "\n")

    def detail(self, view: Any, stats: RunStats, warnings: Sequence[CaptureWarning],
               text: Callable[[Diagnosis, Any], str]) -> bool:
        """The detail view (``read --detail``, ``--attempt N``) as cli._emit prints it."""
        self._scan()
        if view.attempt is not None:
            rank = view.attempt - 1
            if not 0 <= rank < len(self.order) or not self.keep[rank]:
                click.echo(f"upgrade-analyzer: error: no attempt {view.attempt}: this report "
                           f"has {self.attempts} (see the table without --attempt)", err=True)
                return False
            d = self.spill.whole(self.spill.get(self.order[rank]).full)
            click.echo(text(_numbered(d, rank + 1), view), nl=False, color=view.color)
            return True
        for rank, record in self._kept_records():
            d = _numbered(self.spill.whole(record.full), rank + 1)
            click.echo(text(d, view), color=view.color)
        click.echo(summary_lines(self.summary(stats, warnings)))
        return True

    def _kept_records(self) -> Iterator[tuple[int, Any]]:
        for rank, index in enumerate(self.order):
            if self.keep[rank]:
                yield rank, self.spill.get(index)


def _numbered(d: Diagnosis, number: int) -> Diagnosis:
    import dataclasses

    return dataclasses.replace(d, number=number)


class _Columns:
    """What tabulate decides from a whole column, gathered row by row: the most general type
    (tabulate's own `_type`), the widest value, and whether any value would switch tabulate
    to another way of measuring (terminal codes, line breaks)."""

    def __init__(self, markdown: bool) -> None:
        import tabulate

        self._tabulate = tabulate
        self.markdown = markdown  # cells escaped for Markdown before all else, as render_table
        self.types: list[type] = [bool] * len(_COLUMNS)
        self.general: list[Any] = [None] * len(_COLUMNS)  # a value of that type
        self.widest: list[Any] = [None] * len(_COLUMNS)
        self.widths = [-1] * len(_COLUMNS)
        self.plain = True  # no value needs tabulate's special handling
        self._width = tabulate._choose_width_fn(
            False, tabulate.wcwidth is not None and tabulate.WIDE_CHARS_MODE, False)

    def cells(self, row: list[Any]) -> list[Any]:
        return [_markdown_cell(v) for v in row] if self.markdown else row

    def add(self, row: list[Any]) -> None:
        t = self._tabulate
        for n, value in enumerate(self.cells(row)):
            kind = t._type(value)
            if kind is not self.types[n] and t._more_generic(self.types[n], kind) is kind:
                self.types[n], self.general[n] = kind, value
            text = "" if value is None else str(value)
            if isinstance(value, str) and (t._ansi_codes.search(text) or "\n" in text
                                           or "\r" in text):
                self.plain = False
            width = self._width(text)
            if width > self.widths[n]:
                self.widths[n], self.widest[n] = width, value

    def write(self, rows: Iterator[list[Any]], write: Callable[[str], Any]) -> None:
        tabulate = self._tabulate.tabulate
        fmt = "github" if self.markdown else "simple"
        cells = self.cells

        if not self.plain or any(k in (float, bytes) for k in self.types):
            # A float column aligns on the decimal point and a line break makes rows of
            # several lines: laid out whole, in memory (no capture of ours has either).
            write(tabulate([cells(r) for r in rows], headers=_COLUMNS, tablefmt=fmt))
            return
        guides = [self.widest, self.general]  # escaped already
        first = True
        while True:
            batch = [cells(r) for _, r in zip(range(TABLE_SLICE), rows, strict=False)]
            if not batch:
                return
            lines = tabulate(guides + batch, headers=_COLUMNS, tablefmt=fmt).split("\n")
            write(("" if first else "\n") + "\n".join(
                (lines[:2] if first else []) + lines[2 + len(guides):]))
            first = False


def emit_spilled(report: SpilledReport, fmt: str, stats: RunStats,
                 warnings: Sequence[CaptureWarning], view: Any,
                 detail_text: Callable[[Diagnosis, Any], str]) -> bool:
    """cli._emit for a spilled report: the same output, from the records."""
    write = sys.stdout.write
    if view.attempt is not None or view.detail:
        return report.detail(view, stats, warnings, detail_text)
    if fmt == "json":
        report.write_json(stats, warnings, write)
    elif fmt == "csv":
        report.write_csv(write)
    else:
        report.write_table(stats, warnings, fmt == "markdown", write)
    return True
