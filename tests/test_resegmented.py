"""The segmentation of a capture never changes what it says: every bundled capture, with every
TCP payload re-cut into one-byte segments (same bytes, same sequence numbers, same order, the
other packets as they were), gives the same attempts, verdicts, reasons and findings. Only the
frame numbers move.

A reader that decides on what one segment holds (a head, a record, a frame header, a version
digit) rather than on the bytes reassembled shows up here on real traffic, in every stage:
HTTP/1 heads, TLS records with their keys, HTTP/2 frames, WebSocket frames after a switch.
(The three pcapng captures are the same kinds of traffic as pcap files here.)
"""

from __future__ import annotations

from pathlib import Path

import dpkt
import pytest

from analyzer.pipeline import Analysis, analyze
from analyzer.source import CaptureWarning, read_captures
from analyzer.tls.keylog import load_keylog
from analyzer.verdict import Diagnosis

CAPTURES = Path(__file__).parents[1] / "captures"
PCAPS = sorted(p.name for p in CAPTURES.glob("*.pcap"))
_SPACING = 1e-7  # seconds between the pieces of one segment: after it, before the next packet
_NOT_BEFORE_THE_END = ~(dpkt.tcp.TH_FIN | dpkt.tcp.TH_PUSH)  # flags only the last piece keeps


# link header lengths: Ethernet (without VLAN tags), Linux cooked capture v1 (`-i any`)
_LINK_HEADER = {dpkt.pcap.DLT_EN10MB: 14, dpkt.pcap.DLT_LINUX_SLL: 16}
_ETHERTYPE_AT = {dpkt.pcap.DLT_EN10MB: 12, dpkt.pcap.DLT_LINUX_SLL: 14}


def one_byte_segments(source: Path, target: Path) -> int:
    """Writes ``source`` with each TCP payload cut into one-byte segments; returns how many
    segments were cut. A FIN or PSH stays on the last piece; anything not TCP over IP is
    copied as it is."""
    cut = 0
    with source.open("rb") as src, target.open("wb") as dst:
        reader = dpkt.pcap.Reader(src)
        link = reader.datalink()
        assert link in _LINK_HEADER, (source.name, link)
        writer = dpkt.pcap.Writer(dst, snaplen=262144, linktype=link)
        for time, raw in reader:
            header = raw[: _LINK_HEADER[link]]
            ethertype = int.from_bytes(raw[_ETHERTYPE_AT[link] : _ETHERTYPE_AT[link] + 2], "big")
            ip: dpkt.ip.IP | dpkt.ip6.IP6 | None = None
            if ethertype == 0x0800:
                ip = dpkt.ip.IP(raw[len(header):])
            elif ethertype == 0x86DD:
                ip = dpkt.ip6.IP6(raw[len(header):])
            tcp = getattr(ip, "data", None)
            if ip is None or not isinstance(tcp, dpkt.tcp.TCP) or len(tcp.data) <= 1 \
                    or tcp.flags & dpkt.tcp.TH_SYN:
                writer.writepkt(raw, time)
                continue
            cut += 1
            last = len(tcp.data) - 1
            for i in range(len(tcp.data)):
                flags = tcp.flags if i == last else tcp.flags & _NOT_BEFORE_THE_END
                piece = dpkt.tcp.TCP(sport=tcp.sport, dport=tcp.dport, seq=(tcp.seq + i) % 2**32,
                                     ack=tcp.ack, flags=flags, win=tcp.win,
                                     data=tcp.data[i : i + 1])
                packet: dpkt.ip.IP | dpkt.ip6.IP6
                if isinstance(ip, dpkt.ip.IP):
                    packet = dpkt.ip.IP(src=ip.src, dst=ip.dst, p=ip.p, ttl=ip.ttl, data=piece)
                else:
                    packet = dpkt.ip6.IP6(src=ip.src, dst=ip.dst, nxt=ip.nxt, hlim=ip.hlim,
                                          data=piece)
                    packet.plen = len(bytes(piece))
                writer.writepkt(header + bytes(packet), time + i * _SPACING)
    return cut


def _outcomes(path: Path, keys: Path | None) -> list[tuple[str, str, str, tuple[str, ...]]]:
    warnings: list[CaptureWarning] = []
    run = Analysis(secrets=load_keylog(keys.read_bytes()) if keys else None)
    found = [d for d in analyze(read_captures([str(path)], warnings, run.add_secrets), run)
             if isinstance(d, Diagnosis)]
    return sorted((d.attempt.client, d.verdict.value, d.primary.check if d.primary else "",
                   tuple(sorted(f.check for f in d.findings))) for d in found)


@pytest.mark.parametrize("name", PCAPS)
def test_one_byte_segments_say_what_the_capture_says(name: str, tmp_path: Path) -> None:
    source = CAPTURES / name
    keys = source.with_suffix(".keys")
    recut = tmp_path / name
    if one_byte_segments(source, recut) == 0:
        pytest.skip("no TCP payload of more than one byte to cut")
    assert _outcomes(recut, keys if keys.exists() else None) == \
        _outcomes(source, keys if keys.exists() else None)
