"""The soak's traffic (benchmarks/soak.py): the servers (websockets, aiohttp, nginx in front
of a second websockets server), the clients that make handshakes against them at a steady rate
and count what they saw, and the bookkeeping of the processes started for them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLIENT_TIMEOUT = 10.0  # one handshake, from connect to close
GOOD_ORIGIN = "http://good.example"

SERVERS = r"""
import asyncio, http, json, sys
import websockets.asyncio.server as wss
from aiohttp import web

def route(connection, request):
    # By the last path component, so the same paths work behind nginx.
    name = request.path.rsplit("/", 1)[-1].split("?", 1)[0]
    if name == "ok" or name == "bad":  # /bad: the client sends no key, websockets answers 400
        return None
    if name == "forbidden":
        return connection.respond(http.HTTPStatus.FORBIDDEN, "forbidden\n")
    return connection.respond(http.HTTPStatus.NOT_FOUND, "no such path\n")

async def echo(ws):
    async for message in ws:
        await ws.send(message)

async def aio_ws(request):
    if request.headers.get("Origin") != "%(origin)s":
        return web.Response(status=403, text="forbidden origin")
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for message in ws:
        await ws.send_str(message.data)
    return ws

async def main():
    direct = await wss.serve(echo, "127.0.0.1", 0, process_request=route, backlog=1024)
    upstream = await wss.serve(echo, "127.0.0.1", 0, process_request=route, backlog=1024)
    app = web.Application()
    app.router.add_get("/aio", aio_ws)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    print(json.dumps({
        "websockets": direct.sockets[0].getsockname()[1],
        "upstream": upstream.sockets[0].getsockname()[1],
        "aiohttp": site._server.sockets[0].getsockname()[1],
    }), flush=True)
    await asyncio.sleep(float(sys.argv[1]))

asyncio.run(main())
""".replace("%(origin)s", GOOD_ORIGIN)

NGINX_CONF = """
worker_processes 1;
daemon off;
master_process on;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=1024;
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_set_header Host $host;
        }}
    }}
}}
"""


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of handshake the clients make, and what its client must see."""

    name: str
    server: str  # key of the port map
    path: str
    status: int
    verdict: str  # what the analyzer should say
    websocket_client: bool = False  # through the websockets client (else a raw socket)
    origin: str | None = None
    key: bool = True


def kinds(with_nginx: bool) -> list[Kind]:
    out = [
        Kind("ok", "websockets", "/ok", 101, "succeeded", websocket_client=True),
        Kind("forbidden", "websockets", "/forbidden", 403, "failed"),
        Kind("missing", "websockets", "/missing", 404, "failed"),
        Kind("no_key", "websockets", "/bad", 400, "failed", key=False),
        Kind("aio_ok", "aiohttp", "/aio", 101, "succeeded", websocket_client=True,
             origin=GOOD_ORIGIN),
        Kind("aio_origin", "aiohttp", "/aio", 403, "failed", origin="http://evil.example"),
        Kind("aio_missing", "aiohttp", "/nowhere", 404, "failed"),
    ]
    if with_nginx:
        out += [
            Kind("nginx_ok", "nginx", "/via/ok", 101, "succeeded", websocket_client=True),
            Kind("nginx_forbidden", "nginx", "/via/forbidden", 403, "failed"),
            Kind("nginx_missing", "nginx", "/via/missing", 404, "failed"),
        ]
    return out


