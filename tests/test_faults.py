"""Faults end cleanly: SIGTERM during `read`, a closed output pipe, a full disk under
`live --write`; and text from the capture that Markdown or a terminal would misread.

Every run is the real command (`python3 -m analyzer`) in a subprocess, bounded in time.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from tests.builder import (
    DEFAULT_WS_KEY,
    Conversation,
    http_response,
    pcap_bytes,
    websocket_request,
    websocket_response,
    write_pcap,
)

ROOT = Path(__file__).resolve().parent.parent
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
ON_LINUX = sys.platform.startswith("linux")
COMMAND = [sys.executable, "-m", "analyzer"]


def rejected(n: int, reason: str = "Forbidden", target: str = "/ws") -> Conversation:
    conv = Conversation(client=("10.0.0.1", 40000 + n), server=("10.0.0.2", 8080),
                        start=1_700_000_000 + n * 0.01)
    conv.handshake()
    conv.client(websocket_request("example.com", target))
    conv.server(http_response(403, reason, [("Content-Length", "0")]), delay=0.002)
    conv.server_fin()
    conv.client_fin()
    return conv


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Enough rejected handshakes that every format's output is bigger than a pipe's buffer."""
    path = tmp_path_factory.mktemp("faults") / "many.pcap"
    write_pcap(path, [rejected(n) for n in range(400)])
    return path


# -- SIGTERM during read ------------------------------------------------------------------------


def _wait_for_sigterm_handler(pid: int, timeout: float = 30.0) -> None:
    """Until the process catches SIGTERM (its handler is installed once imports are done: a
    fixed sleep was too short on a loaded machine, and the default action killed it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/status").read_text()
        caught = int(next(line for line in status.splitlines()
                          if line.startswith("SigCgt:")).split()[1], 16)
        if caught & (1 << (signal.SIGTERM - 1)):
            return
        time.sleep(0.05)
    raise AssertionError(f"no SIGTERM handler after {timeout} s")


@pytest.mark.parametrize("fmt", ["jsonl", "table", "json"])
def test_sigterm_during_read_prints_results_so_far_and_exits_143(fmt: str) -> None:
    """`timeout` or `docker stop` while `read -` waits for more of a live pipe: what was
    decided is printed with the summary, then status 143."""
    data = pcap_bytes([rejected(n) for n in range(3)])
    with subprocess.Popen([*COMMAND, "read", "-", "-F", fmt], cwd=ROOT, stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as child:
        try:
            assert child.stdin is not None
            child.stdin.write(data)  # the capture goes on: stdin stays open
            child.stdin.flush()
            _wait_for_sigterm_handler(child.pid)
            time.sleep(0.5)  # the three attempts, read and decided in milliseconds
            child.send_signal(signal.SIGTERM)
            out, err = child.communicate(timeout=30)
        finally:
            child.kill()
    assert child.returncode == 143, err
    assert b"Traceback" not in err and b"internal error" not in err
    if fmt == "jsonl":
        assert len(out.splitlines()) == 3 and b"Attempts: 3 (3 failed)" in err
    elif fmt == "table":
        assert out.count(b"403  failed") == 3 and b"Attempts: 3 (3 failed)" in out
    else:
        document = json.loads(out)
        assert len(document["attempts"]) == 3 and document["summary"]["attempts"] == 3


def test_sigterm_during_live_still_ends_with_0() -> None:
    """The decisions page keeps `live` at 0 on SIGTERM (it is how a capture is stopped)."""
    if not (ON_LINUX and IS_ROOT):
        pytest.skip("live capture on lo needs Linux and root")
    with subprocess.Popen([*COMMAND, "live", "-i", "lo", "-f", "tcp port 9", "-F", "jsonl"],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as child:
        try:
            _wait_for_sigterm_handler(child.pid)
            child.send_signal(signal.SIGTERM)
            _, err = child.communicate(timeout=30)
        finally:
            child.kill()
    assert child.returncode == 0, err
    assert b"Attempts: 0" in err


# -- a closed output pipe --------------------------------------------------------------------------


def _into_closed_pipe(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    """The command with its standard output a pipe nobody reads any more."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([*COMMAND, *map(str, args)], cwd=ROOT, stdout=write_end,
                              stderr=subprocess.PIPE, timeout=60, check=False)
    finally:
        os.close(write_end)


