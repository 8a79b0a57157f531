"""Apache httpd as a WebSocket reverse proxy, with real software on ``lo``: Debian's apache2
(mod_proxy_http with ``upgrade=websocket``, mod_proxy_wstunnel's ``ws://``) run in the
foreground from its own configuration, in front of a python websockets backend, with python
websockets and curl as clients, captured with tcpdump and read as ``read --tcp -F json`` reads
it. Every case is held to what the real programs said: the status Apache's access log gives,
the lines its error_log has (the analyzer's rebuilt line must be one of them), which requests
reached the backend (its own log), what the clients printed.

What real Apache shows on the wire (2.4.71): it forwards the Sec-WebSocket-Key, so both legs
pair; a refused backend is a 503 "Service Unavailable" page (AH00957, AH01114); ProxyTimeout
is a 502 "Proxy Error" page (AH01102, AH00898), not a 504; without ``upgrade=websocket`` it
drops Upgrade and sends ``Connection: Keep-Alive``; with ``force-proxy-request-1.0`` it also
speaks HTTP/1.0; it adds its own Server header to a backend's answer that has none; and an
HTTP/1.0 client's upgrade is forwarded as HTTP/1.1 and switched by the backend, while the 101
never reaches the client (its access log says 101).
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import WEBSOCKETS_LOGGED, foreground, logged, run_cli, stop_group
from tests.test_h2_live import HOST, _free_port, tcpdump
from tests.test_h2_live import pytestmark as _live_marks

websockets_client = pytest.importorskip("websockets.sync.client")
MODULES = Path("/usr/lib/apache2/modules")
pytestmark = [*_live_marks,
              pytest.mark.skipif(shutil.which("apache2") is None or not MODULES.is_dir(),
                                 reason="needs Debian's apache2"),
              pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")]

# python websockets on two ports: argv[1] with its Server header, argv[2] without (as Go's
# net/http answers); it writes each request's path, and what it logged (at debug: the request
# heads it read, "< NAME: VALUE"), to argv[3]. /deny/ is refused with 403, /slow/ answered
# after 3 s (past Apache's ProxyTimeout), the others echo.
BACKEND = r"""
import asyncio, logging, sys
from http import HTTPStatus
from websockets.asyncio.server import serve

out = open(sys.argv[3], "a", buffering=1)
""" + WEBSOCKETS_LOGGED + r"""


async def process_request(connection, request):
    out.write(f"request {request.path}\n")
    if request.path.startswith("/deny/"):
        return connection.respond(HTTPStatus.FORBIDDEN, "denied by the backend\n")
    if request.path.startswith("/slow/"):
        await asyncio.sleep(3)


async def echo(websocket):
    async for message in websocket:
        await websocket.send(message)


async def main():
    port, bare = int(sys.argv[1]), int(sys.argv[2])
    async with serve(echo, "127.0.0.1", port, process_request=process_request), \
            serve(echo, "127.0.0.1", bare, process_request=process_request,
                  server_header=None):
        print("ready", flush=True)
        await asyncio.sleep(60)


asyncio.run(main())
"""

CONF = """ServerRoot {tmp}
DefaultRuntimeDir {tmp}
LoadModule mpm_event_module {modules}/mod_mpm_event.so
LoadModule authz_core_module {modules}/mod_authz_core.so
LoadModule env_module {modules}/mod_env.so
LoadModule proxy_module {modules}/mod_proxy.so
LoadModule proxy_http_module {modules}/mod_proxy_http.so
LoadModule proxy_wstunnel_module {modules}/mod_proxy_wstunnel.so
Listen {host}:{port}
ServerName localhost
{user}
DocumentRoot {tmp}/htdocs
PidFile {tmp}/httpd.pid
ErrorLog {tmp}/error.log
LogLevel warn core:info
LogFormat "%h:%{{remote}}p \\"%r\\" %>s" short
CustomLog {tmp}/access.log short
ProxyTimeout 1
ProxyPass /ws/ http://{host}:{backend}/ws/ upgrade=websocket
ProxyPass /tunnel/ ws://{host}:{backend}/tunnel/
ProxyPass /deny/ http://{host}:{bare}/deny/ upgrade=websocket
ProxyPass /slow/ http://{host}:{backend}/slow/ upgrade=websocket
ProxyPass /down/ http://{host}:{down}/down/ upgrade=websocket
ProxyPass /wsdown/ ws://{host}:{down}/wsdown/
ProxyPass /plain/ http://{host}:{backend}/plain/
ProxyPass /old/ http://{host}:{backend}/old/ upgrade=websocket
<Location /old/>
    SetEnv force-proxy-request-1.0 1
