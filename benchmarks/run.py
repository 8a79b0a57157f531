"""Times `upgrade-analyzer read` against tshark and a floor loop, and checks its findings.

Usage::

    python benchmarks/run.py                  # 100 MB and 1 GB of both mixes, 3 runs each
    python benchmarks/run.py --quick          # 50 MB of each mix: a smoke run, < 2 minutes
    python benchmarks/run.py --sizes 200M --runs 5 --workdir /tmp/ub

Captures are generated (``benchmarks/generate.py``, seeded) into ``--workdir`` (default
``/tmp/upgrade-analyzer-bench``) unless already there; they are never written into the repo.

For each capture, every round runs the three commands once, in an order that rotates from
round to round (so that none always runs on a warm or cold cache), each as a child process
measured with ``wait4``: wall seconds, CPU seconds (user + system), peak RSS. Reported are
medians over the rounds (peak RSS: the largest). The commands:

- ``ours``: ``python -m analyzer read FILE --format jsonl`` (attempts streamed to a file);
- ``tshark``: ``tshark -r FILE --disable-protocol pgsql -Y 'http.upgrade ||
  http.response.code == 101' -T fields ...``
  (skipped when tshark is not installed);
- ``floor``: a Python loop that only walks the records (record header unpacked, record bytes
  sliced) with the same 1 MiB reads as our reader: no reader in Python can be faster.

Then ours is checked against the generator's ground truth (every handshake found, with the
expected verdict and primary reason; nothing else listed), and tshark's output is checked for
which of the upgrade requests it showed. Finally ``read --jobs`` is timed on several
independent captures, with 1 and with ``nproc`` workers.

The report is Markdown on standard output (also saved as ``report.md`` in the workdir, with
the raw numbers in ``results.json``). Exit status 1 when our findings do not match the truth.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import struct
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from generate import MIXES, SCENARIOS, generate, parse_size  # noqa: E402

TSHARK_FILTER = "http.upgrade || http.response.code == 101"
TSHARK_FIELDS = ("frame.number", "ip.src", "tcp.srcport", "ip.dst", "tcp.dstport",
                 "http.upgrade", "http.response.code")
# Scenarios whose request carries an Upgrade header (tshark's filter can only see those).
UPGRADE_SCENARIOS = {name for name in SCENARIOS
                     if name not in ("plain_get_400", "refused", "syn_unanswered")}


@dataclass
class Measure:
    wall: float
    cpu: float
    rss_mb: float
    status: int


@dataclass
class ToolResult:
    name: str
    command: list[str]
    runs: list[Measure] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return statistics.median(m.wall for m in self.runs)

    @property
    def cpu(self) -> float:
        return statistics.median(m.cpu for m in self.runs)

    @property
    def rss_mb(self) -> float:
        return max(m.rss_mb for m in self.runs)


def measure(command: list[str], stdout: Path, stderr: Path) -> Measure:
    """Runs a command to completion; wall, CPU and peak RSS of that child alone."""
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err, cwd=REPO)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)  # already reaped by wait4
    return Measure(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024,
                   child.returncode)


# --- the floor ---------------------------------------------------------------------------------


def floor_walk(path: str) -> int:
    """Walks a classic pcap file's records: header unpacked, bytes sliced, nothing else."""
    with open(path, "rb", buffering=0) as f:
        head = f.read(24)
        order = "<" if head[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        unpack = struct.Struct(order + "IIII").unpack_from
        buf = b""
        pos = 0
        count = 0
        while chunk := f.read(1 << 20):
            buf = buf[pos:] + chunk
            pos = 0
            end = len(buf)
            while end - pos >= 16:
                _, _, incl, _ = unpack(buf, pos)
                stop = pos + 16 + incl
                if stop > end:
                    break
                data = buf[pos + 16 : stop]
                del data
                pos = stop
                count += 1
    return count


# --- checks ------------------------------------------------------------------------------------


def check_ours(jsonl: Path, stderr: Path, truth: dict) -> dict:
    """Our findings against the ground truth, matched by client endpoint."""
    found = {}
    for line in jsonl.read_text().splitlines():
        attempt = json.loads(line)
        decided = found.get(attempt["client"])
        if attempt.get("event") == "ended" and decided is not None:
            # a connection followed to its end: its final verdict, and the life findings as
            # its reasons when its end added any (a normal end keeps the decided ones)
            attempt = {**decided, "verdict": attempt["verdict"],
                       "reasons": attempt["reasons"] or decided["reasons"]}
        found[attempt["client"]] = attempt
    summary = stderr.read_text()
    # Connection attempts that never reached HTTP past the first 1,000 are counted by reason in
    # the summary instead of listed (analyzer/values.py MAX_LISTED_TCP_ATTEMPTS): a refused or
    # unanswered connection of the truth not listed must be among those counts.
    unlisted: Counter[str] = Counter()
    line = re.search(r"Connection attempts not listed[^:]*: \d+ \(([^)]*)\)", summary)
    for part in (line.group(1).split(", ") if line else []):
        reason, _, n = part.rpartition(" x")
        unlisted[reason] += int(n)
    mismatches = []
    counted = 0
    per_scenario: Counter[str] = Counter()
    for expected in truth["attempts"]:
        got = found.pop(expected["client"], None)
        verdict = got["verdict"] if got else None
        reason = (got["reasons"] or [None])[0] if got else None
        if got is None and unlisted[expected["reason"]] > 0 and expected["scenario"] in (
                "refused", "syn_unanswered"):
            unlisted[expected["reason"]] -= 1
            counted += 1
            per_scenario[expected["scenario"]] += 1
        elif (verdict, reason) != (expected["verdict"], expected["reason"]):
            mismatches.append({**expected, "got_verdict": verdict, "got_reason": reason})
        else:
            per_scenario[expected["scenario"]] += 1
    frames = re.search(r"Frames: (\d+)", summary)
    ordinary = re.search(r"ordinary HTTP exchanges: (\d+)", summary)
    return {
        "expected": len(truth["attempts"]),
        "matched": len(truth["attempts"]) - len(mismatches),
        "counted_not_listed": counted,
        "unlisted_left": sum(unlisted.values()),  # counted by us, absent from the truth
        "mismatches": mismatches[:20],
        "unexpected": [a["client"] for a in found.values()][:20],
        "per_scenario": dict(sorted(per_scenario.items())),
        "frames_ok": frames is not None and int(frames.group(1)) == truth["frames"],
        "ordinary_ok": ordinary is not None
        and int(ordinary.group(1)) == truth["ordinary_http_exchanges"],
    }


def check_tshark(fields: Path, truth: dict) -> dict:
    """Which upgrade requests of the truth tshark's filter showed (by client endpoint)."""
    seen = set()
    for line in fields.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 5:
            seen.add(f"{parts[1]}:{parts[2]}")
            seen.add(f"{parts[3]}:{parts[4]}")
    total: Counter[str] = Counter()
    shown: Counter[str] = Counter()
    for expected in truth["attempts"]:
        if expected["scenario"] in UPGRADE_SCENARIOS:
            total[expected["delivery"]] += 1
            shown[expected["delivery"]] += expected["client"] in seen
    return {
        "upgrade_requests": sum(total.values()),
        "shown": sum(shown.values()),
        "by_delivery": {d: f"{shown[d]}/{total[d]}" for d in sorted(total)},
    }


# --- the runs ----------------------------------------------------------------------------------


def ensure_capture(workdir: Path, size: int, seed: int,
                   handshake_weight: float | None = None,
                   mix: str = "default") -> tuple[Path, dict]:
    tag = "" if mix == "default" else f"-{mix}"
    tag += "" if handshake_weight is None else f"-hw{handshake_weight:g}"
    path = workdir / f"bench-{size // 1_000_000}M-seed{seed}{tag}.pcap"
    truth_path = Path(str(path) + ".truth.json")
    if not (path.exists() and truth_path.exists()):
        started = time.perf_counter()
        truth = generate(str(path), size, seed, concurrency=64,
                         handshake_weight=handshake_weight, mix=mix)
        truth_path.write_text(json.dumps(truth, indent=1))
        print(f"# generated {path} ({truth['bytes'] / 1e6:.0f} MB, {truth['frames']} frames) "
              f"in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return path, json.loads(truth_path.read_text())


def write_as_pcapng(pcap_path: Path, ng_path: Path) -> None:
    """The same records as a pcapng file (one Ethernet interface, microseconds), streamed:
    what Wireshark and dumpcap would have saved. For timing `read` on pcapng."""
    with open(pcap_path, "rb") as src, open(ng_path, "wb") as dst:
        head = src.read(24)
        linktype = struct.unpack_from("<I", head, 20)[0] & 0xFFFF
        dst.write(_ng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
        dst.write(_ng_block(1, struct.pack("<HHI", linktype, 0, 262144)))
        buf, pos = b"", 0
        while chunk := src.read(1 << 20):
            buf, pos = buf[pos:] + chunk, 0
            blocks = []
            while len(buf) - pos >= 16:
                sec, usec, incl, orig = struct.unpack_from("<IIII", buf, pos)
                if pos + 16 + incl > len(buf):
                    break
                ticks = sec * 1_000_000 + usec
                blocks.append(_ng_block(6, struct.pack(
                    "<IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, incl, orig)
                    + buf[pos + 16 : pos + 16 + incl]))
                pos += 16 + incl
            dst.write(b"".join(blocks))


def _ng_block(kind: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    return struct.pack("<II", kind, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


def bench_capture(path: Path, truth: dict, runs: int, use_tshark: bool, workdir: Path,
                  formats: bool = False) -> dict:
    out = workdir / "out"
    out.mkdir(exist_ok=True)
    ng_path = path.with_suffix(".pcapng")
    if not ng_path.exists():
        write_as_pcapng(path, ng_path)
    # --tcp: the ground truth has refused and unanswered connections, listed only with it
    read = [sys.executable, "-m", "analyzer", "read", "--tcp"]
    tools = [
        ToolResult("floor", [sys.executable, str(HERE / "run.py"), "--floor", str(path)]),
        ToolResult("ours", [*read, str(path), "--format", "jsonl"]),
        # The default output (a table sorted by frame, proxy legs correlated: every attempt
        # kept until the end) and the same capture as pcapng, for users' usual cases.
        ToolResult("ours, table", [*read, str(path)]),
        ToolResult("ours, pcapng", [*read, str(ng_path), "--format", "jsonl"]),
    ]
    if formats:  # the other sorted formats, for their peak RSS
        tools += [ToolResult(f"ours, {f}", [*read, str(path), "--format", f])
                  for f in ("json", "csv")]
    if use_tshark:
        # The PostgreSQL dissector is off: its heuristic tries every TCP payload and more than
        # doubles tshark's time on these captures, without changing what the filter shows.
        command = ["tshark", "-r", str(path), "--disable-protocol", "pgsql", "-Y", TSHARK_FILTER,
                   "-T", "fields"]
        for name in TSHARK_FIELDS:
            command += ["-e", name]
        tools.append(ToolResult("tshark", command))
    for round_ in range(runs):
        order = tools[round_ % len(tools):] + tools[: round_ % len(tools)]
        for tool in order:
            stem = tool.name.replace(", ", "-")
            m = measure(tool.command, out / f"{stem}.out", out / f"{stem}.err")
            if m.status != 0:
                raise SystemExit(f"{tool.name} failed ({m.status}): "
                                 f"{(out / f'{tool.name}.err').read_text()[-500:]}")
            tool.runs.append(m)
            print(f"# {path.name} round {round_ + 1}: {tool.name} {m.wall:.2f} s",
                  file=sys.stderr)
    result = {
        "mix": truth.get("mix", "default"),
        "file": str(path),
        "mb": path.stat().st_size / 1e6,
        "frames": truth["frames"],
        "tools": {t.name: {"command": t.command, "wall": t.wall, "cpu": t.cpu,
                           "rss_mb": t.rss_mb, "runs": [asdict(m) for m in t.runs]}
                  for t in tools},
        "ours_vs_truth": check_ours(out / "ours.out", out / "ours.err", truth),
        "pcapng_vs_truth": check_ours(out / "ours-pcapng.out", out / "ours-pcapng.err", truth),
    }
    if use_tshark:
        result["tshark_vs_truth"] = check_tshark(out / "tshark.out", truth)
    return result


def bench_jobs(workdir: Path, files: int, size: int, runs: int) -> dict:
    paths = [str(ensure_capture(workdir, size, 100 + i)[0]) for i in range(files)]
    workers = os.cpu_count() or 1
    results = {}
    for jobs in (1, workers):
        command = [sys.executable, "-m", "analyzer", "read", *paths, "--format", "jsonl",
                   "--jobs", str(jobs)]
        walls = [measure(command, workdir / "out" / "jobs.out", workdir / "out" / "jobs.err")
                 for _ in range(runs)]
        results[jobs] = statistics.median(m.wall for m in walls)
    return {"files": files, "mb_each": size / 1e6, "workers": workers,
            "wall_by_jobs": results, "speedup": results[1] / results[workers]}


def prepare_ours() -> bool:
    """Byte-compiles the analyzer as an install does (pip writes .pyc files; a source tree run
    with PYTHONDONTWRITEBYTECODE=1 would compile every module on every run, ≈ 0.07 s), and
    tells whether the compiled fast path (analyzer/decode/_fastpath.pyx) is built. The code
    of the dataclasses' generated methods and the compiled regular expressions are cached the
    same way (analyzer/startup_cache.py)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "analyzer")],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, "-m", "analyzer.startup_cache"], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL)
    probe = subprocess.run(
        [sys.executable, "-c",
         "from analyzer.decode.decoder import FASTPATH_COMPILED as c; print(c)"],
        cwd=REPO, capture_output=True, text=True, check=True)
    return probe.stdout.strip() == "True"


def machine() -> dict:
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        total_kb = int(f.readline().split()[1])
    tshark = shutil.which("tshark")
    version = ""
    if tshark:
        version = subprocess.run([tshark, "--version"], capture_output=True, text=True,
                                 check=False).stdout.splitlines()[0]
    return {"nproc": os.cpu_count(), "memory_gb": round(total_kb / 2**20, 1), "cpu": model,
            "python": platform.python_version(), "tshark": version}


# --- the report --------------------------------------------------------------------------------


def report(results: list[dict], jobs: dict | None, info: dict) -> str:
    lines = [f"Machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory_gb']} GiB RAM, "
             f"Python {info['python']}; {info['tshark'] or 'tshark not installed'}; "
             "compiled fast path: "
             f"{'built' if info.get('fastpath_compiled') else 'NOT built (pure Python)'}", ""]
    lines += ["| mix | capture | frames | tool | wall s | CPU s | frames/s | MB/s | peak RSS MB "
              "| wall vs ours |", "|---|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    names = ("ours", "ours, table", "ours, json", "ours, csv", "ours, pcapng", "tshark", "floor")
    for r in results:
        ours = r["tools"]["ours"]["wall"]
        for name in names:
            t = r["tools"].get(name)
            if t is None:
                continue
            lines.append(
                f"| {r['mix']} | {r['mb']:.0f} MB | {r['frames']} | {name} | {t['wall']:.2f} | "
                f"{t['cpu']:.2f} | {r['frames'] / t['wall']:,.0f} | {r['mb'] / t['wall']:.0f} | "
                f"{t['rss_mb']:.0f} | {t['wall'] / ours:.2f}x |")
    lines.append("")
    for r in results:
        t = r["tools"]
        check = r["ours_vs_truth"]
        line = (f"- {r['mix']} mix, {r['mb']:.0f} MB: ours "
                f"{t['ours']['wall'] / t['floor']['wall']:.1f}x the floor's time "
                f"({t['ours']['cpu'] / t['floor']['cpu']:.1f}x its CPU), "
                f"{1e6 * t['ours']['wall'] / r['frames']:.2f} µs/frame, "
                f"{1e3 * t['ours']['cpu'] / max(1, check['expected']):.2f} ms CPU per handshake")
        if "tshark" in t:
            line += (f"; tshark takes {t['tshark']['wall'] / t['ours']['wall']:.1f}x ours "
                     f"({t['tshark']['cpu'] / t['ours']['cpu']:.1f}x the CPU)")
        lines.append(line)
        lines.append(f"  - ground truth: {check['matched']}/{check['expected']} handshakes "
                     f"with the expected verdict and primary reason "
                     f"({check.get('counted_not_listed', 0)} of them refused or unanswered "
                     f"connections counted, not listed, past the first 1,000), "
                     f"{len(check['unexpected'])} unexpected attempts, frame count "
                     f"{'ok' if check['frames_ok'] else 'WRONG'}, ordinary exchanges "
                     f"{'ok' if check['ordinary_ok'] else 'WRONG'}")
        ng = r.get("pcapng_vs_truth")
        if ng is not None:
            lines.append(f"  - the same capture as pcapng: {ng['matched']}/{ng['expected']} "
                         f"handshakes as expected, {len(ng['unexpected'])} unexpected")
        for m in check["mismatches"][:5]:
            lines.append(f"  - MISMATCH {m['scenario']} ({m['delivery']}) {m['client']}: "
                         f"expected {m['verdict']}/{m['reason']}, got "
                         f"{m['got_verdict']}/{m['got_reason']}")
        if "tshark_vs_truth" in r:
            ts = r["tshark_vs_truth"]
            by = ", ".join(f"{k} {v}" for k, v in ts["by_delivery"].items())
            lines.append(f"  - tshark showed {ts['shown']}/{ts['upgrade_requests']} upgrade "
                         f"requests ({by})")
    for mix in dict.fromkeys(r["mix"] for r in results):
        runs = [r for r in results if r["mix"] == mix]
        if len(runs) > 1:
            a, b = runs[0], runs[-1]
            per = [1e6 * r["tools"]["ours"]["wall"] / r["frames"] for r in (a, b)]
            lines.append(f"- linearity ({mix}): {b['frames'] / a['frames']:.1f}x the frames took "
                         f"{b['tools']['ours']['wall'] / a['tools']['ours']['wall']:.1f}x the "
                         f"time ({per[0]:.2f} → {per[1]:.2f} µs/frame, startup included)")
    slower = slowest_mix(results)
    if slower:
        lines.append(f"- the slower mix per byte: **{slower}**")
    if jobs:
        walls = ", ".join(f"--jobs {k}: {v:.2f} s" for k, v in jobs["wall_by_jobs"].items())
        lines.append(f"- `read --jobs` on {jobs['files']} independent {jobs['mb_each']:.0f} MB "
                     f"captures: {walls}; speed-up {jobs['speedup']:.2f}x on "
                     f"{jobs['workers']} CPUs")
    return "\n".join(lines) + "\n"


def slowest_mix(results: list[dict]) -> str | None:
    """The mix on which ours spends the most CPU per MB (largest capture of each mix)."""
    if len({r["mix"] for r in results}) < 2:
        return None
    largest: dict[str, dict] = {}
    for r in results:
        if r["mb"] >= largest.get(r["mix"], {"mb": 0})["mb"]:
            largest[r["mix"]] = r
    return max(largest, key=lambda m: largest[m]["tools"]["ours"]["cpu"] / largest[m]["mb"])


def main(argv: list[str] | None = None) -> int:
    # The commands run as users run them: a PYTHONUNBUFFERED in the caller's environment
    # (some sandboxes set it) makes each output line a write system call of its own.
    os.environ.pop("PYTHONUNBUFFERED", None)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="50 MB of each mix, 3 rounds, --jobs on 2 x 20 MB (< 2 minutes)")
    parser.add_argument("--sizes", help="capture sizes, comma-separated (default 100M,1G)")
    parser.add_argument("--runs", type=int, help="rounds per capture (default 3)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", default="/tmp/upgrade-analyzer-bench")
    parser.add_argument("--no-tshark", action="store_true", help="do not time tshark")
    parser.add_argument("--no-jobs", action="store_true", help="do not time read --jobs")
    parser.add_argument("--handshake-weight", type=float, metavar="W",
                        help="handshake share of the generated mix (default 0.5: dense; "
                             "0.02: proxy-like), see generate.py")
    parser.add_argument("--mixes", default="default,dense",
                        help=f"generated mixes, comma-separated, side by side (default both; "
                             f"of {', '.join(sorted(MIXES))}), see generate.py --mix")
    parser.add_argument("--formats", action="store_true",
                        help="also time --format json and csv (their peak RSS)")
    parser.add_argument("--floor", metavar="FILE", help=argparse.SUPPRESS)  # the floor child
    args = parser.parse_args(argv)
    if args.floor:
        print(floor_walk(args.floor))
        return 0
    sizes = [parse_size(s) for s in (args.sizes or ("50M" if args.quick else "100M,1G"))
             .split(",")]
    runs = args.runs or 3
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    use_tshark = not args.no_tshark and shutil.which("tshark") is not None
    info = machine()
    info["fastpath_compiled"] = prepare_ours()
    results = []
    for size in sizes:
        for mix in args.mixes.split(","):
            path, truth = ensure_capture(workdir, size, args.seed, args.handshake_weight, mix)
            results.append(bench_capture(path, truth, runs, use_tshark, workdir, args.formats))
    jobs = None
    if not args.no_jobs:
        files, size = (2, 20_000_000) if args.quick else (4, 100_000_000)
        jobs = bench_jobs(workdir, files, size, runs)
    text = report(results, jobs, info)
    print(text)
    (workdir / "report.md").write_text(text)
    (workdir / "results.json").write_text(
        json.dumps({"machine": info, "captures": results, "jobs": jobs}, indent=1))
    ok = all(r[check]["matched"] == r[check]["expected"] and not r[check]["unexpected"]
             and not r[check]["unlisted_left"]
             for r in results for check in ("ours_vs_truth", "pcapng_vs_truth"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
