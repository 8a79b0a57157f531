"""More scenarios for captures/generate.py: web frameworks and Node, from real traffic.

uvicorn/starlette (websockets and wsproto back ends), Django Channels on daphne, Flask-Sock on
gunicorn, Node `ws` (verifyClient, handleProtocols, maxPayload) and socket.io, and python
websockets' subprotocol negotiation; the process helpers here are shared with proxies.py
(HAProxy, Apache httpd, Caddy, nginx). Same rules as generate.py: loopback only, fixed ports
(18101-18173), every process in its own group and stopped in a `finally`, and what each side
printed or logged recorded at run time.

generate.py imports this module and proxies.py in main(), so `python captures/generate.py
NAME` runs these too. Needs (besides generate.py's): `apt-get install haproxy apache2 caddy`,
`pip install uvicorn starlette wsproto daphne channels flask-sock gunicorn`, and `npm install`
in captures/node.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from generate import (
    V4,
    WS_GUID,
    Expect,
    aiohttp_request,
    endpoint,
    scenario,
    stop,
    version,
    wait_for_listener,
    websockets_client,
    websockets_rejection,
    websockets_server,
    websockets_session,
)

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "node" / "node_modules"
WS_CLIENT = version("websockets")


def node_package(name: str) -> str:
    text = (NODE_MODULES / name / "package.json").read_text()
    match = re.search(r'"version":\s*"([^"]+)"', text)
    return f"{name} {match[1] if match else '?'} (Node {node_version()})"


def node_version() -> str:
    out = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=5)
    return out.stdout.strip()


def tool_version(command: list[str], pattern: str) -> str:
    out = subprocess.run(command, capture_output=True, text=True, timeout=5)
    match = re.search(pattern, out.stdout + out.stderr)
    return match[0] if match else command[0]


# --- processes ------------------------------------------------------------------------------


class Process:
    """A server started in its own process group; `said()` is what it printed so far."""

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        self.log = Path(tempfile.mkstemp(prefix="captures-fw-", suffix=".log")[1])
        self._out = self.log.open("w")
        self.process = subprocess.Popen(command, cwd=cwd, stdout=self._out,
                                        stderr=subprocess.STDOUT, text=True,
                                        start_new_session=True,
                                        env={**os.environ, **(env or {})})

        self.final: str | None = None  # the whole output, once stopped

    def said(self, keep: Callable[[str], bool] = lambda line: True) -> str:
        text = self.final if self.final is not None else self.log.read_text(errors="replace")
        lines = [line.strip() for line in text.splitlines()]
        return " | ".join(line for line in lines if line and keep(line))

    def close(self, sig: int = signal.SIGTERM) -> None:
        try:
            stop(self.process, sig)
        finally:
            self._out.close()
            self.final = self.log.read_text(errors="replace")
            self.log.unlink(missing_ok=True)


@contextlib.asynccontextmanager
async def serving(command: list[str], port: int, cwd: Path, sig: int = signal.SIGTERM,
                  env: dict[str, str] | None = None) -> AsyncIterator[Process]:
    process = Process(command, cwd, env)
    try:
        await asyncio.to_thread(wait_for_listener, V4, port, 10.0)
        yield process
        await asyncio.sleep(0.3)  # the last log lines
    finally:
        process.close(sig)


async def node(script: str, *args: str, timeout: float = 6.0) -> str:
    """Runs a Node script (the clients below) and returns what it printed."""
    process = await asyncio.create_subprocess_exec(
        "node", "-e", script, *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout)
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    return out.decode(errors="replace").strip()


def python_server(code: str, tmp: Path, name: str) -> Path:
    """Writes an app module for uvicorn/daphne/gunicorn into `tmp`; returns the directory."""
    (tmp / f"{name}.py").write_text(code)
    return tmp


# --- apps -----------------------------------------------------------------------------------

STARLETTE_APP = """
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute


async def echo(ws):
    await ws.accept()
    try:
        while True:
            await ws.send_text(await ws.receive_text())
    except Exception:
        pass

app = Starlette(routes=[WebSocketRoute("/chat", echo)])
"""

CHANNELS_APP = """
import django
from django.conf import settings

