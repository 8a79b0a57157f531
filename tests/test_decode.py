"""Tests for analyzer.decode: link layers, IPv4/IPv6, tunnels, TCP, and counted skips."""

from __future__ import annotations

import math
import struct
from collections import Counter
from pathlib import Path

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.decode import MAX_TUNNELS, Decoder, Segment, TcpFlags
from analyzer.source import Frame, read_captures
from analyzer.source.capture import read_record_bytes
from analyzer.source.frame import Backsteps
from analyzer.source.pcap import PcapRecords
from analyzer.source.pcapng import PcapngRecords

REAL_WORLD = Path(__file__).parents[1].parent / "shared" / "real-world"
needs_real_world = pytest.mark.skipif(
    not REAL_WORLD.is_dir(), reason=f"real-world capture corpus not found at {REAL_WORLD}"
)

SRC4, DST4 = bytes([10, 0, 0, 1]), bytes([192, 168, 1, 2])
SRC6 = bytes.fromhex("20010db8000000000000000000000001")
DST6 = bytes.fromhex("fe800000000000000000000000000002")
HELLO = b"GET / HTTP/1.1\r\n\r\n"


def _short_id(value: object) -> str | None:
    """Test ids: keep reasons and link types, not kilobytes of packet bytes."""
    return f"{len(value)}bytes" if isinstance(value, bytes) else None


# --- packet builders -------------------------------------------------------------------------


def tcp(
    payload: bytes = HELLO,
    sport: int = 40000,
    dport: int = 80,
    seq: int = 1000,
    ack: int = 2000,
    flags: int = TcpFlags.PSH | TcpFlags.ACK,
    options: bytes = b"",
) -> bytes:
    offset = (20 + len(options)) // 4
    head = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, offset << 4, flags, 65535, 0, 0)
    return head + options + payload


def ipv4(
    payload: bytes,
    proto: int = 6,
    src: bytes = SRC4,
    dst: bytes = DST4,
    frag: int = 0x4000,  # DF
    options: bytes = b"",
    total: int | None = None,
) -> bytes:
    ihl = (20 + len(options)) // 4
    length = 20 + len(options) + len(payload) if total is None else total
    head = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, length, 1, frag, 64, proto, 0, src, dst)
    return head + options + payload


def ipv6(payload: bytes, nxt: int = 6, src: bytes = SRC6, dst: bytes = DST6) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), nxt, 64, src, dst) + payload


def ext(nxt: int, length_units: int = 0) -> bytes:
    """A hop-by-hop / routing / destination-options style extension header."""
    return bytes([nxt, length_units]) + b"\x01" * (6 + 8 * length_units)


def ether(payload: bytes, ethertype: int = 0x0800, tags: tuple[int, ...] = ()) -> bytes:
    head = b"\x02" * 6 + b"\x04" * 6
    for tpid in tags:
        head += struct.pack("!HH", tpid, 100)
    return head + struct.pack("!H", ethertype) + payload


def udp(payload: bytes, dport: int, sport: int = 50000) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def gre(payload: bytes, proto: int = 0x0800, flags: int = 0, version: int = 0) -> bytes:
    extra = b"".join(b"\xaa\xbb\xcc\xdd" for bit in (0x8000, 0x2000, 0x1000) if flags & bit)
    return struct.pack("!HH", flags | version, proto) + extra + payload


def vxlan(inner_ethernet: bytes) -> bytes:
    return udp(b"\x08\0\0\0" + b"\0\x12\x34\0" + inner_ethernet, 4789)


def gtpu(inner_ip: bytes, flags: int = 0x30, extensions: bytes = b"", msg: int = 0xFF) -> bytes:
    opt = b""
    if flags & 0x07:
        # sequence number, N-PDU number, type of the first extension header (0x85: PDU session)
        opt = b"\x00\x01\x00" + (b"\x85" if extensions else b"\x00")
    body = opt + extensions + inner_ip
    return udp(struct.pack("!BBHI", flags, msg, len(body), 0x1234) + body, 2152)


def frame(data: bytes, linktype: int = 1, number: int = 7, wire: int | None = None) -> Frame:
    return Frame(number, 1234.5, linktype, data, len(data) if wire is None else wire)


def decode(data: bytes, linktype: int = 1) -> tuple[Segment | None, Counter[str]]:
    decoder = Decoder()
    return decoder.decode(frame(data, linktype)), decoder.skipped


def assert_hello(seg: Segment | None, src: bytes = SRC4, dst: bytes = DST4) -> None:
    assert seg is not None
    assert (seg.src, seg.sport, seg.dst, seg.dport) == (src, 40000, dst, 80)
    assert (seg.seq, seg.ack, seg.flags, seg.payload, seg.missing) == (1000, 2000, 0x18, HELLO, 0)
    assert (seg.frame, seg.time) == (7, 1234.5)


# --- link layers -----------------------------------------------------------------------------

IP4 = ipv4(tcp())
IP6 = ipv6(tcp())


def sll(ip: bytes, proto: int = 0x0800) -> bytes:
    return struct.pack("!HHH8sH", 0, 1, 6, b"\x02" * 8, proto) + ip


def sll2(ip: bytes, proto: int = 0x0800) -> bytes:
    return struct.pack("!HHIHBB8s", proto, 0, 2, 1, 0, 6, b"\x02" * 8) + ip


def null(ip: bytes, family: int, order: str) -> bytes:
    return struct.pack(order + "I", family) + ip


