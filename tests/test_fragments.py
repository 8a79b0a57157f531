"""Tests for analyzer.decode.fragments: IP fragments put together (RFC 791, RFC 8200 §4.5),
alone and in the pipeline, with what could not be put together counted."""

from __future__ import annotations

import itertools
import random
import struct
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.decode import Decoder, Segment
from analyzer.decode.fragments import (
    MAX_DATAGRAM,
    Fragments,
    Piece,
    ipv4_piece,
    ipv6_piece,
)
from analyzer.decode.ip import ipv6 as ipv6_header
from analyzer.pipeline import Analysis
from analyzer.source import Frame, read_captures, read_records
from analyzer.verdict import Diagnosis
from tests.builder import (
    DEFAULT_WS_KEY,
    Conversation,
    Opcode,
    websocket_request,
    websocket_response,
)
from tests.builder import fragment_frame as fragment

# --- fragmented captures (Ethernet, as the builder writes them) ------------------------------


def write(path: Path, packets: Iterable[tuple[float, bytes]]) -> Path:
    with path.open("wb") as f:
        writer = dpkt.pcap.Writer(f, linktype=1)
        for when, data in packets:
            writer.writepkt(data, ts=when)
    return path


def handshake(client: tuple[str, int] = ("10.0.0.1", 50000),
              server: tuple[str, int] = ("10.0.0.2", 8080), target: str = "/ws") -> Conversation:
    conv = Conversation(client=client, server=server)
    conv.handshake()
    conv.client(websocket_request("example.com", target))
    conv.server(websocket_response(DEFAULT_WS_KEY), delay=0.002)
    conv.client_ws_frame(Opcode.TEXT, "hello")
    conv.client_ws_close(1000, delay=0.1)
    conv.server_ws_close(1000)
    conv.client_fin()
    conv.server_fin()
    return conv


def fragmented(conv: Conversation, size: int = 64, order: str = "in order"
               ) -> list[tuple[float, bytes]]:
    out = []
    for when, frame in conv.packets():
        pieces = fragment(frame, size)
        if order == "reversed":
            pieces.reverse()
        elif order == "duplicated" and len(pieces) > 1:  # (fragments only: not TCP's copies)
            pieces = [p for p in pieces for _ in (0, 1)]
        out += [(when, p) for p in pieces]
    return out


def outcome(diagnoses: Sequence[Diagnosis]) -> list[tuple[object, ...]]:
    """What a capture's attempts say, frame numbers aside (fragments add frames)."""
    return [(d.attempt.request_head.target if d.attempt.request_head else None,
             d.attempt.response_head.status if d.attempt.response_head else None,
             d.verdict.value, tuple(f.check for f in d.findings)) for d in diagnoses]


def run(path: Path) -> tuple[list[Diagnosis], Counter[str], int]:
    """Diagnoses, frames without TCP and TCP segments of a capture, read frame by frame and
    by records with and without the compiled fast path: all three must agree."""
    slow = Analysis()
    out = [d for f in read_captures([str(path)], []) for d in slow.feed(f)] + slow.finish()
    found = [d for d in out if isinstance(d, Diagnosis)]
    for compiled in (True, False):
        fast = Analysis(compiled=compiled)
        fast_out = list(fast.feed_records(read_records([str(path)], []))) + fast.finish()
        assert [(d.attempt.first_frame, *o) for d, o in zip(
            fast_out, outcome(fast_out), strict=True)] == [  # type: ignore[arg-type]
            (d.attempt.first_frame, *o) for d, o in zip(found, outcome(found), strict=True)]
        assert fast.stats.skipped == slow.stats.skipped, compiled
        assert fast.stats.tcp_segments == slow.stats.tcp_segments, compiled
    return found, slow.stats.skipped, slow.stats.tcp_segments


WHOLE = [("/ws", 101, "succeeded", ("ws_closed_normally",))]


# --- whole handshakes, fragmented -------------------------------------------------------------


