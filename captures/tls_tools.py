"""TLS servers, clients and contexts for generate_tls.py: real software, bounded in time.

Every client writes the NSS key log its software makes (`keylog_filename`, `SSLKEYLOGFILE`,
`-keylogfile`) into the scenario's temp dir; every process runs in its own group and is
stopped in a `finally`, as in generate.py.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import importlib.util
import logging
import os
import re
import signal
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pki as pki_module
from pki import NAME, Pki


def _load_generate() -> ModuleType:
    """generate.py, loaded by path: the test suite may have imported another `generate`
    (benchmarks/generate.py) already. The name is the one tests/test_captures.py uses."""
    name = "captures_generate"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("generate.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while it loads
        spec.loader.exec_module(module)
    return sys.modules[name]


g: Any = _load_generate()
V4 = g.V4
TLS12 = ssl.TLSVersion.TLSv1_2


@dataclass
class Run:
    """What a scenario gets: the certificates, and where its client writes the key log."""

    pki: Pki
    tmp: Path
    keylog: Path
    loop_log: ServerLoopLog  # asyncio's own records (TLS handshake failures of Python servers)


@dataclass
class TlsExpect(g.Expect):
    """An attempt over TLS, or one that broke at the TLS layer; `tls` is read from the capture."""

    tls: dict[str, Any] | None = None  # filled by tls_facts for the attempt's connection


Runner = Callable[[Run], Awaitable[list[TlsExpect]]]


@dataclass(frozen=True)
class TlsScenario:
    name: str
    description: str
    ports: tuple[int, ...]
    run: Runner
    tls_ports: tuple[int, ...]  # where tshark must read TLS (the others are cleartext)
    interface: str = "lo"
    keylog: bool = True  # ship the key log as NAME.keys
    dsb: bool = False  # embed the key log in NAME.pcapng instead
    suite: str | None = None  # the IANA suite every TLS connection must have negotiated
    tls_version: str | None = None  # and the version
    resumes: bool = False  # the last connection must resume the first one's session
    netns: bool = False  # in generate.py's veth_pair() namespaces, tcpdump in NS_CLIENT
    min_record_segments: int = 0  # a client TLS record must span this many TCP segments

    @property
    def file(self) -> str:
        return f"{self.name}.pcapng" if self.dsb else f"{self.name}.pcap"


SCENARIOS: dict[str, TlsScenario] = {}


def scenario(name: str, description: str, ports: tuple[int, ...],
             **options: Any) -> Callable[[Runner], Runner]:
    def register(run: Runner) -> Runner:
        options.setdefault("tls_ports", ports)
        SCENARIOS[name] = TlsScenario(name, description, ports, run, **options)
        return run

    return register


def check_outcome(item: TlsScenario, expect: TlsExpect) -> None:
    """Refuses a recording where the software did not do what the scenario is about."""
    g.check_outcome(item, expect)  # reads .name only
    facts = expect.tls
    if facts is None:
        return
    for wanted, got in ((item.suite, facts["cipher_suite"]),
                        (item.tls_version, facts["version"])):
        if wanted is not None and got != wanted:
            raise RuntimeError(f"{item.name}: {expect.server}: negotiated {got!r}, "
                               f"not the {wanted!r} the scenario is about")


# --- TLS contexts --------------------------------------------------------------------------------


def openssl_version() -> str:
    return subprocess.run(["openssl", "version"], capture_output=True, text=True,
                          timeout=5).stdout.split("(")[0].strip()


def server_context(leaf: pki_module.Leaf, *, minimum: ssl.TLSVersion | None = None,
                   require_client_cert: Path | None = None,
                   alpn: list[str] | None = None, ciphers: str | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(leaf.chain, leaf.key)
    if ciphers is not None:
        context.set_ciphers(ciphers)
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    if minimum is not None:
        context.minimum_version = minimum
    if require_client_cert is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(require_client_cert)
    return context


def client_context(run: Run, *, maximum: ssl.TLSVersion | None = None,
                   ciphers: str | None = None, ca: Path | None = None,
                   alpn: list[str] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca or run.pki.ca))
    context.keylog_filename = str(run.keylog)
    if maximum is not None:
        context.maximum_version = maximum
    if ciphers is not None:
        context.set_ciphers(ciphers)
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    return context


def negotiated(ssl_object: Any) -> str:
    """What a Python client learnt about its session: `TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256`."""
    if ssl_object is None:
        return "no TLS"
    cipher = ssl_object.cipher()
    alpn = ssl_object.selected_alpn_protocol()
    return f"{ssl_object.version()} {cipher[0]}" + (f", ALPN {alpn}" if alpn else "")


# --- clients -------------------------------------------------------------------------------------


async def wss_client(port: int, path: str, context: ssl.SSLContext,
                     server_hostname: str = NAME, address: str = V4, **options: Any) -> str:
    """A websockets client over TLS: one echoed message, Close 1000; what happened, as said."""
    from websockets.asyncio.client import connect

    try:
        async with connect(f"wss://{NAME}:{port}{path}", ssl=context, host=address,
                           server_hostname=server_hostname, open_timeout=2, close_timeout=1,
                           compression=None, **options) as ws:
            said = f"connected ({negotiated(ws.transport.get_extra_info('ssl_object'))})"
            await ws.send("hello")
            reply = await asyncio.wait_for(ws.recv(), g.CLIENT_TIMEOUT)
            said += f"; echoed {len(reply)} chars"
        return said + "; closed normally"
    except Exception as exc:  # the point is to record it
        return g.describe(exc)


class FixedResolver:
    """aiohttp resolver that maps every name to 127.0.0.1, so the URL (Host, SNI) keeps NAME."""

    async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[dict[str, Any]]:
        import socket

        return [{"hostname": host, "host": V4, "port": port, "family": socket.AF_INET,
                 "proto": 0, "flags": socket.AI_NUMERICHOST}]

    async def close(self) -> None:
        return None


@contextlib.asynccontextmanager
async def aiohttp_session() -> Any:
    import aiohttp

    connector = aiohttp.TCPConnector(resolver=FixedResolver(), force_close=True)  # type: ignore[arg-type]
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=g.CLIENT_TIMEOUT)) as s:
        yield s


async def aiohttp_wss_client(url: str, context: ssl.SSLContext) -> str:
    try:
        async with aiohttp_session() as session, \
                session.ws_connect(url, ssl=context, autoping=False, heartbeat=None) as ws:
            said = f"connected ({negotiated(ws.get_extra_info('ssl_object'))})"
            await ws.send_str("hello")
            reply = await ws.receive(timeout=g.CLIENT_TIMEOUT)
            said += f"; echoed {len(reply.data)} chars"
        return said + "; closed normally"
    except Exception as exc:
        return g.describe(exc)


async def aiohttp_get(url: str, context: ssl.SSLContext) -> tuple[int | None, str]:
    """A plain GET (the browser-tab / Postman case) over TLS; the status and what was said."""
    try:
        async with aiohttp_session() as session, session.get(url, ssl=context) as response:
            body = await response.text()
            return response.status, f"HTTP {response.status} {response.reason}: {body.strip()}"
    except Exception as exc:
        return None, g.describe(exc)


def curl_ws_headers() -> list[str]:
    """A WebSocket handshake's headers as curl arguments (curl 7.88 has no ws:// by default)."""
    return [arg for name, value in g.ws_headers().items() for arg in ("-H", f"{name}: {value}")]


