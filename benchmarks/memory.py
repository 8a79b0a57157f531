"""Peak memory of `upgrade-analyzer read` on hostile captures and the benchmark mixes.

    python benchmarks/memory.py                          # the whole curve (about an hour)
    python benchmarks/memory.py --cases storm --sizes 10000 --formats table,jsonl
    python benchmarks/memory.py --mixes                  # both mixes, 100M/1G/3G, every format

Cases (generators in fuzz/hostile.py, written into --workdir, never into the repository):
`storm` N rejected handshakes (a reconnect storm: 7 frames each, 403), `flood` N SYNs from
distinct sources, `open` N WebSocket connections switched and left open to the end, `long` N
rejected handshakes whose paths are each 8,000 bytes and distinct (what the report remembers
must not keep them).
`default` and `dense` are the benchmark mixes of benchmarks/generate.py (`--mix`, seed 1), their
sizes in bytes (`100M`, `1G`, `3G`); `--mixes` runs both at those sizes in every format.
Each run is the real CLI, `python3 -m analyzer read FILE -F FORMAT > /dev/null` (the format
`summary-only` is `-F table --summary-only`), one at a time, under `/usr/bin/time -f '%M %U
%S'`; the table printed is Markdown for benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATORS = {"storm": "rejected-storm", "flood": "syn-flood", "open": "open-websockets",
              "long": "long-target-storm"}
MIXES = ("default", "dense")  # benchmarks/generate.py --mix
FORMATS = ("table", "json", "csv", "markdown", "jsonl")
EVERY_FORMAT = ("table", "json", "csv", "jsonl", "markdown", "html", "summary-only")
TIMEOUT = 3600  # seconds per run


def capture(workdir: Path, case: str, size: str) -> Path:
    path = workdir / f"{case}-{size}.pcap"
    if not path.exists():  # generated once, kept between runs of this script
        partial = path.with_suffix(".partial")
        if case in MIXES:
            command = [sys.executable, "benchmarks/generate.py", str(partial), "--size", size,
                       "--seed", "1", "--mix", case, "--truth", os.devnull]
        else:
            command = [sys.executable, "-m", "fuzz.hostile", GENERATORS[case], str(partial),
                       str(int(size))]
        subprocess.run(command, cwd=ROOT, check=True, timeout=TIMEOUT,
                       stdout=subprocess.DEVNULL)
        partial.rename(path)
    return path


def measure(path: Path, fmt: str, extra: list[str]) -> tuple[float, float, float, int]:
    """(peak RSS in MB, CPU seconds, wall seconds, exit status) of one run of the CLI."""
    chosen = ["-F", "table", "--summary-only"] if fmt == "summary-only" else ["-F", fmt]
    command = ["/usr/bin/time", "-f", "peak %M %U %S", sys.executable, "-m", "analyzer",
               "read", str(path), *chosen, *extra]
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, timeout=TIMEOUT, check=False)
    wall = time.monotonic() - started
    found = re.search(r"^peak (\d+) ([\d.]+) ([\d.]+)$", done.stderr, re.MULTILINE)
    if not found:
        return float("nan"), float("nan"), wall, done.returncode
    return (int(found.group(1)) / 1024, float(found.group(2)) + float(found.group(3)), wall,
            done.returncode)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="storm,flood,open",
                        help="storm, flood, open, long (hostile); default, dense (the mixes)")
    parser.add_argument("--sizes", default="10000,100000,1000000",
                        help="attempts or connections; bytes (100M, 1G) for the mixes")
    parser.add_argument("--formats", default=",".join(FORMATS),
                        help="for storm and the mixes (also html, summary-only); flood and "
                        "open run as table and jsonl")
    parser.add_argument("--mixes", action="store_true",
                        help="shorthand: --cases default,dense --sizes 100M,1G,3G and every "
                        "format (issue 15's memory target)")
    parser.add_argument("--workdir", default="/tmp/ubmem")
    parser.add_argument("--extra", default="", help="more options for `read`, space-separated")
    args = parser.parse_args(argv)
    if args.mixes:
        args.cases, args.sizes = ",".join(MIXES), "100M,1G,3G"
        args.formats = ",".join(EVERY_FORMAT)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    print("| case | size | format | peak RSS MB | CPU s | wall s |")
    print("|---|---:|---|---:|---:|---:|")
    for case in args.cases.split(","):
        spread = case == "storm" or case in MIXES
        formats = args.formats.split(",") if spread else ["table", "jsonl"]
        for size in args.sizes.split(","):
            path = capture(workdir, case, size)
            for fmt in formats:
                rss, cpu, wall, status = measure(path, fmt, args.extra.split())
                note = "" if status == 0 else f" (exit {status})"
                shown = size if case in MIXES else f"{int(size):,}"
                print(f"| {case} | {shown} | {fmt}{note} | {rss:.0f} | {cpu:.2f} | {wall:.1f} |",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
