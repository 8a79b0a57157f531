"""The attempts a sorted report (table, JSON, CSV, Markdown, detail) keeps until the end.

How it works
------------
A sorted report prints attempts in frame order, after correlation (which needs every leg) and
filters, so it must keep them all. Up to SPILL_AFTER attempts they are kept whole, in memory,
as always. Past that (a reconnect storm: a million attempts were 15 KB each) every attempt is
reduced, as it is decided, to a compact record: its line of the report already rendered (table
cells, CSV record or JSON element, without the number, which comes from the final order), what
the summary counts, and the small `Leg` and `Hop` that correlation and redirect following read.
Records are written by `marshal` as plain values (`_packed`) to an unnamed temporary file
(report/blobs.py); memory keeps a few numbers per attempt (first frame, time, offset of its
record, hash of its storm key, offset of its whole diagnosis when kept: `Spill`). At the end
(`SpilledReport`) the order is sorted from those numbers, correlation pairs the legs in time
order over the records, and the report is read back from them.

Correlation adds findings to a few attempts, which needs them whole: they are rebuilt by
running the analysis over the input again (`rebuild`), or, when the input cannot be read twice
(standard input) or the detail view needs every attempt whole, every attempt is also pickled
as it is decided (slower: about 0.1 ms each).
"""

from __future__ import annotations

import copyreg
import dataclasses
import functools
import heapq
import itertools
import marshal
import pickle
from array import array
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from analyzer.correlate import (
    Leg,
    backs_by_front,
    correlate,
    is_refused,
    is_tunnel,
    leg_of,
    may_pair,
    pair_legs,
    pairing_hints,
    source_of,
)
from analyzer.exchange.model import Endpoint
from analyzer.life.fold import WINDOW_OVER, end_of, with_findings, with_groups
from analyzer.life.groups import abnormal_end, group_findings
from analyzer.life.model import Ended
from analyzer.proxy_findings import (
    answered_itself,
    back_leg,
    back_leg_findings,
    compare_legs,
    without_disproved,
)
from analyzer.redirects import Hop, hop_of
from analyzer.report.blobs import Blobs
from analyzer.report.columns import Column, index_code, report_order, time_order
from analyzer.report.render import json_attempt, render_csv
from analyzer.report.table import TableStyle, line_cells
from analyzer.slotted import register_pickling
from analyzer.storms import storm_hash, storm_key
from analyzer.verdict import Diagnosis, judge, made, with_life

if TYPE_CHECKING:  # the output half imports this module
    from analyzer.report.digest import Digest
    from analyzer.report.spilled import SpilledReport

# Attempts kept whole before a sorted report spills to a temporary file: a reconnect storm's
# attempt is 7-15 KB whole (100,000 were 1.3-1.5 GB), so this bounds them near 30 MB; spilled,
# an attempt costs 32 bytes of memory (benchmarks/README.md, "Memory").
SPILL_AFTER = 2_000
# ... or before, once the heads and body prefixes kept whole add up to this many bytes: an
# attempt's heads may be 64 KiB each (long paths, cookies), 128 MB of raw bytes for 2,000
# attempts, and their parsed fields hold them again.
SPILL_AFTER_BYTES = 8 * 1024 * 1024
# Refused connections kept aside (not listed without --tcp) for correlation to pair with a
# proxy's 502: as many as the pipeline lists (values.MAX_LISTED_TCP_ATTEMPTS), each a TCP-only
# attempt of a few hundred bytes
MAX_ASIDE = 1_000

# An Endpoint is in every record twice or three times: pickled by its two fields, not by the
# generic (Python-level) state of a slotted dataclass.
copyreg.pickle(Endpoint, lambda e: (Endpoint, (e.address, e.port)))


def _captured_bytes(diagnosis: Diagnosis) -> int:
    """The bytes of the capture an attempt kept whole holds: its heads and body prefixes."""
    total = 0
    for message in (diagnosis.attempt.request, diagnosis.attempt.response):
        if message is not None:
            total += len(message.head.raw) + len(message.body_prefix)
    return total


