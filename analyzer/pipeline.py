"""Wires the stages together: Frames in, Diagnoses out. No I/O here (sources and CLI do it)."""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

from analyzer.checks.facts import facts_of
from analyzer.checks.transport import check_transport
from analyzer.decode import Decoder
from analyzer.decode.decoder import (
    ignored_block_skip,
    ignored_frame_test,
    ignored_record_skip,
    new_follow,
    peek_functions,
    segment_function,
)
from analyzer.decode.segment import Segment
from analyzer.exchange.first_bytes import Start
from analyzer.exchange.handoff import (
    MAX_LISTED_TLS_SESSIONS,
    ExchangeCounters,
    HandlerFactory,
    RunContext,
)
from analyzer.exchange.model import Attempt, AttemptKind
from analyzer.exchange.switch import DEFAULT_WINDOW, ObservationWindow
from analyzer.exchange.tcplog import TcpLog
from analyzer.exchange.tracker import ConnectionTracker
from analyzer.life.model import Ended, attempt_key
from analyzer.reassembly import Connection, Reassembler, StreamListener
from analyzer.source.capture import MergedRecords
from analyzer.source.frame import Backsteps, Frame
from analyzer.source.pcap import PcapRecords
from analyzer.source.pcapng import PcapngRecords
from analyzer.source.stream import Record
from analyzer.tls.passing import arm, arm_after_feed, new_ledger, wrap_skip
from analyzer.tls.syncing import sync, sync_all, sync_before_feed
from analyzer.values import MAX_LISTED_TCP_ATTEMPTS, RunStats
from analyzer.verdict import Diagnosis, diagnose
from analyzer.websocket.frames import frame_parser

# The values moved to analyzer/values.py; re-exported for callers of the pipeline.
__all__ = ["DEFAULT_MAX_CONNECTIONS", "MAX_LISTED_TCP_ATTEMPTS", "Analysis", "RunStats", "analyze",
           "protocol_handlers"]

if TYPE_CHECKING:
    from analyzer.life.stage import LifeStage

# What a run hands on: an attempt's Diagnosis when it is decided, and with `lifetimes`, an
# `Ended` when a switched connection followed past its watch window ends.
Decided = Diagnosis | Ended

_SYN = 0x02
TLS_KEY_LOG = 0x544C534B  # "TLSK": a Decryption Secrets Block holding an NSS key log
_SYN_FIN_RST = 0x07


def protocol_handlers() -> dict[Start, HandlerFactory]:
    """The stages that take a connection over from the HTTP/1 tracker, by what its first bytes
    are (exchange/handoff.py). Imported here, at the wiring, so the tracker knows none of them;
    each stage's module is imported when a connection first needs it (hpack and hyperframe
    cost more to import than a small capture costs to analyse)."""
    # H2_FRAMES too: a server's SETTINGS may be captured before the client's preface (servers
    # send them on accept); the HTTP/2 stage then waits for the preface on the other side.
    return {Start.TLS: _tls_stage, Start.H2_PREFACE: _http2_stage,
            Start.H2_FRAMES: _http2_stage}


def _tls_stage(run: RunContext, conn: Connection, tcp: TcpLog, kind: Start) -> StreamListener:
    # imported on the first TLS connection: its seven modules cost ≈ 10 ms of start-up
    from analyzer.tls.layer import tls_handler

    return tls_handler(run, conn, tcp, kind)


def _http2_stage(run: RunContext, conn: Connection, tcp: TcpLog, kind: Start) -> StreamListener:
    from analyzer.exchange.h2 import h2_handler

    return h2_handler(run, conn, tcp, kind)


# Connections tracked at once before the oldest idle ones are evicted. Under 1 KB each once
# quiet, so this bounds the table near 100 MB (benchmarks/README.md, "Memory"): the costliest
# kind that can fill it sets the cap, a connection that saw only a SYN (0.95 KB); a closed one
# costs ~0.5 KB, an open WebSocket in the life table ~0.55 KB with the CLI's numbering of it
# (0.33 KB of it the table), so 100,000 of those peak at ~130 MB as JSONL, of which ~75 MB
# is not theirs (start-up and the connections inside their 2 s watch at 2,000 handshakes a
# second). A larger cap would let a SYN flood past 100 MB.
DEFAULT_MAX_CONNECTIONS = 100_000

