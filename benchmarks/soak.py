"""A live soak: `upgrade-analyzer live` watches real servers and clients on loopback for a
while; its memory must stay flat and its count of attempts exact.

Usage (as root: live capture needs CAP_NET_RAW)::

    python benchmarks/soak.py                          # 10 minutes at 200 handshakes/s
    python benchmarks/soak.py --duration 3600 --out /tmp/soak   # an hour
    python benchmarks/soak.py --duration 60 --rate 100 --sample 2

What runs, every process started here and stopped here by its PID (also on Ctrl-C/SIGTERM):

- one server process: a ``websockets`` server (``/ok`` accepted; ``/forbidden`` 403, ``/bad``
  400 when the client sends no Sec-WebSocket-Key, any other path 404), an ``aiohttp`` one
  (``/aio`` accepted with the good Origin, 403 with another; other paths 404), and a second
  ``websockets`` server that only nginx talks to;
- nginx (when installed) in front of that second server, proxying WebSocket upgrades;
- ``python -m analyzer live -i lo -f '<the front ports>' -F jsonl``: the upstream leg behind
  nginx is outside the filter, so each client handshake is one attempt.

The clients (asyncio, in this process) start handshakes at ``--rate`` per second, at most
``--concurrency`` at once, in a fixed rotation of kinds: successful ones through the
``websockets`` client (handshake, then a clean close), rejected ones over raw sockets (the
request, the whole response head, close). A handshake is counted only once the client has
seen its whole answer (the 101 and the close; the 4xx head); the others are counted apart as
incomplete and excuse at most as many attempts of their kind.

Every ``--sample`` seconds the analyzer's VmRSS (``/proc/PID/status``) is recorded, with the
handshakes made and the attempts the analyzer streamed so far (``--out``: ``rss.csv`` and
``result.json``). After the clients stop, the analyzer gets its response timeout and then
SIGINT; its summary gives the packets the kernel dropped.

The run FAILS (exit status 1) when
(a) RSS grew by more than ``--max-growth-mb`` (2 MB) over the judged window: the last 30
    minutes, or the last half of a shorter run, never its first 65 s (``WARMUP``: the
    reassembler's table of finished connections fills for a minute) (growth: the mean of the
    window's last three samples minus the mean of its first three, so one sample's noise does
    not decide), or
(b) any (server, path, verdict) count differs from what the clients made.
When the kernel dropped packets (the capture could not keep up: a loaded machine) a count
difference is reported as capture loss, status 3, not as an analyzer miscount.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

EXIT_OK, EXIT_FAILED, EXIT_ERROR, EXIT_CAPTURE_LOSS = 0, 1, 2, 3
RESPONSE_TIMEOUT = 2.0  # the analyzer's --response-timeout; the clients never leave one waiting
CLIENT_TIMEOUT = 10.0  # one handshake, from connect to close
# Not judged: the reassembler keeps each finished connection 60 s (late retransmissions must not
# open a new one), so at a steady rate its table, and RSS, fill during the first minute and are
# flat after it (benchmarks/README.md: the curve). Plus the response timeout and some slack.
WARMUP = 65.0
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


class Analyzer:
    """`analyzer live` in a subprocess; its JSONL attempts are counted as they arrive (and not
    kept), its standard error kept for the summary."""

    def __init__(self, procs: Processes, bpf: str, lifetime: float,
                 env: dict[str, str] | None = None) -> None:
        self.process = procs.start(
            [sys.executable, "-m", "analyzer", "live", "-i", "lo", "-f", bpf, "-F", "jsonl",
             "--response-timeout", str(RESPONSE_TIMEOUT), "--duration", str(lifetime)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env)
        self.counts: Counter[tuple[str, str, str]] = Counter()
        self.seen = 0
        self.bad_lines = 0
        self.stderr: list[str] = []
        self._listening = threading.Event()
        self._threads = [threading.Thread(target=self._read_out, daemon=True),
                         threading.Thread(target=self._read_err, daemon=True)]
        for thread in self._threads:
            thread.start()

    def _read_out(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                attempt = json.loads(line)
            except ValueError:
                self.bad_lines += 1
                continue
            self.counts[(attempt.get("server") or "", attempt.get("path") or "",
                         attempt.get("verdict") or "")] += 1
            self.seen += 1

    def _read_err(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            if len(self.stderr) < 2000:
                self.stderr.append(line)
            if "listening on" in line:
                self._listening.set()

    def wait_listening(self, timeout: float) -> None:
        if not self._listening.wait(timeout):
            raise RuntimeError("live did not start listening: " + "".join(self.stderr))

    def rss_kb(self) -> int | None:
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return None
        found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        return int(found.group(1)) if found else None

    def interrupt(self, timeout: float = 60.0) -> int:
        self.process.send_signal(signal.SIGINT)
        status = self.process.wait(timeout=timeout)
        for thread in self._threads:
            thread.join(timeout=10)
        return status

    def packets(self) -> tuple[int | None, int | None]:
        for line in self.stderr:
            if found := re.match(r"Packets: (\d+) received, (\d+) dropped", line):
                return int(found.group(1)), int(found.group(2))
        return None, None


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


# --- judging ---------------------------------------------------------------------------------

def growth_kb(samples: list[tuple[float, int]], window: float,
              warmup: float = 0.0) -> tuple[float, int]:
    """RSS growth over the last `window` seconds, none of the first `warmup` (mean of the last
    three samples minus mean of the first three in the window) and the number of samples in
    it."""
    if not samples:
        return 0.0, 0
    first_t = max(samples[-1][0] - window, warmup)
    inside = [rss for t, rss in samples if t >= first_t]
    if len(inside) < 2:
        return 0.0, len(inside)
    n = min(3, len(inside) // 2)
    return sum(inside[-n:]) / n - sum(inside[:n]) / n, len(inside)


def compare(the_kinds: list[Kind], ports: dict[str, int], made: Made,
            seen: Counter[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """One row per (server, path, verdict) made or seen, with its difference. An incomplete
    handshake of a kind excuses one extra attempt of that kind (the analyzer may have seen the
    request go out)."""
    expected: Counter[tuple[str, str, str]] = Counter()
    excused: Counter[tuple[str, str]] = Counter()
    names: dict[tuple[str, str, str], list[str]] = {}
    for kind in the_kinds:
        key = (f"127.0.0.1:{ports[kind.server]}", kind.path, kind.verdict)
        expected[key] += made.completed[kind.name]
        excused[key[:2]] += made.incomplete[kind.name] + made.wrong_status[kind.name]
        names.setdefault(key, []).append(kind.name)
    rows = []
    for key in sorted(set(expected) | set(seen)):
        diff = seen[key] - expected[key]
        ok = diff == 0 or 0 < diff <= excused[key[:2]]
        rows.append({"server": key[0], "path": key[1], "verdict": key[2],
                     "kinds": names.get(key, []), "made": expected[key], "seen": seen[key],
                     "excused": excused[key[:2]], "exact": ok})
    return rows


# --- main ------------------------------------------------------------------------------------

def soak(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="soak-"))
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="soak-nginx-"))
    use_nginx = args.nginx == "on" or (args.nginx == "auto" and shutil.which("nginx") is not None)
    the_kinds = kinds(use_nginx)
    procs = Processes()
    lifetime = args.duration + 300
    samples: list[tuple[float, int]] = []
    made = Made()
    result: dict[str, Any] = {"duration": args.duration, "rate": args.rate,
                              "nginx": use_nginx, "out": str(out)}
    status = EXIT_ERROR
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        ports = start_servers(procs, lifetime, workdir, use_nginx)
        fronts = sorted({ports[kind.server] for kind in the_kinds})
        bpf = " or ".join(f"tcp port {port}" for port in fronts)
        env = dict(os.environ)
        if args.tracemalloc:
            env["UPGRADE_ANALYZER_TRACEMALLOC"] = f"{out / 'tracemalloc.txt'}:{args.sample * 6}"
        analyzer = Analyzer(procs, bpf, lifetime, env)
        analyzer.wait_listening(60.0)
        result.update(ports=ports, filter=bpf, analyzer_pid=analyzer.process.pid)
        print(f"soak: {args.duration:.0f} s at {args.rate:g}/s, ports {ports}, "
              f"analyzer pid {analyzer.process.pid}, output {out}", file=sys.stderr, flush=True)
        with (out / "rss.csv").open("w", newline="") as curve_file:
            curve = csv.writer(curve_file)
            curve.writerow(["seconds", "rss_kb", "handshakes_made", "attempts_seen"])
            status = asyncio.run(_drive(args, the_kinds, ports, analyzer, made, samples, curve,
                                        curve_file))
        exit_status = analyzer.interrupt()
        received, dropped = analyzer.packets()
        rows = compare(the_kinds, ports, made, analyzer.counts)
        window = min(1800.0, args.duration / 2)
        growth, in_window = growth_kb(samples, window, WARMUP)
        exact = all(row["exact"] for row in rows) and analyzer.bad_lines == 0
        grew = growth > args.max_growth_mb * 1024
        result.update(
            analyzer_exit=exit_status, packets_received=received, packets_dropped=dropped,
            handshakes_started=made.started, handshakes_made=made.total,
            attempts_seen=analyzer.seen, incomplete=dict(made.incomplete),
            wrong_status=dict(made.wrong_status), client_errors=dict(made.errors),
            counts=rows, exact=exact, window_seconds=window, samples_in_window=in_window,
            growth_kb=round(growth, 1), max_growth_kb=args.max_growth_mb * 1024,
            rss_kb={f"{t:.0f}": rss for t, rss in _marks(samples)},
            summary=[line.rstrip("\n") for line in analyzer.stderr
                     if not line.startswith("upgrade-analyzer: listening")][-20:])
        if in_window < 6:  # too short to judge the growth: an error, not a pass
            result["error"] = (f"{in_window} RSS samples after the {WARMUP:.0f} s warm-up: "
                               "run longer or sample more often")
            status = EXIT_ERROR
        if grew:
            status = EXIT_FAILED
        elif not exact:
            status = EXIT_CAPTURE_LOSS if dropped else EXIT_FAILED
        result["verdict"] = {EXIT_OK: "passed", EXIT_FAILED: "FAILED",
                             EXIT_CAPTURE_LOSS: "capture loss", EXIT_ERROR: "error"}[status]
        if not exact and dropped:
            result["note"] = (f"the kernel dropped {dropped} packets: the count differences are "
                              "the capture's loss, not an analyzer miscount")
        if grew:
            result["note_rss"] = f"RSS grew {growth / 1024:.2f} MB in the last {window:.0f} s"
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        procs.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
        (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    _print_result(result)
    return status


def _marks(samples: list[tuple[float, int]]) -> list[tuple[float, int]]:
    """The samples nearest the start, 1, 10, 30 and 60 minutes and the end."""
    if not samples:
        return []
    marks = []
    for goal in (0.0, 60.0, 600.0, 1800.0, 3600.0):
        if goal <= samples[-1][0]:
            marks.append(min(samples, key=lambda s, g=goal: abs(s[0] - g)))  # type: ignore[misc]
    marks.append(samples[-1])
    return sorted(set(marks))


async def _drive(args: argparse.Namespace, the_kinds: list[Kind], ports: dict[str, int],
                 analyzer: Analyzer, made: Made, samples: list[tuple[float, int]],
                 curve: Any, curve_file: Any) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    start = time.monotonic()

    async def sampler() -> None:
        while True:
            rss = analyzer.rss_kb()
            if rss is None:
                return
            elapsed = time.monotonic() - start
            samples.append((elapsed, rss))
            curve.writerow([f"{elapsed:.1f}", rss, made.total, analyzer.seen])
            curve_file.flush()
            await asyncio.sleep(args.sample)

    sampling = asyncio.create_task(sampler())
    try:
        await run_clients(the_kinds, ports, args.rate, args.duration, args.concurrency, made,
                          stop)
        # The analyzer decides the last attempts at their close or their response timeout.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), RESPONSE_TIMEOUT + 3)
    finally:
        sampling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampling
    return EXIT_ERROR if stop.is_set() else EXIT_OK


def _print_result(result: dict[str, Any]) -> None:
    print(json.dumps({k: v for k, v in result.items() if k not in ("counts", "summary")},
                     indent=2))
    for row in result.get("counts", []):
        mark = "ok" if row["exact"] else "MISCOUNT"
        print(f"{mark:8} {row['server']:>16} {row['path']:16} {row['verdict']:12} "
              f"made {row['made']:>8} seen {row['seen']:>8}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of traffic")
    parser.add_argument("--rate", type=float, default=200.0, help="handshakes per second")
    parser.add_argument("--concurrency", type=int, default=100,
                        help="handshakes in flight at most")
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument("--max-growth-mb", type=float, default=2.0)
    parser.add_argument("--nginx", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--out", help="directory for rss.csv and result.json (default: a new "
                        "temporary one)")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="have the analyzer write tracemalloc differences to "
                        "OUT/tracemalloc.txt (slower; for finding a leak)")
    args = parser.parse_args(argv)
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        print("soak: live capture needs root (CAP_NET_RAW)", file=sys.stderr)
        return EXIT_ERROR
    return soak(args)


if __name__ == "__main__":
    sys.exit(main())
