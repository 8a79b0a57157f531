"""Records real HTTP Upgrade handshakes between real software on loopback, one capture per scenario.

Run as root (tcpdump needs it):  python captures/generate.py [--out DIR] [SCENARIO ...]

How it works:
  * Each scenario starts real servers (python `websockets`, `aiohttp`, `hypercorn`, nginx, or a
    small asyncio stub where a broken endpoint is the point) on 127.0.0.1 or ::1 at fixed high
    ports, starts tcpdump on `lo` (or `any` for the two-leg proxy cases) filtered on those ports,
    runs real clients (`websockets`, `aiohttp`, curl) against them, and stops everything.
  * What the client raised or printed, and what the server logged or raised, is recorded at run
    time (exceptions, log records, response bodies, nginx's error log, curl's stderr): never
    typed in here. Only the expected verdict and primary reason are written by hand, next to the
    scenario, with the reason for the label.
  * Client endpoints are read back from the capture with `tcpdump -r` (the SYNs), so
    expected.json names both ends of every connection without consulting the analyzer.
  * The result is `expected.json` beside the captures: for each file, the attempts in the order
    their connections were opened.

Only loopback addresses are ever used, except by the one scenario that needs a real MTU 1500
path: it creates two network namespaces joined by a veth pair, with addresses that exist only
inside them, and deletes them in a `finally`. Every process started here is in its own process
group and is stopped in a `finally`; every client and server call has a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import importlib.metadata
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
V4 = "127.0.0.1"
V6 = "::1"
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CLIENT_TIMEOUT = 3.0  # every client call
SCENARIO_TIMEOUT = 25.0  # a whole scenario, servers included
# Two network namespaces joined by a veth pair: a real Ethernet path with MTU 1500, where a
# large request head leaves the client as several TCP segments. The addresses exist only there.
NS_CLIENT, NS_SERVER = "ua-gen-a", "ua-gen-b"
VETH_CLIENT, VETH_SERVER = "ua-gen-va", "ua-gen-vb"
NET_CLIENT, NET_SERVER = "10.211.0.1", "10.211.0.2"


def version(package: str) -> str:
    return f"{package} {importlib.metadata.version(package)}"


def nginx_version() -> str:
    out = subprocess.run(["nginx", "-v"], capture_output=True, text=True, timeout=5)
    return out.stderr.strip().replace("nginx version: ", "")


def curl_version() -> str:
    out = subprocess.run(["curl", "--version"], capture_output=True, text=True, timeout=5)
    return " ".join(out.stdout.split()[:2])


def describe(exc: BaseException) -> str:
    """An exception as a user would see it: type, message, and the chain of causes."""
    text = f"{type(exc).__name__}: {exc}"
    cause = exc.__cause__ or exc.__context__
    seen = {id(exc)}
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if str(cause):
            text += f" (caused by {type(cause).__name__}: {cause})"
        cause = cause.__cause__ or cause.__context__
    return text


# --- what one attempt is expected to be ----------------------------------------------------------


@dataclass
class Expect:
    """One handshake attempt as the real software lived it, and the label we give it."""

    server: str  # "127.0.0.1:18001" / "[::1]:18001"
    method: str | None
    path: str | None
    verdict: str
    reason: str | None  # primary reason id; None for a success
    why: str  # why this label: what the software demonstrably did
    client_software: str
    server_software: str
    client_said: str = ""  # exception text or printed output of the real client
    server_said: str = ""  # what the real server logged / raised / answered
    notes: list[str] = field(default_factory=list)  # non-deciding ids expected among reasons
    client: str | None = None  # filled from the capture's SYNs
    status: int | None = None  # status the client received, when it got one


def endpoint(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --- log and output collection -------------------------------------------------------------------


class LogBook(logging.Handler):
    """Collects log records (with their exceptions) from one server library."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            message += ": " + describe(record.exc_info[1])
        self.lines.append(message)

    def said(self, *, keep: Callable[[str], bool] = lambda line: True) -> str:
        return " | ".join(line for line in self.lines if keep(line))

    def clear(self) -> None:
        self.lines.clear()


