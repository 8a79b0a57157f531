"""`read --jobs N FILES...` (analyzer/scale/files.py): each file analysed on its own in a worker
process, its attempts streamed back through a spool on disk and reported file after file, as
each file reports alone; the parent never holds a file's results; signals and a closed pipe
stop every worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from tests.helpers import run_cli
from tests.test_scale import closed_pipe_stops_every_process, signalled_run

REPO = Path(__file__).resolve().parent.parent
CAPTURES = [REPO / "captures" / name for name in (
    "ws_close_1008.pcap", "websocket_lives.pcap", "refused.pcap", "h2c_declined.pcap",
    "socketio_no_sticky_sessions.pcap")]
_PER_FILE = ("number", "file", "file_frame")


def _lines(*args: str | Path) -> list[dict[str, object]]:
    result = run_cli("read", "-F", "jsonl", "--tcp", *map(str, args))
    assert result.exit_code == 0, result.output
    out = []
    for line in result.stdout.splitlines():
        document = json.loads(line)
        for key in _PER_FILE:
            document.pop(key, None)
        out.append(document)
    return out


@pytest.mark.parametrize("jobs", ["1", "2", "3"])
def test_several_files_report_file_after_file_what_each_reports_alone(jobs: str) -> None:
    alone = [line for capture in CAPTURES for line in _lines(capture)]
    assert any(line["event"] == "ended" for line in alone)  # lives, as one file shows them
    assert _lines("--jobs", jobs, *CAPTURES) == alone


def test_several_files_name_each_attempts_file_and_number_it_in_order() -> None:
    result = run_cli("read", "-F", "jsonl", "--jobs", "2", *map(str, CAPTURES))
    decided = [json.loads(line) for line in result.stdout.splitlines()
               if '"decided"' in line]
    assert [d["number"] for d in decided] == list(range(1, len(decided) + 1))
    files = [d["file"] for d in decided]
    assert files == sorted(files, key=lambda f: [str(c) for c in CAPTURES].index(f))


@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_sorted_reports_of_several_files_are_one_run_over_them(fmt: str) -> None:
    """The sorted formats: `--jobs 3` (files at once, attempts made into records by the
    workers) equals `--jobs 1` (one file after another) byte for byte."""
    one = run_cli("read", "-F", fmt, "--jobs", "1", *map(str, CAPTURES))
    three = run_cli("read", "-F", fmt, "--jobs", "3", *map(str, CAPTURES))
    assert (three.exit_code, three.stdout, three.stderr) == (
        one.exit_code, one.stdout, one.stderr)
    assert "ws_closed_with_error" in one.stdout  # (the first file's)
    assert fmt == "csv" or "websocket_lives.pcap" in one.stdout  # the third's, by name


def _dense(path: Path, size: str) -> Path:
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "generate.py"), str(path),
                    "--size", size, "--mix", "dense", "--seed", "5"],
                   check=True, capture_output=True, timeout=120)
    return path


@pytest.fixture(scope="module")
def dense_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    where = tmp_path_factory.mktemp("files")
    return _dense(where / "small.pcap", "2M"), _dense(where / "large.pcap", "16M")


def _parent_peak(*args: str | Path) -> int:
    """Bytes at the peak of what the run allocated in this process (the parent)."""
    tracemalloc.start()
    try:
        result = run_cli("read", *map(str, args), "-o", os.devnull)
        assert result.exit_code == 0, result.output
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_the_parent_holds_no_file_whole(dense_pair: tuple[Path, Path], fmt: str) -> None:
    """A pool of workers that returned each file's attempts whole held them all in the
    parent at once (and in the worker): 1 GB of the dense mix peaked at 560 MB. Read from
    the spools a batch at a time, eight times the attempts cost the parent little more."""
    small, large = dense_pair
    _parent_peak("-F", fmt, "--jobs", "2", small, small)  # (modules loaded, caches made)
    at_small = _parent_peak("-F", fmt, "--jobs", "2", small, small)
    at_large = _parent_peak("-F", fmt, "--jobs", "2", large, small)
    assert at_large < at_small + 1_000_000, (at_small, at_large)


@pytest.fixture(scope="module")
def long_pair(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two captures long enough to read that a signal lands mid-run."""
    where = tmp_path_factory.mktemp("files-long")
    return [_dense(where / "a.pcap", "60M"), _dense(where / "b.pcap", "60M")]


def test_a_closed_pipe_ends_with_141_and_stops_every_worker(long_pair: list[Path]) -> None:
    closed_pipe_stops_every_process(long_pair)


@pytest.mark.parametrize("delay", [0.0, 0.3])
def test_sigterm_prints_results_so_far_and_stops_every_worker(
        long_pair: list[Path], delay: float) -> None:
    """What the file being read decided so far, and its totals, are reported."""
    lines = signalled_run(long_pair, signal.SIGTERM, 143, delay)
    numbers = [line["number"] for line in lines if line["event"] == "decided"]
    assert numbers == list(range(1, len(numbers) + 1))


@pytest.mark.parametrize("ahead", [1, 2])
def test_files_wait_to_start_until_they_are_near_the_one_reported(
        monkeypatch: pytest.MonkeyPatch, ahead: int) -> None:
    """A file's worker starts at most AHEAD files past the one being reported (each waiting
    file holds a spool open): with one, the files go one at a time, and nothing waits
    forever for a worker never started."""
    from analyzer.scale import files

    monkeypatch.setattr(files, "AHEAD", ahead)
    assert _lines("--jobs", "3", *CAPTURES) == [
        line for capture in CAPTURES for line in _lines(capture)]


@pytest.mark.parametrize("jobs", [(), ("--jobs", "2")])
def test_ended_lines_name_their_file_when_several_are_read(jobs: tuple[str, ...]) -> None:
    """An `ended` line names its file and its attempt's frame within it, as the `decided`
    line does: several files merged into one capture, or each on its own (--jobs)."""
    lives = REPO / "captures" / "websocket_lives.pcap"
    result = run_cli("read", "-F", "jsonl", *jobs, str(CAPTURES[0]), str(lives))
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    decided = {line["number"]: line for line in lines if line["event"] == "decided"}
    ended = [line for line in lines if line["event"] == "ended"]
    assert ended
    for line in ended:
        assert (line["file"], line["file_frame"]) == (
            decided[line["number"]]["file"], decided[line["number"]]["file_frame"])
        assert line["file"] == str(lives)
    alone = run_cli("read", "-F", "jsonl", str(lives)).stdout
    assert '"ended"' in alone and '"file"' not in alone  # one file: no file fields
