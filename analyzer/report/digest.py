"""A decided attempt as a streamed JSONL report needs it, made in the process that decided it.

Why: with `read --jobs N FILE -F jsonl` the parent process is the serial part of the run. It
loaded every attempt the workers sent (a diagnosis is 27-47 values) and then rendered its
line, ≈ half of its CPU (benchmarks/README.md, "Twenty-fifth session"). A worker now sends a
`Digest` instead: the line rendered but for its number (known only once the shards' streams
are merged), and the few facts the parent's numbering, filters, summary and listing of
TCP-only attempts read. The parent's output is the one process's, byte for byte
(tests/test_scale_digest.py); sorted formats still send whole diagnoses (their report
correlates attempts across connections at the end).
"""

from __future__ import annotations

from dataclasses import dataclass

from analyzer.correlate import StormKey
from analyzer.exchange.model import AttemptKind
from analyzer.filters import Selection
from analyzer.life.fold import WINDOW_OVER
from analyzer.life.model import attempt_key, packed_key
from analyzer.pipeline import Decided, _transport_reason
from analyzer.report.jsonl import decided_tail, numbered_line
from analyzer.report.stream import group_key
from analyzer.verdict import Diagnosis


@dataclass(slots=True)
class Digest:
    """One decided attempt, as the merge of a streamed `--jobs` run reads it. Not frozen: the
    merge gives it its number in place (`dataclasses.replace` was most of what a line cost
    the parent)."""

    first_frame: int  # the attempt's first frame (the merge's order after the decision frame)
    listed: bool  # `Selection.listed`: numbered and listed (else counted apart, or not at all)
    kept: bool  # `Selection.keep`: the user's filters keep it
    transport_reason: str | None  # a TCP-only attempt's primary finding (`TcpListing`)
    verdict: str  # its verdict's value
    group: StormKey  # `report.stream.group_key`: the summary's repeated groups and reasons
    time: float  # the attempt's time
    living: int | tuple[int, int, int] | None  # its packed key, when its connection lives on
    tail: str  # its `decided` line after the number (`report.jsonl.decided_tail`)
    number: int = 0  # given by the merge (`cli_read.numbered`)

    def line(self) -> str:
        return numbered_line(self.number, self.tail)


Streamed = Decided | Digest  # what a merged `--jobs` stream yields


def digest_of(diagnosis: Diagnosis, selection: Selection, show_secrets: bool) -> Digest:
    """The digest of ``diagnosis`` for a run that lists what ``selection`` keeps."""
    attempt = diagnosis.attempt
    lives = attempt.tcp.end_reason == WINDOW_OVER
    return Digest(
        first_frame=attempt.first_frame,
        listed=selection.listed(diagnosis),
        kept=selection.keep(diagnosis),
        transport_reason=(_transport_reason(attempt) if attempt.kind is AttemptKind.TCP
                          else None),
        verdict=diagnosis.verdict.value,
        group=group_key(diagnosis),
        time=attempt.time,
        living=(packed_key(attempt_key(attempt.first_frame, attempt.sequence,
                                       attempt.stream_id)) if lives else None),
        tail=decided_tail(diagnosis, show_secrets))