def websockets_logger(name: str) -> tuple[logging.Logger, LogBook]:
    logger = logging.getLogger(f"captures.{name}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    book = LogBook()
    logger.addHandler(book)
    return logger, book


def websockets_session(book: LogBook) -> str:
    """The lines of a websockets server log that tell how an accepted session went."""
    return book.said(keep=lambda line: line.startswith(("connection ", "< CLOSE", "> CLOSE",
                                                        "! ", "x ")))


def websockets_rejection(book: LogBook) -> str:
    """The lines of a websockets server log that say why a handshake failed, and the status."""
    return book.said(
        keep=lambda line: line.startswith(("! ", "> HTTP/", "opening handshake failed",
                                           "connection handler failed"))
    )


# --- processes -----------------------------------------------------------------------------------


def stop(process: subprocess.Popen[Any], sig: int = signal.SIGTERM, wait: float = 5.0) -> None:
    """Stops a process started with start_new_session=True, then its group if it lingers."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(wait)


@contextlib.contextmanager
def tcpdump(path: Path, interface: str, ports: list[int], hosts: tuple[str, ...] = (V4, V6),
            namespace: str | None = None) -> Iterator[None]:
    """Captures TCP on the given ports; returns once tcpdump listens, flushes on exit."""
    ports_expression = " or ".join(f"tcp port {port}" for port in ports)
    hosts_expression = " or ".join(f"host {host}" for host in hosts)
    expression = f"({hosts_expression}) and ({ports_expression})"
    # --immediate-mode and a 16 MB buffer: without them `-i any` drops loopback packets, and
    # packets still in the kernel's ring when tcpdump is interrupted are lost.
    command = ["tcpdump", "-i", interface, "-n", "-U", "--immediate-mode", "-B", "16384",
               "-Z", "root", "-w", str(path), expression]
    if interface == "any":
        command[3:3] = ["-y", "LINUX_SLL"]  # Linux cooked v1: what most users have
    if namespace is not None:
        command[:0] = ["ip", "netns", "exec", namespace]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        assert process.stderr is not None
        seen = ""
        while "listening on" not in seen:
            line = process.stderr.readline()
            if not line or time.monotonic() > deadline:
                raise RuntimeError(f"tcpdump did not start: {seen}{line}")
            seen += line
        time.sleep(0.2)
        yield
    finally:
        time.sleep(0.5)  # let the last packets reach the capture
        stop(process, signal.SIGINT)
    assert process.stderr is not None
    summary = process.stderr.read()
    dropped = re.search(r"(\d+) packets? dropped by kernel", summary)
    if dropped is None or int(dropped[1]) != 0:
        raise RuntimeError(f"tcpdump lost packets: {summary.strip()}")


def syns(path: Path) -> list[tuple[str, str]]:
    """(client, server) of every connection opened in a capture, in order, read by tcpdump."""
    out = subprocess.run(["tcpdump", "-nn", "-r", str(path), "tcp"], capture_output=True,
                         text=True, timeout=30)
    found: list[tuple[str, str]] = []
    pattern = re.compile(r" IP6? (\S+)\.(\d+) > (\S+)\.(\d+): Flags \[S\],")
    for line in out.stdout.splitlines():
        match = pattern.search(line)
        if match is None:
            continue
        client = endpoint(match[1], int(match[2]))
        server = endpoint(match[3], int(match[4]))
        if (client, server) not in found:  # `-i any` sees loopback packets twice
            found.append((client, server))
    return found


def head_segments(path: Path, client: str, server: str) -> int:
    """How many data segments the client sent before the server's first data, read by tcpdump."""
    out = subprocess.run(["tcpdump", "-nn", "-r", str(path), "tcp"], capture_output=True,
                         text=True, timeout=30)
    pattern = re.compile(r" IP6? (\S+)\.(\d+) > (\S+)\.(\d+): .* length (\d+)")
    count = 0
    for line in out.stdout.splitlines():
        match = pattern.search(line)
        if match is None or int(match[5]) == 0:
            continue
        source = endpoint(match[1], int(match[2]))
        target = endpoint(match[3], int(match[4]))
        if (source, target) == (server, client):
            break
        if (source, target) == (client, server):
            count += 1
    return count


def _delete_namespaces() -> None:
    for namespace in (NS_CLIENT, NS_SERVER):
        subprocess.run(["ip", "netns", "delete", namespace], capture_output=True, timeout=10)


@contextlib.contextmanager
def veth_pair() -> Iterator[None]:
    """NS_CLIENT and NS_SERVER joined by a veth pair, MTU 1500, deleted on exit.

    Segmentation offload is limited to one segment per packet (`gso_max_segs 1`): otherwise the
    kernel hands tcpdump one 6 KB super-segment that never existed on a wire."""
    _delete_namespaces()  # left over from an interrupted run
    steps = [
        ["ip", "netns", "add", NS_CLIENT],
        ["ip", "netns", "add", NS_SERVER],
        ["ip", "link", "add", VETH_CLIENT, "netns", NS_CLIENT, "type", "veth",
         "peer", "name", VETH_SERVER, "netns", NS_SERVER],
        ["ip", "-n", NS_CLIENT, "addr", "add", f"{NET_CLIENT}/24", "dev", VETH_CLIENT],
        ["ip", "-n", NS_SERVER, "addr", "add", f"{NET_SERVER}/24", "dev", VETH_SERVER],
    ]
    for namespace, device in ((NS_CLIENT, VETH_CLIENT), (NS_SERVER, VETH_SERVER)):
        steps += [["ip", "-n", namespace, "link", "set", device, "mtu", "1500",
                   "gso_max_segs", "1", "up"],
                  ["ip", "-n", namespace, "link", "set", "lo", "up"]]
    try:
        for step in steps:
            subprocess.run(step, check=True, capture_output=True, timeout=10)
        yield
    finally:
        _delete_namespaces()


def listening(host: str, port: int) -> bool:
    """Whether a socket listens on host:port, read from /proc (a probe connection would be
    captured, and a probe bind is fooled by TIME_WAIT)."""
    table = "/proc/net/tcp6" if ":" in host else "/proc/net/tcp"
    for line in Path(table).read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
            return True
    return False


def wait_for_listener(host: str, port: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not listening(host, port):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on {endpoint(host, port)}")
        time.sleep(0.05)


# --- servers -------------------------------------------------------------------------------------


async def echo(ws: Any) -> None:
    with contextlib.suppress(Exception):
        async for message in ws:
            await ws.send(message)


@contextlib.asynccontextmanager
async def websockets_server(host: str, port: int, name: str, handler: Any = echo,
                            **options: Any) -> Any:
    from websockets.asyncio.server import serve

    logger, book = websockets_logger(name)
    options.setdefault("compression", None)
    async with serve(handler, host, port, logger=logger, open_timeout=CLIENT_TIMEOUT,
                     close_timeout=1, **options):
        yield book


async def aiohttp_ws_handler(request: Any) -> Any:
    from aiohttp import WSMsgType, web

    ws = web.WebSocketResponse(heartbeat=None)
    await ws.prepare(request)
    async for message in ws:
        if message.type == WSMsgType.TEXT:
            await ws.send_str(message.data)
    return ws


@contextlib.asynccontextmanager
async def aiohttp_server(host: str, port: int, routes: dict[str, Any]) -> Any:
    """An aiohttp app; what it raised (HTTP errors included) is collected in the book."""
    from aiohttp import web

    book = LogBook()

    @web.middleware
    async def record(request: web.Request, handler: Any) -> Any:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            book.lines.append(f"{type(exc).__name__} {exc.status}: {exc.text}")
            raise

    app = web.Application(middlewares=[record])
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    try:
        yield book
    finally:
        await runner.cleanup()


async def aiohttp_page(request: Any) -> Any:
    from aiohttp import web

    return web.Response(text="hello over HTTP/1.1\n")


@contextlib.asynccontextmanager
async def stub_server(host: str, port: int, answer: bytes | None) -> Any:
    """A raw asyncio endpoint: reads a request head, sends `answer` (or nothing), waits for EOF."""
    book = LogBook()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            first = head.split(b"\r\n", 1)[0].decode("latin-1")
            if answer is None:
                book.lines.append(f"read {first!r}; not answering")
            else:
                writer.write(answer)
                await writer.drain()
                status_line = answer.split(b"\r\n", 1)[0].decode()
                book.lines.append(f"read {first!r}; answered {status_line!r}")
            rest = await asyncio.wait_for(reader.read(), 6)
            book.lines.append(f"peer closed after sending {len(rest)} more bytes")
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
            book.lines.append(describe(exc))
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    server = await asyncio.start_server(serve, host, port, reuse_address=True)
    try:
        yield book
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)


async def h2c_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A minimal ASGI app for hypercorn: answers every HTTP request with a short text."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = f"hello over HTTP/{scope['http_version']}\n".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def hypercorn_server(host: str, port: int, app: Any = h2c_app,
                           tls: tuple[Path, Path] | None = None) -> Any:
    """hypercorn on host:port; with ``tls`` (chain, key) over TLS, offering ALPN h2."""
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [endpoint(host, port)]
    if tls is not None:
        config.certfile, config.keyfile = str(tls[0]), str(tls[1])
    config.accesslog = None
    config.graceful_timeout = 1
    config.errorlog = logging.getLogger("captures.hypercorn")
    book = LogBook()
    config.errorlog.addHandler(book)
    stopped = asyncio.Event()
    task = asyncio.create_task(serve(app, config, shutdown_trigger=stopped.wait))  # type: ignore[arg-type]
    await asyncio.to_thread(wait_for_listener, host, port)
    try:
        yield book
    finally:
        stopped.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)


