"""The segmentation of a capture never changes what it says: every bundled capture, with every
TCP payload re-cut into one-byte segments (same bytes, same sequence numbers, the other packets
as they were), in order or each segment's pieces last to first, gives the same attempts,
verdicts, reasons and findings. Only the frame numbers move.

A reader that decides on what one segment holds (a head, a record, a frame header, a version
digit) rather than on the bytes reassembled shows up here on real traffic, in every stage:
HTTP/1 heads, TLS records with their keys, HTTP/2 frames, WebSocket frames after a switch.
(The three pcapng captures are the same kinds of traffic as pcap files here.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dpkt
import pytest

from analyzer.pipeline import Analysis, analyze
from analyzer.source import CaptureWarning, read_captures
from analyzer.tls.keylog import load_keylog
from analyzer.verdict import Diagnosis

CAPTURES = Path(__file__).parents[1] / "captures"
PCAPS = sorted(p.name for p in CAPTURES.glob("*.pcap"))
_NOT_BEFORE_THE_END = ~(dpkt.tcp.TH_FIN | dpkt.tcp.TH_PUSH)  # flags only the last piece keeps


# link header lengths: Ethernet (without VLAN tags), Linux cooked capture v1 (`-i any`), BSD
# loopback (its 4-byte address family in the writer's byte order)
_LINK_HEADER = {dpkt.pcap.DLT_EN10MB: 14, dpkt.pcap.DLT_LINUX_SLL: 16, dpkt.pcap.DLT_NULL: 4}
_ETHERTYPE_AT = {dpkt.pcap.DLT_EN10MB: 12, dpkt.pcap.DLT_LINUX_SLL: 14}
_BSD_FAMILY = {2: 0x0800, 24: 0x86DD, 28: 0x86DD, 30: 0x86DD}  # AF_INET, the AF_INET6s


def _ethertype(link: int, raw: bytes) -> int:
    if link == dpkt.pcap.DLT_NULL:
        family = int.from_bytes(raw[:4], "little") or int.from_bytes(raw[:4], "big")
        family = family if family < 256 else int.from_bytes(raw[:4], "big")
        return _BSD_FAMILY.get(family, 0)
    return int.from_bytes(raw[_ETHERTYPE_AT[link] : _ETHERTYPE_AT[link] + 2], "big")


def cut_segments(source: Path, target: Path, size: int = 1, backwards: bool = False) -> int:
    """Writes ``source`` with each TCP payload cut into ``size``-byte segments (the pieces of
    one segment last to first when ``backwards``: reordered as a network may); returns how
    many segments were cut. A FIN or PSH stays on the last piece; anything not TCP over IP
    is copied as it is."""
    cut = 0
    with source.open("rb") as src, target.open("wb") as dst:
        reader = dpkt.pcap.Reader(src)
        link = reader.datalink()
        assert link in _LINK_HEADER, (source.name, link)
        writer = dpkt.pcap.Writer(dst, snaplen=262144, linktype=link)
        for time, raw in reader:
            header = raw[: _LINK_HEADER[link]]
            ethertype = _ethertype(link, raw)
            ip: dpkt.ip.IP | dpkt.ip6.IP6 | None = None
            if ethertype == 0x0800:
                ip = dpkt.ip.IP(raw[len(header):])
            elif ethertype == 0x86DD:
                ip = dpkt.ip6.IP6(raw[len(header):])
            tcp = getattr(ip, "data", None)
            if ip is None or not isinstance(tcp, dpkt.tcp.TCP) or len(tcp.data) <= size \
                    or tcp.flags & dpkt.tcp.TH_SYN:
                writer.writepkt(raw, time)
                continue
            cut += 1
            starts = range(0, len(tcp.data), size)
            for i in reversed(starts) if backwards else starts:
                last = i + size >= len(tcp.data)
                flags = tcp.flags if last else tcp.flags & _NOT_BEFORE_THE_END
                piece = dpkt.tcp.TCP(sport=tcp.sport, dport=tcp.dport, seq=(tcp.seq + i) % 2**32,
                                     ack=tcp.ack, flags=flags, win=tcp.win,
                                     data=tcp.data[i : i + size])
                packet: dpkt.ip.IP | dpkt.ip6.IP6
                if isinstance(ip, dpkt.ip.IP):
                    packet = dpkt.ip.IP(src=ip.src, dst=ip.dst, p=ip.p, ttl=ip.ttl, data=piece)
                else:
                    packet = dpkt.ip6.IP6(src=ip.src, dst=ip.dst, nxt=ip.nxt, hlim=ip.hlim,
                                          data=piece)
                    packet.plen = len(bytes(piece))
                writer.writepkt(header + bytes(packet), time)  # the pieces arrive together
    return cut


def _outcomes(path: Path, keys: Path | None) -> list[tuple[str, str, str, tuple[str, ...]]]:
    warnings: list[CaptureWarning] = []
    run = Analysis(secrets=load_keylog(keys.read_bytes()) if keys else None)
    found = [d for d in analyze(read_captures([str(path)], warnings, run.add_secrets), run)
             if isinstance(d, Diagnosis)]
    return sorted((d.attempt.client, d.verdict.value, d.primary.check if d.primary else "",
                   tuple(sorted(f.check for f in d.findings))) for d in found)


@pytest.mark.parametrize("backwards", [False, True], ids=["in-order", "backwards"])
@pytest.mark.parametrize("name", PCAPS)
def test_one_byte_segments_say_what_the_capture_says(name: str, backwards: bool,
                                                     tmp_path: Path) -> None:
    source = CAPTURES / name
    keys = source.with_suffix(".keys")
    recut = tmp_path / name
    if cut_segments(source, recut, backwards=backwards) == 0:
        pytest.skip("no TCP payload of more than one byte to cut")
    assert _outcomes(recut, keys if keys.exists() else None) == \
        _outcomes(source, keys if keys.exists() else None)


REAL_WORLD = Path(__file__).resolve().parents[1].parent / "shared" / "real-world"


def _real_world_pcaps() -> list[str]:
    """The corpus's pcap files whose link type the cutter knows (not its pcapngs)."""
    found = []
    for path in sorted(REAL_WORLD.rglob("*.pcap")) if REAL_WORLD.is_dir() else []:
        try:
            with path.open("rb") as file:
                if dpkt.pcap.Reader(file).datalink() in _LINK_HEADER:
                    found.append(str(path.relative_to(REAL_WORLD)))
        except ValueError:  # not a pcap file (the corpus keeps one such on purpose)
            continue
    return found


