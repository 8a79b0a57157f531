"""The life table (analyzer/life/table.py): the compiled `LifeTable` and its plain twin keep
the same lives, the kept tail reads the same Close frame as every byte, and a run whose
connections in life move into the table gives the same events as one that keeps them as
`Connection`s with a `Life`."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest

from analyzer.decode.decoder import FASTPATH_COMPILED
from analyzer.decode.segment import flow_key
from analyzer.life.close import close_at_end
from analyzer.life.model import Ended
from analyzer.life.state import Life, _Flow, keep_tail
from analyzer.life.table import PlainLifeTable, new_life_table
from analyzer.pipeline import Analysis
from analyzer.reassembly import Connection, let_go
from analyzer.source import read_records
from tests.builder import Opcode, write_pcap
from tests.test_life import _living, end_three_ways


def _close_frame(rng: random.Random, masked: bool) -> bytes:
    reason = bytes(rng.randrange(32, 127) for _ in range(rng.randrange(0, 40)))
    payload = struct.pack("!H", rng.choice([1000, 1001, 1006, 1011, 4001])) + reason
    if not masked:
        return bytes([0x88, len(payload)]) + payload
    key = bytes(rng.randrange(256) for _ in range(4))
    return bytes([0x88, 0x80 | len(payload)]) + key + bytes(
        b ^ key[i % 4] for i, b in enumerate(payload))


def _chunk(rng: random.Random) -> bytes:
    """Bytes a direction may carry: text, random binary (0x88 included), Close frames."""
    kind = rng.randrange(4)
    if kind == 0:
        return bytes(rng.randrange(32, 127) for _ in range(rng.randrange(1, 300)))
    if kind == 1:
        return bytes(rng.choice([0x88, 0x05, 0x7D, 0x80, rng.randrange(256)])
                     for _ in range(rng.randrange(1, 200)))
    return _close_frame(rng, masked=kind == 3)


def test_the_kept_tail_reads_the_close_frame_that_all_the_bytes_show() -> None:
    rng = random.Random(6455)
    for _ in range(3000):
        stream, tail = b"", b""
        for _ in range(rng.randrange(1, 6)):
            new = _chunk(rng)
            cut = rng.randrange(len(new) + 1)  # a frame split between segments too
            for part in (new[:cut], new[cut:]):
                if part:
                    stream += part
                    tail = keep_tail(tail, part)
                    assert len(tail) <= 131
                    assert close_at_end(tail) == close_at_end(stream)
    assert keep_tail(b"", b"HTTP/1.1 101 Switching Protocols\r\n\r\n") == b""  # quiet: nothing


def _conn(n: int) -> Connection:
    key = flow_key(bytes([10, 0, n >> 8 & 255, n & 255]), 40000 + n % 1000,
                   bytes([10, 9, 0, 1]), 80)
    return Connection(key=key, last_time=1.0)


def _life(rng: random.Random, n: int, sink: object) -> Life:
    flows = (_Flow(rng.randrange(2**32), rng.randrange(1000), 1.0 + n, 1.5 + n),
             _Flow(rng.randrange(2**32), rng.randrange(1000), 1.25 + n, 1.75 + n))
    for flow in flows:
        flow.tail = keep_tail(b"", _chunk(rng))
    return Life((n, 1, 0), rng.randrange(2), 1.0 + n, f"/ws/{n % 3}", bool(n % 5),
                flows, sink)  # type: ignore[arg-type]


def _state(life: Life) -> tuple[object, ...]:
    return (life.key, life.client, life.switch_time, life.target, life.websocket,
            life.decided, life.sink, life.ended,
            tuple((f.base, f.sent, f.first, f.last, f.data, f.tail, f.end, f.end_frame,
                   f.reset, f.proof, f.lost) for f in life.flows))


@pytest.mark.skipif(not FASTPATH_COMPILED, reason="the compiled module is not built")
def test_the_compiled_table_and_its_twin_keep_the_same_lives() -> None:
    rng = random.Random(14)
    sink = object()
    tables = [new_life_table(True), PlainLifeTable()]
    assert type(tables[0]).__name__ == "LifeTable"
    conns: dict[int, list[Connection]] = {}
    open_ = []
    declined = told = 0  # ACKs that told a lost FIN at once; ends that made a proof an end
    for n in range(400):
        life = _life(random.Random(n), n, sink)
        life.decided = rng.choice([None, "succeeded", "failed"])
        pair = []
        for _table in tables:
            conn = _conn(n)
            conn.sides[0].base = rng.randrange(2**32) if n % 7 else None
            conn.sides[1].base = 12345
            copy = _life(random.Random(n), n, sink)
            copy.decided = life.decided
            let_go(conn, copy)
            pair.append(conn)
        conns[n] = pair
        assert [t.adopt(c) for t, c in zip(tables, pair, strict=True)] == [True, True]
        assert not tables[0].adopt(pair[0])  # not twice
        open_.append(n)
        for _ in range(rng.randrange(0, 8)):
            m = rng.choice(open_)
            side = rng.randrange(2)
            key = conns[m][0].keys[side]
            seq = rng.randrange(2**32) if rng.random() < 0.2 else rng.randrange(3000)
            payload = _chunk(rng) if rng.random() < 0.7 else b""
            time = 2.0 + rng.random() * 100
            flags = rng.choice([0x10, 0x10, 0x10, 0x11, 0x14, 0x02, 0x00, 0x04])
            # often one past the other side's bytes (a lost FIN's proof, `Life.acked`), or
            # a RST one past its own (a RST after a lost FIN)
            there = tables[1]._by_key[key][0].life.flows[1 - side]
            here = tables[1]._by_key[key][0].life.flows[side]
            ack = -1 if not flags & 0x10 else (there.base + there.sent + 1) & 0xFFFFFFFF \
                if rng.random() < 0.5 else rng.randrange(2**32)
            if flags & 0x04 and rng.random() < 0.5:
                seq, payload = (here.base + here.sent + 1) & 0xFFFFFFFF, b""
            frame = rng.randrange(1, 10**6)
            if not flags & 0x07:
                taken = [t.take(key, seq, ack, payload, frame, time) for t in tables]
                assert taken[0] == taken[1]
                if not taken[0]:  # it ends the connection: `segment` takes it
                    assert tables[1]._by_key[key][0].life.answers(side, ack)
                    flags |= 0x100
                    declined += 1
            if flags == 0x02:
                assert tables[0].reused(key, seq) == tables[1].reused(key, seq)
            elif not flags & 0x07 and not flags & 0x100:
                pass
            else:
                proofs = [f.proof for f in tables[1]._by_key[key][0].life.flows]
                ends = [t.segment(key, flags & 0xFF, seq, ack, payload, frame, time)
                        for t in tables]
                assert ends[0] == ends[1]
                if ends[0] is not None:
                    told += any(f.end_frame == p[0] for f, p in zip(
                        tables[1]._by_key[key][0].life.flows, proofs, strict=True) if p)
            assert [t.side_of(key) for t in tables] == [side, side]
        assert tables[0].idle(50.0) == tables[1].idle(50.0)
        assert tables[0].ages() == tables[1].ages()
        if rng.random() < 0.4:  # one ends: both give the same `Life` back
            m = open_.pop(rng.randrange(len(open_)))
            key = conns[m][0].keys[rng.randrange(2)]
            (a, key_a), (b, key_b) = (t.pop(key) for t in tables)
            assert key_a == key_b == conns[m][0].key
            assert _state(a) == _state(b)
            assert a.lifetime(conns[m][0].addresses, 500.0, "closed") == \
                b.lifetime(conns[m][0].addresses, 500.0, "closed")
            assert [t.side_of(key) for t in tables] == [-1, -1]
            assert not tables[0].take(key, 1, 5, b"x", 9, 1.0)
    assert len(tables[0]) == len(tables[1]) == len(open_)
    for m in open_:
        (a, _), (b, _) = (t.pop(conns[m][0].key) for t in tables)
        assert _state(a) == _state(b)
    assert len(tables[0]) == 0 and tables[0].ages() == []
    assert declined > 10 and told > 10, (declined, told)  # the lost-FIN rules were exercised


def _events(path: Path, compiled: bool, table: bool = True) -> tuple[list[object], int]:
    """Every event of a run whose sweep comes every 4 segments (so connections move into the
    life table early); ``table=False`` keeps connections in life out of it (as before it)."""
    run = Analysis(lifetimes=True, compiled=compiled)
    reassembler = run._reassembler
    reassembler._sweep_every = reassembler._until_sweep = 4
    if not table:
        run._lives = reassembler._lives = None
    events = [*run.feed_records(read_records([str(path)], [])), *run.finish()]
    return events, run._lives.taken if run._lives is not None else 0


def test_lives_in_the_table_give_the_events_they_gave_as_connections(tmp_path: Path) -> None:
    path = tmp_path / "lives.pcap"
    convs = [_living(30000 + n, 1_700_000_000.0 + n, frames=6, size=100 + 40 * n)
             for n in range(8)]
    end_three_ways(convs)
    convs[3].server_ws_close(1011, delay=5.0)
    convs[3].server_fin(0.5)
    convs[4].client_ws_frame(Opcode.BINARY, b"\x88\x02\x03\xe8" * 40, delay=1.0)
    convs[4].client_rst(2.0)
    convs[5].client_fin(3.0)  # half closed, open at the end
    write_pcap(path, convs, duplicate=2)
    before, _ = _events(path, compiled=False, table=False)
    plain, _ = _events(path, compiled=False)
    ends = [e for e in before if isinstance(e, Ended)]
    assert len(ends) == 8 and {e.lifetime.how for e in ends} >= {"fin", "rst", "open",
                                                                 "close_handshake"}
    assert plain == before
    if FASTPATH_COMPILED:
        compiled, taken = _events(path, compiled=True)
        assert compiled == before
        assert taken > 0  # the compiled skip took segments of connections in the table


def test_ipv6_lives_in_the_table_give_the_same_events(tmp_path: Path) -> None:
    """IPv6 segments take the per-segment path (the compiled skip reads IPv4 only): the table
    still gives the events the connections gave."""
    from tests.builder import Conversation, websocket_response
    from tests.test_checks import ws_request

    convs = []
    for n in range(4):
        conv = Conversation(client=("fd00::1", 30000 + n), server=("fd00::2", 80),
                            start=1_700_000_000.0 + n)
        conv.handshake()
        conv.client(ws_request())
        conv.server(websocket_response(), delay=0.002)
        for _ in range(6):
            conv.client_ws_frame(Opcode.TEXT, b"c" * 100, delay=3.0)
            conv.server_ws_frame(Opcode.TEXT, b"s" * 100, delay=0.01)
        convs.append(conv)
    end_three_ways(convs)
    path = tmp_path / "v6.pcap"
    write_pcap(path, convs, duplicate=2)
    before, _ = _events(path, compiled=False, table=False)
    assert sorted(e.lifetime.how for e in before if isinstance(e, Ended)) == [
        "close_handshake", "fin", "open", "rst"]
    assert _events(path, compiled=False)[0] == before
    assert _events(path, compiled=True)[0] == before


@pytest.mark.parametrize("compiled", [True, False])
def test_a_lost_fin_in_the_table(compiled: bool) -> None:
    """The lost-FIN rules of `Life` (as the reassembly's, delivery.py `_lost_fin`), through
    the table's calls: side 0 sent 100 bytes from 1000 and side 1 200 from 5000; the
    near misses (new bytes after the ACK, an ACK two past, nobody closing) tell nothing."""
    if compiled and not FASTPATH_COMPILED:
        pytest.skip("the compiled module is not built")
    addresses = (b"\x0a\x00\x00\x01", 40000, b"\x0a\x09\x00\x01", 80)

    def run(steps: list[tuple[int, int, int, int, bytes]]) -> tuple[str | None, Life]:
        """(side, flags, seq, ack, payload) segments at frames 10, 11...; the last end."""
        table = new_life_table(compiled)
        conn = _conn(1)
        conn.sides[0].base, conn.sides[1].base = 1000, 5000
        let_go(conn, Life((1, 1, 0), 0, 1.0, "/", True,
                          (_Flow(1000, 100, 1.0, 1.0), _Flow(5000, 200, 1.0, 1.0)), object()))
        assert table.adopt(conn)
        end = None
        for frame, (side, flags, seq, ack, payload) in enumerate(steps, 10):
            key = conn.keys[side]
            if flags & 0x07 or not table.take(key, seq, ack, payload, frame, frame / 10):
                end = table.segment(key, flags, seq, ack, payload, frame, frame / 10)
                if end is not None:
                    break
        return end, table.pop(conn.key)[0]

    # the server's (side 1's) FIN lost: the client acknowledged 5201, then closed
    end, life = run([(0, 0x10, 1100, 5201, b""), (0, 0x11, 1100, 5201, b""),
                     (1, 0x10, 5201, 1101, b"")])
    assert end == "closed"
    assert (life.flows[1].end_frame, life.flows[1].lost, life.flows[0].end_frame) == (10, True, 11)
    lifetime = life.lifetime(addresses, 9.0, end)
    assert (lifetime.closed_by, lifetime.how, lifetime.end_frame) == ("server", "fin", 10)
    # ... told by the closing FIN itself: the lost FIN still came first (a tie)
    end, life = run([(0, 0x11, 1100, 5201, b"")])
    assert end == "closed" and life.lifetime(addresses, 9.0, end).closed_by == "server"
    # the client's FIN lost after the server had closed: told by the server's ACK of 1101
    end, life = run([(1, 0x11, 5200, 1100, b""), (0, 0x10, 1100, 5201, b""),
                     (1, 0x10, 5201, 1101, b"")])
    assert end == "closed" and (life.flows[0].end_frame, life.flows[0].lost) == (12, False)
    assert life.lifetime(addresses, 9.0, end).closed_by == "server"
    # the client resets one past its bytes after the server acknowledged its lost FIN
    end, life = run([(1, 0x10, 5200, 1101, b""), (0, 0x14, 1101, 5200, b"")])
    assert end == "reset" and (life.flows[0].end_frame, life.flows[0].reset) == (10, True)
    # near misses: new bytes after the ACK (it was a byte), an ACK two past (a lost byte and
    # its FIN), an ACK one past that nobody follows with a close
    for steps in ([(1, 0x10, 5200, 1101, b""), (0, 0x10, 1100, 5200, b"x"),
                   (1, 0x11, 5200, 1101, b"")],
                  [(1, 0x10, 5200, 1102, b""), (1, 0x11, 5200, 1102, b"")],
                  [(1, 0x10, 5200, 1101, b""), (1, 0x10, 5200, 1101, b"y")]):
        end, life = run(steps)  # type: ignore[arg-type]
        assert not life.flows[0].end and not life.flows[0].lost
        assert life.lifetime(addresses, 9.0, "end of capture").how == "open"


@pytest.mark.parametrize("compiled", [True, False])
def test_a_lost_fin_acknowledged_in_the_watch_ends_the_life_there(tmp_path: Path,
                                                                  compiled: bool) -> None:
    """The client's FIN lost within the watch window, the server's ACK of it seen there
    (`start_life` carries that proof), the server still sending after the watch and closing
    8 s later: the client closed first, when the whole capture says, not at the server's
    FIN. The near miss: the same conversation whole."""
    from tests.builder import Conversation, websocket_response
    from tests.test_checks import ws_request

    def conversation() -> tuple[Conversation, list[int]]:
        conv = Conversation(client=("10.0.0.1", 30001), server=("10.0.0.2", 80),
                            start=1_700_000_000.0)
        conv.handshake()
        conv.client(ws_request())
        conv.server(websocket_response(), delay=0.002)
        conv.client_ws_frame(Opcode.TEXT, b"c" * 50, delay=0.5)
        fin = conv.client_fin(0.5)
        conv.server_ack(0.001)  # one past the client's bytes: the lost FIN's proof
        conv.server_ack(1.5)  # past the watch's deadline: the sweep ends the watch
        for _ in range(3):
            conv.server_ws_frame(Opcode.TEXT, b"s" * 50, delay=2.0)
        conv.server_fin(2.0)
        return conv, fin

    ends = []
    for lose in (False, True):
        conv, fin = conversation()
        path = tmp_path / f"lost-{lose}.pcap"
        write_pcap(path, [conv], drop=fin if lose else [])
        run = Analysis(lifetimes=True, compiled=compiled)
        # a sweep every 2 segments ends the watch at its deadline (`on_tick`), before the
        # server's next bytes: they would wait for the number they acknowledge (`_unseen`)
        run._reassembler._sweep_every = run._reassembler._until_sweep = 2
        events = [*run.feed_records(read_records([str(path)], [])), *run.finish()]
        [end] = [e for e in events if isinstance(e, Ended)]
        ends.append(end)
    whole, lossy = ends
    assert whole.lifetime.closed_by == "client" and whole.lifetime.how == "fin"
    assert (lossy.verdict, lossy.findings, lossy.lifetime.closed_by, lossy.lifetime.how) == (
        whole.verdict, whole.findings, "client", "fin")
    assert abs(lossy.lifetime.duration_s - whole.lifetime.duration_s) < 0.01  # not 6 s later
