"""A switched WebSocket connection's in-order segments handed by the compiled skip straight to
its compiled watch (`Follow._deliver`, analyzer/decode/_follow.pxi) against the per-segment
Python path (`ConnectionTracker.on_data` and `_observe`, all of it with
`Analysis(compiled=False)`): the same events in the same order and the same counts, on every
repository capture with a WebSocket conversation, on those captures with records swapped,
repeated and lost after the switch, and on the handshake-dense benchmark mix."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest

from analyzer.decode.decoder import FASTPATH_COMPILED
from analyzer.source import read_records
from tests.test_follow import _benchmarks, analysed

REPO = Path(__file__).resolve().parents[1]
CAPTURES = sorted(p for p in (REPO / "captures").glob("*.pcap*"))

pytestmark = pytest.mark.skipif(not FASTPATH_COMPILED, reason="the compiled module is not built")


def _run(path: Path, compiled: bool) -> tuple[list[object], tuple[object, ...], int, int]:
    """Every event of a run as `read` makes it (lifetimes on), its counts, how many
    segments went to a compiled watch without the tracker's Python, and how many segments
    (bare ACKs too) `Watching` states took (decode/_watching.pxi)."""
    run, events, counts = analysed(path, compiled)
    follow = run._follow
    if follow is None:
        return events, counts, 0, 0
    return events, counts, int(follow.watched), int(follow.watching)


def _same(path: Path) -> tuple[int, int]:
    fast, fast_counts, watched, watching = _run(path, True)
    slow, slow_counts, none, nothing = _run(path, False)
    assert none == nothing == 0
    assert fast == slow
    assert fast_counts == slow_counts
    return watched, watching


def _write_pcap(path: Path, linktype: int, records: list[tuple[float, bytes]]) -> None:
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype))
        for when, data in records:
            sec = int(when)
            usec = round((when - sec) * 1e6)
            out.write(struct.pack("<IIII", sec, usec, len(data), len(data)))
            out.write(data)


def _watched_captures() -> list[Path]:
    return [p for p in CAPTURES if p.suffix == ".pcap" and _run(p, True)[2]]


def test_every_capture_gives_the_same_events_with_the_watch_taken_in_c() -> None:
    watched = {path.name: _same(path) for path in CAPTURES}
    assert sum(1 for n, _ in watched.values() if n) >= 15  # most WebSocket captures did
    assert sum(1 for _, n in watched.values() if n) >= 10  # ... most with a `Watching` state


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_segments_swapped_repeated_or_lost_after_the_switch(tmp_path: Path, seed: int) -> None:
    """After each capture's first 101 response, records are swapped with the next one,
    repeated or lost: reordered bytes, retransmissions and holes under the watch go the
    Python way at the right segment, and the rest still go to the watch from C."""
    rng = random.Random(seed)
    damaged = 0
    watched_after = watching_after = 0
    for capture in _watched_captures():
        rows = list(read_records([str(capture)], []))
        linktype = rows[0][1]
        records = [(when, data) for when, _link, data, _wire, _source in rows]
        switch = next(i for i, (_, data) in enumerate(records) if b"HTTP/1.1 101" in data)
        out = records[:switch + 1]
        i = switch + 1
        changes = 0
        while i < len(records):
            roll = rng.random()
            if roll < 0.12 and i + 1 < len(records):  # swapped (times kept in order)
                out += [(records[i][0], records[i + 1][1]), (records[i + 1][0], records[i][1])]
                i += 2
                changes += 1
                continue
            if roll < 0.22:
                out.append(records[i])  # sent twice
                changes += 1
            elif roll < 0.27:
                i += 1  # lost
                changes += 1
                continue
            out.append(records[i])
            i += 1
        if not changes:
            continue
        damaged += 1
        path = tmp_path / f"{capture.stem}-{seed}.pcap"
        _write_pcap(path, linktype, out)
        watched, watching = _same(path)
        watched_after += watched
        watching_after += watching
    assert damaged >= 10
    assert watched_after > 0 and watching_after > 0


def test_the_dense_mix_gives_the_same_events_with_the_watch_taken_in_c(tmp_path: Path) -> None:
    generate, _ = _benchmarks()
    path = tmp_path / "dense.pcap"
    generate.generate(str(path), 2_000_000, 11, 64, mix="dense")
    frames = sum(1 for _ in read_records([str(path)], []))
    watched, watching = _same(path)
    assert watched > frames // 20 and watching > frames // 20