@pytest.mark.parametrize("args", [
    ("-F", "table"), ("-F", "json"), ("-F", "jsonl"), ("-F", "csv"), ("-F", "markdown"),
    ("-F", "html"), ("--detail",), ("--attempt", "1"),
], ids=lambda a: a[-1].lstrip("-"))
def test_closed_pipe_is_status_141_without_a_word(many: Path, args: tuple[str, ...]) -> None:
    done = _into_closed_pipe("read", many, *args)
    assert done.returncode == 141, done.stderr
    assert done.stderr == b""


@pytest.mark.parametrize("args", [("checks",), ("explain", "ws_accept_mismatch")],
                         ids=lambda a: a[0])
def test_closed_pipe_in_the_other_commands(args: tuple[str, ...]) -> None:
    done = _into_closed_pipe(*args)
    assert (done.returncode, done.stderr) == (141, b"")


@pytest.mark.parametrize("fmt", ["jsonl", "table"])
def test_head_1_stops_a_streamed_read_at_the_next_write(many: Path, fmt: str) -> None:
    """`read - | head -1` for real: the first line arrives, the reader closes, the analysis
    stops at its next write with 141 and nothing on standard error."""
    def feed(stdin: IO[bytes]) -> None:
        with contextlib.suppress(BrokenPipeError, ValueError):
            stdin.write(many.read_bytes())  # blocks while the output is not read: a thread
            stdin.close()

    with subprocess.Popen([*COMMAND, "read", "-", "-F", fmt], cwd=ROOT, stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as child:
        assert child.stdin is not None and child.stdout is not None
        feeder = threading.Thread(target=feed, args=(child.stdin,), daemon=True)
        feeder.start()
        try:
            assert child.stdout.readline()
            child.stdout.close()
            child.wait(timeout=30)
            err = child.stderr.read() if child.stderr else b""
        finally:
            child.kill()
            feeder.join(timeout=10)
    assert child.returncode == 141, err
    assert err == b""


def test_closed_pipe_under_live() -> None:
    if not (ON_LINUX and IS_ROOT):
        pytest.skip("live capture on lo needs Linux and root")
    done = _into_closed_pipe("live", "-i", "lo", "-f", "tcp port 9", "--duration", "1")
    assert done.returncode == 141, done.stderr
    assert b"Traceback" not in done.stderr and b"error" not in done.stderr


# -- a full disk under live --write ---------------------------------------------------------------


def test_full_disk_under_live_write_is_one_line_and_the_summary() -> None:
    """/dev/full fails every write with ENOSPC, as a full disk does: one error line, the
    run stops with its summary, status 1, no traceback."""
    if not (ON_LINUX and IS_ROOT) or not os.path.exists("/dev/full"):
        pytest.skip("live capture on lo needs Linux and root; /dev/full needs Linux")
    done = subprocess.run([*COMMAND, "live", "-i", "lo", "-f", "tcp port 9", "--write",
                           "/dev/full", "--write-limit", "0", "--duration", "5"],
                          cwd=ROOT, capture_output=True, timeout=60, check=False)
    errors = [line for line in done.stderr.splitlines() if b"error" in line]
    assert done.returncode == 1, done.stderr
    assert errors == [b"upgrade-analyzer: error: cannot write /dev/full: "
                      b"No space left on device"], done.stderr
    assert b"Traceback" not in done.stderr
    assert b"Attempts: 0" in done.stdout


# -- a full disk under the temporary files ---------------------------------------------------------


@pytest.fixture(scope="module")
def full_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A 64 KiB tmpfs, mounted for these tests (and unmounted after): TMPDIR on a disk that
    fills at once."""
    if not (ON_LINUX and IS_ROOT):
        pytest.skip("mounting a small tmpfs needs Linux and root")
    where = tmp_path_factory.mktemp("full")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)],
                             capture_output=True, timeout=30, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], capture_output=True, timeout=30, check=False)


@pytest.fixture(scope="module")
def spilling_mix(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two captures of the handshake-dense mix: their results outgrow 64 KiB."""
    where = tmp_path_factory.mktemp("spilling")
    out = []
    for name, seed in (("a.pcap", "1"), ("b.pcap", "2")):
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "generate.py"),
                        str(where / name), "--size", "12M", "--mix", "dense", "--seed", seed],
                       check=True, capture_output=True, timeout=120)
        out.append(where / name)
    return out


