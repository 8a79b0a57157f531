"""`read --jobs N` on one xz or bzip2 capture: decompressed once, by a feeder, for every worker
(analyzer/scale/fanout.py), with the same report as one process, the same warning for a cut
stream, and every process stopped by its PID. The captures are compressed by the real xz and
bzip2 tools."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from analyzer.pipeline import Analysis
from analyzer.scale import fanout
from analyzer.scale.local import ShardedRead
from analyzer.source import stream
from tests.test_scale import _children, _gone, _jsonl

REPO = Path(__file__).resolve().parent.parent
TOOLS = {"xz": ["xz", "-0", "-T1", "-c"], "bzip2": ["bzip2", "-1", "-c"],
         "zstd": ["zstd", "-1", "-q", "-c"]}
SUFFIX = {"xz": ".xz", "bzip2": ".bz2", "zstd": ".zst"}


def _compress(path: Path, kind: str, cut: int = 0) -> Path:
    if shutil.which(TOOLS[kind][0]) is None:
        pytest.skip(f"{TOOLS[kind][0]} is not installed (run-tests.sh installs it)")
    out = path.with_name(path.name + SUFFIX[kind])
    data = subprocess.run([*TOOLS[kind], str(path)], check=True, capture_output=True,
                          timeout=120).stdout
    out.write_bytes(data[:len(data) - cut] if cut else data)
    return out


@pytest.fixture(scope="module")
def mix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small capture of the benchmark mix, handshake-dense (benchmarks/generate.py)."""
    path = tmp_path_factory.mktemp("fanout") / "mix.pcap"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "generate.py"), str(path),
                    "--size", "6M", "--handshake-weight", "0.8", "--seed", "11"],
                   check=True, capture_output=True, timeout=120)
    return path


def _read(capture: Path, fmt: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """The real command line, as a user runs it (its warnings on standard error)."""
    result = subprocess.run([sys.executable, "-m", "analyzer", "read", str(capture), "--format",
                             fmt, *extra], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.parametrize("kind", ["xz", "bzip2"])
def test_jobs_on_a_compressed_capture_gives_the_one_process_report(mix: Path,
                                                                   kind: str) -> None:
    packed = _compress(mix, kind)
    assert fanout.fanned_out(str(packed))
    alone = _read(mix, "json").stdout
    assert '"succeeded"' in alone
    assert _read(packed, "json", "--jobs", "2").stdout == alone
    assert _read(packed, "json", "--jobs", "3").stdout == alone
    shards = _jsonl(_read(packed, "jsonl", "--jobs", "2").stdout)
    assert sorted(map(str, shards)) == sorted(map(str, _jsonl(_read(mix, "jsonl").stdout)))


def _counting(kind: str, made: Any) -> Callable[[], Callable[..., Any]]:
    """The decompressor factory of ``kind``, counting in ``made`` (shared by forked
    processes) every decompressor any process makes."""
    real = stream._DECOMPRESSORS[kind]

    def factory() -> Callable[..., Any]:
        new = real()

        def counted(*args: Any, **kwargs: Any) -> Any:
            with made.get_lock():
                made.value += 1
            return new(*args, **kwargs)

        return counted

    return factory


@pytest.mark.parametrize("kind, fanned", [("xz", True), ("bzip2", True), ("zstd", False)])
def test_a_slow_format_is_decompressed_once_for_every_worker(
        mix: Path, kind: str, fanned: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three workers: one decompressor in all (the feeder's) for xz and bzip2; for zstd,
    which decompresses faster than pipes carry its bytes, one in each worker."""
    packed = _compress(mix, kind)
    made = multiprocessing.get_context("fork").Value("i", 0)
    monkeypatch.setitem(stream._DECOMPRESSORS, kind, _counting(kind, made))
    into = Analysis()
    decided = list(ShardedRead(str(packed), 3, into, []))
    assert len(decided) > 50
    assert made.value == (1 if fanned else 3)


@pytest.mark.parametrize("kind", ["xz", "bzip2"])
def test_a_cut_stream_warns_as_one_process_does(mix: Path, kind: str) -> None:
    packed = _compress(mix, kind, cut=40_000)
    alone = _read(packed, "json")
    shards = _read(packed, "json", "--jobs", "2")
    assert shards.stdout == alone.stdout
    warning = [line for line in alone.stderr.splitlines() if "warning" in line]
    assert len(warning) == 1 and "compressed data ends" in warning[0], alone.stderr
    assert [line for line in shards.stderr.splitlines() if "warning" in line] == warning


def test_a_closed_pipe_stops_the_feeder_and_every_worker(tmp_path: Path) -> None:
    plain = tmp_path / "big.pcap"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "generate.py"), str(plain),
                    "--size", "40M", "--handshake-weight", "0.8", "--seed", "5"],
                   check=True, capture_output=True, timeout=120)
    packed = _compress(plain, "xz")
    read, write = os.pipe()
    process = subprocess.Popen([sys.executable, "-m", "analyzer", "read", "-j", "2", "-F",
                                "jsonl", str(packed)], cwd=REPO, stdout=write,
                               stderr=subprocess.PIPE)
    os.close(write)
    children: list[int] = []
    try:
        deadline = time.monotonic() + 20
        while len(children) < 3 and time.monotonic() < deadline and process.poll() is None:
            children = _children(process.pid)  # the feeder and two workers
            time.sleep(0.02)
        assert len(children) == 3, children
        with os.fdopen(read, "rb") as reader:
            assert reader.readline().startswith(b"{")
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 141, err
    assert err == b""
    deadline = time.monotonic() + 5
    while not all(map(_gone, children)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(map(_gone, children))


def test_keys_embedded_in_a_compressed_pcapng_reach_every_worker(tmp_path: Path) -> None:
    """A pcapng whose Decryption Secrets Block carries its TLS keys, as xz: each worker
    reads the keys from the feeder's bytes and decrypts its sessions as one process does."""
    plain = tmp_path / "wss_dsb.pcapng"
    plain.write_bytes((REPO / "captures" / "wss_dsb.pcapng").read_bytes())
    packed = _compress(plain, "xz")
    alone = _read(plain, "json").stdout
    assert '"decrypted": true' in alone
    assert _read(packed, "json", "--jobs", "2").stdout == alone
