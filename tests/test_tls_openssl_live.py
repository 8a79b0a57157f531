"""TLS paths of the stage that the bundled captures do not hold, with real OpenSSL on loopback:
`openssl s_server -www` and `openssl s_client -keylogfile`, captured with tcpdump on ``lo`` and
read by the real command line with the key log.

- TLS 1.3 KeyUpdate (RFC 8446 §4.6.3): the client types ``K`` (update its keys and request
  the server's), then sends a WebSocket upgrade request; both directions change keys before
  the request and its answer, which are read only if the next secrets are derived.
- TLS 1.0 and 1.1 with CBC suites (RFC 2246, RFC 4346: the 1.0 IV chained from the previous
  record, 1.1's explicit IV), when this OpenSSL still offers them at security level 0.
"""

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

REQUEST = ("GET /ws HTTP/1.1\nHost: localhost\nUpgrade: websocket\nConnection: Upgrade\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\nSec-WebSocket-Version: 13\n\n")


def _session(tmp: Path, server_options: list[str], client_options: list[str],
             key_update: bool) -> tuple[Path, Path, str]:
    """One s_client conversation with s_server -www: (capture, key log, client's output)."""
    cert, key = make_certificate(tmp)
    port = _free_port()
    path, keylog = tmp / "openssl.pcap", tmp / "openssl.keys"
    server = subprocess.Popen(
        ["openssl", "s_server", "-accept", f"{HOST}:{port}", "-cert", str(cert), "-key",
         str(key), "-www", *server_options],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        _wait_listening(port, server)
        with tcpdump(path, [port]):
            client = subprocess.Popen(
                ["openssl", "s_client", "-connect", f"{HOST}:{port}", "-servername",
                 "localhost", "-keylogfile", str(keylog), "-crlf", *client_options],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                start_new_session=True)
            try:
                assert client.stdin is not None
                time.sleep(0.5)  # the handshake: s_client reads commands only after it
                if key_update:
                    client.stdin.write(b"K\n")  # s_client: KeyUpdate, update_requested
                    client.stdin.flush()
                    time.sleep(0.3)
                client.stdin.write(REQUEST.encode())
                client.stdin.flush()
                time.sleep(0.5)
                out, _ = client.communicate(timeout=10)  # closes stdin: s_client ends
            finally:
                _stop(client)
            time.sleep(0.2)
    finally:
        _stop(server)
    return path, keylog, out.decode(errors="replace")


def _attempts(path: Path, keylog: Path) -> list[dict[str, Any]]:
    result = run_cli("read", path, "--format", "json", "--keylog", keylog)
    assert result.exit_code == 0, result.output
    return list(json.loads(result.stdout)["attempts"])


def test_key_update_in_both_directions_is_followed() -> None:
    with tempfile.TemporaryDirectory(prefix="tls-keyupdate-") as name:
        path, keylog, said = _session(Path(name), ["-tls1_3"], ["-tls1_3"], key_update=True)
        assert "KEYUPDATE" in said  # s_client sent it
        if shutil.which("tshark"):  # the referee sees one KeyUpdate from each side
            shown = subprocess.run(
                ["tshark", "-r", str(path), "-o", f"tls.keylog_file:{keylog}", "-Y",
                 "tls.handshake.type == 24", "-T", "fields", "-e", "tcp.srcport"],
                capture_output=True, text=True, timeout=60, check=True).stdout.split()
            assert len(shown) == 2 and len(set(shown)) == 2, shown
        attempts = _attempts(path, keylog)
    assert len(attempts) == 1, attempts
    attempt = attempts[0]
    assert attempt["tls"]["version"] == "TLS 1.3" and attempt["tls"]["decrypted"]
    assert attempt["tls"]["key"] == "used"
    assert (attempt["path"], attempt["status"]) == ("/ws", 200)
    assert "tls_key_mismatch" not in [f["id"] for f in attempt["findings"]]


@pytest.mark.parametrize("version", ["tls1", "tls1_1"])
def test_old_versions_with_cbc_suites_are_decrypted(version: str) -> None:
    options = [f"-{version}", "-cipher", "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0"]
    with tempfile.TemporaryDirectory(prefix="tls-old-") as name:
        path, keylog, said = _session(Path(name), options, options, key_update=False)
        if "Cipher is ECDHE-ECDSA-AES128-SHA" not in said:
            pytest.skip(f"this OpenSSL does not speak {version}: {said[-300:]}")
        attempts = _attempts(path, keylog)
    assert len(attempts) == 1, attempts
    tls = attempts[0]["tls"]
    assert tls["version"] == {"tls1": "TLS 1.0", "tls1_1": "TLS 1.1"}[version]
    assert tls["suite"] == "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA" and tls["decrypted"]
    assert (attempts[0]["path"], attempts[0]["status"]) == ("/ws", 200)
