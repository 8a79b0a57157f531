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
import heapq
import json
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scenarios import DELIVERIES, SCENARIOS, Handshake
from wire import (
    MSS,
    PSH,
    START_TIME,
    Conversation,
    PcapWriter,
    Tcp,
    gap,
    tcp_close,
    tcp_open,
)


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
    yield from tcp_close(tcp, rng, first=1)


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
    yield from tcp_close(tcp, rng, first=0)


def ordinary_http(ctx: Context) -> Conversation:
    """A keep-alive connection with 1 to 4 ordinary exchanges, bodies of 1 KB to 300 KB."""
    rng = ctx.rng
    tcp = ctx.tcp(rng.choice((80, 8080)))
    yield from tcp_open(tcp, rng)
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
    yield from tcp_close(tcp, rng, first=0)


def handshake(ctx: Context, name: str | None = None) -> Conversation:
    rng = ctx.rng
    share = ctx.mix.ws_success_share
    if name is None and share and rng.random() < share:
        name = "ws_success"
    name = name or rng.choice(sorted(SCENARIOS))
    function, verdict, reason, opens = SCENARIOS[name]
    tcp = ctx.tcp(rng.choice((80, 8080)))
    delivery = rng.choice(DELIVERIES) if opens else "plain"
    if delivery == "retransmitted" and verdict == "succeeded":
        # the request's first segment again 200-300 ms later, unacknowledged: a success's
        # most severe finding is then that warning (a note: the verdict is the same)
        reason = "request_resent"
    ctx.truth.append({
        "client": endpoint(tcp.ends[0]), "server": endpoint(tcp.ends[1]), "scenario": name,
        "delivery": delivery, "verdict": verdict, "reason": reason,
    })
    key = base64.b64encode(rng.randbytes(16))
    h = Handshake(ctx, tcp, delivery)
    if opens:
        yield from tcp_open(tcp, rng)
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
    # (time, tie-break, conversation, the frame it sends at that time, None at its start):
    # a frame is written when its own time comes up, so the file is in time order (writing
    # each conversation's next frame as soon as the one before it was written put 1 record in
    # 3 before the record ahead of it)
    heap: list[tuple[float, int, Conversation, bytes | None]] = []
    order = 0

    def start(at: float, conv: Conversation) -> None:
        nonlocal order
        order += 1
        heapq.heappush(heap, (at, order, conv, None))

    # Every scenario appears at least once, even in a small capture.
    for name in sorted(SCENARIOS):
        start(START_TIME + rng.uniform(0, 0.01), handshake(ctx, name))
    for _ in range(concurrency):
        start(START_TIME + rng.uniform(0, 0.01), rng.choices(kinds, weights)[0](ctx))
    write = writer.write
    while heap:
        now, _, conv, due = heapq.heappop(heap)
        if due is not None:
            write(now, due)
            if writer.bytes >= size:
                ctx.winding_down = True
        step = next(conv, None)
        if step is None:
            if not ctx.winding_down:
                if writer.bytes >= size:
                    ctx.winding_down = True
                else:
                    start(now + gap(rng), rng.choices(kinds, weights)[0](ctx))
            continue
        delay, frame = step
        order += 1
        heapq.heappush(heap, (now + delay, order, conv, frame))
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