</Location>
<Location /closed/>
    Require all denied
</Location>
"""
# the python websockets clients' paths, in the order they run; then curl's HTTP/1.0 upgrade
PATHS = ("/ws/", "/tunnel/", "/down/", "/wsdown/", "/slow/", "/deny/", "/plain/", "/old/",
         "/closed/", "/nothing")
CURL_PATH, CURL_WAIT = "/ws/http10", 2  # curl -m: it gives up after this many seconds


def _user() -> str:
    """As root Apache must drop to a user of its own: Debian's www-data, else nobody."""
    if os.geteuid() != 0:
        return ""
    for name in ("www-data", "nobody"):
        with contextlib.suppress(KeyError):
            user = pwd.getpwnam(name)
            return f"User {name}\nGroup {grp.getgrgid(user.pw_gid).gr_name}"
    return ""


def _opening(url: str) -> str:
    """What python websockets printed opening ``url``: its exception, or the echo."""
    try:
        with websockets_client.connect(url, open_timeout=5) as websocket:
            websocket.send("hello")
            return f"echoed {websocket.recv(timeout=5)}"
    except Exception as error:  # (what the client raised is the outcome)
        return f"{type(error).__name__}: {error}"


def _curl_http10(url: str) -> str:
    """What curl printed for an HTTP/1.0 upgrade request to ``url``, given up after
    CURL_WAIT s."""
    done = subprocess.run(
        ["curl", "-sS", "--http1.0", "-m", str(CURL_WAIT), "-o", "/dev/null",
         "-H", "Connection: Upgrade", "-H", "Upgrade: websocket",
         "-H", "Sec-WebSocket-Version: 13", "-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
         url], capture_output=True, text=True, timeout=CURL_WAIT + 10)
    return done.stderr.strip()


@dataclass
class Run:
    """One capture of every case, and what the real programs said meanwhile."""

    port: int  # Apache's
    backend: int  # python websockets with its Server header
    bare: int  # the same without it
    down: int  # nothing listens there
    attempts: list[dict[str, Any]]  # `read --tcp -F json`'s
    error_log: list[str]  # Apache's, each line from its message on (time, module, pid cut)
    access: dict[str, str]  # Apache's access log: request line -> status
    backend_said: list[str]
    printed: dict[str, str]  # path -> what the client printed ("curl" for curl's)

    def leg(self, path: str, server_port: int | None = None) -> dict[str, Any]:
        """The attempt for ``path`` to ``server_port`` (Apache's by default)."""
        port = self.port if server_port is None else server_port
        (found,) = [a for a in self.attempts if a["path"] == path
                    and a["server"] == f"{HOST}:{port}"]
        return found

    def refused(self, port: int) -> list[dict[str, Any]]:
        return [a for a in self.attempts if a["server"] == f"{HOST}:{port}"]

    def logged_for(self, client: str) -> list[str]:
        return [line for line in self.error_log if f"[client {client}]" in line]


_MESSAGE = re.compile(r"^\[[^]]*\] \[[^]]*\] \[pid [^]]*\] (.*)$")