class Analysis:
    """One run of the pipeline: feed frames, collect diagnoses as they are decided."""

    def __init__(
        self,
        window: ObservationWindow = DEFAULT_WINDOW,
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_listed_tcp_attempts: int = MAX_LISTED_TCP_ATTEMPTS,
        compiled: bool = True,
        secrets: object | None = None,
        handlers: dict[Start, HandlerFactory] | None = None,
        owns: Callable[[Connection, Segment], bool] | None = None,
        lifetimes: bool = False,
    ) -> None:
        # Use the compiled fast path (decode/_fastpath.pyx) when it is built; False runs the
        # pure-Python path, which must give the same results (tests compare the two).
        self._compiled = compiled
        # `read --jobs N FILE` (analyzer/scale/): a worker follows only the connections it owns;
        # the others are ignored from their first segment, so the compiled skip drops the rest.
        self._owns = owns
        self._decoder = Decoder()
        self._counters = ExchangeCounters()
        self._decided: deque[Attempt | Ended] = deque()
        self._emit = self._decide  # one bound method for every tracker
        # The stages that take connections over (TLS, HTTP/2): the pipeline's own unless a
        # caller gives others.
        stages = protocol_handlers() if handlers is None else handlers
        self._run = RunContext(self._emit, self._counters, window, stages, secrets,
                               frame_parser=frame_parser(compiled))
        # lifetimes: switched connections are followed after their watch window to their end
        # (analyzer/life), and each end is yielded as an `Ended` after its attempt's
        # Diagnosis; without it they are let go after the watch, as before.
        self._life: LifeStage | None = None
        # Connections in life, once let go: compiled when built (analyzer/life/table.py)
        self._lives: Any = None
        if lifetimes:
            from analyzer.life.stage import LifeStage
            from analyzer.life.table import new_life_table

            self._life = LifeStage(self._decided.append)
            self._run.life_sink = self._life
            self._lives = new_life_table(compiled)
        self._reassembler = Reassembler(self._new_tracker, max_connections=max_connections,
                                        defer_syn=True, tick_on_sweep=True, lives=self._lives)
        # Decrypted TLS records that no reader needs pass in the compiled skip (tls/passing.py)
        self._ledger = new_ledger() if compiled else None
        if self._lives is not None and self._ledger is not None:
            self._lives.ledger = self._ledger  # it counts what the skip takes for the sweep
        self._stats = RunStats()
        self._tcp_listed = 0
        self._unlisted_tcp: Counter[str] = Counter()
        self._max_listed_tcp = max_listed_tcp_attempts
        self._frames = 0
        self._segments = 0
        self._first: float | None = None
        self._last = 0.0
        self._absorbed: list[RunStats] = []
        self._follow: Any = None  # the compiled skip's `Follow` of the last file (tests read it)
        # Records whose time steps back: the readers' (`feed_records`), and the frames'
        # given to `feed` (live capture), after the time of the last of those
        self._backsteps = Backsteps()
        self._fed_time = -math.inf
        # The frame being read when the attempts handed on last were decided (the merge of
        # `read --jobs` shards orders by it: scale/shard.py `decisions`)
        self.deciding = 0

    def _new_tracker(self, conn: Connection, segment: Segment) -> ConnectionTracker | None:
        if self._owns is not None and not self._owns(conn, segment):
            return None
        return ConnectionTracker(conn, self._run)

    @property
    def lifetimes(self) -> bool:
        """Switched connections are followed to their end (`Ended` events)."""
        return self._life is not None

    def feed(self, frame: Frame) -> list[Decided]:
        """Processes one frame; returns the attempts it decided (usually none)."""
        if frame.time < self._fed_time:  # (`feed_records`' readers count their own)
            self._backsteps.add(frame.number, self._fed_time - frame.time)
        self._fed_time = frame.time
        return self._feed_frame(frame)

    def _feed_frame(self, frame: Frame) -> list[Decided]:
        """`feed` of a frame whose time the reader has looked at."""
        segment = self._decoder.decode(frame)
        if segment is None:
            self._saw(frame.time)
            return []
        return self._feed_segment(segment)

    def _feed_segment(self, segment: Segment) -> list[Decided]:
        """`feed` of a frame whose Segment is already made (by `decode`, or in C by
        `segment_function`); a Segment carries its frame's time."""
        self._saw(segment.time)
        self._segments += 1
        self._reassembler.feed(segment)
        if not self._decided:
            return []
        self.deciding = self._frames
        return self._drain()

    def _saw(self, time: float) -> None:
        """Counts a frame of the capture and its time."""
        self._frames += 1
        if self._first is None:
            self._first = time
            if self._follow is not None:
                self._follow.started = True
        self._last = time

    def feed_records(self, records: Iterable[Record]) -> Iterator[Decided]:
        """Processes a whole capture's records (numbered from 1 in order, as `read_records`
        gives them); yields the attempts as they are decided. Call `finish` afterwards.

        The same as building a Frame per record and calling `feed`, only faster: a record of
        a connection already ignored (bulk non-HTTP traffic, or an upgrade already judged) is
        recognised by `peek_flow` and one look-up in the reassembler's flow table, and is only
        counted. On a 1 GB capture of mostly bulk TLS this path takes ~93% of the frames and
        cut the run time by ~3x (benchmarks/README.md). On a followed connection, a bare ACK
        or the next in-order bytes go to `Reassembler.take_plain` without a Frame or a
        Segment.

        A classic pcap (`PcapRecords`) or pcapng (`PcapngRecords`) file applies that first
        test itself, inside its read buffer, so the records of ignored connections are not
        even sliced out (`ignored_record_skip` and `ignored_block_skip`, compiled; for pcap
        also `ignored_frame_test`, its Python twin); so do the files of a merge
        (`MergedRecords`), within the bounds the merge sets them.
        """
        flows = self._reassembler.flows
        # Records the reader drops are counted here: frame numbers, segments, last time.
        reader: PcapRecords | PcapngRecords | MergedRecords | None = None
        ledger = self._ledger
        lives = self._lives
        first = self._frames
        if isinstance(records, PcapRecords | PcapngRecords | MergedRecords):
            reader = records
            if isinstance(records, MergedRecords):  # (which file a TLS session came from)
                self._run.source_of = partial(_source_of, first, records)
            inputs = records.inputs if isinstance(records, MergedRecords) else [records]
            for source, single in enumerate(inputs):
                # the compiled life table's segments are taken in the skip only where the
                # ledger counts them for the sweep (one file: `wrap_skip`); so are the next
                # segments of followed connections (`_follow.pxi`), numbered by the ledger,
                # in a regular file only: what such a segment decides is handed on before
                # the next record is read, and a pipe's next record may be long in coming
                counted = lives if ledger is not None and single is records else None
                follow: Any = new_follow(self._reassembler, self._decided, arm, ledger) if (
                    single is records and isinstance(single, PcapRecords | PcapngRecords)
                    and single.regular) else None
                if follow is not None:  # it feeds the full path once the first time is kept
                    follow.started = self._first is not None
                self._follow = follow or self._follow
                if isinstance(single, PcapRecords):
                    single.drop = ignored_frame_test(single.linktype, flows)
                    single.skip = ignored_record_skip(single.linktype, flows,
                                                      compiled=self._compiled, lives=counted,
                                                      follow=follow)
                    if single.skip is not None and ledger is not None and single is records:
                        single.skip = wrap_skip(single.skip, ledger, self._reassembler,
                                                partial(_base, first, single))
                elif isinstance(single, PcapngRecords):
                    single.skip = ignored_block_skip(flows, compiled=self._compiled,
                                                     lives=counted, follow=follow)
                    single.secrets = partial(self.add_secrets, source=source)
                    if single.skip is not None and ledger is not None and single is records:
                        single.skip = wrap_skip(single.skip, ledger, self._reassembler,
                                                partial(_base, first, single))
        if reader is None:  # (a reader counts the records that step back in time itself)
            records = _counting_backsteps(records, first, self._backsteps)
        # TLS records pass only where a compiled skip runs, which brings the state up to date,
        # on one file (a merge numbers frames its own way)
        self._run.passing = ledger if isinstance(
            reader, PcapRecords | PcapngRecords) and reader.skip is not None else None
        take_plain = self._reassembler.take_plain
        take_life = self._reassembler.take_life
        peek_flow, peek_payload = peek_functions(self._compiled)
        peek_segment = segment_function(self._compiled)
        feed = self._feed_frame
        number = first
        segments = 0
        when = self._last
        try:
            for when, linktype, data, wire_length, source in records:
                if self._decided:  # the compiled skip took a segment that decided these:
                    # the record before this one (the skip stops right after such a segment,
                    # and the reader reads on to this record at once: what it yields now is
                    # not what decided them, and a shard's skip takes other records than one
                    # process's)
                    self.deciding = number if reader is None else first + reader.number - 1
                    yield from self._drain()
                number = number + 1 if reader is None else first + reader.number
                peeked = peek_flow(linktype, data)
                if peeked is not None:
                    entry = flows.get(peeked[0])
                    # A SYN may open a new connection on the same ports: always the full path.
                    if entry is not None and not peeked[1] & _SYN:
                        conn = entry[0]
                        if conn.ignored:  # the reassembler would drop it too
                            segments += 1
                            continue
                        if not peeked[1] & _SYN_FIN_RST:
                            # Bare ACKs and in-order data: 80 k of the 117 k frames
                            # on followed connections of the 1 GB benchmark, ≈ 5 % of
                            # the run (benchmarks/README.md).
                            seq, ack, payload, missing = peek_payload(linktype, data)
                            passing = conn.passing
                            if passing is not None and passing.frames:  # type: ignore[attr-defined]
                                sync(passing, self._reassembler)
                            if not missing and take_plain(
                                conn, entry[1], seq, ack, peeked[1], payload, number, when
                            ):
                                segments += 1
                                if conn.passing is not None:
                                    arm(conn)
                                if self._decided:
                                    self.deciding = number
                                    yield from self._drain()
                                continue
                    elif entry is None and lives and not peeked[1] & _SYN_FIN_RST:
                        # a connection in the life table (when the skip did not take it)
                        seq, ack, payload, missing = peek_payload(linktype, data)
                        if not missing and take_life(peeked[0], seq,
                                                     ack if peeked[1] & 0x10 else -1,
                                                     payload, number, when):
                            segments += 1
                            continue
                self._frames = number - 1
                if ledger is not None and ledger.dirty:
                    sync_before_feed(ledger, self._reassembler,
                                     None if peeked is None else flows.get(peeked[0], False),
                                     when)
                if peeked is not None and peek_segment is not None:
                    # decode_frame's Segment, built in C (SYNs, FINs, RSTs, reordered bytes)
                    decided = self._feed_segment(peek_segment(linktype, data, number, when))
                else:
                    decided = feed(Frame(number, when, linktype, data, wire_length, source))
                if ledger is not None and peeked is not None:
                    arm_after_feed(flows, peeked[0])
                if decided:
                    yield from decided
            if self._decided:  # decided by the last records, taken in the compiled skip
                self.deciding = number if reader is None else first + reader.number
                yield from self._drain()
        finally:
            if reader is not None:
                if first + reader.number > number:  # the last records were dropped
                    when = reader.dropped_time
                number = first + reader.number
                segments += reader.dropped
                self._backsteps.add_all(reader.backsteps() if isinstance(reader, MergedRecords)
                                        else reader.backsteps, first)
            self._frames = number
            self._segments += segments
            self._last = when

    @property
    def secrets(self) -> object | None:
        """The run's TLS key store (None without --keylog or an embedded key log)."""
        return self._run.secrets

    def add_secrets(self, kind: int, data: bytes, source: int = 0) -> None:
        """Secrets a capture carries (a pcapng Decryption Secrets Block): TLS key logs join
        the run's key store, made now if --keylog gave none. Other kinds are not used.
        ``source``: the input that carried them, among the files read together."""
        if kind != TLS_KEY_LOG:
            return
        from analyzer.tls.keylog import KeyStore

        store = self._run.secrets
        if not isinstance(store, KeyStore):
            store = self._run.secrets = KeyStore()
            store.embedded_only = True
        store.embedded_from.add(source)
        store.add_text(data)
        store.finish()

    def tick(self, now: float, patience: float) -> list[Decided]:
        """Live capture: time is ``now`` (capture clock); attempts waiting longer than
        ``patience`` seconds for an answer are decided as unanswered."""
        if self._ledger is not None:
            sync_all(self._ledger, self._reassembler)
        self._reassembler.tick(now, patience)
        self._settle_awaiting(now)
        return self._drain()

    def _settle_awaiting(self, now: float) -> None:
        """TLS sessions that ended while waiting for their key: judged once it comes, or
        once the wait is over (``now`` infinite: the run ends, with the keys it has)."""
        awaiting = self._run.awaiting_keys
        if awaiting:
            awaiting[:] = [settle for settle in awaiting if not settle(now)]

    def finish(self) -> list[Decided]:
        """End of input: every connection still open is judged as it stands."""
        return list(self.finishing())

    def finishing(self) -> Iterator[Decided]:
        """`finish`, yielding what each connection's end decided as it comes (the `Ended`
        of 100,000 connections still in life, held at once, were the peak of a run)."""
        if self._ledger is not None:
            sync_all(self._ledger, self._reassembler)
        # The capture ended at its last record, whichever connection it was: the reassembler's
        # clock stops at the last one it saw, which frames taken in the compiled skip or, with
        # --jobs N, the other shards' never reach (a WebSocket still open read 2.5 s of life
        # in a shard, 5.5 s in one process). Set, not only moved on: where timestamps step
        # back (a capture merged from interfaces, a generator's jitter) the last frame Python
        # saw may be later than the last record, and which frame that is depends on what the
        # skip took: a shard and one process saw an unanswered request wait 9 and 21 ms
        # (tests/test_scale.py). The checks take a wait that comes out below zero as zero.
        if self._first is not None:
            self._reassembler.now = self._last
        for _ in self._reassembler.closing():
            if self._decided:
                yield from self._drain()
        self._settle_awaiting(math.inf)
        yield from self._drain()

    def _decide(self, attempt: Attempt) -> None:
        """A tracker decided an attempt. Past the listing limit, a connection attempt that
        never reached HTTP is counted here and let go: a sweep of a SYN flood's table evicts
        8,192 connections at once, and holding their attempts until `_drain` cost ~40 MB."""
        if attempt.kind is AttemptKind.TCP:
            if self._tcp_listed >= self._max_listed_tcp:
                self._unlisted_tcp[_transport_reason(attempt)] += 1
                return
            self._tcp_listed += 1
        self._decided.append(attempt)

    def _drain(self) -> list[Decided]:
        out: list[Decided] = []
        life = self._life
        for attempt in self._decided:
            if isinstance(attempt, Ended):
                out.append(attempt)
                continue
            diagnosis = diagnose(attempt)
            if life is not None and attempt.after is not None:
                life.judged(attempt_key(attempt.first_frame, attempt.sequence,
                                        attempt.stream_id), diagnosis.verdict)
            out.append(diagnosis)
        self._decided.clear()
        return out

    @property
    def open_connections(self) -> int:
        """Connections in the reassembler's table now (bounded by ``max_connections``)."""
        return self._reassembler.open_connections

    @property
    def stats(self) -> RunStats:
        stats = self._stats
        stats.frames = self._frames
        stats.tcp_segments = self._segments
        stats.skipped = Counter(self._decoder.skipped)
        stats.connections = self._reassembler.connections_seen
        stats.http_connections = self._counters.http_connections
        stats.ordinary_exchanges = self._counters.ordinary_exchanges
        stats.evicted_connections = self._reassembler.connections_evicted
        stats.unlisted_tcp_attempts = Counter(self._unlisted_tcp)
        stats.abandoned_heads = self._counters.abandoned_heads
        stats.tls_uninspected = self._counters.tls_uninspected
        # By last frame, the order of their ends: a session counted when the capture ended
        # (or its FIN was read late) came after later ones, and a shard's merge sorts so.
        stats.tls_uninspected_listed = sorted(self._counters.tls_uninspected_listed,
                                              key=lambda s: (s.last_frame, s.first_frame))
        stats.tls_decrypted = self._counters.tls_decrypted
        stats.tls_unused = self._counters.tls_unused
        stats.snaplen_cut_segments = self._reassembler.cut_segments
        stats.connections_captured_twice = self._reassembler.copied_connections
        steps = self._backsteps
        stats.timestamps_backwards = steps.count
        stats.timestamps_backwards_first_frame = steps.first_frame
        stats.timestamps_backwards_largest_s = steps.largest
        stats.keylog_ignored_lines = getattr(self._run.secrets, "ignored", 0)
        stats.quic_flows = self._decoder.quic_flow_count
        stats.first_time = self._first
        stats.last_time = self._last if self._first is not None else None
        for other in self._absorbed:
            _add(stats, other)
        return stats

    def absorb(self, other: RunStats) -> None:
        """Counts the totals of a run over another, independent capture in this run's stats
        (``read --jobs``: each file analysed in its own process)."""
        self._absorbed.append(other)