def nginx_conf(tmp: str, http: str, access_log: bool = True) -> str:
    """An nginx configuration whose files all live in ``tmp`` (unprivileged paths, one worker,
    the error log at `info`, which is where nginx says why it closed a client), with ``http``
    as the body of its `http { ... }` block."""
    temp = "\n".join(f"    {name}_temp_path {tmp}/{name};"
                     for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    access = f"access_log {tmp}/access.log;" if access_log else "access_log off;"
    return f"""
worker_processes 1;
error_log {tmp}/error.log info;
pid {tmp}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    {access}
{temp}
{http}
}}
"""


def nginx_command(tmp: str) -> list[str]:
    """nginx in the foreground, without a master process, on ``tmp``/nginx.conf."""
    return ["nginx", "-p", tmp, "-e", f"{tmp}/error.log", "-c", f"{tmp}/nginx.conf",
            "-g", "daemon off; master_process off;"]


def nginx_said(tmp: str, keep: Callable[[str], bool], access: bool = True) -> str:
    """nginx's error log lines that ``keep`` keeps, without their date and process ids (then
    its access log's lines), as one line for `Expect.server_said`."""
    lines = Path(tmp, "error.log").read_text().splitlines()
    said = [re.sub(r"^\S+ \S+ \[(\w+)\] \d+#\d+: (\*\d+ )?", r"[\1] ", line)
            for line in lines if keep(line)]
    if access and Path(tmp, "access.log").exists():
        said += [f"access: {a.split(' - - ', 1)[-1]}"
                 for a in Path(tmp, "access.log").read_text().splitlines()]
    return " | ".join(said)


@contextlib.asynccontextmanager
async def running_nginx(tmp: str, conf: str, port: int) -> Any:
    """nginx with ``conf`` (see nginx_conf) until the block ends, stopped by its PID."""
    Path(tmp, "nginx.conf").write_text(conf)
    process = subprocess.Popen(nginx_command(tmp), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        await asyncio.to_thread(wait_for_listener, V4, port)
        yield
    finally:
        stop(process, signal.SIGQUIT)


@contextlib.asynccontextmanager
async def nginx(port: int, backend: int, proxy_lines: str, read_timeout: str = "5s") -> Any:
    """nginx as a reverse proxy, everything under a temp dir; yields a function to read its log."""
    with tempfile.TemporaryDirectory(prefix="captures-nginx-") as tmp:
        conf = nginx_conf(tmp, f"""    server {{
        listen {V4}:{port};
        location / {{
            proxy_pass http://{V4}:{backend};
            proxy_connect_timeout 2s;
            proxy_read_timeout {read_timeout};
{proxy_lines}
        }}
    }}""")
        async with running_nginx(tmp, conf, port):
            yield lambda: nginx_said(tmp, lambda line: "[error]" in line or "[warn]" in line
                                     or "[info]" in line and "client" in line)


@contextlib.asynccontextmanager
async def nginx_http2(port: int) -> Any:
    """nginx with `http2` on a cleartext port: HTTP/2 prior knowledge only, no extended
    CONNECT (nginx 1.22); yields a function to read its error log."""
    with tempfile.TemporaryDirectory(prefix="captures-nginx-h2-") as tmp:
        conf = nginx_conf(tmp, f"""    server {{
        listen {V4}:{port} http2;
        location / {{ return 200 "plain\\n"; }}
    }}""", access_log=False)
        async with running_nginx(tmp, conf, port):
            yield lambda: nginx_said(tmp, lambda line: "[info]" in line and "client" in line,
                                     access=False)


# --- clients -------------------------------------------------------------------------------------


async def websockets_client(uri: str, send: str | None = "hello", **options: Any) -> str:
    """Opens a websockets connection, exchanges one message, closes; returns what happened."""
    from websockets.asyncio.client import connect

    options.setdefault("compression", None)
    try:
        async with connect(uri, open_timeout=2, close_timeout=1, **options) as ws:
            said = f"connected (subprotocol={ws.subprotocol!r}"
            if ws.response is not None and "Sec-WebSocket-Extensions" in ws.response.headers:
                said += f", extensions={ws.response.headers['Sec-WebSocket-Extensions']!r}"
            said += ")"
            if send is not None:
                await ws.send(send)
                reply = await asyncio.wait_for(ws.recv(), CLIENT_TIMEOUT)
                said += f"; echoed {len(reply)} chars"
            else:
                await asyncio.wait_for(ws.recv(), CLIENT_TIMEOUT)
        return said + "; closed normally"
    except Exception as exc:  # the point is to record it
        return describe(exc)


async def aiohttp_ws_client(url: str, **options: Any) -> str:
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.ws_connect(url, autoping=False, heartbeat=None, **options) as ws:
                said = f"connected (protocol={ws.protocol!r})"
                await ws.send_str("hello")
                reply = await ws.receive(timeout=CLIENT_TIMEOUT)
                said += f"; echoed {len(reply.data)} chars"
            return said + "; closed normally"
    except Exception as exc:
        return describe(exc)


async def aiohttp_request(method: str, url: str, headers: dict[str, str]) -> tuple[int, str]:
    """A plain HTTP request with the aiohttp client; returns the status and what it printed."""
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session, \
            session.request(method, url, headers=headers) as response:
        body = await response.text()
        return response.status, f"HTTP {response.status} {response.reason}: {body.strip()}"


async def curl(*args: str) -> tuple[int, str]:
    """Runs curl with a bounded time; returns its exit status and what it printed."""
    process = await asyncio.create_subprocess_exec(
        "curl", "--silent", "--show-error", "--max-time", str(int(CLIENT_TIMEOUT)), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), CLIENT_TIMEOUT + 3)
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    text = (out.decode(errors="replace") + err.decode(errors="replace")).strip()
    return process.returncode or 0, f"curl exit {process.returncode}: {text}"


def ws_headers(**changes: str | None) -> dict[str, str]:
    """A correct WebSocket request's headers, with some changed (None removes one)."""
    headers: dict[str, str | None] = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
    }
    for name, value in changes.items():
        headers[name.replace("_", "-")] = value
    return {k: v for k, v in headers.items() if v is not None}


# --- scenarios -----------------------------------------------------------------------------------

WS = "python websockets"
AIO = "aiohttp"


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    ports: tuple[int, ...]
    run: Callable[[], Awaitable[list[Expect]]]
    interface: str = "lo"
    pcapng: bool = False
    netns: bool = False  # in the veth_pair() namespaces, tcpdump in NS_CLIENT
    min_head_segments: int = 0  # the client's request head must span this many segments
    timeout: float = SCENARIO_TIMEOUT  # longer for the JVMs of java_servers.py

    @property
    def file(self) -> str:
        return f"{self.name}.pcapng" if self.pcapng else f"{self.name}.pcap"


SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str, description: str, ports: tuple[int, ...], **options: Any) -> Callable[
        [Callable[[], Awaitable[list[Expect]]]], Callable[[], Awaitable[list[Expect]]]]:
    def register(run: Callable[[], Awaitable[list[Expect]]]) -> Callable[
            [], Awaitable[list[Expect]]]:
        SCENARIOS[name] = Scenario(name, description, ports, run, **options)
        return run

    return register


@scenario("ws_ok_websockets", "websockets client and server, no compression", (18001,))
async def _ws_ok_websockets() -> list[Expect]:
    async with websockets_server(V4, 18001, "ok") as book:
        said = await websockets_client(f"ws://{V4}:18001/chat")
    return [Expect(endpoint(V4, 18001), "GET", "/chat", "succeeded", None,
                   "101, one echoed message, Close 1000 from the client",
                   version("websockets"), version("websockets"), said,
                   websockets_session(book), notes=["ws_closed_normally"],
                   status=101)]


@scenario("ws_ok_aiohttp", "aiohttp client and server", (18002,))
async def _ws_ok_aiohttp() -> list[Expect]:
    async with aiohttp_server(V4, 18002, {"/ws": aiohttp_ws_handler}) as book:
        said = await aiohttp_ws_client(f"http://{V4}:18002/ws")
    return [Expect(endpoint(V4, 18002), "GET", "/ws", "succeeded", None,
                   "101, one echoed message, Close 1000 from the client",
                   version("aiohttp"), version("aiohttp"), said, book.said(),
                   notes=["ws_closed_normally"], status=101)]


@scenario("ws_ok_permessage_deflate", "websockets with permessage-deflate negotiated", (18003,))
async def _ws_ok_deflate() -> list[Expect]:
    async with websockets_server(V4, 18003, "deflate", compression="deflate") as book:
        said = await websockets_client(f"ws://{V4}:18003/", send="compress me " * 40,
                                       compression="deflate")
    return [Expect(endpoint(V4, 18003), "GET", "/", "succeeded", None,
                   "101 with permessage-deflate; compressed (RSV1) frames both ways, Close 1000",
                   version("websockets"), version("websockets"), said,
                   websockets_session(book), notes=["ws_closed_normally"],
                   status=101)]


@scenario("plain_get", "plain GET (the Postman case) to websockets and aiohttp endpoints",
          (18004, 18005))
async def _plain_get() -> list[Expect]:
    async with websockets_server(V4, 18004, "plain") as wbook, \
            aiohttp_server(V4, 18005, {"/ws": aiohttp_ws_handler}) as abook:
        _, said1 = await aiohttp_request("GET", f"http://{V4}:18004/", {})
        _, said2 = await aiohttp_request("GET", f"http://{V4}:18005/ws", {})
    return [
        Expect(endpoint(V4, 18004), "GET", "/", "failed", "request_without_upgrade",
               "plain GET, websockets answered 426", version("aiohttp") + " (plain GET)",
               version("websockets"), said1, websockets_rejection(wbook), status=426),
        Expect(endpoint(V4, 18005), "GET", "/ws", "failed", "request_without_upgrade",
               "plain GET, aiohttp's WebSocketResponse.prepare raised HTTPBadRequest",
               version("aiohttp") + " (plain GET)", version("aiohttp"), said2, abook.said(),
               status=400),
    ]


@scenario("ws_key_missing", "WebSocket request without Sec-WebSocket-Key", (18006, 18007))
async def _key_missing() -> list[Expect]:
    headers = ws_headers(Sec_WebSocket_Key=None)
    async with websockets_server(V4, 18006, "nokey") as wbook, \
            aiohttp_server(V4, 18007, {"/ws": aiohttp_ws_handler}) as abook:
        _, said1 = await aiohttp_request("GET", f"http://{V4}:18006/", headers)
        _, said2 = await aiohttp_request("GET", f"http://{V4}:18007/ws", headers)
    client = version("aiohttp") + " (hand-made WebSocket headers)"
    return [
        Expect(endpoint(V4, 18006), "GET", "/", "failed", "ws_key_missing",
               "no key; websockets answered 400", client, version("websockets"), said1,
               websockets_rejection(wbook), status=400),
        Expect(endpoint(V4, 18007), "GET", "/ws", "failed", "ws_key_missing",
               "no key; aiohttp answered 400", client, version("aiohttp"), said2,
               abook.said(), status=400),
    ]


@scenario("ws_version_8", "Sec-WebSocket-Version: 8 to a websockets server", (18008,))
async def _version_8() -> list[Expect]:
    async with websockets_server(V4, 18008, "v8") as book:
        status, said = await aiohttp_request("GET", f"http://{V4}:18008/",
                                             ws_headers(Sec_WebSocket_Version="8"))
    return [Expect(endpoint(V4, 18008), "GET", "/", "failed", "ws_version_not_13",
                   f"version 8; websockets answered {status}",
                   version("aiohttp") + " (hand-made WebSocket headers)",
                   version("websockets"), said, websockets_rejection(book), status=status)]


@scenario("connection_keep_alive", "Connection: keep-alive instead of Upgrade", (18009, 18010))
async def _keep_alive() -> list[Expect]:
    headers = ws_headers(Connection="keep-alive")
    async with websockets_server(V4, 18009, "keepalive") as wbook, \
            aiohttp_server(V4, 18010, {"/ws": aiohttp_ws_handler}) as abook:
        s1, said1 = await aiohttp_request("GET", f"http://{V4}:18009/", headers)
        s2, said2 = await aiohttp_request("GET", f"http://{V4}:18010/ws", headers)
    client = version("aiohttp") + " (hand-made WebSocket headers)"
    return [
        Expect(endpoint(V4, 18009), "GET", "/", "failed", "connection_without_upgrade",
               f"Connection lacks upgrade; websockets answered {s1}", client,
               version("websockets"), said1, websockets_rejection(wbook), status=s1),
        Expect(endpoint(V4, 18010), "GET", "/ws", "failed", "connection_without_upgrade",
               f"Connection lacks upgrade; aiohttp answered {s2}", client, version("aiohttp"),
               said2, abook.said(), status=s2),
    ]


@scenario("ws_version_8_accepted", "Sec-WebSocket-Version: 8 from the aiohttp client to an "
          "aiohttp server, which accepts versions 13, 8 and 7", (18033,))
async def _version_8_accepted() -> list[Expect]:
    async with aiohttp_server(V4, 18033, {"/ws": aiohttp_ws_handler}) as book:
        said = await aiohttp_ws_client(f"http://{V4}:18033/ws",
                                       headers={"Sec-WebSocket-Version": "8"})
    return [Expect(endpoint(V4, 18033), "GET", "/ws", "succeeded", None,
                   "version 8 is against RFC 6455 §4.1, but aiohttp switched, echoed a message "
                   "and both sides closed with 1000: the upgrade demonstrably worked",
                   version("aiohttp") + " (Sec-WebSocket-Version: 8)", version("aiohttp"), said,
                   book.said(), notes=["ws_version_not_13"], status=101)]


