"""Real captures of real software (captures/) diagnosed as the software itself behaved.

captures/expected.json is written by captures/generate.py from what the real clients and servers
did and said; these tests hold the analyzer to it. A case where the analyzer disagrees with the
software is listed in DISAGREEMENTS (strict xfail), never fixed by editing the expectation.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import sys
from collections import defaultdict
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from analyzer.checks.catalogue import CATALOGUE
from analyzer.life.fold import fold, with_groups
from analyzer.pipeline import Analysis
from analyzer.source import CaptureWarning, read_records
from analyzer.tls.keylog import load_keylog
from analyzer.verdict import Diagnosis

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
EXPECTED: list[dict[str, Any]] = json.loads((CAPTURES / "expected.json").read_text())["captures"]

# (file, index of the attempt in expected.json) -> why the analyzer's answer differs from what
# the real software did. Each entry is a strict xfail: fixing the analyzer makes it fail loudly.
DISAGREEMENTS: dict[tuple[str, int], str] = {}
# Entries with "pending" hold expectations for a stage that does not exist yet (the TLS
# captures of captures/generate_tls.py: their tls_* reasons are proposals, and the analyzer
# needs their key logs). They are skipped here until that stage removes the field;
# tests/test_tls_captures.py checks those files against tshark meanwhile.
PENDING = {e["file"]: e["pending"] for e in EXPECTED if e.get("pending")}


def _key(d: Diagnosis) -> tuple[str, str | None, str | None]:
    head = d.attempt.request_head
    return (str(d.attempt.server), head.method if head else None, head.target if head else None)


def diagnose_file(path: Path) -> tuple[list[Diagnosis], list[CaptureWarning]]:
    """As `read` does: records through `feed_records` (a pcapng's embedded key log is read),
    with the capture's own key log when expected.json names one."""
    warnings: list[CaptureWarning] = []
    keylog = next((e.get("keylog") for e in EXPECTED if e["file"] == path.name), None)
    run = Analysis(secrets=load_keylog((CAPTURES / keylog).read_bytes()) if keylog else None,
                   lifetimes=True)
    # each attempt with its final verdict: the ends of connections followed past their watch
    # window folded in, and the rules over several ends (analyzer/life)
    diagnoses = with_groups(fold([*run.feed_records(read_records([str(path)], warnings)),
                                  *run.finish()]))
    diagnoses.sort(key=lambda d: (d.attempt.first_frame, d.attempt.time))
    return diagnoses, warnings


@functools.cache
def _cached(path: str) -> tuple[list[Diagnosis], list[CaptureWarning]]:
    return diagnose_file(Path(path))


def match(expected: list[dict[str, Any]], found: list[Diagnosis]) -> list[Diagnosis | None]:
    """Pairs each expected attempt with a diagnosis: same server, method and path, in order."""
    pool: dict[tuple[str, str | None, str | None], list[Diagnosis]] = defaultdict(list)
    for d in found:
        pool[_key(d)].append(d)
    paired: list[Diagnosis | None] = []
    for e in expected:
        candidates = pool[(e["server"], e["method"], e["path"])]
        paired.append(candidates.pop(0) if candidates else None)
    return paired


def check_attempt(expected: dict[str, Any], found: Diagnosis | None, where: str) -> None:
    assert found is not None, f"{where}: no attempt to {expected['server']} " \
        f"{expected['method']} {expected['path']} found"
    reasons = [f.check for f in found.findings]
    summary = f"{where}: found {found.verdict.value} {reasons}; the software: " \
        f"client said {expected['client_said']!r}, server said {expected['server_said']!r}"
    if expected.get("client"):
        assert str(found.attempt.client) == expected["client"], summary
    assert found.verdict.value == expected["verdict"], summary
    if expected["reason"] is not None:
        assert reasons and reasons[0] == expected["reason"], summary
    for note in expected["notes"]:
        assert note in reasons, summary
    if expected.get("status") is not None:
        assert found.attempt.response_head is not None, summary
        assert found.attempt.response_head.status == expected["status"], summary


def _cases() -> list[Any]:
    cases = []
    for entry in EXPECTED:
        for index, attempt in enumerate(entry["attempts"]):
            case_id = f"{entry['file']}#{index}:{attempt['verdict']}"
            why = DISAGREEMENTS.get((entry["file"], index))
            marks = [pytest.mark.xfail(strict=True, reason=why)] if why else []
            if entry["file"] in PENDING:
                marks = [pytest.mark.skip(reason=PENDING[entry["file"]])]
            cases.append(pytest.param(entry["file"], index, id=case_id, marks=marks))
    return cases


@pytest.mark.parametrize(("file", "index"), _cases())
def test_real_capture_attempt(file: str, index: int) -> None:
    entry = next(e for e in EXPECTED if e["file"] == file)
    diagnoses, _ = _cached(str(CAPTURES / file))
    paired = match(entry["attempts"], diagnoses)
    check_attempt(entry["attempts"][index], paired[index], f"{file}#{index}")


@pytest.mark.parametrize("file", [e["file"] for e in EXPECTED if e["file"] not in PENDING])
def test_real_capture_reads_cleanly_and_has_no_extra_attempts(file: str) -> None:
    entry = next(e for e in EXPECTED if e["file"] == file)
    diagnoses, warnings = _cached(str(CAPTURES / file))
    assert warnings == []
    assert len(diagnoses) == len(entry["attempts"]), [_key(d) for d in diagnoses]


def test_expected_json_lists_every_capture_and_only_known_ids() -> None:
    on_disk = {p.name for p in CAPTURES.iterdir() if p.suffix in (".pcap", ".pcapng")}
    assert on_disk == {e["file"] for e in EXPECTED}
    ids = {c.id for c in CATALOGUE}
    for entry in EXPECTED:
        if entry["file"] in PENDING:  # proposed ids, for a catalogue phase still to come
            continue
        for attempt in entry["attempts"]:
            assert attempt["reason"] is None or attempt["reason"] in ids
            assert set(attempt["notes"]) <= ids
            assert attempt["client_said"], f"{entry['file']}: the client's words were not recorded"
    assert any(e["format"] == "pcapng" for e in EXPECTED)
    assert any(e["link"].startswith("Linux cooked") for e in EXPECTED)


def test_disagreements_name_real_cases() -> None:
    cases = {(e["file"], i) for e in EXPECTED for i in range(len(e["attempts"]))}
    assert set(DISAGREEMENTS) <= cases


# --- the generator itself, run live -----------------------------------------------------------


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("captures_generate", CAPTURES / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


LIVE = ["ws_ok_websockets", "plain_get", "refused"]


@pytest.mark.timeout(60)
@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="regenerating captures needs root (tcpdump on loopback)")
@pytest.mark.skipif(shutil.which("tcpdump") is None,
                    reason="regenerating captures needs tcpdump (apt-get install tcpdump)")
def test_generator_regenerates_scenarios_live(tmp_path: Path) -> None:
    pytest.importorskip("websockets", reason="the generator's scenarios need websockets")
    pytest.importorskip("aiohttp", reason="the generator's scenarios need aiohttp")
    generator = _load_generator()
    entries = generator.generate(LIVE, tmp_path)
    assert [e["file"] for e in entries] == [f"{name}.pcap" for name in LIVE]
    for entry in entries:
        checked_in = next(e for e in EXPECTED if e["file"] == entry["file"])
        assert [(a["server"], a["verdict"], a["reason"]) for a in entry["attempts"]] == [
            (a["server"], a["verdict"], a["reason"]) for a in checked_in["attempts"]
        ]
        diagnoses, warnings = diagnose_file(tmp_path / entry["file"])
        assert warnings == []
        for index, (attempt, found) in enumerate(
            zip(entry["attempts"], match(entry["attempts"], diagnoses), strict=True)
        ):
            check_attempt(attempt, found, f"live {entry['file']}#{index}")


def _closed_by_websockets() -> list[Any]:
    """The bundled attempts whose python websockets client raised ConnectionClosed*."""
    return [pytest.param(entry["file"], index, id=f"{entry['file']}#{index}")
            for entry in EXPECTED if entry["file"] not in PENDING
            for index, attempt in enumerate(entry["attempts"])
            if attempt.get("client_software", "").startswith("websockets")
            and "ConnectionClosed" in attempt["client_said"]]


@pytest.mark.parametrize(("file", "index"), _closed_by_websockets())
def test_the_attribution_says_what_python_websockets_printed_of_a_close(file: str,
                                                                        index: int) -> None:
    """What the real python websockets client printed when its WebSocket was closed (both
    Closes, in the order they went: attribution/closing.py; or none, past its watch window:
    "no close frame received or sent") is the attribution's line for it, word for word (the
    recorded words may say what came before and the exception's cause after it)."""
    entry = next(e for e in EXPECTED if e["file"] == file)
    diagnoses, _ = _cached(str(CAPTURES / file))
    found = match(entry["attempts"], diagnoses)[index]
    assert found is not None
    lines = [line.removeprefix("python websockets: ")
             for line in found.attribution.client_errors
             if line.startswith("python websockets: ")]
    said = entry["attempts"][index]["client_said"]
    assert lines and f"{lines[0]} (" in f"{said} (", (lines, said)
