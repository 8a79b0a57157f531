"""The benchmark runner works end to end and our findings match the generator's ground truth.

No timing is asserted here: timings belong in benchmarks/README.md, not in a test verdict.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_quick_benchmark_matches_ground_truth(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run.py"), "--quick", "--runs", "1",
         "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    results = json.loads((tmp_path / "results.json").read_text())
    # both mixes side by side: the repo's and the handshake-dense one
    assert [c["mix"] for c in results["captures"]] == ["default", "dense"]
    for capture in results["captures"]:
        for name in ("ours_vs_truth", "pcapng_vs_truth"):
            check = capture[name]
            assert check["expected"] > 100
            assert check["matched"] == check["expected"], check["mismatches"]
            assert check["unexpected"] == []
        assert check["frames_ok"] and check["ordinary_ok"]
        # Every scenario of the generator appears and is diagnosed as expected.
        assert len(check["per_scenario"]) == 12
        assert {"ours", "floor"} <= set(capture["tools"])
    assert results["jobs"]["wall_by_jobs"]
    report = (tmp_path / "report.md").read_text()
    assert "| dense | 50 MB |" in report and "the slower mix per byte" in report


def test_dense_mix_is_denser_with_whole_conversations(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from generate import generate
    finally:
        sys.path.pop(0)
    default = generate(str(tmp_path / "a.pcap"), 30_000_000, seed=3, concurrency=64)
    dense = generate(str(tmp_path / "d.pcap"), 30_000_000, seed=3, concurrency=64, mix="dense")
    assert len(dense["attempts"]) > 2 * len(default["attempts"])
    assert {a["scenario"] for a in dense["attempts"]} == {a["scenario"]
                                                          for a in default["attempts"]}
    # most handshakes of the dense mix are WebSockets that carry a conversation
    successes = sum(a["scenario"] == "ws_success" for a in dense["attempts"])
    assert successes > 0.35 * len(dense["attempts"])


def test_generator_is_deterministic(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from generate import generate
    finally:
        sys.path.pop(0)
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    truth_a = generate(str(a), 2_000_000, seed=7, concurrency=16)
    truth_b = generate(str(b), 2_000_000, seed=7, concurrency=16)
    assert a.read_bytes() == b.read_bytes()
    assert truth_a == truth_b


def test_handshake_weight_makes_a_sparser_capture(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from generate import generate
    finally:
        sys.path.pop(0)
    dense = generate(str(tmp_path / "d.pcap"), 5_000_000, seed=3, concurrency=16)
    sparse = generate(str(tmp_path / "s.pcap"), 5_000_000, seed=3, concurrency=16,
                      handshake_weight=0.02)
    # every scenario still appears at least once, but far fewer handshakes per byte
    assert {a["scenario"] for a in sparse["attempts"]} == {a["scenario"]
                                                           for a in dense["attempts"]}
    assert len(sparse["attempts"]) * 3 < len(dense["attempts"])


def test_ground_truth_check_accepts_connection_attempts_counted_not_listed(tmp_path: Path) -> None:
    # Past the first 1,000 refused or unanswered connections the analyzer counts them by
    # reason in the summary instead of listing them: the check matches those against the
    # counts, and only up to the counts.
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from run import check_ours
    finally:
        sys.path.pop(0)
    truth = {"frames": 9, "ordinary_http_exchanges": 0, "attempts": [
        {"client": f"10.0.0.1:{port}", "scenario": "refused", "delivery": "plain",
         "verdict": "refused", "reason": "tcp_refused"} for port in (1, 2, 3)]}
    listed = {"client": "10.0.0.1:1", "verdict": "refused", "reasons": ["tcp_refused"]}
    (tmp_path / "out").write_text(json.dumps(listed) + "\n")
    err = tmp_path / "err"
    for unlisted, matched in ((2, 3), (1, 2)):
        err.write_text("Frames: 9, TCP segments: 9, connections: 3 (0 HTTP), ordinary HTTP "
                       "exchanges: 0\nConnection attempts not listed (never reached HTTP; "
                       f"only the first 1000 are): {unlisted} (tcp_refused x{unlisted})\n")
        check = check_ours(tmp_path / "out", err, truth)
        assert check["matched"] == matched and check["frames_ok"] and check["ordinary_ok"]


def test_the_differential_run_finds_its_twins_equal_and_a_difference_when_there_is_one(
        tmp_path: Path) -> None:
    """benchmarks/twins.py on a few bundled captures: the JSONL folded equals the sorted
    JSON, a capture equals itself written as pcapng and with every record twice, and a
    spilled report equals the one in memory. The near miss: two different captures under
    the `twice` check's comparison do differ, so the comparison can fail."""
    import random

    sys.path.insert(0, str(REPO / "benchmarks"))
    import twins

    captures = [str(REPO / "captures" / name) for name in (
        "websocket_lives.pcap", "nginx_proxy_ok.pcap", "wss_aiohttp.pcap")]
    rng = random.Random(1)
    for name in ("jsonl", "pcapng", "twice"):
        assert list(twins.CHECKS[name](captures, 0, rng)) == [], name
    import analyzer.report.kept as kept

    before = kept.SPILL_AFTER
    assert list(twins.check_spill(captures, 3, rng)) == []
    assert before == kept.SPILL_AFTER  # (this process's other tests keep the real one)
    keys = twins.keylog(captures[2])
    assert keys and twins._summary(captures[0], []) != twins._summary(captures[2], keys)


