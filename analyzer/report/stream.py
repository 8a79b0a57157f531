"""Reports that grow while a capture runs: a table printed row by row, and running counts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from analyzer.correlate import Storm, StormKey, storm_key
from analyzer.report.render import (
    capture_fields,
    capture_lines,
    render_csv,
    repeated_fields,
    repeated_lines,
    table_rows,
)
from analyzer.report.safe import neutralise
from analyzer.source.frame import CaptureWarning
from analyzer.values import RunStats
from analyzer.verdict import Diagnosis, Verdict

# (heading, width, right-aligned) of each column of the streamed table; the reason column
# takes what is left. Widths fit the usual values; a longer value pushes its line to the right.
_COLUMNS = (("#", 4, True), ("frame", 7, True), ("time", 12, False), ("client", 21, False),
            ("server", 21, False), ("request", 40, False), ("offered", 10, False),
            ("status", 6, True), ("verdict", 12, False), ("reason", 0, False))


def _line(values: list[Any]) -> str:
    cells = []
    for (_, width, right), value in zip(_COLUMNS, values, strict=True):
        text = str(value)
        cells.append(text.rjust(width) if right else text.ljust(width))
    return "  ".join(cells).rstrip()


def table_head() -> str:
    """The two heading lines of the streamed table, printed once before the first row."""
    return "\n".join((_line([c[0] for c in _COLUMNS]),
                      _line(["-" * max(c[1], len(c[0])) for c in _COLUMNS])))


def table_line(diagnosis: Diagnosis, show_secrets: bool = False) -> str:
    """One attempt as one fixed-width line under `table_head` (cleaned as `table_rows` is)."""
    return _line(table_rows([diagnosis], show_secrets)[0])


def csv_head() -> str:
    return render_csv([]).rstrip("\r\n")


def csv_line(diagnosis: Diagnosis) -> str:
    """One attempt as one CSV record (render_csv's, so quoting and cleaning are the same)."""
    text = render_csv([diagnosis])
    return text[text.index("\n") + 1:].rstrip("\r\n")


@dataclass(slots=True)
class Tally:
    """Counts by verdict and primary reason: the summary of a run that keeps no attempt."""

    attempts: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    groups: dict[StormKey, list[float]] = field(default_factory=dict)  # [count, first, last]

    def add(self, diagnosis: Diagnosis) -> None:
        self.attempts += 1
        self.verdicts[diagnosis.verdict.value] += 1
        if diagnosis.primary is not None and diagnosis.verdict is not Verdict.SUCCEEDED:
            self.reasons[diagnosis.primary.check] += 1
        when = diagnosis.attempt.time
        group = self.groups.setdefault(storm_key(diagnosis), [0, when, when])
        group[0] += 1
        group[1], group[2] = min(group[1], when), max(group[2], when)

    @property
    def failed(self) -> bool:
        return any(v != Verdict.SUCCEEDED.value for v in self.verdicts)

    def storms(self, minimum: int = 3) -> list[Storm]:
        out = [Storm(int(g[0]), *key, g[1], g[2]) for key, g in self.groups.items()
               if g[0] >= minimum]
        return sorted(out, key=lambda s: (-s.count, s.first))


def tally_summary(tally: Tally, stats: RunStats, received: int | None = None,
                  dropped: int | None = None,
                  warnings: Sequence[CaptureWarning] = ()) -> dict[str, Any]:
    """The summary of a streamed run (live, or read as it goes) as fields."""
    return {
        "attempts": tally.attempts,
        "verdicts": dict(sorted(tally.verdicts.items())),
        "reasons": dict(tally.reasons.most_common()),
        "repeated": repeated_fields(tally.storms()),
        "warnings": [neutralise(f"{w.source}: {w.where}: {w.message}") for w in warnings],
        "packets_received": received,
        "packets_dropped": dropped,
        **capture_fields(stats),
    }


def tally_summary_text(tally: Tally, stats: RunStats, received: int | None = None,
                       dropped: int | None = None,
                       warnings: Sequence[CaptureWarning] = ()) -> str:
    """The summary of a streamed run, worded like `read`'s; live adds the kernel's counts."""
    s = tally_summary(tally, stats, received, dropped, warnings)
    verdicts = ", ".join(f"{n} {v}" for v, n in s["verdicts"].items()) or "none"
    lines = [f"Attempts: {s['attempts']} ({verdicts})"]
    if s["reasons"]:
        lines.append("Reasons: " + ", ".join(f"{r} x{n}" for r, n in s["reasons"].items()))
    lines.extend(repeated_lines(s["repeated"]))
    if received is not None:
        lines.append(f"Packets: {received} received, {dropped} dropped by the kernel")
    lines.extend(capture_lines(s))
    lines.extend(f"Warning: {w}" for w in s["warnings"])
    return "\n".join(lines)
