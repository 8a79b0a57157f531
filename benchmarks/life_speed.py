"""What following connections in life costs per packet: busy WebSockets past their watch window.

    python benchmarks/life_speed.py                   # 100 connections, 300 server frames each
    python benchmarks/life_speed.py --connections 200 --frames 600 --runs 7

Writes the capture into --workdir (never into the repository), then times the analysis in
process (CPU seconds, median of --runs) with `Analysis(lifetimes=False)` (a connection is let
go after its watch and its frames dropped by the compiled skip, as before lifetimes) and
`lifetimes=True` (followed to its end), with and without the compiled fast path. The
difference divided by the frames after the watch is the life's cost per frame.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analyzer.pipeline import Analysis  # noqa: E402
from analyzer.source import read_records  # noqa: E402
from tests.builder import Conversation, Opcode, websocket_response, write_pcap  # noqa: E402
from tests.test_checks import ws_request  # noqa: E402


def capture(path: Path, connections: int, frames: int) -> None:
    convs = []
    for n in range(connections):
        c = Conversation(client=("10.0.0.1", 20000 + n), server=("10.0.0.2", 80),
                         start=1_700_000_000 + n * 0.01)
        c.handshake()
        c.client(ws_request())
        c.server(websocket_response(), delay=0.002)
        for i in range(frames):
            c.server_ws_frame(Opcode.TEXT, b"x" * 200, delay=0.05)
            if i % 10 == 0:
                c.client_ws_frame(Opcode.TEXT, b"y" * 20, delay=0.001)
        convs.append(c)
    write_pcap(path, convs)


def cpu(path: Path, lifetimes: bool, compiled: bool) -> tuple[float, int]:
    run = Analysis(lifetimes=lifetimes, compiled=compiled)
    started = time.process_time()
    for _ in run.feed_records(read_records([str(path)], [])):
        pass
    run.finish()
    return time.process_time() - started, run.stats.frames


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--frames", type=int, default=300, help="server frames per connection")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workdir", default="/tmp/upgrade-analyzer-life")
    args = parser.parse_args(argv)
    path = Path(args.workdir) / f"life-{args.connections}x{args.frames}.pcap"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        capture(path, args.connections, args.frames)
    print("| fast path | lifetimes | CPU s (median) | frames |")
    print("|---|---|---:|---:|")
    for compiled in (True, False):
        for lifetimes in (False, True):
            times, frames = [], 0
            for _ in range(args.runs):
                seconds, frames = cpu(path, lifetimes, compiled)
                times.append(seconds)
            print(f"| {'compiled' if compiled else 'Python'} | {lifetimes} | "
                  f"{statistics.median(times):.4f} | {frames} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
