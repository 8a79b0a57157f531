"""Writes large, realistic, deterministic pcap files for benchmarks, with their ground truth.

Usage::

    python benchmarks/generate.py /tmp/bench-100M.pcap --size 100M [--seed 1]

writes the capture and ``/tmp/bench-100M.pcap.truth.json`` (override with ``--truth``).

How it works
------------
Many conversations run at once (``--concurrency``, 64 by default). Each is a Python generator
that yields ``(delay, frame bytes)``; a heap ordered by due time interleaves them, so the
capture is one realistic timeline of interleaved connections. When one conversation ends, a
new one starts, chosen at random with these weights:

- bulk non-HTTP TCP (TLS-looking bytes, 0.2 to 3 MB in full-size segments, an ACK every
  second segment): most of the bytes;
- chatty non-HTTP TCP (small binary messages both ways): a share of small packets, so that
  per-packet cost shows;
- ordinary HTTP/1.1 keep-alive exchanges with bodies (Content-Length and chunked, some
  POSTs): HTTP that must be followed but is not an upgrade attempt;
- one of a dozen handshake scenarios (``SCENARIOS``), some with the request split in
  segments, delivered out of order, or retransmitted.

Frames are Ethernet / IPv4 / TCP, built with precompiled ``struct`` packers and written through
a buffered file, so memory stays flat whatever the size. Every random choice comes from one
seeded ``random.Random``: the same arguments give the same bytes.

The truth file is JSON: ``{"attempts": [{"client", "server", "scenario", "verdict",
"reason"}...], "ordinary_http_exchanges": N, "frames": N, "bytes": N, ...}``. ``reason`` is
the primary finding id (see ``analyzer/checks/catalogue.py``), or null for a success.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import heapq
import json
import random
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class Mix:
    """What differs between the generated mixes (``--mix``); see MIXES."""

    name: str
    weights: tuple[float, float, float, float]  # bulk, chatty, ordinary HTTP, handshake
    conversations: bool = False  # a successful WebSocket carries a 2-30 message conversation
    ws_success_share: float = 0.0  # share of handshakes that are ws_success (else uniform)
    disorder: float = 0.0  # per bulk segment: chance of a swap with the next, or a resend
    max_body: int = 300_000  # ordinary HTTP response bodies (Pareto around 1 KB), capped


MIXES = {
    # The repo's mix (the default): a handshake per ~200 KB, short conversations after a switch.
    "default": Mix("default", (0.05, 0.2, 0.25, 0.5)),
    # Handshake-dense, like issue 15's independent capture: per 100 MB about 155 k frames,
    # 2 000 handshakes (40 % successful WebSockets, each with a conversation and a Close
    # handshake), 1 700 keep-alive HTTP exchanges, bulk TCP with reordering and resends.
    "dense": Mix("dense", (0.013, 0.03, 0.23, 0.69), conversations=True,
                 ws_success_share=0.4, disorder=0.01, max_body=60_000),
}


@dataclass
class Context:
    """What every conversation shares: randomness, address allocation, filler bytes, truth."""

    rng: random.Random
    truth: list[dict[str, object]]
    mix: Mix = MIXES["default"]
    winding_down: bool = False
    connections: int = 0
    ordinary_exchanges: int = 0

    def __post_init__(self) -> None:
        # Incompressible filler for bodies and bulk payloads: sliced, never regenerated.
        self.noise = self.rng.randbytes(1 << 20)

    def filler(self, n: int) -> bytes:
        start = self.rng.randrange(len(self.noise) - n) if n < len(self.noise) else 0
        return self.noise[start : start + n]

    def tcp(self, server_port: int = 80) -> Tcp:
        """A connection with a client endpoint used by no other connection in the capture."""
        n = self.connections
        self.connections += 1
        client_ip = bytes((10, 1 + n // 3_000_000 % 200, n // 30_000 % 100, 1 + n // 300 % 100))
        client_port = 20_000 + n % 300 * 100 + self.rng.randrange(100)
        server_ip = bytes((192, 168, 10, 1 + self.rng.randrange(20)))
        return Tcp(self.rng, (client_ip, client_port), (server_ip, server_port))


def endpoint(end: tuple[bytes, int]) -> str:
    ip, port = end
    return f"{'.'.join(map(str, ip))}:{port}"


def gap(rng: random.Random, low: float = 20e-6, high: float = 300e-6) -> float:
    return rng.uniform(low, high)


# --- non-HTTP and ordinary HTTP traffic ---------------------------------------------------------


def bulk(ctx: Context) -> Conversation:
    """A long TLS-looking download: full-size segments, an ACK every second one."""
    rng = ctx.rng
    tcp = ctx.tcp(443)
    mid_stream = rng.random() < 0.05  # the capture started after this connection did
    if not mid_stream:
        yield gap(rng), tcp.syn()
        yield gap(rng, 1e-4, 1e-3), tcp.syn_ack()
        yield gap(rng), tcp.ack(0)
        hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + ctx.filler(500)
        for frame in tcp.segments(0, hello):
            yield gap(rng), frame
    else:
        tcp.acking = [True, True]
    total = rng.randrange(200_000, 3_000_000)
    sent = 0
    disorder = ctx.mix.disorder
    while sent < total and not ctx.winding_down:
        n = min(MSS, total - sent)
        sent += n
        if disorder and rng.random() < disorder and sent < total:
            # the next segment first, then this one (reordered), or this one twice (resent)
            this = tcp.seg(1, 0, ctx.filler(n))
            if rng.random() < 0.5:
                m = min(MSS, total - sent)
                sent += m
                yield gap(rng, 5e-6, 60e-6), tcp.seg(1, 0, ctx.filler(m))
                yield gap(rng, 5e-6, 60e-6), this
            else:
                yield gap(rng, 5e-6, 60e-6), this
                yield gap(rng, 1e-3, 2e-2), this
        else:
            yield gap(rng, 5e-6, 60e-6), tcp.seg(1, 0, ctx.filler(n))
        if sent // MSS % 2 == 0:
            yield gap(rng, 5e-6, 40e-6), tcp.ack(0)
    yield from _close(tcp, rng, first=1)


def chatty(ctx: Context) -> Conversation:
    """A binary request/response protocol with small messages: many small packets."""
    rng = ctx.rng
    tcp = ctx.tcp(rng.choice((5432, 6379, 9092)))
    yield gap(rng), tcp.syn()
    yield gap(rng), tcp.syn_ack()
    yield gap(rng), tcp.ack(0)
    for _ in range(rng.randrange(20, 200)):
        if ctx.winding_down:
            break
        yield gap(rng), tcp.seg(0, PSH, b"\x00\x00" + ctx.filler(rng.randrange(20, 120)))
        yield gap(rng), tcp.seg(1, PSH, b"\x01\x00" + ctx.filler(rng.randrange(10, 300)))
        if rng.random() < 0.5:
            yield gap(rng), tcp.ack(0)
    yield from _close(tcp, rng, first=0)


def ordinary_http(ctx: Context) -> Conversation:
    """A keep-alive connection with 1 to 4 ordinary exchanges, bodies of 1 KB to 300 KB."""
    rng = ctx.rng
    tcp = ctx.tcp(rng.choice((80, 8080)))
    yield from _open(tcp, rng)
    for i in range(rng.randrange(1, 5)):
        path = f"/static/{rng.randrange(10**6)}.js"
        if rng.random() < 0.2:
            body = ctx.filler(rng.randrange(100, 20_000))
            request = (f"POST /api/items HTTP/1.1\r\nHost: shop.example\r\n"
                       f"Content-Type: application/octet-stream\r\n"
                       f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        else:
            request = (f"GET {path} HTTP/1.1\r\nHost: shop.example\r\nAccept: */*\r\n"
                       f"User-Agent: bench/{i}\r\n\r\n").encode()
        for frame in tcp.segments(0, request):
            yield gap(rng), frame
        yield gap(rng), tcp.ack(1)
        size = int(rng.paretovariate(1.2) * 1000)
        size = min(size, ctx.mix.max_body)
        body = ctx.filler(size)
        if rng.random() < 0.25:
            chunks = [body[j : j + 8192] for j in range(0, len(body), 8192)]
            payload = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
            head = b"HTTP/1.1 200 OK\r\nContent-Type: text/javascript\r\n" \
                   b"Transfer-Encoding: chunked\r\n\r\n"
        else:
            payload = body
            head = (f"HTTP/1.1 200 OK\r\nContent-Type: text/javascript\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n").encode()
        for k, frame in enumerate(tcp.segments(1, head + payload)):
            yield gap(rng, 5e-6, 80e-6), frame
            if k % 2:
                yield gap(rng, 5e-6, 40e-6), tcp.ack(0)
        ctx.ordinary_exchanges += 1
    yield from _close(tcp, rng, first=0)


def _open(tcp: Tcp, rng: random.Random) -> Conversation:
    yield gap(rng), tcp.syn()
    yield gap(rng, 1e-4, 1e-3), tcp.syn_ack()
    yield gap(rng), tcp.ack(0)


def _close(tcp: Tcp, rng: random.Random, first: int) -> Conversation:
    yield gap(rng), tcp.seg(first, FIN)
    yield gap(rng), tcp.seg(1 - first, FIN)
    yield gap(rng), tcp.ack(first)


# --- handshake scenarios ------------------------------------------------------------------------


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


H2C_REQUEST = (b"GET /api HTTP/1.1\r\nHost: grpc.example\r\nConnection: Upgrade, HTTP2-Settings\r\n"
               b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n")
H2C_SWITCH = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
H2_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # empty SETTINGS frame
H2_SETTINGS_ACK = b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"


class Handshake:
    """Helpers shared by the scenarios: send a request in the chosen delivery style."""

    def __init__(self, ctx: Context, tcp: Tcp, delivery: str) -> None:
        self.ctx, self.tcp, self.delivery = ctx, tcp, delivery

    def request(self, data: bytes) -> Conversation:
        rng, tcp = self.ctx.rng, self.tcp
        if self.delivery == "plain":
            for frame in tcp.segments(0, data):
                yield gap(rng), frame
            return
        cut = rng.randrange(10, len(data) - 10)
        first, second = tcp.segments(0, data, [cut, len(data)])
        if self.delivery == "split":
            yield gap(rng), first
            yield gap(rng, 1e-3, 5e-3), second
        elif self.delivery == "reordered":
            yield gap(rng), second
            yield gap(rng, 1e-4, 1e-3), first
        else:  # retransmitted: the first segment again, as after a lost ACK
            yield gap(rng), first
            yield gap(rng), second
            yield gap(rng, 2e-1, 3e-1), first

    def reply(self, data: bytes, side: int = 1) -> Conversation:
        rng = self.ctx.rng
        yield gap(rng, 1e-4, 2e-3), self.tcp.ack(1 - side)
        for frame in self.tcp.segments(side, data):
            yield gap(rng), frame


def scenario_ws_success(h: Handshake, key: bytes) -> Conversation:
    rng, tcp = h.ctx.rng, h.tcp
    yield from h.request(ws_request(key))
    yield from h.reply(ws_switch(ws_accept(key)))
    if h.ctx.mix.conversations:
        yield from _conversation(h)
    else:
        for i in range(rng.randrange(1, 5)):
            mask = rng.randbytes(4)
            yield gap(rng, 1e-3, 1e-2), tcp.seg(
                0, PSH, ws_frame(1, b'{"op":"ping","n":%d}' % i, mask))
            yield gap(rng, 1e-4, 1e-3), tcp.seg(1, PSH, ws_frame(1, b'{"op":"pong"}', None))
    yield gap(rng), tcp.seg(0, PSH, ws_frame(8, b"\x03\xe8", rng.randbytes(4)))
    yield gap(rng), tcp.seg(1, PSH, ws_frame(8, b"\x03\xe8", None))
    yield from _close(tcp, rng, first=1)


def _conversation(h: Handshake) -> Conversation:
    """The dense mix's WebSocket conversation: 2 to 30 messages (text and binary, 20 B to
    4 KB, the client's masked), either side speaking, an ACK now and then. Even at 30
    messages the Close handshake that follows is within the first 32 frames after the 101,
    the watch window's frame limit (analyzer/exchange/switch.py), so the verdict stays
    ``succeeded`` / ``ws_closed_normally``."""
    rng, tcp = h.ctx.rng, h.tcp
    for _ in range(rng.randrange(2, 31)):
        side = 0 if rng.random() < 0.45 else 1
        if rng.random() < 0.7:
            payload = b'{"op":"update","seq":%d,"data":"%s"}' % (
                rng.randrange(10**6), rng.randbytes(rng.randrange(8, 400)).hex().encode())
            opcode = 1
        else:
            payload, opcode = h.ctx.filler(rng.randrange(20, 4000)), 2
        frame = ws_frame(opcode, payload, rng.randbytes(4) if side == 0 else None)
        for segment in tcp.segments(side, frame):
            yield gap(rng, 1e-4, 5e-3), segment
        if rng.random() < 0.3:
            yield gap(rng, 2e-5, 2e-4), tcp.ack(1 - side)


def scenario_plain_get_400(h: Handshake, key: bytes) -> Conversation:
    yield from h.request(ws_request(key, upgrade=False))
    yield from h.reply(response(400, "Bad Request", ["Content-Type: text/plain"],
                                b'Can "Upgrade" only to "WebSocket".'))
    yield from _close(h.tcp, h.ctx.rng, first=0)


def scenario_ws_version_426(h: Handshake, key: bytes) -> Conversation:
    yield from h.request(ws_request(key, version="8"))
    yield from h.reply(response(426, "Upgrade Required",
                                ["Sec-WebSocket-Version: 13", "Upgrade: websocket",
                                 "Connection: Upgrade"]))
    yield from _close(h.tcp, h.ctx.rng, first=0)


def scenario_ws_wrong_accept(h: Handshake, key: bytes) -> Conversation:
    yield from h.request(ws_request(key))
    yield from h.reply(ws_switch(ws_accept(key[::-1])))
    yield from _close(h.tcp, h.ctx.rng, first=0)


def scenario_ws_close_1008(h: Handshake, key: bytes) -> Conversation:
    rng, tcp = h.ctx.rng, h.tcp
    yield from h.request(ws_request(key))
    yield from h.reply(ws_switch(ws_accept(key)))
    yield gap(rng, 1e-3, 5e-3), tcp.seg(1, PSH, ws_frame(8, b"\x03\xf0policy", None))
    yield gap(rng), tcp.seg(0, PSH, ws_frame(8, b"\x03\xf0", rng.randbytes(4)))
    yield from _close(tcp, rng, first=1)


def scenario_h2c_declined(h: Handshake, key: bytes) -> Conversation:
    yield from h.request(H2C_REQUEST)
    yield from h.reply(response(200, "OK", ["Content-Type: application/json"], b'{"ok":true}'))
    yield from _close(h.tcp, h.ctx.rng, first=0)


def scenario_h2c_success(h: Handshake, key: bytes) -> Conversation:
    rng, tcp = h.ctx.rng, h.tcp
    yield from h.request(H2C_REQUEST)
    yield from h.reply(H2C_SWITCH + H2_SETTINGS)
    yield gap(rng), tcp.seg(0, PSH, H2_PREFACE + H2_SETTINGS + H2_SETTINGS_ACK)
    yield gap(rng), tcp.seg(1, PSH, H2_SETTINGS_ACK + b"\x00\x00\x00\x04\x00\x00\x00\x00\x01")
    yield from _close(tcp, rng, first=0)


def scenario_no_response_server_fin(h: Handshake, key: bytes) -> Conversation:
    rng, tcp = h.ctx.rng, h.tcp
    yield from h.request(ws_request(key))
    yield gap(rng, 1e-3, 1e-2), tcp.ack(1)
    yield from _close(tcp, rng, first=1)


def scenario_refused(h: Handshake, key: bytes) -> Conversation:
    rng, tcp = h.ctx.rng, h.tcp
    yield gap(rng), tcp.seg(0, SYN)
    tcp.acking[1] = True
    yield gap(rng, 1e-4, 1e-3), tcp.seg(1, RST | ACK)


def scenario_syn_unanswered(h: Handshake, key: bytes) -> Conversation:
    rng, tcp = h.ctx.rng, h.tcp
    first = tcp.seg(0, SYN)
    yield gap(rng), first
    yield 1.0, first
    yield 2.0, first


def scenario_redirect_302(h: Handshake, key: bytes) -> Conversation:
    yield from h.request(ws_request(key))
    yield from h.reply(response(302, "Found", ["Location: https://chat.example/chat"]))
    yield from _close(h.tcp, h.ctx.rng, first=0)


def scenario_forbidden_403(h: Handshake, key: bytes) -> Conversation:
    yield from h.request(ws_request(key))
    yield from h.reply(response(403, "Forbidden", ["Content-Type: text/plain"], b"origin denied"))
    yield from _close(h.tcp, h.ctx.rng, first=0)


Scenario = Callable[[Handshake, bytes], Conversation]

# name -> (function, expected verdict, expected primary reason id or None, opens with a
# three-way handshake and an HTTP request that may be split/reordered/retransmitted).
SCENARIOS: dict[str, tuple[Scenario, str, str | None, bool]] = {
    "ws_success": (scenario_ws_success, "succeeded", "ws_closed_normally", True),
    "plain_get_400": (scenario_plain_get_400, "failed", "request_without_upgrade", True),
    "ws_version_426": (scenario_ws_version_426, "failed", "ws_version_not_13", True),
    "ws_wrong_accept": (scenario_ws_wrong_accept, "failed", "ws_accept_mismatch", True),
    "ws_close_1008": (scenario_ws_close_1008, "aborted", "ws_closed_with_error", True),
    "h2c_declined": (scenario_h2c_declined, "declined", "upgrade_declined", True),
    "h2c_success": (scenario_h2c_success, "succeeded", None, True),
    "no_response_server_fin": (scenario_no_response_server_fin, "no_response",
                               "no_response_server_closed", True),
    "refused": (scenario_refused, "refused", "tcp_refused", False),
    "syn_unanswered": (scenario_syn_unanswered, "no_response", "tcp_syn_unanswered", False),
    "redirect_302": (scenario_redirect_302, "failed", "response_redirect", True),
    "forbidden_403": (scenario_forbidden_403, "failed", "response_forbidden", True),
}
DELIVERIES = ("plain", "plain", "plain", "split", "reordered", "retransmitted")


def handshake(ctx: Context, name: str | None = None) -> Conversation:
    rng = ctx.rng
    share = ctx.mix.ws_success_share
    if name is None and share and rng.random() < share:
        name = "ws_success"
    name = name or rng.choice(sorted(SCENARIOS))
    function, verdict, reason, opens = SCENARIOS[name]
    tcp = ctx.tcp(rng.choice((80, 8080)))
    delivery = rng.choice(DELIVERIES) if opens else "plain"
    ctx.truth.append({
        "client": endpoint(tcp.ends[0]), "server": endpoint(tcp.ends[1]), "scenario": name,
        "delivery": delivery, "verdict": verdict, "reason": reason,
    })
    key = base64.b64encode(rng.randbytes(16))
    h = Handshake(ctx, tcp, delivery)
    if opens:
        yield from _open(tcp, rng)
    yield from function(h, key)


# --- the timeline -------------------------------------------------------------------------------

# Weights of the kind of conversation that starts when one ends. With their average sizes
# (bulk ~1.6 MB, ordinary HTTP ~40 KB, chatty ~25 KB, handshakes ~1 KB) bulk carries about
# 3/4 of the bytes and there is a handshake per ~150 KB of capture.
KINDS: tuple[tuple[Callable[[Context], Conversation], float], ...] = (
    (bulk, 0.05),
    (chatty, 0.2),
    (ordinary_http, 0.25),
    (handshake, 0.5),
)


def generate(path: str, size: int, seed: int, concurrency: int,
             handshake_weight: float | None = None, mix: str = "default") -> dict[str, Any]:
    """``handshake_weight`` replaces the weight of handshakes in the mix's weights (a sparser
    capture, more like a proxy's, with a lower value); ``mix`` is a name in MIXES."""
    rng = random.Random(seed)
    ctx = Context(rng, truth=[], mix=MIXES[mix])
    writer = PcapWriter(path)
    kinds = [k for k, _ in KINDS]
    weights = [handshake_weight if k is handshake and handshake_weight is not None else w
               for k, w in zip(kinds, ctx.mix.weights, strict=True)]
    heap: list[tuple[float, int, Conversation]] = []
    order = 0

    def start(at: float, conv: Conversation) -> None:
        nonlocal order
        order += 1
        heapq.heappush(heap, (at, order, conv))

    # Every scenario appears at least once, even in a small capture.
    for name in sorted(SCENARIOS):
        start(START_TIME + rng.uniform(0, 0.01), handshake(ctx, name))
    for _ in range(concurrency):
        start(START_TIME + rng.uniform(0, 0.01), rng.choices(kinds, weights)[0](ctx))
    write = writer.write
    while heap:
        now, _, conv = heapq.heappop(heap)
        step = next(conv, None)
        if step is None:
            if not ctx.winding_down:
                if writer.bytes >= size:
                    ctx.winding_down = True
                else:
                    start(now + gap(rng), rng.choices(kinds, weights)[0](ctx))
            continue
        delay, frame = step
        at = now + delay
        write(at, frame)
        order += 1
        heapq.heappush(heap, (at, order, conv))
        if writer.bytes >= size:
            ctx.winding_down = True
    writer.close()
    return {
        "mix": mix,
        "seed": seed,
        "size_requested": size,
        "bytes": writer.bytes,
        "frames": writer.frames,
        "connections": ctx.connections,
        "ordinary_http_exchanges": ctx.ordinary_exchanges,
        "attempts": ctx.truth,
    }


