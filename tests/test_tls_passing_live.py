"""TLS 1.3 records opened in the compiled skip (analyzer/tls/passing.py, "opening") against the
per-segment path that reads every record (`Analysis(compiled=False)`), on real OpenSSL traffic
captured on ``lo``: `openssl s_server` sends a download whose body carries a KeyUpdate halfway
(``k`` typed on its console), then answers a WebSocket upgrade on the same connection, which is
read only if the next keys were derived. Both cipher families (AES-GCM and ChaCha20-Poly1305):
the same attempts, findings and counts, and most frames passed."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from analyzer.decode.decoder import FASTPATH_COMPILED
from analyzer.tls import passing
from tests.helpers import run_cli
from tests.test_h2_live import HOST, _free_port, _stop, _wait_listening, tcpdump
from tests.test_tls_openssl_live import pytestmark as _openssl_marks
from tests.test_tls_passing import _read
from tests.tls_memory import make_certificate

pytestmark = [*_openssl_marks,
              pytest.mark.skipif(not FASTPATH_COMPILED, reason="the compiled module is not built")]

BODY = 400_000  # bytes of the download: ~25 records of 16 KiB on each side of the KeyUpdate
_DOWNLOAD = b"GET /file HTTP/1.1\r\nHost: localhost\r\n\r\n"
_UPGRADE = (b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade"
            b"\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
_SWITCH = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")


def _write(process: subprocess.Popen[bytes], data: bytes, pause: float = 0.15) -> None:
    # s_server and s_client send what one read of their console gives; a pause keeps `k`
    # a read of its own (a read that starts with a letter and a newline is a command)
    assert process.stdin is not None
    process.stdin.write(data)
    process.stdin.flush()
    time.sleep(pause)


def _capture(tmp: Path, suite: str, *server_options: str) -> tuple[Path, Path, str]:
    cert, key = make_certificate(tmp)
    port = _free_port()
    path, keylog, said = tmp / "keyupdate.pcap", tmp / "keyupdate.keys", tmp / "server.out"
    with said.open("wb") as out:
        server = subprocess.Popen(
            ["openssl", "s_server", "-accept", f"{HOST}:{port}", "-cert", str(cert), "-key",
             str(key), "-tls1_3", "-ciphersuites", suite, *server_options],
            stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _wait_listening(port, server)
            with tcpdump(path, [port]):
                client = subprocess.Popen(
                    ["openssl", "s_client", "-connect", f"{HOST}:{port}", "-servername",
                     "localhost", "-keylogfile", str(keylog), "-tls1_3", "-ciphersuites", suite],
                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    start_new_session=True)
                try:
                    time.sleep(0.5)  # the handshake
                    _write(client, _DOWNLOAD, 0.3)
                    half = BODY // 2
                    _write(server, b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream"
                           b"\r\nContent-Length: " + str(BODY).encode() + b"\r\n\r\n")
                    for start in range(0, half, 50_000):
                        _write(server, b"x" * min(50_000, half - start), 0.05)
                    _write(server, b"k\n", 0.3)  # s_server: KeyUpdate
                    for start in range(half, BODY, 50_000):
                        _write(server, b"x" * min(50_000, BODY - start), 0.05)
                    _write(client, _UPGRADE, 0.3)
                    _write(server, _SWITCH, 0.5)
                finally:
                    _stop(client)
                time.sleep(0.2)
        finally:
            _stop(server)
    return path, keylog, said.read_text(errors="replace")


@pytest.mark.parametrize("suite", ["TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256"])
def test_opened_tls13_records_with_a_key_update_give_what_reading_every_record_gives(
        suite: str) -> None:
    with tempfile.TemporaryDirectory(prefix="tls-opening-") as name:
        path, keylog, said = _capture(Path(name), suite)
        assert "SSL_do_handshake -> 1" in said, said[-500:]  # s_server's KeyUpdate went out
        if shutil.which("tshark"):  # the referee sees it, from the server
            shown = subprocess.run(
                ["tshark", "-r", str(path), "-o", f"tls.keylog_file:{keylog}", "-Y",
                 "tls.handshake.type == 24", "-T", "fields", "-e", "frame.number"],
                capture_output=True, text=True, timeout=60, check=True).stdout.split()
            assert len(shown) == 1, shown
        fast, fast_counts, run = _read(path, keylog, True)
        slow, slow_counts, _ = _read(path, keylog, False)
        cli = run_cli("read", path, "--format", "json", "--keylog", keylog)
    assert fast == slow
    assert fast_counts == slow_counts
    # the upgrade after the body, under the server's next keys, is found by both
    assert [(f["path"], f["status"], f["tls"]["suite"]) for f in fast] == [("/ws", 101, suite)]
    assert "tls_decryption_stopped" not in fast[0]["reasons"]  # the near miss of the test below
    assert cli.exit_code == 0 and '"status": 101' in cli.stdout
    frames = fast_counts[0]
    assert run._ledger.total > frames // 3, (run._ledger.total, frames)  # most passed
    # the body's large records were counted unopened; the KeyUpdate (22 bytes) was opened
    assert run._ledger.trusted > 0


def test_a_server_that_pads_its_records_has_every_record_opened() -> None:
    """`openssl s_server -record_padding 512` pads each record to a multiple of 512 bytes
    (RFC 8446 §5.4): its first records show the padding, so none of its records is counted
    unopened (tls/passing.py), and the KeyUpdate, padded to 512 bytes, is read."""
    with tempfile.TemporaryDirectory(prefix="tls-padding-") as name:
        path, keylog, said = _capture(Path(name), "TLS_AES_128_GCM_SHA256",
                                      "-record_padding", "512")
        assert "SSL_do_handshake -> 1" in said, said[-500:]
        fast, fast_counts, run = _read(path, keylog, True)
        slow, slow_counts, _ = _read(path, keylog, False)
    assert fast == slow and fast_counts == slow_counts
    assert [(f["path"], f["status"]) for f in fast] == [("/ws", 101)]
    assert run._ledger.trusted == 0
    assert run._ledger.total > 0  # they were opened in the skip


def test_a_key_update_counted_unopened_stops_decryption_and_says_why(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Were a KeyUpdate padded past the size counted unopened (here: the size lowered below
    its 22 bytes), the records after it no longer open: decryption stops there, the inner
    reader is told a hole, and the detail says why. Never a wrong plaintext."""
    monkeypatch.setattr(passing, "TRUST_FROM", 16)
    with tempfile.TemporaryDirectory(prefix="tls-keyupdate-missed-") as name:
        path, keylog, said = _capture(Path(name), "TLS_AES_128_GCM_SHA256")
        assert "SSL_do_handshake -> 1" in said, said[-500:]
        fast, _counts, run = _read(path, keylog, True)
        detail = run_cli("read", path, "--keylog", keylog, "--format", "table", "--detail")
    assert run._ledger.trusted > 0
    [upgrade] = fast
    assert (upgrade["path"], upgrade["status"], upgrade["verdict"]) == ("/ws", None,
                                                                        "inconclusive")
    assert upgrade["reasons"] == ["tls_decryption_stopped"], upgrade["reasons"]
    stopped = upgrade["tls"]["decryption_stopped_frame"]
    assert stopped and stopped in upgrade["findings"][0]["frames"]
    assert f"decryption stopped at frame {stopped}: it did not authenticate after large " \
        "records counted as data unopened" in detail.stdout
    # the ladder shows where, not a loss of the capture's
    assert "[decryption stopped here]" in detail.stdout
    assert "[capture lost" not in detail.stdout
