"""`read --jobs N FILE` (analyzer/scale/local.py): one capture sharded by server over worker
processes gives one process's report; signals and a closed pipe stop every worker."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from analyzer.life.model import Ended
from analyzer.pipeline import Analysis
from analyzer.report.render import render_jsonl_ended, render_jsonl_line
from analyzer.scale.local import ShardedRead
from analyzer.scale.shard import Owner, decisions, shard_of
from analyzer.source import read_records
from tests.builder import Conversation, http_response, websocket_request, write_pcap
from tests.helpers import run_cli

REPO = Path(__file__).resolve().parent.parent
CAPTURES = sorted(p for p in (REPO / "captures").iterdir()
                  if p.suffix in (".pcap", ".pcapng"))
SORTED_FORMATS = ("table", "json", "csv", "markdown")


def _keylog(capture: Path) -> list[str]:
    keys = capture.with_suffix(".keys")
    return ["--keylog", str(keys)] if keys.exists() else []


def _read(capture: Path, fmt: str, *extra: str) -> str:
    result = run_cli("read", "-F", fmt, *_keylog(capture), *extra, str(capture))
    assert result.exit_code == 0, result.output
    return result.stdout


def unnumbered(line: str) -> str:
    """A JSONL line without its number, keys sorted (a number is a place in one run's order)."""
    document = json.loads(line)
    document.pop("number")
    return json.dumps(document, sort_keys=True)


def merge_order(capture: Path, lines: list[str]) -> list[str]:
    """One process's JSONL lines of ``capture`` in the order the merge of shards gives
    (analyzer/scale/shard.py): by the frame being read when each was decided (END: at the
    capture's end), then by its first frame. In one process, attempts decided at the same
    frame come in the order its stages emit them; the merge orders them by first frame."""
    analysis = Analysis(secrets=_secrets(capture), lifetimes=True)
    order: dict[str, tuple[int, int]] = {}
    for frame, d in decisions(analysis, read_records([str(capture)], [])):
        if isinstance(d, Ended):
            text = render_jsonl_ended(dataclasses.replace(d, number=0))
            order[unnumbered(text)] = (frame, d.key[0])
        else:
            order[unnumbered(render_jsonl_line(d))] = (frame, d.attempt.first_frame)
    return sorted(lines, key=lambda line: order[unnumbered(line)])


def _secrets(capture: Path) -> object | None:
    keys = capture.with_suffix(".keys")
    if not keys.exists():
        return None
    from analyzer.tls.keylog import load_keylog

    return load_keylog(keys.read_bytes())


def _jsonl(text: str) -> list[dict[str, object]]:
    out = []
    for line in text.splitlines():
        document = json.loads(line)
        document.pop("number")
        out.append(document)
    return out


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_jobs_2_gives_one_process_report_on_every_capture(capture: Path) -> None:
    assert _read(capture, "json", "--jobs", "2") == _read(capture, "json")
    shards, alone = _jsonl(_read(capture, "jsonl", "-j", "2")), _jsonl(_read(capture, "jsonl"))
    assert sorted(map(json.dumps, shards)) == sorted(map(json.dumps, alone))


def test_jobs_1_on_one_file_is_the_plain_read() -> None:
    """`-j 1 FILE` went through the pool of independent files: an extra process, twice the
    memory, and the `ended` lines folded into their attempts (a JSONL reader never saw
    them)."""
    lives = REPO / "captures" / "websocket_lives.pcap"
    alone = _read(lives, "jsonl")
    assert '"event": "ended"' in alone
    assert _read(lives, "jsonl", "--jobs", "1") == alone


def generated_mix(path: Path, size: str, seed: int) -> Path:
    """A capture of the benchmark mix at ``path``, handshake-dense (benchmarks/generate.py)."""
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "generate.py"), str(path),
                    "--size", size, "--handshake-weight", "0.8", "--seed", str(seed)],
                   check=True, capture_output=True, timeout=120)
    return path


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small capture of the benchmark mix, handshake-dense."""
    return generated_mix(tmp_path_factory.mktemp("scale") / "mix.pcap", "6M", 7)


@pytest.mark.parametrize("fmt", SORTED_FORMATS)
def test_jobs_gives_identical_sorted_output_on_the_benchmark_mix(bench: Path, fmt: str) -> None:
    alone = _read(bench, fmt)
    assert "succeeded" in alone  # the mix has attempts of every kind
    assert _read(bench, fmt, "--jobs", "2") == alone
    if fmt == "json":
        assert _read(bench, fmt, "--jobs", "3") == alone


def test_jsonl_of_shards_is_in_decision_order(bench: Path) -> None:
    shards = _read(bench, "jsonl", "--jobs", "2").splitlines()
    alone = _read(bench, "jsonl").splitlines()
    assert len(shards) == len(alone) > 50
    assert list(map(unnumbered, shards)) == list(map(unnumbered, merge_order(bench, alone)))


def test_an_attempt_is_keyed_by_the_frame_that_decided_it(tmp_path: Path) -> None:
    """The merge of shards orders by the frame being read when an attempt was decided. For
    a segment the compiled skip took, that was the reader's next record (the skip stops
    after it, and the reader reads on at once): one process's skip took a 302 (frame 10) and
    keyed it 11, with an unanswered attempt decided by frame 11 and begun earlier, so it came
    first; the shard of that one dropped frame 10 unseen, took its FIN in C and keyed it 12,
    so it came second. Here frame 10 decides the redirect and frame 11 the other, in one
    process and in shards, compiled or not."""
    start = 1_700_000_000.0
    quiet = Conversation(client=("10.1.0.1", 22794), server=("192.168.10.16", 80), start=start)
    quiet.handshake()
    quiet.client(websocket_request("chat.example", "/chat"))
    quiet.server_fin(delay=0.003)
    moved = Conversation(client=("10.1.0.1", 24802), server=("192.168.10.13", 8080),
                         start=start + 0.001)
    moved.handshake()
    moved.client(websocket_request("chat.example", "/chat"))
    moved.server(http_response(302, "Found", [("Location", "https://chat.example/chat"),
                                              ("Content-Length", "0")]), delay=0.005)
    quiet.client_fin(delay=0.0031)  # frame 11, right after the 302
    quiet.server_ack()
    path = tmp_path / "two.pcap"
    write_pcap(path, [quiet, moved])
    assert shard_of(bytes([192, 168, 10, 16, 0, 80]), 2) != shard_of(
        bytes([192, 168, 10, 13, 0x1F, 0x90]), 2)  # one in each shard
    for compiled in (True, False):
        keys = {}
        for owner in (None, Owner(0, 2), Owner(1, 2)):
            analysis = Analysis(owns=owner, compiled=compiled)
            for frame, d in decisions(analysis, read_records([str(path)], [])):
                keys[d.attempt.first_frame, owner is None] = frame
        assert keys == {(6, True): 11, (8, True): 10, (6, False): 11, (8, False): 10}, compiled


def test_decision_frames_compiled_are_the_plain_ones() -> None:
    """Every capture's decision frames (`decisions`), with the compiled skip and without."""
    def frames(capture: Path, compiled: bool) -> list[tuple[int, object]]:
        analysis = Analysis(secrets=_secrets(capture), lifetimes=True, compiled=compiled)
        return [(frame, d.key if isinstance(d, Ended) else d.attempt.first_frame)
                for frame, d in decisions(analysis, read_records([str(capture)], []))]

    for capture in CAPTURES:
        assert frames(capture, True) == frames(capture, False), capture.name


