"""The Python rounds of the HTTP/1 tracker: each `ConnectionTracker.on_data` call, by what
the side was reading, with its count and its time.

    python benchmarks/tracker_rounds.py CAPTURE

A round is a segment the compiled skip could not take itself (`Follow._deliver` hands it
to `on_data`): the first bytes of a connection (``detect``), a request head or its pieces
(``client head``), a response head to a request that offers an upgrade or to one that does
not (``server head, offer``, ``server head, plain``), a body's segment the tracker reads (its
kept first bytes, its last segment, a chunked body's), a switched connection's bytes that
its watch cannot take in C (``switch``). The times include the wrapper's own clock reads
(≈ 0.1 µs a round). What the compiled skip took itself is printed too: segments taken,
bodies counted unread (`Follow.bodies`), watch segments (`Follow.watched`).

Used to size the next lever on the handshake-dense mix (benchmarks/README.md, "Twentieth
session"): a round costs what its kind costs here, and the counts say how many a compiled
reader of that kind would take.
"""

from __future__ import annotations

import sys
import time
from collections import Counter

from analyzer.exchange import tracker as tracker_module
from analyzer.exchange.pending import Mode
from analyzer.pipeline import Analysis
from analyzer.source import read_records


def kind_of(tracker: tracker_module.ConnectionTracker, side: int) -> str:
    """What ``side`` of ``tracker`` is reading as a segment of it arrives."""
    if tracker._switch is not None:
        return "switch"
    if tracker._client is None:
        return "detect"
    state = tracker._sides[side]
    who = "client" if side == tracker._client else "server"
    if state.mode is Mode.HEAD and who == "server":
        requests = tracker._requests
        return "server head, offer" if requests and requests[0].offers else "server head, plain"
    return f"{who} {state.mode.name.lower()}"


def measure(capture: str) -> tuple[Counter[str], Counter[str], Analysis]:
    """Rounds and nanoseconds by kind over one run of ``capture`` (as `read` runs it)."""
    counts: Counter[str] = Counter()
    nanoseconds: Counter[str] = Counter()
    on_data = tracker_module.ConnectionTracker.on_data
    clock = time.perf_counter_ns

    def timed(self: tracker_module.ConnectionTracker, side: int, offset: int, data: bytes,
              frame: int, when: float) -> None:
        kind = kind_of(self, side)
        start = clock()
        on_data(self, side, offset, data, frame, when)
        nanoseconds[kind] += clock() - start
        counts[kind] += 1

    tracker_module.ConnectionTracker.on_data = timed  # type: ignore[method-assign]
    try:
        run = Analysis(lifetimes=True)
        for _ in run.feed_records(read_records([capture], [])):
            pass
        run.finish()
    finally:
        tracker_module.ConnectionTracker.on_data = on_data  # type: ignore[method-assign]
    return counts, nanoseconds, run


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__.split("\n\n")[1])
    counts, nanoseconds, run = measure(sys.argv[1])
    print("| round | count | ms | µs each |\n|---|---:|---:|---:|")
    for kind, total in nanoseconds.most_common():
        print(f"| {kind} | {counts[kind]:,} | {total / 1e6:.1f} | "
              f"{total / counts[kind] / 1e3:.1f} |")
    print(f"| all | {sum(counts.values()):,} | {sum(nanoseconds.values()) / 1e6:.1f} | |")
    follow = run._follow
    if follow is not None:
        print(f"\nTaken in C: {follow.taken:,} segments, of them {follow.bodies:,} inside a "
              f"body nobody reads and {follow.watched:,} under a compiled watch")


if __name__ == "__main__":
    main()
