"""What each step from decision to JSONL line costs an attempt, all steps in one callgrind run.

    python benchmarks/attempt_cost.py record CAPTURE ATTEMPTS.pickle
    PYTHONPATH=. PYTHONHASHSEED=0 valgrind --tool=callgrind --dump-before=getppid \\
        --callgrind-out-file=/tmp/steps.out python benchmarks/attempt_steps.py ATTEMPTS.pickle
    python benchmarks/attempt_steps.py --report /tmp/steps.out

The listed attempts are decided once (checks, judge, numbering, attribution), every step is
run once to warm what it remembers, then each step runs twice over all of them between two
calls of ``os.getppid()``: callgrind's ``--dump-before=getppid`` writes one file per step,
and ``--report`` prints each file's instructions per listed attempt (k). The collector is
frozen and off while the steps run, so that no collection lands in one step by chance.
`attempt_cost.py` measures the whole share by difference; this tells its parts apart.
"""

from __future__ import annotations

import gc
import glob
import os
import pickle
import sys
from collections.abc import Callable

STEPS_FILE = "/tmp/attempt-steps.txt"  # the steps' names in order, then the attempt count


def run(path: str) -> None:
    from analyzer.attribution import attribute
    from analyzer.checks import run_checks
    from analyzer.checks.after_switch import check_after_switch
    from analyzer.checks.facts import facts_of
    from analyzer.checks.request import check_request
    from analyzer.checks.response import check_response
    from analyzer.checks.transport import check_transport
    from analyzer.cli_read import _renumber
    from analyzer.filters import Selection
    from analyzer.report.fields import iso_time, reason_text
    from analyzer.report.jsonl import decided_line
    from analyzer.report.safe import Cleaner
    from analyzer.report.stream import Tally
    from analyzer.verdict import Diagnosis, judge

    with open(path, "rb") as pickled:
        attempts = pickle.load(pickled)
    selection = Selection()
    listed: list[Diagnosis] = []
    for attempt in attempts:
        facts, findings = run_checks(attempt)
        d = judge(attempt, facts, findings)
        if selection.listed(d):
            d = _renumber(d, len(listed) + 1)
            assert d.attribution is not None  # (made once here, as the line makes it)
            listed.append(d)
    tally = Tally()

    def tally_all() -> None:
        for d in listed:
            tally.add(d)

    steps: dict[str, Callable[[], object]] = {
        "checks": lambda: [run_checks(d.attempt) for d in listed],
        "facts_of": lambda: [facts_of(d.attempt) for d in listed],
        "transport": lambda: [check_transport(d.attempt, d.facts) for d in listed],
        "request": lambda: [check_request(d.attempt, d.facts) for d in listed],
        "response": lambda: [check_response(d.attempt, d.facts) for d in listed],
        "after_switch": lambda: [check_after_switch(d.attempt, d.facts) for d in listed],
        "judge": lambda: [judge(d.attempt, d.facts, d.findings) for d in listed],
        "renumber": lambda: [_renumber(d, d.number) for d in listed],
        "attribute": lambda: [attribute(d.attempt, d.facts, d.verdict._value_, d.findings)
                              for d in listed],
        "line": lambda: [decided_line(d) for d in listed],
        "cleaner": lambda: [Cleaner.for_attempt(d.attempt) for d in listed],
        "reason_text": lambda: [reason_text(d) for d in listed],
        "iso_time": lambda: [iso_time(d.attempt.time) for d in listed],
        "tally": tally_all,
        "empty": lambda: [None for d in listed],
    }
    for step in steps.values():  # warm what each remembers
        step()
    gc.collect()
    gc.freeze()
    gc.disable()
    for step in steps.values():
        os.getppid()  # (callgrind dumps here: the file before holds the previous step)
        step()
        step()
    os.getppid()
    with open(STEPS_FILE, "w") as f:
        f.write(" ".join(steps) + f"\n{len(listed)}\n")


def report(out: str) -> None:
    with open(STEPS_FILE) as f:
        names_line, count_line = f.read().split("\n")[:2]
    names, count = names_line.split(), int(count_line)
    totals = []
    for dump in sorted(glob.glob(f"{out}.*"), key=lambda p: int(p.rsplit(".", 1)[1])):
        with open(dump) as f:
            totals += [int(line.split()[1]) for line in f if line.startswith("summary:")]
    # the first dump ends at the first step's start (loading, deciding, warming)
    for name, total in zip(names, totals[1:len(names) + 1], strict=True):
        print(f"{name:14s} {total / 2 / count / 1000:7.1f} k")


if __name__ == "__main__":
    if sys.argv[1] == "--report":
        report(sys.argv[2])
    else:
        run(sys.argv[1])
