"""The geometry of the HTML report's timeline: attempts per time bucket, stacked by verdict.

Pure numbers in, shapes out (rectangles, ticks, brackets in SVG user units); the template
draws them. A stacked histogram shows the volume (a reconnect storm is a wall), and one thin
lane per verdict marks every bucket holding at least one attempt of that verdict, so a lone
failure or an idle kill stays visible beside a storm ten thousand times taller.

Time runs left to right at one scale, except across long idle stretches (no attempt for a
fifth of the capture and at least a minute: rotated files, a capture left running overnight),
which are drawn as a narrow labelled break; otherwise the activity would be squeezed into
slivers at the edges.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from analyzer.storms import Storm

WIDTH = 1100.0  # the viewBox width; the page scales it to the column
LEFT, RIGHT = 92.0, 14.0  # room for the lane names and count axis, and for the last label
BRACKETS_TOP, BRACKET_ROW = 4.0, 15.0
HISTOGRAM_HEIGHT = 110.0
LANE_HEIGHT, LANE_GAP = 9.0, 3.0
AXIS_HEIGHT = 24.0
MAX_BUCKETS = 140
MAX_BRACKETS = 3  # the largest repeated groups drawn above the bars
MIN_SEGMENT = 2.0  # a non-empty segment is at least this tall, so one attempt is visible
LONE_BAR = 14.0  # width of the one bar of a stretch with no duration
# Idle stretches drawn as breaks: at least this share of the capture and this many seconds.
BREAK_SHARE, BREAK_SECONDS, MAX_BREAKS, BREAK_WIDTH = 0.2, 60.0, 4, 60.0
MIN_STRETCH_SHARE = 0.06  # the least width of an active stretch, as a share of the plot

# Seconds between ticks, the first that gives at most the tick budget over a stretch.
_STEPS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120,
          300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800)
MAX_TICKS = 9
TICK_ROOM = 74.0  # the least distance between two tick labels (more with a date)


@dataclass(frozen=True, slots=True)
class Segment:
    """One verdict's share of a bucket's bar."""
    verdict: str
    y: float
    height: float
    count: int


@dataclass(frozen=True, slots=True)
class Bucket:
    """One time slice of the timeline and where it is drawn."""
    x: float
    width: float
    start: float  # seconds since 1970, UTC
    end: float
    total: int
    segments: tuple[Segment, ...]  # bottom to top
    label: str  # "15:07:53 to 15:07:54 UTC: 3 failed, 1 succeeded"


@dataclass(frozen=True, slots=True)
class Lane:
    """One verdict's row of marks."""
    verdict: str
    y: float
    marks: tuple[tuple[float, float, int], ...]  # x, width, count of each non-empty bucket


@dataclass(frozen=True, slots=True)
class Tick:
    """One labelled mark on the time axis."""
    x: float
    label: str
    anchor: str  # SVG text-anchor: the labels at the edges stay inside the drawing


@dataclass(frozen=True, slots=True)
class Bracket:
    """A run of repeated attempts (a storm, a retry loop) marked over the time it spans."""
    x: float
    width: float
    y: float
    verdict: str
    label: str


@dataclass(frozen=True, slots=True)
class Break:
    """A long idle stretch without attempts, drawn cut short."""
    x: float
    width: float
    idle: float  # seconds without an attempt


@dataclass(frozen=True, slots=True)
class Timeline:
    """The whole timeline drawing's layout, ready for the template."""
    width: float
    height: float
    plot_left: float
    plot_right: float
    bars_top: float
    baseline: float
    lanes_bottom: float
    max_count: int
    buckets: tuple[Bucket, ...]
    lanes: tuple[Lane, ...]
    ticks: tuple[Tick, ...]
    brackets: tuple[Bracket, ...]
    breaks: tuple[Break, ...]
    bucket_seconds: float