# one process spilled from the first attempt (kept.SPILL_AFTER 0), one file sharded (kept
# spilled from the first), several files (each file's spool)
_SPILLED = ("import sys\nimport analyzer.report.kept as kept\nkept.SPILL_AFTER = 0\n"
            "sys.argv[0] = 'upgrade-analyzer'\nfrom analyzer.cli import main\nmain()\n")


@pytest.mark.parametrize("how", ["spilled", "sharded", "several"])
def test_a_full_temporary_directory_is_one_line(full_tmp: Path, spilling_mix: list[Path],
                                                how: str) -> None:
    """Sorted reports and --jobs keep results in temporary files; on a full disk the run ends
    with one line that says so and where (status 1), not an internal error or a traceback
    (a spilled report's traceback, a worker's, were what a full TMPDIR gave)."""
    a, b = spilling_mix
    command = {"spilled": [sys.executable, "-c", _SPILLED, "read", str(a)],
               "sharded": [*COMMAND, "read", "--jobs", "2", str(a)],
               "several": [*COMMAND, "read", "-F", "jsonl", "--jobs", "2", str(a), str(b)]}[how]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, timeout=120, check=False,
                          env={**os.environ, "TMPDIR": str(full_tmp)})
    errors = [line for line in done.stderr.splitlines() if b"error" in line.lower()]
    assert done.returncode == 1, done.stderr
    assert errors == [b"upgrade-analyzer: error: no space left on device for the report or "
                      b"its temporary files (these go to " + str(full_tmp).encode() +
                      b": set TMPDIR to a larger directory, or use -F jsonl, which keeps "
                      b"none)"], done.stderr
    assert b"Traceback" not in done.stderr


# -- text Markdown or a terminal would misread -----------------------------------------------------


@pytest.fixture(scope="module")
def hostile_text(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 403 whose reason phrase is HTML and a tracking image; a switch whose target and
    User-Agent are UTF-8 (one with a right-to-left override)."""
    markup = rejected(0, reason="<img src=x onerror=alert(1)>![t](http://evil.example/t.png)")
    utf8 = Conversation(client=("10.0.0.3", 50000), server=("10.0.0.2", 8080),
                        start=1_700_000_001)
    utf8.handshake()
    utf8.client(_utf8_request())  # the builder writes latin-1; a real client sends UTF-8
    utf8.server(websocket_response(DEFAULT_WS_KEY), delay=0.002)
    path = tmp_path_factory.mktemp("faults") / "text.pcap"
    write_pcap(path, [markup, utf8])
    return path


def _utf8_request() -> bytes:
    head = ("GET /café/日本 HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: " + DEFAULT_WS_KEY + "\r\n"
            "Sec-WebSocket-Version: 13\r\nUser-Agent: клиент \u202eevil\r\n\r\n")
    return head.encode("utf-8")


def _read(path: Path, *args: str) -> str:
    done = subprocess.run([*COMMAND, "read", str(path), *args], cwd=ROOT, capture_output=True,
                          timeout=60, check=True)
    return done.stdout.decode("utf-8")


def test_markdown_escapes_html_and_images(hostile_text: Path) -> None:
    text = _read(hostile_text, "-F", "markdown")
    assert not re.search(r"(?<!\\)<|(?<!\\)\]\(", text), text  # every '<' and '](' escaped
    assert "![" not in text and "\\<img src=x onerror=alert(1" in text


@pytest.mark.parametrize("args", [("-F", "table"), ("-F", "csv"), ("--attempt", "2")],
                         ids=lambda a: a[-1])
def test_utf8_is_shown_as_characters_and_overrides_stay_escaped(
        hostile_text: Path, args: tuple[str, ...]) -> None:
    text = _read(hostile_text, *args)
    assert "/café/日本" in text
    assert "Ã" not in text  # not the bytes one by one (mojibake)
    assert "\u202e" not in text
    if args[0] == "--attempt":
        assert "User-Agent: клиент \\u202eevil" in text


def test_utf8_in_json_decodes_to_the_characters(hostile_text: Path) -> None:
    attempts = json.loads(_read(hostile_text, "-F", "json"))["attempts"]
    assert attempts[1]["path"] == "/café/日本"
