"""`read --jobs N` on one xz or bzip2 capture: decompressed once, by a feeder, for every worker
(analyzer/scale/fanout.py), with the same report as one process, the same warning for a cut
stream, and every process stopped by its PID. The captures are compressed by the real xz and
bzip2 tools."""

from __future__ import annotations

import multiprocessing
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from analyzer.pipeline import Analysis
from analyzer.scale import fanout
from analyzer.scale.local import ShardedRead
from analyzer.source import stream
from tests.test_scale import _jsonl, closed_pipe_stops_every_process, generated_mix

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
    """A small capture of the benchmark mix, handshake-dense."""
    return generated_mix(tmp_path_factory.mktemp("fanout") / "mix.pcap", "6M", 11)


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


def test_jsonl_of_a_compressed_capture_comes_in_the_plain_files_order(tmp_path: Path) -> None:
    """`--jobs 2` JSONL merges the workers' attempts by the frames that decided them: from
    the feeder's pipes those frames must be the file's (the workers read it as a regular
    file, with its compiled follower). 20 MB of the dense mix, whose WebSocket conversations
    are decided in that follower: byte for byte the plain file's lines, in order."""
    plain = tmp_path / "dense.pcap"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "generate.py"), str(plain),
                    "--size", "20M", "--mix", "dense", "--seed", "5"],
                   check=True, capture_output=True, timeout=120)
    packed = _compress(plain, "xz")
    lines = _read(plain, "jsonl", "--jobs", "2").stdout
    assert lines.count("\n") > 300
    assert _read(packed, "jsonl", "--jobs", "2").stdout == lines


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
    plain = generated_mix(tmp_path / "big.pcap", "40M", 5)  # a few seconds as xz
    closed_pipe_stops_every_process(_compress(plain, "xz"), processes=3)  # and the feeder


def test_keys_embedded_in_a_compressed_pcapng_reach_every_worker(tmp_path: Path) -> None:
    """A pcapng whose Decryption Secrets Block carries its TLS keys, as xz: each worker
    reads the keys from the feeder's bytes and decrypts its sessions as one process does."""
    plain = tmp_path / "wss_dsb.pcapng"
    plain.write_bytes((REPO / "captures" / "wss_dsb.pcapng").read_bytes())
    packed = _compress(plain, "xz")
    alone = _read(plain, "json").stdout
    assert '"decrypted": true' in alone
    assert _read(packed, "json", "--jobs", "2").stdout == alone
