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

import pytest

from analyzer.exchange.switch import ObservationWindow, SwitchWatch, switch_watch
from analyzer.websocket.frames import WsFrameParser, frame_parser
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