@scenario("connection_keep_alive_upgrade", "Firefox-style 'Connection: keep-alive, Upgrade' "
          "to websockets and aiohttp servers", (18034, 18035))
async def _keep_alive_upgrade() -> list[Expect]:
    headers = {"Connection": "keep-alive, Upgrade"}
    async with websockets_server(V4, 18034, "ffconn") as wbook, \
            aiohttp_server(V4, 18035, {"/ws": aiohttp_ws_handler}) as abook:
        said1 = await aiohttp_ws_client(f"http://{V4}:18034/ws", headers=headers)
        said2 = await aiohttp_ws_client(f"http://{V4}:18035/ws", headers=headers)
    client = version("aiohttp") + " (Connection: keep-alive, Upgrade)"
    return [
        Expect(endpoint(V4, 18034), "GET", "/ws", "succeeded", None,
               "websockets accepts a Connection list containing upgrade", client,
               version("websockets"), said1, websockets_session(wbook), status=101),
        Expect(endpoint(V4, 18035), "GET", "/ws", "succeeded", None,
               "aiohttp accepts a Connection list containing upgrade", client,
               version("aiohttp"), said2, abook.said(), status=101),
    ]


@scenario("ws_post", "WebSocket headers on a POST", (18011, 18012))
async def _post() -> list[Expect]:
    headers = ws_headers()
    async with websockets_server(V4, 18011, "post") as wbook, \
            aiohttp_server(V4, 18012, {"/ws": aiohttp_ws_handler}) as abook:
        s1, said1 = await aiohttp_request("POST", f"http://{V4}:18011/", headers)
        s2, said2 = await aiohttp_request("POST", f"http://{V4}:18012/ws", headers)
    client = version("aiohttp") + " (hand-made WebSocket headers)"
    return [
        Expect(endpoint(V4, 18011), "POST", "/", "failed", "ws_method_not_get",
               f"POST; websockets answered {s1}", client, version("websockets"), said1,
               websockets_rejection(wbook), status=s1),
        Expect(endpoint(V4, 18012), "POST", "/ws", "failed", "ws_method_not_get",
               f"POST to a GET route; aiohttp answered {s2}", client, version("aiohttp"), said2,
               abook.said(), status=s2),
    ]


@scenario("ws_bad_origin_403", "websockets server refusing the client's Origin", (18013,))
async def _bad_origin() -> list[Expect]:
    async with websockets_server(V4, 18013, "origin",
                                 origins=["https://good.example"]) as book:
        said = await websockets_client(f"ws://{V4}:18013/", origin="https://evil.example")
    return [Expect(endpoint(V4, 18013), "GET", "/", "failed", "response_forbidden",
                   "Origin not allowed; websockets answered 403", version("websockets"),
                   version("websockets"), said, websockets_rejection(book), status=403)]


@scenario("ws_not_found_404", "WebSocket handshake to a path aiohttp does not route", (18014,))
async def _not_found() -> list[Expect]:
    async with aiohttp_server(V4, 18014, {"/ws": aiohttp_ws_handler}) as book:
        said = await aiohttp_ws_client(f"http://{V4}:18014/socket")
    return [Expect(endpoint(V4, 18014), "GET", "/socket", "failed", "response_not_found",
                   "no route; aiohttp answered 404", version("aiohttp"), version("aiohttp"),
                   said, book.said(), status=404)]


@scenario("ws_subprotocol_required", "websockets server requiring a subprotocol the client "
          "did not offer", (18015,))
async def _subprotocol_required() -> list[Expect]:
    async with websockets_server(V4, 18015, "subreq", subprotocols=["chat.v1"]) as book:
        said = await websockets_client(f"ws://{V4}:18015/")
    return [Expect(endpoint(V4, 18015), "GET", "/", "failed", "ws_protocol_required",
                   "no subprotocol offered; websockets answered 400 'missing subprotocol'",
                   version("websockets"), version("websockets"), said,
                   websockets_rejection(book), notes=["response_bad_request"], status=400)]


@scenario("ws_subprotocol_not_chosen", "client offers a subprotocol, server chooses none "
          "(python websockets client accepts that)", (18016,))
async def _subprotocol_not_chosen() -> list[Expect]:
    async with websockets_server(V4, 18016, "subnone") as book:
        said = await websockets_client(f"ws://{V4}:18016/", subprotocols=["chat.v1"])
    return [Expect(endpoint(V4, 18016), "GET", "/", "succeeded", None,
                   "101 without Sec-WebSocket-Protocol; the websockets client accepted it, "
                   "echoed a message and closed with 1000",
                   version("websockets"), version("websockets"), said,
                   websockets_session(book),
                   notes=["ws_protocol_not_chosen"], status=101)]


def _wrong_accept_101() -> bytes:
    wrong = base64.b64encode(hashlib.sha1(b"not-the-key" + WS_GUID.encode()).digest())
    return (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + wrong + b"\r\n\r\n")


@scenario("ws_accept_wrong", "a broken endpoint answering 101 with a wrong Accept", (18017,))
async def _accept_wrong() -> list[Expect]:
    async with stub_server(V4, 18017, _wrong_accept_101()) as book:
        said1 = await websockets_client(f"ws://{V4}:18017/")
        await asyncio.sleep(0.3)  # let the stub log the first client's hang-up
        server1 = book.said()
        book.clear()
        said2 = await aiohttp_ws_client(f"http://{V4}:18017/")
        await asyncio.sleep(0.3)
        server2 = book.said()
    stub = "asyncio stub (raw socket) sending a fixed 101"
    return [
        Expect(endpoint(V4, 18017), "GET", "/", "failed", "ws_accept_mismatch",
               "101 with a wrong Accept; the websockets client failed the connection",
               version("websockets"), stub, said1, server1, status=101),
        Expect(endpoint(V4, 18017), "GET", "/", "failed", "ws_accept_mismatch",
               "101 with a wrong Accept; the aiohttp client failed the connection",
               version("aiohttp"), stub, said2, server2, status=101),
    ]


@scenario("ws_close_1008", "server closes with 1008 right after the 101", (18018,))
async def _close_1008() -> list[Expect]:
    async def refuse(ws: Any) -> None:
        await ws.close(1008, "authentication required")

    async with websockets_server(V4, 18018, "1008", handler=refuse) as book:
        said = await websockets_client(f"ws://{V4}:18018/", send=None)
    return [Expect(endpoint(V4, 18018), "GET", "/", "aborted", "ws_closed_with_error",
                   "101, then the server's handler closed with 1008",
                   version("websockets"), version("websockets"), said,
                   websockets_session(book), status=101)]


@scenario("no_response", "a server that accepts and never answers; the client gives up",
          (18019,))
