"""Reports that must agree, compared over many captures: the differential run.

    python benchmarks/twins.py                          # every check, bundled captures
    python benchmarks/twins.py --real-world ../shared/real-world --extra '/tmp/*.pcap'
    python benchmarks/twins.py --checks spill,jobs --sets 100 --seed 3

Each check runs the real CLI (in this process for `spill`, where the spill threshold is
lowered; as `python -m analyzer` otherwise) on the captures given and compares two reports
that the design says are the same (docs/architecture.md):

- ``spill``: a sorted report kept in memory and the same report spilled to disk from its
  first attempt, byte for byte, over random sets of 1-6 captures in random formats and
  options (`--jobs 2` one time in three);
- ``jobs``: `read -F json` and `read -F json --jobs 2` (one capture sharded by flow), byte
  for byte;
- ``jsonl``: the streamed JSONL (`decided` lines, then `ended` lines) folded, against the
  sorted JSON: each attempt's verdict, client, server, status and lifetime (a rule over
  several ends, which streams cannot know, is skipped);
- ``pcapng``: a classic pcap and the same capture written as pcapng by `editcap`;
- ``twice``: a classic pcap and the same capture with every record written twice (each
  frame seen again, as a SPAN port that copies both directions can give): verdicts and
  primary reasons.

A capture's key log (NAME.keys or NAME.pcap.keys) is passed when there is one. Prints each
difference and a total per check; exit status 1 when any differed. Found with it, in the
seventh session: a crash of the spilled report on a directory of captures, an open
WebSocket's lifetime cut short in a shard, the ended lines' reason text, and more
(benchmarks/README.md, "Differential runs").
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # fin_cuts

TIMEOUT = 300
_SPILL_OPTIONS = (["-F", "json"], ["-F", "csv"], ["-F", "table"], ["--tcp", "-F", "json"],
                  ["--failed", "-F", "markdown"], ["--summary-only"], ["-F", "html"],
                  ["--detail", "--no-color"], ["--verdict", "failed", "-F", "csv"])
# (not the reason: a sorted report judges an end again with the watch's findings and puts
# a cause first, or adds a proxy's; the `ended` line gives the life's own reason)
_ATTEMPT_KEYS = ("verdict", "client", "server", "status", "lifetime")


def keylog(capture: str) -> list[str]:
    for keys in (capture + ".keys", os.path.splitext(capture)[0] + ".keys"):
        if os.path.exists(keys):
            return ["--keylog", keys]
    return []


def read(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "analyzer", "read", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)


def check_spill(captures: list[str], sets: int, rng: random.Random) -> Iterator[str]:
    from click.testing import CliRunner

    import analyzer.report.kept as kept
    from analyzer.cli import cli

    spill_after = kept.SPILL_AFTER
    try:
        yield from _spill_sets(captures, sets, rng, kept, cli, CliRunner)
    finally:
        kept.SPILL_AFTER = spill_after


def _spill_sets(captures: list[str], sets: int, rng: random.Random, kept: Any, cli: Any,
                runner: Any) -> Iterator[str]:
    for _ in range(sets):
        files = rng.sample(captures, min(len(captures), rng.randint(1, 6)))
        args = ["read", *files, *rng.choice(_SPILL_OPTIONS)]
        if rng.random() < 0.3:
            args += ["--jobs", "2"]
        outs = []
        for spill_after in (10**9, 0):
            kept.SPILL_AFTER = spill_after
            result = runner().invoke(cli, args)
            crashed = result.exception is not None and not isinstance(result.exception,
                                                                      SystemExit)
            # the HTML page says when it was made
            outs.append((result.exit_code, crashed,
                         re.sub(r"generated [^<\"]*", "generated", result.stdout)))
        if outs[0] != outs[1] or outs[0][1]:
            yield f"{' '.join(args[1:])}: exit {outs[0][0]}/{outs[1][0]}"


def check_jobs(captures: list[str], sets: int, rng: random.Random) -> Iterator[str]:
    for capture in captures:
        alone = read(capture, *keylog(capture), "-F", "json")
        shards = read(capture, *keylog(capture), "-F", "json", "--jobs", "2")
        if (alone.returncode, alone.stdout) != (shards.returncode, shards.stdout):
            yield f"{capture}: exit {alone.returncode}/{shards.returncode}"


def _comparable(attempt: dict[str, object]) -> str:
    """An attempt's fields that both reports give; a lifetime still open when the capture
    ended is the sorted report's alone (a stream has no `ended` line for it)."""
    fields = {k: attempt.get(k) for k in _ATTEMPT_KEYS}
    life = fields["lifetime"]
    if isinstance(life, dict) and life.get("how") == "open":
        fields["lifetime"] = None
    return json.dumps(fields, sort_keys=True)