@pytest.fixture(scope="module")
def run() -> Iterator[Run]:
    with tempfile.TemporaryDirectory(prefix="apache-live-") as tmp:
        os.chmod(tmp, 0o755)  # (Apache's own user looks up DocumentRoot)
        Path(tmp, "htdocs").mkdir()
        port, backend, bare, down = (_free_port() for _ in range(4))
        conf = Path(tmp, "httpd.conf")
        conf.write_text(CONF.format(tmp=tmp, modules=MODULES, host=HOST, port=port,
                                    backend=backend, bare=bare, down=down, user=_user()))
        said = Path(tmp, "backend.log")
        server = subprocess.Popen([sys.executable, "-c", BACKEND, str(backend), str(bare),
                                   str(said)], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        capture = Path(tmp, "apache.pcap")
        printed: dict[str, str] = {}
        try:
            assert server.stdout is not None and server.stdout.readline() == b"ready\n"
            with foreground(["apache2", "-X", "-f", str(conf)], (HOST, port)), \
                    tcpdump(capture, [port, backend, bare, down]):
                for path in PATHS:
                    printed[path] = _opening(f"ws://{HOST}:{port}{path}")
                    time.sleep(0.05)  # (one handshake at a time: the legs pair in order)
                printed["curl"] = _curl_http10(f"http://{HOST}:{port}{CURL_PATH}")
        finally:
            stop_group(server)
        report = json.loads(run_cli("read", capture, "--tcp", "-F", "json").output)
        errors = [m[1] for line in logged(Path(tmp, "error.log"))
                  if (m := _MESSAGE.match(line))]
        access = dict(line.split('"', 1)[1].rsplit('" ', 1)
                      for line in logged(Path(tmp, "access.log"), '"'))
        yield Run(port, backend, bare, down, report["attempts"], errors, access,
                  said.read_text().splitlines(), printed)


def _matches(line: str, logged_line: str) -> bool:
    """Whether ``logged_line`` is ``line``, its ``...`` standing for any text (what is not on
    the wire: the backend as ProxyPass names it, the worker's scheme, a file's path)."""
    pattern = ".*".join(re.escape(part) for part in line.split("..."))
    return re.fullmatch(pattern, logged_line) is not None


def _each_line_logged(rebuilt: str | None, lines: list[str]) -> None:
    """Every line of a rebuilt server log (" / " between lines) is one Apache wrote."""
    assert rebuilt, rebuilt
    for part in rebuilt.split(" / "):
        assert any(_matches(part, line) for line in lines), (part, lines)


def _websockets_printed(attempt: dict[str, Any], printed: str) -> None:
    """python websockets' line for this attempt is what the client printed."""
    line = "python websockets: " + printed.split(": ", 1)[1]
    assert line in attempt["attribution"]["client_errors"], (printed, attempt["attribution"])


def _reached_backend(run: Run, path: str) -> bool:
    return f"request {path}" in run.backend_said


def _backend_read(run: Run, path: str) -> list[str]:
    """The request head the backend read for ``path`` (its request line, then its header
    lines), as it logged it."""
    said = run.backend_said
    start = next(n for n, line in enumerate(said) if line.startswith(f"logged < GET {path} "))
    head = [said[start]]
    for line in said[start + 1:]:
        if not line.startswith("logged < "):
            break
        head.append(line)
    return [line.removeprefix("logged < ") for line in head]


def _logged_by_backend(run: Run, server_log: str) -> None:
    """The analyzer's python websockets line names the exception the backend logged."""
    error = server_log.split(": ", 1)[1]  # "opening handshake failed: InvalidUpgrade: ..."
    assert any(line.startswith("logged ! ") and line.endswith(f": {error}")
               for line in run.backend_said), (server_log, run.backend_said)


@pytest.mark.parametrize("path", ["/ws/", "/tunnel/"])
def test_an_upgrade_through_apache_pairs_its_two_legs(run: Run, path: str) -> None:
    assert run.printed[path] == "echoed hello"
    assert run.access[f"GET {path} HTTP/1.1"] == "101" and _reached_backend(run, path)
    front, back = run.leg(path), run.leg(path, run.backend)
    assert front["verdict"] == back["verdict"] == "succeeded", (front, back)
    assert not [r for r in front["reasons"] if r.startswith("proxy_")], front["reasons"]
    (note,) = [f for f in back["findings"] if f["id"] == "proxy_back_leg"]
    assert note["found"] == f"the proxy at {HOST}:{run.port} forwarded the handshake of " \
        f"{front['client']}"
    assert back["attribution"]["client"] == f"proxy at {HOST}:{run.port}"
    # the 101 is the backend's, its Server header passed on by Apache
    assert front["attribution"]["server"] == back["attribution"]["server"] == "python websockets"


@pytest.mark.parametrize("path", ["/down/", "/wsdown/"])
def test_a_refused_backend_is_the_cause_of_apaches_503_with_its_error_log_lines(
        run: Run, path: str) -> None:
    front = run.leg(path)
    assert run.access[f"GET {path} HTTP/1.1"] == str(front["status"]) == "503"
    assert front["verdict"] == "failed" and front["reasons"][0] == "proxy_backend_refused"
    (finding,) = [f for f in front["findings"] if f["id"] == "proxy_backend_refused"]
    assert finding["found"].startswith(f"{HOST}:{run.down} refused the proxy's connection")
    who = front["attribution"]
    assert who["server"] == "Apache httpd" and who["confidence"] == "high", who
    lines = [line for line in run.error_log if "AH00957" in line or "AH01114" in line]
    assert len(lines) == 2 * 2, run.error_log  # (both paths: AH00957 then AH01114 each)
    _each_line_logged(who["server_log"], lines)
    assert f"[client {front['client']}]" in who["server_log"]
    _websockets_printed(front, run.printed[path])
    # with --tcp the refused connection is listed: Apache's, with no client's lines
    for back in run.refused(run.down):
        assert back["verdict"] == "refused" and "proxy_back_leg" in back["reasons"], back
        assert back["attribution"]["client"] == f"proxy at {HOST}:{run.port}"
        assert back["attribution"]["client_errors"] == []


def test_a_backend_past_proxytimeout_is_apaches_502_proxy_error(run: Run) -> None:
    front, back = run.leg("/slow/"), run.leg("/slow/", run.backend)
    assert run.access["GET /slow/ HTTP/1.1"] == str(front["status"]) == "502"
    assert front["status_reason"] == "Proxy Error" and _reached_backend(run, "/slow/")
    assert front["verdict"] == "failed" and front["reasons"][0] == "proxy_backend_timeout"
    (timeout,) = [f for f in front["findings"] if f["id"] == "proxy_backend_timeout"]
    assert re.fullmatch(rf"{HOST}:{run.backend} took the proxy's request and answered nothing "
                        r"in 1\.\d s; the proxy closed it; the proxy answered 502",
                        timeout["found"]), timeout["found"]
    who = front["attribution"]
    assert who["server"] == "Apache httpd" and who["confidence"] == "high", who
    # (both lines whole: the backend's address is the back leg's)
    assert "..." not in who["server_log"], who["server_log"]
    _each_line_logged(who["server_log"], run.logged_for(front["client"]))
    _websockets_printed(front, run.printed["/slow/"])
    # the back leg: Apache's request, answered by nothing; Apache gave up on it
    assert back["verdict"] == "no_response" and "proxy_back_leg" in back["reasons"], back
    assert back["attribution"]["client"] == f"proxy at {HOST}:{run.port}"


def test_a_backends_403_passed_on_under_apaches_server_header_is_the_backends(
        run: Run) -> None:
    front, back = run.leg("/deny/"), run.leg("/deny/", run.bare)
    assert run.access["GET /deny/ HTTP/1.1"] == str(front["status"]) == "403"
    # the backend wrote it (it had the request; Apache logged no error for it)
    assert _reached_backend(run, "/deny/") and not run.logged_for(front["client"])
    assert front["verdict"] == "failed" and front["reasons"][0] == "response_forbidden"
    (passed,) = [f for f in front["findings"] if f["id"] == "proxy_passed_on"]
    assert passed["found"].endswith("(with no Server header); the proxy sent it on with "
                                    "Server: Apache/" + passed["found"].split("Apache/")[1])
    assert front["attribution"]["server"] == f"the backend at {HOST}:{run.bare}"
    assert back["attribution"]["client"] == f"proxy at {HOST}:{run.port}"
    _websockets_printed(front, run.printed["/deny/"])


def test_without_upgrade_websocket_apache_drops_the_upgrade(run: Run) -> None:
    front, back = run.leg("/plain/"), run.leg("/plain/", run.backend)
    assert run.access["GET /plain/ HTTP/1.1"] == str(front["status"]) == "426"
    assert front["verdict"] == "failed" and front["reasons"][0] == "proxy_stripped_upgrade"
    assert back["reasons"][0] == "upgrade_header_missing"
    # the head the backend read, as it logged it, is what the analyzer read on the back leg
    read = _backend_read(run, "/plain/")
    assert "Connection: Keep-Alive" in read and not [h for h in read if h.startswith("Upgrade")]
    (stripped,) = [f for f in front["findings"] if f["id"] == "proxy_stripped_upgrade"]
    assert stripped["found"] == "backend got Upgrade: (none), Connection: Keep-Alive"
    _logged_by_backend(run, front["attribution"]["server_log"])
    assert front["attribution"]["server"] == "python websockets"
    _websockets_printed(front, run.printed["/plain/"])


def test_force_proxy_request_1_0_drops_the_upgrade_and_speaks_http10(run: Run) -> None:
    front = run.leg("/old/")
    assert run.access["GET /old/ HTTP/1.1"] == str(front["status"]) == "505"
    assert front["reasons"][0] == "proxy_stripped_upgrade", front["reasons"]
    (http10,) = [f for f in front["findings"] if f["id"] == "proxy_http10_upstream"]
    assert _backend_read(run, "/old/")[0] == "GET /old/ HTTP/1.0"
    assert http10["found"] == "backend got HTTP/1.0"
    _logged_by_backend(run, front["attribution"]["server_log"])


@pytest.mark.parametrize(("path", "status", "primary", "code"), [
    ("/closed/", 403, "response_forbidden", "AH01630"),
    ("/nothing", 404, "response_not_found", "AH00128"),
])
def test_apache_answering_itself_is_named_with_its_own_line(
        run: Run, path: str, status: int, primary: str, code: str) -> None:
    front = run.leg(path)
    assert run.access[f"GET {path} HTTP/1.1"] == str(front["status"]) == str(status)
    assert not _reached_backend(run, path)
    assert front["verdict"] == "failed" and front["reasons"][0] == primary, front["reasons"]
    assert "proxy_answered_itself" in front["reasons"]
    who = front["attribution"]
    assert who["server"] == "Apache httpd" and who["confidence"] == "high", who
    # (the 404 is logged at info only: the line after "at info: ")
    (line,) = run.logged_for(front["client"])
    assert code in line and _matches(who["server_log"].split("at info: ")[-1], line), (
        who["server_log"], line)
    _websockets_printed(front, run.printed[path])


def test_an_http10_clients_upgrade_is_switched_behind_apache_and_never_answered(
        run: Run) -> None:
    front, back = run.leg(CURL_PATH), run.leg(CURL_PATH, run.backend)
    # Apache's access log says 101, it sent the backend HTTP/1.1, which switched; curl got
    # nothing
    assert run.access[f"GET {CURL_PATH} HTTP/1.0"] == "101"
    assert _backend_read(run, CURL_PATH)[0] == f"GET {CURL_PATH} HTTP/1.1"
    assert back["status"] == 101 and "proxy_back_leg" in back["reasons"], back
    # Apache closed the back leg as curl left (not an idle timeout of its own: it waited as
    # long as curl did)
    assert "idle_timeout_after_switch" not in back["reasons"], back["reasons"]
    assert back["verdict"] == "succeeded", back["reasons"]
    (passed,) = [f for f in back["findings"] if f["id"] == "proxy_passed_client_end"]
    waited = int(passed["found"].split(" ms after")[0].rsplit(" ", 1)[1])
    assert waited <= 100 and "client's FIN on the front leg" in passed["found"], passed
    assert re.fullmatch(r"curl: \(28\) Operation timed out after \d+ milliseconds with 0 "
                        r"bytes received", run.printed["curl"]), run.printed["curl"]
    assert front["verdict"] == "no_response", front
    assert front["reasons"][:2] == ["proxy_withheld_switch", "no_response_client_gave_up"]
    assert "request_http10" in front["reasons"]
    # curl's line, the milliseconds as the capture timed them
    (line,) = [e for e in front["attribution"]["client_errors"] if e.startswith("curl: ")]
    waited = int(re.findall(r"\d+", run.printed["curl"])[1])
    assert abs(int(re.findall(r"\d+", line)[1]) - waited) <= 5, (line, run.printed["curl"])
