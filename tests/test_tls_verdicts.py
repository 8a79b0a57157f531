"""The bundled TLS captures of real software (captures/generate_tls.py) read by the analyzer:
every attempt gets the verdict and reason captures/expected.json records, with the TLS facts
(version, suite, SNI, resumption), reading each capture with its key log (or the pcapng's
embedded one); and the HTTP requests and statuses found after decryption equal tshark's with the
same key log. (tests/test_tls_captures.py holds the captures themselves to tshark.)"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from analyzer.pipeline import Analysis
from analyzer.source import read_records
from analyzer.tls.keylog import load_keylog
from analyzer.verdict import Diagnosis

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
GENERATOR = "captures/generate_tls.py"
ENTRIES = [e for e in json.loads((CAPTURES / "expected.json").read_text())["captures"]
           if e.get("generator") == GENERATOR]


def _keys(entry: dict[str, Any]) -> Path | None:
    return CAPTURES / entry["keylog"] if entry.get("keylog") else None


def _analyse(entry: dict[str, Any]) -> tuple[list[Diagnosis], Analysis]:
    keys = _keys(entry)
    run = Analysis(secrets=load_keylog(keys.read_bytes()) if keys else None)
    found = list(run.feed_records(read_records([str(CAPTURES / entry["file"])], [])))
    return found + run.finish(), run


def test_every_tls_capture_is_here() -> None:
    assert len(ENTRIES) >= 25


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["file"] for e in ENTRIES])
def test_tls_capture_verdicts(entry: dict[str, Any]) -> None:
    found, run = _analyse(entry)
    assert run.stats.tls_uninspected == len(entry.get("uninspected", []))
    expected = entry["attempts"]
    assert len(found) == len(expected), [(d.verdict.value, d.primary) for d in found]
    remaining = list(found)
    for want in expected:
        match = next((d for d in remaining if str(d.attempt.client) == want.get("client")),
                     None) or next(d for d in remaining if str(d.attempt.server) == want["server"])
        remaining.remove(match)
        context = (want["why"], match.verdict.value, [f.check for f in match.findings])
        assert match.verdict.value == want["verdict"], context
        if want["reason"]:
            assert match.primary is not None, context
            assert match.primary.check == want["reason"], context
        if want.get("status") is not None:
            assert match.attempt.response_head is not None, context
            assert match.attempt.response_head.status == want["status"], context
        tls, got = want.get("tls"), match.attempt.tls
        if tls is None:
            assert got is None, context  # the cleartext leg behind a TLS proxy
            continue
        assert got is not None, context
        assert (got.sni, got.version, got.cipher_suite) == (
            tls["sni"], tls["version"], tls["cipher_suite"]), context
        assert got.resumed == tls["resumed"], context
        assert got.decrypted == bool(entry.get("keylog") or entry["secrets_embedded"]) or (
            match.attempt.request is None), context


KEYED = [e for e in ENTRIES if e.get("keylog")]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
@pytest.mark.parametrize("entry", KEYED, ids=[e["file"] for e in KEYED])
def test_decrypted_http_equals_tshark(entry: dict[str, Any]) -> None:
    """Every upgrade request and status we find inside TLS, tshark finds with the same keys,
    and we find every upgrade request tshark decrypts."""
    keys = _keys(entry)
    assert keys is not None
    command = ["tshark", "-n", "-r", str(CAPTURES / entry["file"]), "-o",
               f"tls.keylog_file:{keys}", "-Y", "tls && http", "-T", "fields", "-E",
               "separator=|", "-e", "http.request.method", "-e", "http.request.uri", "-e",
               "http.response.code", "-e", "http.upgrade"]
    for port in entry.get("tls_ports", []):
        command += ["-d", f"tcp.port=={port},tls"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout
    requests, statuses, upgrades = [], [], []
    for line in out.splitlines():
        method, uri, status, upgrade = (line.split("|") + ["", "", "", ""])[:4]
        if method:
            requests.append((method, uri))
            if upgrade:
                upgrades.append((method, uri))
        if status:
            statuses.append(int(status))
    found, _run = _analyse(entry)
    inside = [d.attempt for d in found if d.attempt.tls is not None and d.attempt.tls.decrypted]
    ours = Counter((a.request_head.method, a.request_head.target) for a in inside
                   if a.request_head is not None)
    assert not ours - Counter(requests), (ours, requests)  # nothing tshark does not see
    assert not Counter(upgrades) - ours, (ours, upgrades)  # every upgrade tshark sees
    answered = Counter(a.response_head.status for a in inside if a.response_head is not None)
    assert not answered - Counter(statuses), (answered, statuses)
