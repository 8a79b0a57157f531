"""The bytes the benchmark generators write (generate.py, generate_tls.py): a classic pcap of
Ethernet/IPv4/TCP frames, one TCP connection's segments with both sides' sequence numbers, and
the HTTP/1.1 and WebSocket messages of the handshake scenarios."""

from __future__ import annotations

import base64
import hashlib
import random
import struct
from collections.abc import Iterator

# Conversation = a generator of (delay in seconds since its previous frame, frame bytes).
Conversation = Iterator[tuple[float, bytes]]

_PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)  # Ethernet, µs
_RECORD = struct.Struct("<IIII").pack
# IPv4 header (no options, DF, TTL 64, checksum left 0: no reader we use checks it) + TCP
# header (20 bytes, window 502).
_IP_TCP = struct.Struct("!BBHHHBBH4s4sHHIIBBHHH").pack
_ETH_TYPE_IPV4 = b"\x08\x00"

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
MSS = 1448
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

START_TIME = 1_700_000_000.0


class PcapWriter:
    """Streams Ethernet/IPv4/TCP frames into a classic pcap file."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "wb", buffering=1 << 20)  # noqa: SIM115 - closed in close()
        self._file.write(_PCAP_HEADER)
        self.frames = 0
        self.bytes = len(_PCAP_HEADER)

    def write(self, t: float, frame: bytes) -> None:
        sec = int(t)
        usec = int((t - sec) * 1_000_000)
        n = len(frame)
        self._file.write(_RECORD(sec, usec, n, n))
        self._file.write(frame)
        self.frames += 1
        self.bytes += 16 + n

    def close(self) -> None:
        self._file.close()


class Tcp:
    """One TCP connection's frame factory: keeps both sides' sequence numbers.

    Side 0 is the client, side 1 the server. ``seg`` builds a frame and, unless told the
    sequence number, advances the sender's.
    """

    def __init__(self, rng: random.Random, client: tuple[bytes, int], server: tuple[bytes, int]):
        self.ends = (client, server)
        self.seq = [rng.getrandbits(32), rng.getrandbits(32)]
        cmac = bytes((2, 0, 0, 0, rng.randrange(256), rng.randrange(256)))
        smac = b"\x02\x00\x00\x00\x00\x01"
        self._eth = (smac + cmac + _ETH_TYPE_IPV4, cmac + smac + _ETH_TYPE_IPV4)
        self._ident = rng.randrange(65536)
        self.acking = [False, False]  # whether the side has seen the peer's SYN (sets ACK)

    def seg(self, side: int, flags: int, payload: bytes = b"", seq: int | None = None) -> bytes:
        (src, sport), (dst, dport) = self.ends[side], self.ends[1 - side]
        if seq is None:
            seq = self.seq[side]
            self.seq[side] = (seq + len(payload) + (1 if flags & (SYN | FIN) else 0)) & 0xFFFFFFFF
        if self.acking[side]:
            flags |= ACK
        ack = self.seq[1 - side] if flags & ACK else 0
        self._ident = (self._ident + 1) & 0xFFFF
        return self._eth[side] + _IP_TCP(
            0x45, 0, 40 + len(payload), self._ident, 0x4000, 64, 6, 0, src, dst,
            sport, dport, seq, ack, 0x50, flags, 502, 0, 0,
        ) + payload

    def syn(self) -> bytes:
        return self.seg(0, SYN)

    def syn_ack(self) -> bytes:
        self.acking = [True, True]
        return self.seg(1, SYN | ACK)

    def ack(self, side: int) -> bytes:
        return self.seg(side, ACK)

    def segments(self, side: int, data: bytes, sizes: list[int] | None = None) -> list[bytes]:
        """``data`` cut into MSS-sized (or ``sizes``) segments, the last one with PSH."""
        out = []
        pos = 0
        cuts = iter(sizes or ())
        while pos < len(data):
            n = next(cuts, MSS)
            chunk = data[pos : pos + n]
            pos += len(chunk)
            out.append(self.seg(side, PSH if pos >= len(data) else 0, chunk))
        return out


def ws_request(key: bytes, version: str = "13", upgrade: bool = True) -> bytes:
    lines = ["GET /chat HTTP/1.1", "Host: chat.example:8080",
             "User-Agent: Mozilla/5.0 (X11; Linux x86_64) bench", "Origin: http://chat.example"]
    if upgrade:
        lines += ["Upgrade: websocket", "Connection: Upgrade",
                  f"Sec-WebSocket-Key: {key.decode()}", f"Sec-WebSocket-Version: {version}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def ws_accept(key: bytes) -> str:
    return base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()


def ws_switch(accept: str) -> bytes:
    return (f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode()


def ws_frame(opcode: int, payload: bytes, mask: bytes | None) -> bytes:
    head = bytes((0x80 | opcode,))
    length = len(payload)
    mbit = 0x80 if mask else 0
    if length < 126:
        head += bytes((mbit | length,))
    else:
        head += bytes((mbit | 126,)) + length.to_bytes(2, "big")
    if not mask:
        return head + payload
    key = int.from_bytes((mask * (length // 4 + 1))[:length], "big")
    return head + mask + (int.from_bytes(payload, "big") ^ key).to_bytes(length, "big")


def response(status: int, reason: str, headers: list[str], body: bytes = b"") -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}", *headers, f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def gap(rng: random.Random, low: float = 20e-6, high: float = 300e-6) -> float:
    return rng.uniform(low, high)


def tcp_open(tcp: Tcp, rng: random.Random) -> Conversation:
    yield gap(rng), tcp.syn()
    yield gap(rng, 1e-4, 1e-3), tcp.syn_ack()
    yield gap(rng), tcp.ack(0)


def tcp_close(tcp: Tcp, rng: random.Random, first: int) -> Conversation:
    yield gap(rng), tcp.seg(first, FIN)
    yield gap(rng), tcp.seg(1 - first, FIN)
    yield gap(rng), tcp.ack(first)
