"""Tests of the conversation builder: the captures it writes must be what it claims.

Everything is read back with dpkt (or parsed by hand where dpkt has no reader), never with the
analyzer, so the builder stays an independent witness.
"""

from __future__ import annotations

import gzip
import shutil
import socket
import struct
import subprocess
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import dpkt
import dpkt.sll
import dpkt.sll2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.builder import (
    DEFAULT_MASK_KEY,
    DEFAULT_WS_KEY,
    LINKTYPES,
    Conversation,
    Opcode,
    Segment,
    TcpFlags,
    pcap_bytes,
    websocket_accept,
    websocket_request,
    websocket_response,
    write_pcap,
    ws_close_payload,
    ws_frame,
)

MOD = 2**32
REQUEST = websocket_request("example.com", "/chat", protocols=("chat", "superchat"))
RESPONSE = websocket_response(DEFAULT_WS_KEY, protocol="chat")


def websocket_conversation(**kwargs: object) -> Conversation:
    conv = Conversation(**kwargs)  # type: ignore[arg-type]
    conv.handshake()
    conv.client(REQUEST, split=[10, 30])
    conv.server(RESPONSE, delay=0.003)
    conv.client_ws_frame(Opcode.TEXT, b"hello there", split=[3])
    conv.server_ws_frame(Opcode.TEXT, b"general kenobi" * 20, max_segment=100)
    conv.client_ws_close(1000, "bye")
    conv.server_ws_close(1000)
    conv.client_fin()
    conv.server_fin()
    conv.client_ack()
    return conv


# ---------------------------------------------------------------------------------------------
# Reading back
# ---------------------------------------------------------------------------------------------


def read_pcap(path: Path) -> tuple[int, list[tuple[float, bytes]]]:
    with open(path, "rb") as f:
        reader = dpkt.pcap.Reader(f)
        return reader.datalink(), [(float(ts), buf) for ts, buf in reader]


def ip_of(frame: bytes, linktype: int) -> dpkt.ip.IP | dpkt.ip6.IP6:
    if linktype == 101:
        return dpkt.ip.IP(frame) if frame[0] >> 4 == 4 else dpkt.ip6.IP6(frame)
    if linktype == 1:
        return dpkt.ethernet.Ethernet(frame).data
    if linktype == 0:
        family = struct.unpack("<I", frame[:4])[0]
        return dpkt.ip.IP(frame[4:]) if family == 2 else dpkt.ip6.IP6(frame[4:])
    if linktype == 113:
        return dpkt.sll.SLL(frame).data
    if linktype == 276:
        return dpkt.sll2.SLL2(frame).data
    raise AssertionError(linktype)


def tcp_checksum_ok(ip: dpkt.ip.IP | dpkt.ip6.IP6) -> bool:
    tcp = bytes(ip.data)
    if isinstance(ip, dpkt.ip6.IP6):
        pseudo = ip.src + ip.dst + struct.pack("!I3xB", len(tcp), 6)
    else:
        pseudo = ip.src + ip.dst + struct.pack("!xBH", 6, len(tcp))
    return dpkt.in_cksum(pseudo + tcp) == 0


def reassemble(segments: Sequence[Segment], from_client: bool, base: int) -> dict[int, int]:
    """Byte offset (relative to ``base``) -> byte; asserts overlapping copies agree."""
    stream: dict[int, int] = {}
    for seg in segments:
        if seg.from_client != from_client or not seg.payload:
            continue
        start = (seg.seq - base) % MOD
        for i, byte in enumerate(seg.payload):
            assert stream.setdefault(start + i, byte) == byte, "overlap with different bytes"
    return stream


def as_bytes(stream: dict[int, int]) -> bytes:
    assert sorted(stream) == list(range(len(stream))), "hole in the stream"
    return bytes(stream[i] for i in range(len(stream)))


# ---------------------------------------------------------------------------------------------
# HTTP and WebSocket helpers
# ---------------------------------------------------------------------------------------------


