"""`read --jobs N FILE -F jsonl`: the workers send each attempt's line rendered (a `Digest`,
analyzer/report/digest.py) and the parent numbers, filters, counts and prints them. The lines,
their numbers, the summary and the exit status are one process's, under every filter."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from analyzer.exchange.model import AttemptKind
from analyzer.filters import Selection
from analyzer.life.fold import WINDOW_OVER
from analyzer.pipeline import Analysis
from analyzer.report.digest import Digest, Digesting
from analyzer.report.render import render_jsonl_line
from analyzer.report.stream import Tally
from analyzer.scale.shard import decisions
from analyzer.source import read_records
from analyzer.verdict import Diagnosis
from tests.helpers import run_cli
from tests.test_scale import merge_order, unnumbered

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def dense(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small capture of the handshake-dense benchmark mix (benchmarks/generate.py)."""
    path = tmp_path_factory.mktemp("digest") / "dense.pcap"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "generate.py"), str(path),
                    "--size", "8M", "--mix", "dense", "--seed", "3"],
                   check=True, capture_output=True, timeout=120)
    return path


def _run(capture: Path, *options: str) -> tuple[int, list[str], str]:
    keys = capture.with_suffix(".keys")
    keylog = ["--keylog", str(keys)] if keys.exists() else []
    result = run_cli("read", "-F", "jsonl", *keylog, *options, str(capture))
    return result.exit_code, result.stdout.splitlines(), result.stderr


OPTIONS = [(), ("--tcp",), ("--failed",), ("--verdict", "succeeded"),
           ("--reason", "ws_version_not_13", "--tcp"), ("--port", "8080", "--failed")]


@pytest.mark.parametrize("options", OPTIONS, ids=" ".join)
def test_jsonl_with_jobs_is_one_process_jsonl_in_decision_order(
        dense: Path, options: tuple[str, ...]) -> None:
    status, alone, summary = _run(dense, *options)
    shards = _run(dense, "--jobs", "2", *options)
    assert len(alone) >= (50 if not options else 3)
    assert shards[0] == status
    # numbered in the merged order: 1.. among the listed attempts, the ones a filter leaves
    # out keep their numbers (an `ended` line repeats its attempt's number)
    numbers = [json.loads(line)["number"] for line in shards[1] if '"decided"' in line]
    assert numbers == sorted(set(numbers))
    assert options or numbers == list(range(1, len(numbers) + 1))
    # the same lines as one process, in its decision order
    assert list(map(unnumbered, shards[1])) == list(map(unnumbered, merge_order(dense,
                                                                                  alone)))
    assert shards[2] == summary  # the summary on standard error: counts, groups, reasons


@pytest.mark.parametrize("capture, options", [
    ("wss_aiohttp.pcap", ("--show-secrets",)),
    ("wss_aiohttp.pcap", ()),
    ("websocket_lives.pcap", ()),
    ("websocket_lives.pcap", ("--min-lifetime", "1")),
    ("refused.pcap", ("--tcp",)),
    ("socketio_no_sticky_sessions.pcap", ("--fail-on", "failed")),
], ids=lambda v: v if isinstance(v, str) else " ".join(v))
def test_jsonl_with_jobs_on_bundled_captures(capture: str, options: tuple[str, ...]) -> None:
    path = REPO / "captures" / capture
    alone = _run(path, *options)
    assert _run(path, "--jobs", "2", *options) == (alone[0], merge_order(path, alone[1]),
                                                   alone[2])


def _diagnoses(capture: Path) -> list[Diagnosis]:
    analysis = Analysis(lifetimes=True)
    return [d for _, d in decisions(analysis, read_records([str(capture)], []))
            if isinstance(d, Diagnosis)]


def test_a_digest_holds_what_the_parent_reads_of_its_diagnosis(dense: Path) -> None:
    """Field by field against the diagnosis: the line, the filters, the summary's counts."""
    diagnoses = _diagnoses(dense)
    selection = Selection(failed=True)
    by_digest, by_diagnosis = Tally(), Tally()
    for number, d in enumerate(diagnoses, 1):
        digest = dataclasses.replace(Digesting(selection, False).digest(d), number=number)
        assert isinstance(digest, Digest)
        assert digest.line() == render_jsonl_line(dataclasses.replace(d, number=number))
        assert digest.listed == selection.listed(d)
        assert digest.kept == selection.keep(d)
        assert (digest.transport_reason is None) == (d.attempt.kind is not AttemptKind.TCP)
        assert digest.group is not None and digest.record is digest.whole is None
        by_digest.count(digest.verdict, digest.group, digest.time)
        by_diagnosis.add(d)
    assert (by_digest.verdicts, by_digest.reasons, by_digest.groups) == (
        by_diagnosis.verdicts, by_diagnosis.reasons, by_diagnosis.groups)
    assert by_digest.attempts == len(diagnoses) > 100
    assert any(Digesting(selection, False).digest(d).transport_reason for d in diagnoses)