settings.configure(DEBUG=False, ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__, SECRET_KEY="x",
                   INSTALLED_APPS=["channels"], MIDDLEWARE=[])
django.setup()
from channels.generic.websocket import WebsocketConsumer
from channels.routing import ProtocolTypeRouter, URLRouter
from django.core.asgi import get_asgi_application
from django.urls import path

urlpatterns = []


class Echo(WebsocketConsumer):
    def receive(self, text_data=None, bytes_data=None):
        self.send(text_data=text_data)


application = ProtocolTypeRouter({"http": get_asgi_application(),
                                  "websocket": URLRouter([path("ws/", Echo.as_asgi())])})
"""

FLASK_SOCK_APP = """
from flask import Flask
from flask_sock import Sock

app = Flask(__name__)
sock = Sock(app)


@sock.route("/ws")
def echo(ws):
    while True:
        ws.send(ws.receive())
"""

# Node ws server: verifyClient wants ?token=good (401 otherwise), handleProtocols picks chat.v1
# when offered, maxPayload 64 bytes (a longer message gets Close 1009), path /ws only.
NODE_WS_SERVER = """
const { WebSocketServer } = require('ws');
const port = +process.argv[1];
const wss = new WebSocketServer({
  host: '127.0.0.1', port, path: '/ws', maxPayload: 64,
  verifyClient: (info, cb) => {
    const ok = info.req.url.includes('token=good');
    if (!ok) console.log(`verifyClient refused ${info.req.url}`);
    cb(ok, 401, 'Unauthorized');
  },
  handleProtocols: (protocols) => (protocols.has('chat.v1') ? 'chat.v1' : false),
});
wss.on('listening', () => console.log('listening'));
wss.on('connection', (ws, req) => {
  console.log(`connection ${req.url} protocol=${JSON.stringify(ws.protocol)}`);
  ws.on('message', (m) => ws.send(m));
  ws.on('error', (e) => console.log(`error ${e.message}`));
  ws.on('close', (code, reason) => console.log(`close ${code} ${reason}`));
});
"""

# Node ws client: argv url, comma-separated subprotocols, message to send ('' closes at once).
NODE_WS_CLIENT = """
const WebSocket = require('ws');
const [url, protocols, message] = process.argv.slice(1);
const said = [];
const done = () => { console.log(said.join('; ')); process.exit(0); };
const ws = new WebSocket(url, protocols ? protocols.split(',') : [], { handshakeTimeout: 2000 });
ws.on('open', () => {
  said.push(`connected (protocol=${JSON.stringify(ws.protocol)})`);
  if (message) ws.send(message); else ws.close(1000);
});
ws.on('message', (m) => { said.push(`echoed ${m.length} bytes`); ws.close(1000); });
ws.on('error', (e) => said.push(`error: ${e.message}`));
ws.on('close', (code, reason) => { said.push(`close ${code} ${reason}`.trim()); done(); });
setTimeout(() => { said.push('timeout'); done(); }, 3000);
"""

# socket.io server on 127.0.0.1 with the given transports (comma-separated).
SOCKETIO_SERVER = """
const http = require('http');
const { Server } = require('socket.io');
const [port, transports] = process.argv.slice(1);
const server = http.createServer();
const io = new Server(server, { transports: transports.split(',') });
io.engine.on('connection_error', (e) => console.log(`connection_error ${e.code} ${e.message}`));
io.on('connection', (socket) => {
  console.log(`connection ${socket.conn.id} transport=${socket.conn.transport.name}`);
  socket.conn.on('upgrade', (t) => console.log(`upgraded to ${t.name}`));
  socket.on('echo', (m, ack) => ack(m));
  socket.on('disconnect', (why) => console.log(`disconnect ${why}`));
});
server.listen(+port, '127.0.0.1', () => console.log('listening'));
"""

# socket.io client: argv url, transports; echoes once after the transport upgrade settles.
SOCKETIO_CLIENT = """
const { io } = require('socket.io-client');
const [url, transports] = process.argv.slice(1);
const said = [];
const done = () => { console.log(said.join('; ')); process.exit(0); };
const socket = io(url, { transports: transports.split(','), reconnection: false, timeout: 2000 });
socket.on('connect', () => {
  said.push(`connected (transport=${socket.io.engine.transport.name})`);
  socket.io.engine.on('upgrade', (t) => said.push(`upgraded to ${t.name}`));
  setTimeout(() => socket.emit('echo', 'hello', (r) => {
    const transport = socket.io.engine.transport;
    const local = transport.ws && transport.ws._socket ? transport.ws._socket.localPort : 0;
    said.push(`echoed ${r} over ${transport.name} (local port ${local})`);
    if (transport.name === 'polling' && transports.includes('websocket')) {
      said.unshift('the upgrade failed, stayed on long polling');
    }
    socket.disconnect();
    setTimeout(done, 200);
  }), 500);
});
socket.on('connect_error', (e) => {
  const why = e.description && (e.description.message || (e.description.error || {}).message);
  said.push(`connect_error: ${e.message}${why ? ` (${why})` : ''}`);
  done();
});
setTimeout(() => { said.push('timeout'); done(); }, 4000);
"""


def _uvicorn_log(process: Process) -> str:
    return process.said(keep=lambda line: line.startswith("INFO:") and (
        "WebSocket" in line or "connection" in line or '"GET' in line))


# --- uvicorn / starlette ----------------------------------------------------------------------


@scenario("uvicorn_starlette_websockets", "starlette on uvicorn (websockets back end): a plain "
          "GET to the WebSocket path, then upgrades, an unknown WebSocket path, and a Node ws "
          "client whose subprotocol the app does not choose", (18101,))
async def _uvicorn_websockets() -> list[Expect]:
    with tempfile.TemporaryDirectory(prefix="captures-uvicorn-") as tmp:
        python_server(STARLETTE_APP, Path(tmp), "star_app")
        command = ["uvicorn", "star_app:app", "--host", V4, "--port", "18101", "--ws",
                   "websockets", "--no-use-colors"]
        async with serving(command, 18101, Path(tmp)) as server:
            status, plain = await aiohttp_request("GET", f"http://{V4}:18101/chat", {})
            ok = await websockets_client(f"ws://{V4}:18101/chat")
            unknown = await websockets_client(f"ws://{V4}:18101/nope")
            hung_up = await node(NODE_WS_CLIENT, f"ws://{V4}:18101/chat", "chat.v2", "hello")
        log = _uvicorn_log(server)
    software = f"{version('uvicorn')} --ws websockets, {version('starlette')}"
    here = endpoint(V4, 18101)
    return [
        Expect(here, "GET", "/chat", "failed", "request_without_upgrade",
               f"plain GET to the WebSocket route; starlette answered {status} (no HTTP route) "
               "and another request upgrades on /chat in this capture",
               version("aiohttp") + " (plain GET)", software, plain, log, status=status,
               notes=["response_not_found"]),
        Expect(here, "GET", "/chat", "succeeded", None, "101, echo, Close 1000",
               WS_CLIENT, software, ok, log, notes=["ws_closed_normally"], status=101),
        Expect(here, "GET", "/nope", "failed", "ws_rejected_before_accept",
               "no WebSocket route: the ASGI app closed before accepting; uvicorn answered 403",
               WS_CLIENT, software, unknown, log, notes=["response_forbidden"], status=403),
        Expect(here, "GET", "/chat", "failed", "ws_protocol_not_chosen",
               "the client offered chat.v2, the app accepted without a subprotocol; Node ws "
               "failed the connection ('Server sent no subprotocol') and hung up",
               node_package("ws"), software, hung_up, log,
               notes=["client_hung_up_after_switch"], status=101),
    ]


@scenario("uvicorn_starlette_wsproto", "starlette on uvicorn with the wsproto back end: an "
          "upgrade and an unknown WebSocket path", (18102,))
async def _uvicorn_wsproto() -> list[Expect]:
    with tempfile.TemporaryDirectory(prefix="captures-uvicorn-") as tmp:
        python_server(STARLETTE_APP, Path(tmp), "star_app")
        command = ["uvicorn", "star_app:app", "--host", V4, "--port", "18102", "--ws",
                   "wsproto", "--no-use-colors"]
        async with serving(command, 18102, Path(tmp)) as server:
            ok = await websockets_client(f"ws://{V4}:18102/chat")
            unknown = await websockets_client(f"ws://{V4}:18102/nope")
        log = _uvicorn_log(server)
    software = f"{version('uvicorn')} --ws wsproto ({version('wsproto')}), {version('starlette')}"
    here = endpoint(V4, 18102)
    return [
        Expect(here, "GET", "/chat", "succeeded", None, "101, echo, Close 1000", WS_CLIENT,
               software, ok, log, notes=["ws_closed_normally"], status=101),
        Expect(here, "GET", "/nope", "failed", "ws_rejected_before_accept",
               "no WebSocket route; uvicorn's wsproto back end answered '403 ' (no reason "
               "phrase)", WS_CLIENT, software, unknown, log, notes=["response_forbidden"],
               status=403),
    ]


# --- Django Channels on daphne ----------------------------------------------------------------


@scenario("daphne_channels", "Django Channels on daphne: an upgrade, a plain GET to the "
          "WebSocket path (Django's 404), and a WebSocket path with no route (500)", (18110,))
async def _daphne() -> list[Expect]:
    with tempfile.TemporaryDirectory(prefix="captures-daphne-") as tmp:
        python_server(CHANNELS_APP, Path(tmp), "chan_app")
        command = [sys.executable, "-m", "daphne", "-b", V4, "-p", "18110",
                   "chan_app:application"]
        async with serving(command, 18110, Path(tmp)) as server:
            ok = await websockets_client(f"ws://{V4}:18110/ws/")
            status, plain = await aiohttp_request("GET", f"http://{V4}:18110/ws/", {})
            unknown = await websockets_client(f"ws://{V4}:18110/nope/")
        log = server.said(keep=lambda line: "WS" in line or "Error" in line or "GET" in line
                          or "route" in line)
    software = f"{version('daphne')}, {version('channels')}, {version('Django')}"
    here = endpoint(V4, 18110)
    return [
        Expect(here, "GET", "/ws/", "succeeded", None, "101, echo, Close 1000", WS_CLIENT,
               software, ok, log, notes=["ws_closed_normally"], status=101),
        Expect(here, "GET", "/ws/", "failed", "request_without_upgrade",
               f"plain GET to the WebSocket path; Django answered {status} (only the websocket "
               "router has /ws/)", version("aiohttp") + " (plain GET)", software, plain, log,
               notes=["response_not_found"], status=status),
        Expect(here, "GET", "/nope/", "failed", "response_server_error",
               "URLRouter raised 'No route found for path'; daphne answered 500",
               WS_CLIENT, software, unknown, log, status=500),
    ]


# --- Flask-Sock on gunicorn -------------------------------------------------------------------


@scenario("flask_sock_gunicorn", "Flask-Sock on gunicorn (threads): an upgrade and a plain "
          "GET to the WebSocket route (Werkzeug's 400)", (18115,))
async def _flask_sock() -> list[Expect]:
    with tempfile.TemporaryDirectory(prefix="captures-flask-") as tmp:
        python_server(FLASK_SOCK_APP, Path(tmp), "sock_app")
        command = [sys.executable, "-m", "gunicorn", "-b", f"{V4}:18115", "--threads", "4",
                   "--access-logfile", "-", "sock_app:app"]
        async with serving(command, 18115, Path(tmp)) as server:
            ok = await websockets_client(f"ws://{V4}:18115/ws")
            status, plain = await aiohttp_request("GET", f"http://{V4}:18115/ws", {})
        log = server.said(keep=lambda line: '"GET' in line or "Error" in line)
    software = f"{version('flask-sock')}, {version('Flask')}, {version('gunicorn')}"
    here = endpoint(V4, 18115)
    return [
        Expect(here, "GET", "/ws", "succeeded", None, "101, echo, Close 1000", WS_CLIENT,
               software, ok, log, notes=["ws_closed_normally"], status=101),
        Expect(here, "GET", "/ws", "failed", "request_without_upgrade",
               f"plain GET to the Flask-Sock route; Werkzeug answered {status}",
               version("aiohttp") + " (plain GET)", software, plain, log,
               notes=["response_bad_request"], status=status),
    ]


# --- Node ws and socket.io --------------------------------------------------------------------


@scenario("node_ws_server", "Node ws server (verifyClient, handleProtocols, maxPayload 64, "
          "path /ws): accepted with chat.v1, refused by verifyClient, wrong path, plain GET, "
          "and a message over maxPayload", (18120,))
async def _node_ws_server() -> list[Expect]:
    with tempfile.TemporaryDirectory(prefix="captures-node-") as tmp:
        command = ["node", "-e", NODE_WS_SERVER, "18120"]
        env = {"NODE_PATH": str(NODE_MODULES)}
        async with serving(command, 18120, Path(tmp), env=env) as server:
            url = f"ws://{V4}:18120"
            ok = await node(NODE_WS_CLIENT, f"{url}/ws?token=good", "chat.v1", "hello")
            refused = await node(NODE_WS_CLIENT, f"{url}/ws?token=bad", "chat.v1", "hello")
            wrong_path = await websockets_client(f"{url}/other?token=good")
            status, plain = await aiohttp_request("GET", f"{url.replace('ws:', 'http:')}/ws",
                                                  {})
            big = await node(NODE_WS_CLIENT, f"{url}/ws?token=good", "chat.v1", "x" * 100)
        log = server.said()
    software = node_package("ws")
    here = endpoint(V4, 18120)
    return [
        Expect(here, "GET", "/ws?token=good", "succeeded", None,
               "101 with Sec-WebSocket-Protocol: chat.v1 (handleProtocols), echo, Close 1000",
               software, software, ok, log, notes=["ws_closed_normally"], status=101),
        Expect(here, "GET", "/ws?token=bad", "failed", "response_unauthorized",
               "verifyClient refused: 401", software, software, refused, log, status=401),
        Expect(here, "GET", "/other?token=good", "failed", "response_bad_request",
               "path other than /ws: ws answers a bare 400", WS_CLIENT, software, wrong_path,
               log, status=400),
        Expect(here, "GET", "/ws", "failed", "request_without_upgrade",
               f"plain GET: the ws server's own HTTP server answered {status}",
               version("aiohttp") + " (plain GET)", software, plain, log,
               notes=["response_upgrade_required"], status=status),
        Expect(here, "GET", "/ws?token=good", "aborted", "ws_closed_with_error",
               "a 100-byte message over maxPayload 64: the server closed with 1009",
               software, software, big, log, status=101),
    ]


@scenario("node_ws_client_subprotocol", "Node ws client offering chat.v2 to a python "
          "websockets server that chooses no subprotocol: the client hangs up", (18121,))
async def _node_ws_client() -> list[Expect]:
    async with websockets_server(V4, 18121, "node-sub") as book:
        said = await node(NODE_WS_CLIENT, f"ws://{V4}:18121/chat", "chat.v2", "hello")
        await asyncio.sleep(0.3)
    return [Expect(endpoint(V4, 18121), "GET", "/chat", "failed", "ws_protocol_not_chosen",
                   "101 without Sec-WebSocket-Protocol although chat.v2 was offered: Node ws "
                   "failed the connection and closed it",
                   node_package("ws"), version("websockets"), said, websockets_session(book),
                   notes=["client_hung_up_after_switch"], status=101)]


@scenario("socketio", "socket.io: long polling then the upgrade to WebSocket; a client forcing "
          "the websocket transport against a polling-only server ('Transport unknown')",
          (18125, 18126))
async def _socketio() -> list[Expect]:
    with tempfile.TemporaryDirectory(prefix="captures-socketio-") as tmp:
        env = {"NODE_PATH": str(NODE_MODULES)}
        async with serving(["node", "-e", SOCKETIO_SERVER, "18125", "polling,websocket"],
                           18125, Path(tmp), env=env) as both, \
                serving(["node", "-e", SOCKETIO_SERVER, "18126", "polling"], 18126,
                        Path(tmp), env=env) as polling:
            upgraded = await node(SOCKETIO_CLIENT, f"http://{V4}:18125", "polling,websocket")
            refused = await node(SOCKETIO_CLIENT, f"http://{V4}:18126", "websocket")
        log_both, log_polling = both.said(), polling.said()
    server, client = node_package("socket.io"), node_package("socket.io-client")
    sid = re.search(r"connection (\S+) transport", log_both)
    local = re.search(r"local port (\d+)", upgraded)
    return [
        Expect(endpoint(V4, 18125), "GET",
               f"/socket.io/?EIO=4&transport=websocket&sid={sid[1] if sid else '?'}",
               "succeeded", None, "polling handshake, then the WebSocket upgrade (probe, "
               "upgrade packet); the echo went over the WebSocket", client, server, upgraded,
               log_both, status=101,
               client=endpoint(V4, int(local[1])) if local else None),
        Expect(endpoint(V4, 18126), "GET", "/socket.io/?EIO=4&transport=websocket", "failed",
               "engineio_transport_unknown", "websocket-only client, polling-only server: "
               "Engine.IO answered 400 Transport unknown", client, server, refused,
               log_polling, notes=["response_bad_request"], status=400),
    ]


# --- python websockets' negotiation ----------------------------------------------------------


@scenario("ws_subprotocol_unsupported", "websockets server supporting chat.v1, client offering "
          "only chat.v2: 400 'invalid subprotocol; expected one of chat.v1'", (18163,))
async def _subprotocol_unsupported() -> list[Expect]:
    async with websockets_server(V4, 18163, "subunsup", subprotocols=["chat.v1"]) as book:
        said = await websockets_client(f"ws://{V4}:18163/", subprotocols=["chat.v2"])
    return [Expect(endpoint(V4, 18163), "GET", "/", "failed", "ws_protocol_unsupported",
                   "the server knows none of the offered subprotocols and refused with 400",
                   WS_CLIENT, version("websockets"), said, websockets_rejection(book),
                   notes=["response_bad_request"], status=400)]


@contextlib.asynccontextmanager
async def switching_stub(port: int) -> AsyncIterator[list[str]]:
    """A raw asyncio endpoint that answers a valid 101 and then reads frames without ever
    answering one (no Pong, no Close): what it did is in the yielded list."""
    said: list[str] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            key = re.search(rb"(?i)sec-websocket-key:\s*(\S+)", head)
            accept = base64.b64encode(hashlib.sha1((key[1] if key else b"") + WS_GUID.encode())
                                      .digest())
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
            await writer.drain()
            said.append("answered 101; reading frames, answering none")
            rest = await asyncio.wait_for(reader.read(), 6)
            said.append(f"peer closed after sending {len(rest)} bytes of frames")
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
            said.append(f"{type(exc).__name__}: {exc}")
        finally:
            writer.close()

    server = await asyncio.start_server(serve, V4, port, reuse_address=True)
    try:
        yield said
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)


@scenario("ws_ping_timeout", "a python websockets client pinging (ping_interval 0.3 s, "
          "ping_timeout 1.2 s) an endpoint that switches and never answers a Ping: the client "
          "closes with 1011 'keepalive ping timeout'", (18164,))
async def _ping_timeout() -> list[Expect]:
    async with switching_stub(18164) as said_by_stub:
        said = await websockets_client(f"ws://{V4}:18164/", send=None, ping_interval=0.3,
                                       ping_timeout=1.2)
        await asyncio.sleep(0.3)
    return [Expect(endpoint(V4, 18164), "GET", "/", "aborted", "ws_ping_unanswered",
                   "the 101 was valid; the server never answered the client's Ping, so the "
                   "client's keepalive failed and it closed with 1011",
                   WS_CLIENT + " (ping_interval=0.3, ping_timeout=1.2)",
                   "asyncio stub (raw socket): a valid 101, then silence",
                   said, " | ".join(said_by_stub), notes=["ws_closed_with_error"], status=101)]