@pytest.mark.parametrize(
    ("linktype", "data", "v6"),
    [
        (1, ether(IP4), False),
        (1, ether(IP6, 0x86DD), True),
        (1, ether(IP4, tags=(0x8100,)), False),
        (1, ether(IP4, tags=(0x88A8, 0x8100)), False),  # QinQ
        (1, ether(IP6, 0x86DD, tags=(0x9100, 0x9100, 0x8100)), True),
        (113, sll(IP4), False),
        (113, sll(IP6, 0x86DD), True),
        (113, sll(IP4, 0x8100)[: -len(IP4)] + struct.pack("!HH", 5, 0x0800) + IP4, False),
        (276, sll2(IP4), False),
        (276, sll2(IP6, 0x86DD), True),
        (0, null(IP4, 2, "<"), False),
        (0, null(IP4, 2, ">"), False),
        (0, null(IP6, 24, "<"), True),
        (0, null(IP6, 28, ">"), True),
        (0, null(IP6, 30, "<"), True),
        (108, null(IP4, 2, ">"), False),
        (108, null(IP6, 24, ">"), True),
        (101, IP4, False),
        (101, IP6, True),
        (12, IP4, False),
        (14, IP6, True),
        (228, IP4, False),
        (229, IP6, True),
    ],
    ids=_short_id,
)
def test_link_types(linktype: int, data: bytes, v6: bool) -> None:
    seg, skipped = decode(data, linktype)
    assert skipped == Counter()
    assert_hello(seg, *((SRC6, DST6) if v6 else (SRC4, DST4)))


@pytest.mark.parametrize(
    ("linktype", "data", "reason"),
    [
        (147, IP4, "unknown link type 147"),
        (1, ether(b"\0" * 28, 0x0806), "not ip (arp)"),
        (1, ether(b"\0" * 28, 0x88CC, tags=(0x8100,)), "not ip (lldp)"),
        (1, ether(b"\0" * 28, 0x1234), "not ip (ethertype 0x1234)"),
        (1, ether(b"\0" * 28, 100), "not ip (802.3 llc)"),
        (1, b"\0" * 13, "truncated ethernet header"),
        (1, ether(b"", 0x8100)[:-2] + b"\x81\x00\x00", "truncated vlan tag"),
        (113, sll(b"", 0x0806), "not ip (arp)"),
        (0, null(IP4, 7, "<"), "not ip (address family 7)"),
        (0, b"\2\0", "truncated loopback header"),
        (101, b"\x50" + IP4[1:], "not ip (version 5)"),
        (101, b"", "empty ip packet"),
    ],
    ids=_short_id,
)
def test_link_layer_skips(linktype: int, data: bytes, reason: str) -> None:
    seg, skipped = decode(data, linktype)
    assert seg is None
    assert skipped == Counter({reason: 1})


# --- IPv4 and IPv6 ---------------------------------------------------------------------------


def test_ipv4_header_options_are_honoured() -> None:
    assert_hello(decode(ether(ipv4(tcp(), options=b"\x01" * 8)))[0])


def test_ethernet_padding_is_not_payload() -> None:
    seg, _ = decode(ether(ipv4(tcp(b""))) + b"\0" * 6)  # 54-byte frame padded to 60
    assert seg is not None and seg.payload == b"" and seg.missing == 0


def test_snaplen_cut_counts_missing_bytes() -> None:
    full = ether(ipv4(tcp(HELLO)))
    seg, _ = decode(full[:-5])
    assert seg is not None
    assert (seg.payload, seg.missing) == (HELLO[:-5], 5)


def test_tso_total_length_zero_uses_captured_length() -> None:
    seg, _ = decode(ether(ipv4(tcp(), total=0)))
    assert_hello(seg)


@pytest.mark.parametrize(
    ("frag", "label"),
    [(0x2000, "first fragment, MF"), (0x0010, "later fragment"), (0x0010 | 0x2000, "middle")],
)
def test_ipv4_fragments_are_held(frag: int, label: str) -> None:
    # one fragment of a datagram never completed: held, and counted so when the run ends
    # (tests/test_fragments.py puts them together)
    seg, skipped = decode(ether(ipv4(tcp(b"x" * 20), frag=frag)))
    assert seg is None and skipped == Counter({"ipv4 fragment (incomplete at end)": 1}), label


def test_ipv6_extension_headers_are_skipped_over() -> None:
    atomic_fragment = bytes([60, 0]) + b"\0\0" + b"\0\0\0\x01"
    ah = bytes([6, 2]) + b"\0\0" + b"\x11" * 12  # (2 + 2) * 4 = 16 bytes
    # hop-by-hop (16 bytes) -> routing -> atomic fragment -> destination options -> AH -> TCP
    chain = ext(43, 1) + bytes([44, 0]) + b"\0" * 6 + atomic_fragment + ext(51) + ah
    seg, skipped = decode(ether(ipv6(chain + tcp(), nxt=0), 0x86DD))
    assert skipped == Counter()
    assert_hello(seg, SRC6, DST6)


