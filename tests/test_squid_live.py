"""A forward proxy on the way, with real software on ``lo``: Debian's Squid (5.7) run in the
foreground from its own configuration (`squid -N -f CONF`, never the system's service), with
python websockets (``proxy=``), curl (``-x``, ``--proxytunnel``) and Chromium
(``--proxy-server``) as clients, a python websockets server over TLS (its key logged) and in
cleartext behind it, everything captured with tcpdump and read as ``read --tcp --keylog -F
json`` reads it. Every case is held to what the real programs said: the line Squid's
access.log has for it (the analyzer's rebuilt line must be one of them), what the backend
logged, what each client printed.

What real Squid shows on the wire: a CONNECT it allows is answered "200 Connection
established" after it reached the target; its own refusals are error pages named by
``X-Squid-Error`` and the page's ``<body id=ERR_...>`` (ERR_ACCESS_DENIED 403 for its ACLs and
for Debian's first rule ``http_access deny CONNECT !SSL_ports``, ERR_CACHE_ACCESS_DENIED 407,
ERR_CONNECT_FAIL 503 "(111) Connection refused" after its own SYN to the target was reset);
a ws:// request sent to it in absolute form is forwarded without Upgrade unless an
``http_upgrade_request_protocols`` rule names the offered protocol exactly: a rule for
"WebSocket" (the docs' spelling) passes "Upgrade: WebSocket" and strips the "websocket" every
client sends.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    WEBSOCKETS_LOGGED,
    capture_ports,
    foreground,
    free_port,
    logged,
    matches_with_dots,
    printed_as,
    run_cli,
    start_raw_server,
    stop_group,
)
from tests.test_h2_live import HOST
from tests.test_h2_live import pytestmark as _live_marks
from tests.tls_memory import make_certificate

websockets_client = pytest.importorskip("websockets.sync.client")
pytestmark = [*_live_marks,
              pytest.mark.skipif(shutil.which("squid") is None or not Path(
                  "/usr/lib/squid/basic_fake_auth").exists(), reason="needs Debian's squid"),
              pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")]

# python websockets over TLS on argv[3] (the certificate and key argv[1], argv[2]) and in
# cleartext on argv[4], echoing; what it logged (the request heads it read at debug, "<
# NAME: VALUE", and its errors) goes to argv[5]. It stops by itself after 60 s.
BACKEND = r"""
import asyncio, logging, ssl, sys
from websockets.asyncio.server import serve

out = open(sys.argv[5], "a", buffering=1)
""" + WEBSOCKETS_LOGGED + r"""


async def echo(websocket):
    async for message in websocket:
        await websocket.send(message)


async def main():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[1], sys.argv[2])
    async with serve(echo, "127.0.0.1", int(sys.argv[3]), ssl=context), \
            serve(echo, "127.0.0.1", int(sys.argv[4])):
        print("ready", flush=True)
        await asyncio.sleep(60)


