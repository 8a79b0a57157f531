"""A spilled sorted report (report/kept.py) printed from its records, in each format, with the
same bytes as the report of the same attempts kept in memory (report/render.py)."""

from __future__ import annotations

import itertools
import sys
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import click

from analyzer.life.groups import ClosedTally
from analyzer.redirects import Chain, Hop, chains
from analyzer.report.clock import Clock
from analyzer.report.columns import Column
from analyzer.report.kept import _JSON_NUMBER, Listed, Spill
from analyzer.report.render import (
    JSON_START,
    json_end,
    render_csv,
    summary_document,
    summary_lines,
    summary_of,
)
from analyzer.report.safe import markdown_text
from analyzer.report.table import (
    _SPECS,
    LINE_KEYS,
    REASON_LIMIT,
    REQUEST_LIMIT,
    TableStyle,
    Widths,
    markdown_headings,
    markdown_row,
)
from analyzer.source.frame import CaptureWarning
from analyzer.storms import Storm
from analyzer.values import RunStats
from analyzer.verdict import Diagnosis, Verdict

if TYPE_CHECKING:  # jinja2 is imported only by the HTML format
    from analyzer.report.html import Run

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
        self.closed = ClosedTally()  # the `Closed:` groups of the kept attempts
        self.failed = False
        self._first = self._last = 0.0  # times of the kept attempts
        # verdict of each kept attempt in report order (the HTML page's timeline; the times
        # are read from the spill's, by rank: a copy was 8 MB a million attempts)
        self._verdicts = bytearray()
        self._names: list[str] = []  # verdict by code
        self._scanned = False

    def __len__(self) -> int:
        self._scan()
        return self.attempts

    def __iter__(self) -> Iterator[Diagnosis]:
        """The kept attempts whole (numbered), for a renderer that needs them whole; slow."""
        return self.wholes()

    def wholes(self, start: int = 0, stop: int | None = None) -> Iterator[Diagnosis]:
        """The kept attempts ``start`` to ``stop`` (0-based, among the kept) whole, numbered,
        one at a time."""
        self._scan()
        whole = self.spill.owner.whole
        rebuilt: list[int] = []
        if not whole:  # every attempt rebuilt once, into the pickle file
            assert self.spill.owner.rebuild is not None
            rebuilt = [self.spill.put_whole(d) for d in self.spill.owner.rebuild()]
        kept = -1
        for rank, index in enumerate(self.order):
            if not self.keep[rank]:
                continue
            kept += 1
            if kept < start:
                continue
            if stop is not None and kept >= stop:
                return
            full = self.spill.full[index]
            d = self.spill.whole(full if whole and full >= 0 else rebuilt[index])
            yield _numbered(d, rank + 1)

    def _scan(self, widths: dict[str, int] | None = None) -> None:
        """One pass in report order: the filters, the summary's counts; with ``widths``, the
        widest of each column of the kept records' table lines too (`write_table`)."""
        if self._scanned:
            return
        self._scanned = True
        # Storms are groups of three or more like attempts. A group for every distinct key was
        # ≈ 330 bytes each (13.8 MB at 3 GB of the dense benchmark mix, where nearly every
        # attempt has its own client): count the keys' hashes first, then group exactly the
        # attempts whose hash came three times or more (a collision only groups a few more).
        seen = Counter(self.spill.storm)
        candidates = {h for h, n in seen.items() if n >= 3}
        del seen
        times = self.spill.time
        # the longest value of each column of the lines; a request and a reason are measured
        # clipped (`cell_text`), which is their longest clipped to their limits, at the end
        longest = [0] * len(LINE_KEYS)
        for rank, index in enumerate(self.order):
            record = self.spill.listed(index)
            if not record.keep:
                continue
            self.keep[rank] = 1
            if widths is not None:
                longest = list(map(max, longest, map(len, record.line)))
            self.attempts += 1
            self.verdicts[record.verdict] += 1
            if record.verdict != _SUCCEEDED:
                self.failed = True
                if record.reason is not None:
                    self.reasons[record.reason] += 1
            when = times[index]  # the attempt's (its hop's) time
            if record.verdict not in self._names:
                self._names.append(record.verdict)
            self._verdicts.append(self._names.index(record.verdict))
            if self.attempts == 1:
                self._first = self._last = when
            self._first, self._last = min(self._first, when), max(self._last, when)
            if record.closed is not None:
                self.closed.add(*record.closed)
            if self.spill.storm[index] not in candidates:
                continue
            group = self.groups.setdefault(record.storm, [0, when, when])
            group[0] += 1
            group[1], group[2] = min(group[1], when), max(group[2], when)
        if widths is not None:
            for key, length in zip(LINE_KEYS, longest, strict=True):
                widths[key] = max(widths[key], min(length, _LIMITS.get(key, length)))

    def summary(self, stats: RunStats, warnings: Sequence[CaptureWarning],
                show_secrets: bool = False, apart: Counter[str] | None = None) -> dict[str, Any]:
        self._scan()
        return summary_of(self.attempts, self.verdicts, self.reasons, self.storms(),
                          self._chains(), stats, warnings, show_secrets, apart=apart,
                          closed=self.closed)

    def storms(self) -> list[Storm]:
        """storms.storms of the kept attempts."""
        self._scan()
        return sorted((Storm(g[0], key[0], key[1], key[2], key[3], key[4], g[1], g[2])
                       for key, g in self.groups.items()
                       if g[0] >= 3), key=lambda s: (-s.count, s.first))

    def html_run(self, stats: RunStats, warnings: Sequence[CaptureWarning],
                 show_secrets: bool, apart: Counter[str] | None, detail_limit: int) -> Run:
        """What the HTML page shows (html.Run), the attempts read back one at a time."""
        from analyzer.report.html import Run

        summary = self.summary(stats, warnings, show_secrets, apart)
        ranks = (None if self.attempts == len(self.order)
                 else array("q", (rank for rank, kept in enumerate(self.keep) if kept)))
        points = _Points(self.spill.time, self.order, ranks, self._verdicts, self._names)
        # The postmortems' attempts are read back each time the page reads them (their rows,
        # then their postmortems), not held: 2,000 whole were 20 MB (benchmarks/README.md).
        first = _ReadAgain(self, min(detail_limit, self.attempts))
        return Run(summary, self.storms(), points,
                   self.attempts, first, self.wholes(detail_limit))

    def _chains(self) -> list[Chain]:
        """The redirect chains over every attempt, before the filters (a chain ends where it
        really ended), shown when they hold a kept one (render.summary_fields's `context`)."""
        cache: dict[int, Hop] = {}

        def hop_at(n: int) -> Hop:
            hop = cache.get(n)
            if hop is None:
                rank = self.by_time[n]
                hop = cache[n] = self.spill.hop(self.order[rank])._replace(number=rank + 1)
            return hop

        def passed(i: int) -> None:  # hops before i are not asked for again
            cache.pop(i - 1, None)

        redirects, order, by_time = self.spill.redirects, self.order, self.by_time
        if 1 not in redirects:  # (chains are followed over every attempt)
            return []
        return [c for c in chains(hop_at, len(self.by_time), passed,
                                  lambda n: redirects[order[by_time[n]]] == 1)
                if any(self.keep[n - 1] for n in c.numbers)]

    # --- the formats ------------------------------------------------------------------------

    def write_json(self, stats: RunStats, warnings: Sequence[CaptureWarning],
                   write: Callable[[str], Any], show_secrets: bool = False,
                   apart: Counter[str] | None = None) -> None:
        self._scan()
        write(JSON_START)
        first = True
        for rank, record in self._kept_records():
            write(("\n    " if first else ",\n    ") + _JSON_NUMBER + str(rank + 1) + record.line)
            first = False
        write(json_end(not first, self.summary(stats, warnings, show_secrets, apart)))
        write("\n")

    def write_csv(self, write: Callable[[str], Any]) -> None:
        self._scan()
        write(render_csv([]))
        for rank, record in self._kept_records():
            write(f"{rank + 1}," + record.line)

    def write_table(self, stats: RunStats, warnings: Sequence[CaptureWarning], markdown: bool,
                    write: Callable[[str], Any], style: TableStyle,
                    apart: Counter[str] | None = None) -> None:
        """render.render_table over the records: one pass measures the columns, one writes.
        The measuring pass is the summary's (`_scan`) when the table is the first to ask for
        it: the lines' widths come with the counts, the number's and the time's from the
        arrays in memory, and each record is read once less (benchmarks/README.md,
        "Twenty-third session")."""
        measured: dict[str, int] | None = None
        if not self._scanned and not markdown:
            measured = dict.fromkeys(LINE_KEYS, 0)
        self._scan(measured)
        clock = style.clock.spanning([self._first, self._last] if self.attempts else [])
        style = TableStyle(clock, style.width, style.files, style.show_secrets)
        if not self.attempts:
            write("No upgrade attempts found.")
        elif markdown:
            columns = _Columns(markdown_headings(style))
            for row in self._rows(clock):
                columns.add(markdown_row(row, style))
            columns.write((markdown_row(row, style) for row in self._rows(clock)), write)
        else:
            widths = Widths(style)
            if measured is not None:
                widths.widen(measured)
                widths.widen(self._number_and_time_widths(clock))
            else:
                for row in self._rows(clock):
                    widths.add(row)
            # a line at a time: the whole table of a million rows was ~500 MB as one string
            lines = (widths.piped_lines(self._row_values(clock, widths.keys))
                     if style.width is None else widths.lines(self._rows(clock)))
            for n, line in enumerate(lines):
                write(("\n" if n else "") + line)
        summary = summary_lines(self.summary(stats, warnings, style.show_secrets, apart), clock)
        write("\n\n" + (markdown_text(summary) if markdown else summary) + "\n")

    def _number_and_time_widths(self, clock: Clock) -> dict[str, int]:
        """The widest "#" and time of the kept attempts, from the arrays in memory (what
        `_rows` gives them: their rank plus one, their time as ``clock`` prints it)."""
        times, order, keep = self.spill.time, self.order, self.keep
        widest_time = widest_rank = 0
        for rank, index in enumerate(order):
            if keep[rank]:
                widest_rank = rank
                length = len(clock.time(times[index]))
                if length > widest_time:
                    widest_time = length
        return {"#": len(str(widest_rank + 1)), "time": widest_time}

    def _rows(self, clock: Clock) -> Iterator[dict[str, str]]:
        """The kept attempts' table cells (`table.cells`), in report order."""
        keys = list(_SPECS)  # (every column, in their order)
        for values in self._row_values(clock, keys):
            yield dict(zip(keys, values, strict=True))

    def detail(self, view: Any, stats: RunStats, warnings: Sequence[CaptureWarning],
               text: Callable[[Diagnosis, Any], str], clock: Clock,
               apart: Counter[str] | None = None) -> bool:
        """The detail view (``read --detail``, ``--attempt N``) as cli_read._emit prints it."""
        self._scan()
        if view.attempt is not None:
            rank = view.attempt - 1
            if not 0 <= rank < len(self.order) or not self.keep[rank]:
                click.echo(f"upgrade-analyzer: error: no attempt {view.attempt}: this report "
                           f"has {len(self.order)} (see the table without --attempt)", err=True)
                return False
            d = self.spill.whole(self.spill.full[self.order[rank]])
            click.echo(text(_numbered(d, rank + 1), view), nl=False, color=view.color)
            return True
        for rank, index in enumerate(self.order):
            if not self.keep[rank]:
                continue
            d = _numbered(self.spill.whole(self.spill.full[index]), rank + 1)
            click.echo(text(d, view), color=view.color)
        # cli_read._emit prints the summary of the detail view with no warnings (stderr has them)
        click.echo(summary_lines(self.summary(stats, (), view.show_secrets, apart), clock))
        return True

    def _row_values(self, clock: Clock, keys: list[str]) -> Iterator[tuple[str, ...]]:
        """`_rows` as `Widths.piped_lines` takes them: each row's values in the order of
        ``keys``, picked from its number, its time and its line (no dictionaries: ≈ 2 µs a
        row of the 18,538 of 1 GB of the dense benchmark mix)."""
        place = {"#": 0, "time": 1} | {k: i for i, k in enumerate(LINE_KEYS, start=2)}
        pick = itemgetter(*(place[k] for k in keys))
        times, order = self.spill.time, self.order
        for rank, record in self._kept_records():
            yield pick((str(rank + 1), clock.time(times[order[rank]]), *record.line))

    def _kept_records(self) -> Iterator[tuple[int, Listed]]:
        for rank, index in enumerate(self.order):
            if self.keep[rank]:
                yield rank, self.spill.listed(index)


