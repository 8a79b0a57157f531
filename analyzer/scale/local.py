"""`read --jobs N FILE`: one capture sharded by flow over N worker processes on this machine,
their results streamed back as they are decided and merged in decision order.

Each worker reads the whole file and follows only its own connections (`shard.py`); the walk
over the file is done N times, so the speed-up is bounded by the share of the run that is not
the walk (benchmarks/README.md). A worker sends the attempts it decides SEND_EVERY at a time,
and every PROGRESS_EVERY seconds the frame it has read up to (those decided before it first);
the parent holds an attempt until every worker has read past the frame that decided it, so the
merged stream is in decision order while the workers run. In a JSONL run an attempt travels as
its rendered line (report/digest.py).

Workers are forked (no second start-up) and stopped by their PID: on Ctrl-C, SIGTERM or a
closed output pipe the parent sends them SIGTERM, takes what they decided and counted so far,
and kills the ones that do not answer within STOP_WAIT seconds.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import multiprocessing
import os
import queue as queue_module
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from functools import partial
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any, Protocol

from analyzer.cli_status import no_space
from analyzer.life.model import Ended
from analyzer.pipeline import DEFAULT_MAX_CONNECTIONS, Analysis
from analyzer.report.digest import Digesting, Streamed, first_frame_of, in_file
from analyzer.scale.fanout import Fanout, fanned_out, feed
from analyzer.scale.shard import (
    END,
    Owner,
    ShardTotals,
    TcpListing,
    decisions,
    merge_totals,
)
from analyzer.slotted import register_pickling
from analyzer.source import read_records, records_of
from analyzer.source.frame import CaptureError, CaptureWarning
from analyzer.verdict import Diagnosis

PROGRESS_EVERY = 0.2  # seconds between a worker's "read up to frame N" messages
SEND_EVERY = 32  # decided attempts a worker sends in one message (or fewer, before progress)
STOP_WAIT = 2.0  # seconds a stopped worker has to send what it has
_POLL = 0.5  # seconds the parent waits for a message before it checks its workers are alive
_HELD_OFF = {signal.SIGTERM, signal.SIGINT}  # while the parent takes a message (_receive)
_BATCH = 64  # messages the parent takes under one signal mask


class _Stop(BaseException):
    """SIGTERM or SIGINT in a worker: stop reading, send the totals so far."""


def _stop(number: int, frame: FrameType | None) -> None:
    raise _Stop


def work(path: str, index: int, shards: int, max_connections: int, secrets: object | None,
         outbox: Callable[[], Outbox], lifetimes: bool = False, fanout: Fanout | None = None,
         digesting: Digesting | None = None, origin: bool = False) -> None:
    """A worker: shard ``index`` of ``shards`` of ``path``; every message goes to the
    ``outbox`` it makes. With ``fanout`` (a compressed capture) the bytes come decompressed
    from its feeder; with ``digesting`` each attempt is sent as its `Digest`
    (report/digest.py); with ``origin`` each names its file (one of several, files.py)."""
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    # One file holds both legs of a proxied handshake or neither; of several (one per host), a
    # leg's other side may be in another file, which this worker never reads.
    guess = digesting is not None and digesting.store is not None and not origin
    owner = Owner(index, shards, roles=guess)
    if guess:
        assert digesting is not None  # (the worker's own copy)
        digesting.may_be_a_leg = owner.may_be_a_leg
    analysis = Analysis(max_connections=max_connections, secrets=secrets, owns=owner,
                        lifetimes=lifetimes)
    warnings: list[CaptureWarning] = []
    problem: tuple[str, str] | None = None
    done = threading.Event()
    progress: threading.Thread | None = None
    sending = outbox()
    try:
        records = (records_of(fanout.input_for(index, path), warnings) if fanout is not None
                   else read_records([path], warnings))
        progress = threading.Thread(target=_progress, args=(records, sending, done),
                                    daemon=True)
        progress.start()
        for seq, (frame, diagnosis) in enumerate(decisions(analysis, records)):
            if origin:
                diagnosis = in_file(diagnosis, path)
            # (the reducers of analyzer/slotted.py for the classes of the modules loaded since,
            # a TLS or HTTP/2 session's: cheap when none was)
            register_pickling()
            if digesting is not None and isinstance(diagnosis, Diagnosis):
                # rendered here, by the workers in parallel: the parent is the serial part
                sending.decided(frame, seq, digesting.digest(diagnosis))
                continue
            if isinstance(diagnosis, Diagnosis):
                # built here, by the workers in parallel: read lazily, the parent would build
                # it, and the parent is the serial part (benchmarks/README.md, read --jobs)
                diagnosis.attribution  # noqa: B018
            sending.decided(frame, seq, diagnosis)
    except _Stop:
        pass
    except CaptureError as error:
        problem = ("capture", str(error))
    except BaseException as error:  # noqa: BLE001 - a bug, or the parent's own handler: say it
        problem = (("space", str(error)) if no_space(error) else
                   ("internal", "".join(traceback.format_exception_only(error)).strip()))
    finally:
        # From here the worker only hands over what it has: a late signal must not cut that.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        done.set()
        if progress is not None:
            progress.join()
        sending.end(ShardTotals(index, analysis.stats, owner.owned, warnings), problem)
        sending.close()


def raise_problem(problem: tuple[str, str]) -> None:
    """What a worker's problem (its kind and text) is in the parent."""
    kind, text = problem
    if kind == "capture":
        raise CaptureError(text)
    if kind == "space":  # (a full disk under a --jobs spool: cli_status.say_no_space)
        raise OSError(errno.ENOSPC, text)
    raise RuntimeError(f"in a --jobs worker: {text}")


