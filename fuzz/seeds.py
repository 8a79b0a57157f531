"""Starting inputs of the fuzz targets (fuzz/targets.py), cut from the bundled captures and
from captures the tests' conversation builder writes (the shapes no bundled capture has: IP
fragments, Fast Open, a snapshot length, a capture started inside a head, a connection's
second copy, VLAN tags), and the pcapng copy of a pcap that the fast path's target and
tests/test_pipeline.py read."""

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
    bundled = sorted(p.read_bytes() for p in CAPTURES.glob("*.pcap*"))
    files = bundled + built_captures()
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
        # IPv4 headers with options (the flags byte's bits 1-3: 4-byte words of them), the
        # first fragment's and the others' of different lengths
        pieces = [FRAGMENT.pack(4, n * 2, int(n < 2) | (6 if n == 0 else 2 * n), 1, 16)
                  + tcp[n * 16:][:16] for n in range(3)]
        out += [b"".join(pieces), b"".join(reversed(pieces))]
        return out
    frames = [f for raw in files for f in read_bytes(raw, [])]
    if target == "decode":  # the first bundled frames, and every built capture's few
        built = [f for raw in files[len(bundled):] for f in list(read_bytes(raw, []))[:12]]
        return [bytes([LINKTYPES.index(f.linktype)]) + f.data for f in frames[:200] + built
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


def built_captures() -> list[bytes]:
    """Captures of the shapes the bundled ones lack, written by the tests' conversation
    builder (tests/builder.py): a WebSocket handshake in IP fragments (IPv4 in order and
    reversed with a duplicate, IPv6), Fast Open SYNs carrying a request and a ClientHello,
    snapshot lengths of 96 and 200 bytes, a capture started inside a request head, a
    finished connection's second copy, and 802.1Q and QinQ tags."""
    from tests.builder import (
        Conversation,
        Opcode,
        fragment_frame,
        http_response,
        pcap_bytes,
        websocket_request,
        websocket_response,
    )

    def handshake(port: int, start: float = 1_700_000_000.0, client: str = "10.0.0.1",
                  server: str = "10.0.0.2", fast_open: bytes = b"") -> Conversation:
        conv = Conversation(client=(client, port), server=(server, 8080), start=start,
                            isn_client=port * 7, isn_server=port * 11)
        request = websocket_request("example.com", "/ws")
        if fast_open:
            conv.fast_open(fast_open)
        else:
            conv.handshake()
            conv.client(request)
        if fast_open[:1] != b"\x16":
            conv.server(websocket_response(), delay=0.002)
            conv.client_ws_frame(Opcode.TEXT, "hello")
            conv.server_ws_frame(Opcode.TEXT, "hello")
            conv.client_ws_close(1000, delay=0.1)
            conv.server_ws_close(1000)
        conv.client_fin()
        conv.server_fin()
        return conv

    def pcap(packets: list[tuple[float, bytes]]) -> bytes:
        out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
        for when, frame in packets:
            sec = int(when)
            out.append(struct.pack("<IIII", sec, round((when - sec) * 1e6), len(frame),
                                   len(frame)) + frame)
        return b"".join(out)

    out = []
    for conv, size in ((handshake(50001), 64), (handshake(50002, client="fd00::1",
                                                           server="fd00::2"), 48)):
        pieces = [(when, piece) for when, frame in conv.packets()
                  for piece in fragment_frame(frame, size)]
        out.append(pcap(pieces))
        if size == 64:  # each datagram's fragments reversed, one of them twice
            reordered = []
            for when, frame in conv.packets():
                cut = fragment_frame(frame, size)[::-1]
                reordered += [(when, p) for p in cut + cut[:1] * (len(cut) > 1)]
            out.append(pcap(reordered))
    request = websocket_request("example.com", "/ws")
    out.append(pcap_bytes([handshake(50003, fast_open=request)]))
    out.append(pcap_bytes([handshake(50004, fast_open=_client_hello())]))
    for snaplen in (96, 200):
        out.append(pcap_bytes([handshake(50005)], snaplen=snaplen))
    mid = Conversation(client=("10.0.0.1", 50006), server=("10.0.0.2", 8080))
    mid.handshake()
    lines = [line + b"\r\n" for line in request.split(b"\r\n")[:-1]]
    for n, line in enumerate(lines):
        if n == 2:
            mid.client(line[:5], delay=0.4)
            mid.capture_starts_mid_stream()
            line = line[5:]
        mid.client(line, delay=0.01)
    mid.server(websocket_response(), delay=0.002)
    mid.client_fin(delay=2)
    mid.server_fin()
    out.append(pcap_bytes([mid]))
    copies = []
    for start in (1_700_000_000.0, 1_700_000_005.0):
        conv = Conversation(client=("10.0.0.1", 50007), server=("10.0.0.2", 80), start=start,
                            isn_client=1000, isn_server=1007)
        conv.handshake()
        conv.client(request)
        conv.server(http_response(403, "Forbidden", [("Content-Length", "0")]))
        conv.client_fin(0.01)
        conv.server_fin(0.001)
        conv.client_ack(0.001)
        copies.append(conv)
    out.append(pcap_bytes(copies))
    for linktype in ("vlan", "qinq"):
        out.append(pcap_bytes([handshake(50008)], linktype=linktype))
    return out


def _client_hello() -> bytes:
    """The first ClientHello of a bundled capture (a record as sent)."""
    raw = (CAPTURES / "tls_nginx_wrong_sni.pcap").read_bytes()
    for frame in read_bytes(raw, []):
        s = decode_frame(frame)
        if isinstance(s, Segment) and not _not_a_client_hello(s.payload):
            return s.payload
    raise LookupError("no ClientHello in tls_nginx_wrong_sni.pcap")


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
