"""A request the path lost after the capture point, re-sent by the client's own TCP: three
network namespaces (client, router, server: python websockets), tcpdump on the client's
link, and the router's forwarding turned off while the request leaves, so the capture holds
a copy the server never got. The kernel re-sends it after its retransmission timeout; the
attempt says so (`request_resent`), and a wait counted from the first copy is told apart
from the one after the last copy."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from analyzer.verdict import Verdict
from tests.helpers import analyze_pcap, stop_group

pytest.importorskip("websockets.sync.server")
pytestmark = [
    pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                       reason="network namespaces and capture need root"),
    pytest.mark.skipif(shutil.which("tcpdump") is None or shutil.which("ip") is None,
                       reason="needs tcpdump and ip (iproute2)"),
    pytest.mark.timeout(90),
]

_TAG = f"{os.getpid() % 100000}"
CLIENT_NS, ROUTER_NS, SERVER_NS = (f"ua-rt{side}-{_TAG}" for side in "crs")
CLIENT_LINK, ROUTER_IN, ROUTER_OUT, SERVER_LINK = (f"uart{n}{_TAG}" for n in "abcd")
CLIENT_IP, ROUTER_IN_IP, ROUTER_OUT_IP, SERVER_IP = (
    "10.213.1.1", "10.213.1.254", "10.213.2.254", "10.213.2.1")
PORT = 8765

SERVER = r"""
import sys
from websockets.sync.server import serve

def echo(ws):
    for message in ws:
        ws.send(message)

with serve(echo, "0.0.0.0", int(sys.argv[1])) as server:
    print("ready", flush=True)
    server.serve_forever()
"""

# argv: server address, port, the router's namespace, "lost-once" or "gave-up". Prints the
# status line it read (lost-once) or "gave up".
CLIENT = r"""
import socket, struct, subprocess, sys, time
host, port, router, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]

def forwarding(on):
    subprocess.run(["ip", "netns", "exec", router, "sysctl", "-qw",
                    f"net.ipv4.ip_forward={1 if on else 0}"], check=True, timeout=10)

