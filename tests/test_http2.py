"""The HTTP/2 reader (analyzer/http2): real frames from the h2 library, fed whole and in pieces."""

from __future__ import annotations

import struct

import h2.config
import h2.connection
import h2.settings
import hpack
import pytest

from analyzer.exchange.first_bytes import H2_PREFACE
from analyzer.http2 import H2Reader
from analyzer.http2.events import (
    Data,
    GoAway,
    H2Event,
    HeaderBlock,
    Ping,
    Preface,
    Problem,
    RstStream,
    Settings,
    WindowUpdate,
)
from analyzer.http2.reader import DATA_PIECE, MAX_HEADER_LIST

CONNECT = [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
           (":path", "/chat"), (":authority", "example.com"), ("sec-websocket-version", "13"),
           ("sec-websocket-protocol", "chat, superchat"), ("origin", "http://example.com")]


def conversation(*, enable_connect: bool = True, data: bytes = b"\x81\x02hi",
                 padding: int = 0) -> tuple[bytes, bytes]:
    """The two directions of a real h2 exchange: extended CONNECT on stream 1, a GET on
    stream 3 answered 404, the WebSocket stream reset with CANCEL, then GOAWAY."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    server.local_settings = h2.settings.Settings(
        client=False,
        initial_values={h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL: int(enable_connect)})
    # the client accepts frames of 64 KiB: long DATA frames come in several pieces
    client.local_settings = h2.settings.Settings(
        client=True, initial_values={h2.settings.SettingCodes.MAX_FRAME_SIZE: 65_536})
    client.initiate_connection()
    server.initiate_connection()
    up, down = bytearray(), bytearray()

    def exchange(to_client: bool = True) -> None:
        c, s = client.data_to_send(), server.data_to_send()
        up.extend(c)
        down.extend(s)
        server.receive_data(c)
        if to_client:  # (h2 would refuse a frame over 16,384 bytes it allowed itself)
            client.receive_data(s)

    exchange()
    exchange()
    if enable_connect:
        client.send_headers(1, CONNECT)
    else:  # h2 refuses :protocol without the setting: encode the same block by hand
        client.send_headers(1, [h for h in CONNECT if h[0] != ":protocol"])
    client.send_headers(3, [(":method", "GET"), (":scheme", "http"), (":path", "/x"),
                            (":authority", "example.com")], end_stream=True)
    exchange()
    server.send_headers(1, [(":status", "200"), ("sec-websocket-protocol", "chat")])
    server.send_data(1, data, pad_length=padding or None)
    server.send_headers(3, [(":status", "404"), ("content-length", "9")])
    server.send_data(3, b"not found", end_stream=True)
    server.ping(b"12345678")
    exchange(to_client=False)
    client.increment_flow_control_window(1000)
    client.reset_stream(1, 8)
    client.close_connection()
    exchange()
    return bytes(up), bytes(down)


def read(up: bytes, down: bytes, pieces: int | None = None) -> list[H2Event]:
    """Events of both directions, each fed whole or in ``pieces``-byte parts (frame 1 for the
    client's bytes, 2 for the server's), then ended."""
    reader = H2Reader()
    events: list[H2Event] = []
    for side, data in ((0, up), (1, down)):
        step = pieces or len(data) or 1
        for i in range(0, len(data), step):
            events += reader.feed(side, data[i : i + step], side + 1, float(side))
        events += reader.end(side, side + 1, float(side))
    return events


def test_a_real_extended_connect_exchange() -> None:
    events = read(*conversation())
    assert isinstance(events[0], Preface)
    settings = [e for e in events if isinstance(e, Settings) and not e.ack]
    assert (8, 1) in settings[1].values  # the server enabled extended CONNECT (RFC 8441 §3)
    blocks = [e for e in events if isinstance(e, HeaderBlock)]
    assert [(b.side, b.stream_id) for b in blocks] == [(0, 1), (0, 3), (1, 1), (1, 3)]
    assert blocks[0].fields == tuple(CONNECT)
    assert blocks[1].end_stream and not blocks[0].end_stream
    assert blocks[2].fields == ((":status", "200"), ("sec-websocket-protocol", "chat"))
    data = [e for e in events if isinstance(e, Data)]
    assert [(d.stream_id, d.data, d.end_stream) for d in data] == [
        (1, b"\x81\x02hi", False), (3, b"not found", True)]
    assert [(e.stream_id, e.code) for e in events if isinstance(e, RstStream)] == [(1, 8)]
    [goaway] = [e for e in events if isinstance(e, GoAway)]
    assert goaway.side == 0 and goaway.code == 0
    assert any(isinstance(e, Ping) for e in events)
    assert any(isinstance(e, WindowUpdate) for e in events)
    assert not [e for e in events if isinstance(e, Problem)]


@pytest.mark.parametrize("pieces", [1, 2, 7, 9, 100])
def test_the_same_events_however_the_bytes_are_cut(pieces: int) -> None:
    up, down = conversation(padding=5)
    assert read(up, down, pieces) == read(up, down)


def test_frame_numbers_of_first_and_last_byte() -> None:
    up, _ = conversation()
    reader = H2Reader()
    events = reader.feed(0, up[:30], 10, 1.0) + reader.feed(0, up[30:], 11, 2.0)
    settings = events[1]  # starts at byte 24, its body ends after byte 30
    assert isinstance(settings, Settings)
    assert (settings.first_frame, settings.last_frame, settings.time) == (10, 11, 1.0)


def test_long_data_is_passed_on_in_fixed_pieces() -> None:
    payload = bytes(range(256)) * 200  # 51,200 bytes in one DATA frame (the client allows it)
    up, down = conversation(data=payload)
    for pieces in (None, 1000):
        data = [e for e in read(up, down, pieces) if isinstance(e, Data) and e.stream_id == 1]
        assert b"".join(d.data for d in data) == payload
        assert [len(d.data) for d in data] == [DATA_PIECE] * 3 + [len(payload) - 3 * DATA_PIECE]


def _frame(kind: int, flags: int, stream: int, body: bytes) -> bytes:
    return struct.pack(">HBBBL", len(body) >> 8, len(body) & 0xFF, kind, flags, stream) + body


def _problems(events: list[H2Event]) -> list[str]:
    return [e.kind for e in events if isinstance(e, Problem)]


def test_truncated_frame() -> None:
    up, _ = conversation()
    reader = H2Reader()
    events = reader.feed(0, up[:40], 1, 0.0) + reader.end(0, 2, 1.0)
    assert _problems(events) == ["truncated"]


def test_frame_length_past_the_limit_stops_the_direction() -> None:
    big = struct.pack(">HBBBL", 0x0100, 0x00, 1, 0x4, 1)  # HEADERS of 65,536 bytes
    reader = H2Reader()
    events = reader.feed(0, H2_PREFACE + big + b"\0" * 70_000, 1, 0.0)
    assert _problems(events) == ["frame_too_large"]
    assert reader.feed(0, b"\0" * 100, 2, 0.0) == []  # nothing more is read


def test_hpack_unknown_index_is_a_problem_and_later_blocks_are_not_decoded() -> None:
    bad = _frame(1, 0x5, 1, b"\xfe")  # indexed field 126: no such entry (RFC 7541 §2.3.3)
    good = _frame(1, 0x5, 3, hpack.Encoder().encode([(":method", "GET")]))
    reader = H2Reader()
    events = reader.feed(0, H2_PREFACE + bad + good, 1, 0.0)
    assert _problems(events) == ["hpack_error"]
    blocks = [e for e in events if isinstance(e, HeaderBlock)]
    assert [(b.stream_id, b.decoded, b.fields) for b in blocks] == [(1, False, ()), (3, False, ())]


def test_huge_header_list_is_a_problem_with_bounded_memory() -> None:
    encoder = hpack.Encoder()
    fields = [(f"x-{i}", "v" * 100) for i in range(MAX_HEADER_LIST // 100)]
    block = encoder.encode(fields)
    frames = b"".join(  # HEADERS then CONTINUATIONs of 16,000 bytes
        _frame(1 if i == 0 else 9, 0x4 if i + 16_000 >= len(block) else 0, 1,
               block[i : i + 16_000]) for i in range(0, len(block), 16_000))
    events = H2Reader().feed(0, H2_PREFACE + frames, 1, 0.0)
    assert _problems(events) == ["header_list_too_large"]


def test_continuation_expected() -> None:
    first = _frame(1, 0x0, 1, hpack.Encoder().encode([(":method", "GET")]))  # no END_HEADERS
    events = H2Reader().feed(0, H2_PREFACE + first + _frame(6, 0, 0, b"\0" * 8), 1, 0.0)
    assert _problems(events) == ["continuation_expected"]


def test_no_preface() -> None:
    events = H2Reader().feed(0, b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", 1, 0.0)
    assert _problems(events) == ["no_preface"]


def test_malformed_frames_are_problems_not_tracebacks() -> None:
    settings_on_stream = _frame(4, 0, 1, b"")  # SETTINGS must be on stream 0
    odd_settings = _frame(4, 0, 0, b"\0\0\0")  # not a multiple of 6
    bad_padding = _frame(0, 0x8, 1, b"\x09abc")  # pad length 9 in a 4-byte frame
    events = H2Reader().feed(1, settings_on_stream + odd_settings + bad_padding, 1, 0.0)
    assert _problems(events) == ["frame_malformed", "frame_malformed", "padding_invalid"]


def test_a_sink_gets_the_same_events_and_declined_data_is_counted_not_copied() -> None:
    up, down = conversation(data=bytes(range(256)) * 200)
    sunk: list[H2Event] = []
    reader = H2Reader(sink=sunk.append)
    for side, data in ((0, up), (1, down)):
        assert reader.feed(side, data, side + 1, float(side)) == []
        assert reader.end(side, side + 1, float(side)) == []
    assert sunk == read(up, down)
    declined = H2Reader(keep_data=lambda side, stream: stream != 1)
    events = declined.feed(0, up, 1, 0.0) + declined.feed(1, down, 2, 1.0)
    data = [e for e in events if isinstance(e, Data)]
    assert [(d.stream_id, d.data, d.skipped) for d in data] == [
        (1, b"", 51_200), (3, b"not found", 0)]
