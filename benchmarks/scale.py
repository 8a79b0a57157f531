"""Times `read --jobs N FILE` (one capture sharded over N processes) against one process,
side by side, and projects the speed-up for more cores.

Usage::

    python benchmarks/scale.py /tmp/bench-200M.pcap /tmp/bench-1G.pcap [--jobs 2] [--rounds 3] \
        [--formats table,jsonl]

Each format is measured on its own: the default table (a sorted report: the workers send whole
attempts, the parent keeps and correlates them) and JSONL (streamed: the workers send each
attempt's line rendered, report/digest.py).

Each round runs one process, then ``--jobs N``, on the same file (the page cache is warm for
both); wall and CPU (user + system of the command and every worker it reaped) are medians over
the rounds. The load average is printed before and after: on a shared machine it says how many
of the cores the runs really had.

Projection: every worker walks the whole file, so the walk is the serial part of the workers.
It is measured as a run that owns no connection (``--walk``: every flow is skipped in compiled
code) less Python's start-up (the same run on a one-frame capture), W. With C the workers' CPU
at N=2, of which 2W is the walk twice, N workers on N free cores take W + (C - 2W) / N. The
parent's own CPU, R (start-up, unpickling and merging what the workers send, the report),
runs beside the workers while they send and after them for the report: the projection is given
between max(R, W + (C - 2W) / N) (all of R overlapped) and R + W + (C - 2W) / N (none of it),
as speed-ups over the one-process CPU time (wall = CPU on a free core).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


# Runs the command line in-process and says on standard error the CPU of the process itself
# (not of the workers it forked: they leave with os._exit, without running atexit).
_OWN_CPU = ("import atexit, resource, sys\n"
            "def own():\n"
            "    r = resource.getrusage(resource.RUSAGE_SELF)\n"
            "    print('own-cpu', r.ru_utime + r.ru_stime, file=sys.stderr)\n"
            "atexit.register(own)\n"
            "sys.argv[0] = 'upgrade-analyzer'\n"
            "from analyzer.cli import main\n"
            "main()\n")


def timed(command: list[str]) -> tuple[float, float, float]:
    """(wall, CPU, own CPU) seconds of a command: CPU counts the children it waited for."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    own = [float(line.split()[1]) for line in done.stderr.splitlines()
           if line.startswith("own-cpu ")]
    return wall, cpu, own[0] if own else cpu


def walk(path: str) -> None:
    """The serial part: read the whole file following no connection."""
    sys.path.insert(0, str(REPO))  # this tree's analyzer, as `python -m analyzer` from REPO
    from analyzer.pipeline import Analysis
    from analyzer.source import read_records

    analysis = Analysis(owns=lambda conn, segment: False)
    for _ in analysis.feed_records(read_records([path], [])):
        pass
    analysis.finish()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("captures", nargs="+")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--formats", default="table,jsonl",
                        help="the report formats measured, comma-separated")
    parser.add_argument("--walk", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # The commands run as users run them: a PYTHONUNBUFFERED in the caller's environment
    # (some sandboxes set it) makes each output line a write system call of its own.
    os.environ.pop("PYTHONUNBUFFERED", None)
    if args.walk:
        walk(args.captures[0])
        return 0
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{os.cpu_count()} CPUs")
    read = [sys.executable, "-c", _OWN_CPU, "read"]
    tiny = str(REPO / "captures" / "plain_get.pcap")
    for capture in args.captures:
        for fmt in args.formats.split(","):
            _measure(capture, fmt, args.jobs, args.rounds, read, tiny)
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


def _measure(capture: str, fmt: str, jobs: int, rounds: int, read: list[str],
             tiny: str) -> None:
    """One capture in one format: one process against --jobs, rounds alternating."""
    runs: dict[str, list[tuple[float, float, float]]] = {
        "one": [], "jobs": [], "walk": [], "start": []}
    for _ in range(rounds):
        runs["one"].append(timed([*read, "-F", fmt, capture]))
        runs["jobs"].append(timed([*read, "-F", fmt, "--jobs", str(jobs), capture]))
        runs["walk"].append(timed([sys.executable, __file__, "--walk", capture]))
        runs["start"].append(timed([sys.executable, __file__, "--walk", tiny]))
    wall = {k: statistics.median(r[0] for r in v) for k, v in runs.items()}
    cpu = {k: statistics.median(r[1] for r in v) for k, v in runs.items()}
    own = statistics.median(r[2] for r in runs["jobs"])
    size = os.path.getsize(capture) / 1e6
    print(f"\n{capture} ({size:.0f} MB), -F {fmt}, medians of {rounds}:")
    print(f"  one process:  wall {wall['one']:6.2f} s  CPU {cpu['one']:6.2f} s")
    print(f"  --jobs {jobs}:     wall {wall['jobs']:6.2f} s  CPU {cpu['jobs']:6.2f} s"
          f" (parent {own:.2f} s, workers {cpu['jobs'] - own:.2f} s)"
          f"  speed-up {wall['one'] / wall['jobs']:.2f}x")
    walk_cpu = max(cpu["walk"] - cpu["start"], 0.0)
    print(f"  walk only:    CPU {walk_cpu:6.2f} s past start-up ({cpu['start']:.2f} s)")
    workers = cpu["jobs"] - own
    for n in (2, 8, 16):
        share = walk_cpu + max(workers - jobs * walk_cpu, 0.0) / n
        best, worst = cpu["one"] / max(own, share), cpu["one"] / (own + share)
        print(f"  projected on {n:2d} free cores: {worst:.2f}x to {best:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
