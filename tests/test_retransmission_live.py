"""Bytes the path lost after the capture point, re-sent by the sender's own TCP: three
network namespaces (client, router, server: python websockets, and a raw server that answers
after 300 ms), tcpdump on the client's link and on the server's, and the router's forwarding
turned off while the request (or the 101) passes, so a capture holds a copy the other side
never got. The kernel re-sends it after its retransmission timeout; the attempt says so
(`request_resent`, `response_resent`, and for a TLS ClientHello `tls_client_hello_resent`:
a TLS server in the same namespace, a client with a key log), and a wait counted from the
first copy is told apart from the one after its last copy."""

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

from analyzer.verdict import Diagnosis, Verdict
from tests.helpers import RAW_SERVER, analyze_pcap, stop_group
from tests.tls_memory import make_certificate

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
PORT, SLOW_PORT, TLS_PORT = 8765, 8766, 8767

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

# Answers each request head with a correct 101 after argv[2] seconds, the client's Close with
# its own, then reads until the client has gone.
SLOW_SERVER = RAW_SERVER.replace('("127.0.0.1", int(sys.argv[1]))',
                                 '("0.0.0.0", int(sys.argv[1]))') + r"""
while True:
    conn, _ = server.accept()
    conn.settimeout(10)
    head = read_head(conn)
    time.sleep(float(sys.argv[2]))
    switch(conn, head)
    try:
        if conn.recv(4096):  # the client's Close: answered with the server's
            conn.sendall(b"\x88\x02\x03\xe8")
    except OSError:
        pass
    drain(conn)
    conn.close()
"""
assert "0.0.0.0" in SLOW_SERVER  # (inside its namespace: the server's veth address too)

# The slow server's answers inside TLS (argv[2] the certificate, argv[3] its key), at once.
TLS_SERVER = SLOW_SERVER.split("while True:")[0] + r"""
import ssl
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[2], sys.argv[3])
while True:
    raw, _ = server.accept()
    raw.settimeout(10)
    try:
        conn = context.wrap_socket(raw, server_side=True)
        switch(conn, read_head(conn))
        if conn.recv(4096):
            conn.sendall(b"\x88\x02\x03\xe8")
        drain(conn)
    except OSError:  # (the client that gave up: its reset, mid-handshake)
        pass
    raw.close()
"""