async def _no_response() -> list[Expect]:
    async with stub_server(V4, 18019, None) as book:
        said = await websockets_client(f"ws://{V4}:18019/")
        await asyncio.sleep(0.3)
    return [Expect(endpoint(V4, 18019), "GET", "/", "no_response",
                   "no_response_client_gave_up",
                   "no answer; the websockets client timed out after 2 s and closed",
                   version("websockets") + " (open_timeout=2)",
                   "asyncio stub (raw socket) that never answers", said, book.said())]


@scenario("refused", "nothing listens on the port", (18020,))
async def _refused() -> list[Expect]:
    said = await websockets_client(f"ws://{V4}:18020/")
    return [Expect(endpoint(V4, 18020), None, None, "refused", "tcp_refused",
                   "SYN answered by RST", version("websockets"), "(nothing listening)", said,
                   "")]


PROXY_OK = """            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";"""


@scenario("nginx_proxy_ok", "nginx correctly proxying to websockets; both legs, -i any",
          (18021, 18022), interface="any")
async def _nginx_ok() -> list[Expect]:
    async with websockets_server(V4, 18022, "behind-nginx") as book, \
            nginx(18021, 18022, PROXY_OK) as log:
        said = await websockets_client(f"ws://{V4}:18021/chat")
        await asyncio.sleep(0.2)
        proxy = log()
    both = f"nginx: {proxy} || backend: {websockets_session(book)}"
    return [
        Expect(endpoint(V4, 18021), "GET", "/chat", "succeeded", None,
               "client leg: 101 relayed by nginx, echo, Close 1000", version("websockets"),
               nginx_version() + " -> " + version("websockets"), said, both,
               notes=["ws_closed_normally"], status=101),
        Expect(endpoint(V4, 18022), "GET", "/chat", "succeeded", None,
               "backend leg: nginx's request upgraded by websockets", nginx_version(),
               version("websockets"), said, both, notes=["ws_closed_normally"], status=101),
    ]


@scenario("nginx_proxy_no_upgrade_headers", "nginx without proxy_set_header Upgrade/Connection: "
          "hop-by-hop headers stripped on the backend leg", (18023, 18024), interface="any")
async def _nginx_stripped() -> list[Expect]:
    async with websockets_server(V4, 18024, "stripped") as book, \
            nginx(18023, 18024, "            proxy_http_version 1.1;") as log:
        said = await websockets_client(f"ws://{V4}:18023/chat")
        await asyncio.sleep(0.2)
        proxy = log()
    both = f"nginx: {proxy} || backend: {websockets_rejection(book)}"
    return [
        Expect(endpoint(V4, 18023), "GET", "/chat", "failed", "response_upgrade_required",
               "client leg: the client's request was valid; nginx relayed the backend's 426",
               version("websockets"), nginx_version() + " -> " + version("websockets"), said,
               both, status=426),
        Expect(endpoint(V4, 18024), "GET", "/chat", "failed", "upgrade_header_missing",
               "backend leg: nginx dropped Upgrade and sent Connection: close, keeping the "
               "Sec-WebSocket-* headers; websockets answered 426", nginx_version(),
               version("websockets"), said, both, status=426),
    ]


@scenario("nginx_proxy_http10", "nginx with proxy_http_version 1.0 (its default) but the "
          "Upgrade/Connection headers set", (18025, 18026), interface="any")
async def _nginx_http10() -> list[Expect]:
    lines = PROXY_OK.replace("1.1", "1.0")
    async with websockets_server(V4, 18026, "http10") as book, \
            nginx(18025, 18026, lines) as log:
        said = await websockets_client(f"ws://{V4}:18025/chat")
        await asyncio.sleep(0.2)
        proxy = log()
    both = f"nginx: {proxy} || backend: {websockets_rejection(book)}"
    status = _status_in(both)
    return [
        Expect(endpoint(V4, 18025), "GET", "/chat", "failed", _reason_for_status(status),
               f"client leg: valid request; nginx relayed the backend's {status}",
               version("websockets"), nginx_version() + " -> " + version("websockets"), said,
               both, status=status),
        Expect(endpoint(V4, 18026), "GET", "/chat", "failed", "request_http10",
               f"backend leg: nginx sent the upgrade in HTTP/1.0; websockets answered {status}",
               nginx_version(), version("websockets"), said, both, status=status),
    ]


def _status_in(text: str) -> int | None:
    match = re.search(r"> HTTP/1\.1 (\d{3})", text)
    return int(match[1]) if match else None


def _reason_for_status(status: int | None) -> str:
    return {400: "response_bad_request", 426: "response_upgrade_required",
            505: "response_server_error"}.get(status or 0, "response_client_error")


@scenario("plain_get_via_nginx", "plain GET (Postman case) through a correct nginx proxy",
          (18027, 18028), interface="any")
async def _plain_get_nginx() -> list[Expect]:
    async with websockets_server(V4, 18028, "plain-nginx") as book, \
            nginx(18027, 18028, PROXY_OK) as log:
        status, said = await aiohttp_request("GET", f"http://{V4}:18027/", {})
        await asyncio.sleep(0.2)
        proxy = log()
    both = f"nginx: {proxy} || backend: {websockets_rejection(book)}"
    return [
        Expect(endpoint(V4, 18027), "GET", "/", "failed", "request_without_upgrade",
               f"plain GET; the backend's {status} relayed by nginx",
               version("aiohttp") + " (plain GET)",
               nginx_version() + " -> " + version("websockets"), said, both, status=status),
        Expect(endpoint(V4, 18028), "GET", "/", "failed", "request_without_upgrade",
               f"backend leg: plain GET (nginx added Connection: upgrade, no Upgrade); "
               f"websockets answered {status}", nginx_version(), version("websockets"), said,
               both, status=status),
    ]


@scenario("h2c_declined", "curl --http2 (Upgrade: h2c) to aiohttp, which answers 200 over "
          "HTTP/1.1", (18029,))
async def _h2c_declined() -> list[Expect]:
    async with aiohttp_server(V4, 18029, {"/": aiohttp_page}) as book:
        _, said = await curl("--http2", f"http://{V4}:18029/")
    return [Expect(endpoint(V4, 18029), "GET", "/", "declined", "upgrade_declined",
                   "h2c offered; aiohttp ignored it and answered 200 over HTTP/1.1",
                   curl_version(), version("aiohttp"), said, book.said(), status=200)]


@scenario("h2c_accepted", "curl --http2 (Upgrade: h2c) to hypercorn, which switches to HTTP/2",
          (18030,))
async def _h2c_accepted() -> list[Expect]:
    async with hypercorn_server(V4, 18030) as book:
        _, said = await curl("--http2", f"http://{V4}:18030/")
    return [Expect(endpoint(V4, 18030), "GET", "/", "succeeded", None,
                   "101 to h2c; curl sent the preface, got the answer over HTTP/2",
                   curl_version(), version("hypercorn"), said, book.said(),
                   notes=["h2c_upgraded_request_status"], status=101)]