def test_ipv6_fragment_is_held() -> None:
    fragment = bytes([6, 0]) + struct.pack("!H", (185 << 3) | 1) + b"\0\0\0\x01"
    seg, skipped = decode(ether(ipv6(fragment + tcp(b"x" * 20), nxt=44), 0x86DD))
    assert seg is None and skipped == Counter({"ipv6 fragment (incomplete at end)": 1})


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (ether(ipv4(udp(b"x", 53), proto=17)), "not tcp (udp)"),
        (ether(ipv4(b"\x08\0" + b"\0" * 6, proto=1)), "not tcp (icmp)"),
        (ether(ipv4(b"\0" * 12, proto=132)), "not tcp (sctp)"),
        (ether(ipv4(b"\0" * 12, proto=200)), "not tcp (ip proto 200)"),
        (ether(ipv6(b"\x80\0" + b"\0" * 6, nxt=58), 0x86DD), "not tcp (icmpv6)"),
        (ether(ipv6(b"", nxt=59), 0x86DD), "not tcp (no next header)"),
        (ether(ipv4(tcp())[:19]), "truncated ipv4 header"),
        (ether(b"\x44" + ipv4(tcp())[1:]), "bad ipv4 header length"),
        (ether(ipv6(tcp())[:39], 0x86DD), "truncated ipv6 header"),
        (ether(ipv6(ext(6, 3) + tcp(), nxt=0)[:50], 0x86DD), "truncated ipv6 extension header"),
        (ether(ipv4(tcp())[:30]), "truncated tcp header"),
        (ether(ipv4(tcp(options=b"\x01" * 8))[:45]), "truncated tcp header"),
        (ether(ipv4(tcp(b"")[:12] + b"\x40" + tcp(b"")[13:])), "bad tcp header length"),
        (ether(ipv4(tcp(b""), total=30) + b"\0" * 20), "ip payload shorter than tcp header"),
        (ether(ipv6(tcp()), 0x0800), "bad ip version"),
    ],
    ids=_short_id,
)
def test_ip_and_tcp_skips(data: bytes, reason: str) -> None:
    seg, skipped = decode(data)
    assert seg is None
    assert skipped == Counter({reason: 1})


def test_tcp_fields_and_options() -> None:
    mss = b"\x02\x04\x05\xb4"
    seg, _ = decode(ether(ipv4(tcp(b"", 1, 65535, 0xFFFFFFFF, 0, TcpFlags.SYN, mss))))
    assert seg is not None
    assert (seg.sport, seg.dport, seg.seq, seg.ack) == (1, 65535, 0xFFFFFFFF, 0)
    assert seg.flags == TcpFlags.SYN and seg.payload == b""


def test_against_dpkt() -> None:
    pkt = dpkt.ethernet.Ethernet(
        src=b"\x01" * 6,
        dst=b"\x02" * 6,
        data=dpkt.ip.IP(
            src=SRC4, dst=DST4, p=6, data=dpkt.tcp.TCP(sport=5, dport=6, seq=7, ack=8, data=b"hi")
        ),
    )
    seg, _ = decode(bytes(pkt))
    assert seg is not None
    assert (seg.sport, seg.dport, seg.seq, seg.ack, seg.payload) == (5, 6, 7, 8, b"hi")


# --- tunnels ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outer", "v6"),
    [
        (ether(ipv4(gre(IP4), proto=47)), False),
        (ether(ipv4(gre(IP4, flags=0x8000 | 0x2000 | 0x1000), proto=47)), False),
        (ether(ipv4(gre(IP6, 0x86DD, flags=0x2000), proto=47)), True),
        (ether(ipv6(gre(ether(IP4), 0x6558), nxt=47), 0x86DD), False),  # Ethernet over GRE
        (ether(ipv4(vxlan(ether(IP4, tags=(0x8100,))), proto=17)), False),
        (ether(ipv4(vxlan(ether(IP6, 0x86DD)), proto=17)), True),
        (ether(ipv4(gtpu(IP4), proto=17), tags=(0x8100, 0x8100)), False),
        (ether(ipv4(gtpu(IP6, flags=0x32), proto=17)), True),  # with sequence number
        (ether(ipv4(gtpu(IP4, flags=0x34, extensions=b"\x01\x00\x09\x00"), proto=17)), False),
        (
            ether(
                ipv4(
                    gtpu(
                        IP4,
                        flags=0x34,
                        extensions=b"\x02" + b"\0" * 6 + b"\x85" + b"\x01\x00\x01\x00",
                    ),
                    proto=17,
                )
            ),
            False,
        ),  # two extensions
        (ether(ipv4(IP4, proto=4)), False),  # IP-in-IP
        (ether(ipv4(IP6, proto=41)), True),  # 6in4
    ],
    ids=_short_id,
)
def test_tunnels_give_the_inner_tcp_segment(outer: bytes, v6: bool) -> None:
    seg, skipped = decode(outer)
    assert skipped == Counter()
    assert_hello(seg, *((SRC6, DST6) if v6 else (SRC4, DST4)))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (ether(ipv4(gre(IP4, version=1), proto=47)), "gre version 1"),
        (ether(ipv4(gre(IP4, flags=0x4000), proto=47)), "gre with routing"),
        (ether(ipv4(gre(IP4, 0x88BE), proto=47)), "not ip (gre protocol 0x88be)"),
        (ether(ipv4(gre(b"", flags=0x8000), proto=47)[:-2]), "truncated gre header"),
        (ether(ipv4(udp(b"\0" * 8 + ether(IP4), 4789), proto=17)), "vxlan without vni flag"),
        (ether(ipv4(gtpu(IP4, msg=1), proto=17)), "not tcp (gtp-u signalling)"),
        (ether(ipv4(gtpu(IP4, flags=0x50), proto=17)), "gtp version 2"),
        (ether(ipv4(gtpu(IP4, flags=0x20), proto=17)), "not tcp (gtp')"),
        (
            ether(ipv4(gtpu(IP4, flags=0x34, extensions=b"\x00\x00\x00\x00"), proto=17)),
            "bad gtp-u extension header",
        ),
        (ether(ipv4(gtpu(b"\x00" * 20), proto=17)), "not ip (gtp-u payload)"),
        (ether(ipv4(gtpu(ipv4(udp(b"q", 53), proto=17)), proto=17)), "not tcp (udp)"),
    ],
    ids=_short_id,
)
def test_tunnel_skips(data: bytes, reason: str) -> None:
    seg, skipped = decode(data)
    assert seg is None
    assert skipped == Counter({reason: 1})