class Record(NamedTuple):
    """One attempt as a spilled report needs it."""

    keep: bool  # passes the filters (--failed, --host, --port)
    verdict: str
    reason: str | None  # primary finding id
    storm: tuple[str, str, str, str, str | None]  # storms.storm_key
    leg: Leg | None
    hop: Hop
    # table cells (`table.line_cells`: all but the number and the time, which come from the
    # final order and the clock) / CSV record after "N," / JSON element after it
    line: Any
    # an abnormal end for the `Closed:` lines: target, closer address, silence, how
    closed: tuple[str, str, float, str] | None = None


# A record is read back several times (the summary's pass, correlation, redirects, the table's
# rows): pickled, its Leg and Hop with their Endpoints took 8-16 µs to load (each a Python
# call), the whole record as marshal's plain tuples ≈ 2 µs and ≈ 3 more to make it again. It
# is written in two parts, what correlation and redirects read (its leg and hop) and what the
# report reads (the rest), so that each pass makes only its part again (`Spill.leg`,
# `Spill.hop`, `Spill.listed`).
def _packed(record: Record) -> bytes:
    """``record`` after the tag b"m": the length of its links part, the links (leg and hop,
    as `marshal`'s plain tuples, each Endpoint as (address, port)), then the rest, marshalled;
    pickled whole after b"p" when a value is of a type marshal does not write (a subclass of
    str, say: none of ours, but a spilled report must not fail on one)."""
    leg, hop = record.leg, record.hop
    try:
        links = marshal.dumps((
            None if leg is None else (leg.time, leg.key, leg.line, _pair(leg.client),
                                      _pair(leg.server), leg.response_time, leg.source,
                                      leg.ended, leg.status, leg.refused),
            (hop.time, _pair(hop.client), *hop[2:])))
        rest = marshal.dumps((record.keep, record.verdict, record.reason, record.storm,
                              record.line, record.closed))
    except ValueError:  # "unmarshallable object"
        return _PICKLED + pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
    return _MARSHALLED + len(links).to_bytes(4, "little") + links + rest


_MARSHALLED, _PICKLED = b"m", b"p"


def _pair(endpoint: Endpoint) -> tuple[bytes, int]:
    return endpoint.address, endpoint.port


class Filed(NamedTuple):
    """A record as a spill files it: its bytes and the numbers a spill keeps in memory.
    Made where the attempt is decided (by a `--jobs` worker, the parent only files it: the
    hashes are crc32s, which every process agrees on)."""

    data: bytes  # `_packed`
    storm: int  # storms.storm_hash of its storm key
    redirect: bool  # a redirect (its hop has a Location)
    hints: tuple[int, int, int, int]  # correlate.pairing_hints of its leg


def filed(record: Record) -> Filed:
    return Filed(_packed(record), storm_hash(record.storm), record.hop.location is not None,
                 pairing_hints(record.leg))


class Listed(NamedTuple):
    """What a record gives the report's passes (`Record` without its leg and hop)."""

    keep: bool
    verdict: str
    reason: str | None
    storm: tuple[str, str, str, str, str | None]
    line: Any
    closed: tuple[str, str, float, str] | None


def _unpacked(data: bytes | bytearray) -> Record:
    """The `Record` that `_packed` wrote."""
    if data[:1] == _PICKLED:
        record: Record = pickle.loads(memoryview(data)[1:])
        return record
    leg, hop = _unpacked_links(data)
    keep, verdict, reason, storm, line, closed = _unpacked_listed(data)
    return Record(keep, verdict, reason, storm, leg, hop, line, closed)


def _unpacked_links(data: bytes | bytearray) -> tuple[Leg | None, Hop]:
    if data[:1] == _PICKLED:
        record = _unpacked(data)
        return record.leg, record.hop
    with memoryview(data) as view:
        leg, hop = marshal.loads(view[5:5 + int.from_bytes(view[1:5], "little")])
    if leg is not None:
        time, key, request, client, server, response_time, source, ended, status, refused = leg
        leg = Leg(time, key, request, Endpoint(*client), Endpoint(*server), response_time,
                  source, ended, status, refused)
    return leg, Hop(hop[0], Endpoint(*hop[1]), *hop[2:])


