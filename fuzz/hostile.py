"""Hostile captures, written streaming with struct (never held in memory, never committed).

    python -m fuzz.hostile syn-flood /tmp/flood.pcap 1000000
    python -m fuzz.hostile endless-head /tmp/endless.pcap 10000000
    python -m fuzz.hostile many-headers /tmp/headers.pcap 10000
    python -m fuzz.hostile rejected-storm /tmp/storm.pcap 1000000
    python -m fuzz.hostile open-websockets /tmp/open.pcap 50000
    python -m fuzz.hostile long-target-storm /tmp/long.pcap 5000
    python -m fuzz.hostile trickled-line /tmp/trickled.pcap 60000
    python -m fuzz.hostile trickled-words /tmp/words.pcap 8000

Each capture ends with one ordinary, valid WebSocket handshake (client 10.9.9.9) so a test can
check that the run still finishes with the right result for the rest of the traffic.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import sys
from collections.abc import Callable, Iterator
from typing import BinaryIO

_PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
_RECORD = struct.Struct("<IIII")
_ETH = bytes(6) + bytes(5) + b"\x01" + b"\x08\x00"
_IP = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBBHHH")

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
START = 1_700_000_000.0

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = base64.b64encode(
    hashlib.sha1((KEY + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
).decode()
WS_REQUEST = (
    "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
    f"Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
).encode()
WS_RESPONSE = (
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    f"Sec-WebSocket-Accept: {ACCEPT}\r\n\r\n"
).encode()


def frame(src: bytes, sport: int, dst: bytes, dport: int, seq: int, ack: int, flags: int,
          payload: bytes = b"") -> bytes:
    """An Ethernet/IPv4/TCP frame (checksums left zero: the analyzer does not check them)."""
    tcp = _TCP.pack(sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0, 0)
    ip = _IP.pack(0x45, 0, 20 + len(tcp) + len(payload), 0, 0x4000, 64, 6, 0, src, dst)
    return _ETH + ip + tcp + payload


class PcapWriter:
    """Appends records to a classic pcap file as they are made."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        out.write(_PCAP_HEADER)
        self.records = 0

    def write(self, time: float, data: bytes) -> None:
        sec = int(time)
        self._out.write(_RECORD.pack(sec, int((time - sec) * 1e6), len(data), len(data)) + data)
        self.records += 1


class Conversation:
    """A client and a server exchanging segments, with sequence numbers kept for them."""

    def __init__(self, writer: PcapWriter, client: bytes, cport: int, server: bytes,
                 sport: int, time: float) -> None:
        self.w = writer
        self.ends = ((client, cport), (server, sport))
        self.seq = [1000, 5000]
        self.time = time

    def send(self, side: int, flags: int, payload: bytes = b"", *, seq: int | None = None,
             gap: float = 0.001) -> None:
        (src, sp), (dst, dp) = self.ends[side], self.ends[1 - side]
        start = self.seq[side] if seq is None else seq
        self.time += gap
        self.w.write(self.time, frame(src, sp, dst, dp, start, self.seq[1 - side], flags, payload))
        if seq is None:
            self.seq[side] += len(payload) + (1 if flags & (SYN | FIN) else 0)

    def handshake(self) -> None:
        self.seq[0] -= 1
        self.seq[1] -= 1
        self.send(0, SYN)
        self.send(1, SYN | ACK)
        self.send(0, ACK)


def good_handshake(w: PcapWriter, time: float) -> None:
    """One valid WebSocket handshake, a Close handshake 3 s later (1000, the client's masked
    with a zero key) and a FIN from each side: 10.9.9.9 -> 10.0.0.2:80. (A FIN without the
    Close after the watch window would be a `dropped` connection.)"""
    c = Conversation(w, bytes([10, 9, 9, 9]), 50000, bytes([10, 0, 0, 2]), 80, time)
    c.handshake()
    c.send(0, PSH | ACK, WS_REQUEST)
    c.send(1, PSH | ACK, WS_RESPONSE)
    c.send(0, PSH | ACK, b"\x88\x82\x00\x00\x00\x00\x03\xe8", gap=3.0)
    c.send(1, PSH | ACK, b"\x88\x02\x03\xe8")
    c.send(0, FIN | ACK)
    c.send(1, FIN | ACK)


