"""Starting inputs of the fuzz targets (fuzz/targets.py), cut from the bundled captures, and
the pcapng copy of a pcap that the fast path's target and tests/test_pipeline.py read."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

from analyzer.decode.decoder import decode_frame
from analyzer.decode.segment import Segment
from analyzer.exchange.first_bytes import H2_PREFACE
from analyzer.source import read_bytes
from fuzz import tls_plaintext
from fuzz.targets import CAPTURES, FRAGMENT, FRAGMENT_TCP, LINKTYPES, OPERATION


def seeds(target: str) -> list[bytes]:
    """Starting inputs for a target, cut from the bundled captures (captures/*.pcap*)."""
    files = sorted(p.read_bytes() for p in CAPTURES.glob("*.pcap*"))
    if target in ("capture", "pipeline"):
        return files + [gzip.compress(f, mtime=0) for f in files[:3]]
    if target == "fast_path":  # the compiled skip reads classic pcap and pcapng
        pcaps = [f for f in files if f[:4] == b"\xd4\xc3\xb2\xa1"] + [_benchmark_mix()]
        return files + [pcapng_copy(f) for f in pcaps] + pcaps[-1:]
    if target == "gzip":
        return files
    if target == "fragments":  # a TCP segment in 3 pieces in order, reversed, overlapping
        out = []
        tcp = FRAGMENT_TCP + b"GET / HTTP/1.1\r\n\r\n" + b"x" * 10  # 48 bytes
        for version in (0, 1):
            pieces = [FRAGMENT.pack(version | 2, n * 2, int(n < 2), 1, 16) + tcp[n * 16:][:16]
                      for n in range(3)]
            out += [b"".join(pieces), b"".join(reversed(pieces)),
                    b"".join(pieces[:2]) + FRAGMENT.pack(version | 2, 1, 1, 1, 16) + b"x" * 16
                    + pieces[2]]
        return out
    frames = [f for raw in files for f in read_bytes(raw, [])]
    if target == "decode":
        return [bytes([LINKTYPES.index(f.linktype)]) + f.data for f in frames[:200]
                if f.linktype in LINKTYPES]
    payloads = [s.payload for f in frames if isinstance(s := decode_frame(f), Segment)
                if s.payload]
    if target == "http":
        return [p for p in payloads if p[:4] in (b"GET ", b"HTTP", b"POST", b"CONN")][:100]
    if target == "websocket":
        return [p for p in payloads if p[:4] not in (b"GET ", b"HTTP")][:100]
    if target == "http2":  # each HTTP/2 connection's two directions, in http2()'s format
        out = []
        for sides in _directions(files):
            streams = sorted(sides, key=lambda b: not b.startswith(H2_PREFACE))
            if len(streams) == 2 and streams[0].startswith(H2_PREFACE):
                client = streams[0][len(H2_PREFACE):]
                out.append(b"\x03" + len(client).to_bytes(2, "big") + client + streams[1])
        return out
    if target == "tls_plaintext":  # each keyed connection's records, opened
        # each as captured, and slowed down (3 s a packet, small segments) so that an upgrade
        # goes past its watch into life
        return [tls_plaintext.seed(i, t, shape) for shape in (0, 0x21)
                for i, t in enumerate(tls_plaintext.templates())]
    if target == "tls":  # each TLS connection's two directions, in tls()'s input format
        out = []
        for sides in _directions(files):
            streams = sorted(sides, key=_not_a_client_hello)
            if len(streams) == 2 and not _not_a_client_hello(streams[0]):
                client = streams[0]
                out.append(b"\x05" + len(client).to_bytes(2, "big") + client + streams[1])
        return out[:60]
    # reassembly / tracker: one conversation per capture, re-encoded as operations.
    out = []
    for raw in files:
        ops = bytearray()
        bases: dict[int, int] = {}
        for f in read_bytes(raw, []):
            s = decode_frame(f)
            if not isinstance(s, Segment):
                continue
            side = 0 if not bases or s.sport == next(iter(bases)) else 1
            bases.setdefault(s.sport, s.seq - (0 if s.flags & 0x02 else 1))
            seq = (s.seq - bases[s.sport]) & 0xFFFF
            head = (side << 7) | (s.flags & 0x1F)
            ops += OPERATION.pack(head, seq, 0, len(s.payload)) + s.payload
        out.append(bytes(ops))
    return out


def _directions(files: list[bytes]) -> list[list[bytes]]:
    """Each TCP connection of each capture as the bytes its ports sent (by port pair; the
    bundled captures use each pair once)."""
    out = []
    for raw in files:
        connections: dict[tuple[int, int], dict[int, bytearray]] = {}
        for f in read_bytes(raw, []):
            s = decode_frame(f)
            if isinstance(s, Segment) and s.payload:
                ports = (min(s.sport, s.dport), max(s.sport, s.dport))
                connections.setdefault(ports, {}).setdefault(s.sport, bytearray()).extend(
                    s.payload)
        out += [[bytes(b) for b in sides.values()] for sides in connections.values()]
    return out


def _not_a_client_hello(stream: bytes | bytearray) -> bool:
    return stream[:1] != b"\x16" or stream[5:6] != b"\x01"  # handshake record, ClientHello


def _benchmark_mix() -> bytes:
    """A small capture of the benchmark generator's mix: mostly bulk connections the analyzer
    ignores, so most records go through the compiled skip (the bundled captures are nearly all
    handshake)."""
    import sys
    import tempfile

    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    try:
        from generate import generate
    finally:
        sys.path.pop(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mix.pcap"
        generate(str(path), 150_000, seed=5, concurrency=8)
        return path.read_bytes()


def pcapng_copy(pcap: bytes) -> bytes:
    """The records of a little-endian microsecond pcap as pcapng, with what the pcapng reader
    and its compiled skip must handle: two interfaces of the pcap's link type used in turn, a
    Linux cooked one no packet uses, and a block that is not a packet every 1000 records."""

    def block(kind: int, body: bytes) -> bytes:
        body += b"\x00" * (-len(body) % 4)
        return struct.pack("<II", kind, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))

    linktype = struct.unpack_from("<I", pcap, 20)[0] & 0xFFFF
    out = [block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))]
    out += [block(1, struct.pack("<HHI", lt, 0, 65535)) for lt in (linktype, linktype, 113)]
    pos, n = 24, 0
    while pos + 16 <= len(pcap):
        sec, usec, incl, orig = struct.unpack_from("<IIII", pcap, pos)
        ticks = sec * 1_000_000 + usec
        out.append(block(6, struct.pack("<IIIII", n % 2, ticks >> 32, ticks & 0xFFFFFFFF, incl,
                                        orig) + pcap[pos + 16 : pos + 16 + incl]))
        if n % 1000 == 999:
            out.append(block(0x0BAD, b"not a packet"))
        pos += 16 + incl
        n += 1
    return b"".join(out)