def test_alternate_runs_each_command_every_round_and_gives_ratios(tmp_path: Path) -> None:
    """benchmarks/alternate.py (the ratios against the floor loop and between two trees):
    every command runs once a round, and a command that does more work shows a larger CPU
    median and ratio (a busy loop against an empty one; no timing verdict beyond that)."""
    log = tmp_path / "runs"
    empty = f"echo x >> {log}; {sys.executable} -c pass"
    busy = f"echo y >> {log}; {sys.executable} -c 'sum(range(3_000_000))'"
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "alternate.py"), "--rounds", "3",
         f"empty={empty}", f"busy={busy}"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert log.read_text().split() == ["x", "y"] * 3
    rows = {line.split("|")[1].strip(): line.split("|") for line in done.stdout.splitlines()
            if line.startswith("| empty") or line.startswith("| busy")}
    assert rows["empty"][4].strip() == "1.00x"
    assert float(rows["busy"][4].strip().rstrip("x")) > 1.5
    bad = subprocess.run([sys.executable, str(REPO / "benchmarks" / "alternate.py"), "nothing"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode != 0 and "NAME=COMMAND" in bad.stderr


def test_tracker_rounds_counts_each_kind_and_leaves_the_tracker_as_it_was(tmp_path: Path) -> None:
    """benchmarks/tracker_rounds.py (the tracker's Python rounds by kind, to size a lever):
    on the dense mix every kind of round shows, the run's results are those of a run
    without it, and `on_data` is the tracker's own again afterwards (no timing verdict)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import tracker_rounds
        from generate import generate
    finally:
        sys.path.pop(0)
    from analyzer.exchange.tracker import ConnectionTracker
    from analyzer.pipeline import Analysis
    from analyzer.source import read_records

    path = tmp_path / "dense.pcap"
    generate(str(path), 3_000_000, seed=4, concurrency=64, mix="dense")
    own = ConnectionTracker.on_data
    counts, nanoseconds, run = tracker_rounds.measure(str(path))
    assert ConnectionTracker.on_data is own
    assert {"detect", "server head, offer", "server head, plain", "client head",
            "server body", "switch"} <= set(counts)
    assert set(nanoseconds) == set(counts) and all(n > 0 for n in nanoseconds.values())
    plain = Analysis(lifetimes=True)
    for _ in plain.feed_records(read_records([str(path)], [])):
        pass
    plain.finish()
    assert run.stats.ordinary_exchanges == plain.stats.ordinary_exchanges > 0
    assert run.stats.connections == plain.stats.connections
