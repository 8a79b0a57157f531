"""The life of real WebSockets over HTTP/2 (RFC 8441 extended CONNECT): hypercorn serving
tests/h2_app.py, the RFC 8441 client on the h2 library (h2_app.extended_connect), captured with
tcpdump on ``lo``. Each stream works past its watch window (2 s) before it ends, so each final
verdict comes from how its stream's life ended: a Close handshake, the server's Close 1011, the
client's RST_STREAM, the client's TCP FIN, and a server process killed under an open stream;
and the server's Close 1011 inside TLS (hypercorn with ALPN h2, read with the client's key log).
"""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.h2_app import extended_connect
from tests.helpers import run_cli
from tests.test_h2_live import HOST, ROOT, _free_port, _stop, _wait_listening, tcpdump
from tests.test_h2_live import pytestmark as _live_marks
from tests.tls_memory import make_certificate

pytest.importorskip("h2")
pytest.importorskip("hypercorn")
pytestmark = _live_marks

# name -> (server, path, ending); every client lingers 2.5 s before its second message
SCENARIOS = {
    "bye": ("main", "/echo", "close"),
    "crash": ("main", "/crash", "wait"),
    "cancel": ("main", "/echo", "reset"),
    "hangup": ("main", "/echo", "drop"),
    "killed": ("doomed", "/echo", "wait"),
    "tls": ("tls", "/crash", "wait"),
}


def _hypercorn(port: int, *tls: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-m", "tests.h2_app", str(port), *map(str, tls)],
                               cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    _wait_listening(port, process)
    return process


@pytest.fixture(scope="module")
def capture() -> Iterator[tuple[Path, dict[str, int], dict[str, str]]]:
    ports = {"main": _free_port(), "doomed": _free_port(), "tls": _free_port()}
    servers: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="life-h2-") as tmp:
        path, keylog = Path(tmp, "h2life.pcap"), Path(tmp, "h2life.keys")
        cert, key = make_certificate(Path(tmp))
        context = ssl.create_default_context(cafile=str(cert))
        context.set_alpn_protocols(["h2"])
        context.keylog_filename = str(keylog)
        said: dict[str, str] = {}
        try:
            for name in ("main", "doomed"):
                servers.append(_hypercorn(ports[name]))
            servers.append(_hypercorn(ports["tls"], cert, key))
            with tcpdump(path, list(ports.values())):
                def client(name: str, server: str, target: str, ending: str) -> None:
                    tls = {"context": context, "server_name": "localhost"} \
                        if server == "tls" else {}
                    said[name] = extended_connect(HOST, ports[server], target, linger=2.5,
                                                  ending=ending, **tls)  # type: ignore[arg-type]

                threads = [threading.Thread(target=client, args=(name, *scenario))
                           for name, scenario in SCENARIOS.items()]
                for thread in threads:
                    thread.start()
                time.sleep(4.0)  # past every second message: the doomed server dies
                _stop(servers[1], signal.SIGKILL)
                for thread in threads:
                    thread.join(timeout=15)
        finally:
            for server in servers:
                _stop(server)
        yield path, ports, said


def _read(path: Path, *options: str) -> str:
    result = run_cli("read", path, "--keylog", Path(path).with_suffix(".keys"), *options)
    assert result.exit_code == 0, result.output
    return result.stdout


def _attempts(path: Path, ports: dict[str, int]) -> dict[str, Any]:
    attempts = json.loads(_read(path, "-F", "json"))["attempts"]
    out: dict[str, Any] = {}
    for name, (server, target, _) in SCENARIOS.items():
        out[name] = [a for a in attempts if a["server"].endswith(f":{ports[server]}")
                     and a["path"] == target]
    return out


def test_h2_websocket_streams_have_lives(capture) -> None:  # type: ignore[no-untyped-def]
    path, ports, said = capture
    assert said["bye"].startswith("connected"), said
    assert "StreamEnded" in said["crash"], said  # the server ended the stream
    found = _attempts(path, ports)
    for group in found.values():
        for a in group:
            assert a["transport"] == "h2" and a["stream_id"] == 1
            assert a["lifetime"] is not None, a  # every stream outlived its watch window
            assert a["lifetime"]["duration_s"] > 2.0, a["lifetime"]
    echo = {a["lifetime"]["how"]: a for a in found["bye"]}  # the main server's /echo streams
    # a Close handshake and both END_STREAMs: succeeded
    bye = echo["close_handshake"]
    assert bye["verdict"] == "succeeded" and bye["lifetime"]["close_code"] == 1000, bye
    # the client's RST_STREAM without a Close frame: dropped, reset by the client
    cancel = echo["rst"]
    assert cancel["verdict"] == "dropped", cancel
    assert cancel["lifetime"]["closed_by"] == "client"
    assert cancel["reasons"][0] == "closed_without_close_frame", cancel["reasons"]
    # the client's TCP FIN without a Close frame: dropped too
    hangup = echo["fin"]
    assert hangup["verdict"] == "dropped" and hangup["lifetime"]["closed_by"] == "client"
    assert len(found["bye"]) == 3
    # the application's Close 1011 after working a while
    [crash] = found["crash"]
    assert crash["verdict"] == "dropped", crash
    assert crash["reasons"][0] == "close_internal_error"
    assert crash["lifetime"]["close_code"] == 1011 and crash["lifetime"]["close_side"] == "server"
    # the killed server: its kernel closed the connection under the open stream
    [killed] = found["killed"]
    assert killed["verdict"] == "dropped", killed
    assert killed["lifetime"]["closed_by"] == "server"
    assert killed["lifetime"]["how"] in ("fin", "rst"), killed["lifetime"]
    assert 3.5 < killed["lifetime"]["duration_s"] < 5.0, killed["lifetime"]
    # the same Close 1011 on a stream inside TLS, read with the key log
    [tls] = found["tls"]
    assert tls["tls"]["decrypted"] and tls["tls"]["alpn"] == "h2", tls["tls"]
    assert tls["verdict"] == "dropped" and tls["reasons"][0] == "close_internal_error", tls
    assert tls["lifetime"]["close_code"] == 1011 and tls["lifetime"]["duration_s"] > 2.0


def test_h2_stream_ends_are_streamed(capture) -> None:  # type: ignore[no-untyped-def]
    path, ports, said = capture
    lines = [json.loads(line) for line in _read(path, "-F", "jsonl").splitlines()]
    pairs: dict[int, list[str]] = {}
    for line in lines:
        if line.get("event") in ("decided", "ended"):
            pairs.setdefault(line["number"], []).append(
                f'{line["event"]} {line["verdict"]}')
    assert len(pairs) == 6, pairs
    assert all(p[0] == "decided succeeded" and p[1].startswith("ended") for p in pairs.values())
    assert sorted(p[1] for p in pairs.values()) == [
        "ended dropped", "ended dropped", "ended dropped", "ended dropped", "ended dropped",
        "ended succeeded"], pairs
