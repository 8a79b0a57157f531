"""Shared test helpers: run the real pipeline, or the real command line, on capture files."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from analyzer.attribution.clients import KIND_OF_FINDING, client_errors
from analyzer.cli import cli
from analyzer.pipeline import Analysis, analyze
from analyzer.source import CaptureWarning, read_captures
from analyzer.tls.keylog import load_keylog
from analyzer.verdict import Diagnosis


def analyze_pcap(
    path: str | os.PathLike[str], warnings: list[CaptureWarning] | None = None,
    keylog: str | os.PathLike[str] | None = None,
) -> list[Diagnosis]:
    """Every diagnosis of one capture file, read and analyzed as the CLI does (with the key
    log ``keylog`` when given)."""
    collected: list[CaptureWarning] = [] if warnings is None else warnings
    secrets = load_keylog(Path(keylog).read_bytes()) if keylog is not None else None
    run = Analysis(secrets=secrets)  # a pcapng's embedded TLS key log is used, as the CLI does
    # without lifetimes the run yields diagnoses only
    return [d for d in analyze(read_captures([os.fspath(path)], collected, run.add_secrets), run)
            if isinstance(d, Diagnosis)]


def run_cli(*args: str | os.PathLike[str]) -> Result:
    """``upgrade-analyzer ARGS...`` in-process; exceptions propagate instead of being caught."""
    return CliRunner().invoke(cli, [os.fspath(a) for a in args], catch_exceptions=False)


def nginx_conf(tmp: str, server: str) -> str:
    """An nginx configuration whose files all live in ``tmp`` (run as a test, unprivileged
    paths, one worker, no access log), with ``server`` as its one `server { ... }` block's
    body: the capture generator's configuration (captures/generate.py), so both start nginx
    alike."""
    from captures.generate import nginx_conf as nginx_http_conf

    return nginx_http_conf(tmp, f"    server {{\n{server}\n    }}", access_log=False)


def start_nginx(tmp: str, conf: Path) -> subprocess.Popen[bytes]:
    """nginx run in the foreground with the configuration ``conf`` (`nginx_conf`), its pid,
    logs and temporary files in ``tmp``, in a session of its own: stop it by its PID
    (`stop_group` with SIGQUIT)."""
    return subprocess.Popen(
        ["nginx", "-p", tmp, "-e", f"{tmp}/error.log", "-c", str(conf),
         "-g", "daemon off; master_process off;"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def matches_with_dots(line: str, logged: str) -> bool:
    """Whether ``logged`` (what real software wrote) is ``line`` (what the analyzer rebuilt),
    each ``...`` of it standing for any text (what is not on the wire: a configured name, a
    date, a count)."""
    pattern = ".*".join(re.escape(part) for part in line.split("..."))
    return re.fullmatch(pattern, logged) is not None


def stop_group(process: subprocess.Popen[Any], sig: int = signal.SIGTERM) -> None:
    """Stop a process started with ``start_new_session=True`` and all it started: ``sig`` to
    its group, SIGKILL after 5 s."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