@pytest.mark.parametrize("order", ["in order", "reversed", "duplicated"])
@pytest.mark.parametrize("client", [("10.0.0.1", 50000), ("2001:db8::1", 50000)])
def test_fragmented_handshake_reads_as_the_whole_one(tmp_path: Path, order: str,
                                                      client: tuple[str, int]) -> None:
    server = ("10.0.0.2", 8080) if "." in client[0] else ("2001:db8::2", 8080)
    conv = handshake(client, server)
    whole, skipped_whole, segments = run(write(tmp_path / "whole.pcap", conv.packets()))
    assert outcome(whole) == WHOLE and not skipped_whole
    packets = fragmented(conv, 64, order)
    found, skipped, fragmented_segments = run(write(tmp_path / "frag.pcap", packets))
    assert outcome(found) == WHOLE
    assert fragmented_segments == segments  # one segment per datagram, in its last frame
    version = 4 if "." in client[0] else 6
    # every fragment frame but the completing one is counted as reassembled; a second copy
    # of the completing one starts a datagram that is never completed
    assert set(skipped) <= {f"ipv{version} fragment (reassembled)",
                            f"ipv{version} fragment (incomplete at end)"}
    assert sum(skipped.values()) + segments == len(packets)
    if order != "duplicated":
        assert set(skipped) == {f"ipv{version} fragment (reassembled)"}
    # the request is listed at the frame of the fragment that completed it: in order its
    # last fragment, reversed its first
    request = conv.packets()[3][1]
    pieces = fragment(request, 64)
    completing = {"in order": pieces[-1], "reversed": pieces[0], "duplicated": pieces[-1]}
    start = 34 if version == 4 else 62  # the fragment's bytes (identifications differ)
    assert packets[found[0].attempt.first_frame - 1][1][start:] == completing[order][start:]


def test_two_datagrams_interleaved(tmp_path: Path) -> None:
    """Two connections from the same address whose requests' fragments alternate: told
    apart by their identification."""
    a = handshake(("10.0.0.1", 50000), target="/first").packets()
    b = handshake(("10.0.0.1", 50001), target="/second").packets()
    when = max(a[3][0], b[3][0])
    pieces_a, pieces_b = fragment(a[3][1], 32), fragment(b[3][1], 32)
    assert len(pieces_a) > 3 and len(pieces_b) > 3
    woven = [p for pair in itertools.zip_longest(pieces_a, pieces_b) for p in pair if p]
    rest = sorted(a[4:] + b[4:], key=lambda p: p[0])
    packets = a[:3] + b[:3] + [(when, p) for p in woven] + [(max(t, when), f) for t, f in rest]
    found, skipped, _ = run(write(tmp_path / "two.pcap", packets))
    assert sorted(outcome(found)) == [("/first", 101, "succeeded", ("ws_closed_normally",)),
                                      ("/second", 101, "succeeded", ("ws_closed_normally",))]
    assert skipped == Counter({"ipv4 fragment (reassembled)": len(woven) - 2})


def test_overlapping_fragment_drops_the_datagram(tmp_path: Path) -> None:
    conv = handshake()
    packets = conv.packets()
    request = fragment(packets[3][1], 64)
    # a fragment rewriting bytes 8..72 of the request with other bytes (RFC 5722's attack)
    eth, ip = request[1][:14], bytearray(request[1][14:])
    ip[6:8] = struct.pack("!H", 0x2000 | 1)
    ip[20:] = b"X" * (len(ip) - 20)
    evil = eth + bytes(ip)
    out = [(t, f) for t, f in packets[:3]]
    out += [(packets[3][0], f) for f in (request[0], evil, *request[1:])]
    out += packets[4:]
    found, skipped, _ = run(write(tmp_path / "overlap.pcap", out))
    assert skipped["ipv4 fragment (overlapping)"] == len(request) + 1
    assert all(b"X" not in (d.attempt.request_head.target if d.attempt.request_head
                            else "").encode() for d in found)
    assert not any(d.verdict.value == "succeeded" for d in found)