class _Points(Sequence[tuple[float, str]]):
    """(time, verdict) of every kept attempt, read from the spill's arrays (a list of a
    million tuples would hold ~100 MB): the n-th kept attempt has rank ``ranks[n]`` (or n,
    when every attempt is kept), and its time is ``times[order[rank]]``."""

    def __init__(self, times: Column, order: array[int], ranks: array[int] | None,
                 verdicts: bytearray, names: list[str]) -> None:
        self.times, self.order, self.ranks = times, order, ranks
        self.verdicts, self.names = verdicts, names

    def __len__(self) -> int:
        return len(self.verdicts)

    def __getitem__(self, n: Any) -> Any:
        if isinstance(n, slice):
            return [self[i] for i in range(*n.indices(len(self)))]
        if n < 0:
            n += len(self)
        if not 0 <= n < len(self):
            raise IndexError(n)
        rank = n if self.ranks is None else self.ranks[n]
        return self.times[self.order[rank]], self.names[self.verdicts[n]]

    def __iter__(self) -> Iterator[tuple[float, str]]:
        names, times, order, ranks = self.names, self.times, self.order, self.ranks
        for n, v in enumerate(self.verdicts):
            yield times[order[n if ranks is None else ranks[n]]], names[v]


# the columns `cell_text` clips, and where
_LIMITS = {"request": REQUEST_LIMIT, "reason": REASON_LIMIT}


