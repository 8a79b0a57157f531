"""What an attempt costs from its decision to its JSONL line, replayed without the capture.

    python benchmarks/attempt_cost.py record CAPTURE ATTEMPTS.pickle
    python benchmarks/attempt_cost.py replay ATTEMPTS.pickle [PASSES] [PHASE]

`record` runs the pipeline once and pickles every attempt handed to `diagnose`. `replay`
runs each one through what a streamed `read -F jsonl` does with it (diagnose, the numbering's
renumbering, the tally, the line) PASSES times. Under callgrind, (3 passes − 1 pass) / 2 /
attempts is the steady cost per attempt (the remembered texts warm). PHASE (checks, judge,
attribution, line, tally or all) stops each attempt after that phase, so that phases can be
told apart by difference.
"""

from __future__ import annotations

import pickle
import sys
from collections import Counter


def record(capture: str, out: str) -> None:
    from analyzer import pipeline
    from analyzer.source import read_records
    from analyzer.verdict import diagnose

    attempts = []

    def recording(attempt, number=0):  # type: ignore[no-untyped-def]
        attempts.append(attempt)
        return diagnose(attempt, number)

    pipeline.diagnose = recording  # type: ignore[assignment]
    analysis = pipeline.Analysis()
    for _ in analysis.feed_records(read_records([capture], [], [])):
        pass
    for _ in analysis.finishing():
        pass
    with open(out, "wb") as f:
        pickle.dump(attempts, f, protocol=pickle.HIGHEST_PROTOCOL)
    print(f"{len(attempts)} attempts")


def replay(path: str, passes: int, phase: str) -> None:
    from analyzer.checks import run_checks
    from analyzer.cli_read import _renumber
    from analyzer.filters import Selection
    from analyzer.report.render import render_jsonl_line
    from analyzer.report.stream import Tally
    from analyzer.verdict import judge

    with open(path, "rb") as f:
        attempts = pickle.load(f)
    selection = Selection()
    apart: Counter[str] = Counter()
    tally = Tally()
    written = 0
    for _ in range(passes):
        number = 0
        for attempt in attempts:
            facts, findings = run_checks(attempt)
            if phase == "checks":
                continue
            d = judge(attempt, facts, findings)
            if phase == "judge":
                continue
            if not selection.listed(d):
                if selection.keep(d):
                    apart[d.verdict.value] += 1
                continue
            number += 1
            d = _renumber(d, number)
            if phase == "attribution":
                written += d.attribution.client is not None
                continue
            if not selection.keep(d):
                continue
            tally.add(d)
            if phase == "tally":
                continue
            written += len(render_jsonl_line(d))
    print(len(attempts), written)


if __name__ == "__main__":
    if sys.argv[1] == "record":
        record(sys.argv[2], sys.argv[3])
    else:
        replay(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 1,
               sys.argv[4] if len(sys.argv) > 4 else "all")