asyncio.run(main())
"""

# Squid's own files in {tmp}; Debian's first CONNECT rule; 127.0.0.3 denied by an ACL; the
# {auth} port behind basic authentication (basic_fake_auth takes any password: without one
# Squid challenges); cleartext upgrades allowed only as the docs spell the protocol; nothing
# but 127.0.0.0/8 reached (Chromium's own requests are refused, without a DNS look-up).
CONF = """http_port {host}:{squid}
pid_filename {tmp}/squid.pid
cache_log {tmp}/cache.log
access_log stdio:{tmp}/access.log
cache_store_log none
netdb_filename none
cache deny all
coredump_dir {tmp}
visible_hostname squid-live
dns_nameservers 127.0.0.1
pinger_enable off
shutdown_lifetime 0 seconds
auth_param basic program /usr/lib/squid/basic_fake_auth
auth_param basic realm squid-live
auth_param basic children 1 startup=1 idle=1
acl SSL_ports port 443 {tls} {down} {auth}
acl CONNECT method CONNECT
acl loopback_target dstdom_regex -n ^127\\.
acl forbidden dst 127.0.0.3
acl authed proxy_auth REQUIRED
acl auth_port port {auth}
http_upgrade_request_protocols WebSocket allow all
http_access deny CONNECT !SSL_ports
http_access deny !loopback_target
http_access deny forbidden
http_access deny auth_port !authed
http_access allow localhost
http_access deny all
"""
CHROME = "Chrome"
# the cases whose CONNECT Squid refuses: name -> the target every client asks for
# (python websockets tunnels ws:// too: the cleartext port is no SSL_port)
REFUSED = {"acl": "wss://127.0.0.3/ws", "port": "ws://127.0.0.1:{plain}/ws",
           "down": "wss://127.0.0.1:{down}/ws", "auth": "wss://127.0.0.1:{auth}/ws"}


@dataclass
class Run:
    """One capture of every case, and what the real programs said meanwhile."""

    ports: dict[str, int]  # squid, tls, plain, down, auth
    attempts: list[dict[str, Any]]  # `read --tcp --keylog -F json`'s
    access: list[str]  # Squid's access.log
    backend: list[str]  # what the backend logged
    printed: dict[tuple[str, str], str]  # (case, client) -> what it printed

    def fronts(self, target: str) -> dict[str, dict[str, Any]]:
        """The attempts to Squid asking for ``target``, by client name."""
        return {a["attribution"]["client"]: a for a in self.attempts
                if a["path"] == target and a["server"] == f"{HOST}:{self.ports['squid']}"}

    def to(self, port: int) -> list[dict[str, Any]]:
        return [a for a in self.attempts if a["server"] == f"{HOST}:{port}"]


def _python(url: str, proxy: str, context: ssl.SSLContext) -> str:
    """What python websockets printed opening ``url`` through ``proxy``."""
    options: dict[str, Any] = {"ssl": context, "server_hostname": "localhost"} if (
        url.startswith("wss")) else {}
    try:
        with websockets_client.connect(url, proxy=proxy, open_timeout=5, **options) as ws:
            ws.send("hello")
            return f"echoed {ws.recv(timeout=5)}"
    except Exception as error:  # (what the client raised is the outcome)
        return f"{type(error).__name__}: {error}"


def _curl(proxy: str, *arguments: str, wait: float = 5) -> str:
    """What curl printed (its error line) through ``proxy`` (``--noproxy ""``: whatever the
    environment's NO_PROXY says), given up after ``wait`` s."""
    done = subprocess.run(["curl", "-sS", "--noproxy", "", "-x", proxy, "-m",
                           str(wait), "-o", "/dev/null", *arguments],
                          capture_output=True, text=True, timeout=wait + 10)
    return done.stderr.strip()


def _curl_upgrade(proxy: str, url: str, token: str, key: str) -> str:
    """curl's ws:// handshake by hand, sent to the proxy in absolute form (with --fail, as
    a handshake is probed by hand: the attribution's curl line for a status)."""
    return _curl(proxy, "--fail", "-H", "Connection: Upgrade", "-H", f"Upgrade: {token}",
                 "-H", "Sec-WebSocket-Version: 13", "-H", f"Sec-WebSocket-Key: {key}", url,
                 wait=2)


def _chromium(proxy: str, urls: dict[str, str], tmp: Path) -> dict[str, str]:
    """What Chromium's console said for each page opening one WebSocket through ``proxy``
    (none without Chromium)."""
    from tests.test_close_code_live import run_page
    from tests.test_html_browser import CHROMIUM, DRIVER, FLAGS, webdriver

    if webdriver is None or CHROMIUM is None or DRIVER is None:
        return {}
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--proxy-server={proxy}", "--proxy-bypass-list=<-loopback>",
                 f"--user-data-dir={tmp / 'chromium'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    said = {}
    try:
        driver.set_page_load_timeout(30)
        for case, url in urls.items():
            page = tmp / f"{case}.html"
            page.write_text(f'<!doctype html><script>const ws = new WebSocket("{url}");\n'
                            'ws.onclose = e => { document.title = "closed " + e.code; };'
                            "</script>", encoding="utf-8")
            _, lines = run_page(driver, page)
            said[case] = " ".join(line.split(" ", 2)[2] for line in lines)
    finally:
        driver.quit()
    return said


@pytest.fixture(scope="module")
def run() -> Iterator[Run]:
    with tempfile.TemporaryDirectory(prefix="squid-live-") as tmp:
        os.chmod(tmp, 0o777)  # (Squid drops root for its own user, and writes its logs here)
        cert, key = make_certificate(Path(tmp))
        ports = {name: free_port() for name in ("squid", "tls", "plain", "down", "auth")}
        conf = Path(tmp, "squid.conf")
        conf.write_text(CONF.format(tmp=tmp, host=HOST, **ports))
        keys, said = Path(tmp, "client.keys"), Path(tmp, "backend.log")
        context = ssl.create_default_context(cafile=str(cert))
        context.keylog_filename = str(keys)
        proxy = f"http://{HOST}:{ports['squid']}"
        urls = {case: url.format(**ports) for case, url in REFUSED.items()}
        printed: dict[tuple[str, str], str] = {}
        backend = start_raw_server(BACKEND, str(cert), str(key), str(ports["tls"]),
                                   str(ports["plain"]), str(said))
        capture = Path(tmp, "squid.pcap")
        try:
            with foreground(["squid", "-N", "-f", str(conf)], (HOST, ports["squid"])), \
                    capture_ports(capture, *ports.values()):
                printed["tunnel", "python websockets"] = _python(
                    f"wss://{HOST}:{ports['tls']}/ws", proxy, context)
                for case, url in urls.items():
                    printed[case, "python websockets"] = _python(url, proxy, context)
                    # (https:// tunnels, as wss:// does; ws:// too with --proxytunnel)
                    scheme, _, authority = url.split("/")[:3]
                    printed[case, "curl"] = _curl(
                        proxy, "--proxytunnel", f"{scheme.replace('ws', 'http')}//{authority}/")
                printed["acl", "curl --fail"] = _curl(proxy, "--fail", "https://127.0.0.3/")
                for case, line in _chromium(proxy, urls, Path(tmp)).items():
                    printed[case, CHROME] = line
                plain = f"http://{HOST}:{ports['plain']}/ws"
                printed["stripped", "curl"] = _curl_upgrade(proxy, plain, "websocket",
                                                            "dGhlIHNhbXBsZSBub25jZQ==")
                printed["passed", "curl"] = _curl_upgrade(proxy, plain, "WebSocket",
                                                          "x3JJHMbDL1EzLkh9GBhXDw==")
        finally:
            stop_group(backend)
        report = json.loads(run_cli("read", capture, "--tcp", "--keylog", keys, "-F",
                                    "json").output)
        yield Run(ports, report["attempts"], logged(Path(tmp, "access.log"), " "),
                  said.read_text().splitlines(), printed)


def _squid_wrote(attempt: dict[str, Any], run: Run) -> None:
    """The attempt's answer is Squid's own page, and its rebuilt line is in access.log."""
    who = attempt["attribution"]
    assert who["server"] == "Squid" and who["confidence"] == "high", who
    assert any(matches_with_dots(who["server_log"], line) for line in run.access), (
        who["server_log"], run.access)


def _clients_printed(run: Run, case: str, fronts: dict[str, dict[str, Any]]) -> None:
    """Each client's line for its attempt is what it printed."""
    for client in ("python websockets", "curl", CHROME):
        if (case, client) not in run.printed:
            continue  # (no Chromium)
        # (curl's own lines start with "curl: ")
        printed = run.printed[case, client].removeprefix("curl: ")
        lines = [line.removeprefix(f"{client}: ") for line in
                 fronts[client]["attribution"]["client_errors"]
                 if line.startswith(f"{client}: ")]
        assert any(printed_as(line, printed) for line in lines), (client, printed, lines)


def test_wss_through_squid_is_a_tunnel_and_the_websocket_inside_it_is_read_with_the_keys(
        run: Run) -> None:
    assert run.printed["tunnel", "python websockets"] == "echoed hello"
    target = f"{HOST}:{run.ports['tls']}"
    (front,) = run.fronts(target).values()
    assert front["verdict"] == "succeeded" and front["status"] == 200, front
    assert front["reasons"] == ["tunnel_carried"], front["reasons"]  # (not answered itself)
    assert "a TLS handshake record" in front["findings"][0]["found"]
    assert any(" TCP_TUNNEL/200 " in line and f" CONNECT {target} " in line
               for line in run.access), run.access
    # the WebSocket inside: Squid's own connection to the server, decrypted with the key log;
    # its client is the end client (the bytes in the tunnel are its own), and no pairing
    # names the CONNECT (the tunnel's bytes on the client's connection are not read)
    (inner,) = run.to(run.ports["tls"])
    assert inner["tls"]["decrypted"] and inner["status"] == 101, inner
    assert inner["verdict"] == "succeeded" and inner["reasons"] == ["ws_closed_normally"]
    assert inner["attribution"]["client"] == "python websockets"
    assert inner["client"] != front["client"] and not [
        r for r in inner["reasons"] if r.startswith("proxy_")]


@pytest.mark.parametrize("case", ["acl", "port"])
def test_a_connect_squid_refuses_is_the_proxys_refusal_of_the_tunnel(run: Run,
                                                                      case: str) -> None:
    target = REFUSED[case].format(**run.ports).split("/")[2]
    target = target if ":" in target else f"{target}:443"
    fronts = run.fronts(target)
    assert {"python websockets", "curl"} <= set(fronts), (target, run.attempts)
    for attempt in fronts.values():
        assert attempt["verdict"] == "failed" and attempt["status"] == 403, attempt
        assert attempt["reasons"][0] == "proxy_tunnel_denied", attempt["reasons"]
        assert "response_forbidden" not in attempt["reasons"]  # (not the server's 403)
        found = attempt["findings"][0]["found"]
        assert found.startswith("403 Forbidden (Squid: ERR_ACCESS_DENIED)"), found
        # the port rule's hint only where the port is not 443
        assert ("is not 443" in found) == (case == "port"), found
        _squid_wrote(attempt, run)
    assert any(" TCP_DENIED/403 " in line and f" CONNECT {target} - HIER_NONE/- " in line
               for line in run.access), run.access
    _clients_printed(run, case, fronts)
    if case == "acl":  # (curl --fail says it its own way)
        assert f"{run.printed['acl', 'curl --fail']} (with --fail)" in fronts["curl"][
            "attribution"]["client_errors"], run.printed


def test_a_refused_target_is_the_cause_of_squids_503(run: Run) -> None:
    target = f"{HOST}:{run.ports['down']}"
    fronts = run.fronts(target)
    refusals = run.to(run.ports["down"])
    assert len(refusals) >= len(fronts) >= 2, (fronts, refusals)
    for attempt in fronts.values():
        assert attempt["verdict"] == "failed" and attempt["status"] == 503, attempt
        assert attempt["reasons"][:2] == ["proxy_backend_refused", "proxy_tunnel_failed"], (
            attempt["reasons"])
        (refused,) = [f for f in attempt["findings"] if f["id"] == "proxy_backend_refused"]
        assert refused["found"].startswith(f"{target} refused the proxy's connection")
        (failed,) = [f for f in attempt["findings"] if f["id"] == "proxy_tunnel_failed"]
        assert "(Squid: ERR_CONNECT_FAIL, (111) Connection refused)" in failed["found"]
        _squid_wrote(attempt, run)
    # Squid's own connections to the target, each the back leg of one CONNECT
    for back in refusals:
        assert back["verdict"] == "refused" and "proxy_back_leg" in back["reasons"], back
    _clients_printed(run, "down", fronts)


def test_a_connect_without_credentials_is_squids_407(run: Run) -> None:
    fronts = run.fronts(f"{HOST}:{run.ports['auth']}")
    for attempt in fronts.values():
        assert attempt["verdict"] == "failed" and attempt["status"] == 407, attempt
        assert attempt["reasons"][0] == "proxy_auth_required", attempt["reasons"]
        assert attempt["findings"][0]["found"].endswith(
            '(Proxy-Authenticate: Basic realm="squid-live")'), attempt["findings"][0]
        _squid_wrote(attempt, run)
    assert any(" TCP_DENIED/407 " in line for line in run.access), run.access
    _clients_printed(run, "auth", fronts)


def _legs(run: Run, which: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The front leg (to Squid, in absolute form) and the back leg of curl's ``which``
    handshake (0: "Upgrade: websocket", 1: "Upgrade: WebSocket"), in the order they ran."""
    url = f"http://{HOST}:{run.ports['plain']}/ws"
    fronts = sorted((a for a in run.attempts if a["path"] == url), key=lambda a: a["number"])
    backs = sorted(run.to(run.ports["plain"]), key=lambda a: a["number"])
    assert len(fronts) == len(backs) == 2, (fronts, backs)
    return fronts[which], backs[which]


def test_squid_strips_the_websocket_upgrade_its_rule_does_not_name_exactly(run: Run) -> None:
    front, back = _legs(run, 0)
    url = f"http://{HOST}:{run.ports['plain']}/ws"
    assert front["verdict"] == "failed" and front["status"] == back["status"] == 426
    assert front["reasons"][0] == "proxy_stripped_upgrade", front["reasons"]
    (stripped,) = [f for f in front["findings"] if f["id"] == "proxy_stripped_upgrade"]
    assert stripped["found"].startswith("backend got Upgrade: (none), Connection: keep-alive; "
                                        "Squid drops Upgrade"), stripped["found"]
    assert back["reasons"][0] == "upgrade_header_missing" and "proxy_back_leg" in back["reasons"]
    # Squid dropped the backend's Upgrade from the 426 too: not the server's fault
    assert "upgrade_required_without_upgrade" not in front["reasons"], front["reasons"]
    # the backend's words, passed on: its log has the line the analyzer gives
    server_log = front["attribution"]["server_log"]
    assert front["attribution"]["server"] == "python websockets"
    assert any(line.startswith("logged ! ") or line.startswith("logged opening")
               for line in run.backend), run.backend
    assert any(line.endswith(server_log.split(": ", 1)[1]) for line in run.backend), (
        server_log, run.backend)
    assert any(" TCP_MISS/426 " in line and f" GET {url} " in line for line in run.access)
    assert run.printed["stripped", "curl"] in front["attribution"]["client_errors"]


def test_squid_passes_the_upgrade_its_rule_names(run: Run) -> None:
    front, back = _legs(run, 1)
    assert front["status"] == back["status"] == 101, (front, back)
    assert "proxy_stripped_upgrade" not in front["reasons"]
    assert "proxy_back_leg" in back["reasons"]
    assert any(" TCP_TUNNEL/101 " in line for line in run.access), run.access
    # curl does not speak WebSocket: it waits after the 101 until -m runs out
    printed = run.printed["passed", "curl"]
    assert re.fullmatch(r"curl: \(28\) Operation timed out after \d+ milliseconds with 0 "
                        r"bytes received", printed), printed
    (line,) = [e for e in front["attribution"]["client_errors"] if e.startswith("curl: ")]
    waited = int(re.findall(r"\d+", printed)[1])
    assert abs(int(re.findall(r"\d+", line)[1]) - waited) <= 5, (line, printed)
