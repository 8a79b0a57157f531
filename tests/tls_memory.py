"""Real TLS bytes for tests: Python's `ssl` client and server talking through memory BIOs.

`converse` runs a real OpenSSL handshake and exchange between an `ssl.SSLObject` client and
server (no sockets), logging the secrets with `keylog_filename`, and returns the bytes each
direction put on the "wire", in the order they were written.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

CLIENT, SERVER = 0, 1
_OP_NO_ENCRYPT_THEN_MAC = 0x00080000  # OpenSSL's SSL_OP_NO_ENCRYPT_THEN_MAC (not in ssl)


@dataclass
class Conversation:
    chunks: list[tuple[int, bytes]]  # (side, bytes) in the order they were written
    keylog: bytes
    client_plain: bytes  # what the client application sent
    server_plain: bytes
    version: str
    cipher: str
    client_received: bytes = b""
    server_received: bytes = b""

    def stream(self, side: int) -> bytes:
        return b"".join(data for s, data in self.chunks if s == side)


def make_certificate(directory: Path, name: str = "localhost", *, days: int = 30,
                     start: datetime.datetime | None = None,
                     names: tuple[str, ...] | None = None,
                     use_rsa: bool = False) -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` (SAN ``names``), written as PEM files."""
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = (
        rsa.generate_private_key(65537, 2048) if use_rsa
        else ec.generate_private_key(ec.SECP256R1()))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = start or datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    alt: list[x509.GeneralName] = []
    for entry in names if names is not None else (name, "127.0.0.1"):
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(entry)))
        except ValueError:
            alt.append(x509.DNSName(entry))
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    stem = f"{name}-{days}-{'rsa' if use_rsa else 'ec'}"
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return cert_path, key_path


def converse(directory: Path, *, tls13: bool, ciphers: str = "", client_plain: bytes,
             server_plain: bytes, alpn: tuple[str, ...] = (), server_alpn: tuple[str, ...] = (),
             sni: str = "localhost", use_rsa: bool = False,
             encrypt_then_mac: bool = True) -> Conversation:
    """A real handshake and one exchange each way between an ssl client and server in memory."""
    cert, key = make_certificate(directory, use_rsa=use_rsa)
    keylog = directory / "keys.log"
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(cert)
    client_ctx.keylog_filename = str(keylog)
    version = ssl.TLSVersion.TLSv1_3 if tls13 else ssl.TLSVersion.TLSv1_2
    for ctx in (server_ctx, client_ctx):
        ctx.minimum_version = ctx.maximum_version = version
        if ciphers:
            ctx.set_ciphers(ciphers)
    if alpn:
        client_ctx.set_alpn_protocols(list(alpn))
    if server_alpn:
        server_ctx.set_alpn_protocols(list(server_alpn))
    if not encrypt_then_mac:
        client_ctx.options |= _OP_NO_ENCRYPT_THEN_MAC
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=sni)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    chunks: list[tuple[int, bytes]] = []

    def pump() -> None:
        for bio_out, bio_in, side in ((c_out, s_in, CLIENT), (s_out, c_in, SERVER)):
            data = bio_out.read()
            if data:
                chunks.append((side, data))
                bio_in.write(data)

    done = [False, False]
    for _ in range(20):  # a handshake takes at most a few round trips
        for index, endpoint in enumerate((client, server)):
            if not done[index]:
                try:
                    endpoint.do_handshake()
                    done[index] = True
                except ssl.SSLWantReadError:
                    pass
        pump()
        if all(done):
            break
    assert all(done), "handshake did not complete"
    client.write(client_plain)
    pump()
    server_received = _read_all(server, len(client_plain))
    server.write(server_plain)
    pump()
    client_received = _read_all(client, len(server_plain))
    pump()
    return Conversation(chunks, keylog.read_bytes(), client_plain, server_plain,
                        client.version() or "", (client.cipher() or ("",))[0],
                        client_received, server_received)


def _read_all(endpoint: ssl.SSLObject, length: int) -> bytes:
    got = b""
    for _ in range(100):
        if len(got) >= length:
            break
        try:
            got += endpoint.read(length - len(got))
        except ssl.SSLWantReadError:
            break
    return got


@dataclass
class Talk:
    chunks: list[tuple[int, bytes]]
    client_error: str  # what the client's ssl raised ("" when its handshake completed)
    server_error: str
    client_received: bytes
    server_received: bytes


