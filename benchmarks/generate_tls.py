"""Writes a large capture of real TLS traffic with the key log of every session (benchmarks).

Usage::

    python benchmarks/generate_tls.py /tmp/tls.pcap --size 1G     # and /tmp/tls.pcap.keys

Every session is a real OpenSSL conversation (Python's ssl over memory BIOs, TLS 1.3 and
TLS 1.2 alternating), cut into 1448-byte segments with an ACK every second one, 16 sessions
interleaved at a time: one in ten is a WebSocket handshake over TLS (101, then a bulk
message), one in ten an HTTPS download followed by a WebSocket handshake on the same
connection, the others an HTTPS download (GET, 200 with a 0.2-3 MB body), as on a busy edge
host. ``--versions 1.2`` (or ``1.3``) makes every session that version. Seeded and
deterministic in shape (TLS randoms differ from run to run).

``--mix chat`` makes the other kind of production TLS instead: long-lived WebSockets (a
chat, a feed), 200 sessions at a time, each an upgrade then 200-1,000 small messages (20
bytes to 2 KB, 5-100 ms apart, seven in ten from the server, the client's masked), each
written on its own so each is a record of its own, and a Close handshake and FINs at the
end: past the 2 s watch window, every session is followed in life to its end.
``--at-once 2000 --messages 60-120`` (150 MB: 1,765 sessions open at once) is `chat2000`,
the capture of many open decrypted WebSockets in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import heapq
import random
import ssl
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from generate import parse_size  # noqa: E402
from wire import START_TIME, PcapWriter, Tcp  # noqa: E402

Frames = Iterator[tuple[float, bytes]]


def _contexts(directory: Path, keylog: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench.example")])
    start = datetime.datetime(2023, 1, 1, tzinfo=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("bench.example")]), False)
            .sign(key, hashes.SHA256()))
    (directory / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "k.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(directory / "c.pem", directory / "k.pem")
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(directory / "c.pem")
    client.keylog_filename = str(keylog)
    return client, server


def _handshake(client: ssl.SSLObject, server: ssl.SSLObject, pump: Callable[[], None]) -> None:
    """Both ends' handshakes over memory BIOs, ``pump`` moving the bytes after each step."""
    done = [False, False]
    for _ in range(10):
        for index, end in enumerate((client, server)):
            if not done[index]:
                try:
                    end.do_handshake()
                    done[index] = True
                except ssl.SSLWantReadError:
                    pass
        pump()
        if all(done):
            return


def _session(client_ctx: ssl.SSLContext, server_ctx: ssl.SSLContext, tls13: bool,
             exchanges: list[tuple[bytes, bytes]]) -> list[tuple[int, bytes]]:
    """The bytes each side wrote, in order, for one real TLS conversation."""
    version = ssl.TLSVersion.TLSv1_3 if tls13 else ssl.TLSVersion.TLSv1_2
    client_ctx.maximum_version = server_ctx.maximum_version = version
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="bench.example")
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    chunks: list[tuple[int, bytes]] = []

    def pump() -> None:
        for out, into, side in ((c_out, s_in, 0), (s_out, c_in, 1)):
            data = out.read()
            if data:
                chunks.append((side, data))
                into.write(data)

    _handshake(client, server, pump)
    for request, answer in exchanges:
        client.write(request)
        pump()
        server.read(len(request) + 1)
        for start in range(0, len(answer), 1 << 20):
            server.write(answer[start:start + (1 << 20)])
            pump()
        while True:  # the client reads the answer (TLS 1.3 tickets, then the data)
            try:
                client.read(1 << 20)
            except ssl.SSLWantReadError:
                break
    return chunks


def _conversation(rng: random.Random, tcp: Tcp, chunks: list[tuple[int, bytes]]) -> Frames:
    def step(low: float = 20e-6, high: float = 200e-6) -> float:
        return rng.uniform(low, high)

    yield step(), tcp.syn()
    yield step(1e-4, 1e-3), tcp.syn_ack()
    yield step(), tcp.ack(0)
    for side, data in chunks:
        for index, frame in enumerate(tcp.segments(side, data)):
            yield step(5e-6, 60e-6), frame
            if index % 2:
                yield step(5e-6, 40e-6), tcp.ack(1 - side)
    yield step(), tcp.seg(0, 0x11)  # FIN|ACK
    yield step(), tcp.seg(1, 0x11)
    yield step(), tcp.ack(0)