def test_accept_matches_rfc6455_example() -> None:
    # RFC 6455 section 1.3
    assert websocket_accept("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert websocket_accept(" dGhlIHNhbXBsZSBub25jZQ== ") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_websocket_request_headers() -> None:
    req = websocket_request(
        "example.com:8080", "/chat?x=1", protocols=("a", "b"), extensions=("permessage-deflate",)
    )
    assert req.startswith(b"GET /chat?x=1 HTTP/1.1\r\nHost: example.com:8080\r\n")
    assert req.endswith(b"\r\n\r\n")
    for line in (
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Key: " + DEFAULT_WS_KEY.encode(),
        b"Sec-WebSocket-Version: 13",
        b"Sec-WebSocket-Protocol: a, b",
        b"Sec-WebSocket-Extensions: permessage-deflate",
    ):
        assert b"\r\n" + line + b"\r\n" in req


def test_websocket_request_omit_and_extra() -> None:
    req = websocket_request(
        "h", omit=("upgrade", "SEC-WEBSOCKET-KEY"), extra_headers=[("Upgrade", "WebSocket, h2c")]
    )
    assert b"Sec-WebSocket-Key" not in req
    assert req.count(b"Upgrade:") == 1
    assert req.endswith(b"Upgrade: WebSocket, h2c\r\n\r\n")


def test_websocket_response() -> None:
    resp = websocket_response(DEFAULT_WS_KEY, protocol="chat")
    assert resp.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in resp
    assert b"\r\nSec-WebSocket-Protocol: chat\r\n" in resp
    wrong = websocket_response(DEFAULT_WS_KEY, accept="nope")
    assert b"Sec-WebSocket-Accept: nope\r\n" in wrong
    refused = websocket_response(
        status=403,
        reason="Forbidden",
        omit=("Upgrade", "Connection", "Sec-WebSocket-Accept"),
        body=b"go away",
    )
    assert refused == b"HTTP/1.1 403 Forbidden\r\nContent-Length: 7\r\n\r\ngo away"


def test_ws_frames_match_rfc6455_examples() -> None:
    # RFC 6455 section 5.7
    assert ws_frame(Opcode.TEXT, b"Hello") == bytes.fromhex("810548656c6c6f")
    assert ws_frame(Opcode.TEXT, b"Hello", mask=True) == bytes.fromhex("818537fa213d7f9f4d5158")
    assert ws_frame(Opcode.TEXT, b"Hel", fin=False) == bytes.fromhex("010348656c")
    assert ws_frame(Opcode.CONTINUATION, b"lo") == bytes.fromhex("80026c6f")
    assert ws_frame(Opcode.PING, b"Hello") == bytes.fromhex("890548656c6c6f")
    assert ws_frame(Opcode.BINARY, bytes(256))[:4] == bytes.fromhex("827e0100")
    assert ws_frame(Opcode.BINARY, bytes(65536))[:10] == bytes.fromhex("827f0000000000010000")


def test_ws_frame_options() -> None:
    assert ws_frame(Opcode.TEXT, b"x", length_form=16) == bytes.fromhex("817e000178")
    assert ws_frame(Opcode.TEXT, b"x", length_form=64)[:10] == bytes.fromhex("817f0000000000000001")
    assert ws_frame(Opcode.TEXT, b"", rsv=4) == bytes.fromhex("c100")
    assert ws_frame(Opcode.TEXT, b"", mask=b"\x01\x02\x03\x04") == bytes.fromhex("818001020304")
    assert ws_frame(Opcode.PING, b"a", mask=DEFAULT_MASK_KEY) == ws_frame(
        Opcode.PING, b"a", mask=True
    )
    assert ws_close_payload(1002, "bad") == b"\x03\xeabad"
    assert ws_close_payload(None) == b""
    with pytest.raises(ValueError):
        ws_frame(Opcode.TEXT, bytes(200), length_form=7)


def test_conversation_ws_helpers_mask_per_direction() -> None:
    conv = Conversation()
    conv.client_ws_frame(Opcode.TEXT, "Hello")
    conv.server_ws_frame(Opcode.TEXT, "Hello")
    conv.client_ws_close(1000, "bye", mask=False)
    conv.server_ws_close(None)
    expected_client = bytes.fromhex("818537fa213d7f9f4d5158") + ws_frame(
        Opcode.CLOSE, b"\x03\xe8bye"
    )
    assert conv.client_bytes == expected_client
    assert conv.server_bytes == bytes.fromhex("810548656c6c6f") + bytes.fromhex("8800")


# ---------------------------------------------------------------------------------------------
# TCP correctness
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("addresses", [("10.0.0.1", "10.0.0.2"), ("2001:db8::1", "2001:db8::2")])
def test_frames_decode_with_valid_checksums(tmp_path: Path, addresses: tuple[str, str]) -> None:
    conv = websocket_conversation(client=(addresses[0], 51000), server=(addresses[1], 80))
    path = tmp_path / "c.pcap"
    frames = write_pcap(path, [conv])
    linktype, packets = read_pcap(path)
    assert linktype == 1
    assert len(packets) == len(frames) == len(conv.records)
    for (ts, buf), seg in zip(packets, frames, strict=True):
        eth = dpkt.ethernet.Ethernet(buf)
        ip = eth.data
        if ":" in addresses[0]:
            assert isinstance(ip, dpkt.ip6.IP6)
            assert eth.type == 0x86DD
            assert socket.inet_ntop(socket.AF_INET6, ip.src) == seg.src[0]
        else:
            assert isinstance(ip, dpkt.ip.IP)
            assert dpkt.in_cksum(bytes(ip)[:20]) == 0
            assert socket.inet_ntoa(ip.src) == seg.src[0]
        tcp = ip.data
        assert isinstance(tcp, dpkt.tcp.TCP)
        assert tcp_checksum_ok(ip)
        assert (tcp.sport, tcp.dport) == (seg.src[1], seg.dst[1])
        assert (tcp.seq, tcp.ack, tcp.flags) == (seg.seq, seg.ack, int(seg.flags))
        assert tcp.data == seg.payload
        assert ts == pytest.approx(seg.time, abs=1e-6)


def test_seq_ack_continuity(tmp_path: Path) -> None:
    conv = websocket_conversation()
    path = tmp_path / "c.pcap"
    write_pcap(path, [conv], linktype="raw")
    _, packets = read_pcap(path)
    tcps = [dpkt.ip.IP(buf).data for _, buf in packets]
    syn, syn_ack = tcps[0], tcps[1]
    assert syn.flags == dpkt.tcp.TH_SYN and syn.ack == 0
    assert syn_ack.flags == dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK
    assert syn_ack.ack == (syn.seq + 1) % MOD
    next_seq = {51000: (syn.seq + 1) % MOD, 80: (syn_ack.seq + 1) % MOD}
    for tcp in tcps[2:]:
        other = 80 if tcp.sport == 51000 else 51000
        assert tcp.seq == next_seq[tcp.sport]
        assert tcp.flags & dpkt.tcp.TH_ACK
        assert tcp.ack == next_seq[other], "acks everything the other side sent so far"
        next_seq[tcp.sport] = (
            tcp.seq + len(tcp.data) + (1 if tcp.flags & dpkt.tcp.TH_FIN else 0)
        ) % MOD
    payload = {port: b"".join(t.data for t in tcps if t.sport == port) for port in (51000, 80)}
    assert payload[51000] == conv.client_bytes
    assert payload[80] == conv.server_bytes
    assert conv.client_bytes.startswith(REQUEST)
    assert conv.server_bytes.startswith(RESPONSE)


def test_split_and_max_segment() -> None:
    conv = Conversation()
    conv.client(b"0123456789", split=[3, 7])
    conv.server(b"x" * 25, max_segment=10)
    conv.client(b"abcdefghij", split=[2], max_segment=3)
    sizes = [len(s.payload) for s in conv.segments()]
    assert sizes == [3, 4, 3, 10, 10, 5, 2, 3, 3, 2]
    # PSH only on the last segment of each send
    psh = [bool(s.flags & TcpFlags.PSH) for s in conv.segments()]
    assert psh == [False, False, True, False, False, True, False, False, False, True]
    mss = Conversation(mss=4)
    mss.client(b"0123456789")
    assert [s.payload for s in mss.segments()] == [b"0123", b"4567", b"89"]
    with pytest.raises(ValueError):
        conv.client(b"abc", split=[3])


def test_sequence_wraps_around() -> None:
    conv = Conversation(isn_client=2**32 - 5, isn_server=2**32 - 1)
    conv.handshake()
    conv.client(b"0123456789", split=[2, 4, 6])
    conv.server(b"abcdef")
    conv.client_fin()
    segs = conv.segments()
    assert segs[0].seq == 2**32 - 5
    assert segs[1].seq == 2**32 - 1 and segs[1].ack == 2**32 - 4
    seqs = [s.seq for s in segs if s.from_client and s.payload]
    assert seqs == [2**32 - 4, 2**32 - 2, 0, 2]
    assert segs[-1].flags & TcpFlags.FIN and segs[-1].seq == 6
    assert segs[-1].ack == 6  # server ISN 2**32-1, +1 for SYN, +6 bytes
    assert as_bytes(reassemble(segs, True, 2**32 - 4)) == b"0123456789"


def test_timing_and_delays() -> None:
    conv = Conversation(start=1700000000.5, gap=0.001)
    conv.handshake(rtt=0.02)
    conv.client(b"ab", split=[1], delay=0.25)
    conv.server(b"cd")
    times = [s.time_ns for s in conv.segments()]
    base = 1_700_000_000_500_000_000
    assert times == [
        base,
        base + 20_000_000,
        base + 40_000_000,
        base + 290_000_000,
        base + 290_010_000,
        base + 291_010_000,
    ]


def test_teardown_and_refusals() -> None:
    conv = Conversation()
    conv.handshake()
    conv.client(b"x")
    conv.client_rst()
    last = conv.segments()[-1]
    assert last.flags == TcpFlags.RST | TcpFlags.ACK and last.seq == conv.isn_client + 2
    srv = Conversation()
    srv.handshake()
    srv.server_rst(ack=False)
    assert srv.segments()[-1].flags == TcpFlags.RST and srv.segments()[-1].ack == 0

    refused = Conversation()
    refused.syn_rst()
    syn, rst = refused.segments()
    assert syn.flags == TcpFlags.SYN
    assert rst.flags == TcpFlags.RST | TcpFlags.ACK and rst.ack == (syn.seq + 1) % MOD

    unanswered = Conversation()
    unanswered.syn_only(retries=2)
    segs = unanswered.segments()
    assert [s.flags for s in segs] == [TcpFlags.SYN] * 3
    assert len({s.seq for s in segs}) == 1
    assert [s.time_ns - segs[0].time_ns for s in segs] == [0, 1_000_000_000, 3_000_000_000]
    with pytest.raises(RuntimeError):
        conv.handshake()


def test_fin_consumes_one_and_auto_ack() -> None:
    conv = Conversation(auto_ack=True)
    conv.handshake()
    conv.client(b"abc")
    conv.client_fin()
    conv.server_fin()
    segs = conv.segments()
    kinds = [(s.from_client, s.flags, len(s.payload)) for s in segs[3:]]
    assert kinds == [
        (True, TcpFlags.ACK | TcpFlags.PSH, 3),
        (False, TcpFlags.ACK, 0),
        (True, TcpFlags.FIN | TcpFlags.ACK, 0),
        (False, TcpFlags.ACK, 0),
        (False, TcpFlags.FIN | TcpFlags.ACK, 0),
        (True, TcpFlags.ACK, 0),
    ]
    assert segs[-1].ack == (conv.isn_server + 2) % MOD
    assert segs[-2].ack == (conv.isn_client + 5) % MOD


def test_capture_window() -> None:
    conv = Conversation()
    conv.handshake()
    conv.client(b"GET / HTTP/1.1\r\n", split=[4])
    conv.capture_starts_mid_stream()
    conv.client(b"Host: x\r\n\r\n")
    conv.capture_stops()
    conv.server(b"HTTP/1.1 200 OK\r\n\r\n")
    segs = conv.segments()
    assert [s.payload for s in segs] == [b"Host: x\r\n\r\n"]
    assert segs[0].seq == (conv.isn_client + 17) % MOD
    # data without a handshake continues from ISN + 1, as if the SYNs were before the capture
    bare = Conversation(isn_client=100, isn_server=500)
    bare.server(b"hi")
    assert (bare.segments()[0].seq, bare.segments()[0].ack) == (501, 101)


# ---------------------------------------------------------------------------------------------
# Transforms
# ---------------------------------------------------------------------------------------------


def many_segment_conversation(isn: int | None = None) -> Conversation:
    conv = Conversation(isn_client=isn, isn_server=isn)
    conv.handshake()
    conv.client(REQUEST, max_segment=17)
    conv.server(RESPONSE, max_segment=23)
    conv.client_ws_frame(Opcode.BINARY, bytes(range(256)) * 3, max_segment=100)
    conv.server_ws_close(1001, "going away")
    conv.client_fin()
    return conv


def check_streams(conv: Conversation, segs: Sequence[Segment]) -> None:
    assert as_bytes(reassemble(segs, True, conv.isn_client + 1)) == conv.client_bytes
    assert as_bytes(reassemble(segs, False, conv.isn_server + 1)) == conv.server_bytes
    times = [s.time_ns for s in segs]
    assert times == sorted(times)


def test_reorder_changes_order_not_content() -> None:
    conv = many_segment_conversation()
    plain = conv.segments()
    shuffled = conv.segments(reorder=3)
    assert [s.index for s in shuffled] != [s.index for s in plain]
    assert sorted(s.index for s in shuffled) == [s.index for s in plain]
    assert [s.index for s in shuffled[:2]] == [0, 1], "SYNs stay first"
    client_seqs = [(s.seq - conv.isn_client) % MOD for s in shuffled if s.from_client]
    assert client_seqs != sorted(client_seqs)
    check_streams(conv, shuffled)
    assert conv.segments(reorder=3) == shuffled, "seeded, so repeatable"


def test_duplicate_adds_retransmissions() -> None:
    conv = many_segment_conversation()
    segs = conv.segments(duplicate=1)
    copies = [s for s in segs if s.note == "retransmission"]
    assert copies
    assert len(segs) == len(conv.records) + len(copies)
    originals = {s.index: s for s in conv.records}
    for copy in copies:
        assert (copy.seq, copy.payload) == (
            originals[copy.index].seq,
            originals[copy.index].payload,
        )
    check_streams(conv, segs)


def test_overlap_resends_part_of_previous_segment() -> None:
    conv = many_segment_conversation()
    segs = conv.segments(overlap=5)
    overlapping = [s for s in segs if s.note == "overlap"]
    assert overlapping
    for seg in overlapping:
        original = conv.records[seg.index]
        # starts earlier than the segment it replaces, ends where it ended
        assert 0 < (original.seq - seg.seq) % MOD < len(seg.payload)
        assert seg.end_seq == original.end_seq
        assert seg.payload.endswith(original.payload)
    check_streams(conv, segs)


def test_drop_leaves_exactly_the_dropped_hole() -> None:
    conv = Conversation(isn_client=1000, isn_server=2000)
    conv.handshake()
    idx = conv.client(b"0123456789", split=[3, 6])
    conv.server(b"ok")
    segs = conv.segments(drop=[idx[1]])
    assert idx[1] not in {s.index for s in segs}
    stream = reassemble(segs, True, 1001)
    assert sorted(stream) == [0, 1, 2, 6, 7, 8, 9]
    # acks still cover the lost bytes: the receiver got them, the capture point did not
    assert segs[-1].ack == 1011
    with pytest.raises(IndexError):
        conv.segments(drop=[99])


@settings(max_examples=60, deadline=None)
@given(
    reorder=st.none() | st.integers(0, 2**16),
    duplicate=st.none() | st.integers(0, 2**16),
    overlap=st.none() | st.integers(0, 2**16),
    window=st.integers(1, 6),
    isn=st.none() | st.integers(2**32 - 3000, 2**32 - 1),
)
def test_any_transform_keeps_the_streams(
    reorder: int | None, duplicate: int | None, overlap: int | None, window: int, isn: int | None
) -> None:
    conv = many_segment_conversation(isn)
    segs = conv.segments(
        reorder=reorder, reorder_window=window, duplicate=duplicate, overlap=overlap
    )
    check_streams(conv, segs)


def test_transforms_through_write_pcap(tmp_path: Path) -> None:
    conv = many_segment_conversation()
    path = tmp_path / "t.pcap"
    frames = write_pcap(path, [conv], reorder=1, duplicate=2, overlap=3)
    _, packets = read_pcap(path)
    assert len(packets) == len(frames) > len(conv.records)
    for (_, buf), seg in zip(packets, frames, strict=True):
        tcp = dpkt.ethernet.Ethernet(buf).data.data
        assert (tcp.seq, tcp.data) == (seg.seq, seg.payload)
    check_streams(conv, frames)


# ---------------------------------------------------------------------------------------------
# Capture files
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("linktype", sorted(LINKTYPES))
@pytest.mark.parametrize("v6", [False, True])
def test_link_types(tmp_path: Path, linktype: str, v6: bool) -> None:
    if v6:
        conv = Conversation(client=("2001:db8::1", 40000), server=("2001:db8::2", 8080))
    else:
        conv = Conversation()
    conv.handshake()
    conv.client(REQUEST)
    conv.server(RESPONSE)
    path = tmp_path / f"{linktype}.pcap"
    frames = write_pcap(path, [conv], linktype=linktype)
    dlt, packets = read_pcap(path)
    assert dlt == LINKTYPES[linktype]
    ethertype = 0x86DD if v6 else 0x0800
    for (_, buf), seg in zip(packets, frames, strict=True):
        if linktype == "vlan":
            assert struct.unpack("!HHH", buf[12:18]) == (0x8100, 100, ethertype)
            eth = dpkt.ethernet.Ethernet(buf)
            assert [t.id for t in eth.vlan_tags] == [100]
            ip = eth.data
        elif linktype == "qinq":
            assert struct.unpack("!HHHHH", buf[12:22]) == (0x88A8, 200, 0x8100, 100, ethertype)
            eth = dpkt.ethernet.Ethernet(buf)
            assert [t.id for t in eth.vlan_tags] == [200, 100]
            ip = eth.data
        else:
            ip = ip_of(buf, dlt)
        if linktype == "ethernet":
            assert struct.unpack("!H", buf[12:14]) == (ethertype,)
        if linktype == "null":
            assert struct.unpack("<I", buf[:4]) == (30 if v6 else 2,)
        if linktype == "sll":
            sll = dpkt.sll.SLL(buf)
            assert (sll.type, sll.hrd, sll.hlen, sll.ethtype) == (
                4 if seg.from_client else 0,
                1,
                6,
                ethertype,
            )
        if linktype == "sll2":
            sll2 = dpkt.sll2.SLL2(buf)
            assert (sll2.ethtype, sll2.type, sll2.hrd) == (
                ethertype,
                4 if seg.from_client else 0,
                1,
            )
        assert isinstance(ip, dpkt.ip6.IP6 if v6 else dpkt.ip.IP)
        assert ip.data.data == seg.payload
        assert tcp_checksum_ok(ip)


def test_null_big_endian_family(tmp_path: Path) -> None:
    conv = Conversation()
    conv.client(b"x")
    data = pcap_bytes([conv], linktype="null", big_endian=True)
    assert data[:4] == bytes.fromhex("a1b2c3d4")
    assert data[24 + 16 : 24 + 20] == struct.pack(">I", 2)


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("nanosecond", [False, True])
def test_pcap_header_and_timestamps(tmp_path: Path, big_endian: bool, nanosecond: bool) -> None:
    conv = Conversation(start=Decimal("1700000000.123456789"))
    conv.client(b"abc")
    conv.server(b"de", delay=Decimal("0.000000001"))
    path = tmp_path / "ts.pcap"
    write_pcap(path, [conv], nanosecond=nanosecond, big_endian=big_endian, snaplen=1000)
    raw = path.read_bytes()
    magic = "a1b23c4d" if nanosecond else "a1b2c3d4"
    expected_magic = bytes.fromhex(magic)
    assert raw[:4] == (expected_magic if big_endian else expected_magic[::-1])
    end = ">" if big_endian else "<"
    assert struct.unpack(end + "HHiIII", raw[4:24]) == (2, 4, 0, 0, 1000, 1)
    sec, frac = struct.unpack(end + "II", raw[24:32])
    assert sec == 1700000000
    assert frac == (123456789 if nanosecond else 123456)
    with open(path, "rb") as f:
        stamps = [ts for ts, _ in dpkt.pcap.Reader(f)]
    if nanosecond:
        assert stamps == [Decimal("1700000000.123456789"), Decimal("1700000000.123456790")]
    else:
        assert [round(float(s), 6) for s in stamps] == [1700000000.123456] * 2


def test_gzip(tmp_path: Path) -> None:
    conv = websocket_conversation()
    path = tmp_path / "c.pcap.gz"
    write_pcap(path, [conv], gzip=True)
    raw = path.read_bytes()
    assert raw[:2] == b"\x1f\x8b"
    assert gzip.decompress(raw) == pcap_bytes([conv])
    with gzip.open(path, "rb") as f:
        assert len(list(dpkt.pcap.Reader(f))) == len(conv.records)


def test_snaplen_truncates(tmp_path: Path) -> None:
    conv = websocket_conversation()
    path = tmp_path / "snap.pcap"
    frames = write_pcap(path, [conv], snaplen=96)
    raw = path.read_bytes()
    assert struct.unpack("<I", raw[16:20]) == (96,)
    offset, truncated = 24, 0
    for seg in frames:
        caplen, wirelen = struct.unpack("<II", raw[offset + 8 : offset + 16])
        full = len(seg.frame("ethernet"))
        assert wirelen == full
        assert caplen == min(full, 96)
        truncated += caplen < wirelen
        offset += 16 + caplen
    assert offset == len(raw)
    assert truncated > 0


def parse_pcapng(raw: bytes) -> list[tuple[int, bytes]]:
    """Blocks as (type, body) after checking lengths, for either byte order."""
    end = "<" if raw[8:12] == bytes.fromhex("4d3c2b1a") else ">"
    assert struct.unpack(end + "I", raw[8:12]) == (0x1A2B3C4D,)
    blocks, offset = [], 0
    while offset < len(raw):
        btype, length = struct.unpack(end + "II", raw[offset : offset + 8])
        assert length % 4 == 0
        assert struct.unpack(end + "I", raw[offset + length - 4 : offset + length]) == (length,)
        blocks.append((btype, raw[offset + 8 : offset + length - 4]))
        offset += length
    assert offset == len(raw)
    return blocks


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("nanosecond", [False, True])
def test_pcapng(tmp_path: Path, big_endian: bool, nanosecond: bool) -> None:
    conv = websocket_conversation(start=Decimal("1700000000.000000123"))
    path = tmp_path / "c.pcapng"
    frames = write_pcap(
        path, [conv], pcapng=True, nanosecond=nanosecond, big_endian=big_endian, snaplen=200
    )
    raw = path.read_bytes()
    assert raw[:4] == bytes.fromhex("0a0d0d0a")
    blocks = parse_pcapng(raw)
    assert [b[0] for b in blocks] == [0x0A0D0D0A, 1] + [6] * len(frames)
    end = ">" if big_endian else "<"
    idb = blocks[1][1]
    assert struct.unpack(end + "HHI", idb[:8]) == (1, 0, 200)
    assert (b"\x09\x00\x01\x00\x09" in idb or b"\x00\x09\x00\x01\x09" in idb) == nanosecond
    with open(path, "rb") as f:
        reader = dpkt.pcapng.Reader(f)
        assert reader.datalink() == 1
        packets = list(reader)
    assert len(packets) == len(frames)
    for (ts, buf), seg in zip(packets, frames, strict=True):
        assert buf == seg.frame("ethernet")[:200]
        assert float(ts) == pytest.approx(seg.time, abs=2e-6)
    first = blocks[2][1]
    _, high, low, caplen, wirelen = struct.unpack(end + "IIIII", first[:20])
    ticks = high << 32 | low
    assert ticks == (1_700_000_000_000_000_123 if nanosecond else 1_700_000_000_000_000)


def test_pcapng_one_interface_per_link_type(tmp_path: Path) -> None:
    a = Conversation(client=("10.0.0.1", 1111), linktype="sll")
    b = Conversation(client=("10.0.0.3", 2222), start=1700000000.0005)
    for conv in (a, b):
        conv.handshake()
        conv.client(b"hello")
    frames = write_pcap(tmp_path / "m.pcapng", [a, b], pcapng=True, linktype="raw")
    blocks = parse_pcapng((tmp_path / "m.pcapng").read_bytes())
    idbs = [body for t, body in blocks if t == 1]
    assert [struct.unpack("<H", body[:2])[0] for body in idbs] == [113, 101]
    epbs = [body for t, body in blocks if t == 6]
    interfaces = [struct.unpack("<I", body[:4])[0] for body in epbs]
    assert interfaces == [0 if s.src[1] == 1111 or s.dst[1] == 1111 else 1 for s in frames]
    with pytest.raises(ValueError, match="one link type"):
        pcap_bytes([a, b], linktype="raw")


def test_conversations_interleave_by_time(tmp_path: Path) -> None:
    a = Conversation(client=("10.0.0.1", 1111), start=1700000000.0)
    b = Conversation(client=("10.0.0.3", 2222), start=1700000000.0015)
    for conv in (a, b):
        conv.handshake()
        conv.client(b"x" * 10)
    frames = write_pcap(tmp_path / "i.pcap", [a, b])
    times = [s.time_ns for s in frames]
    assert times == sorted(times)
    ports = [s.src[1] if s.from_client else s.dst[1] for s in frames]
    assert ports == [1111, 1111, 2222, 1111, 2222, 1111, 2222, 2222]


def test_segment_lists_as_items(tmp_path: Path) -> None:
    conv = many_segment_conversation()
    other = Conversation(client=("10.0.0.9", 3333))
    other.syn_rst()
    frames = write_pcap(tmp_path / "s.pcap", [conv.segments(drop=[5]), other])
    assert 5 not in {s.index for s in frames if s.src[1] != 3333 and s.dst[1] != 3333}
    assert len(frames) == len(conv.records) - 1 + 2


def test_packets_returns_time_and_frame() -> None:
    conv = Conversation(client=("2001:db8::1", 5000), server=("2001:db8::2", 80))
    conv.handshake()
    conv.client(b"hi")
    packets = conv.packets(linktype="raw")
    assert len(packets) == 4
    assert packets[0][0] == pytest.approx(1700000000.0)
    assert dpkt.ip6.IP6(packets[-1][1]).data.data == b"hi"
    assert conv.packets(reorder=1, drop=[3]) and len(conv.packets(drop=[3])) == 3


def test_ipv4_ipv6_mix_rejected() -> None:
    with pytest.raises(ValueError):
        Conversation(client=("10.0.0.1", 1), server=("::1", 2))


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
@pytest.mark.parametrize("linktype", sorted(LINKTYPES))
@pytest.mark.parametrize("pcapng", [False, True])
def test_tshark_parses(tmp_path: Path, pcapng: bool, linktype: str) -> None:
    conv = websocket_conversation(client=("2001:db8::1", 40000), server=("2001:db8::2", 80))
    path = tmp_path / ("c.pcapng" if pcapng else "c.pcap")
    write_pcap(path, [conv], pcapng=pcapng, linktype=linktype, nanosecond=pcapng)
    command = ["tshark", "-r", str(path), "-o", "tcp.check_checksum:TRUE"]
    fields = ["-T", "fields", "-e", "frame.protocols", "-e", "tcp.checksum.status"]
    out = subprocess.run(command + fields, capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    assert len(lines) == len(conv.records)
    assert all(line.endswith("\t1") for line in lines), "1 = checksum good"
    assert sum(":websocket" in line for line in lines) == 4