# argv: server address, port, the router's namespace, "lost-once", "gave-up", "answer-lost",
# "tls-lost-once" or "tls-gave-up" (then the certificate to trust and the key log to write).
# Prints the status line it read, or "gave up". In the TLS modes the ClientHello is what the
# path loses.
CLIENT = r"""
import socket, ssl, struct, subprocess, sys, threading, time
host, port, router, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]

def forwarding(on):
    subprocess.run(["ip", "netns", "exec", router, "sysctl", "-qw",
                    f"net.ipv4.ip_forward={1 if on else 0}"], check=True, timeout=10)

def give_up(conn):
    # a reset (linger 0), which drops what waits to be sent: closed with a FIN, the kernel
    # would go on re-sending, and the server answer once forwarding is back
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    time.sleep(0.05)
    forwarding(True)
    print("gave up", flush=True)
    sys.exit(0)

conn = socket.create_connection((host, port), timeout=10)
time.sleep(0.1)
if mode.startswith("tls-"):
    context = ssl.create_default_context(cafile=sys.argv[5])
    context.keylog_filename = sys.argv[6]
    forwarding(False)
    if mode == "tls-gave-up":
        conn.settimeout(1.5)  # the kernel re-sends the ClientHello at about 0.2, 0.6, 1.4 s
        conn = context.wrap_socket(conn, server_hostname="localhost",
                                   do_handshake_on_connect=False)
        try:
            conn.do_handshake()
        except TimeoutError:
            give_up(conn)
    threading.Timer(0.05, forwarding, (True,)).start()
    conn = context.wrap_socket(conn, server_hostname="localhost")
    mode = "tls"
request = (f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n").encode()
if mode == "gave-up":
    forwarding(False)
    conn.sendall(request)
    time.sleep(1.5)  # the kernel re-sends at about 0.2, 0.6 and 1.4 s
    give_up(conn)
if mode == "tls":
    conn.sendall(request)
elif mode == "answer-lost":  # the request passes; the 101, 300 ms later, does not
    conn.sendall(request)
    time.sleep(0.1)
    forwarding(False)
    time.sleep(0.35)
    forwarding(True)
else:
    forwarding(False)
    conn.sendall(request)
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


Captured = tuple[Path, Path, list[str], str]  # near the client, near the server, said, keys


@pytest.fixture(scope="module")
def capture() -> Iterator[Captured]:
    """The five scenarios on five connections, in order: the request lost once, then
    answered; the request lost until the client gave up; the 101 lost once (the slow
    server); a TLS ClientHello lost once, then answered; a ClientHello lost until the client
    gave up. Captured on the client's link and on the server's."""
    with tempfile.TemporaryDirectory(prefix="resent-live-") as tmp, three_namespaces():
        near_client, near_server = Path(tmp, "client-side.pcap"), Path(tmp, "server-side.pcap")
        certificate, key = make_certificate(Path(tmp))
        keys = Path(tmp, "client.keys")
        said: list[str] = []
        ports = f"tcp port {PORT} or tcp port {SLOW_PORT} or tcp port {TLS_PORT}"
        with started(SERVER_NS, sys.executable, "-c", SERVER, str(PORT), ready="ready"), \
                started(SERVER_NS, sys.executable, "-c", SLOW_SERVER, str(SLOW_PORT), "0.3",
                        ready="ready"), \
                started(SERVER_NS, sys.executable, "-c", TLS_SERVER, str(TLS_PORT),
                        str(certificate), str(key), ready="ready"), \
                started(CLIENT_NS, "tcpdump", "-i", CLIENT_LINK, "-n", "-U", "--immediate-mode",
                        "-Z", "root", "-w", str(near_client), ports, ready="listening on"), \
                started(SERVER_NS, "tcpdump", "-i", SERVER_LINK, "-n", "-U", "--immediate-mode",
                        "-Z", "root", "-w", str(near_server), ports, ready="listening on"):
            for mode, port in (("lost-once", PORT), ("gave-up", PORT), ("answer-lost", SLOW_PORT),
                               ("tls-lost-once", TLS_PORT), ("tls-gave-up", TLS_PORT)):
                done = subprocess.run(
                    ["ip", "netns", "exec", CLIENT_NS, sys.executable, "-c", CLIENT, SERVER_IP,
                     str(port), ROUTER_NS, mode, str(certificate), str(keys)],
                    capture_output=True, text=True, timeout=30)
                said.append(done.stdout.strip())
        yield near_client, near_server, said, keys.read_text()


def test_a_request_lost_once_is_re_sent_and_answered(
        capture: Captured) -> None:
    path, _, said, _ = capture
    assert said[0] == "HTTP/1.1 101 Switching Protocols"
    attempt = analyze_pcap(path)[0]
    assert attempt.verdict is Verdict.SUCCEEDED, attempt.findings
    resent = next(f for f in attempt.findings if f.check == "request_resent")
    assert "again 1 time (frame " in resent.found, resent.found
    waited = int(resent.found.split("the last ")[1].split(" ms")[0])
    assert 150 <= waited <= 1500, resent.found  # Linux's retransmission timeout: 200 ms at least
    assert resent.frames[0] == attempt.attempt.request.first_frame


def test_a_request_never_answered_is_timed_from_its_last_copy(
        capture: Captured) -> None:
    path, _, said, _ = capture
    assert said[1] == "gave up"
    attempt = analyze_pcap(path)[1]
    assert attempt.verdict is Verdict.NO_RESPONSE, attempt.findings
    assert attempt.findings[0].check == "no_response_client_gave_up", attempt.findings
    assert "ms after its last copy (frame" in attempt.findings[0].found
    resent = next(f for f in attempt.findings if f.check == "request_resent")
    copies = int(resent.found.split("again ")[1].split(" time")[0])
    assert resent.frames[1:] == tuple(sorted(resent.frames[1:]))
    assert copies >= 2, resent.found  # at about 0.2, 0.6 (and 1.4) s


def _on_port(diagnoses: list[Diagnosis], port: int) -> Diagnosis:
    (found,) = (d for d in diagnoses if d.attempt.server.port == port)
    return found


def test_a_101_lost_towards_the_client_is_re_sent(
        capture: Captured) -> None:
    near_client, near_server, said, _ = capture
    assert said[2] == "HTTP/1.1 101 Switching Protocols"
    at_server = _on_port(analyze_pcap(near_server), SLOW_PORT)
    resent = next(f for f in at_server.findings if f.check == "response_resent")
    assert resent.frames[0] == at_server.attempt.response.first_frame
    waited = int(resent.found.split("the last ")[1].split(" ms")[0])
    assert 150 <= waited <= 1500, resent.found
    assert not any(f.check == "request_resent" for f in at_server.findings)
    # the client's side never saw the first copy: nothing re-sent there
    at_client = _on_port(analyze_pcap(near_client), SLOW_PORT)
    assert at_client.verdict is at_server.verdict
    assert not any(f.check.endswith("_resent") for f in at_client.findings), at_client.findings


def test_a_client_hello_lost_once_is_re_sent_and_answered(
        capture: Captured, tmp_path: Path) -> None:
    near_client, _, said, keys = capture
    assert said[3] == "HTTP/1.1 101 Switching Protocols"
    keylog = tmp_path / "client.keys"
    keylog.write_text(keys)
    # without the key the session is counted, not listed (its handshake completed): only the
    # next one, which broke, is
    assert len([d for d in analyze_pcap(near_client) if d.attempt.server.port == TLS_PORT]) == 1
    (attempt,) = (d for d in analyze_pcap(near_client, keylog=keylog)
                  if d.attempt.server.port == TLS_PORT and d.attempt.tls is not None
                  and d.attempt.tls.decrypted)
    assert attempt.verdict is Verdict.SUCCEEDED, attempt.findings
    assert attempt.attempt.tls is not None and attempt.attempt.tls.decrypted
    resent = next(f for f in attempt.findings if f.check == "tls_client_hello_resent")
    assert resent.frames[0] == attempt.attempt.tls.client_hello_frame
    waited = int(resent.found.split("the last ")[1].split(" ms")[0])
    assert 150 <= waited <= 1500, resent.found
    assert not any(f.check == "request_resent" for f in attempt.findings), attempt.findings


def test_a_client_hello_never_answered_is_timed_from_its_last_copy(capture: Captured) -> None:
    near_client, near_server, said, _ = capture
    assert said[4] == "gave up"
    attempt = [d for d in analyze_pcap(near_client) if d.attempt.server.port == TLS_PORT][-1]
    assert attempt.verdict is Verdict.NO_RESPONSE, attempt.findings
    assert attempt.findings[0].check == "tls_client_gave_up", attempt.findings
    assert "ms after its last copy (frame" in attempt.findings[0].found
    resent = next(f for f in attempt.findings if f.check == "tls_client_hello_resent")
    copies = int(resent.found.split("again ")[1].split(" time")[0])
    assert copies >= 2, resent.found  # at about 0.2, 0.6 (and 1.4) s
    # the server's side saw none of it: the path lost every copy before the router's far side
    assert not [d for d in analyze_pcap(near_server) if d.attempt.server.port == TLS_PORT
                and d.attempt.tls is not None and not d.attempt.tls.decrypted
                and d.verdict is Verdict.NO_RESPONSE]