class Outbox(Protocol):
    """Where a worker's messages go (`QueueOutbox`; files.py's `SpoolOutbox`)."""

    def decided(self, frame: int, seq: int, diagnosis: Streamed) -> None: ...

    def progress(self, frame: int) -> None: ...

    def end(self, totals: ShardTotals, problem: tuple[str, str] | None) -> None: ...

    def close(self) -> None: ...


class QueueOutbox:
    """A worker's messages to the parent. Decided attempts go SEND_EVERY to a message: a
    message a decision cost the worker's queue thread a wake-up, a pickling and a write, and
    the parent a read and a load (≈ 15 % of a worker's CPU on the dense benchmark mix). A
    progress message sends those pending first, so that every attempt decided before the
    frame it names is in the parent's hands when it reads it."""

    def __init__(self, out: Any, index: int) -> None:
        self._out = out
        self._index = index
        self._pending: list[tuple[int, int, Streamed]] = []
        self._lock = threading.Lock()  # the worker's main thread and its progress thread

    def decided(self, frame: int, seq: int, diagnosis: Streamed) -> None:
        with self._lock:
            self._pending.append((frame, seq, diagnosis))
            if len(self._pending) >= SEND_EVERY:
                self._send_pending()

    def progress(self, frame: int) -> None:
        """Every attempt decided up to ``frame`` has been sent."""
        with self._lock:
            self._send_pending()
            self._out.put(("progress", self._index, frame))

    def end(self, totals: ShardTotals, problem: tuple[str, str] | None) -> None:
        with self._lock:
            self._send_pending()
            self._out.put(("end", self._index, totals, problem))

    def close(self) -> None:
        self._out.close()
        self._out.join_thread()

    def _send_pending(self) -> None:
        if self._pending:
            self._out.put(("decided", self._index, self._pending))
            self._pending = []


def _progress(records: object, outbox: Outbox, done: threading.Event) -> None:
    # `number` is the record being processed: every frame before it is done, and what it
    # decided is sent before the progress message (`Outbox.progress`).
    while not done.wait(PROGRESS_EVERY):
        number = getattr(records, "number", 0)
        if number > 1:
            outbox.progress(number - 1)


def _signal(worker: BaseProcess, number: int) -> None:
    """Signals a worker by its PID, if it was started and has not ended."""
    if worker.pid is not None and worker.exitcode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, number)