@pytest.mark.parametrize("capture", [c for c in CAPTURES if c.name in (
    "nginx_proxy_ok.pcap", "ws_close_1008.pcap", "socketio_no_sticky_sessions.pcap",
    "redirect_302.pcap", "wss_aiohttp.pcap")], ids=lambda p: p.name)
def test_jobs_gives_identical_sorted_output_in_every_format(capture: Path) -> None:
    for fmt in SORTED_FORMATS:
        assert _read(capture, fmt, "--jobs", "2") == _read(capture, fmt), fmt


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(p) for p in text.split()]


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Long enough to read that a signal lands mid-run (seconds, with two workers)."""
    return generated_mix(tmp_path_factory.mktemp("scale") / "big.pcap", "150M", 3)


def _start(big: Path | list[Path], stdout: int | None = subprocess.PIPE,
           processes: int = 2) -> tuple[subprocess.Popen[bytes], list[int]]:
    """`read -j 2 -F jsonl` of ``big`` (or of several files), and its children once
    ``processes`` have started (the two workers; and a feeder for an xz or bzip2 capture)."""
    captures = big if isinstance(big, list) else [big]
    process = subprocess.Popen([sys.executable, "-m", "analyzer", "read", "-j", "2",
                                "-F", "jsonl", *map(str, captures)], cwd=REPO, stdout=stdout,
                               stderr=subprocess.PIPE)
    children: list[int] = []
    deadline = time.monotonic() + 20
    while len(children) < processes and time.monotonic() < deadline and process.poll() is None:
        children = _children(process.pid)
        time.sleep(0.02)
    return process, children


class _Signalled(Exception):
    pass


def _raise(number: int, frame: object) -> None:
    raise _Signalled


def test_a_signal_waits_until_the_parent_has_taken_a_whole_message() -> None:
    """Raised inside the queue's read, a signal's exception cut a message in half and the stop
    then read garbage (EOFError, exit 70, results lost: seen under load). The parent's read
    holds SIGTERM off until it returns, so the exception comes between two messages."""
    sharded = ShardedRead(str(REPO / "captures" / "ws_ok_websockets.pcap"), 2, Analysis(), [])
    previous = signal.signal(signal.SIGTERM, _raise)
    # The workers are not started: the read waits its whole timeout for a message.
    timer = threading.Timer(0.1, signal.pthread_kill, (threading.main_thread().ident,
                                                       signal.SIGTERM))
    started = time.monotonic()
    try:
        timer.start()
        with pytest.raises(_Signalled):
            sharded._receive(0.6)
        waited = time.monotonic() - started
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, previous)
        sharded.stop()
    assert waited >= 0.55, f"raised after {waited:.2f} s, inside the read"


def signalled_run(captures: Path | list[Path], number: int, status: int,
                  delay: float = 0.0) -> list[dict[str, Any]]:
    """`read -j 2 -F jsonl` of ``captures`` signalled once its first line is out (and
    ``delay`` seconds more): it ends with ``status``, says the results are partial, prints
    the summary with the frames read so far, and every worker is gone. Its JSON lines."""
    process, workers = _start(captures)
    try:
        assert len(workers) == 2, "the two workers did not start"
        assert process.stdout is not None
        first = process.stdout.readline()  # an attempt is out: the run is under way
        assert first.startswith(b"{")
        time.sleep(delay)
        process.send_signal(number)
        out = process.stdout.read()  # not communicate(): readline's buffer holds some already
        assert process.stderr is not None
        err = process.stderr.read()
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == status, err
    assert b"the results are partial" in err and b"\nAttempts: " in err  # the summary came
    assert re.search(rb"\nFrames: [1-9]", err), err  # with the totals so far
    deadline = time.monotonic() + 5
    while not all(map(_gone, workers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(map(_gone, workers))
    return [json.loads(line) for line in [first, *out.splitlines()]]


@pytest.mark.parametrize("number, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_prints_results_so_far_and_stops_every_worker(
        big: Path, number: int, status: int) -> None:
    lines = signalled_run(big, number, status)
    assert [line["number"] for line in lines] == list(range(1, len(lines) + 1))


def closed_pipe_stops_every_process(capture: Path | list[Path], processes: int = 2) -> None:
    """`read -j 2 -F jsonl` whose reader goes away after the first line: status 141,
    nothing on standard error, and every process it started (``processes``) gone."""
    read, write = os.pipe()
    process, children = _start(capture, stdout=write, processes=processes)
    os.close(write)
    try:
        assert len(children) == processes, f"started {children}"
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


def test_a_closed_pipe_ends_with_141_and_stops_every_worker(big: Path) -> None:
    closed_pipe_stops_every_process(big)


def _proxied(path: Path) -> Path:
    """40 clients through one proxy (front legs to 10.0.0.2:80, back legs to 10.0.0.3:8080:
    two servers, so the legs of one handshake may be judged in two workers)."""
    from tests.builder import busy_proxy, write_pcap

    convs = busy_proxy()
    write_pcap(path, convs)
    return path


@pytest.mark.parametrize("fmt, sent_whole", [("csv", 0), ("json", 0), ("csv", 2000),
                                              ("json", 2000)])
def test_spilled_report_of_shards_rebuilds_proxy_fronts_in_the_merged_order(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, bench: Path, fmt: str,
        sent_whole: int) -> None:
    """Past SPILL_AFTER (report/kept.py) the fronts that correlation changes are rebuilt by a
    second sharded run, which must decide the attempts in the same merged order. With
    `--jobs`, the workers send the first WHOLE_ATTEMPTS attempts whole (report/digest.py):
    the fronts are read back from those (2000), or rebuilt (0)."""
    from analyzer.report import digest, kept

    monkeypatch.setattr(digest, "WHOLE_ATTEMPTS", sent_whole)
    capture = _proxied(tmp_path / "proxied.pcap")
    alone = _read(capture, fmt)
    assert alone.count("proxy_rekeyed") >= 20  # json says it twice (id and reasons)
    monkeypatch.setattr(kept, "SPILL_AFTER", 0)
    assert _read(capture, fmt, "--jobs", "2") == alone
    monkeypatch.setattr(kept, "SPILL_AFTER", 10**9)
    whole = _read(bench, fmt)
    monkeypatch.setattr(kept, "SPILL_AFTER", 0)
    assert _read(bench, fmt, "--jobs", "2") == whole


def _two_hosts(where: Path, behind: float) -> tuple[Path, Path]:
    """40 handshakes through a proxy that forwards the key and strips Upgrade/Connection from
    every other one, captured on two hosts: the front legs on the proxy, the back legs on the
    backend, whose clock is ``behind`` seconds slow."""
    from tests.builder import Conversation, websocket_request, websocket_response, write_pcap

    fronts, backs = [], []
    t = 1_700_000_000.0
    for i in range(40):
        key = f"client-key-{i:02d}-AAAAAA=="
        front = Conversation(client=(f"10.0.1.{i + 1}", 50000 + i), server=("10.0.0.2", 80),
                             start=t + 0.05 * i)
        front.handshake()
        front.client(websocket_request("chat.example.com", "/ws", key=key))
        back = Conversation(client=("10.0.0.2", 41000 + i), server=("10.0.0.3", 8080),
                            start=t + 0.05 * i + 0.01 - behind)
        back.handshake()
        stripped = ("Upgrade", "Connection") if i % 2 else ()
        back.client(websocket_request("chat.example.com", "/ws", key=key, omit=stripped))
        back.server(websocket_response(key), delay=0.002)
        front.server(websocket_response(key), delay=0.03 + behind)
        fronts.append(front)
        backs.append(back)
    write_pcap(where / "proxy.pcap", fronts)
    write_pcap(where / "backend.pcap", backs)
    return where / "proxy.pcap", where / "backend.pcap"


def _paired_right(out: str) -> bool:
    """Every front leg says 'stripped' exactly when its own back leg was (odd clients)."""
    rows = [line.split(",") for line in out.splitlines()[1:] if ",10.0.0.2:80," in line]
    assert len(rows) == 40
    return all(("proxy_stripped_upgrade" in ",".join(row))
               == bool((int(row[2].split(":")[1]) - 50000) % 2)
               and "proxy_answered_itself" not in ",".join(row) for row in rows)


def test_proxy_legs_on_two_hosts_pair_despite_clock_skew(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Independent captures (--jobs over several files) of the two sides of a proxy: the
    backend's clock 0.3 s behind puts each back leg before its front leg; within CLOCK_SKEW
    the legs still pair by key, and the fronts whose Upgrade the proxy stripped say so."""
    proxy, backend = _two_hosts(tmp_path, behind=0.3)
    from analyzer.scale import files

    runs = []  # of the files: a second is a rebuild of the fronts correlation judges again
    read_files = files.FilesRead.__init__
    monkeypatch.setattr(files.FilesRead, "__init__",
                        lambda self, *a, **k: (runs.append(a), read_files(self, *a, **k))[1])
    assert _paired_right(_read(proxy, "csv", "--jobs", "2", str(backend)))
    # each file's worker sent its legs whole: a leg's other side is in the other file, so
    # no worker can tell a leg (scale/shard.py `Owner.may_be_a_leg` is for one file)
    assert len(runs) == 1
    monkeypatch.undo()
    from analyzer import cli_read

    monkeypatch.setattr(cli_read, "CLOCK_SKEW", 0.0)  # without the tolerance: wrong or no pairs
    assert not _paired_right(_read(proxy, "csv", "--jobs", "2", str(backend)))
    monkeypatch.undo()
    from analyzer.report import kept

    monkeypatch.setattr(kept, "SPILL_AFTER", 0)  # the spilled report pairs records alike
    assert _paired_right(_read(proxy, "csv", "--jobs", "2", str(backend)))
    monkeypatch.undo()
    far = tmp_path / "far"  # past the tolerance
    far.mkdir()
    proxy, backend = _two_hosts(far, behind=1.5)
    assert not _paired_right(_read(proxy, "csv", "--jobs", "2", str(backend)))