class _ReadAgain:
    """The first ``count`` kept attempts of a spilled report, read from its files whole, one
    at a time, every time they are iterated."""

    def __init__(self, report: SpilledReport, count: int) -> None:
        self.report = report
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Diagnosis]:
        return self.report.wholes(0, self.count)


def _numbered(d: Diagnosis, number: int) -> Diagnosis:
    import dataclasses

    return dataclasses.replace(d, number=number)


class _Columns:
    """What tabulate decides from a whole column, gathered row by row: the most general type
    (tabulate's own `_type`), the widest value, and whether any value would switch tabulate
    to another way of measuring (terminal codes, line breaks)."""

    def __init__(self, headers: list[str]) -> None:
        import tabulate

        self._tabulate = tabulate
        self.headers = headers
        self.types: list[type] = [bool] * len(headers)
        self.general: list[Any] = [None] * len(headers)  # a value of that type
        self.widest: list[Any] = [None] * len(headers)
        self.widths = [-1] * len(headers)
        self.plain = True  # no value needs tabulate's special handling
        self._width = tabulate._choose_width_fn(
            False, tabulate.wcwidth is not None and tabulate.WIDE_CHARS_MODE, False)

    def add(self, row: list[Any]) -> None:
        t = self._tabulate
        for n, value in enumerate(row):
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
        fmt = "github"
        if not self.plain or any(k in (float, bytes) for k in self.types):
            # A float column aligns on the decimal point and a line break makes rows of
            # several lines: laid out whole, in memory (no capture of ours has either).
            write(tabulate(list(rows), headers=self.headers, tablefmt=fmt))
            return
        guides = [self.widest, self.general]  # escaped already
        first = True
        while True:
            batch = list(itertools.islice(rows, TABLE_SLICE))
            if not batch:
                return
            lines = tabulate(guides + batch, headers=self.headers, tablefmt=fmt).split("\n")
            write(("" if first else "\n") + "\n".join(
                (lines[:2] if first else []) + lines[2 + len(guides):]))
            first = False


