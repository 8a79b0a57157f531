"""Syncing: after the compiled skip took segments of a connection's TLS states (tls/passing.py),
its Python state is brought where the per-segment path would have left it, before Python
touches that connection (`sync`), the whole table (`sync_all`), or what a sweep may touch
(`sync_before_feed`): the reassembler's offsets, kept bytes, ACKs and last time; the TLS
stage's record reader, opener and plaintext offset, its inner reader's body count, a life's
counts and tail; records counted on trust in life that were not application data, read again
(`_reread`). tls/passing.py's docstring says what the states take, and why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from analyzer.reassembly import Connection, Reassembler
from analyzer.tls.passing import Watching

if TYPE_CHECKING:
    from analyzer.tls.layer import TlsStage


def sync_all(ledger: Any, reassembler: Reassembler) -> None:
    """Every state with something taken: before a segment that may touch the whole table
    (a sweep, a new connection, an eviction) and at the end."""
    dirty = ledger.dirty
    while dirty:
        sync(next(reversed(dirty)), reassembler)


def sync_before_feed(ledger: Any, reassembler: Reassembler, entry: Any, time: float) -> None:
    """Before a frame (at ``time``) goes the full way (`Reassembler.feed`): ``entry`` is its
    flow's table entry, False for a flow not in the table, None when its flow is not known.
    Only a sweep touches other connections there (and a frame whose flow is not known may be
    any one's): then the states the sweep may act on (`_before_sweep`); otherwise its own
    connection's alone, as `take_plain` does. Bringing all of them up to date at each such
    frame (SYNs, FINs) was 30,000 syncs on the 1 GB TLS 1.2 benchmark, 12 % of its run."""
    if entry is None:
        sync_all(ledger, reassembler)
        return
    if reassembler.sweep_due:
        _before_sweep(ledger, reassembler, time)
    if entry:
        passing = entry[0].passing
        if passing is not None and passing.frames:
            sync(passing, reassembler)


def _before_sweep(ledger: Any, reassembler: Reassembler, now: float) -> None:
    """Before the sweep a segment at ``now`` runs: the states of connections the sweep may
    finish, evict or tick into a decision are brought up to date; the others only get their
    last time (all the sweep reads of them) and keep their counts, and a TLS 1.3 record
    they hold part of, in C until Python next touches them. A sweep every 8,192 frames
    otherwise synced every passing state: 1,764 of the 3,370 syncs on the 1 GB TLS 1.3
    benchmark. `Reassembler.sweep` finishes a connection idle past the timeout (or closing,
    or finished), evicts over the connection cap, and calls `on_tick` with infinite
    patience, which does something only where `TlsStage.ticks_idle` says so."""
    lives = reassembler._lives
    if len(reassembler.flows) + (len(lives) if lives else 0) > reassembler._max_connections:
        sync_all(ledger, reassembler)  # it may evict: any of them
        return
    cutoff = now - reassembler._idle_timeout
    dirty = ledger.dirty
    for passing in list(dirty):
        if passing not in dirty:  # brought up to date with its pair just now
            continue
        conn = passing.conn
        last_time = latest_time(passing)
        if last_time < cutoff or conn.finished or conn.closing or not (
                (type(passing) is not Watching and conn.listener._idle_for_good)
                or conn.listener.ticks_idle(now)):  # (a cleartext watch: its tracker's)
            sync(passing, reassembler)
        else:
            conn.last_time = last_time


def sync(passing: Any, reassembler: Reassembler) -> None:
    """Bring one connection's Python state where the per-segment path would have left it
    (module docstring), before Python touches that connection: both states of a pair."""
    if type(passing) is Watching:  # a switched connection's watch (decode/_watching.pxi)
        passing.sync()
        return
    if passing.peer is None and not passing.follower:  # one state: the usual case, inline
        passing.ledger.dirty.pop(passing, None)
        passing.flush_recent()
        conn = passing.conn
        here = conn.sides[passing.side]
        before = here.next_offset
        here.next_offset += passing.bytes  # the kept bytes were appended in C
        conn.last_time = passing.last_time
        _sync_acks(passing, reassembler, before)
        _sync_reading(passing, conn)
        return
    states = _pair(passing)
    ledger = passing.ledger
    for state in states:
        ledger.dirty.pop(state, None)
    conn = passing.conn
    befores = []
    for state in states:  # each side's bytes before the ACKs: a pair's are of each other's
        state.flush_recent()
        here = conn.sides[state.side]
        befores.append(here.next_offset)
        here.next_offset += state.bytes  # the kept bytes were appended in C
    conn.last_time = latest_time(passing)
    for state, before in zip(states, befores, strict=True):
        _sync_acks(state, reassembler, before)
    for state in states:
        if conn.ignored:  # (a record read again ended the session: `_reread`)
            break
        _sync_reading(state, conn)


def _reread(passing: Any, stage: TlsStage, offset: int, rest: bytes) -> None:
    """Records counted on trust in life did not open as the application data they were
    counted as (decode/_trust.pxi `_take_back`): ``rest``, their bytes and those after
    them (from ``offset``), go to the session as the per-segment path gave them: each
    record's bytes but its last gathered at its first frame, its last byte read at the frame
    that ended it (`reread`: what `on_data` reads), the bytes after them gathered at theirs;
    the life gets what came before them first, and the last segment's time last."""
    side = passing.side
    records, passing.taken_back = passing.taken_back, None
    if passing.life_taken:
        stage.lived(side, passing.plain, passing.life_tail_bytes(), passing.life_data_time,
                    passing.life_last_time)
        passing.life_taken = False
    at = 0
    for length, first_frame, first_time, end_frame, end_time in records:
        stage.gathered(side, offset + at, rest[at:at + length - 1], first_frame, first_time)
        stage.reread(side, offset + at + length - 1, rest[at + length - 1:at + length],
                     end_frame, end_time)
        at += length
    if len(rest) > at:
        stage.gathered(side, offset + at, rest[at:], passing.after_frame, passing.after_time)
    stage.last_packet(side, passing.life_last_time)


def _pair(passing: Any) -> tuple[Any, ...]:
    """A state, or the two of its pair, the one in ``conn.passing`` first (a follower finds
    it there: Python brings a pair up to date before it lets it go)."""
    if passing.peer is not None:
        return passing, passing.peer
    if passing.follower:
        leader = passing.conn.passing
        if leader is not None and type(leader) is not Watching and leader.peer is passing:
            return leader, passing
    return (passing,)


def latest_time(passing: Any) -> float:
    """The time of the last segment a state took, of the later one for a pair."""
    if type(passing) is Watching:
        return float(passing.last_time)
    return float(passing.latest_time())


def _sync_acks(passing: Any, reassembler: Reassembler, before: int) -> None:
    """The ACKs a state took, with the segments that raised them, as the per-segment path
    keeps a lost FIN's proof (``before``: its side's offset before its bytes)."""
    conn = passing.conn
    side = passing.side
    if passing.acked_here:
        reassembler._peer_acked(conn, 1 - side, passing.ack_here, passing.ack_here_frame,
                                passing.ack_here_time, before + passing.ack_here_bytes)
    if passing.acked_peer:  # the peer sent no bytes meanwhile: its offset is the proof's
        reassembler._peer_acked(conn, side, passing.ack_peer, passing.ack_peer_frame,
                                passing.ack_peer_time)


def _sync_reading(passing: Any, conn: Connection) -> None:
    """What a state took, counted by the TLS stage (and its inner reader or life)."""
    side = passing.side
    here = conn.sides[side]
    stage: TlsStage = passing.conn.listener
    if passing.turned >= 0:  # passed up to the body's last record, gathered from there on
        stage.passed(side, passing.turned, passing.records, passing.plain, 0,
                     passing.absorbed and passing.carry_plain >= 0)
        passing.turned = -1
        passing.carry_plain = -1
    if passing.opening or passing.gather:
        if passing.pending_at >= 0:  # trusting in life: the tail needs its last record
            passing.resolve_pending()
        plain = passing.plain
        if passing.opening:
            opener = passing.opener
            opener.unconfirmed = passing.unconfirmed
            if passing.padded:
                opener.padding_seen = True
            stage.passed(side, passing.pass_bytes, passing.records, passing.plain, 0,
                         passing.absorbed, body=not passing.watching)
            passing.budget -= passing.plain
            passing.absorbed = False
            passing.pass_bytes = 0
        # the current record's bytes the reader does not have (opening), or those gathered
        # since the last sync, as one chunk in place of the segments it joins: no record ends
        # in it, so the stage only buffers it, and its first frame is the one a record needs
        rest = passing.unread()
        if passing.taken_back:
            _reread(passing, stage, here.next_offset - len(rest), rest)
        elif rest:
            stage.gathered(side, here.next_offset - len(rest), rest, passing.kept_frame,
                           passing.kept_time)
        if passing.life and passing.life_taken:  # (after `gathered`: its time is earlier)
            stage.lived(side, plain, passing.life_tail_bytes(), passing.life_data_time,
                        passing.life_last_time)
            passing.life_taken = False
    else:
        stage.passed(side, passing.bytes, passing.records, passing.plain, passing.to_header,
                     passing.absorbed and passing.carry_plain >= 0)
        if passing.absorbed:
            passing.carry_plain = -1
        passing.budget -= passing.plain
    passing.bytes = passing.records = passing.plain = passing.frames = 0
    passing.last_number = 0
    passing.acked_here = passing.acked_peer = False
