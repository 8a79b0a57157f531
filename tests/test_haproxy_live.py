"""HAProxy (Debian's 2.6) in front of a python websockets backend, with real software: one
HAProxy with a frontend per case, real clients (python websockets, curl, an RFC 8441 client
over TLS), captured with tcpdump on ``lo`` (both legs) and read as `read --tcp` reads it.

What each case should be is read from the real software where it says it: HAProxy's own log
line (``option httplog`` to its stdout) gives the status, who answered (by its termination
state: ended before the backend's response headers, HAProxy's own answer; else the backend's,
passed on), the retries and the request line; the analyzer's rebuilt log line must match it,
"..." standing for what is not on the wire. The clients' lines are what they printed. The
verdicts and reasons are ours.
"""

from __future__ import annotations

import json
import re
import shutil
import ssl
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.h2_app import extended_connect
from tests.helpers import matches_with_dots, run_cli, start_raw_server, stop_group
from tests.test_h2_live import HOST, _free_port, _wait_listening, tcpdump
from tests.test_h2_live import pytestmark as _live_marks
from tests.tls_memory import make_certificate

websockets_client = pytest.importorskip("websockets.sync.client")
pytestmark = [*_live_marks,
              pytest.mark.skipif(shutil.which("haproxy") is None, reason="needs haproxy")]

# The backend: echoes; /reject and /fail answer 403 and 500 from process_request; /slow
# answers after 5 s (HAProxy's timeout server runs out first). Bounded: it exits after 60 s.
BACKEND = r"""
import asyncio, http, sys
from websockets.asyncio.server import serve

async def echo(ws):
    async for message in ws:
        await ws.send(message)

async def process_request(connection, request):
    if request.path == "/reject":
        return connection.respond(http.HTTPStatus.FORBIDDEN, "not you\n")
    if request.path == "/fail":
        return connection.respond(http.HTTPStatus.INTERNAL_SERVER_ERROR, "broken\n")
    if request.path == "/slow":
        await asyncio.sleep(5)

async def main():
    async with serve(echo, "127.0.0.1", int(sys.argv[1]), process_request=process_request):
        print("ready", flush=True)
        await asyncio.sleep(60)

asyncio.run(main())
"""

TIMEOUT_SERVER_S = 1.0  # the `slow` backend's timeout server
IDLE_S = 2.5  # the `tunnel` backend's timeout tunnel and the `client` frontend's timeout client
SNI = "localhost"


def haproxy_conf(port: dict[str, int], pem: Path) -> str:
    """One HAProxy: a frontend per case (Debian's defaults: httplog, retries 3 unset), its log
    to stdout."""
    back = f"{HOST}:{port['backend']}"
    frontends = {
        "ok": "", "close": "option http-server-close", "reject": "", "deny": "http-request deny",
        "down": "default_backend gone", "slow": "default_backend slow",
        "tunnel": "default_backend tunnel",
        "client": f"timeout client {int(IDLE_S * 1000)}ms\n    default_backend plain",
    }
    text = f"""global
    log stdout format raw local0 info
defaults
    mode http
    log global
    option httplog
    timeout connect 2s
    timeout client 10s
    timeout server 10s
backend ws
    timeout tunnel 10s
    server ws1 {back}
backend gone
    server gone1 {HOST}:{port['gone']}
backend slow
    timeout server {int(TIMEOUT_SERVER_S * 1000)}ms
    server slow1 {back}
backend tunnel
    timeout tunnel {int(IDLE_S * 1000)}ms
    server tunnel1 {back}
backend plain
    server plain1 {back}
frontend tls
    bind {HOST}:{port['tls']} ssl crt {pem} alpn h2,http/1.1
    default_backend ws
"""
    for name, lines in frontends.items():
        routing = "" if "default_backend" in lines else "\n    default_backend ws"
        text += f"frontend {name}\n    bind {HOST}:{port[name]}\n    {lines}{routing}\n"
    return text


@dataclass(frozen=True)
class Logged:
    """One line of HAProxy's httplog."""

    line: str
    client: str
    status: int
    state: str
    retries: int
    request: str

    @property
    def by_haproxy(self) -> bool:
        """HAProxy answered itself: the session ended before the backend's response headers
        (the state's second letter: R the request, Q a queue, C the connection to the
        server, H its headers, T a tarpit), not in the data phase (D, L) or normally (-)."""
        return self.state[1] in "RQCHT"