def _nest(levels: int) -> bytes:
    packet = IP4
    for _ in range(levels):
        packet = ipv4(gre(packet), proto=47)
    return ether(packet)


def test_tunnel_nesting_is_bounded() -> None:
    assert_hello(decode(_nest(MAX_TUNNELS))[0])
    seg, skipped = decode(_nest(MAX_TUNNELS + 1))
    assert seg is None and skipped == Counter({"tunnel nesting too deep": 1})


def test_inner_packet_cannot_read_past_the_outer_packet() -> None:
    # The outer IP packet ends before the inner one says it does: the rest is padding.
    inner = IP4
    outer = ipv4(gre(inner), proto=47, total=20 + 4 + len(inner) - 5)
    seg, _ = decode(ether(outer + b"\0" * 5))
    assert seg is not None and seg.payload == HELLO[:-5] and seg.missing == 5


# --- robustness ------------------------------------------------------------------------------

SAMPLES = [
    (
        1,
        ether(
            ipv4(gtpu(IP4, flags=0x34, extensions=b"\x01\x00\x09\x00"), proto=17), tags=(0x88A8,)
        ),
    ),
    (1, ether(ipv6(ext(47) + gre(ether(IP6, 0x86DD), 0x6558), nxt=0), 0x86DD)),
    (1, ether(ipv4(vxlan(ether(IP4)), proto=17))),
    (113, sll(IP4)),
    (0, null(IP6, 30, "<")),
]


@pytest.mark.parametrize(("linktype", "data"), SAMPLES, ids=_short_id)
def test_every_prefix_decodes_without_raising(linktype: int, data: bytes) -> None:
    decoder = Decoder()
    for cut in range(len(data) + 1):
        seg = decoder.decode(frame(data[:cut], linktype))
        if seg is not None:
            # Once the headers are in, only payload is cut, and it is counted as missing.
            assert len(seg.payload) + seg.missing == len(HELLO)
            assert seg.payload == HELLO[: len(seg.payload)]
    assert decoder.decode(frame(data, linktype)) is not None


@settings(max_examples=500, deadline=None)
@given(
    linktype=st.sampled_from([0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 147]),
    data=st.binary(max_size=200),
)
def test_garbage_never_raises(linktype: int, data: bytes) -> None:
    decoder = Decoder()
    seg = decoder.decode(frame(data, linktype))
    assert (seg is None) == (sum(decoder.skipped.values()) == 1)


@settings(max_examples=300, deadline=None)
@given(
    sample=st.sampled_from(SAMPLES),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
)
def test_corrupted_packets_never_raise(
    sample: tuple[int, bytes], flips: list[tuple[int, int]]
) -> None:
    linktype, data = sample
    buf = bytearray(data)
    for where, value in flips:
        buf[where % len(buf)] = value
    decoder = Decoder()
    decoder.decode(frame(bytes(buf), linktype))


# --- real captures ---------------------------------------------------------------------------


def _decode_file(name: str) -> tuple[list[Segment], Counter[str], int]:
    decoder = Decoder()
    frames = list(read_captures([str(REAL_WORLD / name)], []))
    segments = [s for f in frames if (s := decoder.decode(f)) is not None]
    return segments, decoder.skipped, len(frames)


@needs_real_world
@pytest.mark.parametrize(
    ("name", "segments", "port", "addr_len"),
    [
        ("arkime/websocket.pcap", 19, 12345, 4),
        ("zeek/oversized-close-frame.pcapng", 8, 80, 4),
        ("suricata-verify/websocket-ping/input.pcap", 19, 10301, 4),  # Linux cooked v1
        ("zeek/connect-with-header.pcap", 58, 80, 16),  # BSD loopback, IPv6 ::1
        ("suricata-verify/http2-range/http2-range.pcap", 116, 8080, 4),  # BSD loopback
        ("websocket_test/websocket.pcap", 16, 8765, 4),
        ("zeek/wrong-accept-header.pcap", 12, 8080, 4),
    ],
)
def test_real_captures_decode_fully(name: str, segments: int, port: int, addr_len: int) -> None:
    segs, skipped, frames = _decode_file(name)
    assert len(segs) == segments == frames, skipped
    assert all(port in (s.sport, s.dport) for s in segs)
    assert {len(s.src) for s in segs} == {addr_len}
    assert [s.frame for s in segs] == list(range(1, frames + 1))


@needs_real_world
def test_real_qinq_gtpu_capture() -> None:
    segs, skipped, frames = _decode_file("nDPI/false_positives.pcapng")
    assert frames == 120
    assert len(segs) == 4  # the inner TCP connection; the rest is UDP inside and outside GTP-U
    assert skipped == Counter({"not tcp (udp)": 116})
    assert any(
        s.payload.startswith(b"GET /ws HTTP/1.1\r\n") and b"Upgrade: websocket" in s.payload
        for s in segs
    )
    assert {443} == {min(s.sport, s.dport) for s in segs}


@needs_real_world
def test_real_ipv6_linux_cooked_capture() -> None:
    segs, skipped, frames = _decode_file("CheckOCPP/capt.pcapng")
    assert frames == 261
    assert len(segs) + sum(skipped.values()) == 261
    assert len(segs) > 200
    v6 = [s for s in segs if len(s.src) == 16]
    assert v6 and all(s.src[:2] == b"\xfe\x80" or s.dst[:2] == b"\xfe\x80" for s in v6[:20])
    assert any(b"Upgrade: websocket" in s.payload for s in segs)