def contexts(directory: Path, *, tls13: bool = True, ciphers: str = "",
             keylog: Path | None = None, trust: Path | None = None,
             cert: tuple[Path, Path] | None = None) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with ``cert`` (or a fresh one for localhost) and a client context that
    trusts ``trust`` (default: that certificate) and logs its secrets to ``keylog``."""
    cert_path, key_path = cert or make_certificate(directory)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert_path, key_path)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(trust or cert_path)
    if keylog is not None:
        client_ctx.keylog_filename = str(keylog)
    version = ssl.TLSVersion.TLSv1_3 if tls13 else ssl.TLSVersion.TLSv1_2
    for ctx in (server_ctx, client_ctx):
        ctx.maximum_version = version
        if ciphers:
            ctx.set_ciphers(ciphers)
    return client_ctx, server_ctx


def talk(client_ctx: ssl.SSLContext, server_ctx: ssl.SSLContext, *, sni: str = "localhost",
         client_plain: bytes = b"", server_plain: bytes = b"",
         client_closes: bool = False, client_eof: bool = False,
         server_closes: bool = False) -> Talk:
    """Run a handshake (which may fail on either side) and, if it completes, one exchange;
    ``client_closes``: then the client's close_notify; ``client_eof``: then the server reads
    the end of the client's bytes without one (a bare FIN), and answers as OpenSSL 3 does,
    with an alert (the last chunk); ``server_closes``: the server's close_notify (the last
    chunk)."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=sni)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    chunks: list[tuple[int, bytes]] = []
    errors = ["", ""]

    def pump() -> None:
        for bio_out, bio_in, side in ((c_out, s_in, CLIENT), (s_out, c_in, SERVER)):
            data = bio_out.read()
            if data:
                chunks.append((side, data))
                bio_in.write(data)

    done = [False, False]
    for _ in range(20):
        for index, endpoint in enumerate((client, server)):
            if done[index] or errors[index]:
                continue
            try:
                endpoint.do_handshake()
                done[index] = True
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as error:
                errors[index] = f"{type(error).__name__}: {error}"
        pump()
        if all(done) or any(errors):
            break
    client_received = server_received = b""
    if all(done) and not any(errors):
        if client_plain:
            client.write(client_plain)
            pump()
            server_received = _read_all(server, len(client_plain))
            pump()
        if server_plain:
            server.write(server_plain)
            pump()
            client_received = _read_all(client, len(server_plain))
            pump()
        if client_closes:
            with contextlib.suppress(ssl.SSLWantReadError):  # (it waits for the server's)
                client.unwrap()
            pump()
        if server_closes:
            with contextlib.suppress(ssl.SSLWantReadError):  # (it waits for the client's)
                server.unwrap()
            pump()
        if client_eof:
            s_in.write_eof()
            with contextlib.suppress(ssl.SSLError):  # (UNEXPECTED_EOF_WHILE_READING)
                server.read(1)
            pump()
    return Talk(chunks, errors[0], errors[1], client_received, server_received)


# --- recorded TLS conversations for the catalogue's cases (tests/test_checks.py) -----------
# Made once per test run, with certificates valid around the builder's default start time
# (2023-11-14), so that only the case that wants an expired certificate has one.

_VALID_FROM = datetime.datetime(2023, 1, 1, tzinfo=datetime.UTC)
_SCRATCH: list[Path] = []


def _scratch() -> Path:
    import tempfile

    if not _SCRATCH:
        _SCRATCH.append(Path(tempfile.mkdtemp(prefix="tls-cases-")))
    return _SCRATCH[0]


@functools.cache
def recorded(name: str) -> tuple[tuple[tuple[int, bytes], ...], bytes]:
    """(chunks, key log) of a named scenario; see SCENARIOS."""
    directory = _scratch() / name
    directory.mkdir(parents=True, exist_ok=True)
    keylog = directory / "keys.log"
    chunks = SCENARIOS[name](directory, keylog)
    return tuple(chunks), keylog.read_bytes() if keylog.exists() else b""


def _cert(directory: Path, name: str = "localhost", **options: object) -> tuple[Path, Path]:
    options.setdefault("start", _VALID_FROM)
    options.setdefault("days", 3650)
    return make_certificate(directory, name, **options)  # type: ignore[arg-type]


