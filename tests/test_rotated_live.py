"""Rotated captures as tcpdump writes them: `tcpdump -C 1 -z xz` (and zstd, bzip2, lz4)
on lo, real python websockets clients and server, and the directory read as it was left (the
rotated files compressed by the real command-line tools, the last one plain): the same attempts
and verdicts as the files decompressed, every connection whole across the files."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import stop_group, tcpdump_on_lo

pytest.importorskip("websockets")
pytestmark = pytest.mark.skipif(
    shutil.which("tcpdump") is None or os.geteuid() != 0,
    reason="needs tcpdump, and root to capture on lo")

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
CONNECTIONS = 6
SERVER = """
import asyncio, sys, websockets
async def echo(ws):
    async for message in ws:
        await ws.send(message)
async def main():
    async with websockets.serve(echo, "127.0.0.1", int(sys.argv[1]), ping_interval=None,
                                max_size=None, compression=None):
        print("ready", flush=True)
        await asyncio.Future()
asyncio.run(main())
"""
# Each connection echoes 40 messages of 10 kB (≈ 0.8 MB a connection on the wire, both ways,
# not deflated):
# with -C 1 the capture rotates every 1,000,000 bytes, so connections span files.
CLIENT = """
import asyncio, sys, websockets
async def one(port, n):
    async with websockets.connect(f"ws://127.0.0.1:{port}/feed/{n}", max_size=None,
                                  compression=None) as ws:
        for i in range(40):
            await ws.send(bytes([n]) * 10_000)
            await ws.recv()
async def main(port, count):
    for n in range(count):
        await one(port, n)
asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@contextmanager
def _server(port: int) -> Iterator[None]:
    process = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], text=True,
                               stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        yield
    finally:
        stop_group(process)


def _tcpdump(directory: Path, port: int, compressor: str) -> Any:
    return tcpdump_on_lo("-C", "1", "-z", compressor, "-w", str(directory / "cap"),
                         f"tcp port {port}")


def _settled(directory: Path, suffix: str) -> list[Path]:
    """The files once every rotated one is compressed (tcpdump runs the compressor on a file
    when it moves to the next and does not wait for it): all but the last end in ``suffix``."""
    deadline = time.monotonic() + 30
    while True:
        files = sorted(directory.iterdir())
        plain = [f for f in files if not f.name.endswith(suffix)]
        partial = [f for f in files if f.name.endswith(suffix + ".tmp")]  # (none expected)
        if len(plain) <= 1 and not partial:
            return files
        assert time.monotonic() < deadline, f"still being compressed: {plain}"
        time.sleep(0.2)


def _report(*paths: Path) -> dict:
    done = subprocess.run([sys.executable, "-m", "analyzer", "read", *map(str, paths),
                           "-F", "json"], cwd=REPO, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("warning") == 0, done.stderr
    return json.loads(done.stdout)


def _without_files(document: dict) -> list[dict]:
    """The attempts without their file names (the compressed and plain copies differ there)."""
    return [{k: v for k, v in a.items() if k not in ("file", "file_frame")}
            for a in document["attempts"]]


@pytest.mark.parametrize(("tool", "suffix", "undo"), [
    ("xz", ".xz", ["xz", "-dc"]),
    ("zstd", ".zst", ["zstd", "-qdc"]),
    ("bzip2", ".bz2", ["bzip2", "-dc"]),
    ("lz4", ".lz4", ["lz4", "-qdc"]),
])
def test_a_directory_of_rotated_compressed_captures(
        tmp_path: Path, tool: str, suffix: str, undo: list[str]) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    compressor = tool
    if tool in ("zstd", "lz4"):  # (they keep the file they compressed: users give -z a script;
        # lz4 writes to its standard output, not a tty here, unless told -m)
        compressor = str(tmp_path / f"{tool}-rm")
        multiple = " -m" if tool == "lz4" else ""
        Path(compressor).write_text(f'#!/bin/sh\nexec {tool} -q{multiple} --rm "$1"\n')
        os.chmod(compressor, 0o755)
    rotated = tmp_path / "rotated"
    rotated.mkdir()
    port = _free_port()
    with _server(port), _tcpdump(rotated, port, compressor):
        subprocess.run([sys.executable, "-c", CLIENT, str(port), str(CONNECTIONS)],
                       check=True, timeout=120)
    files = _settled(rotated, suffix)
    packed = [f for f in files if f.name.endswith(suffix)]
    assert len(packed) >= 2, files  # rotated at least twice, each compressed by the tool

    document = _report(rotated)
    attempts = document["attempts"]
    assert [a["path"] for a in attempts] == [f"/feed/{n}" for n in range(CONNECTIONS)]
    assert {a["verdict"] for a in attempts} == {"succeeded"}
    assert len({a["file"] for a in attempts}) >= 2  # handshakes in more than one file

    plain = tmp_path / "plain"
    plain.mkdir()
    for file in files:
        name = file.name.removesuffix(suffix)
        with (plain / name).open("wb") as out:
            if file.name.endswith(suffix):
                subprocess.run([*undo, str(file)], stdout=out, check=True, timeout=60)
            else:
                out.write(file.read_bytes())
    decompressed = _report(plain)
    assert _without_files(document) == _without_files(decompressed)
    assert document["summary"] == decompressed["summary"]
