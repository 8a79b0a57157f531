"""The compiled watch of a WebSocket switch (`_fastpath.CompiledSwitchWatch`,
decode/_switch_watch.pxi) against its plain twin `SwitchWatch`: the same answers after every
segment (window full, client seen, room) and the same `AfterSwitch` at the end, whatever the
frames, the pieces, which side speaks, the bytes sent early, the holes and the payload bytes
passed unread. Real captures go both ways in tests/test_follow.py (a run without the compiled
module uses `SwitchWatch` for every switch)."""

from __future__ import annotations

import dataclasses
import pickle
import random
from pathlib import Path

import pytest

from analyzer.checks.after_switch import _unanswered_ping, websocket_frame_findings
from analyzer.exchange.switch import ObservationWindow, SwitchWatch, switch_watch
from analyzer.pipeline import Analysis
from analyzer.source import read_records
from analyzer.verdict import Diagnosis
from analyzer.websocket.frames import Opcode, WsFrameParser, frame_parser
from tests.test_websocket_frames import build
from tests.test_websocket_frames_compiled import _stream

compiled = frame_parser(True)
pytestmark = pytest.mark.skipif(compiled is WsFrameParser,
                                reason="the compiled module is not built")


def _state(watch: SwitchWatch) -> tuple[object, ...]:
    return (watch.client_seen, watch.room(True), watch.room(False), list(watch.last_seen),
            watch.complete, watch.deadline, watch.switch_time, watch.websocket,
            watch.h2_status)


def test_the_run_picks_the_compiled_watch_only_for_a_websocket_switch() -> None:
    window = ObservationWindow()
    assert type(switch_watch(1.0, 1.5, True, window, False, compiled)) is not SwitchWatch
    assert type(switch_watch(1.0, 1.5, True, window, False, WsFrameParser)) is SwitchWatch
    assert type(switch_watch(1.0, 1.5, False, window, False, compiled)) is SwitchWatch
    assert type(switch_watch(1.0, 1.5, True, window, True, compiled)) is SwitchWatch


def test_the_compiled_watch_gives_what_the_plain_one_gives() -> None:
    rng = random.Random(7692)
    for _ in range(600):
        window = ObservationWindow(seconds=rng.choice([0.5, 2.0]),
                                   frames=rng.choice([0, 1, 2, 16]))
        start = rng.choice([0, 1, 1700000000.25])
        plain = SwitchWatch(start, start + 0.5, True, window, False, WsFrameParser)
        fast = switch_watch(start, start + 0.5, True, window, False, compiled)
        assert type(fast) is not SwitchWatch
        assert _state(fast) == _state(plain)
        streams = [_stream(rng), _stream(rng)]
        for _ in range(rng.randrange(3)):  # client bytes before the 101
            length, frame = rng.randrange(1, 50), rng.randrange(1, 9)
            plain.early(length, frame)
            fast.early(length, frame)
        frame, time = 10, start + 0.5
        while any(streams):
            side = rng.choice([s for s in (0, 1) if streams[s]])
            client = side == 0
            frame += 1
            time += rng.random() / 10
            if rng.random() < 0.03:  # a hole in that side's bytes
                plain.lost(client, frame, time)
                fast.lost(client, frame, time)
                streams[side] = b""
                continue
            step = rng.choice([1, 2, 5, 100, 400, 5000])
            piece, streams[side] = streams[side][:step], streams[side][step:]
            if rng.random() < 0.1:
                piece = bytearray(piece)  # type: ignore[assignment]
            assert fast.observe(client, piece, frame, time) == plain.observe(
                client, piece, frame, time)
            assert _state(fast) == _state(plain)
            room = plain.room(client)
            if room and rng.random() < 0.5:  # payload bytes that go by unread (tls/passing.py)
                count = min(rng.randrange(room), len(streams[side]))
                plain.pass_bytes(client, count)
                fast.pass_bytes(client, count)
                streams[side] = streams[side][count:]
                assert _state(fast) == _state(plain)
        end = time + 1
        assert fast.result(end) == plain.result(end)
        assert repr(fast.result(end)) == repr(plain.result(end))  # int and float alike
        # made through the slots (`result`, `_tcp_event`): the same value in every way
        made = fast.result(end)
        assert hash(made) == hash(plain.result(end))
        assert pickle.loads(pickle.dumps(made)) == plain.result(end)
        assert dataclasses.replace(made, complete=made.complete) == plain.result(end)