def test_shards_send_diagnoses_with_their_attribution_built() -> None:
    """Attribution is built lazily (verdict.Diagnosis.who); a worker builds it before sending,
    so that the parent, the serial part of a sharded run, does not."""
    from analyzer.verdict import Diagnosis, judge_eagerly

    sharded = ShardedRead(str(REPO / "captures" / "nginx_proxy_ok.pcap"), 2, Analysis(), [])
    try:
        got = [d for d in sharded if isinstance(d, Diagnosis)]
    finally:
        sharded.stop()
    assert got
    for diagnosis in got:
        assert diagnosis.who is not None
        eager = judge_eagerly(diagnosis.attempt, diagnosis.facts, diagnosis.findings)
        assert diagnosis.who == eager.who


def test_a_websocket_open_at_the_end_lives_until_the_capture_ends_in_a_shard_too(
        tmp_path: Path) -> None:
    """A WebSocket still open when the capture ends lived until the capture's last record,
    whichever connection that was. A shard's clock stopped at the last record of its own
    connections (the other shards' are skipped before the reassembler), so with --jobs 2 it
    lived 3 s less here; one process had the same fault when the last records were taken in
    the compiled skip."""
    from tests.builder import (
        Conversation,
        Opcode,
        http_request,
        websocket_request,
        websocket_response,
        write_pcap,
    )

    socket = Conversation(client=("10.0.1.1", 50000), server=("10.0.0.2", 80),
                          start=1_700_000_000.0)  # shard 1 of 2
    socket.handshake()
    socket.client(websocket_request("chat.example.com", "/ws"))
    socket.server(websocket_response(), delay=0.01)
    for _ in range(3):  # past the 2 s watch, then silent and never closed
        socket.server_ws_frame(Opcode.TEXT, b"tick", delay=1.0)
    later = Conversation(client=("10.0.1.2", 50001), server=("10.0.0.3", 80),
                         start=1_700_000_002.0)  # shard 0 of 2
    later.handshake()
    later.client(http_request("POST", "/upload", [("Host", "files.example.com"),
                                                  ("Content-Length", "30000")]))
    for _ in range(6):  # the capture's last records, 3 s after the WebSocket's
        later.client(b"x" * 5000, delay=0.6)
    path = tmp_path / "open_at_end.pcap"
    write_pcap(path, [socket, later])
    alone = json.loads(_read(path, "json"))
    lifetime = next(a["lifetime"] for a in alone["attempts"] if a["lifetime"])
    assert lifetime["how"] == "open"
    assert lifetime["duration_s"] > 5.5, lifetime  # switch at 0.01 s, capture end at 5.6 s
    assert _read(path, "json", "--jobs", "2") == _read(path, "json")