def _add(stats: RunStats, other: RunStats) -> None:
    stats.frames += other.frames
    stats.tcp_segments += other.tcp_segments
    stats.skipped.update(other.skipped)
    stats.connections += other.connections
    stats.http_connections += other.http_connections
    stats.ordinary_exchanges += other.ordinary_exchanges
    stats.evicted_connections += other.evicted_connections
    stats.quic_flows += other.quic_flows
    stats.unlisted_tcp_attempts.update(other.unlisted_tcp_attempts)
    stats.abandoned_heads += other.abandoned_heads
    stats.tls_uninspected += other.tls_uninspected
    room = MAX_LISTED_TLS_SESSIONS - len(stats.tls_uninspected_listed)
    stats.tls_uninspected_listed += other.tls_uninspected_listed[:max(room, 0)]
    stats.tls_decrypted += other.tls_decrypted
    stats.tls_unused += other.tls_unused
    stats.snaplen_cut_segments += other.snaplen_cut_segments
    stats.connections_captured_twice += other.connections_captured_twice
    # (independent captures, `read --jobs N FILES`: frames count within each file, and the
    # first frame named is the first file's, in the order they are absorbed)
    if other.timestamps_backwards and not stats.timestamps_backwards:
        stats.timestamps_backwards_first_frame = other.timestamps_backwards_first_frame
    stats.timestamps_backwards += other.timestamps_backwards
    stats.timestamps_backwards_largest_s = max(stats.timestamps_backwards_largest_s,
                                               other.timestamps_backwards_largest_s)
    times = [t for t in (stats.first_time, other.first_time) if t is not None]
    stats.first_time = min(times) if times else None
    times = [t for t in (stats.last_time, other.last_time) if t is not None]
    stats.last_time = max(times) if times else None


