"""The reassembler's sweep with its settled connections passed over in C (`sweep_split`,
decode/_sweep.pxi) against its plain twin, which visits every connection in Python
(`Reassembler.fast_sweep` False; `sweep_split_plain`): the same calls in the same order,
the same table, on made-up traffic and on real captures."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.decode.decoder import FASTPATH_COMPILED
from analyzer.decode.segment import Segment, TcpFlags
from analyzer.pipeline import Analysis
from analyzer.reassembly import Connection, Reassembler
from analyzer.reassembly import table as table_module
from analyzer.reassembly.table import sweep_split_plain
from analyzer.source import read_records
from analyzer.tls.keylog import load_keylog
from tests.helpers import benchmark_capture

REPO = Path(__file__).resolve().parents[1]
CAPTURES = sorted((REPO / "captures").glob("*.pcap*"))
SYN, ACK, FIN, RST, PSH = TcpFlags.SYN, TcpFlags.ACK, TcpFlags.FIN, TcpFlags.RST, TcpFlags.PSH
SERVER = bytes([10, 0, 0, 2])


class Log:
    """Every call of every listener, in the order they came, by connection."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def listener(self, conn: Connection, seg: Segment) -> _Listener:
        return _Listener(self, len(self.calls))


class _Listener:
    def __init__(self, log: Log, name: int) -> None:
        self.log, self.name = log, name
        log.calls.append(("new", name))

    def __getattr__(self, method: str) -> object:
        if not method.startswith("on_"):
            raise AttributeError(method)

        def call(*args: object, **kwargs: object) -> None:
            self.log.calls.append((self.name, method, *args, *sorted(kwargs.items())))
        return call


def _traffic(seed: int, connections: int) -> list[Segment]:
    """Connections from a few client ports (reused), each opening, talking and ending by FIN,
    RST, a lost end (idle) or not at all, some with a hole before their FINs (closing), some
    with late retransmissions after their end; time jumps now and then past a minute."""
    rng = random.Random(seed)
    streams: list[list[tuple[float, Segment]]] = []
    now = 0.0
    for _ in range(connections):
        client = bytes([10, 1, 0, rng.randrange(1, 4)])
        port = 40_000 + rng.randrange(6)
        now += rng.choice([0.01, 0.2, 2.0, 70.0, 400.0]) if rng.random() < 0.2 else 0.01
        seq_c, seq_s = rng.randrange(1 << 32), rng.randrange(1 << 32)
        t = now

        def segment(from_client: bool, seq: int, flags: int, payload: bytes = b"",
                    ack: int = 0, at: float = 0.0, client: bytes = client,
                    port: int = port) -> tuple[float, Segment]:
            src, sport, dst, dport = ((client, port, SERVER, 80) if from_client
                                      else (SERVER, 80, client, port))
            return at, Segment(0, at, src, sport, dst, dport, seq & 0xFFFFFFFF,
                               ack & 0xFFFFFFFF, int(flags), payload)

        out = [segment(True, seq_c, SYN, at=t), segment(False, seq_s, SYN | ACK, ack=seq_c + 1,
                                                        at=t + 0.001)]
        c, s = seq_c + 1, seq_s + 1
        for _ in range(rng.randrange(4)):
            t += rng.choice([0.001, 0.5, 30.0])
            data = b"x" * rng.randrange(1, 50)
            if rng.random() < 0.15:  # a hole: the bytes never show up
                c += len(data)
                continue
            out.append(segment(True, c, ACK | PSH, data, ack=s, at=t))
            c += len(data)
        end = rng.choice(["fin", "rst", "none", "fin", "late"])
        t += 0.01
        if end in ("fin", "late"):
            out.append(segment(True, c, FIN | ACK, ack=s, at=t))
            out.append(segment(False, s, FIN | ACK, ack=c + 1, at=t + 0.001))
            if end == "late":
                out.append(segment(True, c, FIN | ACK, ack=s + 1, at=t + rng.choice([1, 45, 90])))
        elif end == "rst":
            out.append(segment(False, s, RST, at=t))
        streams.append(out)
    merged = sorted((seg for stream in streams for seg in stream), key=lambda p: p[0])
    return [dataclasses.replace(s, frame=n) for n, (_, s) in enumerate(merged, start=1)]