def _real_world_cases() -> list[Any]:
    cases = []
    for name in _real_world_pcaps():
        cases.append(pytest.param(name, False, id=f"{name}-in-order"))
        # Three of them begin mid-connection, their first request or response in the first
        # segment captured: cut backwards, the first piece seen is that segment's last, and
        # the bytes before it were once taken for old ones (reassembly/delivery.py
        # `_end_hold` says why they are not any more).
        cases.append(pytest.param(name, True, id=f"{name}-backwards"))
    return cases


@pytest.mark.skipif(not REAL_WORLD.is_dir(),
                    reason=f"real-world captures not present at {REAL_WORLD}")
@pytest.mark.parametrize(("name", "backwards"), _real_world_cases())
def test_small_segments_of_captures_by_other_people(name: str, backwards: bool,
                                                    tmp_path: Path) -> None:
    """The same on captures other people made (Zeek, Suricata, nDPI...): mid-stream starts,
    retransmissions, fuzz-mutated heads. One-byte segments, or pieces of a size that keeps a
    large capture near 40,000 of them (nDPI's 1kxun.pcap: 2.2 MB of payload)."""
    source = REAL_WORLD / name
    recut = tmp_path / source.name
    size = max(1, _payload_bytes(source) // 40_000)
    if cut_segments(source, recut, size, backwards) == 0:
        pytest.skip(f"no TCP payload of more than {size} bytes to cut")
    assert _outcomes(recut, None) == _outcomes(source, None)


def _payload_bytes(path: Path) -> int:
    """An upper bound of the TCP payload in a capture: its packets' lengths."""
    with path.open("rb") as file:
        return sum(len(raw) for _, raw in dpkt.pcap.Reader(file))