@pytest.mark.parametrize("send_every", [1, 1000])
def test_progress_sends_the_attempts_decided_before_it(
        monkeypatch: pytest.MonkeyPatch, dense: Path, send_every: int) -> None:
    """A worker sends decided attempts in batches (`_Outbox`) and, every PROGRESS_EVERY, the
    frame it has read up to, after which the parent releases what was decided before it:
    progress every millisecond, batches never full (or of one), the order is still one
    process's decision order."""
    from analyzer.scale import local

    monkeypatch.setattr(local, "PROGRESS_EVERY", 0.001)
    monkeypatch.setattr(local, "SEND_EVERY", send_every)
    _, alone, summary = _run(dense)
    _, shards, merged_summary = _run(dense, "--jobs", "2")
    assert list(map(unnumbered, shards)) == list(map(unnumbered, merge_order(dense, alone)))
    assert merged_summary == summary


@pytest.mark.parametrize("fmt", ["json", "table", "csv"])
def test_sorted_report_with_jobs_judges_living_attempts_again_from_their_wholes(
        monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    """An attempt whose connection lives on is sent whole whatever the bounds (its end judges
    it again, report/kept.py `Spill.update`): with no other attempt sent whole, the report
    with the lifetimes is one process's."""
    from analyzer.report import digest

    lives = REPO / "captures" / "websocket_lives.pcap"
    alone = run_cli("read", "-F", fmt, str(lives))
    monkeypatch.setattr(digest, "WHOLE_ATTEMPTS", 0)
    shards = run_cli("read", "-F", fmt, "--jobs", "2", str(lives))
    assert "dropped" in alone.stdout  # verdicts that only the ends give
    assert (shards.exit_code, shards.stdout, shards.stderr) == (
        alone.exit_code, alone.stdout, alone.stderr)


PROXIED = [REPO / "captures" / name
           for name in ("apache_proxy.pcap", "nginx_proxy_no_upgrade_headers.pcap")]


def _legs_sent_whole(capture: Path) -> tuple[set[int], set[int], int]:
    """First frames of the attempts a worker (shard 0 of 1) sends whole, of the attempts in
    a proxy pair (correlate._pair_legs over one process's), and how many attempts."""
    from analyzer.correlate import _pair_legs
    from analyzer.report.kept import KeptAttempts
    from analyzer.scale.shard import Owner

    owner = Owner(0, 1, roles=True)
    # (with a rebuild: a store without one keeps every attempt whole)
    store = KeptAttempts("table", lambda d: True, rebuild=lambda: iter(()))
    digesting = Digesting(Selection(), False, store)
    digesting.may_be_a_leg = owner.may_be_a_leg
    whole, diagnoses = set(), []
    for _, d in decisions(Analysis(owns=owner, lifetimes=True),
                          read_records([str(capture)], [])):
        if isinstance(d, Diagnosis):
            diagnoses.append(d)
            if digesting.digest(d).whole is not None:
                whole.add(d.attempt.first_frame)
    paired = {d.attempt.first_frame for pair in _pair_legs(diagnoses) for d in pair}
    return whole, paired, len(diagnoses)


def test_a_worker_sends_whole_the_attempts_that_may_be_proxy_legs(dense: Path) -> None:
    """Correlation judges only proxy legs again: a worker sends whole every attempt of a
    pair (both legs captured on one host, `-i any`), and on the dense mix, which has no
    proxy, none but those whose connection lives on (pickling was ≈ 90 µs each)."""
    for capture in PROXIED:
        whole, paired, _ = _legs_sent_whole(capture)
        assert paired and paired <= whole, capture.name
    whole, paired, count = _legs_sent_whole(dense)
    assert not paired and count > 100
    lives = {d.attempt.first_frame for d in _diagnoses(dense)
             if d.attempt.tcp.end_reason == WINDOW_OVER}
    assert whole == lives


@pytest.mark.parametrize("fmt", ["json", "table"])
def test_a_proxy_leg_the_worker_did_not_send_whole_is_rebuilt(
        monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    """Where the guess misses (a proxy that connects from another address than it listens
    on), the report rebuilds the legs correlation judges again: one process's report."""
    from analyzer.scale.shard import Owner

    monkeypatch.setattr(Owner, "may_be_a_leg", lambda self, attempt: False)
    for capture in PROXIED:
        alone = run_cli("read", "-F", fmt, str(capture))
        assert "proxy_stripped_upgrade" in alone.stdout
        shards = run_cli("read", "-F", fmt, "--jobs", "2", str(capture))
        assert (shards.exit_code, shards.stdout) == (alone.exit_code, alone.stdout)