def _folded(jsonl: str) -> list[str]:
    attempts: dict[int, dict[str, object]] = {}
    for line in jsonl.splitlines():
        event = json.loads(line)
        if event["event"] == "decided":
            attempts[event["number"]] = {k: event.get(k) for k in _ATTEMPT_KEYS}
        elif event["event"] == "ended":
            attempts[event["number"]].update(
                {k: event[k] for k in ("verdict", "lifetime") if event.get(k)})
    return sorted(_comparable(a) for a in attempts.values())


def check_jsonl(captures: list[str], sets: int, rng: random.Random) -> Iterator[str]:
    for capture in captures:
        document = read(capture, *keylog(capture), "-F", "json")
        streamed = read(capture, *keylog(capture), "-F", "jsonl")
        if document.returncode != streamed.returncode:
            yield f"{capture}: exit {document.returncode}/{streamed.returncode}"
            continue
        if document.returncode >= 2 or not document.stdout:
            continue
        grouped = set()
        listed = []
        for attempt in json.loads(document.stdout)["attempts"]:
            if attempt["reasons"][:1] in (["server_reset_many"], ["max_lifetime_reached"]):
                grouped.add((attempt["client"], attempt["server"]))
                continue
            listed.append(_comparable(attempt))
        folded = [a for a in _folded(streamed.stdout)
                  if (json.loads(a)["client"], json.loads(a)["server"]) not in grouped]
        if sorted(listed) != folded:
            yield f"{capture}: {len(listed)} attempts sorted, {len(folded)} streamed"


def _summary(capture: str, keys: list[str]) -> tuple[int, list[object]]:
    done = read(capture, *keys, "-F", "json")
    if not done.stdout:  # (an input that cannot be read: its exit status says so)
        return done.returncode, []
    return done.returncode, [(a["verdict"], a["reasons"][:1])
                             for a in json.loads(done.stdout)["attempts"]]


def _twice(source: str, target: str) -> bool:
    """Writes ``source`` (a classic pcap) with every record twice; False for another format."""
    from fin_cuts import pcap_records

    from analyzer.source import pcap

    data = Path(source).read_bytes()
    if data[:4] not in pcap.MAGICS:
        return False
    head, records = pcap_records(data)
    Path(target).write_bytes(head + b"".join(record * 2 for record in records))
    return True


def check_pcapng(captures: list[str], sets: int, rng: random.Random) -> Iterator[str]:
    with tempfile.TemporaryDirectory() as work:
        for capture in captures:
            if capture.endswith(".pcapng") or Path(capture).stat().st_size < 25:
                continue
            copy = os.path.join(work, "copy.pcapng")
            if subprocess.run(["editcap", "-F", "pcapng", capture, copy], capture_output=True,
                              timeout=TIMEOUT, check=False).returncode:
                continue
            keys = keylog(capture)
            first, second = read(capture, *keys, "-F", "json"), read(copy, *keys, "-F", "json")
            if (first.returncode, first.stdout) != (second.returncode, second.stdout):
                yield f"{capture}: exit {first.returncode}/{second.returncode}"


def check_twice(captures: list[str], sets: int, rng: random.Random) -> Iterator[str]:
    with tempfile.TemporaryDirectory() as work:
        for capture in captures:
            copy = os.path.join(work, "twice.pcap")
            if not _twice(capture, copy):
                continue
            keys = keylog(capture)
            if _summary(capture, keys) != _summary(copy, keys):
                yield capture


CHECKS: dict[str, Callable[[list[str], int, random.Random], Iterator[str]]] = {
    "spill": check_spill, "jobs": check_jobs, "jsonl": check_jsonl, "pcapng": check_pcapng,
    "twice": check_twice}


def captures_from(real_world: str | None, extra: list[str], max_mb: float) -> list[str]:
    found = sorted(str(p) for p in (ROOT / "captures").iterdir()
                   if p.suffix in (".pcap", ".pcapng"))
    if real_world:
        found += sorted(p for p in glob.glob(os.path.join(real_world, "**", "*"),
                                             recursive=True)
                        if p.endswith((".pcap", ".pcapng", ".cap")))
    for pattern in extra:
        found += sorted(p for p in glob.glob(pattern) if p.endswith((".pcap", ".pcapng")))
    return [p for p in found if os.path.getsize(p) <= max_mb * 1e6]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checks", default=",".join(CHECKS))
    parser.add_argument("--real-world", help="a folder of other people's captures")
    parser.add_argument("--extra", action="append", default=[], help="a glob of captures")
    parser.add_argument("--sets", type=int, default=100, help="random sets (spill)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-mb", type=float, default=20.0, help="larger captures are left out")
    args = parser.parse_args(argv)
    captures = captures_from(args.real_world, args.extra, args.max_mb)
    rng = random.Random(args.seed)
    failed = 0
    for name in args.checks.split(","):
        differing = 0
        for line in CHECKS[name](captures, args.sets, rng):
            differing += 1
            print(f"{name}: {line}", flush=True)
        print(f"{name}: {differing} differed", flush=True)
        failed += differing
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