async def process(*command: str, stdin: bytes = b"", env: dict[str, str] | None = None,
                  timeout: float = g.CLIENT_TIMEOUT + 3) -> tuple[int, str, str]:
    """Runs a command in its own process group with a bounded time: status, stdout, stderr."""
    child = await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, **(env or {})},
        start_new_session=True)
    try:
        out, err = await asyncio.wait_for(child.communicate(stdin), timeout)
    finally:
        if child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            await child.wait()
    return (child.returncode or 0, out.decode(errors="replace").strip(),
            err.decode(errors="replace").strip())


async def curl_tls(run: Run, url_name: str, port: int, path: str, *args: str) -> tuple[int, str]:
    """curl over TLS with SSLKEYLOGFILE, `url_name` resolved to 127.0.0.1 by --resolve."""
    code, out, err = await process(
        "curl", "--silent", "--show-error", "--max-time", str(int(g.CLIENT_TIMEOUT)),
        "--cacert", str(run.pki.ca), "--resolve", f"{url_name}:{port}:{V4}", *args,
        f"https://{url_name}:{port}{path}", env={"SSLKEYLOGFILE": str(run.keylog)})
    said = (out + " " + err).strip().splitlines()  # the first line; then curl's advice
    return code, f"curl exit {code}: {said[0] if said else ''}"


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """One client WebSocket frame (FIN, masked), for the s_client driver below."""
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body