class Gathering:
    """The parent's side of the queue its workers send to (`ShardedRead`; files.py's
    `FilesRead`): what is waiting taken under one signal mask, standard output flushed before
    it waits, a worker that ended without its last message noted as a problem."""

    _queue: Any
    _workers: list[BaseProcess | None]
    _ended: dict[int, ShardTotals]
    _problem: tuple[str, str] | None

    def _store(self, message: tuple[Any, ...]) -> None:
        raise NotImplementedError

    def _died(self, index: int, status: int | None) -> None:
        """Worker ``index`` ended (with ``status``) before its last message."""
        self._problem = self._problem or ("internal", f"worker {index} ended with status {status}")
        self._ended[index] = ShardTotals(index, Analysis().stats, 0)

    def _stop_workers(self) -> None:
        """SIGTERM to every worker still running; what they send is taken for STOP_WAIT
        seconds (their last message: their totals so far); then SIGKILL to any left."""
        started = [(i, w) for i, w in enumerate(self._workers)
                   if w is not None and w.pid is not None]
        for i, worker in started:
            if i not in self._ended:  # the others are only handing their last bytes over
                _signal(worker, signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT
        while any(i not in self._ended for i, _ in started) and time.monotonic() < deadline:
            if not self._receive(0.1) and all(w.exitcode is not None for _, w in started):
                break
        for _, worker in started:
            worker.join(timeout=max(0.1, deadline - time.monotonic()))
            _signal(worker, signal.SIGKILL)
            worker.join(timeout=STOP_WAIT)

    def _receive(self, timeout: float) -> bool:
        """Takes the messages that are waiting (at most _BATCH), or the first to come within
        ``timeout`` seconds; False when none came.

        Standard output is flushed before the parent waits, not after every line: while
        messages keep coming the lines go out in the stream's buffer (a write system call a
        line was ≈ 1 % of the parent's CPU), and nothing printed sits there while it waits.
        SIGTERM and Ctrl-C are held off meanwhile. Their handlers raise (`_Terminated`,
        KeyboardInterrupt); raised inside `Queue.get`, between a message's length and its
        bytes, they left the pipe out of step, and the stop's own reads then failed
        (EOFError: exit 70 instead of 143, the results so far lost). Held off, a signal is
        handled between two messages, once this one is stored: at most ``timeout`` late.
        """
        if threading.current_thread() is not threading.main_thread():
            return self._take(timeout)  # signals are only handled in the main thread
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_OFF)
        try:
            return self._take(timeout)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    def _take(self, timeout: float) -> bool:
        try:
            message = self._queue.get(block=False)
        except queue_module.Empty:
            sys.stdout.flush()
            if not self._take_one(timeout):
                return False
        else:
            self._store(message)
        for _ in range(_BATCH - 1):  # the others waiting, under the same signal mask
            try:
                self._store(self._queue.get(block=False))
            except queue_module.Empty:
                break
        return True

    def _take_one(self, timeout: float) -> bool:
        try:
            message = self._queue.get(timeout=timeout)
        except queue_module.Empty:
            for i, worker in enumerate(self._workers):
                if worker is not None and i not in self._ended and worker.exitcode is not None:
                    self._died(i, worker.exitcode)
            return False
        self._store(message)
        return True



