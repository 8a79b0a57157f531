"""The Python rounds of decrypted TLS sessions: each `TlsStage.on_data` call, with the mode
of the connection's passing state before and after it (tls/passing.py).

    python benchmarks/tls_rounds.py CAPTURE KEYLOG [--sessions N]

Prints the rounds per session, the counts of (state before, state offered after, the
session's decryption state), and every round of the first N sessions as (frame, side,
bytes, before, after, records completed). A mode is `pass`, `open` or `gather` with the
side it is for, `r` once armed (`ready`), `none` when nothing is offered: a round whose
state before was armed for its own side is a segment the compiled skip could not take
(a record ends in it, it is the sweep's, the other side speaks).
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from analyzer.pipeline import Analysis
from analyzer.source import read_records
from analyzer.tls import layer
from analyzer.tls.keylog import load_keylog


def mode(state: Any) -> str:
    if state is None:
        return "none"
    if type(state).__name__ == "Watching":
        return "watch"
    kind = "open" if state.opening else "gather" if state.gather else "pass"
    return f"{kind}{state.side}{'r' if state.ready else ''}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("capture")
    parser.add_argument("keylog")
    parser.add_argument("--sessions", type=int, default=2)
    args = parser.parse_args()
    rounds: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
    on_data = layer.TlsStage.on_data

    def traced(stage: Any, side: int, offset: int, data: bytes, frame: int,
               time: float) -> None:
        before = mode(stage._conn.passing)
        records = stage._session.records
        on_data(stage, side, offset, data, frame, time)
        rounds[id(stage._session)].append(
            (frame, side, len(data), before, mode(stage._conn.passing),
             stage._session.records - records, stage._session.decryption.name))

    layer.TlsStage.on_data = traced  # type: ignore[method-assign, assignment]
    sessions = []  # keep every session alive: their ids stay unique
    original_init = layer.TlsStage.__init__

    def kept(stage: Any, *rest: Any) -> None:
        original_init(stage, *rest)
        sessions.append(stage._session)

    layer.TlsStage.__init__ = kept  # type: ignore[method-assign, assignment]
    run = Analysis(secrets=load_keylog(Path(args.keylog).read_bytes()))
    for _ in run.feed_records(read_records([args.capture], [])):
        pass
    run.finish()
    total = sum(len(r) for r in rounds.values())
    print(f"{len(rounds)} sessions, {total} rounds, {total / max(len(rounds), 1):.2f} a session")
    for (before, after, state), count in Counter(
            (r[3], r[4], r[6]) for session in rounds.values() for r in session).most_common():
        print(f"{count:8d}  {before:>8} -> {after:<8} {state}")
    for session in list(rounds.values())[:args.sessions]:
        print()
        for one in session:
            print(one)


if __name__ == "__main__":
    main()