def parse_size(text: str) -> int:
    units = {"K": 10**3, "M": 10**6, "G": 10**9}
    text = text.strip().upper().rstrip("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", help="pcap file to write (use /tmp: never commit captures)")
    parser.add_argument("--size", default="100M", help="target size, e.g. 50M, 1G (default 100M)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=64,
                        help="conversations running at once (default 64)")
    parser.add_argument("--truth", help="ground truth JSON (default OUTPUT.truth.json)")
    parser.add_argument("--handshake-weight", type=float, metavar="W",
                        help="weight of handshakes among new conversations (default 0.5, "
                             "against 0.05 bulk, 0.2 chatty, 0.25 HTTP); 0.02 is proxy-like")
    parser.add_argument("--mix", choices=sorted(MIXES), default="default",
                        help="default: the repo's mix; dense: handshake-dense, whole WebSocket "
                             "conversations after the switch (issue 15)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    truth = generate(args.output, parse_size(args.size), args.seed, args.concurrency,
                     args.handshake_weight, args.mix)
    truth_path = args.truth or args.output + ".truth.json"
    with open(truth_path, "w") as f:
        json.dump(truth, f, indent=1)
    elapsed = time.perf_counter() - started
    print(f"{args.output}: {truth['bytes'] / 1e6:.1f} MB, {truth['frames']} frames, "
          f"{truth['connections']} connections, {len(truth['attempts'])} handshakes "
          f"in {elapsed:.1f} s; truth in {truth_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