def _transport_reason(attempt: Attempt) -> str:
    """The primary finding of an attempt that never reached HTTP, without the whole verdict
    (cheap: a flood decides a million of them)."""
    findings = check_transport(attempt, facts_of(attempt))
    return findings[0].check if findings else "none"


def _counting_backsteps(records: Iterable[Record], first: int,
                        steps: Backsteps) -> Iterator[Record]:
    """``records`` (numbered after ``first``), counting in ``steps`` those whose time is
    earlier than the record's before them: what the readers count for their own records."""
    last = -math.inf
    for number, record in enumerate(records, first + 1):
        if record[0] < last:
            steps.add(number, last - record[0])
        last = record[0]
        yield record


def _base(first: int, reader: PcapRecords | PcapngRecords) -> int:
    """The frame number before the next record of a single-file reader (`feed_records`)."""
    return first + reader.number


def _source_of(first: int, records: MergedRecords, number: int) -> int:
    """The input that frame ``number`` (read so far) came from, of files read together
    (`feed_records` numbers them after ``first``)."""
    return records.origin(number - first)[0]


def analyze(frames: Iterable[Frame], analysis: Analysis | None = None) -> Iterator[Decided]:
    """Every diagnosis of a capture, in the order the attempts were decided."""
    run = analysis or Analysis()
    for frame in frames:
        if (decided := run.feed(frame)):
            yield from decided
    yield from run.finish()
