"""One xz or bzip2 capture decompressed once for every `read --jobs N` worker.

Why: each worker reads the whole capture (local.py); given a compressed file, each
decompressed all of it, N times the work: on 2 cores `--jobs 2` on the dense 100 MB capture
as bzip2 took 9.9 s of wall time and 19 s of CPU (benchmarks/README.md, "Twenty-fourth
session"). Here one feeding process reads the file through the same decompressing reader a
single run uses (`source.stream.open_input`) and writes what it gives to one pipe per
worker; a worker reads its pipe as it would read the file, so each worker sees the same
bytes in the same order, and a damaged or cut stream ends each one's bytes where a single
run's ends, with the same error (sent on a second pipe before the data pipe closes,
`_ERRORS`). Only for the slow decompressors (`FANNED_OUT`): the fast ones cost less than
the pipes.

A pipe blocks its writer while its reader is behind: the feeder goes at the pace of the
slowest worker, and holds at most a pipe's buffer per worker. A worker that stops (Ctrl-C,
SIGTERM, the output closed) closes its end; the feeder drops that pipe and ends with the
last one. The parent stops the feeder by its PID as it stops the workers (local.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
from collections.abc import Iterable
from dataclasses import dataclass

from analyzer.source.frame import CaptureError
from analyzer.source.stream import CHUNK, Input, compression_of, decompressed_input, open_input

# A pipe's buffer, asked for (Linux allows up to /proc/sys/fs/pipe-max-size, 1 MiB unless
# changed): a chunk of the reader's size goes over in one write, not sixteen of 64 KiB.
PIPE_BYTES = CHUNK


# The formats whose decompressing costs more than the feeder's process and each worker's copy
# of the bytes through a pipe (`read --jobs 2` on the dense 100 MB capture, 4 rounds, wall:
# bzip2 9.9 -> 7.5 s, xz 3.3 -> 2.9 s; gzip 1.81 -> 1.78 s, even; zstd 1.3 -> 1.95 s, worse:
# it decompresses faster than the pipes carry; lz4 faster still).
FANNED_OUT = frozenset({"xz", "bzip2"})


def compressed(path: str) -> str:
    """The compressed format of the file at ``path`` ("" when plain, or not a file that opens:
    the worker's own open says why)."""
    try:
        with open(path, "rb") as f:
            return compression_of(f.read(6))
    except OSError:
        return ""


def fanned_out(path: str) -> bool:
    """Whether ``path`` is decompressed once for all workers (`FANNED_OUT`), not by each."""
    return compressed(path) in FANNED_OUT


@dataclass(frozen=True, slots=True)
class WorkerEnds:
    """What one worker reads: its data pipe and its status pipe (file descriptors)."""

    data: int
    status: int


class Fanout:
    """The pipes between one feeder and ``workers`` workers. Made before any of them is
    forked (each inherits every descriptor); each then keeps only its own ends
    (`keep_for_worker`, `keep_for_feeder`), and the parent none (`close_all`)."""

    def __init__(self, path: str, workers: int) -> None:
        self.path = path
        self.kind = compressed(path)
        self._workers = workers
        self._data: list[tuple[int, int]] = []
        self._status: list[tuple[int, int]] = []

    def open(self) -> None:
        """The pipes, made right before the feeder and the workers are forked."""
        self._data = [os.pipe() for _ in range(self._workers)]
        self._status = [os.pipe() for _ in range(self._workers)]
        for _, write in self._data:
            with contextlib.suppress(OSError):  # a smaller pipe only costs more writes
                fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, PIPE_BYTES)

    def keep_for_worker(self, worker: int) -> WorkerEnds:
        """In worker ``worker``'s process: every other descriptor closed (a write end left
        open there would keep its own pipe from ever ending)."""
        mine = WorkerEnds(self._data[worker][0], self._status[worker][0])
        self._close(fd for pair in self._data + self._status for fd in pair
                    if fd not in (mine.data, mine.status))
        return mine

    def input_for(self, worker: int, name: str) -> Input:
        """In worker ``worker``'s process: its input, the capture ``name`` as the feeder
        decompresses it (`keep_for_worker`, `worker_input`)."""
        ends = self.keep_for_worker(worker)
        try:
            size: int | None = os.path.getsize(self.path)
        except OSError:
            size = None
        return worker_input(name, self.kind, ends, size)

    def keep_for_feeder(self) -> tuple[list[int], list[int]]:
        """In the feeder's process: the read ends closed; the data and status write ends."""
        self._close(read for read, _ in self._data + self._status)
        return [write for _, write in self._data], [write for _, write in self._status]

    def close_all(self) -> None:
        """In the parent, once the feeder and the workers are forked."""
        self._close(fd for pair in self._data + self._status for fd in pair)

    @staticmethod
    def _close(fds: Iterable[int]) -> None:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)


