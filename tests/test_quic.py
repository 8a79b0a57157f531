"""QUIC (HTTP/3) flows are recognised on UDP, counted and named in the summary, not analysed."""

from __future__ import annotations

import os
import struct
from pathlib import Path

from analyzer.decode.tunnels import QUIC, is_quic_long_header
from analyzer.pipeline import Analysis, analyze
from analyzer.report.render import summary_text
from analyzer.source import read_captures

# An Initial packet's start (RFC 9000 §17.2.2): long header, fixed bit, type Initial, version 1,
# an 8-byte Destination Connection ID, no Source Connection ID, no token, then the rest.
INITIAL = bytes([0xC3]) + struct.pack(">L", 1) + b"\x08" + os.urandom(8) + b"\x00\x00" + \
    b"\x44\xd0" + bytes(1200)
VERSION_NEGOTIATION = bytes([0x80]) + b"\0\0\0\0" + b"\x08" + bytes(8) + b"\x00" + \
    struct.pack(">LL", 1, 0x6B3343CF)
DNS_QUERY = bytes.fromhex("123401000001000000000000076578616d706c6503636f6d0000010001")
SHORT_HEADER = bytes([0x43]) + bytes(40)  # 1-RTT: looks like anything, not counted alone


def _udp_frame(src: str, sport: int, dst: str, dport: int, payload: bytes) -> bytes:
    udp = struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                     bytes(map(int, src.split("."))), bytes(map(int, dst.split("."))))
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + udp


def _pcap(path: Path, frames: list[bytes]) -> None:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for n, frame in enumerate(frames):
        out += struct.pack("<IIII", 1_700_000_000 + n, 0, len(frame), len(frame)) + frame
    path.write_bytes(out)


def test_long_headers_of_known_versions() -> None:
    assert is_quic_long_header(INITIAL, 0, len(INITIAL))
    assert is_quic_long_header(VERSION_NEGOTIATION, 0, len(VERSION_NEGOTIATION))
    assert not is_quic_long_header(DNS_QUERY, 0, len(DNS_QUERY))
    assert not is_quic_long_header(SHORT_HEADER, 0, len(SHORT_HEADER))
    unknown = bytes([0xC3]) + struct.pack(">L", 0x12345678) + INITIAL[5:]
    assert not is_quic_long_header(unknown, 0, len(unknown))


def test_quic_flows_are_counted_once_each_and_summarised(tmp_path: Path) -> None:
    frames = [
        _udp_frame("10.0.0.1", 50000, "10.0.0.2", 443, INITIAL),
        _udp_frame("10.0.0.2", 443, "10.0.0.1", 50000, INITIAL),  # the answer: same flow
        _udp_frame("10.0.0.1", 50000, "10.0.0.2", 443, SHORT_HEADER),
        _udp_frame("10.0.0.1", 50001, "10.0.0.2", 443, INITIAL),  # a second flow
        _udp_frame("10.0.0.1", 53000, "10.0.0.3", 53, DNS_QUERY),  # the near miss
    ]
    path = tmp_path / "quic.pcap"
    _pcap(path, frames)
    analysis = Analysis()
    assert list(analyze(read_captures([str(path)], []), analysis)) == []
    stats = analysis.stats
    assert stats.quic_flows == 2
    assert stats.skipped[QUIC] == 3 and stats.skipped["not tcp (udp)"] == 2
    assert "QUIC flows seen (HTTP/3, not analysed): 2" in summary_text([], stats, [])