conn = socket.create_connection((host, port), timeout=10)
time.sleep(0.1)
request = (f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n").encode()
forwarding(False)
conn.sendall(request)
if mode == "gave-up":
    time.sleep(1.5)  # the kernel re-sends at about 0.2, 0.6 and 1.4 s
    # a reset (linger 0), which drops what waits to be sent: closed with a FIN, the kernel
    # would go on re-sending the request, and the server answer it once forwarding is back
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    time.sleep(0.05)
    forwarding(True)
    print("gave up", flush=True)
    sys.exit(0)
time.sleep(0.05)
forwarding(True)
data = b""
while b"\r\n\r\n" not in data:
    chunk = conn.recv(4096)
    if not chunk:
        break
    data += chunk
print(data.split(b"\r\n")[0].decode(), flush=True)
mask = b"\x01\x02\x03\x04"
conn.sendall(b"\x88\x82" + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(b"\x03\xe8")))
conn.recv(4096)  # the server's Close
conn.close()
"""


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=10)


def _delete_namespaces() -> None:
    for namespace in (CLIENT_NS, ROUTER_NS, SERVER_NS):
        subprocess.run(["ip", "netns", "delete", namespace], capture_output=True, timeout=10)


@contextlib.contextmanager
def three_namespaces() -> Iterator[None]:
    """client -- router -- server, two veth pairs, the router forwarding; deleted on exit."""
    _delete_namespaces()
    try:
        for namespace in (CLIENT_NS, ROUTER_NS, SERVER_NS):
            _run("ip", "netns", "add", namespace)
            _run("ip", "-n", namespace, "link", "set", "lo", "up")
        _run("ip", "link", "add", CLIENT_LINK, "netns", CLIENT_NS, "type", "veth", "peer",
             "name", ROUTER_IN, "netns", ROUTER_NS)
        _run("ip", "link", "add", ROUTER_OUT, "netns", ROUTER_NS, "type", "veth", "peer",
             "name", SERVER_LINK, "netns", SERVER_NS)
        for namespace, link, address in ((CLIENT_NS, CLIENT_LINK, CLIENT_IP),
                                         (ROUTER_NS, ROUTER_IN, ROUTER_IN_IP),
                                         (ROUTER_NS, ROUTER_OUT, ROUTER_OUT_IP),
                                         (SERVER_NS, SERVER_LINK, SERVER_IP)):
            _run("ip", "-n", namespace, "addr", "add", f"{address}/24", "dev", link)
            _run("ip", "-n", namespace, "link", "set", link, "up")
        _run("ip", "-n", CLIENT_NS, "route", "add", "default", "via", ROUTER_IN_IP)
        _run("ip", "-n", SERVER_NS, "route", "add", "default", "via", ROUTER_OUT_IP)
        _run("ip", "netns", "exec", ROUTER_NS, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        yield
    finally:
        _delete_namespaces()


@contextlib.contextmanager
def started(namespace: str, *command: str, ready: str) -> Iterator[subprocess.Popen[str]]:
    """``command`` in ``namespace`` (`ip netns exec` execs it: the PID is the command's),
    once it printed a line containing ``ready`` on ``stdout`` (tcpdump: stderr); stopped by
    its PID on exit (tcpdump by SIGINT, so it writes its last packets)."""
    is_tcpdump = command[0] == "tcpdump"
    process = subprocess.Popen(["ip", "netns", "exec", namespace, *command], text=True,
                               stdout=subprocess.DEVNULL if is_tcpdump else subprocess.PIPE,
                               stderr=subprocess.PIPE if is_tcpdump else subprocess.DEVNULL,
                               start_new_session=True)
    try:
        stream = process.stderr if is_tcpdump else process.stdout
        assert stream is not None
        deadline, seen = time.monotonic() + 10, ""
        while ready not in seen and time.monotonic() < deadline and process.poll() is None:
            seen += stream.readline()
        assert ready in seen, f"{command[0]} did not start: {seen!r}"
        yield process
    finally:
        if is_tcpdump:
            time.sleep(0.5)
            if process.poll() is None:
                os.kill(process.pid, signal.SIGINT)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                stop_group(process, signal.SIGKILL)
        else:
            stop_group(process)


@pytest.fixture(scope="module")
def capture() -> Iterator[tuple[Path, list[str]]]:
    """The two scenarios on two connections, in order: the request lost once, then answered;
    the request lost until the client gave up."""
    with tempfile.TemporaryDirectory(prefix="resent-live-") as tmp, three_namespaces():
        path = Path(tmp, "resent.pcap")
        said: list[str] = []
        with started(SERVER_NS, sys.executable, "-c", SERVER, str(PORT), ready="ready"), \
                started(CLIENT_NS, "tcpdump", "-i", CLIENT_LINK, "-n", "-U", "--immediate-mode",
                        "-Z", "root", "-w", str(path), f"tcp port {PORT}",
                        ready="listening on"):
            for mode in ("lost-once", "gave-up"):
                done = subprocess.run(
                    ["ip", "netns", "exec", CLIENT_NS, sys.executable, "-c", CLIENT, SERVER_IP,
                     str(PORT), ROUTER_NS, mode], capture_output=True, text=True, timeout=30)
                said.append(done.stdout.strip())
        yield path, said


def test_a_request_lost_once_is_re_sent_and_answered(
        capture: tuple[Path, list[str]]) -> None:
    path, said = capture
    assert said[0] == "HTTP/1.1 101 Switching Protocols"
    attempt = analyze_pcap(path)[0]
    assert attempt.verdict is Verdict.SUCCEEDED, attempt.findings
    resent = next(f for f in attempt.findings if f.check == "request_resent")
    assert "again 1 time (frame " in resent.found, resent.found
    waited = int(resent.found.split("the last ")[1].split(" ms")[0])
    assert 150 <= waited <= 1500, resent.found  # Linux's retransmission timeout: 200 ms at least
    assert resent.frames[0] == attempt.attempt.request.first_frame


def test_a_request_never_answered_is_timed_from_its_last_copy(
        capture: tuple[Path, list[str]]) -> None:
    path, said = capture
    assert said[1] == "gave up"
    attempt = analyze_pcap(path)[1]
    assert attempt.verdict is Verdict.NO_RESPONSE, attempt.findings
    assert attempt.findings[0].check == "no_response_client_gave_up", attempt.findings
    assert "ms after its last copy (frame" in attempt.findings[0].found
    resent = next(f for f in attempt.findings if f.check == "request_resent")
    copies = int(resent.found.split("again ")[1].split(" time")[0])
    assert resent.frames[1:] == tuple(sorted(resent.frames[1:]))
    assert copies >= 2, resent.found  # at about 0.2, 0.6 (and 1.4) s
