"""What a FIN lost by the capture changes: each FIN frame cut from each bundled capture.

    python benchmarks/fin_cuts.py                       # every capture in captures/
    python benchmarks/fin_cuts.py --only jetty9_websocket --show
    python benchmarks/fin_cuts.py --workdir /tmp/fin-cuts --jobs 2

For every capture in `captures/` (pcap and pcapng) and every frame carrying a TCP FIN, the
capture is written again without that one frame (records copied byte for byte, so pcapng
blocks such as a Decryption Secrets Block stay), and `read -F json` is run on the whole and
on the cut capture (with `--keylog NAME.keys` where one exists). An attempt is named by
its kind, client, server, method, path and stream (frame numbers move by one after the
cut) and compared by its verdict and finding ids, in order. A cut whose attempts differ is
counted, and said to be "in life" when an attempt that differs had a `lifetime` in the
whole capture's report (its connection was past its watch window). Prints one line per
differing cut (``--show``: the differences too) and the totals.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analyzer.decode.decoder import Decoder  # noqa: E402
from analyzer.source import read_captures  # noqa: E402

CAPTURES = ROOT / "captures"
_FIN = 0x01
_PACKET_BLOCKS = (2, 3, 6)  # pcapng: Packet, Simple Packet, Enhanced Packet Block


def fin_frames(path: Path) -> list[int]:
    """Frame numbers (Wireshark's) of the frames that carry a TCP FIN."""
    decoder = Decoder()
    out = []
    for frame in read_captures([str(path)], []):
        seg = decoder.decode(frame)
        if seg is not None and seg.flags & _FIN:
            out.append(frame.number)
    return out


def pcap_records(data: bytes) -> tuple[bytes, list[bytes]]:
    magic = data[:4]
    order = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    at, records = 24, []
    while at + 16 <= len(data):
        (length,) = struct.unpack_from(order + "I", data, at + 8)
        records.append(data[at:at + 16 + length])
        at += 16 + length
    return data[:24], records


def without_frame(data: bytes, number: int) -> bytes:
    """The capture file ``data`` without its frame ``number`` (1-based), all else as it was."""
    if data[:4] != b"\x0a\x0d\x0d\x0a":
        head, records = pcap_records(data)
        return head + b"".join(r for n, r in enumerate(records, 1) if n != number)
    out, at, seen, order = [], 0, 0, "<"
    while at + 12 <= len(data):
        if data[at:at + 4] == b"\x0a\x0d\x0d\x0a":
            order = "<" if data[at + 8:at + 12] == b"\x4d\x3c\x2b\x1a" else ">"
        kind, length = struct.unpack_from(order + "II", data, at)
        block = data[at:at + length]
        at += length
        if kind in _PACKET_BLOCKS:
            seen += 1
            if seen == number:
                continue
        out.append(block)
    return b"".join(out)


def report(path: Path, keys: Path | None) -> dict[tuple, list[tuple]]:
    """Each attempt's (verdict, finding ids, had a lifetime) by its name (see the module)."""
    command = [sys.executable, "-m", "analyzer", "read", "-F", "json", str(path)]
    if keys is not None:
        command += ["--keylog", str(keys)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{path}: exit {done.returncode}: {done.stderr[-500:]}")
    attempts: dict[tuple, list[tuple]] = {}
    for a in json.loads(done.stdout)["attempts"]:
        name = (a.get("kind"), a.get("client"), a.get("server"), a.get("method"),
                a.get("path"), a.get("stream_id"))
        attempts.setdefault(name, []).append(
            (a["verdict"], tuple(f["id"] for f in a["findings"]), a.get("lifetime") is not None))
    return attempts


def differences(whole: dict[tuple, list[tuple]], cut: dict[tuple, list[tuple]]
                ) -> list[tuple[tuple, list[tuple], list[tuple]]]:
    out = []
    for name in sorted(set(whole) | set(cut), key=repr):
        a = [r[:2] for r in whole.get(name, [])]
        b = [r[:2] for r in cut.get(name, [])]
        if a != b:
            out.append((name, whole.get(name, []), cut.get(name, [])))
    return out


def captures(only: list[str]) -> list[Path]:
    found = sorted(p for p in CAPTURES.iterdir() if p.suffix in (".pcap", ".pcapng"))
    return [p for p in found if not only or p.stem in only]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", default=[],
                        help="a capture's name without suffix (repeat); default: all")
    parser.add_argument("--workdir", default="/tmp/upgrade-analyzer-fin-cuts")
    parser.add_argument("--jobs", type=int, default=1, help="analyses run at once")
    parser.add_argument("--show", action="store_true", help="print each difference")
    args = parser.parse_args(argv)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    cuts = differing = in_life = 0
    for path in captures(args.only):
        keys = path.with_suffix(".keys")
        key_path = keys if keys.exists() else None
        frames = fin_frames(path)
        if not frames:
            continue
        whole = report(path, key_path)
        data = path.read_bytes()

        def one(frame: int, path: Path = path, data: bytes = data,
                key_path: Path | None = key_path) -> tuple[int, dict[tuple, list[tuple]]]:
            out = work / f"{path.stem}-{frame}{path.suffix}"
            out.write_bytes(without_frame(data, frame))
            try:
                return frame, report(out, key_path)
            finally:
                os.unlink(out)

        with ThreadPoolExecutor(max(args.jobs, 1)) as pool:
            results = list(pool.map(one, frames))
        for frame, cut in results:
            cuts += 1
            diff = differences(whole, cut)
            if not diff:
                continue
            differing += 1
            life = any(any(r[2] for r in w) for _n, w, _c in diff)
            in_life += life
            print(f"{path.stem} without frame {frame}: {len(diff)} attempt(s) differ"
                  f"{' (in life)' if life else ''}")
            if args.show:
                for name, w, c in diff:
                    print(f"    {name[1]} -> {name[2]} {name[4]!s}")
                    print(f"      whole: {[r[:2] for r in w]}")
                    print(f"      cut:   {[r[:2] for r in c]}")
    print(f"{cuts} cuts, {differing} differ from the whole capture, {in_life} of them in life")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