@needs_real_world
def test_real_capture_port_80_and_handshakes() -> None:
    segs, skipped, frames = _decode_file("nDPI/1kxun.pcap")
    assert frames == 1723 and len(segs) + sum(skipped.values()) == 1723
    port80 = [s for s in segs if 80 in (s.sport, s.dport)]
    assert len(port80) > 1000
    switches = [s for s in segs if s.payload.startswith(b"HTTP/1.1 101 Switching Protocols")]
    assert [(s.frame, s.sport) for s in switches] == [(1034, 1234), (1036, 1234), (1038, 1234)]


@needs_real_world
@pytest.mark.parametrize(
    "name",
    ["arkime/websocket.pcap", "zeek/wstunnel-ssh.pcap", "nDPI/1kxun.pcap", "nDPI/gnutella.pcap"],
)
def test_real_ethernet_segments_match_dpkt(name: str) -> None:
    decoder = Decoder()
    compared = 0
    for f in read_captures([str(REAL_WORLD / name)], []):
        seg = decoder.decode(f)
        try:
            ip = dpkt.ethernet.Ethernet(f.data).data
        except dpkt.UnpackError:
            continue
        if not isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6) or not isinstance(ip.data, dpkt.tcp.TCP):
            continue
        if isinstance(ip, dpkt.ip.IP) and (ip.mf or ip.offset):
            continue
        t = ip.data
        assert seg is not None, f.number
        assert (seg.src, seg.dst, seg.sport, seg.dport) == (ip.src, ip.dst, t.sport, t.dport)
        assert (seg.seq, seg.ack, seg.flags) == (t.seq, t.ack, t.flags & 0xFF)
        assert seg.payload == bytes(t.data)[: len(seg.payload)]
        compared += 1
    assert compared > 10


def test_ignored_frame_test_agrees_with_peek_flow() -> None:
    """The pcap reader's drop test inlines `peek_flow_at`'s checks: it must accept exactly the
    non-SYN frames that `peek_flow` gives the key of an ignored connection, also when cut
    short, and read the frame at any offset of the buffer."""
    from types import SimpleNamespace

    from analyzer.decode.decoder import PEEK_LINKS, ignored_frame_test, peek_flow

    repo = Path(__file__).resolve().parents[1]
    frames = [f for p in sorted((repo / "captures").glob("*.pcap*"))
              for f in read_captures([str(p)], [])]
    assert frames
    ignored = SimpleNamespace(ignored=True)
    followed = SimpleNamespace(ignored=False, passing=None)
    for linktype in PEEK_LINKS:
        flows: dict[bytes, tuple[SimpleNamespace, int]] = {}
        test = ignored_frame_test(linktype, flows)
        assert test is not None
        checked = 0
        for n, frame in enumerate(frames):
            for data in (frame.data, frame.data[:60], frame.data[:53], frame.data[:54]):
                peeked = peek_flow(linktype, data)
                if peeked is not None:
                    flows[peeked[0]] = (ignored if n % 3 else followed, 0)
                expected = (peeked is not None and not peeked[1] & 0x02
                            and peeked[0] in flows and flows[peeked[0]][0].ignored)
                buf = b"junk" + data + b"more"
                assert test(buf, 4, 4 + len(data)) == expected, (n, len(data))
                checked += expected
        assert checked  # the test did see frames it drops
    assert ignored_frame_test(228, {}) is None  # raw IPv4: no fast path


def _records_buffer(frames: list[bytes], order: str) -> bytes:
    """The frames as pcap records (header + bytes) in one buffer, numbered by timestamp."""
    out = []
    for n, data in enumerate(frames):
        out.append(struct.pack(order + "IIII", 1_700_000_000 + n, n, len(data), len(data)))
        out.append(data)
    return b"".join(out)


@pytest.mark.parametrize("order", ["<", ">"])
def test_compiled_skip_drops_exactly_what_the_python_test_drops(order: str) -> None:
    """`_fastpath.skip_ignored` walks records and skips, in C, those `ignored_frame_test` drops:
    from every starting record, it must stop at the first record the Python test keeps, give
    the timestamp of the last one it skipped, and never skip a record that is cut by the end
    of the buffer or longer than the limit (the reader handles those)."""
    from types import SimpleNamespace

    from analyzer.decode.decoder import (
        PEEK_LINKS,
        ignored_frame_test,
        ignored_record_skip,
        peek_flow,
    )

    repo = Path(__file__).resolve().parents[1]
    frames = [f.data for p in sorted((repo / "captures").glob("*.pcap*"))
              for f in read_captures([str(p)], []) if f.linktype in PEEK_LINKS]
    frames += [f[:54] for f in frames[:200]] + [f[:53] for f in frames[:200]]
    ignored = SimpleNamespace(ignored=True)
    followed = SimpleNamespace(ignored=False, passing=None)
    free = (1_000_000, math.inf, True)  # microsecond times, no bound: a file read alone
    for linktype in PEEK_LINKS:
        flows: dict[bytes, tuple[SimpleNamespace, int]] = {}
        for n, data in enumerate(frames):
            peeked = peek_flow(linktype, data)
            if peeked is not None:  # most connections ignored, so long runs get skipped
                flows[peeked[0]] = (followed if n % 11 == 0 else ignored, 0)
        test = ignored_frame_test(linktype, flows)
        skip = ignored_record_skip(linktype, flows)
        if skip is None:
            pytest.skip("the compiled skip is not built in this install")
        assert test is not None
        buf = _records_buffer(frames, order)
        starts, pos = [], 0
        for data in frames:
            starts.append(pos)
            pos += 16 + len(data)
        dropped = [test(buf, start + 16, start + 16 + len(data))
                   for start, data in zip(starts, frames, strict=True)]
        assert 0 < sum(dropped) < len(frames)
        for first in range(len(frames)):
            expected = first
            while expected < len(frames) and dropped[expected]:
                expected += 1
            got = skip(buf, starts[first], order == "<", 65535, *free)
            stop = starts[expected] if expected < len(frames) else len(buf)
            if expected > first:  # (times only go forward here: nothing stepped back)
                assert got == (stop, expected - first, 1_700_000_000 + expected - 1,
                               expected - 1, None), first
            else:
                assert got == (starts[first], 0, 0, 0, None), first
            if expected - first >= 2:
                # Bounded by the time of a record in the run (merged files): skipped up to
                # it, or through it when the bound is inclusive.
                k = first + 1
                time = 1_700_000_000 + k + k / 1_000_000  # as the reader computes it
                assert skip(buf, starts[first], order == "<", 65535, 1_000_000, time,
                            False)[:2] == (starts[k], k - first)
                assert skip(buf, starts[first], order == "<", 65535, 1_000_000, time,
                            True)[:2] == (starts[k + 1] if k + 1 < len(frames) else len(buf),
                                          k + 1 - first)
        # A record cut by the end of the buffer, or over the limit, is left to the reader.
        whole = next(i for i, d in enumerate(dropped) if d)
        cut = buf[: starts[whole] + 16 + len(frames[whole]) - 1]
        assert skip(cut, starts[whole], order == "<", 65535, *free)[:2] == (starts[whole], 0)
        assert skip(buf, starts[whole], order == "<", len(frames[whole]) - 1, *free)[:2] == (
            starts[whole], 0)
    assert ignored_record_skip(228, {}) is None  # raw IPv4: no fast path


