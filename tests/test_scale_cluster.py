"""`read --scheduler` (analyzer/scale/cluster.py) on a real Dask scheduler and two workers on
loopback: the report equals the local run's."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import run_cli

# distributed is never imported here: its client leaves threads in the process it runs in,
# whose allocations upset the memory measurements of later tests (tests/test_kept.py); every
# run that talks to the cluster is a subprocess.
if importlib.util.find_spec("distributed") is None:
    pytest.skip("distributed is not installed (pip install upgrade-analyzer[dask])",
                allow_module_level=True)

REPO = Path(__file__).resolve().parent.parent
CAPTURES = REPO / "captures"
START_WAIT = 60.0  # seconds for the scheduler and both workers to be up (a loaded machine)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A scheduler on a free loopback port and two one-thread workers, each its own process
    (no nanny: the PID is the worker's), importing this tree's analyzer."""
    where = tmp_path_factory.mktemp("dask")
    file = where / "scheduler.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    started: list[subprocess.Popen[bytes]] = []
    try:
        started.append(subprocess.Popen(
            [*dask, "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(file)], cwd=where, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + START_WAIT
        while not file.exists() and time.monotonic() < deadline:
            assert started[0].poll() is None, "the scheduler ended at start-up"
            time.sleep(0.1)
        time.sleep(0.2)  # the file is written whole before the scheduler listens
        address = json.loads(file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for _ in range(2):
            started.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address, "--no-nanny",
                 "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"],
                cwd=where, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        subprocess.run([sys.executable, "-c", _WAIT, address, str(START_WAIT)], env=env,
                       check=True, timeout=START_WAIT + 30)
        yield address
    finally:
        for process in reversed(started):
            _stop(process)


_WAIT = ("import sys, distributed\n"
         "with distributed.Client(sys.argv[1], timeout=float(sys.argv[2])) as c:\n"
         "    c.wait_for_workers(2, timeout=float(sys.argv[2]))\n")
# The command line in a subprocess, optionally with a smaller spill threshold (report/kept.py).
_CLI = ("import sys\n"
        "from analyzer.report import kept\n"
        "if sys.argv[1] != '-': kept.SPILL_AFTER = int(sys.argv[1])\n"
        "sys.argv[0:2] = ['upgrade-analyzer']\n"
        "from analyzer.cli import main\n"
        "main()\n")


def _read(*args: str) -> str:
    """A local run, in this process."""
    result = run_cli("read", *args)
    assert result.exit_code == 0, result.output
    return result.stdout


def _on_cluster(*args: str, spill_after: int | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _CLI, "-" if spill_after is None else str(spill_after), "read",
         *args], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


FILES = ["nginx_proxy_ok.pcap", "ws_close_1008.pcap", "redirect_302.pcap",
         "socketio_no_sticky_sessions.pcap", "tls12_cert_expired.pcap"]


@pytest.mark.parametrize("fmt", ["json", "table"])
def test_several_files_on_the_cluster_equal_the_local_run(scheduler: str, fmt: str) -> None:
    paths = [str(CAPTURES / f) for f in FILES]
    local = _read("-F", fmt, "--jobs", "2", *paths)
    assert "redirect" in local
    assert _on_cluster("-F", fmt, "--scheduler", scheduler, *paths) == local


def test_shards_of_one_file_and_its_key_log_on_the_cluster(scheduler: str) -> None:
    capture = str(CAPTURES / "wss_aiohttp.pcap")
    keys = ["--keylog", str(CAPTURES / "wss_aiohttp.keys")]
    local = _read("-F", "json", *keys, capture)
    assert '"decrypted": true' in local  # the key log reached the workers
    assert _on_cluster("-F", "json", *keys, "--scheduler", scheduler, "-j", "2",
                       capture) == local


def test_a_benchmark_mix_sharded_on_the_cluster(scheduler: str, tmp_path: Path) -> None:
    mix = tmp_path / "mix.pcap"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "generate.py"), str(mix),
                    "--size", "3M", "--seed", "5"], check=True, capture_output=True,
                   timeout=120)
    local = _read("-F", "json", str(mix))
    assert _on_cluster("-F", "json", "--scheduler", scheduler, "-j", "3", str(mix)) == local


def test_an_address_without_tcp_or_tls_is_a_usage_error() -> None:
    result = run_cli("read", "--scheduler", "127.0.0.1:8786", str(CAPTURES / FILES[0]))
    assert result.exit_code == 2
    assert "tcp://HOST:PORT" in result.output


def test_proxy_legs_captured_on_two_hosts_pair_on_the_cluster(scheduler: str,
                                                             tmp_path: Path) -> None:
    """The cross-capture view over tasks' results: legs of one handshake from two files,
    the backend's clock 0.3 s behind, pair as in the local run (tests/test_scale.py)."""
    from tests.test_scale import _paired_right, _two_hosts

    proxy, backend = _two_hosts(tmp_path, behind=0.3)
    local = _read("-F", "csv", "--jobs", "2", str(proxy), str(backend))
    assert _paired_right(local)
    assert _on_cluster("-F", "csv", "--scheduler", scheduler, str(proxy),
                       str(backend)) == local


def test_spilled_report_on_the_cluster_keeps_attempts_whole(scheduler: str) -> None:
    """Past SPILL_AFTER the fronts are not rebuilt (files come back in completion order) but
    pickled as decided: the same report."""
    paths = [str(CAPTURES / f) for f in FILES]
    local = _read("-F", "json", "--jobs", "2", *paths)
    assert _on_cluster("-F", "json", "--scheduler", scheduler, *paths, spill_after=0) == local


def test_connections_in_life_end_on_their_own_lines_as_in_a_local_run(scheduler: str) -> None:
    """One file on the cluster streams its ends as ``ended`` JSONL lines in decision order,
    as `--jobs` does on this machine; the sorted report folds them (verdict ``dropped``)."""
    capture = str(CAPTURES / "websocket_lives.pcap")
    local = _read("-F", "jsonl", "--jobs", "2", capture)
    assert local.count('"event": "ended"') >= 2
    assert _on_cluster("-F", "jsonl", "--scheduler", scheduler, capture) == local
    assert _on_cluster("-F", "jsonl", "--scheduler", scheduler, "-j", "2", capture) == local
    sorted_local = _read("-F", "json", capture)
    assert '"dropped"' in sorted_local
    assert _on_cluster("-F", "json", "--scheduler", scheduler, capture) == sorted_local


def test_several_files_as_jsonl_on_the_cluster_are_the_local_lines(scheduler: str) -> None:
    """Each file's lines, rendered by the tasks (report/digest.py), ends with their file
    too; files come in the order they complete, so the lines are compared as sets."""
    from tests.test_scale import unnumbered

    paths = [str(CAPTURES / f) for f in [*FILES, "websocket_lives.pcap"]]
    local = _read("-F", "jsonl", "--jobs", "2", *paths).splitlines()
    assert any('"ended"' in line and "websocket_lives" in line for line in local)
    remote = _on_cluster("-F", "jsonl", "--scheduler", scheduler, *paths).splitlines()
    assert sorted(map(unnumbered, remote)) == sorted(map(unnumbered, local))