def _unpacked_listed(data: bytes | bytearray) -> Listed:
    if data[:1] == _PICKLED:
        r = _unpacked(data)
        return Listed(r.keep, r.verdict, r.reason, r.storm, r.line, r.closed)
    with memoryview(data) as view:
        return Listed(*marshal.loads(view[5 + int.from_bytes(view[1:5], "little"):]))


_JSON_NUMBER = '{\n      "number": '


class KeptAttempts:
    """Collects a sorted report's attempts; `close` gives them sorted, correlated, filtered."""

    def __init__(self, fmt: str, keep: Callable[[Diagnosis], bool], *,
                 show_secrets: bool = False, whole: bool = False,
                 rebuild: Callable[[], Iterator[Diagnosis]] | None = None,
                 style: TableStyle | None = None, skew: float = 0.0) -> None:
        self.fmt = fmt
        self.skew = skew  # clock difference tolerated between proxy legs of two files
        self.keep = keep
        self.show_secrets = show_secrets
        self.style = style or TableStyle(show_secrets=show_secrets)
        self.listed: list[Diagnosis] = []  # kept in memory: every attempt before the filters
        self.whole = whole or rebuild is None  # pickle every attempt as it is decided
        self.rebuild = rebuild
        self._memory: list[Diagnosis] = []
        self._memory_bytes = 0  # of the heads and body prefixes in _memory (_captured_bytes)
        self.spill: Spill | None = None
        # refused connections not listed, which may be a proxy's back legs (`set_aside`)
        self.aside: list[Diagnosis] = []

    def for_workers(self) -> KeptAttempts:
        """A store with these settings and nothing kept, for the processes that make records
        (report/digest.py): what travels to a cluster."""
        return KeptAttempts(self.fmt, self.keep, show_secrets=self.show_secrets,
                            whole=self.whole, style=self.style, skew=self.skew)

    def add(self, diagnosis: Diagnosis) -> None:
        if self.spill is not None:
            self.spill.add(diagnosis)
            return
        self._memory.append(diagnosis)
        self._memory_bytes += _captured_bytes(diagnosis)
        if len(self._memory) > SPILL_AFTER or self._memory_bytes > SPILL_AFTER_BYTES:
            self._start_spill()

    def _start_spill(self) -> Spill:
        """The attempts kept in memory so far go to a spill, and every one after them."""
        spill = self.spill = Spill(self)
        for d in self._memory:
            spill.add(d)
        self._memory.clear()
        return spill

    def set_aside(self, d: Diagnosis | Digest) -> None:
        """An attempt the report does not list (a TCP-only one without --tcp): kept whole
        when it is a refused connection, which correlation may pair with a proxy's 502 as
        its back leg (nothing else of it is reported: it is counted apart)."""
        if len(self.aside) >= MAX_ASIDE:
            return
        if not isinstance(d, Diagnosis):  # a worker's digest: whole when refused (digest.py)
            if d.record is None or d.whole is None or not d.record.hints[3] or (
                    d.record.hints[1]):
                return
            register_pickling()
            d = pickle.loads(d.whole)
            assert isinstance(d, Diagnosis)
        if is_refused(d.attempt):
            self.aside.append(d)

    def add_digest(self, digest: Digest) -> None:
        """An attempt as a `--jobs` worker sent it: its record made, its whole pickled while
        the worker's wholes stay within bounds (report/digest.py). Kept spilled from the
        first: the records and the wholes go to the files as they came, unread (a spilled
        report is the same bytes as one kept in memory, tests/test_kept.py)."""
        spill = self.spill if self.spill is not None else self._start_spill()
        spill.add_digest(digest)

    def update(self, ended: Ended) -> None:
        """The attempt numbered ``ended.number`` (numbers follow the order of `add`) with the
        end of its connection: judged again with the life findings (analyzer/life)."""
        index = ended.number - 1
        if self.spill is not None:
            self.spill.update(index, ended)
        elif 0 <= index < len(self._memory):
            self._memory[index] = with_life(self._memory[index], ended)

    def close(self) -> list[Diagnosis] | SpilledReport:
        if self.spill is not None:
            return self.spill.close()
        # ends that several connections explain together (a mass reset, a maximum lifetime)
        kept = with_groups(self._memory)
        kept.sort(key=lambda d: (d.attempt.first_frame, d.attempt.time))
        kept = correlate([dataclasses.replace(d, number=i) for i, d in enumerate(kept, start=1)],
                         self.skew, self.aside)
        self.listed = kept
        return [d for d in kept if self.keep(d)]

    def filed(self, d: Diagnosis) -> Filed:
        """The record of ``d`` as a spill files it (`Filed`): what a `--jobs` worker sends."""
        return filed(self.record(d))

    def record(self, d: Diagnosis) -> Record:
        """The compact record of ``d`` (its number is left out: it comes from the order)."""
        line: Any = None
        if self.fmt in ("table", "markdown"):
            # (the cells but the number and the time, without a copy of ``d`` numbered 0:
            # ≈ 19.5 → 9.8 µs an attempt on the dense benchmark mix)
            line = line_cells(d, self.style)
        elif self.fmt in ("csv", "json"):
            # rendered from a copy: the attribution these formats print is cached on the
            # copy, not on ``d`` (which a caller may keep, or pickle whole)
            copy = made(0, d.attempt, d.facts, d.verdict, d.findings, d.who, d.origin,
                        d.lifetime)
            if self.fmt == "csv":
                text = render_csv([copy], self.show_secrets)[len(_csv_head()):]
                assert text.startswith("0,")
                line = text[2:]
            else:
                text = json_attempt(copy, self.show_secrets)
                assert text.startswith(_JSON_NUMBER + "0")
                line = text[len(_JSON_NUMBER) + 1:]
        primary = d.primary
        life, closed = d.lifetime, None
        if life is not None and abnormal_end(life):
            head = d.attempt.request_head
            closed = (head.target if head else "", life.closer.ip if life.closer else "?",
                      life.idle_before_end_s, life.how)
        return Record(self.keep(d), d.verdict.value, primary.check if primary else None,
                      storm_key(d), leg_of(d.attempt, source_of(d)), hop_of(d), line,
                      closed)


