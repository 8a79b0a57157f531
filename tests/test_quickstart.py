"""The README's first command, run as a new user would on a fresh machine.

CI's Python is not the system's, and the system's (Debian/Ubuntu) refuses `pip install`
(PEP 668), so this clones the repository afresh and runs the command exactly as the README
gives it, with `/usr/bin/python3` first on a minimal PATH and nothing else in the environment
but HOME (`env -i PATH=... HOME=...`): no venv activated, no PYTHONPATH, no CI variables.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import analyze_pcap

REPO = Path(__file__).resolve().parents[1]
SYSTEM_PYTHON = Path("/usr/bin/python3")
# A new login shell's PATH, without /usr/local (where an image may have put another Python).
MINIMAL_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"


def _has_venv(python: Path) -> bool:
    probe = subprocess.run([str(python), "-c", "import ensurepip, venv"], capture_output=True,
                           timeout=60, env={"PATH": MINIMAL_PATH})
    return probe.returncode == 0


def _quick_start_command(readme: str) -> str:
    """The first shell block under "Quick start"."""
    section = readme[readme.index("## Quick start"):]
    match = re.search(r"```sh\n(.*?)\n```", section, re.S)
    assert match, "README: no sh block under Quick start"
    return match.group(1)


def _skip_reason() -> str | None:
    if not SYSTEM_PYTHON.exists():
        return "no /usr/bin/python3 on this machine"
    if shutil.which("git") is None:
        return "git is not installed"
    if not _has_venv(SYSTEM_PYTHON) and os.geteuid() != 0:
        return ("/usr/bin/python3 has no venv module (Debian: apt install python3-venv) and "
                "this is not root, so ./run-tests.sh could not install it")
    return None


@pytest.mark.timeout(600)
def test_readme_first_command_works_in_a_fresh_clone_with_the_system_python(
        tmp_path: Path) -> None:
    reason = _skip_reason()
    if reason is not None:
        pytest.skip(reason)
    # As root ./run-tests.sh installs python3-venv when missing: its absence here is a failure.
    assert _has_venv(SYSTEM_PYTHON), "run ./run-tests.sh: it installs python3-venv"
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True, timeout=120,
                   env={"PATH": MINIMAL_PATH, "HOME": os.environ.get("HOME", str(tmp_path))})
    command = _quick_start_command((clone / "README.md").read_text())
    # HOME stays the user's: pip's configuration and its cache of downloaded wheels live there.
    env = {"PATH": MINIMAL_PATH, "HOME": os.environ.get("HOME", str(tmp_path))}
    result = subprocess.run(["bash", "-c", command], cwd=clone, env=env, capture_output=True,
                            text=True, timeout=540, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    # The venv was made by the system's Python, not whatever python3 ran this test.
    config = (clone / ".venv" / "pyvenv.cfg").read_text()
    assert re.search(r"^home = /usr/bin$", config, re.M), config
    # Every bundled capture's attempts are in the table, with the summary line counting them;
    # connections that never reached HTTP (the refused one) are only counted.
    # Captures with a key log show, without it, only what the TLS layer says: their attempts are
    # counted by reading them here (tests/test_tls_verdicts.py holds them to expected.json).
    expected = json.loads((clone / "captures" / "expected.json").read_text())
    every = [a for c in expected["captures"] if not c.get("keylog") for a in c["attempts"]]
    keyed = [c["file"] for c in expected["captures"] if c.get("keylog")]
    every += [{"reason": None, "server": str(d.attempt.server)} for name in keyed
              for d in analyze_pcap(clone / "captures" / name) if d.attempt.kind.value != "tcp"]
    attempts = [a for a in every if not (a["reason"] or "").startswith("tcp_")]
    assert f"Attempts: {len(attempts)} (" in result.stdout, result.stdout[-2000:]
    assert f"Never reached HTTP (refused or unanswered connections; --tcp lists them): " \
           f"{len(every) - len(attempts)} (" in result.stdout
    for attempt in attempts:
        assert attempt["server"] in result.stdout, attempt
    # Run again, as a user does: the venv is reused.
    again = subprocess.run(["bash", "-c", command], cwd=clone, env=env, capture_output=True,
                           text=True, timeout=540, stdin=subprocess.DEVNULL)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"Attempts: {len(attempts)} (" in again.stdout
    # The installed copy (not the clone's sources) has the HTML report's templates: they are
    # package data.
    page = subprocess.run([str(clone / ".venv" / "bin" / "upgrade-analyzer"), "read",
                           *sorted(str(p) for p in (clone / "captures").glob("*.pcap*")),
                           "-F", "html"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert page.returncode == 0, page.stderr[-3000:]
    assert page.stdout.count("<tbody class=") == len(attempts)