async def s_client_websocket(run: Run, port: int, path: str, *options: str) -> str:
    """A real WebSocket handshake typed into `openssl s_client` (TLS 1.3 suites, which Python
    cannot choose): the request, one masked text frame, a Close 1000, as a client would."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET {path} HTTP/1.1\r\nHost: {NAME}:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: 13\r\nUser-Agent: openssl s_client\r\n\r\n").encode()
    child = await asyncio.create_subprocess_exec(
        "openssl", "s_client", "-connect", f"{V4}:{port}", "-servername", NAME,
        "-CAfile", str(run.pki.ca), "-verify_return_error", "-keylogfile", str(run.keylog),
        "-quiet", "-no_ign_eof", *options, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True)
    assert child.stdin is not None and child.stdout is not None and child.stderr is not None
    said = ""
    try:
        child.stdin.write(request)
        head = await asyncio.wait_for(child.stdout.readuntil(b"\r\n\r\n"), g.CLIENT_TIMEOUT)
        status = head.split(b"\r\n", 1)[0].decode()
        accept = base64.b64encode(hashlib.sha1((key + g.WS_GUID).encode()).digest()).decode()
        said = f"{status}; accept {'ok' if accept.encode() in head else 'WRONG'}"
        if status.split()[1] == "101":
            said = "connected: " + said
            child.stdin.write(masked_frame(0x1, b"hello"))
            echo = await asyncio.wait_for(child.stdout.readexactly(7), g.CLIENT_TIMEOUT)
            said += f"; echoed {echo[2:].decode()!r}"
            child.stdin.write(masked_frame(0x8, (1000).to_bytes(2, "big")))
            close = await asyncio.wait_for(child.stdout.readexactly(4), g.CLIENT_TIMEOUT)
            said += f"; server Close {int.from_bytes(close[2:4], 'big')}"
        await asyncio.wait_for(child.stdout.read(), g.CLIENT_TIMEOUT)  # until the server closes
        said += "; closed normally"
    except (asyncio.IncompleteReadError, TimeoutError) as exc:
        said += ("; " if said else "") + g.describe(exc)
    finally:
        child.stdin.close()
        try:
            await asyncio.wait_for(child.wait(), g.CLIENT_TIMEOUT)
        finally:
            if child.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                await child.wait()
    err = (await child.stderr.read()).decode(errors="replace")
    lines = _s_client_lines(err)
    return f"{said} (s_client exit {child.returncode}{': ' + lines if lines else ''})"


def _s_client_lines(stderr: str) -> str:
    """s_client's stderr without the certificate chain walk, which repeats for every depth."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()
             and not line.startswith(("depth=", "verify return:1"))]
    return " | ".join(re.sub(r"^[0-9A-F]{8,}:", "", line) for line in lines)


async def s_client_alone(run: Run, port: int, *options: str) -> str:
    """`openssl s_client` connecting and sending nothing: for handshakes that fail."""
    code, out, err = await process(
        "openssl", "s_client", "-connect", f"{V4}:{port}", "-servername", NAME,
        "-keylogfile", str(run.keylog), "-quiet", "-no_ign_eof", *options)
    return f"s_client exit {code}: {_s_client_lines(err + chr(10) + out)}"


