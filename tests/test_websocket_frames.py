"""Tests for analyzer.websocket.frames and the Sec-WebSocket-Accept computation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analyzer.websocket.frames import (
    NEVER_ON_WIRE,
    PAYLOAD_PREFIX_LIMIT,
    CloseCode,
    CloseInfo,
    Opcode,
    WsFrame,
    WsFrameParser,
    describe,
    is_control,
    may_be_sent,
    parse_close,
)
from analyzer.websocket.handshake import accept_for_key

MASK = bytes.fromhex("37fa213d")  # the masking key of the RFC 6455 §5.7 examples


def build(
    payload: bytes,
    *,
    opcode: int = Opcode.BINARY,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = None,
    length_bytes: int | None = None,
    declared: int | None = None,
) -> bytes:
    """One frame on the wire; ``length_bytes`` forces the 0/2/8-byte extended length form."""
    length = len(payload) if declared is None else declared
    if length_bytes is None:
        length_bytes = 0 if length < 126 else 2 if length < 65536 else 8
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    mask_bit = 0x80 if mask is not None else 0
    if length_bytes == 0:
        head = bytes([first, mask_bit | length])
    else:
        head = bytes([first, mask_bit | (126 if length_bytes == 2 else 127)])
        head += length.to_bytes(length_bytes, "big")
    if mask is not None:
        head += mask
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + payload


def feed_pieces(pieces: list[bytes] | list[bytearray], **kwargs: int) -> list[WsFrame]:
    parser = WsFrameParser(**kwargs)
    frames: list[WsFrame] = []
    for piece in pieces:
        frames.extend(parser.feed(piece))
    return frames


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


def one_byte_at_a_time(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


# RFC 6455 §5.7 examples, byte for byte.
RFC_EXAMPLES = [
    (  # A single-frame unmasked text message
        bytes.fromhex("810548656c6c6f"),
        [WsFrame(True, 0, Opcode.TEXT, False, 5, 2, b"Hello", 0)],
    ),
    (  # A single-frame masked text message
        bytes.fromhex("818537fa213d7f9f4d5158"),
        [WsFrame(True, 0, Opcode.TEXT, True, 5, 6, b"Hello", 0)],
    ),
    (  # A fragmented unmasked text message
        bytes.fromhex("010348656c") + bytes.fromhex("80026c6f"),
        [
            WsFrame(False, 0, Opcode.TEXT, False, 3, 2, b"Hel", 0),
            WsFrame(True, 0, Opcode.CONTINUATION, False, 2, 2, b"lo", 5),
        ],
    ),
    (  # Unmasked Ping request and masked Ping response (a Pong)
        bytes.fromhex("890548656c6c6f") + bytes.fromhex("8a8537fa213d7f9f4d5158"),
        [
            WsFrame(True, 0, Opcode.PING, False, 5, 2, b"Hello", 0),
            WsFrame(True, 0, Opcode.PONG, True, 5, 6, b"Hello", 7),
        ],
    ),
    (  # 256 bytes binary message in a single unmasked frame
        bytes.fromhex("827e0100") + bytes(256),
        [WsFrame(True, 0, Opcode.BINARY, False, 256, 4, bytes(125), 0)],
    ),
    (  # 64KiB binary message in a single unmasked frame
        bytes.fromhex("827f0000000000010000") + bytes(65536),
        [WsFrame(True, 0, Opcode.BINARY, False, 65536, 10, bytes(125), 0)],
    ),
]


@pytest.mark.parametrize(("data", "expected"), RFC_EXAMPLES)
def test_rfc6455_examples(data: bytes, expected: list[WsFrame]) -> None:
    assert feed_pieces([data]) == expected
    assert feed_pieces(one_byte_at_a_time(data)) == expected
    assert feed_pieces([bytearray(data)]) == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # Reserved opcodes, RSV bits, a masked server frame: all still frames, judged elsewhere.
        (build(b"x", opcode=0x3), WsFrame(True, 0, 3, False, 1, 2, b"x", 0)),
        (build(b"", opcode=0xB, fin=False), WsFrame(False, 0, 0xB, False, 0, 2, b"", 0)),
        (build(b"zz", rsv=4), WsFrame(True, 4, Opcode.BINARY, False, 2, 2, b"zz", 0)),
        (build(b"zz", rsv=7), WsFrame(True, 7, Opcode.BINARY, False, 2, 2, b"zz", 0)),
        # A non-minimal length encoding keeps its real header length.
        (build(b"abc", length_bytes=2), WsFrame(True, 0, 2, False, 3, 4, b"abc", 0)),
        (build(b"abc", length_bytes=8, mask=MASK), WsFrame(True, 0, 2, True, 3, 14, b"abc", 0)),
        # "the most significant bit MUST be 0": violated, still parsed with the length as sent.
        (
            build(b"p" * 200, length_bytes=8, declared=(1 << 63) + 5),
            WsFrame(True, 0, 2, False, (1 << 63) + 5, 10, b"p" * 125, 0),
        ),
        # A control frame longer than 125 bytes (a violation): its prefix is what is kept.
        (
            build(b"\x03\xe8" + b"r" * 200, opcode=Opcode.CLOSE),
            WsFrame(True, 0, Opcode.CLOSE, False, 202, 4, b"\x03\xe8" + b"r" * 123, 0),
        ),
        (build(b""), WsFrame(True, 0, 2, False, 0, 2, b"", 0)),
        (build(b"", mask=MASK), WsFrame(True, 0, 2, True, 0, 6, b"", 0)),
        # Unmasked bytes that start with zeros, and a length that is no multiple of the key's.
        (
            build(b"\x00\x00\x00\x01\x00", mask=MASK),
            WsFrame(True, 0, 2, True, 5, 6, b"\x00\x00\x00\x01\x00", 0),
        ),
    ],
)
def test_tolerant_frames(data: bytes, expected: WsFrame) -> None:
    assert feed_pieces([data]) == [expected]
    assert feed_pieces(one_byte_at_a_time(data)) == [expected]


frame_specs = st.tuples(
    st.binary(max_size=300),
    st.sampled_from([0, 1, 2, 8, 9, 10, 3, 0xF]),
    st.booleans(),
    st.integers(min_value=0, max_value=7),
    st.one_of(st.none(), st.binary(min_size=4, max_size=4)),
    st.sampled_from([None, 2, 8]),
)


def _expected(specs: list[tuple[bytes, int, bool, int, bytes | None, int | None]]) -> list[WsFrame]:
    frames, offset = [], 0
    for payload, opcode, fin, rsv, mask, length_bytes in specs:
        wire = build(payload, opcode=opcode, fin=fin, rsv=rsv, mask=mask, length_bytes=length_bytes)
        header = len(wire) - len(payload)
        prefix = payload[:PAYLOAD_PREFIX_LIMIT]
        frames.append(
            WsFrame(fin, rsv, opcode, mask is not None, len(payload), header, prefix, offset)
        )
        offset += len(wire)
    return frames


@given(
    st.lists(frame_specs, max_size=6),
    st.lists(st.integers(min_value=0, max_value=3000), max_size=15),
)
def test_any_split_gives_the_same_frames(
    specs: list[tuple[bytes, int, bool, int, bytes | None, int | None]], cuts: list[int]
) -> None:
    data = b"".join(
        build(p, opcode=o, fin=f, rsv=r, mask=m, length_bytes=lb) for p, o, f, r, m, lb in specs
    )
    expected = _expected(specs)
    assert feed_pieces([data]) == expected
    assert feed_pieces(split(data, cuts)) == expected


def test_one_byte_at_a_time_mixed_stream() -> None:
    data = b"".join(
        [
            build(b"Hello", opcode=Opcode.TEXT, mask=MASK),
            build(b"\x00" * 70000, mask=MASK),
            build(b"\x03\xe9bye", opcode=Opcode.CLOSE, mask=MASK),
        ]
    )
    frames = feed_pieces(one_byte_at_a_time(data))
    assert feed_pieces([data]) == frames
    assert [f.opcode for f in frames] == [Opcode.TEXT, Opcode.BINARY, Opcode.CLOSE]
    assert [f.offset for f in frames] == [0, 11, 11 + 14 + 70000]
    assert frames[-1].end == len(data)
    assert parse_close(frames[-1].payload_prefix) == CloseInfo(1001, "bye")


def test_memory_stays_bounded_and_offsets_count_skipped_bytes() -> None:
    parser = WsFrameParser()
    big = build(b"\xab" * 1_000_000, mask=MASK) + build(b"end", opcode=Opcode.TEXT)
    frames: list[WsFrame] = []
    for i in range(0, len(big), 1000):
        frames.extend(parser.feed(big[i : i + 1000]))
        assert len(parser._header) <= 14
        assert len(parser._prefix) <= PAYLOAD_PREFIX_LIMIT
    assert [f.length for f in frames] == [1_000_000, 3]
    assert frames[0].payload_prefix == b"\xab" * 125
    assert frames[1].offset == 14 + 1_000_000
    assert parser.offset == len(big)


def test_frame_is_reported_before_its_payload_ends() -> None:
    # A capture that stops inside a large payload still shows the frame.
    data = build(b"q" * 5000)
    parser = WsFrameParser()
    frames = parser.feed(data[:200])
    assert len(frames) == 1 and frames[0].end == 5004 and parser.offset == 200


def test_flush_reports_a_frame_whose_kept_payload_was_cut() -> None:
    parser = WsFrameParser()
    assert parser.feed(build(b"\x03\xe8going", opcode=Opcode.CLOSE)[:5]) == []
    assert parser.flush() == [WsFrame(True, 0, Opcode.CLOSE, False, 7, 2, b"\x03\xe8g", 0)]
    assert parser.flush() == []
    header_only = WsFrameParser()
    assert header_only.feed(b"\x82") == [] and header_only.flush() == []


def test_max_frames_stops_parsing() -> None:
    data = build(b"a") * 5
    parser = WsFrameParser(max_frames=3)
    assert len(parser.feed(data)) == 3
    assert parser.stopped
    assert parser.feed(data) == []
    assert parser.frames_seen == 3
    assert len(feed_pieces(one_byte_at_a_time(data), max_frames=3)) == 3
    assert feed_pieces([data], max_frames=0) == []


# --- Close frames --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"", CloseInfo(None, "")),
        (b"\x03", CloseInfo(None, "", ("close_payload_one_byte",))),
        (b"\x03\xe8", CloseInfo(1000, "")),
        (b"\x03\xe9Going away", CloseInfo(1001, "Going away")),
        (b"\x03\xf0h\xc3\xa9", CloseInfo(1008, "h\xe9")),  # UTF-8 reason
        (b"\x03\xf0bad \xff", CloseInfo(1008, "bad \ufffd", ("close_reason_invalid_utf8",))),
        (
            b"\x03\xf0\xed\xa0\x80",
            CloseInfo(1008, "\ufffd\ufffd\ufffd", ("close_reason_invalid_utf8",)),
        ),
        (b"\x03\xee", CloseInfo(1006, "", ("close_code_never_on_wire",))),
        (b"\x03\xed", CloseInfo(1005, "", ("close_code_never_on_wire",))),
        (b"\x03\xf7", CloseInfo(1015, "", ("close_code_never_on_wire",))),
        (b"\x03\xec", CloseInfo(1004, "", ("close_code_invalid",))),
        (b"\x00\x00", CloseInfo(0, "", ("close_code_invalid",))),
        (b"\x03\xe7", CloseInfo(999, "", ("close_code_invalid",))),
        (b"\x07\xd0", CloseInfo(2000, "", ("close_code_invalid",))),
        (b"\x13\x88", CloseInfo(5000, "", ("close_code_invalid",))),
        (b"\x0b\xb8", CloseInfo(3000, "")),
        (b"\x0f\xa0custom", CloseInfo(4000, "custom")),
        (b"\x03\xf5", CloseInfo(1013, "")),
    ],
)
def test_parse_close(payload: bytes, expected: CloseInfo) -> None:
    assert parse_close(payload) == expected


def test_close_codes_are_documented() -> None:
    assert [int(c) for c in CloseCode] == list(range(1000, 1016))
    for code in CloseCode:
        assert code.meaning and describe(code) == code.meaning
    assert {int(c) for c in NEVER_ON_WIRE} == {1005, 1006, 1015}
    assert CloseCode(1002) is CloseCode.PROTOCOL_ERROR
    assert CloseCode.PROTOCOL_ERROR == 1002


@pytest.mark.parametrize(
    ("code", "words", "sendable"),
    [
        (0, "invalid", False),
        (999, "invalid", False),
        (1000, "normal", True),
        (1006, "never sent", False),
        (1004, "reserved", False),
        (1016, "unassigned", False),
        (2999, "unassigned", False),
        (3000, "IANA", True),
        (3999, "IANA", True),
        (4000, "private", True),
        (4999, "private", True),
        (5000, "invalid", False),
        (65535, "invalid", False),
    ],
)
def test_describe_and_may_be_sent(code: int, words: str, sendable: bool) -> None:
    assert words in describe(code)
    assert may_be_sent(code) is sendable


def test_opcodes() -> None:
    assert [int(o) for o in Opcode] == [0, 1, 2, 8, 9, 10]
    assert [o for o in range(16) if is_control(o)] == list(range(8, 16))


# --- Sec-WebSocket-Accept ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "accept"),
    [
        ("dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),  # RFC 6455 §1.3
        ("  dGhlIHNhbXBsZSBub25jZQ==\t", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        ("x3JJHMbDL1EzLkh9GBhXDw==", "HSmrc0sMlYUkAGmm5OPpG2HaGWk="),  # widely quoted example
    ],
)
def test_accept_for_key(key: str, accept: str) -> None:
    assert accept_for_key(key) == accept


def test_accept_differs_for_a_different_key() -> None:
    assert accept_for_key("dGhlIHNhbXBsZSBub25jZR==") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@given(st.text(alphabet=st.characters(max_codepoint=255), max_size=40))
def test_accept_for_key_equals_hashlib_sha1_of_key_and_guid(key: str) -> None:
    """`accept_for_key` hashes with CPython's own SHA-1 module when there is one (hashlib's
    would load OpenSSL at start-up): the value is hashlib's, for any latin-1 key."""
    import base64
    import hashlib

    from analyzer.websocket.handshake import WEBSOCKET_GUID

    material = (key.strip(" \t\r\n\f\v") + WEBSOCKET_GUID).encode("latin-1")
    expected = base64.b64encode(hashlib.sha1(material).digest()).decode("ascii")
    assert accept_for_key(key) == expected


def test_close_meanings_remembered_by_the_checks_equal_describe() -> None:
    """checks/after_switch.py remembers `describe` per code: the same text for every code."""
    from analyzer.checks.after_switch import _meaning
    from analyzer.websocket.frames import describe

    for _ in range(2):  # the second round reads what the first remembered
        for code in (*range(0, 5000, 7), 1000, 1001, 1005, 1006, 1011, 1015, 3000, 4999, 65535):
            assert _meaning(code) == describe(code)
