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
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from soak_traffic import Kind, Made, Processes, kinds, run_clients, start_servers

ROOT = Path(__file__).resolve().parent.parent

EXIT_OK, EXIT_FAILED, EXIT_ERROR, EXIT_CAPTURE_LOSS = 0, 1, 2, 3
RESPONSE_TIMEOUT = 2.0  # the analyzer's --response-timeout; the clients never leave one waiting
# Not judged: the reassembler keeps each finished connection 60 s (late retransmissions must not
# open a new one), so at a steady rate its table, and RSS, fill during the first minute and are
# flat after it (benchmarks/README.md: the curve). Plus the response timeout and some slack.
WARMUP = 65.0
CATCH_UP_QUIET, CATCH_UP_MOST = 10.0, 120.0  # seconds; see _drive


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
    _interrupt_on_sigterm()
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
        _interrupt_on_sigterm()  # asyncio.run put back the default (killing, no `finally`)
        exit_status = analyzer.interrupt()
        received, dropped = analyzer.packets()
        rows = compare(the_kinds, ports, made, analyzer.counts)
        # An interrupted run is judged on the half it ran.
        window = min(1800.0, (samples[-1][0] if samples else args.duration) / 2)
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


async def _catch_up(analyzer: Analyzer, made: Made) -> None:
    start = last_change = time.monotonic()
    last_seen = analyzer.seen
    while analyzer.seen < made.total and time.monotonic() - start < CATCH_UP_MOST:
        await asyncio.sleep(0.5)
        if analyzer.seen != last_seen:
            last_seen, last_change = analyzer.seen, time.monotonic()
        elif time.monotonic() - last_change > CATCH_UP_QUIET:
            break
    await asyncio.sleep(RESPONSE_TIMEOUT + 1)  # what is still undecided gets its timeout


def _interrupt_on_sigterm() -> None:
    """SIGTERM (`timeout`, a test's clean-up) outside the traffic loop unwinds like Ctrl-C, so
    the `finally` stops every child; inside it, it only ends the traffic early."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


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
        # The analyzer decides the last attempts at their close or their response timeout,
        # and on a loaded machine it may be seconds behind: wait until it has streamed as many
        # as were made, or has streamed nothing new for CATCH_UP_QUIET seconds (a miscount
        # then shows in the comparison), never more than CATCH_UP_MOST.
        await _catch_up(analyzer, made)
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
