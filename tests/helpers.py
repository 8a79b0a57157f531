"""Shared test helpers: run the real pipeline, or the real command line, on capture files."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

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
        data += conn.recv(4096)
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


def start_raw_server(script: str, *arguments: str) -> subprocess.Popen[bytes]:
    """A raw socket server: ``script`` (RAW_SERVER's lines, then its own; or any server that
    prints "ready" once it listens) run with ``arguments`` (the port first), returned once it
    says it listens. Stop it by its PID (`stop_group`)."""
    process = subprocess.Popen([sys.executable, "-c", script, *arguments],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    return process
