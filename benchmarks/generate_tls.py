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
"""

from __future__ import annotations

import argparse
import datetime
import random
import ssl
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from generate import START_TIME, PcapWriter, Tcp, parse_size  # noqa: E402

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
            break
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
    args = parser.parse_args()
    frames, sessions = generate(args.output, parse_size(args.size), args.seed, args.versions)
    print(f"{args.output}: {frames} frames, {sessions} TLS sessions; keys in "
          f"{args.output}.keys")


if __name__ == "__main__":
    main()