def emit_spilled(report: SpilledReport, fmt: str, stats: RunStats,
                 warnings: Sequence[CaptureWarning], view: Any,
                 detail_text: Callable[[Diagnosis, Any], str], style: TableStyle,
                 apart: Counter[str] | None = None, captures: tuple[str, ...] = ()) -> bool:
    """cli_read._emit for a spilled report: the same output, from the records."""
    write = sys.stdout.write
    secrets = view.show_secrets
    # The text formats' summaries leave the warnings out, as in memory: standard error has
    # them already (JSON carries them in its document).
    if view.summary_only:
        if fmt in ("json", "jsonl"):
            write(summary_document(report.summary(stats, warnings, secrets, apart), fmt) + "\n")
        else:
            write(summary_lines(report.summary(stats, (), secrets, apart), style.clock) + "\n")
        return True
    if view.attempt is not None or view.detail:
        return report.detail(view, stats, warnings, detail_text, style.clock, apart)
    if fmt == "json":
        report.write_json(stats, warnings, write, secrets, apart)
    elif fmt == "csv":
        report.write_csv(write)
    elif fmt == "html":
        # every attempt was pickled whole as it was decided (cli.py: KeptAttempts(whole=...)),
        # and the page is written as they are read back
        from analyzer.report.html import DETAIL_LIMIT, page

        run = report.html_run(stats, warnings, secrets, apart, DETAIL_LIMIT)
        for piece in page(run, stats, captures, secrets, DETAIL_LIMIT):
            write(piece)
    else:
        report.write_table(stats, (), fmt == "markdown", write, style, apart)
    return True