@functools.cache
def _csv_head() -> str:  # made on first use: csv is imported only by the CSV format
    return render_csv([])


class _Chained:
    """A column followed by a list, read as one sequence as often as asked (`may_pair` reads
    its sequences twice), without a copy of the column."""

    def __init__(self, column: Iterable[int], more: list[int]) -> None:
        self.column, self.more = column, more

    def __iter__(self) -> Iterator[int]:
        return itertools.chain(self.column, self.more)


class Spill:
    """The records of a spilled report in a temporary file, five numbers each in memory."""

    def __init__(self, owner: KeptAttempts) -> None:
        self.owner = owner
        self.records = Blobs()
        self.wholes = Blobs()  # pickled diagnoses, when some are kept (its file made then)
        # 1 for each attempt with a redirect (a Location): the chains start there
        self.redirects = bytearray()
        self.frame = Column("q")
        self.time = Column("d")
        self.at = Column("q")  # offset of each attempt's record (by order of decision)
        # hash of each attempt's storm key (storms.storm_key): the summary's storm groups
        # are made only for keys seen at least three times (report/spilled.py, `_scan`)
        self.storm = Column("q")
        # offset of each attempt's whole diagnosis in the pickle file (-1: not there)
        self.full = Column("q")
        # the attempts whose connection lived on (index of decision): the only ones with an
        # end, read by `_groups` (attempts kept whole for other reasons have none)
        self.living = Column("q")
        # what pairing legs looks them up by, hashed (correlate.pairing_hints): only the legs
        # that may pair are read back (`_correlate`)
        self.hints = (Column("I"), Column("I"), Column("I"), Column("I"))

    def add(self, d: Diagnosis) -> None:
        # an attempt whose connection lives on is kept whole too: its end judges it again
        lives = d.attempt.tcp.end_reason == WINDOW_OVER
        full = self.put_whole(d) if self.owner.whole or lives else -1
        self._append(d.attempt.first_frame, d.attempt.time, filed(self.owner.record(d)), full,
                     lives)

    def add_digest(self, digest: Digest) -> None:
        assert digest.record is not None  # (made for a sorted report)
        lives = digest.living is not None
        assert digest.whole is not None or not lives  # (sent whole whatever the bounds)
        full = -1 if digest.whole is None else self.put_whole_bytes(digest.whole)
        self._append(digest.first_frame, digest.time, digest.record, full, lives)

    def _append(self, first_frame: int, time: float, record: Filed, full: int,
                lives: bool) -> None:
        """One more attempt (in order of decision): its record put, its whole at ``full``."""
        if lives:
            self.living.append(len(self.at))
        self.frame.append(first_frame)
        self.time.append(time)
        self.at.append(self.records.append(record.data))
        self.storm.append(record.storm)
        self.full.append(full)
        self.redirects.append(record.redirect)
        for column, hint in zip(self.hints, record.hints, strict=True):
            column.append(hint)

    def replace(self, index: int, record: Record, full: int) -> None:
        """Attempt ``index`` (order of decision) is now ``record`` (judged again: the same
        leg), its whole at ``full``."""
        again = filed(record)
        self.at[index] = self.records.append(again.data)
        self.storm[index] = again.storm
        self.full[index] = full
        self.redirects[index] = again.redirect

    def update(self, index: int, ended: Ended) -> None:
        """Attempt ``index`` (order of decision) with its connection's end: a new record
        (and whole) replaces the old one in the files."""
        full = self.full[index]
        if full < 0:
            return
        d = with_life(self.whole(full), ended)
        self.replace(index, self.owner.record(d), self.put_whole(d))

    def leg(self, index: int) -> Leg | None:
        return _unpacked_links(self.records.read(self.at[index]))[0]

    def hop(self, index: int) -> Hop:
        return _unpacked_links(self.records.read(self.at[index]))[1]

    def listed(self, index: int) -> Listed:
        """What the report reads of attempt ``index``'s record (not its leg and hop)."""
        return _unpacked_listed(self.records.read(self.at[index]))

    def put_whole(self, d: Diagnosis) -> int:
        register_pickling()  # (analyzer/slotted.py: loaded again when the report is made)
        return self.put_whole_bytes(pickle.dumps(d, protocol=pickle.HIGHEST_PROTOCOL))

    def put_whole_bytes(self, data: bytes) -> int:
        """A diagnosis pickled (here, or by a `--jobs` worker)."""
        return self.wholes.append(data)

    def whole(self, at: int) -> Diagnosis:
        assert at >= 0
        d: Diagnosis = pickle.loads(self.wholes.read(at))
        return d

    def close(self) -> SpilledReport:
        self._groups()
        order = report_order(self.frame, self.time)
        self.frame = Column("q")  # not needed any more
        by_time = time_order(order, self.time)
        self._correlate(order, by_time)
        from analyzer.report.spilled import SpilledReport  # the output half of a spill

        return SpilledReport(self, order, by_time)

    def _groups(self) -> None:
        """The rules over several ends (analyzer/life/groups.py), as `with_groups` runs them on
        a report kept in memory: over the attempts kept whole because they lived on (one
        whole in memory at a time), the changed ones put again."""
        ends = []
        for index in self.living:
            full = self.full[index]
            if full >= 0 and (end := end_of(index, self.whole(full))) is not None:
                ends.append(end)
        for index, findings in group_findings(ends).items():
            d = with_findings(self.whole(self.full[index]), findings)
            self.replace(index, self.owner.record(d), self.put_whole(d))

    # --- correlation ------------------------------------------------------------------------

    def _correlate(self, order: array[int], by_time: array[int]) -> None:
        """correlate.correlate over the records: the legs paired in time order, the fronts
        (and attempts a proxy answered itself) judged again with the findings it adds."""
        count = len(self.at)
        # refused connections not listed (`KeptAttempts.set_aside`), after the attempts:
        # indexes from ``count`` on, never judged again here (only their fronts)
        aside = self.owner.aside
        aside_legs = [leg_of(d.attempt, source_of(d)) for d in aside]
        aside_hints = [pairing_hints(leg) for leg in aside_legs]
        candidates = array(index_code(count + len(aside)))  # attempt index of each leg paired
        # only the legs that may pair are read (the others change no pair): on the dense
        # benchmark mix, none (benchmarks/README.md, "Twenty-sixth session")
        keys, fronts, back_hints, refusals = (
            _Chained(column, [h[n] for h in aside_hints]) for n, column in enumerate(self.hints))
        pairable = may_pair(keys, fronts, back_hints, refusals, count + len(aside))

        def listed() -> Iterator[tuple[Leg, int]]:
            for rank in by_time:
                index = order[rank]
                if pairable[index] and (leg := self.leg(index)) is not None:
                    yield leg, index

        apart = sorted(((leg, count + n) for n, leg in enumerate(aside_legs)
                        if leg is not None and pairable[count + n]), key=lambda x: x[0].time)

        def legs() -> Iterator[Leg]:
            # in time order, an attempt before a refused connection of the same time (as
            # correlate.correlate's stable sort of the attempts, then those aside)
            for leg, index in heapq.merge(listed(), apart, key=lambda x: x[0].time):
                candidates.append(index)
                yield leg

        pairs = [(candidates[f], candidates[b]) for f, b in pair_legs(legs(), self.owner.skew)]
        if not pairs:
            return
        back_of = backs_by_front(pairs)
        backs = {b for _, b in pairs}
        proxies = {leg.server for f, _ in pairs if (leg := self.leg(f)) is not None}
        alone = []
        for index, front in enumerate(self.hints[1]):  # every attempt with a leg (a request)
            if not front or index in back_of or index in backs:
                continue
            leg = self.leg(index)
            if leg is not None and leg.server in proxies and leg.response_time is not None \
                    and not is_tunnel(leg.line[0]):
                alone.append(index)
        front_of = {b: f for f, b in pairs}
        listed_ones = {index for index in set(back_of) | backs | set(alone) if index < count}
        known = self._wholes(listed_ones)

        def wholes(index: int) -> Diagnosis | None:
            return known(index) if index < count else aside[index - count]

        for index in sorted(listed_ones):
            all_backs, front = back_of.get(index), front_of.get(index)
            back = all_backs[0] if all_backs else None
            d = wholes(index)
            other = wholes(back) if back is not None else None
            ahead = wholes(front) if front is not None else None
            if d is None or (back is not None and other is None) or (
                    front is not None and ahead is None):
                continue  # not rebuilt (the input changed or broke): as decided
            # (as correlate.correlate: a front, a back leg, both, or a proxy's own answer)
            extra = (compare_legs(d.attempt, other.attempt, len(all_backs or ()) - 1)
                     if other is not None else [])
            if ahead is not None:
                extra.append(back_leg(ahead, d.attempt))
            elif other is None:
                extra = [answered_itself(d.attempt)]
            if extra:
                findings = back_leg_findings(d, ahead) if ahead is not None else d.findings
                if other is not None:
                    findings = without_disproved(findings, d.attempt, other.attempt)
                d = dataclasses.replace(judge(d.attempt, d.facts, findings + tuple(extra),
                                              d.number), origin=d.origin, lifetime=d.lifetime)
                full = self.put_whole(d) if self.owner.whole else -1
                self.replace(index, self.owner.record(d), full)

    def _wholes(self, needed: set[int]) -> Callable[[int], Diagnosis | None]:
        """The whole diagnoses of the attempts ``needed``, by index of decision (None for
        one that could not be rebuilt)."""
        if self.owner.whole:
            return lambda index: self.whole(self.full[index])
        # An attempt whose connection lived on is kept whole, with its end (`update`): a
        # rebuild would give its decided verdict, without the lifetime. The rest are rebuilt.
        where = {index: self.full[index] for index in needed if self.full[index] >= 0}
        rest = needed - where.keys()
        if not rest:
            return lambda index: self.whole(where[index])
        legs = {index: self.leg(index) for index in rest}
        assert self.owner.rebuild is not None
        try:
            for index, d in enumerate(self.owner.rebuild()):
                if index >= len(self.at):
                    break  # the first run stopped early (interrupted, or a bug)
                if index in rest:
                    # The same attempt, or none: a file rewritten between the two runs (or
                    # any change in the order of decision) must not lend one attempt's
                    # request to another's findings.
                    if leg_of(d.attempt, source_of(d)) != legs[index]:
                        break
                    where[index] = self.put_whole(d)
        except Exception:  # noqa: BLE001 - the first run said what went wrong, if anything
            pass
        return lambda index: self.whole(where[index]) if index in where else None
