"""`read --scheduler ADDRESS FILES...`: captures (or, with ``--jobs N``, N shards of each) as
tasks on a Dask cluster; results come back as tasks complete and are merged here.

Imported only when ``--scheduler`` is given: `distributed` is an optional extra
(``pip install upgrade-analyzer[dask]``), and the workers need upgrade-analyzer installed too
(tasks name its functions; the code does not travel).

The bytes travel, not the paths: the client reads each capture once and scatters it to the
cluster, so workers need no shared filesystem (a capture must fit in a worker's memory; the
client holds it until it is scattered). The key log travels as the parsed key store. A
``tls://`` address uses the certificates of Dask's own configuration
(``distributed.comm.tls.*``, e.g. DASK_DISTRIBUTED__COMM__TLS__CA_FILE).

Each file's shards are merged in decision order (`shard.py`) once they are all in, then the
file's attempts are yielded (with their file when several are read) and its totals absorbed;
files come in the order they complete. As with ``--jobs`` on this machine, a connection in
life's end comes back as an `Ended` in its place among its file's decisions (JSONL prints its
``ended`` line, a sorted report folds it into its attempt; a file's attempts come together, so
the match of an end to its attempt by frame numbers, which repeat across files, sees the
newest: scale/files.py). The views across captures (proxy legs
captured on two hosts, storms, redirects) are the caller's, over everything yielded, as for a
local run.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from analyzer.life.model import Ended
from analyzer.pipeline import DEFAULT_MAX_CONNECTIONS, Analysis
from analyzer.report.digest import Digesting, Streamed, first_frame_of, in_file
from analyzer.scale.shard import Owner, ShardTotals, TcpListing, decisions, merge_totals
from analyzer.slotted import register_pickling
from analyzer.source.capture import read_record_bytes
from analyzer.source.frame import CaptureError, CaptureWarning
from analyzer.verdict import Diagnosis

ShardResult = tuple[list[tuple[int, int, Streamed]], ShardTotals]


def analyze_shard(name: str, data: bytes, index: int, shards: int, max_connections: int,
                  secrets: object | None, lifetimes: bool = False,
                  digesting: Digesting | None = None, origin: bool = False) -> ShardResult:
    """A task: shard ``index`` of ``shards`` of one capture held in ``data`` (all of it when
    ``shards`` is 1); its attempts and ends as (decision frame, order, decided), and its
    totals. With ``digesting`` the attempts come back as `Digest`s (report/digest.py:
    a rendered line or record travels lighter than a diagnosis, and the client, the serial
    part, renders nothing); with ``origin`` each names its file (``name``)."""
    owner = Owner(index, shards)
    analysis = Analysis(max_connections=max_connections, secrets=secrets,
                        owns=owner if shards > 1 else None, lifetimes=lifetimes)
    warnings: list[CaptureWarning] = []
    records = read_record_bytes(data, warnings, name)
    decided: list[tuple[int, int, Streamed]] = []
    for seq, (frame, d) in enumerate(decisions(analysis, records)):
        if origin:
            d = in_file(d, name)
        decided.append((frame, seq, digesting.digest(d) if digesting is not None
                        and isinstance(d, Diagnosis) else d))
    stats = analysis.stats
    owned = owner.owned if shards > 1 else stats.connections
    register_pickling()  # the result goes back pickled (analyzer/slotted.py)
    return decided, ShardTotals(index, stats, owned, warnings)


def analyze_on_cluster(address: str, paths: Sequence[str], shards: int, into: Analysis,
                       warnings: list[CaptureWarning],
                       max_connections: int = DEFAULT_MAX_CONNECTIONS,
                       digesting: Digesting | None = None) -> Iterator[Streamed]:
    """Every diagnosis (and, with lifetimes, every `Ended`) of every file, a file at a time
    as its tasks complete; the files' totals are absorbed into ``into`` and their warnings
    added to ``warnings`` (in the order of ``paths``) once every file is done."""
    from distributed import Client, as_completed

    if "-" in paths:
        raise CaptureError("-: standard input cannot be sent to a cluster (--scheduler); "
                           "save it to a file")
    found: dict[int, list[CaptureWarning]] = {}
    with Client(address) as client:
        of_file: dict[Any, int] = {}
        try:
            for i, path in enumerate(paths):
                remote = client.scatter(_read_file(path))
                for index in range(shards):
                    task = client.submit(analyze_shard, path, remote, index, shards,
                                         max_connections, into.secrets, into.lifetimes,
                                         digesting, len(paths) > 1, pure=False)
                    of_file[task] = i
            done: dict[int, list[ShardResult]] = {i: [] for i in range(len(paths))}
            for task in as_completed(list(of_file)):
                i = of_file[task]
                done[i].append(task.result())  # a task's CaptureError is raised here
                if len(done[i]) < shards:
                    continue
                yield from _file_done(paths, i, done.pop(i), into, found)
        finally:
            client.cancel(list(of_file))
    for i in sorted(found):
        warnings.extend(found[i])


def _read_file(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as error:
        raise CaptureError(f"{path}: {error.strerror or error}") from None


def _file_done(paths: Sequence[str], i: int, results: list[ShardResult], into: Analysis,
               found: dict[int, list[CaptureWarning]]) -> Iterator[Streamed]:
    # the order of `--jobs` on this machine (scale/local.py): decision frame, first frame
    keyed = [(frame, first_frame_of(d), totals.index, seq, d)
             for decided, totals in results for frame, seq, d in decided]
    keyed.sort(key=lambda k: k[:4])
    listing = TcpListing()
    parts = sorted((totals for _, totals in results), key=lambda t: t.index)
    stats = merge_totals(parts)
    for *_, d in keyed:
        if isinstance(d, Ended) or listing.admit(d):
            yield d
    listing.count_into(stats)
    into.absorb(stats)
    found[i] = parts[0].warnings