_UPGRADE = (b"GET /ws HTTP/1.1\r\nHost: bench.example\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="
            b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
_SWITCH = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")


def _ws_frame(rng: random.Random, opcode: int, payload: bytes, masked: bool) -> bytes:
    """One final WebSocket frame (RFC 6455 §5.2), masked as a client's must be."""
    n = len(payload)
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head = bytes((0x80 | opcode, mask_bit | n))
    elif n < 1 << 16:
        head = bytes((0x80 | opcode, mask_bit | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, mask_bit | 127)) + n.to_bytes(8, "big")
    if not masked:
        return head + payload
    key = rng.randbytes(4)
    stream = (key * (n // 4 + 1))[:n]
    return head + key + bytes(a ^ b for a, b in zip(payload, stream, strict=True))


def _chat_session(client_ctx: ssl.SSLContext, server_ctx: ssl.SSLContext, tls13: bool,
                  rng: random.Random, messages: int) -> list[tuple[float, int, bytes]]:
    """The bytes each side wrote for one real TLS WebSocket conversation, with the pause
    before each write: (pause, side, bytes). A TLS 1.2 session is AES-GCM or, one in two,
    ChaCha20-Poly1305."""
    version = ssl.TLSVersion.TLSv1_3 if tls13 else ssl.TLSVersion.TLSv1_2
    client_ctx.maximum_version = server_ctx.maximum_version = version
    client_ctx.set_ciphers("ECDHE+CHACHA20" if not tls13 and rng.random() < 0.5 else "DEFAULT")
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="bench.example")
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    writes: list[tuple[float, int, bytes]] = []

    def pump(pause: float) -> None:
        for out, into, side in ((c_out, s_in, 0), (s_out, c_in, 1)):
            data = out.read()
            if data:
                writes.append((pause, side, data))
                into.write(data)
                pause = 0.0

    def drain(end: ssl.SSLObject) -> None:
        while True:
            try:
                end.read(1 << 20)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                return

    _handshake(client, server, lambda: pump(0.0))
    client.write(_UPGRADE)
    pump(0.001)
    drain(server)
    server.write(_SWITCH)
    pump(0.002)
    drain(client)
    for _ in range(messages):
        pause = rng.uniform(0.005, 0.1)
        if rng.random() < 0.3:
            client.write(_ws_frame(rng, 1, b"m" * rng.randrange(20, 300), masked=True))
            pump(pause)
            drain(server)
        else:
            server.write(_ws_frame(rng, 2, rng.randbytes(rng.randrange(20, 2000)), False))
            pump(pause)
            drain(client)
    client.write(_ws_frame(rng, 8, (1000).to_bytes(2, "big") + b"bye", masked=True))
    pump(0.01)
    drain(server)
    server.write(_ws_frame(rng, 8, (1000).to_bytes(2, "big"), masked=False))
    pump(0.001)
    drain(client)
    return writes


def _chat_conversation(rng: random.Random, tcp: Tcp,
                       writes: list[tuple[float, int, bytes]]) -> Frames:
    yield 0.0, tcp.syn()
    yield rng.uniform(1e-4, 1e-3), tcp.syn_ack()
    yield rng.uniform(20e-6, 200e-6), tcp.ack(0)
    for pause, side, data in writes:
        for index, frame in enumerate(tcp.segments(side, data)):
            yield pause if index == 0 else rng.uniform(5e-6, 60e-6), frame
        yield rng.uniform(5e-6, 40e-6), tcp.ack(1 - side)
    yield 1e-4, tcp.seg(1, 0x11)  # the server closes first after the Close handshake
    yield 1e-4, tcp.seg(0, 0x11)
    yield 1e-4, tcp.ack(1)


def generate_chat(path: str, size: int, seed: int = 7, versions: str = "both",
                  at_once: int = 200, messages: tuple[int, int] = (200, 1000)
                  ) -> tuple[int, int]:
    """The ``--mix chat`` capture (module docstring): sessions start within a second of
    each other's ends, and their frames are written in time order."""
    rng = random.Random(seed)
    keylog = Path(path + ".keys")
    keylog.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        client_ctx, server_ctx = _contexts(Path(scratch), keylog)
        writer = PcapWriter(path)
        # (time of the next frame, session number, its frame, the rest of its frames)
        due: list[tuple[float, int, bytes, Frames]] = []
        sessions = 0
        planned = 0  # bytes of the sessions made so far, with their frames' headers
        now = START_TIME
        while due or planned < size:
            while len(due) < at_once and planned < size:
                sessions += 1
                tls13 = sessions % 2 == 0 if versions == "both" else versions == "1.3"
                writes = _chat_session(client_ctx, server_ctx, tls13, rng,
                                       rng.randrange(*messages))
                planned += sum(len(data) + 2 * 70 for _, _, data in writes)
                client = (bytes((10, 3, sessions >> 8 & 255, sessions & 255)),
                          20000 + sessions % 40000)
                frames = _chat_conversation(rng, Tcp(rng, client, (bytes((192, 168, 30, 30)),
                                                                 443)), writes)
                pause, first = next(frames)
                heapq.heappush(due, (now + rng.uniform(0, 1) + pause, sessions, first, frames))
            when, number, frame, frames = heapq.heappop(due)
            now = max(now, when)
            writer.write(now, frame)
            following = next(frames, None)
            if following is not None:
                heapq.heappush(due, (now + following[0], number, following[1], frames))
        writer.close()
    return writer.frames, sessions


def generate(path: str, size: int, seed: int = 7, versions: str = "both") -> tuple[int, int]:
    """``versions``: "both" (TLS 1.3 and 1.2 alternating), "1.2" or "1.3"."""
    rng = random.Random(seed)
    noise = rng.randbytes(4 << 20)
    keylog = Path(path + ".keys")
    keylog.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        client_ctx, server_ctx = _contexts(Path(scratch), keylog)
        writer = PcapWriter(path)
        now = START_TIME
        running: list[Frames] = []
        sessions = 0
        while writer.bytes < size or running:
            while len(running) < 16 and writer.bytes < size:
                sessions += 1
                body = noise[:rng.randrange(200_000, 3_000_000)]
                download = (b"GET /file HTTP/1.1\r\nHost: bench.example\r\n\r\n",
                            b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
                frame = b"\x82\x7f" + len(body).to_bytes(8, "big") + body
                if sessions % 10 == 0:
                    exchanges = [(_UPGRADE, _SWITCH + frame)]
                elif sessions % 10 == 5:  # a download, then an upgrade on the same connection
                    exchanges = [download, (_UPGRADE, _SWITCH + frame[:1000])]
                else:
                    exchanges = [download]
                tls13 = sessions % 2 == 0 if versions == "both" else versions == "1.3"
                chunks = _session(client_ctx, server_ctx, tls13, exchanges)
                client = (bytes((10, 2, sessions >> 8 & 255, sessions & 255)),
                          20000 + sessions % 40000)
                tcp = Tcp(rng, client, (bytes((192, 168, 20, 20)), 443))
                running.append(_conversation(rng, tcp, chunks))
            index = rng.randrange(len(running))
            try:
                gap, frame = next(running[index])
            except StopIteration:
                running.pop(index)
                continue
            now += gap
            writer.write(now, frame)
        writer.close()
    return writer.frames, sessions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("output")
    parser.add_argument("--size", default="200M")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--versions", choices=("both", "1.2", "1.3"), default="both")
    parser.add_argument("--mix", choices=("downloads", "chat"), default="downloads")
    parser.add_argument("--at-once", type=int, default=200,
                        help="chat sessions open at a time (--mix chat only)")
    parser.add_argument("--messages", default="200-1000",
                        help="messages a chat session carries, LOW-HIGH (--mix chat only)")
    args = parser.parse_args()
    if args.mix == "chat":
        low, high = map(int, args.messages.split("-", 1))
        frames, sessions = generate_chat(args.output, parse_size(args.size), args.seed,
                                         args.versions, args.at_once, (low, high))
    else:
        frames, sessions = generate(args.output, parse_size(args.size), args.seed,
                                    args.versions)
    print(f"{args.output}: {frames} frames, {sessions} TLS sessions; keys in "
          f"{args.output}.keys")


if __name__ == "__main__":
    main()
