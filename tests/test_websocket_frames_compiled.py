"""The compiled WebSocket frame parser (`_fastpath.CompiledFrameParser`, decode/_ws_frames.pxi)
against its plain twin `WsFrameParser`: the same frames and the same state (offset, frames
seen, stopped, room) after every piece, whatever the frames (masked or not, every length form,
reserved bits and opcodes, junk), the pieces, the frame limit, and the payload bytes passed
unread (`pass_bytes`). Real captures go both ways in tests/test_follow.py."""

from __future__ import annotations

import random

import pytest

from analyzer.websocket.frames import WsFrameParser, frame_parser
from tests.test_websocket_frames import build

compiled = frame_parser(True)
pytestmark = pytest.mark.skipif(compiled is WsFrameParser,
                                reason="the compiled module is not built")


def _stream(rng: random.Random) -> bytes:
    parts = []
    for _ in range(rng.randrange(0, 8)):
        kind = rng.randrange(6)
        if kind == 0:  # junk: any header at all
            parts.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 20))))
            continue
        size = rng.choice([0, 1, 3, 4, 5, 124, 125, 126, 127, 200, 65535, 65536, 70000])
        payload = bytes(rng.randrange(256) for _ in range(min(size, 300))) + b"\x5a" * max(
            0, size - 300)
        mask = bytes(rng.randrange(256) for _ in range(4)) if rng.random() < 0.5 else None
        length_bytes = rng.choice([None, None, 2, 8]) if size < 65536 else rng.choice([None, 8])
        parts.append(build(payload, opcode=rng.randrange(16), fin=rng.random() < 0.8,
                           rsv=rng.randrange(8) if rng.random() < 0.2 else 0, mask=mask,
                           length_bytes=length_bytes))
    return b"".join(parts)


def _state(parser: object) -> tuple[object, ...]:
    return (parser.offset, parser.frames_seen, parser.stopped, parser.room())  # type: ignore[attr-defined]


def test_the_compiled_parser_gives_what_the_plain_one_gives() -> None:
    rng = random.Random(6455)
    for _ in range(1500):
        data = _stream(rng)
        limit = rng.choice([0, 1, 2, 3, 16, 10_000])
        plain, fast = WsFrameParser(max_frames=limit), compiled(max_frames=limit)
        pos = 0
        while pos < len(data):
            step = rng.choice([1, 2, 3, 7, 100, 5000, len(data)])
            piece = data[pos:pos + step]
            if rng.random() < 0.1:
                piece = bytearray(piece)  # the tracker may hand a bytearray on
            assert fast.feed(piece) == plain.feed(piece)
            pos += len(piece)
            assert _state(fast) == _state(plain)
            room = plain.room()
            if room and rng.random() < 0.5:  # payload bytes that go by unread (tls/passing.py)
                count = rng.randrange(room)
                plain.pass_bytes(count)
                fast.pass_bytes(count)
                pos += count
                assert _state(fast) == _state(plain)
        assert fast.flush() == plain.flush()
        assert _state(fast) == _state(plain)
        assert fast.feed(b"") == plain.feed(b"") == []
