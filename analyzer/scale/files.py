"""`read --jobs N FILES...`: several independent captures, each analysed on its own, at most
N at a time in worker processes; their attempts reported file after file.

This is not the default reading of several files. Without ``--jobs`` several files are one
capture cut in pieces (``tcpdump -C/-G`` rotation): they are merged in timestamp order, and a
connection that spans two files stays whole. With ``--jobs`` each file is a capture of its
own (say, one per proxy node or per incident): it is analysed from its own start, its frame
numbers count within that file (as Wireshark numbers it when the file is opened alone), and
the attempts of all files are merged for the report. A connection split across two files is
then seen as two halves.

How it works
------------
Each file is one worker (`local.work`, the whole file as its only shard), forked when a slot
is free, in the order of the files. A worker writes what it decides to a spool of its own (an
unnamed temporary file the parent opened before forking it: `SpoolOutbox`), SEND_EVERY
attempts at a time, and after each write says on the shared queue how far the spool is
complete. The parent reads the first file's spool as it grows, and the next file's once the
first has ended: the later files' workers run on meanwhile, their results waiting on disk,
not in memory (a pool of workers that returned each file's results whole held them all in
a worker, then in the parent: 560 MB for 1 GB of the dense benchmark mix, tests/
test_scale_files.py). A worker writes in its main thread; a signal that stops it in the
middle of a write leaves a part the parent never reads (only what was announced complete).

An attempt whose connection lives on is followed by its `Ended` in its file's place, as with
one file; the attempts of one file come together, so the numbering's match of an end to its
attempt (`cli_read.numbered`, by frame numbers, which repeat across files) sees the newest.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import sys
import tempfile
from collections.abc import Iterator, Sequence
from functools import partial
from multiprocessing.process import BaseProcess
from typing import IO, Any

from analyzer.cli_status import no_space
from analyzer.pipeline import DEFAULT_MAX_CONNECTIONS, Analysis
from analyzer.report.digest import Digesting, Streamed
from analyzer.scale.local import STOP_WAIT, Gathering, QueueOutbox, raise_problem, work
from analyzer.scale.shard import ShardTotals
from analyzer.source.frame import CaptureError, CaptureWarning

_POLL = 0.5  # seconds the parent waits for a message before it checks its workers are alive
# files at most that are started past the one being reported: each waiting file holds a spool
# open (a descriptor) and its results on disk (a thousand rotated files behind a slow first)
AHEAD = 32
_LENGTH = 8  # bytes of the length before each batch in a spool


def _pread(fd: int, size: int, at: int) -> bytes:
    parts = []
    while size > 0:
        part = os.pread(fd, size, at)
        if not part:
            raise EOFError("a --jobs spool ended early")
        parts.append(part)
        size -= len(part)
        at += len(part)
    return b"".join(parts)


class SpoolOutbox(QueueOutbox):
    """A worker's `Outbox` to its file's spool: each batch of decided attempts written there,
    then announced on the queue once complete ("wrote"); progress and the end on the queue."""

    def __init__(self, out: Any, index: int, spool: IO[bytes]) -> None:
        super().__init__(out, index)
        self._spool = spool
        self._written = 0
        # A write that failed (a full disk): raised in the worker's main thread at its next
        # decision, and said in its end, whichever thread met it (the progress thread too).
        self._failed: OSError | None = None

    def decided(self, frame: int, seq: int, diagnosis: Streamed) -> None:
        super().decided(frame, seq, diagnosis)
        if self._failed is not None:
            raise self._failed

    def end(self, totals: ShardTotals, problem: tuple[str, str] | None) -> None:
        with self._lock:
            self._send_pending()
            if self._failed is not None and problem is None:
                problem = ("space" if no_space(self._failed) else "internal", str(self._failed))
            self._out.put(("end", self._index, totals, problem))

    def close(self) -> None:
        with contextlib.suppress(OSError):  # (a failed write: its end said so)
            self._spool.close()
        super().close()

    def _send_pending(self) -> None:
        if not self._pending or self._failed is not None:
            return
        data = pickle.dumps(self._pending, protocol=pickle.HIGHEST_PROTOCOL)
        self._pending = []
        try:
            self._spool.write(len(data).to_bytes(_LENGTH, "little") + data)
            self._spool.flush()
        except OSError as error:
            self._failed = error
            return
        self._written += _LENGTH + len(data)
        self._out.put(("wrote", self._index, self._written))


class FilesRead(Gathering):
    """Iterate for every file's attempts (and ends), file after file, each file's in the order
    decided and naming its file when there are several; each file's totals are absorbed into
    ``into`` and its warnings added to ``warnings`` once its attempts are all out. (The CLI
    has opened and identified every input before: an unreadable one is said before any
    result, as without ``--jobs``.)"""

    def __init__(self, paths: Sequence[str], jobs: int, into: Analysis,
                 warnings: list[CaptureWarning],
                 max_connections: int = DEFAULT_MAX_CONNECTIONS,
                 digesting: Digesting | None = None) -> None:
        if "-" in paths:
            raise CaptureError("-: standard input cannot be one of several independent inputs "
                               "(--jobs); save it to a file")
        self._paths = list(paths)
        self._jobs = max(1, jobs)
        self._into = into
        self._warnings = warnings
        self._max_connections = max_connections
        self._digesting = digesting
        self._context = multiprocessing.get_context("fork")
        self._queue = self._context.Queue()
        count = len(self._paths)
        self._workers: list[BaseProcess | None] = [None] * count
        self._spools: list[IO[bytes] | None] = [None] * count
        self._written = [0] * count  # per file: bytes of its spool complete
        self._read = [0] * count  # per file: bytes of its spool read back
        self._ended: dict[int, ShardTotals] = {}
        self._problems: dict[int, tuple[str, str]] = {}
        self._absorbed: set[int] = set()  # files whose totals are in the run's
        self._started = 0  # files whose worker was started
        self._current = 0  # the file being reported
        self._stopped = False

    def __iter__(self) -> Iterator[Streamed]:
        sys.stdout.flush()  # a forked worker must not inherit (and flush) buffered output
        try:
            for current in range(len(self._paths)):
                self._current = current
                self._start_free()
                while True:
                    yield from self._read_back(current)
                    if current in self._ended and self._read[current] >= self._written[current]:
                        break
                    self._receive(_POLL)
                    self._start_free()
                self._finish(current)
        except (GeneratorExit, BrokenPipeError):  # the consumer stopped, or its reader
            self.stop()
            raise
        except BaseException:  # Ctrl-C, SIGTERM: what the file being reported decided so far
            self._halt()  # (its worker, stopped, writes what it has before it ends)
            if self._spools[self._current] is not None:
                yield from self._read_back(self._current)
            raise
        finally:
            self.stop()

    def _start_free(self) -> None:
        """Forks the next files' workers while fewer than ``jobs`` are running (and AHEAD
        files at most past the one being reported)."""
        while self._started < min(len(self._paths), self._current + max(AHEAD, 1)) and sum(
                1 for i, w in enumerate(self._workers)
                if w is not None and i not in self._ended) < self._jobs:
            i = self._started
            self._started += 1
            spool = self._spools[i] = tempfile.TemporaryFile(  # noqa: SIM115 - closed in _finish
                prefix="upgrade-analyzer-")
            several = len(self._paths) > 1
            worker = self._workers[i] = self._context.Process(
                target=work, daemon=True, name=f"upgrade-analyzer file {i}",
                args=(self._paths[i], 0, 1, self._max_connections, self._into.secrets,
                      partial(SpoolOutbox, self._queue, i, spool), self._into.lifetimes,
                      None, self._digesting, several))
            sys.stdout.flush()
            worker.start()

    def _died(self, index: int, status: int | None) -> None:
        self._problems[index] = ("internal", f"worker {index} ended with status {status}")
        self._ended[index] = ShardTotals(index, Analysis().stats, 0)

    def _store(self, message: tuple[Any, ...]) -> None:
        kind, index = message[0], message[1]
        if kind == "wrote":
            self._written[index] = max(self._written[index], message[2])
        elif kind == "end":  # ("progress": a file's order needs no frame)
            self._ended[index] = message[2]
            if message[3] is not None:
                self._problems[index] = message[3]

    def _read_back(self, index: int) -> Iterator[Streamed]:
        """File ``index``'s attempts from its spool, as far as it is complete. Read at an
        offset (pread): the worker shares the file's position, and writes at it."""
        spool = self._spools[index]
        assert spool is not None
        fd = spool.fileno()
        while self._read[index] < self._written[index]:
            at = self._read[index]
            size = int.from_bytes(_pread(fd, _LENGTH, at), "little")
            batch = pickle.loads(_pread(fd, size, at + _LENGTH))
            self._read[index] = at + _LENGTH + size
            for _, _, diagnosis in batch:
                yield diagnosis

    def _finish(self, index: int) -> None:
        """File ``index`` is out: its totals absorbed, its spool removed, its worker reaped,
        its problem said."""
        spool = self._spools[index]
        if spool is not None:
            spool.close()
            self._spools[index] = None
        worker = self._workers[index]
        if worker is not None:
            worker.join(timeout=STOP_WAIT)  # (it has sent its end: it is leaving)
        self._absorb(index)
        problem = self._problems.get(index)
        if problem is not None:
            self.stop()
            raise_problem(problem)

    def _absorb(self, index: int) -> None:
        """File ``index``'s totals (so far, when it was stopped) into the run's, once."""
        totals = self._ended.get(index)
        if totals is not None and index not in self._absorbed:
            self._absorbed.add(index)
            self._into.absorb(totals.stats)
            self._warnings.extend(totals.warnings)

    def stop(self) -> None:
        """Stops every worker still running, counts what the file being reported read so
        far, and removes the spools. Idempotent."""
        self._halt()
        self._absorb(self._current)
        for i, spool in enumerate(self._spools):
            if spool is not None:
                with contextlib.suppress(OSError):
                    spool.close()
                self._spools[i] = None

    def _halt(self) -> None:
        """Stops every worker still running (SIGTERM, then SIGKILL after STOP_WAIT), taking
        what they announce meanwhile. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._stop_workers()
        self._queue.close()
