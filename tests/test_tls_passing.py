"""Decrypted TLS records that pass unread in the compiled skip (analyzer/tls/passing.py) against
the per-segment path that reads every one (`Analysis(compiled=False)`): the same attempts,
fields and counts, on real OpenSSL traffic, whole and damaged (a dropped segment, a
retransmitted one, segments swapped)."""

from __future__ import annotations

import gc
import random
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.decode.decoder import FASTPATH_COMPILED
from analyzer.life.model import Ended
from analyzer.life.state import TAIL_BYTES, keep_tail
from analyzer.pipeline import Analysis
from analyzer.report.fields import attempt_fields
from analyzer.source import read_records
from analyzer.tls import passing
from analyzer.tls.keylog import load_keylog

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not FASTPATH_COMPILED, reason="the compiled module is not built")


def _generate(path: Path, versions: str, seed: int, mix: str = "downloads") -> None:
    """6 MB of generate_tls.py's downloads mix, or 3 MB of its chat mix (long-lived
    WebSockets, a record per message)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from generate_tls import generate, generate_chat
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    if mix == "chat":
        generate_chat(str(path), 3_000_000, seed, versions)
    else:
        generate(str(path), 6_000_000, seed, versions)


def _read(path: Path, keys: Path, compiled: bool) -> tuple[list[dict[str, Any]], Any, Analysis]:
    run = Analysis(compiled=compiled, secrets=load_keylog(keys.read_bytes()))
    out = list(run.feed_records(read_records([str(path)], []))) + run.finish()
    stats = run.stats
    counts = (stats.frames, stats.tcp_segments, stats.ordinary_exchanges, stats.first_time,
              stats.last_time, stats.tls_decrypted, stats.tls_uninspected)
    return sorted((attempt_fields(d) for d in out), key=repr), counts, run


def _same(path: Path, keys: Path) -> int:
    """Both paths agree on ``path``; returns the frames that passed unread."""
    fast, fast_counts, run = _read(path, keys, True)
    slow, slow_counts, _ = _read(path, keys, False)
    assert fast == slow
    assert fast_counts == slow_counts
    return int(run._ledger.total)


def _rewrite(source: Path, target: Path, change: Any) -> None:
    """``source``'s records, changed by ``change(list of (time, data))``, as a pcap."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from generate import PcapWriter
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    records = [(when, data) for when, _link, data, _wire, _source
               in read_records([str(source)], [])]
    writer = PcapWriter(str(target))
    for when, data in change(records):
        writer.write(when, data)
    writer.close()


def _damaged(records: list[tuple[float, bytes]], rng: random.Random, damage: str,
             candidates: list[int], count: int) -> list[tuple[float, bytes]]:
    """``count`` of the records at ``candidates`` lost ("drop"), sent again three records
    later ("repeat"), or swapped with the next one ("swap")."""
    for index in sorted(rng.sample(candidates, count), reverse=True):
        if damage == "drop":
            del records[index]
        elif damage == "repeat":
            records.insert(index + 3, (records[index + 3][0], records[index][1]))
        else:
            (t1, d1), (t2, d2) = records[index], records[index + 1]
            records[index], records[index + 1] = (t1, d2), (t2, d1)
    return records


