"""The live loop: captured frames go through the pipeline, and the passing of time decides the
attempts still waiting for an answer. It prints nothing; the CLI reports what it yields."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Protocol

from analyzer.pipeline import Analysis, Decided
from analyzer.source.frame import Frame

# How often time is allowed to decide (Analysis.tick), in seconds; also the longest a stop
# request (Ctrl-C, the end of --duration) waits to be noticed.
TICK = 0.5
_POLL = 0.25
# The longest the end of a run keeps reading what the kernel captured before the stop.
DRAIN_SECONDS = 10.0


class FrameSource(Protocol):
    def poll(self, timeout: float) -> list[Frame]:
        """The frames that arrive within `timeout` seconds; [] when none did."""
        ...


class FrameSink(Protocol):
    def write(self, frame: Frame) -> None: ...

    def flush(self) -> None: ...


def run_live(source: FrameSource, analysis: Analysis, patience: float, *,
             should_stop: Callable[[], bool], deadline: float | None = None,
             sink: FrameSink | None = None,
             clock: Callable[[], float] = time.time,
             on_tick: Callable[[], None] | None = None) -> Iterator[Decided]:
    """Yields each attempt the moment it is decided, until `should_stop()` or the `deadline`
    (clock time). Attempts still undecided at the end are left in `analysis`: the caller
    chooses whether to `finish()` them."""
    last_tick = clock()
    while not should_stop():
        now = clock()
        if deadline is not None and now >= deadline:
            break
        wait = _POLL if deadline is None else min(_POLL, deadline - now)
        frames = source.poll(wait)
        yield from _feed(frames, analysis, sink)
        now = clock()
        if now - last_tick >= TICK:
            last_tick = now
            if sink is not None:
                sink.flush()
            if on_tick is not None:  # e.g. read the new lines of a growing key log
                on_tick()
            # Kernel timestamps and `now` are the same clock (wall time, UTC). While reads
            # return packets the kernel may hold a backlog (a loaded machine falls seconds
            # behind): time is then the last packet's, or attempts whose answers are still
            # queued would be judged unanswered (0.5 % of an hour's soak at 200/s was
            # `no_response`, with no packet dropped: benchmarks/soak.py).
            yield from analysis.tick(min(now, frames[-1].time) if frames else now, patience)
    # What the kernel captured before the stop still counts (a FIN just before Ctrl-C): all
    # of it, not one read's batch. A loaded machine leaves seconds of packets in the socket
    # buffer; reading one batch left ~1,000 attempts of a 200/s soak `no_response` (capture
    # ended) with their answers unread (benchmarks/soak.py). Bounded in time for a capture
    # that never goes quiet.
    until = time.monotonic() + DRAIN_SECONDS
    while frames := source.poll(0.0):
        yield from _feed(frames, analysis, sink)
        if time.monotonic() >= until:
            break


def _feed(frames: list[Frame], analysis: Analysis, sink: FrameSink | None) -> Iterator[Decided]:
    for frame in frames:
        if sink is not None:
            sink.write(frame)
        if decided := analysis.feed(frame):
            yield from decided