# What the status pipe carries once the data pipe has all it will get: "end" for a clean
# end, else the error that ended the bytes early, "eof", "oserror" or "capture", a NUL and
# its words (UTF-8). Nothing at all: the feeder died (killed) before it could say.
_ERRORS: dict[str, type[Exception]] = {"eof": EOFError, "oserror": OSError,
                                       "capture": CaptureError}


def feed(fanout: Fanout) -> None:
    """The feeder process's body: the capture's bytes, decompressed once, to every worker."""
    # Forked, it has the parent's handlers: SIGTERM (the parent's stop) ends it at once, as
    # it has nothing to hand over; Ctrl-C reaches the whole group, and the parent stops it.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    data, status = fanout.keep_for_feeder()
    live = list(range(len(data)))
    outcome: tuple[str, str] = ("end", "")
    try:
        inp = open_input(fanout.path)
    except CaptureError as error:
        outcome = ("capture", str(error))
    else:
        try:
            chunk = inp.head
            while chunk and live:
                live = [i for i in live if _write_all(data[i], chunk)]
                chunk = inp.read(CHUNK)
        except EOFError as error:
            outcome = ("eof", str(error))
        except OSError as error:
            outcome = ("oserror", str(error))
        finally:
            inp.close()
    message = f"{outcome[0]}\0{outcome[1]}".encode()
    for i in range(len(data)):
        if i in live:
            _write_all(status[i], message)
        with contextlib.suppress(OSError):
            os.close(status[i])
        with contextlib.suppress(OSError):
            os.close(data[i])


def _write_all(fd: int, data: bytes) -> bool:
    """False when the reader is gone (its worker ended)."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
    except BrokenPipeError:
        return False
    return True


def worker_input(name: str, kind: str, ends: WorkerEnds, size: int | None = None) -> Input:
    """A worker's input: the feeder's bytes as a decompressing reader of ``name`` gives them
    (read1 semantics: what the pipe holds), the feeder's error raised where its bytes end.

    ``size``: the compressed file's, as that reader has it. A run takes an input with a size
    for a regular file, which never keeps it waiting, and only there lets the compiled
    follower hand on what a segment decides before the next record (`pipeline`); without
    it the workers took the slower path, and their decision frames, by which the parent
    merges their attempts, differed from the file's: the JSONL of `--jobs 2` came in another
    order than on the plain file (20 MB of the dense mix, every run)."""
    data, status = ends.data, ends.status
    ended: list[Exception | None] = []  # once the data pipe ended: the error, or None

    def read(n: int) -> bytes:
        chunk = os.read(data, n) if not ended else b""
        if chunk or n <= 0:
            return chunk
        if not ended:
            ended.append(_status_error(status))
        if ended[0] is not None:
            raise ended[0]
        return b""

    def close() -> None:
        for fd in (data, status):
            with contextlib.suppress(OSError):
                os.close(fd)

    return decompressed_input(name, read, close, kind, size=size)


def _status_error(status: int) -> Exception | None:
    """What the status pipe says at the end of the data pipe: None for a clean end, else the
    error that ended the bytes, as the decompressing reader raised it in the feeder."""
    parts = []
    while part := os.read(status, 4096):
        parts.append(part)
    if not parts:
        return OSError("the process decompressing the capture for the workers ended early")
    kind, _, message = b"".join(parts).decode(errors="replace").partition("\0")
    error = _ERRORS.get(kind)
    return None if error is None else error(message)