@pytest.fixture(scope="module")
def tls12(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("passing") / "tls12.pcap"
    _generate(path, "1.2", 3)
    return path


def test_tls12_downloads_pass_and_give_what_reading_every_record_gives(tls12: Path) -> None:
    passed = _same(tls12, Path(str(tls12) + ".keys"))
    fast, _, _ = _read(tls12, Path(str(tls12) + ".keys"), True)
    # the downloads followed by an upgrade on the same connection are still found (the record
    # that ends the body, and the next request, are read)
    assert all(f["tls"]["decrypted"] and f["status"] == 101 for f in fast)
    assert sorted(f["connection_exchange"] for f in fast) == [0, 1, 1]
    frames = sum(1 for _ in read_records([str(tls12)], []))
    assert passed > frames // 2  # most of the capture passed unread


def test_mixed_versions_and_tls13_opened_records_give_the_same(tmp_path: Path) -> None:
    """TLS 1.3 records are never passed unread (their length hides padding and their type
    may be a KeyUpdate): inside a body they are opened in the skip (tests/
    test_tls_passing_live.py has a KeyUpdate among them), elsewhere their segments gather
    in C and each record is read whole."""
    path = tmp_path / "mixed.pcap"
    _generate(path, "both", 5)
    assert _same(path, Path(str(path) + ".keys")) > 0
    only13 = tmp_path / "tls13.pcap"
    _generate(only13, "1.3", 5)
    assert _same(only13, Path(str(only13) + ".keys")) > 0


@pytest.mark.parametrize("versions", ["1.3", "1.2"])
def test_gathering_and_passing_on_pcapng_give_the_same(tmp_path: Path, versions: str) -> None:
    """The pcapng reader's compiled skip takes the same frames (its own loop)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from run import write_as_pcapng
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    path = tmp_path / "tls.pcap"
    _generate(path, versions, 9)
    ng = tmp_path / "tls.pcapng"
    write_as_pcapng(path, ng)
    assert _same(ng, Path(str(path) + ".keys")) > 0


@pytest.fixture(scope="module")
def tls13(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("opening") / "tls13.pcap"
    _generate(path, "1.3", 4)
    return path


@pytest.mark.parametrize("version", ["1.2", "1.3"])
@pytest.mark.parametrize("damage", ["drop", "repeat", "swap"])
def test_damaged_segments_in_a_passing_body_give_the_same_result(
        request: pytest.FixtureRequest, tmp_path: Path, damage: str, version: str) -> None:
    capture: Path = request.getfixturevalue("tls12" if version == "1.2" else "tls13")
    rng = random.Random(damage)

    def change(records: list[tuple[float, bytes]]) -> list[tuple[float, bytes]]:
        big = [i for i, (_, data) in enumerate(records) if len(data) > 1000]
        return _damaged(records, rng, damage, big[len(big) // 4:], 6)

    damaged = tmp_path / f"{damage}.pcap"
    _rewrite(capture, damaged, change)
    assert _same(damaged, Path(str(capture) + ".keys")) > 0


def test_a_pass_that_took_only_acks_leaves_the_buffered_record_whole() -> None:
    """A state offered while the reader holds the start of a record, that took only the
    peer's ACKs before `sync`: the record's next bytes are not dropped (they were, and the
    1 GB TLS 1.2 benchmark then saw four ClientHellos "to a cleartext port")."""
    from analyzer.tls.records import RecordReader

    record = bytes((23, 3, 3, 0, 40)) + bytes(range(40))
    reader = RecordReader()
    assert reader.feed(0, record[:20], 1, 1.0) == []
    to_come = reader.partial()
    assert to_come is not None and to_come[0] == 25
    reader.passed(0, 0, to_come[0], False)
    (whole,) = reader.feed(20, record[20:], 2, 2.0)
    assert whole.body == record[5:] and (whole.first_frame, whole.last_frame) == (1, 2)


def test_the_rest_of_a_passed_record_may_pass_again() -> None:
    """A pass that stopped inside a record (a sweep, the peer's request) leaves the rest of
    that record to come: the reader says so, so the next segments may pass too instead of
    going through Python one by one."""
    from analyzer.tls.records import RecordReader

    reader = RecordReader()
    reader.passed(1000, 3, 700, False)
    assert reader.partial() == (700, 23, 0)
    assert reader.feed(1000, bytes(300), 5, 1.0) == []
    assert reader.partial() == (400, 23, 0)


@pytest.mark.parametrize("trusting", [False, True])
def test_a_corrupted_tls13_record_in_a_body_stops_decryption_only_where_it_is_opened(
        tls13: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trusting: bool) -> None:
    """Opening in the skip authenticates: with every record opened (`TRUST_FROM` 0), a
    record with a flipped byte does not open there, goes the usual way, and decryption stops
    at it as on the per-segment path. Large records counted unopened (the default) are not
    checked, as a TLS 1.2 record passed unread is not (docs/architecture.md): the flipped
    bytes inside a download's body then change nothing, where the per-segment path stops."""
    def change(records: list[tuple[float, bytes]]) -> list[tuple[float, bytes]]:
        big = [i for i, (_, data) in enumerate(records) if len(data) > 1000]
        for index in (big[len(big) // 3], big[2 * len(big) // 3]):
            when, data = records[index]
            records[index] = (when, data[:500] + bytes((data[500] ^ 0x40,)) + data[501:])
        return records

    damaged = tmp_path / "corrupt.pcap"
    _rewrite(tls13, damaged, change)
    keys = Path(str(tls13) + ".keys")
    if not trusting:
        monkeypatch.setattr(passing, "TRUST_FROM", 0)
        assert _same(damaged, keys) > 0
        assert _read(damaged, keys, True)[0] != _read(tls13, keys, True)[0]  # the damage shows
        return
    def timeless(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**fields, "time": None} for fields in found]  # (rewriting rounds them)

    fast, _counts, run = _read(damaged, keys, True)
    assert run._ledger.trusted > 0
    assert timeless(fast) == timeless(_read(tls13, keys, True)[0])  # not seen
    assert fast != _read(damaged, keys, False)[0]  # where reading every record stops


@pytest.mark.parametrize("version,part,chunk", [
    ("1.2", 2, None), ("1.3", 2, None), ("1.3", 3, None),
    # read buffers a few times what a direction keeps: the copies put off
    # (decode/_passing_buffer.pxi `_defer`) are made as each buffer is let go; and smaller
    # ones, which are not kept (copied now)
    ("1.2", 2, 70_000), ("1.3", 3, 70_000), ("1.3", 2, 3_000)])
def test_the_bytes_kept_for_retransmissions_are_those_of_reading_every_segment(
        request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        version: str, part: int, chunk: int | None) -> None:
    """The compiled skip keeps a passing direction's last bytes, with the records it opens or
    gathers, in one buffer (moved down when full) and writes them back into the
    reassembler's `recent` at `sync`: cut mid-download (a half, a third in), every open
    connection holds the same bytes there as on the per-segment path, its plain twin. The
    copies of bytes nothing may read again are put off, and most never made."""
    from analyzer.reassembly import _NOTHING_YET
    from analyzer.source import stream
    from analyzer.tls.syncing import sync_all

    if chunk is not None:
        monkeypatch.setattr(stream, "CHUNK", chunk)
    capture: Path = request.getfixturevalue("tls12" if version == "1.2" else "tls13")
    cut = tmp_path / "cut.pcap"
    _rewrite(capture, cut, lambda records: records[: len(records) // part])
    kept = []
    for compiled in (True, False):
        run = Analysis(compiled=compiled,
                       secrets=load_keylog(Path(str(capture) + ".keys").read_bytes()))
        for _ in run.feed_records(read_records([str(cut)], [])):
            pass
        if compiled:
            sync_all(run._ledger, run._reassembler)
            ledger = run._ledger
        kept.append({key: [bytes(recent) for recent in
                           (getattr(side, "recent", _NOTHING_YET) for side in conn.sides)
                           if recent is not _NOTHING_YET]
                     for key, (conn, side) in run._reassembler.flows.items() if side == 0})
    assert kept[0] == kept[1]
    assert sum(len(b) for sides in kept[0].values() for b in sides) > 100_000
    if chunk is not None and chunk < 64 * 1024:  # decode/_ledger.pxi `_PINNED_FROM`
        assert ledger.deferred == 0
    else:
        assert ledger.deferred > 1_000_000
    if chunk is None:  # whole read buffers: most bytes put off are never copied
        assert ledger.copied < ledger.deferred / 4
    assert ledger.holding == 0  # once synced, no state is kept for its places


def test_records_opened_into_a_reused_buffer_give_what_a_new_buffer_per_record_gives(
        tls13: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The skip opens TLS 1.3 records with the AEAD's `decrypt_into` and one reused buffer
    (tls/passing.py `OPEN_INTO`); its twin, `decrypt`, gives the same, whole and with a
    record that does not authenticate (it goes the usual way in both), and the skip takes
    the same frames either way (with no state in a watch window, which opens only into the
    reused buffer, as in life: `offer_open_in_watch`)."""
    from analyzer.tls import passing

    def change(records: list[tuple[float, bytes]]) -> list[tuple[float, bytes]]:
        big = [i for i, (_, data) in enumerate(records) if len(data) > 1000]
        when, data = records[big[len(big) // 2]]
        records[big[len(big) // 2]] = (when, data[:700] + bytes((data[700] ^ 1,)) + data[701:])
        return records

    corrupt = tmp_path / "corrupt.pcap"
    _rewrite(tls13, corrupt, change)
    keys = Path(str(tls13) + ".keys")
    for capture in (tls13, corrupt):
        seen = []
        for into in (True, False):
            monkeypatch.setattr(passing, "OPEN_INTO", into)
            monkeypatch.setattr(passing, "OPEN_IN_WATCH", False)
            fast, counts, run = _read(capture, keys, True)
            assert run._ledger.total > 0
            seen.append((fast, counts, run._ledger.total))
        assert seen[0] == seen[1]  # the same attempts, and the same frames taken in C
        assert seen[0][0] == _read(capture, keys, False)[0]


@pytest.mark.parametrize("tuning", ["sweeps", "sweeps_idle", "sweeps_evict"])
def test_sweeps_among_passing_states_give_what_reading_every_segment_gives(
        tls13: Path, monkeypatch: pytest.MonkeyPatch, tuning: str) -> None:
    """A sweep brings up to date only the passing states it may act on (tls/syncing.py
    `_before_sweep`); the others stay in C across it. Sweeping every 64 segments, with
    connections going idle under it (a 10 ms timeout) or evicted over a cap of 3, gives
    what the per-segment path gives; and with neither, some states did stay in C."""
    from analyzer.tls import syncing

    kept_across: list[int] = []
    before_sweep = syncing._before_sweep

    def watched(ledger: Any, reassembler: Any, now: float) -> None:
        before_sweep(ledger, reassembler, now)
        kept_across.append(len(ledger.dirty))

    monkeypatch.setattr(syncing, "_before_sweep", watched)
    keys = Path(str(tls13) + ".keys")
    results = []
    for compiled in (True, False):
        run = Analysis(compiled=compiled, secrets=load_keylog(keys.read_bytes()),
                       max_connections=3 if tuning == "sweeps_evict" else 200_000)
        table = run._reassembler
        table._sweep_every = table._until_sweep = 64
        if tuning == "sweeps_idle":
            table._idle_timeout = 0.01
        out = list(run.feed_records(read_records([str(tls13)], []))) + run.finish()
        results.append(sorted((attempt_fields(d) for d in out), key=repr))
        stats = run.stats
        results.append((stats.frames, stats.ordinary_exchanges, stats.tls_decrypted))
    assert results[0] == results[2] and results[1] == results[3]
    assert results[0]
    if tuning == "sweeps":
        assert max(kept_across) > 0


def test_the_buffer_starts_from_the_readers_record_and_the_kept_bytes_only_when_they_agree(
        ) -> None:
    """An opening state's buffer starts with the direction's last bytes: the record reader's
    start of the current record and the reassembler's `recent` are both a suffix of them, so
    the longer one holds the other at its end; when they disagree (after a hole) the state is
    not armed and its segments go the usual way."""
    from analyzer.decode._fastpath import Ledger, Passing

    def loaded(held: bytes, recent: bytes) -> bool:
        state = Passing(None, Ledger(), 0)
        state.opening = True
        state.start_record(held)
        ok = bool(state.load_recent(bytearray(recent)))
        if ok:  # the reader holds the record's start already: nothing to give it
            assert state.held == len(held) and state.unread() == b""
        return ok

    assert loaded(b"abc", b"xxxxabc")
    assert loaded(b"0123456789", b"789")
    assert loaded(b"", b"xyz") and loaded(b"abc", b"")
    assert not loaded(b"abc", b"xxxxabd")
    assert not loaded(b"0123456789", b"780")
    assert not loaded(b"abc", bytes(40_000))  # longer than reassembly ever keeps


# (an HTTP/2 session's inner `H2Stage` keeps its own references: not covered)
@pytest.mark.parametrize("name", ["wss_nginx_proxy_ok", "wss_tls12_ecdhe_rsa_aes128_cbc_sha",
                                  "wss_aiohttp"])
def test_a_finished_decrypted_session_is_freed_without_the_collector(name: str) -> None:
    """`TlsStage.on_end` lets the inner state go (the shadow and its tracker, the inner
    `RunContext` with the stage's bound methods): reference counting frees the session, where
    each was garbage in cycles until a collection (benchmarks/README.md, `tlskeyed2`)."""
    import gc

    from analyzer.tls.layer import TlsStage

    captures = Path(__file__).resolve().parent.parent / "captures"
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for compiled in (False, True):
            run = Analysis(compiled=compiled,
                           secrets=load_keylog((captures / f"{name}.keys").read_bytes()))
            out = list(run.feed_records(read_records([str(captures / f"{name}.pcap")], [])))
            out += run.finish()
            assert run.stats.tls_decrypted
            del run, out
            assert not [o for o in gc.get_objects() if type(o) is TlsStage]
    finally:
        if was_enabled:
            gc.enable()


def test_a_pass_turned_to_gathering_at_the_bodys_last_record_gives_the_same(
        tls12: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A passing state gathers the record that reaches the body's end in C (tls/passing.py
    `TURN`); its twin sends that record's first segment to Python, which offers the gathering.
    Both give what the per-segment path gives, and turning took more segments in C."""
    keys = Path(str(tls12) + ".keys")
    seen = []
    for turn in (True, False):
        monkeypatch.setattr(passing, "TURN", turn)
        fast, counts, run = _read(tls12, keys, True)
        seen.append((fast, counts, run._ledger.total, run._ledger.turned))
    (turning, turning_counts, turning_total, turned), (plain, plain_counts, total, none) = seen
    assert turned > 0 and none == 0
    assert turning_total > total
    assert turning == plain and turning_counts == plain_counts
    assert turning == _read(tls12, keys, False)[0]


@pytest.mark.parametrize("versions", ["1.2", "1.3"])
def test_a_state_armed_right_after_a_frame_went_the_full_way_gives_the_same(
        tls12: Path, tls13: Path, monkeypatch: pytest.MonkeyPatch, versions: str) -> None:
    """A passing state is armed again right after a frame of its connection went the full
    way (tls/passing.py `ARM_AFTER_FEED`); its twin arms it after the next segment the cheap
    path takes. With a sweep every 64 segments (each sweep's segment goes the full way),
    both give what the per-segment path gives, and arming at once took more frames in C."""
    capture = tls12 if versions == "1.2" else tls13
    keys = Path(str(capture) + ".keys")
    seen = []
    for compiled, at_once in ((True, True), (True, False), (False, False)):
        monkeypatch.setattr(passing, "ARM_AFTER_FEED", at_once)
        run = Analysis(compiled=compiled, secrets=load_keylog(keys.read_bytes()))
        table = run._reassembler
        table._sweep_every = table._until_sweep = 64
        out = list(run.feed_records(read_records([str(capture)], []))) + run.finish()
        stats = run.stats
        seen.append((sorted((attempt_fields(d) for d in out), key=repr),
                     (stats.frames, stats.tcp_segments, stats.ordinary_exchanges,
                      stats.tls_decrypted), run._ledger.total if compiled else 0))
    assert seen[0][:2] == seen[1][:2] == seen[2][:2]
    assert seen[0][0]
    assert seen[0][2] > seen[1][2]


def _counted(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[int]:
    """``owner.name`` wrapped to note each call (the list it returns, one item a call)."""
    calls: list[int] = []
    function = getattr(owner, name)
    monkeypatch.setattr(owner, name, lambda *args: (calls.append(1), function(*args))[1])
    return calls


def _lives(path: Path, keys: Path, compiled: bool,
           sweep_every: int = 0) -> tuple[list[Any], list[Any], Analysis]:
    """The attempts (as their fields, in the order they were decided: JSONL's, and `live`'s)
    and the lives' ends of a read with lifetimes (a sweep every ``sweep_every`` segments
    when set)."""
    run = Analysis(lifetimes=True, compiled=compiled, secrets=load_keylog(keys.read_bytes()))
    if sweep_every:
        run._reassembler._sweep_every = run._reassembler._until_sweep = sweep_every
    events = [*run.feed_records(read_records([str(path)], [])), *run.finish()]
    ended = sorted((e.key, e.lifetime, e.verdict) for e in events if isinstance(e, Ended))
    decided = [attempt_fields(e) for e in events if not isinstance(e, Ended)]
    return decided, ended, run


@pytest.fixture(scope="module")
def chat(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("passing") / "chat.pcap"
    _generate(path, "both", 11, mix="chat")
    return path


@pytest.mark.parametrize("damage", ["drop", "repeat", "swap"])
@pytest.mark.parametrize("early", [False, True])
def test_damaged_segments_of_websockets_in_life_give_the_same_result(
        chat: Path, tmp_path: Path, damage: str, early: bool) -> None:
    """Segments lost, repeated or swapped while decrypted WebSockets are in life (their
    records opened in C by a pair of states, `offer_open_in_life`), or early, where most are
    in their watch window (`offer_open_in_watch`): the same attempts, decided in the same
    order, and lifetimes as the per-segment path."""
    rng = random.Random(damage)

    def change(records: list[tuple[float, bytes]]) -> list[tuple[float, bytes]]:
        data = [i for i, (_, frame) in enumerate(records) if len(frame) > 120]
        where = data[4:len(data) // 4] if early else data[len(data) // 3:-4]
        return _damaged(records, rng, damage, where, 8)

    damaged = tmp_path / f"{damage}{'-early' if early else ''}.pcap"
    _rewrite(chat, damaged, change)
    keys = Path(str(chat) + ".keys")
    fast, fast_ended, run = _lives(damaged, keys, True)
    slow, slow_ended, _ = _lives(damaged, keys, False)
    assert fast == slow
    assert fast_ended == slow_ended
    assert len(fast_ended) >= 3 and run._ledger.total > 0


def test_decrypted_websockets_in_life_give_what_reading_every_segment_gives(
        chat: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Decrypted WebSockets followed in life (TLS 1.3, TLS 1.2 with AES-GCM and with
    ChaCha20-Poly1305), read five ways: records opened in C (`OPEN_IN_LIFE`, TLS 1.2 too
    with `OPEN_TLS12_IN_LIFE`: `_application_length12`, whose twin is
    `RecordOpener._open_aead12`) and gathering offered only for a record under way
    (`GATHER_UNDER_WAY_IN_LIFE`); TLS 1.3 alone opened so; that gathering alone; gathering
    offered after every segment (their twin); and the per-segment path; and a sixth: as the
    first but with the watch window read in Python (`OPEN_IN_WATCH`, its twin); a seventh:
    as the first with every record in life opened (`TRUST_IN_LIFE`, its twin); an eighth: as
    the first with each watched record handed to the TLS stage rather than to the compiled
    watch (`WATCH_IN_C`, its twin). The same
    attempts, decided in the same order, and lifetimes (every session ends with its Close
    handshake, read from the decrypted bytes);
    far fewer gathering states made with the first three (each one armed, and brought up to
    date in Python once it took an ACK; the watch window after the switch is read so too),
    and more frames taken in C at each step."""
    path = chat
    keys = Path(str(path) + ".keys")
    seen = []
    from analyzer.tls.layer import TlsStage

    trusted, handed = [], []
    for compiled, opening, tls12, under_way, watch, trust, in_c in (
            (True, True, True, True, True, True, True),
            (True, True, False, True, False, True, True),
            (True, False, False, True, False, True, True),
            (True, False, False, False, False, True, True),
            (False, False, False, False, False, True, True),
            (True, True, True, True, False, True, True),
            (True, True, True, True, True, False, True),
            (True, True, True, True, True, True, False)):
        monkeypatch.setattr(passing, "TRUST_IN_LIFE", trust)
        monkeypatch.setattr(passing, "WATCH_IN_C", in_c)
        records = _counted(monkeypatch, TlsStage, "watched_record")
        monkeypatch.setattr(passing, "OPEN_IN_WATCH", watch)
        monkeypatch.setattr(passing, "OPEN_IN_LIFE", opening)
        monkeypatch.setattr(passing, "OPEN_TLS12_IN_LIFE", tls12)
        monkeypatch.setattr(passing, "GATHER_UNDER_WAY_IN_LIFE", under_way)
        offered = _counted(monkeypatch, passing, "offer_gather")
        decided, ended, run = _lives(path, keys, compiled)
        seen.append((decided, ended, len(offered),
                     run._ledger.total if compiled else 0, run.stats.frames))
        trusted.append(run._ledger.trusted if compiled else 0)
        handed.append(len(records))
        monkeypatch.undo()
    decided, ended = seen[0][:2]
    assert len(ended) == len(decided) >= 3
    assert all(lifetime.how == "close_handshake" and lifetime.close_code == 1000
               and lifetime.close_reason == "bye" for _, lifetime, _ in ended)
    suites = {fields["tls"]["suite"] for fields in decided if fields["tls"]["version"]
              == "TLS 1.2"}
    assert {fields["tls"]["version"] for fields in decided} == {"TLS 1.2", "TLS 1.3"}
    assert any("CHACHA20" in suite for suite in suites), suites
    assert any("GCM" in suite for suite in suites), suites
    assert all(found[:2] == seen[0][:2] for found in seen[1:])
    offers_before = seen[3][2]
    assert all(0 <= found[2] * 3 < offers_before for found in seen[:3])
    # (and in the watch window too, where messages are whole records as in life: 954
    # gathering states against 705 when only life's were kept in)
    assert seen[2][2] * 5 < offers_before, [found[2] for found in seen]
    taken = [found[3] for found in seen]
    frames = seen[0][4]
    assert taken[5] > taken[1] + frames // 5 and taken[1] > 4 * taken[2], seen[5][2:]
    # the watch windows' records opened in C too: 7,186 frames of 7,291 against 6,607
    assert taken[0] > taken[5] + frames // 20, (taken[0], taken[5], frames)
    # records of 160 bytes and more counted in life unopened (most messages: 20 B-2 KB)
    assert trusted[0] > frames // 5 and trusted[6] == 0, trusted
    # watched records handed to the compiled watch in C, not to the stage
    assert handed[7] > 50 * (handed[0] + 1), handed


@given(st.lists(st.lists(st.sampled_from([b"\x88", b"a", b"\x00"]), max_size=300)
                .map(b"".join), max_size=12))
@settings(max_examples=300, deadline=None)
def test_the_compiled_tail_of_a_life_is_keep_tails(pieces: list[bytes]) -> None:
    """The tail C keeps of the plaintext opened in life (`_keep_tail`) is life/state.py
    `keep_tail`'s, piece after piece (of Close bytes and others, up to 300 bytes each)."""
    from analyzer.decode._fastpath import keep_tail as compiled_keep_tail

    tail = compiled = b""
    for piece in pieces:
        tail = keep_tail(tail, piece)
        compiled = compiled_keep_tail(compiled, piece)
        assert compiled == tail
    assert len(tail) <= TAIL_BYTES


def test_states_in_life_are_bounded_and_freed_without_the_collector(
        chat: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """States in life hold a buffer each: at most `MAX_LIFE_STATES` exist at once (past it a
    direction is read in Python: the same results), and a pair is freed as soon as it is let
    go, not by the cycle collector (the follower keeps no reference to its leader)."""
    keys = Path(str(chat) + ".keys")
    expected = _lives(chat, keys, False)[:2]
    seen = []
    for cap in (passing.MAX_LIFE_STATES, 3):
        monkeypatch.setattr(passing, "MAX_LIFE_STATES", cap)
        peak = [0]
        offer = passing.offer_open_in_life

        def counted(ledger: Any, *args: Any, offer: Any = offer, peak: list[int] = peak) -> bool:
            made = offer(ledger, *args)
            peak[0] = max(peak[0], ledger.life_states)
            return bool(made)

        monkeypatch.setattr(passing, "offer_open_in_life", counted)
        gc.disable()
        try:
            decided, ended, run = _lives(chat, keys, True)
            left = run._ledger.life_states
        finally:
            gc.enable()
        assert (decided, ended) == expected
        assert left == 0
        seen.append((peak[0], run._ledger.total))
        monkeypatch.undo()
    (peak, taken), (capped_peak, capped_taken) = seen
    assert peak > 3 >= capped_peak > 0 and taken > capped_taken, seen


@pytest.mark.parametrize("compiled", [True, False])
def test_stages_idle_for_good_give_what_asking_at_every_sweep_gives(
        chat: Path, monkeypatch: pytest.MonkeyPatch, compiled: bool) -> None:
    """A TLS stage that remembers its ticks are idle for good (`IDLE_FOR_GOOD`: done, its
    tracker done, its shadow let go into life) gives the same attempts, in the same order,
    and lifetimes as one that asks its inner readers at every sweep (every 64 segments);
    and compiled, where sweeps ask (tls/syncing.py `_before_sweep`), fewer asks reach them
    (per segment the flag is never set, and nothing changes)."""
    from analyzer.tls import layer

    keys = Path(str(chat) + ".keys")
    seen = []
    for remember in (True, False):
        monkeypatch.setattr(layer, "IDLE_FOR_GOOD", remember)
        asked = _counted(monkeypatch, layer.TlsStage, "_inner_listener")
        decided, ended, _ = _lives(chat, keys, compiled, sweep_every=64)
        seen.append((decided, ended, len(asked)))
        monkeypatch.undo()
    assert seen[0][:2] == seen[1][:2] and len(seen[0][1]) >= 3
    assert seen[0][2] * 2 < seen[1][2] if compiled else seen[0][2] == seen[1][2], seen


def test_buffers_in_life_and_watch_windows_grow_with_what_they_hold_within_the_budget(
        chat: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A state in life or in a watch window starts with a buffer for what it holds and a
    segment, and grows it as it needs (decode/_passing_buffer.pxi `_grow`), while the ledger's
    budget allows (`LIFE_BUFFER_BUDGET`; past it a segment goes the usual way and no more states
    are made): the same results as the per-segment path with the run's budget and with one of
    64 KiB, which the buffers stay within (their first buffers too: a state whose first
    buffer would pass the budget is not armed), all given back at the end; with the run's
    budget a state in life holds far less than its capacity (cut where most sessions are in
    life)."""
    keys = Path(str(chat) + ".keys")
    expected = _lives(chat, keys, False)[:2]
    cut = tmp_path / "cut.pcap"
    _rewrite(chat, cut, lambda records: records[: len(records) * 2 // 3])
    run = Analysis(lifetimes=True, secrets=load_keylog(keys.read_bytes()))
    for _ in run.feed_records(read_records([str(cut)], [])):
        pass
    states, held = run._ledger.life_states, run._ledger.life_buffer_bytes
    assert states >= 4 and held < states * passing.LIFE_CAPACITY // 3, (states, held)
    seen = []
    for budget in (passing.LIFE_BUFFER_BUDGET, 64 * 1024):
        monkeypatch.setattr(passing, "LIFE_BUFFER_BUDGET", budget)
        decided, ended, run = _lives(chat, keys, True)
        assert (decided, ended) == expected
        ledger = run._ledger
        assert ledger.life_buffer_bytes == ledger.life_states == 0
        assert budget // 2 < ledger.life_buffer_peak <= budget or budget > 1 << 20
        seen.append((ledger.total, ledger.grown))
        monkeypatch.undo()
    (taken, grown), (small_taken, _) = seen
    assert grown > 0 and taken > small_taken > 0, (grown, taken, small_taken)


def test_a_buffer_armed_again_holds_what_it_is_loaded_with() -> None:
    """A state in a watch window starts with a buffer for what it is armed with and 4 KiB;
    armed again with more (which Python does not do: it drops a state when it delivers
    bytes itself), the buffer grows to hold it rather than being written past its end."""
    from analyzer.decode._fastpath import Ledger, Passing

    ledger = Ledger()
    state = Passing(None, ledger, 0)
    state.capacity = passing.WATCH_CAPACITY
    state.capped = True
    assert state.load_recent(bytearray(b"x" * 100))
    first = state.buffer_size
    assert 100 < first < 8 * 1024 and ledger.life_buffer_bytes == first
    assert state.load_recent(bytearray(b"y" * 20_000))
    assert state.buffer_size >= 20_000 and ledger.grown == 1
    assert ledger.life_buffer_bytes == state.buffer_size
    state.capped = False  # (it was never counted among the ledger's states)


@pytest.mark.parametrize(("compiled", "cap"), [(True, None), (True, 1), (False, None)])
def test_a_decrypted_websocket_in_life_keeps_no_bytes_for_retransmissions(
        chat: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compiled: bool,
        cap: int | None) -> None:
    """Once a decrypted WebSocket is in life its attempt is out, and reassembly keeps none of
    its bytes for retransmission compares (`Connection.stop_keeping_recent`), as a cleartext
    one in life keeps none: cut at three points, every such connection's directions share the
    one empty `_NOT_KEPT` (which nothing wrote into: the compiled in-order path skips it too),
    while connections before life keep theirs. Compiled (with states in life, and with
    almost none: the compiled in-order path then takes the segments) and per-segment."""
    from analyzer.reassembly import _NOT_KEPT
    from analyzer.tls.layer import TlsStage
    from analyzer.tls.syncing import sync_all

    if cap is not None:
        monkeypatch.setattr(passing, "MAX_LIFE_STATES", cap)
    in_life = kept = 0
    for part in (20, 3, 1.5):
        cut = tmp_path / "cut.pcap"
        _rewrite(chat, cut, lambda records, part=part: records[: int(len(records) / part)])
        run = Analysis(lifetimes=True, compiled=compiled,
                       secrets=load_keylog(Path(str(chat) + ".keys").read_bytes()))
        for _ in run.feed_records(read_records([str(cut)], [])):
            pass
        if compiled:
            sync_all(run._ledger, run._reassembler)
        for conn, side in run._reassembler.flows.values():
            if side or not isinstance(conn.listener, TlsStage):
                continue
            if conn.listener._life() is not None:
                in_life += 1
                assert all(here.recent is _NOT_KEPT for here in conn.sides)
            else:
                kept += sum(len(here.recent) for here in conn.sides)
    assert len(_NOT_KEPT) == 0
    assert in_life >= 3 and kept > 0, (in_life, kept)