@dataclass(frozen=True, slots=True)
class _Stretch:
    """An active stretch of time and where it is drawn, cut into equal buckets."""

    start: float
    end: float
    x: float
    width: float
    buckets: int

    def x_of(self, time: float) -> float:
        if self.end <= self.start:
            return self.x + self.width / 2
        return self.x + (time - self.start) / (self.end - self.start) * self.width

    def bucket(self, index: int) -> tuple[float, float, float, float]:
        """x, width, start and end time of one bucket."""
        if self.end <= self.start:
            width = min(self.width, LONE_BAR)
            return self.x + (self.width - width) / 2, width, self.start, self.start
        seconds = (self.end - self.start) / self.buckets
        width = self.width / self.buckets
        return (self.x + index * width, width, self.start + index * seconds,
                self.start + (index + 1) * seconds)


def build_timeline(points: Sequence[tuple[float, str]], order: Sequence[str],
                   repeated: Sequence[Storm] = ()) -> Timeline | None:
    """The timeline of ``points`` (time, verdict); ``order`` stacks verdicts bottom first.
    ``repeated`` must hold cleaned requests (they become labels). None with no points."""
    if not points:
        return None
    stretches, breaks, seconds = _layout(sorted(t for t, _ in points))
    starts = [s.start for s in stretches]
    counts: list[list[Counter[str]]] = [[Counter() for _ in range(s.buckets)]
                                        for s in stretches]
    for time, verdict in points:
        n = max(0, bisect_right(starts, time) - 1)
        stretch = stretches[n]
        if stretch.end > stretch.start:
            index = int((time - stretch.start) / (stretch.end - stretch.start) * stretch.buckets)
        else:
            index = 0
        counts[n][min(stretch.buckets - 1, max(0, index))][verdict] += 1
    ranked = list(order) + sorted({v for _, v in points} - set(order))
    present = [v for v in ranked if any(c[v] for row in counts for c in row)]

    bracket_rows = min(MAX_BRACKETS, len(repeated))
    bars_top = BRACKETS_TOP + BRACKET_ROW * bracket_rows + 4
    baseline = bars_top + HISTOGRAM_HEIGHT
    lanes_top = baseline + 6
    lanes_bottom = lanes_top + len(present) * (LANE_HEIGHT + LANE_GAP)
    peak = max(sum(c.values()) for row in counts for c in row)

    buckets: list[Bucket] = []
    marks: dict[str, list[tuple[float, float, int]]] = {v: [] for v in present}
    for stretch, row in zip(stretches, counts, strict=True):
        for index, tally in enumerate(row):
            total = sum(tally.values())
            if not total:
                continue
            x, width, start, end = stretch.bucket(index)
            segments, y = [], baseline
            for verdict in present:
                if tally[verdict]:
                    height = max(MIN_SEGMENT, HISTOGRAM_HEIGHT * tally[verdict] / peak)
                    y -= height
                    segments.append(Segment(verdict, y, height, tally[verdict]))
                    marks[verdict].append((x, width, tally[verdict]))
            resolution = end - start if end > start else 1.0
            when = (f"{_clock(start, resolution)} to {_clock(end, resolution)}" if end > start
                    else _clock(start, 0.5))
            label = f"{when} UTC: " + ", ".join(f"{tally[v]} {v}" for v in present if tally[v])
            buckets.append(Bucket(x, width, start, end, total, tuple(segments), label))
    lanes = tuple(Lane(v, lanes_top + n * (LANE_HEIGHT + LANE_GAP), tuple(marks[v]))
                  for n, v in enumerate(present))
    brackets = tuple(
        Bracket(x, max(3.0, _x_of(stretches, s.last) - x), BRACKETS_TOP + row * BRACKET_ROW,
                s.verdict, f"{s.count} × {s.request} → {s.verdict}"
                + (f" ({s.reason})" if s.reason else ""))
        for row, s in enumerate(repeated[:MAX_BRACKETS])
        for x in [_x_of(stretches, s.first)])
    height = lanes_bottom + AXIS_HEIGHT
    return Timeline(WIDTH, height, LEFT, WIDTH - RIGHT, bars_top, baseline, lanes_bottom, peak,
                    tuple(buckets), lanes, _ticks(stretches), brackets, tuple(breaks), seconds)