_LOG = re.compile(r'(\S+) \[[^]]+\] \S+ \S+ \S+ (\d+) \S+ \S+ \S+ (\S{4}) \d+/\d+/\d+/\d+/\+?(\d+)'
                  r' \S+ "(.*)"')


def parse_log(text: str) -> dict[str, Logged]:
    """HAProxy's httplog lines by client address (its other output left out)."""
    out = {}
    for line in text.splitlines():
        if (m := _LOG.fullmatch(line.strip())) is not None:
            out[m[1]] = Logged(line.strip(), m[1], int(m[2]), m[3], int(m[4]), m[5])
    return out


def _websocket(url: str, idle: float = 0.0) -> str:
    """What python websockets printed: "connected" after an echo (and, with ``idle``, the
    error that ended a wait that long for more), or the error opening it raised."""
    try:
        with websockets_client.connect(url, open_timeout=5) as ws:
            ws.send("hi")
            ws.recv(3)
            if idle:
                ws.recv(idle)
            return "connected"
    except Exception as error:  # (what the client raised is what is compared)
        return f"{type(error).__name__}: {error}"


def _curl(url: str) -> str:
    """What curl printed probing a handshake by hand (--fail: an error status is an error)."""
    result = subprocess.run(
        ["curl", "-sS", "--fail", "-o", "/dev/null", "--max-time", "5",
         "-H", "Connection: Upgrade", "-H", "Upgrade: websocket",
         "-H", "Sec-WebSocket-Version: 13", "-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
         url], capture_output=True, text=True, timeout=10)
    return result.stderr.strip()


@dataclass
class Run:
    """The capture's report, what HAProxy logged and what the clients printed."""

    port: dict[str, int]
    attempts: list[dict[str, Any]]
    logged: dict[str, Logged]
    said: dict[str, str]

    def front(self, name: str, path: str = "/chat") -> dict[str, Any]:
        (front,) = [a for a in self.attempts
                    if a["server"] == f"{HOST}:{self.port[name]}" and a["path"] == path]
        return front

    def backs(self, front: dict[str, Any]) -> list[dict[str, Any]]:
        """The back legs paired with ``front`` (their proxy_back_leg names its client)."""
        of = re.compile(rf"handshake of {re.escape(front['client'])}(:|$)")
        return [a for a in self.attempts if any(
            f["id"] == "proxy_back_leg" and of.search(f["found"]) for f in a["findings"])]

    def log_of(self, front: dict[str, Any]) -> Logged:
        return self.logged[front["client"]]