def test_compiled_fast_path_is_built_where_a_compiler_is() -> None:
    """CI installs with a C compiler, so the compiled fast path must be there: otherwise the
    tests of it would quietly test only the pure-Python path."""
    import shutil

    from analyzer.decode.decoder import FASTPATH_COMPILED

    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler: the pure-Python path is the one installed")
    assert FASTPATH_COMPILED, "analyzer/decode/_fastpath.pyx was not built: pip install -e ."


def test_compiled_peeks_give_what_the_python_peeks_give() -> None:
    """`peek_functions()` gives the compiled twins of `peek_flow` and `peek_payload`: the same
    answer for every frame of the test captures, cut at every length that matters, on both
    link types of the fast path and on others, and on random bytes."""
    import random

    from analyzer.decode.decoder import PEEK_LINKS, peek_flow, peek_functions, peek_payload

    fast_flow, fast_payload = peek_functions(compiled=True)
    if fast_flow is peek_flow:
        pytest.skip("the compiled fast path is not built in this install")
    repo = Path(__file__).resolve().parents[1]
    frames = [f.data for p in sorted((repo / "captures").glob("*.pcap*"))
              for f in read_captures([str(p)], [])]
    rng = random.Random(5)
    frames += [bytes(rng.randrange(256) for _ in range(rng.randrange(80))) for _ in range(500)]
    accepted = 0
    for data in frames:
        for cut in {len(data), *range(30, min(len(data), 80))}:
            piece = data[:cut]
            for linktype in (*PEEK_LINKS, 0, 228):
                expected = peek_flow(linktype, piece)
                assert fast_flow(linktype, piece) == expected, (linktype, piece.hex())
                if expected is not None:
                    accepted += 1
                    assert fast_payload(linktype, piece) == peek_payload(linktype, piece), (
                        linktype, piece.hex())
    assert accepted > 1000


def test_compiled_block_skip_leaves_every_questionable_block_to_the_reader() -> None:
    """`_fastpath.skip_ignored_blocks` (pcapng) skips the Enhanced Packet Blocks of ignored
    connections and stops at anything else: another block type, a trailer that does not
    match, an interface the section has not described or whose link type has no fast path,
    a captured length that does not fit, or a block cut by the end of the buffer."""
    from types import SimpleNamespace

    from analyzer.decode.decoder import ignored_block_skip, peek_flow

    frame = ether(ipv4(tcp(b"x" * 40, flags=0x18)))
    key = peek_flow(1, frame)
    assert key is not None
    flows = {key[0]: (SimpleNamespace(ignored=True), 0)}
    skip = ignored_block_skip(flows)
    if skip is None:
        pytest.skip("the compiled fast path is not built in this install")

    def epb(iface: int = 0, data: bytes = frame, cap: int | None = None,
            trailer: int | None = None) -> bytes:
        body = struct.pack("<IIIII", iface, 1, 2, len(data) if cap is None else cap, len(data))
        body += data + b"\x00" * (-len(data) % 4)
        total = 12 + len(body)
        return struct.pack("<II", 6, total) + body + struct.pack(
            "<I", total if trailer is None else trailer)

    good = epb()
    interfaces = ((1, 1e6, 0), (228, 1e6, 0))
    args = (True, interfaces, 262144, 16 << 20, math.inf, True)
    assert skip(good * 3, 0, *args) == (3 * len(good), 3, 0, 1, 2, None)
    time = ((1 << 32) | 2) / 1e6 + 0  # each block's time, as the reader computes it
    assert skip(good, 0, *args[:4], time, False)[:2] == (0, 0)  # not before the bound
    assert skip(good, 0, *args[:4], time, True)[:2] == (len(good), 1)  # at it, inclusive
    for stopper in (
        struct.pack("<II", 3, 16) + b"\x00" * 4 + struct.pack("<I", 16),  # an SPB
        epb(trailer=0),  # corrupt trailer
        epb(iface=2),  # no such interface
        epb(iface=1),  # raw IPv4: no fast path
        epb(cap=len(frame) + 100),  # captured length past the block
        ether(ipv4(tcp(b"x" * 40, flags=0x02))),  # not even a block (a SYN frame's bytes)
    ):
        assert skip(good + stopper + good, 0, *args)[:2] == (len(good), 1), stopper[:8].hex()
    assert skip(good + good[:-1], 0, *args)[:2] == (len(good), 1)  # the second one is cut
    assert skip(good, 0, False, *args[1:])[:2] == (0, 0)  # the other byte order
    assert skip(good, 0, True, interfaces, len(frame) - 1, *args[3:])[:2] == (0, 0)  # limit