def _layout(times: Sequence[float]) -> tuple[list[_Stretch], list[Break], float]:
    """Active stretches between the long idle gaps, placed on the plot; the breaks between
    them; the nominal seconds per bucket."""
    first, last = times[0], times[-1]
    span = last - first
    # the longest few only: sorting every (gap, k) was ≈ 125 bytes an attempt (6.7 MB at 54 k)
    gaps = heapq.nlargest(MAX_BREAKS, ((times[k + 1] - times[k], k)
                                       for k in range(len(times) - 1)))
    cuts = sorted(k for gap, k in gaps
                  if gap >= BREAK_SHARE * span and gap >= BREAK_SECONDS)
    bounds, begin = [], 0
    for k in cuts:
        bounds.append((times[begin], times[k]))
        begin = k + 1
    bounds.append((times[begin], last))
    active = sum(end - start for start, end in bounds)
    seconds = active / MAX_BUCKETS if active > 0 else 0.0
    plot = WIDTH - LEFT - RIGHT
    room = plot - BREAK_WIDTH * (len(bounds) - 1)
    least = room * MIN_STRETCH_SHARE
    spare = room - least * len(bounds)
    stretches, breaks, x = [], [], LEFT
    for n, (start, end) in enumerate(bounds):
        share = (end - start) / active if active > 0 else 1 / len(bounds)
        width = least + spare * share
        count = max(1, math.ceil((end - start) / seconds)) if seconds and end > start else 1
        stretches.append(_Stretch(start, end, x, width, count))
        x += width
        if n + 1 < len(bounds):
            breaks.append(Break(x, BREAK_WIDTH, bounds[n + 1][0] - end))
            x += BREAK_WIDTH
    return stretches, breaks, seconds


def _x_of(stretches: Sequence[_Stretch], time: float) -> float:
    """Where ``time`` is drawn; inside a break, in proportion across it."""
    for n, stretch in enumerate(stretches):
        if n and time < stretch.start:  # in the break before this stretch
            previous = stretches[n - 1]
            left = previous.x + previous.width
            return left + (time - previous.end) / (stretch.start - previous.end) * (
                stretch.x - left)
        if time <= stretch.end:
            return stretch.x_of(max(time, stretch.start))
    return stretches[-1].x_of(time)


def _ticks(stretches: Sequence[_Stretch]) -> tuple[Tick, ...]:
    plot = WIDTH - LEFT - RIGHT
    ticks: list[Tick] = []
    shown_day, last_x = "", -math.inf
    for stretch in stretches:
        duration = stretch.end - stretch.start
        budget = max(1, round(MAX_TICKS * stretch.width / plot))
        if duration <= 0:
            times, step = [stretch.start], 1.0
        else:
            step = next((s for s in _STEPS if duration / s <= budget), _STEPS[-1])
            k = math.ceil(stretch.start / step)
            times = []
            while k * step <= stretch.end + 1e-9 and len(times) <= budget:
                times.append(k * step)
                k += 1
            times = times or [stretch.start]
        for time in times:
            x = stretch.x_of(time)
            day = _day(time)
            label = _clock(time, step)
            if day != shown_day:  # the date on the first tick, and when it changes
                label = f"{day} {label}"
            if x - last_x < TICK_ROOM + (40 if day != shown_day else 0):
                continue
            shown_day, last_x = day, x
            anchor = ("start" if x - LEFT < 60 else "end" if WIDTH - RIGHT - x < 60
                      else "middle")
            ticks.append(Tick(x, label, anchor))
    return tuple(ticks)


def _day(seconds: float) -> str:
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d")
    except (OverflowError, OSError, ValueError):
        return ""


def _clock(seconds: float, resolution: float) -> str:
    """HH:MM:SS in UTC, with milliseconds when ``resolution`` is below a second."""
    try:
        stamp = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):  # no calendar date (see fields.iso_time)
        return f"@{seconds:.3f}"
    text = stamp.strftime("%H:%M:%S")
    if resolution < 1:
        text += f".{stamp.microsecond // 1000:03d}"
    return text