@pytest.fixture(scope="module")
def run() -> Iterator[Run]:
    names = ("ok", "close", "reject", "deny", "down", "slow", "tunnel", "client", "tls",
             "backend", "gone")
    port = {name: _free_port() for name in names}  # (nothing listens on "gone")
    with tempfile.TemporaryDirectory(prefix="haproxy-live-") as tmp:
        cert, key = make_certificate(Path(tmp), SNI)
        pem = Path(tmp, "haproxy.pem")
        pem.write_text(cert.read_text() + key.read_text())
        conf = Path(tmp, "haproxy.cfg")
        conf.write_text(haproxy_conf(port, pem))
        path, keylog = Path(tmp, "haproxy.pcap"), Path(tmp, "client.keys")
        said: dict[str, str] = {}
        backend = start_raw_server(BACKEND, str(port["backend"]))
        haproxy = subprocess.Popen(["haproxy", "-f", str(conf), "-db"], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            for name in names[:-2]:
                _wait_listening(port[name], haproxy)  # (each probe logs a <BADREQ>)
            with tcpdump(path, list(port.values())):
                url = f"ws://{HOST}:{{}}{{}}"
                idle = [threading.Thread(target=lambda n=n: said.__setitem__(
                    n, _websocket(url.format(port[n], "/chat"), IDLE_S + 3)))
                    for n in ("tunnel", "client")]
                for thread in idle:  # (at once: both wait out their timeouts)
                    thread.start()
                for name, target in (("ok", "/chat"), ("close", "/chat"), ("deny", "/chat"),
                                     ("down", "/chat"), ("reject", "/reject"),
                                     ("reject", "/fail"), ("slow", "/slow")):
                    said[f"{name} {target}"] = _websocket(url.format(port[name], target))
                said["curl"] = _curl(f"http://{HOST}:{port['deny']}/curl")
                context = ssl.create_default_context(cafile=str(cert))
                context.set_alpn_protocols(["h2"])
                context.keylog_filename = str(keylog)
                said["h2"] = extended_connect(HOST, port["tls"], "/echo", context, SNI)
                for thread in idle:
                    thread.join(IDLE_S + 10)
        finally:
            stop_group(haproxy)
            stop_group(backend)
        assert haproxy.stdout is not None
        logged = parse_log(haproxy.stdout.read())
        report = run_cli("read", path, "--tcp", "-F", "json", "--keylog", keylog).output
        yield Run(port, json.loads(report)["attempts"], logged, said)


def _who(logged: Logged) -> str:
    """Who answered, as HAProxy's log says: HAProxy itself, or the backend we started."""
    return "HAProxy" if logged.by_haproxy else "python websockets"


def _seconds(pattern: str, found: str) -> float:
    """The seconds a finding's text measured (``pattern``'s group)."""
    measured = re.search(pattern, found)
    assert measured is not None, found
    return float(measured[1])


def _primary(attempt: dict[str, Any]) -> str | None:
    failed = attempt["verdict"] != "succeeded"
    return next((r for r in attempt["reasons"] if r != "proxy_back_leg"), None) if failed \
        else None


@pytest.mark.parametrize("name", ["ok", "close"])
def test_an_upgrade_through_haproxy_is_one_proxied_handshake(run: Run, name: str) -> None:
    """A good upgrade (and one with `option http-server-close`, which still tunnels): the front
    leg (the client to HAProxy) and the back leg (HAProxy to the backend) pair, the 101 is the
    backend's, passed on, and the back leg's client is HAProxy."""
    front = run.front(name)
    logged = run.log_of(front)
    assert run.said[f"{name} /chat"] == "connected"
    assert (front["verdict"], front["status"]) == ("succeeded", logged.status), front
    assert logged.request == "GET /chat HTTP/1.1" and not logged.by_haproxy
    assert front["attribution"]["server"] == _who(logged)
    (back,) = run.backs(front)
    assert back["server"] == f"{HOST}:{run.port['backend']}" and back["status"] == 101
    assert back["verdict"] == "succeeded" and back["path"] == "/chat"
    assert back["attribution"]["client"] == f"proxy at {front['server']}"
    assert back["attribution"]["client_errors"] == []


@pytest.mark.parametrize(("name", "target", "primary"), [
    ("down", "/chat", "proxy_backend_refused"),  # nothing listens behind it: SC, after retries
    ("slow", "/slow", "proxy_backend_timeout"),  # timeout server: sH
    ("deny", "/chat", "response_forbidden"),  # http-request deny: PR
])
def test_haproxys_own_answers_and_its_log_line(run: Run, name: str, target: str,
                                               primary: str) -> None:
    """HAProxy answered itself (its log's termination state says so): the analyzer names
    HAProxy, rebuilds the line it logged, gives python websockets' printed line, and for a
    backend that was down or silent, names the back leg as the cause."""
    front = run.front(name, target)
    logged = run.log_of(front)
    printed = run.said[f"{name} {target}"]
    assert logged.by_haproxy, logged.line
    assert (front["verdict"], front["status"], _primary(front)) == (
        "failed", logged.status, primary), (front["reasons"], logged.line)
    attribution = front["attribution"]
    assert attribution["server"] == _who(logged) == "HAProxy"
    assert matches_with_dots(attribution["server_log"], logged.line), (
        attribution["server_log"], logged.line)
    assert printed == f"InvalidStatus: server rejected WebSocket connection: HTTP {logged.status}"
    assert f"python websockets: {printed.split(': ', 1)[1]}" in attribution["client_errors"]
    backs = run.backs(front)
    if name == "deny":  # (no server was asked: <NOSRV>)
        assert backs == [] and "/<NOSRV> " in logged.line
        assert "proxy_backend_refused" not in front["reasons"]
    elif name == "down":  # the first refused connection and every retry HAProxy logged
        assert len(backs) == logged.retries + 1 >= 2, (logged.line, backs)
        for back in backs:
            assert back["verdict"] == "refused" and back["server"] == f"{HOST}:{run.port['gone']}"
            assert back["attribution"]["client"] == f"proxy at {front['server']}"
            assert back["attribution"]["client_errors"] == []
    else:  # the back leg HAProxy gave up on after its timeout server
        (back,) = backs
        assert back["verdict"] == "no_response" and back["status"] is None
        (found,) = [f["found"] for f in front["findings"] if f["id"] == primary]
        assert abs(_seconds(r"answered nothing in ([\d.]+) s", found) - TIMEOUT_SERVER_S) \
            <= 0.2, found


@pytest.mark.parametrize(("target", "primary"), [("/reject", "response_forbidden"),
                                                 ("/fail", "response_server_error")])
def test_a_backends_rejection_passed_on_is_the_backends(run: Run, target: str,
                                                        primary: str) -> None:
    """The backend refused the upgrade (403, 500) and HAProxy passed it on (termination state
    ----): the answer is the backend's, on both legs, and HAProxy is not blamed."""
    front = run.front("reject", target)
    logged = run.log_of(front)
    assert not logged.by_haproxy and logged.request == f"GET {target} HTTP/1.1"
    assert (front["verdict"], front["status"], _primary(front)) == (
        "failed", logged.status, primary)
    assert front["attribution"]["server"] == _who(logged)
    assert not any(r.startswith("proxy_") for r in front["reasons"]), front["reasons"]
    (back,) = run.backs(front)
    assert (back["status"], _primary(back)) == (logged.status, primary)
    printed = run.said[f"reject {target}"]
    assert f"python websockets: {printed.split(': ', 1)[1]}" in \
        front["attribution"]["client_errors"]


@pytest.mark.parametrize("name", ["tunnel", "client"])
def test_an_idle_timeout_cutting_an_established_websocket(run: Run, name: str) -> None:
    """`timeout tunnel` (and `timeout client` without one) ends a quiet WebSocket past the
    watch window: HAProxy closed toward both sides (its log: a timeout in the data phase), so
    both legs are dropped by an idle timeout of IDLE_S, on the front by its server side, on
    the back by the proxy, and python websockets printed the line the analyzer gives."""
    front = run.front(name)
    logged = run.log_of(front)
    assert logged.status == 101 and logged.state[1] == "D", logged.line  # (cD: data phase)
    assert front["attribution"]["server"] == _who(logged)  # (the 101 was the backend's)
    assert (front["verdict"], _primary(front)) == ("dropped", "idle_timeout_after_switch")
    (back,) = run.backs(front)
    assert (back["verdict"], _primary(back)) == ("dropped", "idle_timeout_after_switch")
    for leg, closer in ((front, f"server {front['server']}"), (back, "the proxy ")):
        (found,) = [f["found"] for f in leg["findings"] if f["id"] == "idle_timeout_after_switch"]
        assert found.startswith(closer), found
        assert abs(_seconds(r"after ([\d.]+) s of silence", found) - IDLE_S) <= 0.2, found
        assert "HAProxy timeout tunnel or timeout client/server" in found
    printed = run.said[name]
    assert printed.startswith("ConnectionClosedError: "), printed
    assert f"python websockets: {printed}" in front["attribution"]["client_errors"]


def test_curls_line_for_haproxys_denial(run: Run) -> None:
    """curl (--fail) denied by HAProxy: the client is curl, its line first is what it
    printed, and the answer and log line are HAProxy's."""
    front = run.front("deny", "/curl")
    logged = run.log_of(front)
    assert front["attribution"]["client"] == "curl"
    assert front["attribution"]["server"] == _who(logged) == "HAProxy"
    assert front["attribution"]["client_errors"][0] == run.said["curl"], run.said["curl"]
    assert matches_with_dots(front["attribution"]["server_log"], logged.line)


def test_wss_over_http2_through_haproxy(run: Run) -> None:
    """HAProxy's TLS front with ALPN h2 takes an RFC 8441 extended CONNECT and opens an
    HTTP/1.1 Upgrade to the backend: decrypted with the client's key log, the h2 stream's
    200 pairs with the back leg's 101, and HAProxy logged the CONNECT as the GET it made."""
    assert run.said["h2"].startswith("connected: 200"), run.said["h2"]
    (front,) = [a for a in run.attempts if a["server"] == f"{HOST}:{run.port['tls']}"]
    logged = run.log_of(front)
    assert logged.request == f"GET https://{HOST}:{run.port['tls']}/echo HTTP/2.0"
    assert not logged.by_haproxy and logged.status == 101
    assert (front["transport"], front["method"], front["status"]) == ("h2", "CONNECT", 200)
    assert front["tls"]["decrypted"] and front["tls"]["alpn"] == "h2"
    assert front["verdict"] == "succeeded" and front["attribution"]["server"] == _who(logged)
    # HAProxy 2.6 passes the backend's Sec-WebSocket-Accept on in the 200 (a warning only)
    assert "h2_websocket_key_present" in front["reasons"]
    (back,) = run.backs(front)
    assert (back["verdict"], back["status"], back["path"]) == ("succeeded", 101, "/echo")
