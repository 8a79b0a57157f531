"""Progress of a long `read` on standard error: bytes and frames read, the rate, and the time
left when the inputs' sizes are known (regular files). Shown only on a terminal (tqdm draws
it); a redirected standard error gets nothing.

The analysis runs in the main thread and yields only when an attempt is decided, which a bulk
capture may not do for minutes, so a small thread reads the counters (the files' read
positions, the reader's frame number) a few times a second and redraws; the analysis itself
pays nothing per frame.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from analyzer.source.stream import Input

INTERVAL = 0.25  # seconds between redraws


def wanted(stream: TextIO | None = None) -> bool:
    """Whether to show progress: standard error is a terminal that can redraw a line."""
    stream = stream or sys.stderr
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        return False
    return tty and os.environ.get("TERM") != "dumb"


class Progress:
    """A progress line for the inputs being read, redrawn from a thread until `stop`."""

    def __init__(self, inputs: Sequence[Input], frames: Callable[[], int]) -> None:
        self._inputs = list(inputs)
        self._frames = frames
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
        self._bar: Any = None

    def start(self) -> Progress:
        from tqdm import tqdm  # here: imported only when a terminal will show it

        sizes = [inp.size for inp in self._inputs]
        total = sum(s for s in sizes if s is not None) if None not in sizes else None
        # A terminal that does not say its size (0 columns) gets 80.
        try:
            columns = None if os.get_terminal_size(sys.stderr.fileno()).columns else 80
        except (OSError, ValueError):
            columns = 80
        self._bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                         desc="reading", file=sys.stderr, leave=False, ncols=columns,
                         dynamic_ncols=columns is None, mininterval=INTERVAL)
        self._thread.start()
        return self

    def _read_so_far(self) -> int:
        done = 0
        for inp in self._inputs:
            try:
                done += inp.tell() if inp.tell is not None else 0
            except (OSError, ValueError):  # closed at its end: it was read whole
                done += inp.size or 0
        return done

    def _draw(self) -> None:
        bar = self._bar
        bar.n = self._read_so_far()
        bar.set_postfix_str(f"{self._frames():,} frames", refresh=False)
        bar.refresh()

    def _run(self) -> None:
        while not self._stopped.wait(INTERVAL):
            self._draw()

    def stop(self) -> None:
        """Draw the last state and clear the line (the report follows on standard output)."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()
        if self._bar is not None:
            self._draw()
            self._bar.close()
