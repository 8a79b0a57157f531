"""TLS 1.3 early data (0-RTT, RFC 8446 §4.2.10) with real OpenSSL on loopback: a first
`openssl s_client` connection saves the session (`-sess_out`), a second one resumes it and sends
a WebSocket upgrade request as early data (`-sess_in -early_data FILE`, `-keylogfile`), to
`openssl s_server -early_data` (accepted) or to one without it (rejected); tcpdump on ``lo``
captures the second connection, and the real command line reads it with the key log."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_cli
from tests.test_h2_live import HOST, _free_port, _stop, _wait_listening, tcpdump
from tests.test_h2_live import pytestmark as _live_marks
from tests.tls_memory import make_certificate

pytestmark = [*_live_marks,
              pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")]

REQUEST = (b"GET /early HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           b"Sec-WebSocket-Version: 13\r\n\r\n")


def _client(port: int, *options: str) -> str:
    """One s_client connection that stays up 1 s (long enough for the session tickets)."""
    process = subprocess.Popen(
        ["openssl", "s_client", "-connect", f"{HOST}:{port}", "-servername", "localhost",
         "-tls1_3", *options],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True)
    try:
        time.sleep(1.0)
        out, _ = process.communicate(timeout=10)  # closes stdin: s_client ends
    finally:
        _stop(process)
    return out.decode(errors="replace")


def _server(port: int, cert: Path, key: Path, early: bool) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(  # stdin kept open: s_server stops at its end
        ["openssl", "s_server", "-accept", f"{HOST}:{port}", "-cert", str(cert), "-key",
         str(key), "-tls1_3", *(["-early_data"] if early else [])],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    _wait_listening(port, server)
    return server


def _stop_server(server: subprocess.Popen[bytes]) -> None:
    if server.stdin is not None:
        server.stdin.close()
    _stop(server)


def _early_session(tmp: Path, accept: bool) -> tuple[Path, Path, str]:
    """(capture of the resumed connection, its key log, what that s_client printed). To
    reject, a second server (another ticket key, no -early_data) answers the resumption."""
    cert, key = make_certificate(tmp)
    port = _free_port()
    path, keylog, session, early = (tmp / "early.pcap", tmp / "early.keys", tmp / "sess.pem",
                                    tmp / "request.txt")
    early.write_bytes(REQUEST)
    server = _server(port, cert, key, early=True)
    try:
        _client(port, "-sess_out", str(session))
        assert session.exists(), "the first connection saved no session"
        if not accept:
            _stop_server(server)
            server = _server(port, cert, key, early=False)
        with tcpdump(path, [port]):
            said = _client(port, "-sess_in", str(session), "-early_data", str(early),
                           "-keylogfile", str(keylog))
            time.sleep(0.2)
    finally:
        _stop_server(server)
    return path, keylog, said


def _read(path: Path, keylog: Path) -> dict[str, Any]:
    result = run_cli("read", path, "--format", "json", "--keylog", keylog)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def _report(accept: bool) -> dict[str, Any]:
    """The JSON report of a resumed session that sent early data, which the server accepted
    or rejected (OpenSSL's own words say which); the early secret is in the key log."""
    outcome = "accepted" if accept else "rejected"
    with tempfile.TemporaryDirectory(prefix="tls-early-") as name:
        path, keylog, said = _early_session(Path(name), accept=accept)
        if f"Early data was {outcome}" not in said:
            pytest.skip(f"this OpenSSL did not send early data ({outcome}): {said[-300:]}")
        assert b"CLIENT_EARLY_TRAFFIC_SECRET" in keylog.read_bytes()
        return _read(path, keylog)


def test_accepted_early_data_is_decrypted() -> None:
    report = _report(accept=True)
    attempts = report["attempts"]
    assert len(attempts) == 1, attempts
    attempt = attempts[0]
    assert attempt["path"] == "/early" and attempt["tls"]["decrypted"]
    assert attempt["tls"]["resumed"] and attempt["tls"]["early_data"] == "accepted"
    # the request rode in the ClientHello's segment, before the ServerHello
    assert attempt["request_frame"] == attempt["tls"]["client_hello_frame"]
    assert attempt["request_frame"] < attempt["tls"]["server_hello_frame"]
    assert "tls_key_mismatch" not in attempt["reasons"]


def test_rejected_early_data_is_not_read_as_a_request() -> None:
    """The near miss: the server did not read the early data, so neither does the report
    (and the client's records after it still decrypt: no key mismatch)."""
    # the early secret is logged: only the server's answer keeps the request unread
    report = _report(accept=False)
    assert not any(a.get("path") == "/early" for a in report["attempts"]), report["attempts"]
    assert not any("tls_key_mismatch" in a["reasons"] for a in report["attempts"])
