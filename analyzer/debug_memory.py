"""A debugging aid for memory creep: with ``UPGRADE_ANALYZER_TRACEMALLOC=FILE:SECONDS`` set,
the process traces its allocations and appends to FILE, every SECONDS, the allocation sites
that grew most since the first snapshot (``benchmarks/soak.py --tracemalloc`` sets it).

Off unless the variable is set: tracing slows the analyzer down about twofold."""

from __future__ import annotations

import os
import time

VARIABLE = "UPGRADE_ANALYZER_TRACEMALLOC"
FRAMES = 8  # enough to see which of our modules holds an allocation made in a library
TOP = 25


def start_from_environment() -> bool:
    """Starts the tracing thread when the variable asks for it; True when it did."""
    setting = os.environ.get(VARIABLE)
    if not setting:
        return False
    path, _, every = setting.rpartition(":")
    if not path:
        path, every = every, "60"
    interval = float(every)
    # imported here: every run calls this function, few set the variable (start-up, ≈ 2 ms)
    import threading
    import tracemalloc

    tracemalloc.start(FRAMES)
    thread = threading.Thread(target=_watch, args=(path, interval), daemon=True,
                              name="tracemalloc-watch")
    thread.start()
    return True


def _watch(path: str, interval: float) -> None:
    import tracemalloc

    started = time.monotonic()
    # The baseline waits one interval: imports and start-up buffers are not creep.
    time.sleep(interval)
    baseline = tracemalloc.take_snapshot()
    while True:
        time.sleep(interval)
        snapshot = tracemalloc.take_snapshot()
        current, peak = tracemalloc.get_traced_memory()
        lines = [f"== {time.monotonic() - started:.0f} s: traced {current / 1024:.0f} KiB "
                 f"(peak {peak / 1024:.0f} KiB); largest growth since {interval:.0f} s"]
        for stat in snapshot.compare_to(baseline, "traceback")[:TOP]:
            lines.append(f"{stat.size_diff / 1024:+.1f} KiB {stat.count_diff:+d} blocks "
                         f"(now {stat.size / 1024:.1f} KiB)")
            lines.extend(f"    {frame.filename}:{frame.lineno}"
                         for frame in stat.traceback[-FRAMES:])
        with open(path, "a", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