# Where the clock steps back in `_stepping_times`: inside a run of skipped records (5), at
# the first record a skip takes after one read in Python (11, 41), at a record read in Python
# (25), twice in a row (50, 51), back a whole second with a larger fraction (55); an equal
# time is no step (30).
_STEPS_BACK = {5: 0.0005, 11: 0.003, 25: 0.002, 41: 0.004, 50: 0.0007, 51: 0.0002, 55: 1.2}
_KEPT = (10, 25, 40)  # records of a followed connection: the compiled skip stops there


def _stepping_times(units: int) -> list[tuple[int, int]]:
    """60 records' (seconds, fraction) a millisecond apart but where `_STEPS_BACK` says."""
    ticks, out = 1_700_000_000 * units, []
    for n in range(60):
        ticks += 0 if n == 30 else units // 1000
        if n in _STEPS_BACK:
            ticks -= int(_STEPS_BACK[n] * units) + units // 1000
        out.append(divmod(ticks, units))
    return out


def _stepping_frames() -> tuple[list[bytes], dict[bytes, tuple[object, int]]]:
    """Frames of an ignored connection, but at `_KEPT` a followed one's; the flow table."""
    from types import SimpleNamespace

    from analyzer.decode.decoder import peek_flow

    ignored = ether(ipv4(tcp(b"x" * 40, sport=40000)))
    kept = ether(ipv4(tcp(b"y" * 40, sport=40001)))
    flows: dict[bytes, tuple[object, int]] = {}
    for data, conn in ((ignored, SimpleNamespace(ignored=True)),
                       (kept, SimpleNamespace(ignored=False, passing=None))):
        peeked = peek_flow(1, data)
        assert peeked is not None
        flows[peeked[0]] = (conn, 0)
    return [kept if n in _KEPT else ignored for n in range(60)], flows


def _expected_backsteps(times: list[float | tuple[int, int]], units: int = 1) -> Backsteps:
    """What the reader must count, from the times themselves (the reader's expressions)."""
    expected = Backsteps()
    for n in range(1, len(times)):
        before, time = times[n - 1], times[n]
        if time < before:
            if isinstance(time, tuple) and isinstance(before, tuple):
                expected.add(n + 1, (before[0] - time[0]) + (before[1] - time[1]) / units)
            else:
                assert isinstance(time, float) and isinstance(before, float)
                expected.add(n + 1, before - time)
    return expected


@pytest.mark.parametrize("units", [1_000_000, 1_000_000_000])
def test_the_compiled_skip_counts_times_that_step_back_as_the_reader_does(units: int) -> None:
    """A capture whose clock steps back (an unsorted merge, `mergecap -a` of overlapping
    files): the pcap reader counts the records earlier than the record before them, the first
    one's frame and the largest step (`PcapRecords.backsteps`). The compiled skip reads the
    times of the records it passes over and says which stepped back, so a read with it (the
    pipeline's) counts what a read with the Python test alone counts (its plain twin), and
    what the times say: inside a run of skipped records, at the first one a skip takes after
    a record read in Python, at a record read in Python, back across a whole second."""
    from analyzer.decode.decoder import ignored_frame_test, ignored_record_skip

    frames, flows = _stepping_frames()
    times = _stepping_times(units)
    magic = 0xA1B2C3D4 if units == 1_000_000 else 0xA1B23C4D
    data = struct.pack("<IHHiIII", magic, 2, 4, 0, 0, 65535, 1) + b"".join(
        struct.pack("<IIII", sec, frac, len(frame), len(frame)) + frame
        for (sec, frac), frame in zip(times, frames, strict=True))
    expected = _expected_backsteps(list(times), units)
    assert expected.count == len(_STEPS_BACK) and expected.first_frame == 6
    assert expected.largest == pytest.approx(1.2)
    got = {}
    for compiled in (False, True):
        records = read_record_bytes(data, [])
        assert isinstance(records, PcapRecords)
        records.drop = ignored_frame_test(1, flows)
        records.skip = ignored_record_skip(1, flows) if compiled else None
        if compiled and records.skip is None:
            pytest.skip("the compiled skip is not built in this install")
        assert len(list(records)) == len(_KEPT) and records.dropped == 60 - len(_KEPT)
        got[compiled] = records.backsteps
    assert got[True] == got[False] == expected