def _flood_sources(n: int) -> Iterator[tuple[bytes, int]]:
    for i in range(n):
        yield struct.pack("!I", 0x0B000000 + i // 50000), 10000 + i % 50000


def syn_flood(out: BinaryIO, n: int, rate: float = 100_000.0) -> None:
    """`n` SYNs from distinct (spoofed) sources to 10.0.0.2:80, none answered, at `rate`/s,
    then one good handshake."""
    w = PcapWriter(out)
    server = bytes([10, 0, 0, 2])
    step = 1.0 / rate
    time = START
    for i, (src, port) in enumerate(_flood_sources(n)):
        time = START + i * step
        w.write(time, frame(src, port, server, 80, i * 7919, 0, SYN))
    good_handshake(w, time + 0.01)


def endless_head(out: BinaryIO, size: int, segment: int = 1400) -> None:
    """A request line and then `size` bytes of header lines with no empty line, then a good
    handshake on another connection."""
    w = PcapWriter(out)
    c = Conversation(w, bytes([10, 7, 7, 7]), 40000, bytes([10, 0, 0, 2]), 80, START)
    c.handshake()
    c.send(0, PSH | ACK, b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n")
    line = b"X-Filler: " + b"a" * 60 + b"\r\n"
    chunk = line * (segment // len(line))
    sent = 0
    while sent < size:
        c.send(0, ACK, chunk, gap=0.0001)
        sent += len(chunk)
    good_handshake(w, c.time + 0.01)


def many_headers(out: BinaryIO, count: int) -> None:
    """A WebSocket request with `count` extra header fields, answered with a 101, then a good
    handshake."""
    w = PcapWriter(out)
    c = Conversation(w, bytes([10, 8, 8, 8]), 40000, bytes([10, 0, 0, 2]), 80, START)
    c.handshake()
    # Two-letter names (676 distinct, so many repeat) keep 10,000 fields under the 64 KiB
    # a head may have.
    letters = b"abcdefghijklmnopqrstuvwxyz"
    extra = b"".join(b"%c%c:1\r\n" % (letters[i // 26 % 26], letters[i % 26])
                     for i in range(count))
    request = WS_REQUEST[:-2] + extra + b"\r\n"
    for i in range(0, len(request), 1400):
        c.send(0, ACK, request[i : i + 1400], gap=0.0001)
    c.send(1, PSH | ACK, WS_RESPONSE)
    c.send(0, FIN | ACK, gap=3.0)
    c.send(1, FIN | ACK)
    good_handshake(w, c.time + 0.01)


FORBIDDEN = (b"HTTP/1.1 403 Forbidden\r\nServer: nginx\r\nContent-Length: 0\r\n"
             b"Connection: close\r\n\r\n")


def _storm_request(i: int) -> bytes:
    """A WebSocket request with a key of its own (as every reconnect draws a new one)."""
    key = base64.b64encode(struct.pack("!QQ", i, 0x5EED)).decode()
    return WS_REQUEST.replace(KEY.encode(), key.encode())


def _storm_client(i: int) -> tuple[bytes, int]:
    """200 client hosts, each reconnecting from port after port (a reconnect loop)."""
    return struct.pack("!I", 0x0C000000 + i % 200), 10000 + (i // 200) % 50000


def _many_connections(out: BinaryIO, n: int, rate: float,
                      exchange: Callable[[Conversation, int], None]) -> None:
    """`n` connections to 10.0.0.2:80 started at `rate`/s from 200 clients, each a handshake
    then `exchange(conversation, i)`, then one good handshake."""
    w = PcapWriter(out)
    server = bytes([10, 0, 0, 2])
    time = START
    for i in range(n):
        time = START + i / rate
        client, port = _storm_client(i)
        c = Conversation(w, client, port, server, 80, time)
        c.handshake()
        exchange(c, i)
    good_handshake(w, time + 0.01)


def rejected_storm(out: BinaryIO, n: int, rate: float = 2000.0) -> None:
    """A reconnect storm: `n` whole connections to 10.0.0.2:80, each a WebSocket handshake
    refused with 403 and closed (7 frames), started at `rate`/s from 200 clients, then one
    good handshake."""

    def refused(c: Conversation, i: int) -> None:
        c.send(0, PSH | ACK, _storm_request(i), gap=0.0001)
        c.send(1, PSH | ACK, FORBIDDEN, gap=0.0001)
        c.send(1, FIN | ACK, gap=0.0001)
        c.send(0, FIN | ACK, gap=0.0001)

    _many_connections(out, n, rate, refused)


LONG_TARGET = 8000  # bytes of each long-target-storm request's path (within nginx's 8 KiB)


def long_target_storm(out: BinaryIO, n: int, rate: float = 2000.0) -> None:
    """`rejected_storm` whose every request has a path of its own, `LONG_TARGET` bytes long
    (no secret in it: a crawler's or a broken client's generated paths): what the report
    remembers of the texts it cleans and formats must not grow with them
    (analyzer/remembered.py)."""

    def refused(c: Conversation, i: int) -> None:
        path = f"/chat/{i:08d}/".encode()
        path += b"p" * (LONG_TARGET - len(path))
        c.send(0, PSH | ACK, _storm_request(i).replace(b"GET /chat ", b"GET " + path + b" "),
               gap=0.0001)
        c.send(1, PSH | ACK, FORBIDDEN, gap=0.0001)
        c.send(1, FIN | ACK, gap=0.0001)
        c.send(0, FIN | ACK, gap=0.0001)

    _many_connections(out, n, rate, refused)


def trickled_line(out: BinaryIO, size: int) -> None:
    """A WebSocket request whose request line, with a path of `size` bytes, comes one byte a
    segment (a slow or hostile client): see `trickled_request`."""
    path = b"/chat/" + b"t" * max(0, size - len(b"/chat/"))
    trickled_request(out, WS_REQUEST.replace(b"GET /chat ", b"GET " + path + b" "))


def trickled_words(out: BinaryIO, size: int) -> None:
    """A WebSocket request whose request line has `size` bytes of words before its path
    (``GET a a a ... /chat HTTP/1.1``: not a plain one, a server answers 400), one byte a
    segment: see `trickled_request`."""
    trickled_request(out, WS_REQUEST.replace(b"GET /chat ", b"GET " + b"a " * (size // 2)
                                             + b"/chat "))


def trickled_request(out: BinaryIO, request: bytes) -> None:
    """`request` with its request line (up to its first LF) sent one byte a segment, the rest
    of its head in one, answered with a 101; then a good handshake. Reading it must cost
    linear time: each byte asks again whether the line is HTTP (http/start.py
    `classify_start`, exchange/tracker.py `_detect`)."""
    w = PcapWriter(out)
    c = Conversation(w, bytes([10, 7, 7, 7]), 40000, bytes([10, 0, 0, 2]), 80, START)
    c.handshake()
    line_end = request.index(b"GET ") + request[request.index(b"GET "):].index(b"\n") + 1
    for i in range(line_end):
        c.send(0, ACK, request[i : i + 1], gap=0.00001)
    c.send(0, PSH | ACK, request[line_end:])
    c.send(1, PSH | ACK, WS_RESPONSE)
    good_handshake(w, c.time + 0.01)


def open_websockets(out: BinaryIO, n: int, rate: float = 2000.0) -> None:
    """`n` WebSocket connections that switch (101) and then stay open and quiet to the end of
    the capture, started at `rate`/s from 200 clients, then one good handshake: every one is
    in the connection table at the end."""

    def switched(c: Conversation, i: int) -> None:
        request = _storm_request(i)
        key = request.split(b"Sec-WebSocket-Key: ")[1].split(b"\r\n")[0]
        accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
                                  .digest())
        c.send(0, PSH | ACK, request, gap=0.0001)
        c.send(1, PSH | ACK, WS_RESPONSE.replace(ACCEPT.encode(), accept), gap=0.0001)
        c.send(0, ACK, gap=0.0001)

    _many_connections(out, n, rate, switched)


KINDS: dict[str, Callable[[BinaryIO, int], None]] = {
    "syn-flood": syn_flood, "endless-head": endless_head, "many-headers": many_headers,
    "rejected-storm": rejected_storm, "open-websockets": open_websockets,
    "long-target-storm": long_target_storm, "trickled-line": trickled_line,
    "trickled-words": trickled_words,
}


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[1] not in KINDS:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    with open(argv[2], "wb", buffering=1 << 20) as out:
        KINDS[argv[1]](out, int(argv[3]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
