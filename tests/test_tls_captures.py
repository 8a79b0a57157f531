"""The bundled TLS captures of real software (captures/generate_tls.py): the verdict and reason
of every attempt as captures/expected.json records them, read with the capture's key log when
it has one; and tshark as referee of what decryption finds inside."""

from __future__ import annotations

import json
import os
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

CAPTURES = Path(os.environ.get("UPGRADE_ANALYZER_CAPTURES",
                               Path(__file__).resolve().parent.parent / "captures"))
# Where a client closes silently after the server's flight, no alert proves that it refused the
# certificate: our reason says what the wire shows, the recording says what the client printed.
SAME_REASON = {"tls_certificate_rejected": {"tls_certificate_rejected",
                                            "tls_client_closed_after_server_flight"},
               "tls_plain_http_to_tls_port": {"tls_plain_http_to_https_port"}}


def _entries() -> list[dict[str, Any]]:
    path = CAPTURES / "expected.json"
    if not path.exists():
        return []
    captures = json.loads(path.read_text())["captures"]
    return [c for c in captures if c["file"].startswith(("tls", "wss", "https"))]


ENTRIES = _entries()


def _keys(capture: dict[str, Any]) -> Path | None:
    keys = CAPTURES / (capture["file"].rsplit(".", 1)[0] + ".keys")
    return keys if keys.exists() else None


def _analyse(capture: dict[str, Any]) -> tuple[list[Diagnosis], Analysis]:
    keys = _keys(capture)
    run = Analysis(secrets=load_keylog(keys.read_bytes()) if keys else None)
    path = str(CAPTURES / capture["file"])
    found = list(run.feed_records(read_records([path], []))) + run.finish()
    return found, run


@pytest.mark.parametrize("capture", ENTRIES, ids=[c["file"] for c in ENTRIES])
def test_tls_capture_verdicts(capture: dict[str, Any]) -> None:
    found, run = _analyse(capture)
    expected = capture["attempts"]
    if not expected:  # a session no key opens: counted, not listed
        assert found == [] and run.stats.tls_uninspected >= 1
        return
    assert len(found) == len(expected), [(d.verdict.value, d.primary) for d in found]
    remaining = list(found)
    for want in expected:
        match = next((d for d in remaining if str(d.attempt.client) == want.get("client")),
                     None) or next(d for d in remaining if str(d.attempt.server) == want["server"])
        remaining.remove(match)
        context = (want, match.verdict.value, [f.check for f in match.findings])
        assert match.verdict.value == want["verdict"], context
        reasons = SAME_REASON.get(want["reason"], {want["reason"]}) if want["reason"] else {None}
        primary = match.primary.check if match.primary and want["reason"] else None
        assert primary in reasons, context
        if want.get("status") is not None:
            assert match.attempt.response_head is not None, context
            assert match.attempt.response_head.status == want["status"], context


KEYED = [c for c in ENTRIES if _keys(c) is not None]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
@pytest.mark.parametrize("capture", KEYED, ids=[c["file"] for c in KEYED])
def test_decrypted_http_equals_tshark(capture: dict[str, Any]) -> None:
    """Every upgrade request and status we find inside TLS, tshark finds with the same keys."""
    keys = _keys(capture)
    assert keys is not None
    out = subprocess.run(
        ["tshark", "-n", "-r", str(CAPTURES / capture["file"]), "-o", f"tls.keylog_file:{keys}",
         "-Y", "tls && http", "-T", "fields", "-E", "separator=|", "-e", "http.request.method",
         "-e", "http.request.uri", "-e", "http.response.code", "-e", "http.upgrade"],
        capture_output=True, text=True, timeout=60, check=True).stdout
    requests, statuses, upgrades = [], [], []
    for line in out.splitlines():
        method, uri, status, upgrade = (line.split("|") + ["", "", "", ""])[:4]
        if method:
            requests.append((method, uri))
            if upgrade:
                upgrades.append((method, uri))
        if status:
            statuses.append(int(status))
    found, _run = _analyse(capture)
    inside = [d.attempt for d in found if d.attempt.tls is not None and d.attempt.tls.decrypted]
    ours = Counter((a.request_head.method, a.request_head.target) for a in inside
                   if a.request_head is not None)
    assert not ours - Counter(requests), (ours, requests)  # nothing tshark does not see
    assert not Counter(upgrades) - ours, (ours, upgrades)  # every upgrade tshark sees
    answered = Counter(a.response_head.status for a in inside if a.response_head is not None)
    assert not answered - Counter(statuses), (answered, statuses)
