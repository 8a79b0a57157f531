"""CPU seconds of a few commands run in turn, round after round, and their ratios.

    python benchmarks/alternate.py --rounds 11 \\
        "floor=python benchmarks/run.py --floor /tmp/final-bench/bench-100M-seed1-dense.pcap" \\
        "ours=python -m analyzer read /tmp/final-bench/bench-100M-seed1-dense.pcap -F jsonl"

Each argument is NAME=COMMAND (a shell command line). Every round runs each command once, in
the order given, so that a machine that slows down or speeds up during the run slows or
speeds up all of them alike; the medians of user + system seconds are printed with their
ratio to the first command's. This is how the ratios against the floor loop and between two
source trees in benchmarks/README.md are measured: on a shared machine, a ratio from one
round, or from runs made at different times, moves by more than the changes measured.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys

TIMEOUT = 1800  # seconds a command may take


def cpu_seconds(command: str) -> float:
    """User + system seconds of one run of ``command`` (its output is dropped)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, shell=True, check=True, timeout=TIMEOUT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    # The commands run as users run them: a PYTHONUNBUFFERED in the caller's environment
    # (some sandboxes set it) makes each output line a write system call of its own.
    os.environ.pop("PYTHONUNBUFFERED", None)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("commands", nargs="+", metavar="NAME=COMMAND")
    args = parser.parse_args()
    named = []
    for item in args.commands:
        name, sep, command = item.partition("=")
        if not sep or not name or not command:
            parser.error(f"not NAME=COMMAND: {item!r}")
        named.append((name, command))
    times: dict[str, list[float]] = {name: [] for name, _ in named}
    load = [os.getloadavg()[0]]
    for _ in range(max(1, args.rounds)):
        for name, command in named:
            times[name].append(cpu_seconds(command))
        load.append(os.getloadavg()[0])
    first = statistics.median(times[named[0][0]])
    print(f"| command | median CPU s | min-max | ratio to {named[0][0]} |")
    print("|---|---:|---|---:|")
    for name, _ in named:
        median = statistics.median(times[name])
        print(f"| {name} | {median:.3f} | {min(times[name]):.3f}-{max(times[name]):.3f} "
              f"| {median / first:.2f}x |")
    print(f"\n{args.rounds} rounds, load average {min(load):.1f}-{max(load):.1f}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