def _ws(directory: Path, keylog: Path, tls13: bool) -> list[tuple[int, bytes]]:
    from tests.builder import websocket_request, websocket_response

    client_ctx, server_ctx = contexts(directory, tls13=tls13, keylog=keylog,
                                      ciphers="" if tls13 else "ECDHE-ECDSA-AES128-GCM-SHA256",
                                      cert=_cert(directory))
    return talk(client_ctx, server_ctx, client_plain=websocket_request("localhost", "/ws"),
                server_plain=websocket_response()).chunks


def _ws13_closed(directory: Path, keylog: Path) -> list[tuple[int, bytes]]:
    """TLS 1.3, a WebSocket handshake, then the client's close_notify (curl giving up on a
    101 it cannot use)."""
    from tests.builder import websocket_request, websocket_response

    client_ctx, server_ctx = contexts(directory, tls13=True, keylog=keylog,
                                      cert=_cert(directory))
    return talk(client_ctx, server_ctx, client_plain=websocket_request("localhost", "/ws"),
                server_plain=websocket_response(), client_closes=True).chunks


def _handshake_only(directory: Path, keylog: Path) -> list[tuple[int, bytes]]:
    client_ctx, server_ctx = contexts(directory, tls13=False, keylog=keylog,
                                      cert=_cert(directory))
    return talk(client_ctx, server_ctx).chunks


def _closed13(directory: Path, keylog: Path) -> list[tuple[int, bytes]]:
    """TLS 1.3, the handshake, then the client's close_notify and nothing else (curl does
    so after a name it rejects)."""
    client_ctx, server_ctx = contexts(directory, tls13=True, keylog=keylog,
                                      cert=_cert(directory))
    return talk(client_ctx, server_ctx, client_closes=True).chunks


def _eof13(directory: Path, keylog: Path, plain: bool) -> list[tuple[int, bytes]]:
    """TLS 1.3, the handshake (``plain``: and an ordinary GET and its 200), then the client's
    bare FIN, which an OpenSSL 3 server answers with a fatal decode_error alert (the last
    chunk: Hypercorn did so to Chromium's spare connections in the sweep of the twenty-ninth
    session)."""
    from tests.builder import http_response

    client_ctx, server_ctx = contexts(directory, tls13=True, keylog=keylog,
                                      cert=_cert(directory))
    return talk(client_ctx, server_ctx, client_eof=True,
                client_plain=b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n" if plain else b"",
                server_plain=http_response(200, "OK", [("Content-Length", "2")], b"hi")
                if plain else b"").chunks


def _request13_closed(directory: Path, keylog: Path) -> list[tuple[int, bytes]]:
    """TLS 1.3, a WebSocket request, then the server's close_notify without an answer (a
    server whose connection handler crashed: Hypercorn under Chromium, the sweep of the
    thirtieth session)."""
    from tests.builder import websocket_request

    client_ctx, server_ctx = contexts(directory, tls13=True, keylog=keylog,
                                      cert=_cert(directory))
    return talk(client_ctx, server_ctx, client_plain=websocket_request("localhost", "/ws"),
                server_closes=True).chunks


def _untrusted(directory: Path, keylog: Path, tls13: bool) -> list[tuple[int, bytes]]:
    client_ctx, server_ctx = contexts(directory, tls13=tls13, keylog=keylog,
                                      cert=_cert(directory),
                                      trust=_cert(directory, "other-ca")[0])
    return talk(client_ctx, server_ctx).chunks


def _wrong_name(directory: Path, keylog: Path) -> list[tuple[int, bytes]]:
    cert = _cert(directory, "api.example.com", names=("api.example.com",))
    client_ctx, server_ctx = contexts(directory, tls13=False, cert=cert)
    return talk(client_ctx, server_ctx, sni="chat.example.com").chunks


def _expired(directory: Path, keylog: Path) -> list[tuple[int, bytes]]:
    cert = _cert(directory, start=datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC), days=30)
    client_ctx, server_ctx = contexts(directory, tls13=False, cert=cert)
    return talk(client_ctx, server_ctx).chunks


def _mutual(directory: Path, keylog: Path) -> list[tuple[int, bytes]]:
    client_ctx, server_ctx = contexts(directory, tls13=False, cert=_cert(directory))
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_verify_locations(_cert(directory, "client-ca")[0])
    return talk(client_ctx, server_ctx).chunks


def _unknown_name(directory: Path, keylog: Path) -> list[tuple[int, bytes]]:
    client_ctx, server_ctx = contexts(directory, tls13=True, cert=_cert(directory))

    def refuse(sock: object, name: str | None, context: object) -> int:
        return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME

    server_ctx.sni_callback = refuse  # type: ignore[assignment]
    return talk(client_ctx, server_ctx).chunks


