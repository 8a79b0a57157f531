"""`read --jobs N`: several independent captures, each analysed on its own, in N processes.

This is not the default reading of several files. Without ``--jobs`` several files are one
capture cut in pieces (``tcpdump -C/-G`` rotation): they are merged in timestamp order, and a
connection that spans two files stays whole. With ``--jobs`` each file is a capture of its
own (say, one per proxy node or per incident): it is analysed from its own start, in a pool of
worker processes, its frame numbers count within that file (as Wireshark numbers it when the
file is opened alone), and the attempts of all files are merged for the report. A connection
split across two files is then seen as two halves.

Why processes: the analysis is CPU-bound Python, so threads would share one core.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from functools import partial

from analyzer.life.fold import fold
from analyzer.pipeline import DEFAULT_MAX_CONNECTIONS, Analysis
from analyzer.slotted import register_pickling
from analyzer.source import read_records
from analyzer.source.capture import check_capture
from analyzer.source.frame import CaptureError, CaptureWarning
from analyzer.values import RunStats
from analyzer.verdict import Diagnosis


def analyze_in_parallel(
    paths: Sequence[str], jobs: int, into: Analysis, warnings: list[CaptureWarning],
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> Iterator[Diagnosis]:
    """Every diagnosis of every file, file after file (each in the order its attempts were
    decided); the files' totals are added to `into`'s stats, their warnings to `warnings`.

    Every input is opened and identified here first, so an unreadable one raises CaptureError
    before any result, as without ``--jobs``.
    """
    if "-" in paths:
        raise CaptureError("-: standard input cannot be one of several independent inputs "
                           "(--jobs); save it to a file")
    for path in paths:
        check_capture(path)
    with ProcessPoolExecutor(max_workers=max(1, min(jobs, len(paths)))) as pool:
        work = partial(_analyze_file, max_connections=max_connections,
                       secrets=into.secrets)
        for path, (diagnoses, stats, found) in zip(paths, pool.map(work, paths), strict=True):
            into.absorb(stats)
            warnings.extend(found)
            if len(paths) == 1:
                yield from diagnoses
                continue
            for d in diagnoses:  # frame numbers count within each file already
                yield replace(d, origin=(path, d.attempt.first_frame))


def _analyze_file(
    path: str, max_connections: int = DEFAULT_MAX_CONNECTIONS, secrets: object | None = None
) -> tuple[list[Diagnosis], RunStats, list[CaptureWarning]]:
    """One file, start to end, in a worker process."""
    warnings: list[CaptureWarning] = []
    analysis = Analysis(max_connections=max_connections, secrets=secrets, lifetimes=True)
    events = list(analysis.feed_records(read_records([path], warnings)))
    events += analysis.finish()
    # each attempt once, with its final verdict (the ends of its connection folded in)
    diagnoses = fold(events)
    for diagnosis in diagnoses:  # built here in parallel, not lazily in the parent
        diagnosis.attribution  # noqa: B018
    register_pickling()  # the result goes back pickled (analyzer/slotted.py)
    return diagnoses, analysis.stats, warnings