@contextlib.asynccontextmanager
async def aiohttp_tls_server(port: int, context: ssl.SSLContext | None) -> Any:
    """aiohttp serving g.aiohttp_ws_handler at /ws (over TLS unless `context` is None); what
    it raised, and what its low-level protocol logged (a bad request line), go in the book."""
    from aiohttp import web

    book = g.LogBook()

    @web.middleware
    async def record(request: web.Request, handler: Any) -> Any:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            book.lines.append(f"{type(exc).__name__} {exc.status}: {exc.text}")
            raise

    # aiohttp logs a request that is not HTTP (a ClientHello) at debug level only.
    server_logger = logging.getLogger("aiohttp.server")
    server_logger.addHandler(book)
    level = server_logger.level
    server_logger.setLevel(logging.DEBUG)
    app = web.Application(middlewares=[record])
    app.router.add_get("/ws", g.aiohttp_ws_handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, V4, port, ssl_context=context, reuse_address=True)
    await site.start()
    try:
        yield book
    finally:
        server_logger.removeHandler(book)
        server_logger.setLevel(level)
        await runner.cleanup()


# --- servers -------------------------------------------------------------------------------------


@contextlib.contextmanager
def asyncio_book(book: ServerLoopLog) -> Iterator[None]:
    """asyncio's own log into `book` (the loop runs in debug mode: only then does it log an
    "SSL handshake failed" with its exception, at debug level)."""
    logger = logging.getLogger("asyncio")
    logger.addHandler(book)
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(book)
        logger.setLevel(previous)


class ServerLoopLog(logging.Handler):
    """The records a Python TLS server's event loop writes about a refused handshake.

    Clients and servers share one loop here, so only asyncio's server-side record is kept:
    "Error on transport creation for incoming connection", with its exception. asyncio writes
    it in debug mode only; a production server in normal mode logs nothing at all."""

    PREFIX = "Error on transport creation for incoming connection"

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(self.PREFIX) and record.exc_info and record.exc_info[1]:
            self.lines.append(f"asyncio (debug): {self.PREFIX}: "
                              + g.describe(record.exc_info[1]))


def tls_said(run: Run, book: g.LogBook) -> str:
    """What a Python server said about its TLS handshakes since last asked: its event loop's
    record, then what the websockets server logged (`book`), if anything."""
    said = run.loop_log.lines + [g.websockets_rejection(book)]
    run.loop_log.lines.clear()
    return " | ".join(line for line in said if line) or \
        "(nothing logged, even in asyncio debug mode)"


@contextlib.asynccontextmanager
async def nginx_tls(port: int, servers: str) -> Any:
    """nginx with the given server blocks, everything in a temp dir; yields its log reader."""
    with tempfile.TemporaryDirectory(prefix="captures-nginx-tls-") as tmp:
        # nginx 1.22's default leaves TLS 1.3 out
        conf = g.nginx_conf(tmp, "    ssl_protocols TLSv1.2 TLSv1.3;\n" + servers)
        async with g.running_nginx(tmp, conf, port):
            yield lambda: g.nginx_said(tmp, lambda line: "client" in line and any(
                f"[{level}]" in line for level in ("error", "warn", "info")))


def nginx_ssl_server(run: Run, port: int, body: str, leaf: pki_module.Leaf | None = None,
                     extra: str = "") -> str:
    leaf = leaf or run.pki.rsa
    return f"""
    server {{
        listen {V4}:{port} ssl;
        server_name {NAME};
        ssl_certificate {leaf.chain};
        ssl_certificate_key {leaf.key};
{extra}
{body}
    }}
"""


def proxy_location(backend: int, upgrade: bool) -> str:
    headers = ("proxy_set_header Upgrade $http_upgrade;\n"
               "            proxy_set_header Connection \"upgrade\";") if upgrade else ""
    return f"""
        location / {{
            proxy_pass http://{V4}:{backend};
            proxy_http_version 1.1;
            proxy_connect_timeout 2s;
            proxy_read_timeout 5s;
            {headers}
        }}
"""