def _request(kind: Kind) -> bytes:
    lines = [f"GET {kind.path} HTTP/1.1", "Host: 127.0.0.1", "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Version: 13"]
    if kind.key:
        lines.append("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==")
    if kind.origin:
        lines.append(f"Origin: {kind.origin}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# --- processes -------------------------------------------------------------------------------

class Processes:
    """Every child this script starts, stopped by PID however the run ends."""

    def __init__(self) -> None:
        self.children: list[subprocess.Popen[Any]] = []

    def start(self, args: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        child = subprocess.Popen(args, **kwargs)
        self.children.append(child)
        return child

    def stop_all(self) -> None:
        for child in reversed(self.children):
            if child.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.terminate()
        for child in reversed(self.children):
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    child.kill()
                child.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def start_servers(procs: Processes, lifetime: float, workdir: Path,
                  use_nginx: bool) -> dict[str, int]:
    server = procs.start([sys.executable, "-c", SERVERS, str(lifetime)], stdout=subprocess.PIPE,
                         text=True)
    assert server.stdout is not None
    line = _readline(server.stdout, 30.0)
    if not line:
        raise RuntimeError("the server process did not print its ports")
    ports: dict[str, int] = json.loads(line)
    if use_nginx:
        front = _free_port()
        conf = workdir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=workdir, port=front, upstream=ports["upstream"]))
        procs.start(["nginx", "-c", str(conf), "-p", str(workdir)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(front, 15.0)
        ports["nginx"] = front
    return ports


def _readline(stream: Any, timeout: float) -> str:
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return got[0] if got else ""


# --- clients ---------------------------------------------------------------------------------

@dataclass(slots=True)
class Made:
    """What the clients did, by kind."""

    completed: Counter[str] = field(default_factory=Counter)
    incomplete: Counter[str] = field(default_factory=Counter)
    wrong_status: Counter[str] = field(default_factory=Counter)  # completed, unexpected answer
    errors: Counter[str] = field(default_factory=Counter)  # exception names, for the report
    started: int = 0

    @property
    def total(self) -> int:
        return sum(self.completed.values())


async def _raw(kind: Kind, port: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(_request(kind))
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        if length:  # the body too, so the server is not cut off mid-answer
            await reader.readexactly(int(length.group(1)))
        return status
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _websocket(kind: Kind, port: int) -> int:
    from websockets.asyncio.client import connect

    headers = {"Origin": kind.origin} if kind.origin else None
    async with connect(f"ws://127.0.0.1:{port}{kind.path}", additional_headers=headers,
                       open_timeout=CLIENT_TIMEOUT, close_timeout=CLIENT_TIMEOUT,
                       compression=None) as ws:
        assert ws.response is not None
        status = int(ws.response.status_code)
    return status


async def _one(kind: Kind, port: int, made: Made) -> None:
    try:
        status = await asyncio.wait_for(
            (_websocket if kind.websocket_client else _raw)(kind, port), CLIENT_TIMEOUT)
    except Exception as error:  # noqa: BLE001 - any failure is counted, by name
        made.incomplete[kind.name] += 1
        made.errors[type(error).__name__] += 1
        return
    if status == kind.status:
        made.completed[kind.name] += 1
    else:
        made.wrong_status[kind.name] += 1


async def run_clients(the_kinds: list[Kind], ports: dict[str, int], rate: float,
                      duration: float, concurrency: int, made: Made,
                      stop: asyncio.Event) -> None:
    """Handshakes at `rate` per second for `duration` seconds (fewer if the machine cannot keep
    up: at most `concurrency` at once), then waits for the last ones."""
    gate = asyncio.Semaphore(concurrency)
    tasks: set[asyncio.Task[None]] = set()

    async def guarded(kind: Kind) -> None:
        try:
            await _one(kind, ports[kind.server], made)
        finally:
            gate.release()

    loop = asyncio.get_running_loop()
    start = loop.time()
    end = start + duration
    due = start
    index = 0
    while not stop.is_set() and (now := loop.time()) < end:
        if due > now:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), due - now)
            continue
        await gate.acquire()
        kind = the_kinds[index % len(the_kinds)]
        index += 1
        made.started += 1
        task = asyncio.create_task(guarded(kind))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        due += 1.0 / rate
        if loop.time() - due > 1.0:  # fell behind: do not burst to catch up
            due = loop.time()
    if tasks:
        await asyncio.wait(tasks, timeout=CLIENT_TIMEOUT + 5)


