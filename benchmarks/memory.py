"""Peak memory of `upgrade-analyzer read` on hostile captures, per format and size.

    python benchmarks/memory.py                          # the whole curve (about an hour)
    python benchmarks/memory.py --cases storm --sizes 10000 --formats table,jsonl

Cases (generators in fuzz/hostile.py, written into --workdir, never into the repository):
`storm` N rejected handshakes (a reconnect storm: 7 frames each, 403), `flood` N SYNs from
distinct sources, `open` N WebSocket connections switched and left open to the end.
Each run is the real CLI, `python3 -m analyzer read FILE -F FORMAT > /dev/null`, under
`/usr/bin/time -v`; the table printed is Markdown for benchmarks/README.md.
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
GENERATORS = {"storm": "rejected-storm", "flood": "syn-flood", "open": "open-websockets"}
FORMATS = ("table", "json", "csv", "markdown", "jsonl")
TIMEOUT = 3600  # seconds per run


def capture(workdir: Path, case: str, size: int) -> Path:
    path = workdir / f"{case}-{size}.pcap"
    if not path.exists():  # generated once, kept between runs of this script
        partial = path.with_suffix(".partial")
        subprocess.run([sys.executable, "-m", "fuzz.hostile", GENERATORS[case], str(partial),
                        str(size)], cwd=ROOT, check=True, timeout=TIMEOUT)
        partial.rename(path)
    return path


def measure(path: Path, fmt: str, extra: list[str]) -> tuple[float, float, int]:
    """(peak RSS in MB, wall seconds, exit status) of one run of the CLI."""
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "analyzer", "read", str(path),
               "-F", fmt, *extra]
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, timeout=TIMEOUT, check=False)
    wall = time.monotonic() - started
    found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    rss = int(found.group(1)) / 1024 if found else float("nan")
    return rss, wall, done.returncode


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="storm,flood,open")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--formats", default=",".join(FORMATS),
                        help="for storm; flood and open run as table and jsonl")
    parser.add_argument("--workdir", default="/tmp/ubmem")
    parser.add_argument("--extra", default="", help="more options for `read`, space-separated")
    args = parser.parse_args(argv)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    print("| case | attempts or connections | format | peak RSS MB | wall s |")
    print("|---|---:|---|---:|---:|")
    for case in args.cases.split(","):
        formats = args.formats.split(",") if case == "storm" else ["table", "jsonl"]
        for size in (int(s) for s in args.sizes.split(",")):
            path = capture(workdir, case, size)
            for fmt in formats:
                rss, wall, status = measure(path, fmt, args.extra.split())
                note = "" if status == 0 else f" (exit {status})"
                print(f"| {case} | {size:,} | {fmt}{note} | {rss:.0f} | {wall:.1f} |",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
