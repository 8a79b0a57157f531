"""A decided attempt as the report needs it, made by the `read --jobs N FILE` worker that
decided it.

Why: with `read --jobs N FILE` the parent process is the serial part of the run. It loaded
every attempt the workers sent (a diagnosis is 27-47 values), then rendered its line (JSONL)
or made its compact record (a sorted report, report/kept.py): ≈ 40 % and ≈ 30 % of its CPU
(benchmarks/README.md, "Twenty-fifth session"). A worker now sends a `Digest` instead, made
by its `Digesting`:

- JSONL: the line rendered but for its number (known only once the shards' streams are
  merged);
- a sorted report (table, JSON, CSV, Markdown, HTML): its compact record (`kept.Record`, filed:
  the row or element rendered), and the diagnosis pickled if it may be a proxy leg (its
  worker's `Owner.may_be_a_leg`: correlation judges only those again) while the worker's
  wholes stay within WHOLE_ATTEMPTS and WHOLE_BYTES (and always for an attempt whose
  connection lives on, or for a report that needs every attempt whole): the parent writes
  those bytes to its spill file unread, and correlation reads back the few it needs; past
  the bounds (or where the guess missed) a front that correlation changes is rebuilt by
  running the workers again, as a spilled report does (report/kept.py). Pickling is
  ≈ 90 µs an attempt: the first 2,000 of each worker were a fifth of a worker's
  instructions at 100 MB of the dense mix, which has no proxy (benchmarks/README.md,
  "Twenty-sixth session");
- and the few facts the parent's numbering, filters, summary and listing of TCP-only
  attempts read.

The parent's report is one process's, byte for byte (tests/test_scale_digest.py), but for
the order of the JSONL lines of attempts decided at the same frame (scale/shard.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from analyzer.exchange.model import Attempt, AttemptKind
from analyzer.filters import Selection
from analyzer.life.fold import WINDOW_OVER
from analyzer.life.model import Ended, living_key
from analyzer.pipeline import Decided, _transport_reason
from analyzer.report.jsonl import decided_tail, numbered_line
from analyzer.report.stream import group_key
from analyzer.slotted import register_pickling
from analyzer.storms import StormKey
from analyzer.verdict import Diagnosis

if TYPE_CHECKING:  # a streamed run never imports the sorted reports' modules
    from analyzer.report.kept import Filed, KeptAttempts

# A worker sends the first WHOLE_ATTEMPTS attempts it decides whole too, while they add up to
# WHOLE_BYTES pickled: what a report kept in memory would hold (kept.SPILL_AFTER), on disk.
WHOLE_ATTEMPTS = 2_000
WHOLE_BYTES = 32 * 1024 * 1024


@dataclass(slots=True)
class Digest:
    """One decided attempt, as the merge of a `--jobs` run reads it. Not frozen: the merge
    gives it its number in place (`dataclasses.replace` was most of what a line cost the
    parent)."""

    first_frame: int  # the attempt's first frame (the merge's order after the decision frame)
    listed: bool  # `Selection.listed`: numbered and listed (else counted apart, or not at all)
    kept: bool  # `Selection.keep`: the user's filters keep it
    transport_reason: str | None  # a TCP-only attempt's primary finding (`TcpListing`)
    verdict: str  # its verdict's value
    time: float  # the attempt's time
    living: int | tuple[int, int, int] | None  # its packed key, when its connection lives on
    # JSONL: `report.stream.group_key` (the summary's repeated groups and reasons) and the
    # `decided` line after its number (`report.jsonl.decided_tail`)
    group: StormKey | None = None
    tail: str = ""
    # a sorted report: the compact record as filed (`kept.Filed`: marshalled, its hashes
    # made), and the diagnosis pickled (see the module)
    record: Filed | None = None
    whole: bytes | None = None
    number: int = 0  # given by the merge (`cli_read.numbered`)

    def line(self) -> str:
        return numbered_line(self.number, self.tail)


Streamed = Decided | Digest  # what a merged `--jobs` stream yields


def first_frame_of(decided: Streamed) -> int:
    """The first frame of an attempt, of its digest or of its end (`Ended.key`)."""
    if isinstance(decided, Digest):
        return decided.first_frame
    return decided.key[0] if isinstance(decided, Ended) else decided.attempt.first_frame


def in_file(decided: Decided, path: str) -> Decided:
    """An attempt (or its end) of one of several files read, naming it: frame numbers count
    within each file (Wireshark's, opening it alone)."""
    return replace(decided, origin=(path, first_frame_of(decided)))


class Digesting:
    """How a worker digests the attempts it decides: for a JSONL run (``store`` None) or
    for the sorted report ``store`` (the parent's `KeptAttempts`, as forked: its settings)."""

    def __init__(self, selection: Selection, show_secrets: bool,
                 store: KeptAttempts | None = None) -> None:
        self.selection = selection
        self.show_secrets = show_secrets
        self.store = store
        self.whole_attempts = 0  # sent whole so far, and their pickled bytes
        self.whole_bytes = 0
        # false for an attempt that correlation cannot judge again (no proxy leg: set by a
        # `--jobs` worker, scale/shard.py `Owner.may_be_a_leg`), which is not sent whole
        self.may_be_a_leg: Callable[[Attempt], bool] | None = None

    def __reduce__(self) -> tuple[type[Digesting], tuple[object, ...]]:
        # (a cluster's task: the store's settings travel, not its files or rebuild)
        return (Digesting, (self.selection, self.show_secrets,
                            None if self.store is None else self.store.for_workers()))

    def digest(self, diagnosis: Diagnosis) -> Digest:
        attempt = diagnosis.attempt
        lives = attempt.tcp.end_reason == WINDOW_OVER
        digest = Digest(
            first_frame=attempt.first_frame,
            listed=self.selection.listed(diagnosis),
            kept=self.selection.keep(diagnosis),
            transport_reason=(_transport_reason(attempt) if attempt.kind is AttemptKind.TCP
                              else None),
            verdict=diagnosis.verdict.value,
            time=attempt.time,
            living=(living_key(attempt.first_frame, attempt.sequence, attempt.stream_id)
                    if lives else None))
        store = self.store
        if store is None:
            digest.group = group_key(diagnosis)
            digest.tail = decided_tail(diagnosis, self.show_secrets)
            return digest
        digest.record = store.filed(diagnosis)
        # (a refused connection that may be a proxy's back leg whatever the bounds: the
        # parent keeps it aside when it does not list it, `KeptAttempts.set_aside`, and has
        # no rebuild for those; a few hundred bytes each, at most MAX_LISTED_TCP_ATTEMPTS)
        refused = attempt.kind is AttemptKind.TCP and attempt.tcp.server_rst is not None
        if lives or store.whole or (
                (refused or (self.whole_attempts < WHOLE_ATTEMPTS
                             and self.whole_bytes < WHOLE_BYTES))
                and (self.may_be_a_leg is None or self.may_be_a_leg(attempt))):
            import pickle  # here: a plain read imports this module, never pickle

            register_pickling()  # (the modules a TLS or HTTP/2 session loads, too)
            digest.whole = pickle.dumps(diagnosis, protocol=pickle.HIGHEST_PROTOCOL)
            self.whole_attempts += 1
            self.whole_bytes += len(digest.whole)
        return digest