def _old_client(directory: Path, keylog: Path) -> list[tuple[int, bytes]]:
    client_ctx, server_ctx = contexts(directory, tls13=False, cert=_cert(directory))
    server_ctx.minimum_version = server_ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    return talk(client_ctx, server_ctx).chunks


def _no_common_suite(directory: Path, keylog: Path) -> list[tuple[int, bytes]]:
    client_ctx, server_ctx = contexts(directory, tls13=False, cert=_cert(directory),
                                      ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")
    server_ctx.set_ciphers("ECDHE-ECDSA-AES256-GCM-SHA384")
    return talk(client_ctx, server_ctx).chunks


def _hello(directory: Path, keylog: Path) -> list[tuple[int, bytes]]:
    client_ctx, _server = contexts(directory, tls13=True, cert=_cert(directory))
    client_ctx.set_alpn_protocols(["http/1.1"])
    return talk(client_ctx, ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)).chunks[:1]


SCENARIOS = {
    "ws13": lambda d, k: _ws(d, k, True),
    "ws12": lambda d, k: _ws(d, k, False),
    "handshake_only": _handshake_only,
    "closed13": _closed13,
    "ws13_closed": _ws13_closed,
    "request13_closed": _request13_closed,
    "eof13": lambda d, k: _eof13(d, k, False),
    "get13_eof": lambda d, k: _eof13(d, k, True),
    "untrusted12": lambda d, k: _untrusted(d, k, False),
    "untrusted13": lambda d, k: _untrusted(d, k, True),
    "wrong_name": _wrong_name,
    "expired": _expired,
    "mutual": _mutual,
    "unknown_name": _unknown_name,
    "old_client": _old_client,
    "no_common_suite": _no_common_suite,
    "hello": _hello,
}


def alert_record(description: int, level: int = 2) -> bytes:
    """A cleartext TLS 1.2 alert record (RFC 8446 §6: level, description)."""
    return bytes((21, 3, 3, 0, 2, level, description))


def h2_tls_chunks(directory: Path, *, server_close_notify: bool) -> tuple[
        list[tuple[bool, bytes]], bytes]:
    """A TLS 1.3 session with ALPN h2 carrying an RFC 8441 WebSocket (the preface and
    SETTINGS with extended CONNECT enabled, a CONNECT answered 200, a frame each way), then,
    when ``server_close_notify``, the server's close_notify: (chunks as (from the client,
    bytes), the client's key log)."""
    from tests import h2builder as h2
    from tests.builder import Opcode, ws_frame

    keylog = directory / "h2-keys.log"
    client_ctx, server_ctx = contexts(directory, tls13=True, keylog=keylog,
                                      cert=make_certificate(directory))
    for ctx in (client_ctx, server_ctx):
        ctx.set_alpn_protocols(["h2"])
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="localhost")
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    chunks: list[tuple[bool, bytes]] = []

    def pump() -> None:
        for bio_out, bio_in, from_client in ((c_out, s_in, True), (s_out, c_in, False)):
            data = bio_out.read()
            if data:
                chunks.append((from_client, data))
                bio_in.write(data)

    done = [False, False]
    for _ in range(20):  # bounded: a handshake takes a few rounds
        for index, endpoint in enumerate((client, server)):
            if not done[index]:
                with contextlib.suppress(ssl.SSLWantReadError):
                    endpoint.do_handshake()
                    done[index] = True
        pump()
        if all(done):
            break
    hpack_client, hpack_server = h2.H2Conversation(), h2.H2Conversation()
    said = (
        (client, h2.PREFACE + h2.settings()),
        (server, h2.settings(((h2.ENABLE_CONNECT_PROTOCOL, 1),)) + h2.settings(ack=True)),
        (client, h2.settings(ack=True) + hpack_client.headers(True, 1, h2.websocket_connect())),
        (server, hpack_server.headers(False, 1, [(":status", "200")])),
        (client, h2.data(1, ws_frame(Opcode.TEXT, "hi", mask=True))),
        (server, h2.data(1, ws_frame(Opcode.TEXT, "hi"))),
    )
    for endpoint, plain in said:
        endpoint.write(plain)
        pump()
        other = server if endpoint is client else client
        _read_all(other, len(plain))
        pump()
    if server_close_notify:
        with contextlib.suppress(ssl.SSLWantReadError):
            server.unwrap()
        pump()
    return chunks, keylog.read_bytes()