def _h2_app() -> tuple[Any, Callable[[str, int, str], str]]:
    """The ASGI WebSocket app and the RFC 8441 client of the live tests (tests/h2_app.py)."""
    sys.path.insert(0, str(HERE.parent))
    from tests.h2_app import app, extended_connect

    return app, extended_connect


@scenario("h2_websocket_hypercorn", "WebSockets over HTTP/2 (RFC 8441, cleartext prior "
          "knowledge): an h2-library client to hypercorn: accepted, refused 403, unknown path "
          "404, closed 1008 after the 200", (18040,))
async def _h2_websocket_hypercorn() -> list[Expect]:
    app, client = _h2_app()
    expects = []
    outcomes = (("/echo", "succeeded", None, 200, "200; one message echoed, Close 1000"),
                ("/deny", "failed", "response_forbidden", 403,
                 "the app closed before accepting: hypercorn answered 403"),
                ("/missing", "failed", "response_not_found", 404,
                 "the app answered 404 through websocket.http.response"),
                ("/policy", "aborted", "ws_closed_with_error", 200,
                 "accepted, then the app closed with 1008"))
    async with hypercorn_server(V4, 18040, app) as book:
        for path, verdict, reason, status, why in outcomes:
            said = await asyncio.to_thread(client, V4, 18040, path)
            expects.append(Expect(endpoint(V4, 18040), "CONNECT", path, verdict, reason, why,
                                  f"{version('h2')} (extended CONNECT)",
                                  version("hypercorn"), said, book.said(), status=status))
    return expects


@scenario("h2_protocol_not_enabled", "extended CONNECT (:protocol websocket) to nginx http2 "
          "prior knowledge, which never enables it", (18041,))
async def _h2_protocol_not_enabled() -> list[Expect]:
    _, client = _h2_app()
    async with nginx_http2(18041) as said_by_nginx:
        said = await asyncio.to_thread(client, V4, 18041, "/chat")
        logged = said_by_nginx()
    return [Expect(endpoint(V4, 18041), "CONNECT", "/chat", "failed",
                   "h2_connect_protocol_not_enabled",
                   "nginx's SETTINGS lack ENABLE_CONNECT_PROTOCOL; it answered 400",
                   f"{version('h2')} (extended CONNECT)", nginx_version(), said, logged,
                   status=400)]


@scenario("h2_only_server", "an HTTP/1.1 WebSocket handshake (curl) to nginx http2 prior "
          "knowledge, which answers with HTTP/2 SETTINGS and GOAWAY", (18042,))
async def _h2_only_server() -> list[Expect]:
    headers = [arg for name, value in ws_headers().items() for arg in ("-H", f"{name}: {value}")]
    async with nginx_http2(18042) as said_by_nginx:
        _, said = await curl("--http1.1", *headers, f"http://{V4}:18042/chat")
        logged = said_by_nginx()
    return [Expect(endpoint(V4, 18042), "GET", "/chat", "failed", "response_not_http",
                   "nginx spoke HTTP/2 (SETTINGS, GOAWAY) to an HTTP/1.1 request",
                   curl_version(), nginx_version(), said, logged)]


@scenario("ws_ok_ipv6", "websockets client and server on ::1, saved as pcapng", (18031,),
          pcapng=True)
async def _ipv6() -> list[Expect]:
    async with websockets_server(V6, 18031, "v6") as book:
        said = await websockets_client(f"ws://[{V6}]:18031/v6")
    return [Expect(endpoint(V6, 18031), "GET", "/v6", "succeeded", None,
                   "101 over IPv6, echo, Close 1000", version("websockets"),
                   version("websockets"), said, websockets_session(book),
                   notes=["ws_closed_normally"], status=101)]


@scenario("ws_bad_origin_ipv6", "websockets server refusing the Origin, on ::1, pcapng",
          (18032,), pcapng=True)
async def _bad_origin_v6() -> list[Expect]:
    async with websockets_server(V6, 18032, "origin6",
                                 origins=["https://good.example"]) as book:
        said = await websockets_client(f"ws://[{V6}]:18032/", origin="https://evil.example")
    return [Expect(endpoint(V6, 18032), "GET", "/", "failed", "response_forbidden",
                   "Origin not allowed; websockets answered 403", version("websockets"),
                   version("websockets"), said, websockets_rejection(book), status=403)]


async def aiohttp_redirect(request: Any) -> Any:
    from aiohttp import web

    raise web.HTTPFound("/ws")


def _connections(book: LogBook) -> list[str]:
    """A websockets client log split per TCP connection, keeping what tells how each one went."""
    keep = ("< HTTP/", "< Location", "! ", "x ", "= connection is CLOSED")
    said: list[str] = []
    for line in book.lines:
        if line == "= connection is CONNECTING":
            said.append("")
        elif said and line.startswith(keep):
            said[-1] = f"{said[-1]} | {line}" if said[-1] else line
    return said


@scenario("redirect_302", "aiohttp answers /old with 302 Location: /ws; the websockets client "
          "follows it on a new connection", (18036,))
async def _redirect_302() -> list[Expect]:
    logger, client_book = websockets_logger("redirect-client")
    routes = {"/old": aiohttp_redirect, "/ws": aiohttp_ws_handler}
    async with aiohttp_server(V4, 18036, routes) as book:
        said = await websockets_client(f"ws://{V4}:18036/old", logger=logger)
        await asyncio.sleep(0.2)
    connections = _connections(client_book)
    if len(connections) != 2:
        raise RuntimeError(f"redirect_302: expected two connections, the client logged "
                           f"{connections!r} and said {said!r}")
    server = version("aiohttp")
    return [
        Expect(endpoint(V4, 18036), "GET", "/old", "failed", "response_redirect",
               "302 Found; this handshake did not switch: the websockets client closed the "
               "connection and followed Location on a new one", version("websockets"), server,
               connections[0], book.said(), status=302),
        Expect(endpoint(V4, 18036), "GET", "/ws", "succeeded", None,
               "the followed redirect: 101, one echoed message, Close 1000",
               version("websockets"), server, f"{said} (log: {connections[1]})", book.said(),
               notes=["ws_closed_normally"], status=101),
    ]


# Run with `ip netns exec`, in separate processes: argv = captures dir, host/URI, port/cookie.
NETNS_SERVER = """
import asyncio, sys
sys.path.insert(0, sys.argv[1])
import generate

async def main() -> None:
    async with generate.websockets_server(sys.argv[2], int(sys.argv[3]), "netns") as book:
        print("listening", flush=True)
        await asyncio.to_thread(sys.stdin.read)  # until the generator closes stdin
    print(generate.websockets_session(book), flush=True)

asyncio.run(asyncio.wait_for(main(), 20))
"""
NETNS_CLIENT = """
import asyncio, sys
sys.path.insert(0, sys.argv[1])
import generate

print(asyncio.run(generate.websockets_client(sys.argv[2],
                                             additional_headers={"Cookie": sys.argv[3]})))
"""