class ShardedRead(Gathering):
    """Iterate for the merged diagnoses; the merged totals are absorbed into ``into`` and
    the capture's warnings added to ``warnings`` when the workers end (or are stopped).
    With ``digesting`` attempts come as `Digest`s (report/digest.py)."""

    def __init__(self, path: str, jobs: int, into: Analysis, warnings: list[CaptureWarning],
                 max_connections: int = DEFAULT_MAX_CONNECTIONS,
                 digesting: Digesting | None = None) -> None:
        if path == "-":
            raise CaptureError("-: standard input cannot be read by several processes "
                               "(--jobs); save it to a file")
        self._path = path
        self._jobs = jobs
        self._into = into
        self._warnings = warnings
        self._max_connections = max_connections
        context = multiprocessing.get_context("fork")
        self._queue = context.Queue()
        # An xz or bzip2 capture is decompressed once, by a feeder, for every worker
        # (fanout.py); its pipes are made in __iter__, right before the processes are forked.
        self._fanout = Fanout(path, jobs) if fanned_out(path) else None
        self._feeder = (None if self._fanout is None else context.Process(
            target=feed, args=(self._fanout,), daemon=True, name="upgrade-analyzer feeder"))
        self._workers: list[BaseProcess | None] = [
            context.Process(target=work, daemon=True, name=f"upgrade-analyzer shard {i}",
                            args=(path, i, jobs, max_connections, into.secrets,
                                  partial(QueueOutbox, self._queue, i), into.lifetimes,
                                  self._fanout, digesting))
            for i in range(jobs)]
        self._read_to = [0] * jobs  # per worker: every attempt decided up to this frame is in
        self._ended: dict[int, ShardTotals] = {}
        self._held: list[tuple[int, int, int, int, Streamed]] = []
        self._tcp = TcpListing()
        self._problem: tuple[str, str] | None = None
        self._stopped = False

    def __iter__(self) -> Iterator[Streamed]:
        sys.stdout.flush()  # a forked worker must not inherit (and flush) buffered output
        if self._fanout is not None:
            self._fanout.open()
        try:
            for process in [self._feeder, *self._workers]:
                if process is not None:
                    process.start()
        finally:
            if self._fanout is not None:
                self._fanout.close_all()  # each process keeps its own ends
        try:
            while len(self._ended) < self._jobs:
                self._receive(_POLL)
                if self._problem is not None:
                    break
                yield from self._release(min(self._read_to))
            self._raise_problem()
            yield from self._release(END)
        except (GeneratorExit, BrokenPipeError):  # the consumer stopped, or the reader of
            # the output went away (the flush before a wait, _receive): nothing more is printed
            self.stop()
            raise
        except BaseException:  # Ctrl-C, SIGTERM: what was decided so far is still reported
            self.stop()
            yield from self._release(END)
            raise
        finally:
            self.stop()

    def _store(self, message: tuple[Any, ...]) -> None:
        kind, index = message[0], message[1]
        if kind == "decided":
            held = self._held
            for frame, seq, diagnosis in message[2]:
                heapq.heappush(held, (frame, first_frame_of(diagnosis), index, seq, diagnosis))
            self._read_to[index] = max(self._read_to[index], frame - 1)
        elif kind == "progress":
            self._read_to[index] = max(self._read_to[index], message[2])
        else:  # "end"
            self._ended[index] = message[2]
            self._read_to[index] = END
            if message[3] is not None and self._problem is None:
                self._problem = message[3]

    def _release(self, upto: int) -> Iterator[Streamed]:
        held = self._held
        while held and held[0][0] <= upto:
            diagnosis = heapq.heappop(held)[4]
            if isinstance(diagnosis, Ended) or self._tcp.admit(diagnosis):
                yield diagnosis

    def _raise_problem(self) -> None:
        if self._problem is None:
            return
        self.stop()
        raise_problem(self._problem)

    def stop(self) -> None:
        """Stops every worker still running (SIGTERM, then SIGKILL after STOP_WAIT), takes
        what they sent, and absorbs the merged totals. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._stop_workers()
        feeder = self._feeder
        if feeder is not None and feeder.pid is not None:
            # its workers are gone, so its writes fail and it ends: this is for one that
            # is stuck, or still decompressing when a worker failed
            _signal(feeder, signal.SIGTERM)
            feeder.join(timeout=STOP_WAIT)
            _signal(feeder, signal.SIGKILL)
            feeder.join(timeout=STOP_WAIT)
        self._queue.close()
        parts = sorted(self._ended.values(), key=lambda p: p.index)
        if parts:
            stats = merge_totals(parts)
            self._tcp.count_into(stats)
            self._into.absorb(stats)
            self._warnings.extend(parts[0].warnings)