def test_missing_fragment_is_counted(tmp_path: Path) -> None:
    conv = handshake()
    packets = conv.packets()
    request = fragment(packets[3][1], 64)
    out = packets[:3] + [(packets[3][0], f) for f in request if f is not request[2]]
    out += packets[4:]
    found, skipped, _ = run(write(tmp_path / "missing.pcap", out))
    assert skipped == Counter({"ipv4 fragment (incomplete at end)": len(request) - 1})
    assert all(d.verdict.value != "succeeded" for d in found)
    # the same, with traffic 31 s later: the datagram expired
    later = [(t + 31, f) for t, f in fragmented(handshake(("10.0.0.3", 50000)))]
    found, skipped, _ = run(write(tmp_path / "expired.pcap", out + later))
    assert skipped["ipv4 fragment (expired)"] == len(request) - 1
    assert WHOLE[0] in outcome(found)


# --- the table itself ------------------------------------------------------------------------


def _v4_packet(payload: bytes, ident: int = 7, proto: int = 6) -> bytes:
    return (struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(payload), ident, 0, 64, proto, 0)
            + bytes([10, 0, 0, 1, 10, 0, 0, 2]) + payload)


def _pieces(packet: bytes, cuts: Sequence[int]) -> list[Piece]:
    """The IPv4 `packet` (no options) cut at payload offsets `cuts` (multiples of 8)."""
    payload = packet[20:]
    bounds = [0, *sorted(set(cuts)), len(payload)]
    out = []
    for start, stop in itertools.pairwise(bounds):
        if start == stop:
            continue
        more = 0x2000 if stop < len(payload) else 0
        ip = (packet[:2] + struct.pack("!H", 20 + stop - start) + packet[4:6]
              + struct.pack("!H", more | start >> 3) + packet[8:20] + payload[start:stop])
        piece = ipv4_piece(b"\0" * 14 + ip, 14, 14 + len(ip))
        assert isinstance(piece, Piece), piece
        out.append(piece)
    return out


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(min_size=1, max_size=3000), data=st.data())
def test_any_fragmentation_and_order_gives_the_original(payload: bytes,
                                                        data: st.DataObject) -> None:
    packet = _v4_packet(payload)
    cuts = data.draw(st.lists(st.integers(1, max(1, (len(payload) - 1) // 8)), max_size=40))
    pieces = _pieces(packet, [c * 8 for c in cuts if c * 8 < len(payload)])
    order = data.draw(st.permutations(pieces))
    extra = data.draw(st.lists(st.sampled_from(pieces), max_size=5))  # exact duplicates
    feed = list(order)
    for dup in extra:
        feed.insert(data.draw(st.integers(0, len(feed) - 1)), dup)
    table = Fragments()
    results = [table.add(p, 1.0) for p in feed]
    done = [r for r in results if r is not None]
    # complete exactly once: at the first moment every byte is there
    assert len(done) >= 1 and results.index(done[0]) >= len(pieces) - 1
    whole = done[0]
    assert whole[20:] == payload and whole[2:4] == packet[2:4] and whole[6:8] == b"\0\0"
    assert whole[12:20] == packet[12:20] and whole[9] == packet[9]


@settings(max_examples=100, deadline=None)
@given(payload=st.binary(min_size=60, max_size=1500), size=st.sampled_from([8, 16, 24, 96]),
       seed=st.randoms(use_true_random=False), version=st.sampled_from([4, 6]))
def test_decoded_segment_is_the_whole_frames(payload: bytes, size: int, seed: random.Random,
                                              version: int) -> None:
    """Through the decoder: any order of a datagram's fragments gives the Segment of the
    whole frame, in the frame of the last fragment."""
    client = ("10.0.0.1", 50000) if version == 4 else ("2001:db8::1", 50000)
    server = ("10.0.0.2", 80) if version == 4 else ("2001:db8::2", 80)
    conv = Conversation(client=client, server=server)
    conv.handshake()
    conv.client(payload)
    when, frame = conv.packets()[-1]
    expected = Decoder().decode(Frame(1, when, 1, frame, len(frame)))
    assert isinstance(expected, Segment)
    pieces = fragment(frame, size)
    seed.shuffle(pieces)
    decoder = Decoder()
    got = [decoder.decode(Frame(n, when, 1, p, len(p))) for n, p in enumerate(pieces, 1)]
    assert got[:-1] == [None] * (len(pieces) - 1)
    assert got[-1] == Segment(len(pieces), *[getattr(expected, f) for f in
                                             Segment.__slots__[1:]])
    assert decoder.skipped == Counter({f"ipv{version} fragment (reassembled)": len(pieces) - 1})
    assert len(decoder.fragments) == 0 and decoder.fragments.held == 0


def test_interleaved_datagrams_and_their_keys() -> None:
    a, b = _v4_packet(b"A" * 40, ident=1), _v4_packet(b"B" * 40, ident=2)
    c = _v4_packet(b"C" * 40, ident=1, proto=17)  # same id, other protocol: another datagram
    pa, pb, pc = _pieces(a, [16]), _pieces(b, [16]), _pieces(c, [16])
    table = Fragments()
    assert [table.add(p, 0.0) for p in (pa[0], pb[0], pc[0], pb[1], pc[1], pa[1])] == [
        None, None, None, b, c, a]
    assert len(table) == 0


def test_overlap_drops_the_datagram_and_its_later_fragments() -> None:
    packet = _v4_packet(bytes(range(48)))
    first, second, third = _pieces(packet, [16, 32])
    shifted = Piece(4, first.key, 8, True, b"Z" * 16, first.head)  # overlaps both
    table = Fragments()
    assert table.add(first, 0.0) is None
    assert table.add(shifted, 0.0) is None
    assert table.add(second, 0.0) is None and table.add(third, 0.0) is None
    assert table.held == 0 and table.pending() == Counter({"ipv4 fragment (overlapping)": 4})
    table.add(_pieces(_v4_packet(b"x" * 16, ident=9), [8])[0], 40.0)  # 40 s later
    assert table.counts == Counter({"ipv4 fragment (overlapping)": 4})


@pytest.mark.parametrize("what", ["second end", "byte past the end", "same offset, other bytes"])
def test_other_overlaps(what: str) -> None:
    packet = _v4_packet(bytes(range(48)))
    first, second, last = _pieces(packet, [16, 32])
    if what == "second end":
        other = Piece(4, first.key, 40, False, b"x" * 4, first.head)
    elif what == "byte past the end":
        other = Piece(4, first.key, 48, True, b"x" * 8, first.head)
    else:
        other = Piece(4, first.key, 16, True, b"x" * 16, first.head)
    table = Fragments()
    # (all but the last first: a set of pieces that covers the datagram completes it)
    for piece in (first, other, second, last):
        assert table.add(piece, 0.0) is None
    assert table.pending() == Counter({"ipv4 fragment (overlapping)": 4})


def test_too_large_and_malformed() -> None:
    head = _v4_packet(b"")[:20]
    key = b"\x04" + head[12:20] + b"\x06" + head[4:6]
    table = Fragments()
    assert table.add(Piece(4, key, MAX_DATAGRAM - 20 - 8, False, b"x" * 16, head), 0.0) is None
    assert table.pending() == Counter({"ipv4 fragment (too large)": 1})
    frag = bytearray(_v4_packet(b"x" * 13))
    frag[6:8] = b"\x20\x00"  # MF with 13 bytes: not a multiple of 8
    assert ipv4_piece(bytes(frag), 0, len(frag)) == "ipv4 fragment (malformed)"
    assert ipv4_piece(bytes(frag), 0, len(frag) - 1) == "ipv4 fragment (cut by snaplen)"


@pytest.mark.parametrize("order", ["in order", "reversed"])
def test_a_longer_first_header_past_64_kib_is_too_large(order: str) -> None:
    """The whole datagram gets its first fragment's header: with options (24 bytes) before
    65,515 bytes of payload that the last fragment's 20-byte header allowed, its total
    length would be 65,539 (a struct.error, the run's end, found by the fuzz31 round); it
    is too large, whichever fragment comes first."""
    head = _v4_packet(b"")[:20]
    first_head = bytes([0x46]) + head[1:] + b"\1" * 4  # one word of options
    key = b"\x04" + head[12:20] + b"\x06" + head[4:6]
    pieces = [Piece(4, key, n * 4080, True, b"x" * 4080, first_head if n == 0 else head)
              for n in range(16)]
    pieces.append(Piece(4, key, 16 * 4080, False, b"z" * 235, head))  # ends at 65,515
    if order == "reversed":
        pieces.reverse()
    table = Fragments()
    assert [table.add(piece, 0.0) for piece in pieces] == [None] * 17
    assert table.pending() == Counter({"ipv4 fragment (too large)": 17})
    # (the near miss: 8 bytes less payload fits: 24 + 65,507 bytes)
    pieces = [p for p in pieces if p.more] + [Piece(4, key, 16 * 4080, False, b"z" * 227, head)]
    table = Fragments()
    whole = [table.add(piece, 0.0) for piece in pieces][-1]
    assert whole is not None and len(whole) == 65_531 and whole[:1] == b"\x46"


def test_expiry_counts_by_capture_time() -> None:
    table = Fragments(timeout=30.0)
    first = _pieces(_v4_packet(b"x" * 32, ident=1), [16])[0]
    table.add(first, 100.0)
    later = _pieces(_v4_packet(b"y" * 32, ident=2), [16])
    assert table.add(later[0], 129.9) is None and len(table) == 2
    assert table.add(later[1], 130.0) is not None  # completes; the first one expires
    assert table.counts == Counter({"ipv4 fragment (expired)": 1,
                                    "ipv4 fragment (reassembled)": 1})
    assert len(table) == 0 and table.held == 0


def test_caps_on_datagrams_and_bytes() -> None:
    table = Fragments(max_datagrams=3)
    for ident in range(10):
        table.add(_pieces(_v4_packet(b"x" * 32, ident=ident), [16])[0], 0.0)
    assert len(table) == 3
    assert table.counts == Counter({"ipv4 fragment (table full)": 7})
    table = Fragments(max_bytes=1000)
    for ident in range(10):
        table.add(_pieces(_v4_packet(b"x" * 400, ident=ident), [200])[0], 0.0)
        assert table.held <= 1000
    # 200 bytes and PIECE_COST a datagram: three fit
    assert table.counts["ipv4 fragment (table full)"] == 7 and len(table) == 3


def test_flood_of_tiny_fragments_stays_bounded() -> None:
    """8-byte fragments of many datagrams, never completed: memory stays under the cap."""
    table = Fragments()
    for ident in range(3000):
        head = _v4_packet(b"", ident=ident)[:20]
        key = b"\x04" + head[12:20] + b"\x06" + head[4:6]
        for n in range(0, 40, 2):
            table.add(Piece(4, key, n * 8, True, b"12345678", head), ident / 1000)
    assert table.held <= table.max_bytes and len(table) <= table.max_datagrams


def test_ipv6_piece_reads_the_fragment_header() -> None:
    src, dst = bytes(range(16)), bytes(range(16, 32))
    payload = b"p" * 24
    frag = struct.pack("!BBHI", 6, 0, 16 | 1, 0xDEADBEEF)
    packet = struct.pack("!IHBB", 6 << 28, 8 + len(payload), 44, 64) + src + dst + frag + payload
    found = ipv6_header(packet, 0, len(packet))
    assert not isinstance(found, str) and found[:2] == (44, 40)
    piece = ipv6_piece(packet, 0, found[1], found[2], len(packet))
    assert isinstance(piece, Piece)
    assert (piece.offset, piece.more, piece.data) == (16, True, payload)
    assert piece.key == b"\x06" + src + dst + struct.pack("!I", 0xDEADBEEF)
    assert piece.head[6] == 6 and len(piece.head) == 40
