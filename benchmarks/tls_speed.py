"""TLS with keys against without: CPU seconds of `read --format jsonl`, and their ratio.

    python benchmarks/tls_speed.py                      # 200 MB and 1 GB, both versions mixed
    python benchmarks/tls_speed.py --sizes 200M --versions both,1.2,1.3 --rounds 3
    python benchmarks/tls_speed.py --sizes 200M --versions 1.3 --mixes downloads,chat

Captures come from generate_tls.py (written into --workdir, kept between runs). Each round
runs, side by side, the real CLI without keys and with `--keylog`, and with --plain the
per-segment path that reads every record (`Analysis(compiled=False)` through a small driver,
the CLI has no such option), under `/usr/bin/time`; the medians of CPU seconds (user +
system) and the largest peak RSS are printed as a Markdown table for benchmarks/README.md.
The machine is shared: compare within one run only.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
TIMEOUT = 1800

# The per-segment path that reads every record, for comparison (`--plain`).
_PLAIN = """
import sys
from analyzer.pipeline import Analysis
from analyzer.source import read_records
from analyzer.tls.keylog import load_keylog
run = Analysis(compiled=False, secrets=load_keylog(open(sys.argv[2], "rb").read()))
for _ in run.feed_records(read_records([sys.argv[1]], [])):
    pass
run.finish()
"""


def capture(workdir: Path, size: str, versions: str, mix: str = "downloads") -> Path:
    """The generate_tls.py capture of this size, versions and mix (made once per workdir)."""
    path = workdir / (f"tls-{size}-{versions}.pcap" if mix == "downloads"
                      else f"tls-{mix}-{size}-{versions}.pcap")
    if not path.exists():
        subprocess.run([sys.executable, str(HERE / "generate_tls.py"), str(path), "--size",
                        size, "--versions", versions, "--mix", mix], check=True,
                       timeout=TIMEOUT)
    return path


def measure(command: list[str], tree: Path = ROOT) -> tuple[float, int]:
    """(CPU seconds, peak RSS in MB) of one run of ``tree``'s analyzer (`python -m` finds the
    package in the working directory)."""
    done = subprocess.run(["/usr/bin/time", "-f", "%U %S %M", *command], cwd=tree,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          check=True, timeout=TIMEOUT)
    user, system, rss = done.stderr.strip().splitlines()[-1].split()
    return float(user) + float(system), int(rss) // 1024


def main() -> None:
    # The commands run as users run them: a PYTHONUNBUFFERED in the caller's environment
    # (some sandboxes set it) makes each output line a write system call of its own.
    os.environ.pop("PYTHONUNBUFFERED", None)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="200M,1G")
    parser.add_argument("--versions", default="both")
    parser.add_argument("--mixes", default="downloads",
                        help="generate_tls.py mixes, comma-separated: downloads (HTTPS "
                        "downloads, a WebSocket in five), chat (long-lived WebSockets)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--plain", action="store_true", help="also the per-segment path")
    parser.add_argument("--workdir", default="/tmp/ua-tls-speed")
    parser.add_argument("--trees", default=str(ROOT),
                        help="source trees to compare, comma-separated (each with its compiled "
                        "module built), run in turn within each round; default this one")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    trees = [Path(tree).resolve() for tree in args.trees.split(",")]
    print("| mix | capture | TLS versions | tree | without keys: CPU s, RSS MB | with --keylog "
          "| ratio |" + (" per-segment path | ratio |" if args.plain else "") + " load average |")
    print("|---|---|---|---|---|---|---:|" + ("---|---:|" if args.plain else "") + "---|")
    for mix, size, versions in itertools.product(
            args.mixes.split(","), args.sizes.split(","), args.versions.split(",")):
        path = capture(workdir, size, versions, mix)
        keys = str(path) + ".keys"
        base = [sys.executable, "-m", "analyzer", "read", str(path), "--format", "jsonl"]
        commands = {"without": base, "with": [*base, "--keylog", keys]}
        if args.plain:
            commands["plain"] = [sys.executable, "-c", _PLAIN, str(path), keys]
        results: dict[tuple[Path, str], list[tuple[float, int]]] = {
            (tree, name): [] for tree in trees for name in commands}
        loads = [os.getloadavg()[0]]
        for _ in range(args.rounds):  # side by side, so load moves all of them alike
            for tree in trees:
                for name, command in commands.items():
                    results[tree, name].append(measure(command, tree))
            loads.append(os.getloadavg()[0])
        for tree in trees:
            cpu = {name: statistics.median(r[0] for r in results[tree, name])
                   for name in commands}
            rss = {name: max(r[1] for r in results[tree, name]) for name in commands}
            row = (f"| {mix} | {size} | {versions} | {tree.name} | "
                   f"{cpu['without']:.2f} s, {rss['without']} MB | "
                   f"{cpu['with']:.2f} s, {rss['with']} MB | "
                   f"{cpu['with'] / cpu['without']:.2f}x |")
            if args.plain:
                row += (f" {cpu['plain']:.2f} s, {rss['plain']} MB | "
                        f"{cpu['plain'] / cpu['without']:.1f}x |")
            print(row + f" {min(loads):.1f}-{max(loads):.1f} |", flush=True)


if __name__ == "__main__":
    main()