def test_both_watches_list_the_frames_the_rules_read() -> None:
    """`AfterSwitch.looked`: every frame but the usual ones (`usual_frame`: a data frame,
    masked as its side must mask, RSV 0, its length in the fewest bytes, text in ASCII), in
    order, from the compiled watch as from the plain one; each condition alone makes a frame
    one to read."""
    mask = b"\x01\x02\x03\x04"
    client = [  # (frame, read by the rules)
        (build(b"hello", opcode=Opcode.TEXT, mask=mask), False),
        (build(b"x" * 300, opcode=Opcode.BINARY, mask=mask), False),  # 16-bit length: fewest
        (build("héllo".encode(), opcode=Opcode.TEXT, mask=mask), True),  # UTF-8, not ASCII
        (build(b"hello, world, again", opcode=Opcode.TEXT, mask=mask), False),
        (build("hello, world, agaín".encode(), opcode=Opcode.TEXT, mask=mask), True),
        (build("hello, wörld, again".encode(), opcode=Opcode.TEXT, mask=mask), True),
        (build("héllo".encode(), opcode=Opcode.BINARY, mask=mask), False),  # binary: any bytes
        (build(b"plain", opcode=Opcode.TEXT), True),  # a client's frame unmasked
        (build(b"x" * 100, opcode=Opcode.BINARY, mask=mask, length_bytes=2), True),
        (build(b"zz", opcode=Opcode.TEXT, mask=mask, rsv=4), True),
        (build(b"", opcode=Opcode.CONTINUATION, mask=mask), False),
        (build(b"", opcode=Opcode.PING, mask=mask), True),
        (build(b"\x03\xe8", opcode=Opcode.CLOSE, mask=mask), True),
    ]
    server = [
        (build(b"world", opcode=Opcode.TEXT), False),
        (build(b"masked", opcode=Opcode.TEXT, mask=mask), True),  # a server's frame masked
        (build(b"x" * 300, opcode=Opcode.BINARY, length_bytes=8), True),  # 64-bit: 16 do
        (build(b"x" * 70000, opcode=Opcode.BINARY), False),  # 64-bit: the fewest
        (build(b"", opcode=11), True),  # a reserved opcode
    ]
    window = ObservationWindow(seconds=2.0, frames=16)
    watches = [SwitchWatch(0.0, 0.5, True, window, False, WsFrameParser),
               switch_watch(0.0, 0.5, True, window, False, compiled)]
    read_by_rules = []  # in the order the watches see the frames
    for n in range(max(len(client), len(server))):
        for side, frames in ((True, client), (False, server)):
            if n < len(frames):
                frame, read = frames[n]
                for watch in watches:
                    watch.observe(side, frame, 10 + n, 1.0 + n / 10)
                read_by_rules.append(read)
    plain, fast = (watch.result(9.0) for watch in watches)
    assert len(plain.frames) == len(read_by_rules)
    assert plain.looked == tuple(i for i, read in enumerate(read_by_rules) if read)
    assert fast == plain


def test_the_frame_rules_read_only_the_frames_that_can_break_them() -> None:
    """What the frame rules (and the unanswered Ping's) find reading the listed frames
    (`looked`) is what they find reading every frame, whatever the frames: a usual frame
    breaks none of them."""
    decided = [d for d in _bundled() if d.attempt.after is not None
               and d.attempt.after.frames]
    assert len(decided) >= 5
    rng = random.Random(6455)
    window = ObservationWindow(seconds=2.0, frames=16)
    for n in range(300):
        watch = SwitchWatch(0.0, 0.5, True, window, False, WsFrameParser)
        for frame, side in enumerate((rng.random() < 0.5 for _ in range(rng.randrange(1, 9))),
                                     start=10):
            watch.observe(side, _stream(rng), frame, 1.0 + frame / 100)
        after = watch.result(9.0)
        attempt = decided[n % len(decided)].attempt
        every = dataclasses.replace(after, looked=tuple(range(len(after.frames))))
        assert (websocket_frame_findings(attempt, after, 2.0)
                == websocket_frame_findings(attempt, every, 2.0))
        end = rng.choice([1.05, 1.5, 9.0])
        assert _unanswered_ping(after, end) == _unanswered_ping(every, end)
    for d in decided:  # and on the real captures' frames
        after = d.attempt.after
        every = dataclasses.replace(after, looked=tuple(range(len(after.frames))))
        assert (websocket_frame_findings(d.attempt, after, 2.0)
                == websocket_frame_findings(d.attempt, every, 2.0))
        end = d.attempt.tcp.end_time
        assert _unanswered_ping(after, end) == _unanswered_ping(every, end)


def _bundled() -> list[Diagnosis]:
    paths = sorted(str(p) for p in (Path(__file__).resolve().parents[1] / "captures").glob(
        "*.pcap*"))
    run = Analysis()
    return [d for d in run.feed_records(read_records(paths, [])) if isinstance(d, Diagnosis)]