def _stepping_back(path: Path) -> Path:
    """A last record stamped earlier than the frames before it: a WebSocket request nobody
    answers (to 10.0.0.2:8080, t0 + 7 ms); a request and a FIN to a server of the other shard
    (t0 + 27 ms: a FIN goes to Python in the process that follows its connection); last, a
    bare ACK of an SSH connection (not HTTP: every process drops its frames in the compiled
    skip) stamped t0 + 17 ms. The first request's wait runs to the capture's end."""
    t0 = 1_700_000_000.0
    port = next(p for p in range(9000, 9100)
                if shard_of(bytes([10, 0, 0, 5]) + p.to_bytes(2, "big"), 2)
                != shard_of(bytes([10, 0, 0, 2]) + (8080).to_bytes(2, "big"), 2))
    first = Conversation(client=("10.0.0.1", 50000), server=("10.0.0.2", 8080), start=t0)
    first.handshake()
    first.client(websocket_request("example.com", "/a"), delay=0.005)
    other = Conversation(client=("10.0.0.1", 50001), server=("10.0.0.5", port), start=t0)
    other.handshake()
    other.client(websocket_request("example.com", "/b"), delay=0.025)
    other.client_fin()
    ssh = Conversation(client=("10.0.0.1", 50002), server=("10.0.0.9", 22), start=t0)
    ssh.handshake()
    ssh.client(b"SSH-2.0-OpenSSH_9.6\r\n", delay=0.001)
    ack = ssh.server_ack(delay=0.013)[0]
    in_order = sorted([s for s in ssh.records if s.index != ack] + first.records
                      + other.records, key=lambda s: s.time)
    records = [*in_order, ssh.records[ack]]  # stamped before the frames ahead of it
    assert records[-2].time - records[-1].time > 0.005
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    body = b"".join(
        struct.pack("<IIII", int(s.time), round(s.time % 1 * 1e6), len(f), len(f)) + f
        for s in records for f in [s.frame()])
    path.write_bytes(header + body)
    return path

def test_shards_end_the_capture_at_its_last_record_as_one_process(tmp_path: Path) -> None:
    """The capture ends at its last record's time, not at the last frame a process happened
    to read in Python (which the skip decides, and differs between shards): shards said the
    first request waited 9 ms, one process 21 ms."""
    capture = _stepping_back(tmp_path / "back.pcap")
    alone = _read(capture, "json")
    assert "capture ended 9 ms after the request" in alone  # (21 ms to the FIN before it)
    assert _read(capture, "json", "--jobs", "2") == alone