async def in_namespace(namespace: str, code: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", namespace, sys.executable, "-c", code, str(HERE), *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, start_new_session=True,
    )


async def finish(process: asyncio.subprocess.Process, timeout: float) -> str:
    """Waits for a process (killing its group after `timeout`); returns what it printed."""
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout)
        return out.decode(errors="replace").strip()
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


@scenario("large_headers_netns", "websockets client with a 6 KB Cookie over a veth pair with "
          "MTU 1500 (two network namespaces): the request head spans several segments",
          (18037,), interface=VETH_CLIENT, netns=True, min_head_segments=3)
async def _large_headers() -> list[Expect]:
    cookie = "; ".join(f"c{i}={os.urandom(48).hex()}" for i in range(60))  # ~5.9 KB
    server = await in_namespace(NS_SERVER, NETNS_SERVER, NET_SERVER, "18037")
    try:
        assert server.stdout is not None
        ready = await asyncio.wait_for(server.stdout.readline(), 10)
        if ready.strip() != b"listening":
            raise RuntimeError(f"large_headers_netns: the server said {ready!r}")
        client = await in_namespace(NS_CLIENT, NETNS_CLIENT, f"ws://{NET_SERVER}:18037/big",
                                    cookie)
        assert client.stdin is not None
        client.stdin.close()
        said = await finish(client, CLIENT_TIMEOUT + 5)
        await asyncio.sleep(0.2)
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server_said = await finish(server, 5)
    return [Expect(endpoint(NET_SERVER, 18037), "GET", "/big", "succeeded", None,
                   f"a {len(cookie)}-byte Cookie split over MTU-sized segments; websockets "
                   "reassembled the head, switched, echoed a message, Close 1000",
                   version("websockets") + f" (Cookie of {len(cookie)} bytes)",
                   version("websockets"), said, server_said, notes=["ws_closed_normally"],
                   status=101)]


# --- running -------------------------------------------------------------------------------------


def to_pcapng(path: Path) -> Path:
    """Converts a pcap to pcapng with editcap, or scapy's writer when editcap is absent."""
    target = path.with_suffix(".pcapng")
    if shutil.which("editcap"):
        subprocess.run(["editcap", "-F", "pcapng", str(path), str(target)], check=True,
                       timeout=30)
    else:
        import scapy.layers.l2  # noqa: F401  (registers the Ethernet and Linux cooked types)
        from scapy.utils import PcapNgWriter, rdpcap

        packets = rdpcap(str(path))
        with PcapNgWriter(str(target)) as writer:
            for packet in packets:
                writer.write(packet)
    path.unlink()
    return target


def check_outcome(item: Scenario, expect: Expect) -> None:
    """Refuses a recording where the software did not do what the scenario is about (a server
    that was not up yet, a client that failed for another reason)."""
    worked = expect.client_said.startswith(("connected", "curl exit 0"))
    # (an aborted or dropped switch did connect, and a client may say so before the end)
    if expect.verdict not in ("aborted", "dropped") and (
            expect.verdict in ("succeeded", "declined")) != worked:
        raise RuntimeError(f"{item.name}: {expect.server}: the client said "
                           f"{expect.client_said!r}, not what {expect.verdict!r} needs")
    # SC--: HAProxy's log; "connect: connection refused": Go's (Caddy's log)
    refused = ("ConnectionRefusedError", "ECONNREFUSED", " SC--", "connect: connection refused")
    if any(word in expect.client_said for word in refused) != (expect.verdict == "refused"):
        raise RuntimeError(f"{item.name}: unexpected refusal: {expect.client_said!r}")


def run_scenario(item: Scenario, out: Path) -> dict[str, Any]:
    """Records one scenario into `out`; returns its expected.json entry."""
    out.mkdir(parents=True, exist_ok=True)
    raw = out / f"{item.name}.pcap"
    hosts, namespace = ((NET_CLIENT, NET_SERVER), NS_CLIENT) if item.netns else ((V4, V6), None)
    with veth_pair() if item.netns else contextlib.nullcontext(), \
            tcpdump(raw, item.interface, list(item.ports), hosts, namespace):
        expects = asyncio.run(asyncio.wait_for(item.run(), item.timeout))
    path = to_pcapng(raw) if item.pcapng else raw
    opened = syns(path)
    for expect in expects:
        for index, (client, server) in enumerate(opened):
            # (a scenario may name the client itself: socket.io's upgrade comes after polls)
            if server == expect.server and expect.client in (None, client):
                expect.client = client
                del opened[index]
                break
        else:
            raise RuntimeError(f"{item.name}: no connection to {expect.server} in the capture")
        check_outcome(item, expect)
        segments = head_segments(path, expect.client or "", expect.server)
        if segments < item.min_head_segments:
            raise RuntimeError(f"{item.name}: the request head took {segments} segment(s), "
                               f"not the {item.min_head_segments}+ the scenario is about")
        if item.min_head_segments:
            expect.why += f" (the head took {segments} segments, read by tcpdump -r)"
    link = "loopback"
    if item.interface == "any":
        link = "Linux cooked (tcpdump -i any)"
    elif item.netns:
        link = "Ethernet (veth, MTU 1500)"
    return {
        "file": path.name,
        "description": item.description,
        "link": link,
        "format": "pcapng" if item.pcapng else "pcap",
        "attempts": [asdict(expect) for expect in expects],
    }


def generate(names: list[str] | None, out: Path) -> list[dict[str, Any]]:
    """Records the named scenarios (all by default) into `out`; returns their entries."""
    chosen = [SCENARIOS[name] for name in (names or list(SCENARIOS))]
    return [run_scenario(item, out) for item in chosen]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scenarios", nargs="*", help=f"default: all of {', '.join(SCENARIOS)}")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("run as root: tcpdump needs it")
    # The framework and proxy scenarios live beside this file and import it by name.
    sys.modules.setdefault("generate", sys.modules[__name__])
    import frameworks  # noqa: F401, PLC0415  (registers its scenarios in SCENARIOS)
    import java_servers  # noqa: F401, PLC0415
    import lives  # noqa: F401, PLC0415
    import proxies  # noqa: F401, PLC0415

    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    entries = generate(args.scenarios or None, args.out)
    index = args.out / "expected.json"
    previous: dict[str, Any] = {}
    if index.exists():  # a partial run updates the index; a full one keeps generate_tls.py's
        previous = {e["file"]: e for e in json.loads(index.read_text())["captures"]
                    if args.scenarios or e.get("generator") == "captures/generate_tls.py"}
    for entry in entries:
        previous[entry["file"]] = entry
        for attempt in entry["attempts"]:
            print(f"{entry['file']}: {attempt['server']} {attempt['verdict']} "
                  f"{attempt['reason']}\n    client: {attempt['client_said']}\n"
                  f"    server: {attempt['server_said']}")
    document = {
        "generated_by": "captures/generate.py",
        "captures": [previous[k] for k in sorted(previous)],
    }
    index.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