def test_the_compiled_block_skip_counts_times_that_step_back_as_the_reader_does() -> None:
    """The same for pcapng (`PcapngRecords`), whose reader compares each block's time as a
    float (interfaces may differ in units and offset): skipped by the compiled skip, or each
    yielded to Python (no skip: its plain twin)."""
    from analyzer.decode.decoder import ignored_block_skip

    frames, flows = _stepping_frames()
    times = _stepping_times(1_000_000)

    def block(kind: int, body: bytes) -> bytes:
        body += b"\x00" * (-len(body) % 4)
        return struct.pack("<II", kind, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))

    data = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    data += block(1, struct.pack("<HHI", 1, 0, 65535))
    for (sec, frac), frame in zip(times, frames, strict=True):
        ticks = sec * 1_000_000 + frac
        data += block(6, struct.pack("<IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, len(frame),
                                     len(frame)) + frame)
    yielded = {}
    got = {}
    for compiled in (False, True):
        records = read_record_bytes(data, [])
        assert isinstance(records, PcapngRecords)
        records.skip = ignored_block_skip(flows) if compiled else None
        if compiled and records.skip is None:
            pytest.skip("the compiled skip is not built in this install")
        yielded[compiled] = [record[0] for record in records]
        got[compiled] = records.backsteps
    assert len(yielded[False]) == 60 and len(yielded[True]) == len(_KEPT)
    assert got[True] == got[False] == _expected_backsteps(list(yielded[False]))
    assert got[True].count == len(_STEPS_BACK) and got[True].first_frame == 6


def test_flow_keys_of_hosts_that_differ_in_their_last_byte_spread_over_the_cache() -> None:
    """`_fastpath._key_slot`: the cache's place of a flow key reaches every byte of it. A
    capture's sessions often differ only in a host's last address byte or in a port; the
    first hash (low bits of 32-bit products of little-endian words) put 256 such clients
    in a handful of places, and 46-59 % of a TLS capture's frames missed the cache."""
    from analyzer.decode.decoder import FASTPATH_COMPILED

    if not FASTPATH_COMPILED:
        pytest.skip("the compiled module is not built")
    from analyzer.decode import _fastpath

    server, port = bytes((192, 168, 1, 1)), (443).to_bytes(2, "big")
    for vary in ("last byte", "port"):
        forward, backward = set(), set()
        for n in range(256):
            client = bytes((10, 0, 0, n)) if vary == "last byte" else bytes((10, 0, 0, 7))
            client_port = (50000 + (n if vary == "port" else 0)).to_bytes(2, "big")
            forward.add(_fastpath.flow_key_slot(client + server + client_port + port))
            backward.add(_fastpath.flow_key_slot(server + client + port + client_port))
        # 256 keys in 4,096 places: about 8 collide by chance
        assert len(forward) > 230 and len(backward) > 230, (vary, len(forward), len(backward))
    with pytest.raises(ValueError):
        _fastpath.flow_key_slot(bytes(11))


def test_the_tables_flow_keys_are_the_compiled_skips_own_objects() -> None:
    """`segment.table_key` (the key the reassembly table is keyed by) against its plain twin:
    the same bytes; and, compiled, the object the skip's cache of recent keys gives a frame
    of that flow, so that the skip's look-up finds it by identity (an IPv6 key, which the
    skip never looks up, is itself)."""
    from analyzer.decode.decoder import FASTPATH_COMPILED
    from analyzer.decode.segment import flow_key, table_key, table_key_plain

    if not FASTPATH_COMPILED:
        pytest.skip("the compiled module is not built")
    from analyzer.decode import _fastpath

    key = flow_key(bytes((10, 0, 0, 1)), 50000, bytes((192, 168, 1, 1)), 443)
    made = table_key(bytes(key))
    assert made == table_key_plain(key) == key
    assert made is _fastpath.flow_key_compiled(key + b"frame's next bytes")
    wide = flow_key(bytes(16), 50000, bytes(15) + b"\1", 443)
    assert table_key(wide) is wide
    # every connection of a capture read, made in Python or at its SYN in C
    # (_handshake.pxi `_open_at_syn`), is keyed by those objects, both directions
    from analyzer.pipeline import Analysis
    from analyzer.source import read_records

    run = Analysis(compiled=True)
    path = Path(__file__).resolve().parents[1] / "captures" / "socketio_no_sticky_sessions.pcap"
    for _ in run.feed_records(read_records([str(path)], [])):
        pass
    keys = [k for k in run._reassembler.flows if len(k) == 12]  # (the connections still open)
    assert len(keys) >= 10
    assert all(k is _fastpath.flow_key_compiled(k) for k in keys)


def test_compiled_flow_keys_are_the_bytes_themselves() -> None:
    """`_fastpath._flow_key` (the flow key a recent frame had, from a direct-mapped cache)
    against its plain twin, the 12 bytes as a new bytes object: equal, of type bytes, the same
    hash, whatever collides in the cache; and the keys of every frame of the bundled
    captures look up the same entries as the plain keys."""
    import random

    from analyzer.decode.decoder import FASTPATH_COMPILED, peek_flow

    if not FASTPATH_COMPILED:
        pytest.skip("the compiled module is not built")
    from analyzer.decode import _fastpath

    rng = random.Random(15)
    keys = [rng.randbytes(12) for _ in range(40_000)]  # ten times the slots: many collisions
    keys += [k[:8] + bytes(4) for k in keys[:200]]  # keys that differ in the ports only
    for key in keys * 2 + list(reversed(keys)):
        made = _fastpath.flow_key_compiled(key + b"tail")
        assert made == key and type(made) is bytes and hash(made) == hash(key)
    with pytest.raises(ValueError):
        _fastpath.flow_key_compiled(bytes(11))
    table: dict[bytes, int] = {}
    compiled_keys = []
    for path in sorted((Path(__file__).resolve().parents[1] / "captures").glob("*.pcap*")):
        for frame in read_captures([str(path)], []):
            plain = peek_flow(frame.linktype, frame.data)
            compiled = _fastpath.peek_flow(frame.linktype, frame.data)
            assert compiled == plain
            if plain is not None:
                table.setdefault(plain[0], len(table))
                compiled_keys.append((compiled[0], table[plain[0]]))
    assert compiled_keys and all(table[key] == number for key, number in compiled_keys)