def _swept(segments: list[Segment], fast: bool, max_connections: int
           ) -> tuple[list[tuple[object, ...]], list[tuple[int, int]]]:
    log = Log()
    reassembler = Reassembler(log.listener, idle_timeout=100.0, sweep_every=3,
                              max_connections=max_connections, tick_on_sweep=True)
    reassembler.fast_sweep = fast
    states = []
    for one in segments:
        reassembler.feed(one)
        states.append((reassembler.open_connections, len(reassembler.flows)))
    reassembler.close()
    return log.calls, states


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 100_000), connections=st.integers(1, 40),
       cap=st.sampled_from([100, 6, 12]))
def test_the_fast_sweep_makes_the_same_calls_as_the_plain_one(seed: int, connections: int,
                                                               cap: int) -> None:
    """Every listener call in the same order, and the table as large after every segment;
    with a cap that the table crosses (the fast sweep steps aside there: eviction reads
    every connection), and one it never reaches."""
    segments = _traffic(seed, connections)
    assert _swept(segments, True, cap) == _swept(segments, False, cap)


def test_the_sweep_drops_settled_connections_once_stale() -> None:
    """The fast sweep's own work, seen from outside: a finished connection's entry goes a
    minute after its last segment, not before, and a new one on its ports is new."""
    segments = _traffic(7, 30)
    fast, plain = _swept(segments, True, 100), _swept(segments, False, 100)
    assert fast == plain
    assert any(call[1:2] == ("on_end",) for call in fast[0] if len(call) > 1)


def _tables(paths: list[Path], sweep_every: int) -> Iterator[tuple[dict, float]]:
    """The table of each sweep of real runs (sweeps made frequent), with its stale time."""
    original = Reassembler.sweep
    seen: list[tuple[dict, float]] = []

    def sweep(self: Reassembler, now: float) -> None:
        seen.append((dict(self._table), now - 60.0))
        original(self, now)

    for path in paths:
        keys = Path(str(path).split(".pcap")[0] + ".keys")
        run = Analysis(secrets=load_keylog(keys.read_bytes()) if keys.exists() else None,
                       lifetimes=True)
        run._reassembler._sweep_every = run._reassembler._until_sweep = sweep_every
        Reassembler.sweep = sweep  # type: ignore[method-assign]
        try:
            for _ in run.feed_records(read_records([str(path)], [])):
                pass
            run.finish()
        finally:
            Reassembler.sweep = original  # type: ignore[method-assign]
        yield from seen
        seen.clear()


@pytest.mark.skipif(not FASTPATH_COMPILED, reason="the compiled module is not built")
def test_the_compiled_split_is_the_plain_one_on_real_tables() -> None:
    """`sweep_split` against `sweep_split_plain` on the table of every sweep of every bundled
    capture (a sweep every 4 segments), at its own stale time and at two others."""
    from analyzer.decode._fastpath import sweep_split

    tables = settled = 0
    for table, stale in _tables(CAPTURES, 4):
        for before in (stale, stale + 30.0, float("inf")):
            split = sweep_split(table, before)
            assert split == sweep_split_plain(table, before)
            settled += len(split[1]) + split[2]
        tables += 1
    assert tables > 100 and settled > 100


def _decided(path: Path, fast: bool, sweep_every: int) -> list[object]:
    keys = Path(str(path).split(".pcap")[0] + ".keys")
    run = Analysis(secrets=load_keylog(keys.read_bytes()) if keys.exists() else None,
                   lifetimes=True)
    run._reassembler.fast_sweep = fast
    run._reassembler._sweep_every = run._reassembler._until_sweep = sweep_every
    return [*run.feed_records(read_records([str(path)], [])), *run.finish()]


def test_real_captures_decide_alike_with_either_sweep(tmp_path: Path) -> None:
    """Every bundled capture and 8 MB of the dense benchmark mix (whose connections all end
    within a minute: every sweep passes over most of its table), swept every 64 segments:
    every attempt, verdict and end the same, in the same order."""
    dense = tmp_path / "dense.pcap"
    benchmark_capture(dense, 8_000_000, seed=5, mix="dense")
    for path in [*CAPTURES, dense]:
        assert _decided(path, True, 64) == _decided(path, False, 64), path.name


def test_the_plain_split_is_what_the_module_uses_without_the_compiled_one() -> None:
    """The pure-Python install sweeps with the plain split."""
    if FASTPATH_COMPILED:
        from analyzer.decode._fastpath import sweep_split
        assert table_module.sweep_split is sweep_split
    else:
        assert table_module.sweep_split is sweep_split_plain