@contextlib.contextmanager
def foreground(command: Sequence[str], address: tuple[str, int], sig: int = signal.SIGTERM,
               wait: float = 15) -> Iterator[subprocess.Popen[bytes]]:
    """A server run in the foreground from its own configuration (a proxy: ``apache2 -X -f
    CONF``), in a session of its own, yielded once ``address`` accepts connections (within
    ``wait`` s: an exit or a timeout before then fails), then stopped by its PID
    (`stop_group` with ``sig``). Its output is dropped: read the logs its configuration
    writes (`logged`)."""
    process = subprocess.Popen(list(command), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + wait
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited with {process.returncode}")
            with contextlib.suppress(OSError), socket.create_connection(address, 0.2):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on {address}")
            time.sleep(0.05)
        yield process
    finally:
        stop_group(process, sig)


def logged(path: Path, *needles: str) -> list[str]:
    """The lines of the log ``path`` that hold every one of ``needles`` (none when it was
    never written)."""
    if not path.exists():
        return []
    return [line for line in path.read_text(errors="replace").splitlines()
            if all(needle in line for needle in needles)]


@contextlib.contextmanager
def tcpdump_on_lo(*arguments: str) -> Iterator[None]:
    """tcpdump on lo with ``arguments`` (``-w FILE``, rotation, a filter), from when it says it
    listens until half a second after the block (its last packets written), then stopped
    (as root: ``-Z root`` keeps its files and `-z` commands root's). SIGINT to tcpdump alone,
    not its group: a compressor ``-z`` started on a rotated file finishes it (given to the
    group, the interrupt left a file uncompressed under load)."""
    process = subprocess.Popen(
        ["tcpdump", "-i", "lo", "-n", "-U", "--immediate-mode", "-B", "16384", "-Z", "root",
         *arguments],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 10
        seen = ""
        while "listening on" not in seen and time.monotonic() < deadline:
            seen += process.stderr.readline()
        time.sleep(0.2)
        yield
    finally:
        time.sleep(0.5)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGINT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            stop_group(process, signal.SIGKILL)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on at ``host`` now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def capture_ports(path: Path, *ports: int) -> Iterator[None]:
    """tcpdump on ``ports`` of lo into ``path`` during the block, stopped once it has written
    a datagram sent after the block (at most 10 s): a tcpdump behind on a busy machine loses
    what it had not read when it is interrupted (the last answer, once in a few runs)."""
    marker, sentinel = os.urandom(16).hex().encode(), free_port()
    with tcpdump_on_lo("-w", str(path), " or ".join(
            [*(f"tcp port {port}" for port in ports), f"udp port {sentinel}"])):
        yield
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(marker, ("127.0.0.1", sentinel))
        deadline = time.monotonic() + 10
        while marker not in path.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.05)


def client_lines(diagnosis: Diagnosis, client: str) -> list[str]:
    """The attribution's lines for ``client`` (without its name). An attempt that succeeded
    has none: then the table's lines for the kind of its first finding that has one (a
    subprotocol not chosen, which only a client that hangs up makes a failure)."""
    lines = diagnosis.attribution.client_errors
    if not lines:
        kinds = [KIND_OF_FINDING[f.check] for f in diagnosis.findings if f.check in KIND_OF_FINDING]
        lines = client_errors(kinds[0], None) if kinds else ()
    return [line.removeprefix(f"{client}: ") for line in lines if line.startswith(f"{client}: ")]


def client_line(diagnosis: Diagnosis, client: str) -> str | None:
    """`client_lines`' one line, or None."""
    mine = client_lines(diagnosis, client)
    assert len(mine) <= 1, mine
    return mine[0] if mine else None


def printed_as(line: str, printed: str) -> bool:
    """Whether ``printed`` is ``line`` (its ``...`` standing for any text), or the line
    without its last ``(...)``, which says what the client did first or what else it may say.
    A Java exception's cause that ``line`` does not name may follow it: the JDK adds one
    by timing alone (a timeout's ``ConnectionExpiredException``, once in a few runs)."""
    candidates = [line]
    if line.endswith(")") and " (" in line:
        candidates.append(line[:line.rindex(" (")])
    printed = " ".join(printed.split())  # (a traceback's lines, as one)
    shown = [printed]
    if " (Caused by: " in printed and "Caused by: " not in line:
        shown.append(printed[:printed.index(" (Caused by: ")])
    return any(re.fullmatch(".*".join(map(re.escape, each.split("..."))), text)
               for each in candidates for text in shown)


def benchmark_capture(path: Path, size: int, seed: int, mix: str = "default") -> dict[str, Any]:
    """Writes ``size`` bytes of a benchmark mix (benchmarks/generate.py) to ``path``; its
    ground truth."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        from generate import generate
    finally:
        sys.path.pop(0)
    truth: dict[str, Any] = generate(str(path), size, seed=seed, concurrency=64, mix=mix)
    return truth


# The start of the raw socket servers the live tests run with ``python -c`` (their own lines
# follow): listening on 127.0.0.1:argv[1], each accept bounded by 30 s, "ready" printed once
# listening; `read_head` reads a request head, `switch` answers it with a correct 101, and
# `drain` waits until the client has gone.
# What a python websockets backend script (run with ``python -c``) adds after opening ``out``,
# a log file of its own: its server's log at debug (the request heads it read, "< NAME:
# VALUE", and its errors), one line each, for tests that hold it to what a proxy sent
WEBSOCKETS_LOGGED = r"""
import logging


class Written(logging.Handler):
    def emit(self, record):
        error = record.exc_info[1] if record.exc_info else None
        cause = f": {type(error).__name__}: {error}" if error is not None else ""
        out.write(f"logged {record.getMessage()}{cause}\n")


logging.getLogger("websockets.server").addHandler(Written())
logging.getLogger("websockets.server").setLevel(logging.DEBUG)
"""


RAW_SERVER = r"""
import base64, hashlib, socket, struct, sys, time
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen(4)
server.settimeout(30)


def read_head(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:  # (the client went before a whole head)
            raise ConnectionError("no request head")
        data += chunk
    return data


def switch(conn, head):
    key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
               if line.lower().startswith(b"sec-websocket-key:"))
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")


def drain(conn):
    try:
        while conn.recv(4096):
            pass
    except OSError:
        pass


print("ready", flush=True)
"""

# The raw server the WebSocket clients meet (tests/test_gorilla_nodews_live.py,
# tests/test_java_undici_clients_live.py): each connection's path says how it fails; argv[2]
# connections at most, each answered in a thread of its own (a client that keeps a connection
# open holds up none of the others). "/closed" reads the request and closes, "/reset" resets,
# "/silent" answers nothing, "/h2" answers in HTTP/2 frames; the paths of AFTER switch, then
# send that (a frame that breaks RFC 6455, nothing for "/abnormal"); a 101 a client should
# take ends with Close 1000 (those of CLOSED_AFTER).
_OK = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
FAILING_SERVER = RAW_SERVER + f"\nOK = {_OK!r}\n" + r"""
import threading
HEADS = {
    "/status403": b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n",
    "/status404": b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n",
    "/status426": b"HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Content-Length: 0\r\n",
    "/status500": b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n",
    "/redirect301": b"HTTP/1.1 301 Moved Permanently\r\nLocation: /status403\r\n"
                    b"Content-Length: 0\r\n",
    "/redirect302": b"HTTP/1.1 302 Found\r\nLocation: /status403\r\nContent-Length: 0\r\n",
    "/accept-wrong": OK + b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n",
    "/accept-missing": OK,
    "/upgrade-missing": b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nACCEPT",
    "/upgrade-wrong": OK.replace(b"websocket", b"chat") + b"ACCEPT",
    "/connection-missing": OK.replace(b"Connection: Upgrade\r\n", b"") + b"ACCEPT",
    "/connection-wrong": OK.replace(b"Upgrade\r\n", b"keep-alive\r\n") + b"ACCEPT",
    "/protocol": OK + b"ACCEPTSec-WebSocket-Protocol: chat.v9\r\n",
    "/none-chosen": OK + b"ACCEPT",
    "/extension": OK + b"ACCEPTSec-WebSocket-Extensions: x-foo\r\n",
    "/deflate": OK + b"ACCEPTSec-WebSocket-Extensions: permessage-deflate\r\n",
    "/deflate-params": OK + b"ACCEPTSec-WebSocket-Extensions: permessage-deflate; "
                       b"server_max_window_bits=7\r\n",
}
CLOSED_AFTER = ("/protocol", "/none-chosen", "/extension")
AFTER = {"/rsv1": bytes((0xC1, 2)) + b"hi", "/abnormal": b"",
         "/close1005": bytes((0x88, 2)) + (1005).to_bytes(2, "big"),
         "/close1008": bytes((0x88, 9)) + (1008).to_bytes(2, "big") + b"go away",
         # "hi" masked with the key 01 02 03 04; two bytes that are not UTF-8
         "/masked": bytes((0x81, 0x82, 1, 2, 3, 4, ord("h") ^ 1, ord("i") ^ 2)),
         "/utf8": bytes((0x81, 2, 0xFF, 0xFE))}
H2 = ("000012040000000000000300000080000400010000000500ffffff00000408000000000000ff0001"
      "0000080700000000000000000000000001")


def answer(conn):
    conn.settimeout(10)
    head = read_head(conn)
    path = head.split(b" ")[1].split(b"?")[0].decode()
    key = next((line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")), b"")
    digest = hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
    accept = b"Sec-WebSocket-Accept: " + base64.b64encode(digest) + b"\r\n"
    if path == "/reset":
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    elif path == "/h2":
        conn.sendall(bytes.fromhex(H2))
    elif path in AFTER:
        conn.sendall(OK + accept + b"\r\n")
        time.sleep(0.1)
        conn.sendall(AFTER[path])
        if path == "/abnormal":  # (its "hello" read: a FIN, not a reset)
            time.sleep(0.2)
            conn.recv(4096)
    elif path in HEADS:
        conn.sendall(HEADS[path].replace(b"ACCEPT", accept) + b"\r\n")
        if path in CLOSED_AFTER:
            time.sleep(0.1)
            conn.sendall(bytes((0x88, 2)) + (1000).to_bytes(2, "big"))
    if path not in ("/reset", "/closed", "/h2", "/abnormal"):
        drain(conn)
    conn.close()


def answered(conn):
    try:
        answer(conn)
    except OSError:
        conn.close()  # (a client that went first; a timeout)


for _ in range(int(sys.argv[2])):
    conn, _ = server.accept()
    threading.Thread(target=answered, args=(conn,)).start()
"""


def start_raw_server(script: str, *arguments: str) -> subprocess.Popen[bytes]:
    """A raw socket server: ``script`` (RAW_SERVER's lines, then its own; or any server that
    prints "ready" once it listens) run with ``arguments`` (the port first), returned once it
    says it listens. Stop it by its PID (`stop_group`)."""
    process = subprocess.Popen([sys.executable, "-c", script, *arguments],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    return process
