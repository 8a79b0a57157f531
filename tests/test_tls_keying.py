"""tls/keying.py `load_decryption`: the ciphers come in at the first session with keys, and
what the process holds then is frozen for the collector, once; a run without keys does
neither. Each run is a fresh interpreter (the test process may have imported them already)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CAPTURE = REPO / "captures" / "wss_tls13_aes128_gcm.pcap"

_RUN = """
import gc, json, sys
before = gc.get_freeze_count()  # (Python 3.12.1 starts with 375 objects frozen, 3.11 none)
from analyzer.pipeline import Analysis
from analyzer.source import read_records
from analyzer.tls.keylog import load_keylog
secrets = load_keylog(open(sys.argv[2], "rb").read()) if len(sys.argv) > 2 else None
frozen = []
for _ in range(2):  # the second run finds the ciphers loaded
    run = Analysis(secrets=secrets)
    decided = [*run.feed_records(read_records([sys.argv[1]], [])), *run.finish()]
    frozen.append(gc.get_freeze_count() - before)
print(json.dumps({"first": frozen[0], "last": frozen[1], "decrypted": run.stats.tls_decrypted,
                  "loaded": "analyzer.tls.decrypt" in sys.modules}))
"""

def _run(*args: Path) -> dict[str, int]:
    done = subprocess.run([sys.executable, "-c", _RUN, *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


def test_the_first_session_with_keys_loads_the_ciphers_and_freezes_once() -> None:
    seen = _run(CAPTURE, CAPTURE.with_suffix(".keys"))
    assert seen["decrypted"] > 0 and seen["loaded"]
    assert seen["first"] > 1000  # the start-up and the import, frozen
    assert seen["last"] <= seen["first"]  # not again (some frozen objects were freed since)


def test_a_run_without_keys_neither_loads_the_ciphers_nor_freezes() -> None:
    seen = _run(CAPTURE)
    assert seen == {"first": 0, "last": 0, "decrypted": 0, "loaded": False}


_SPIED = """
import gc, json, sys
from analyzer.pipeline import Analysis
from analyzer.source import read_records
from analyzer.tls import keying
from analyzer.tls.keylog import load_keylog
seen = []
freeze = keying.freeze_imported
def spied():
    freeze()
    seen.append({"frozen": gc.get_freeze_count(), "x509": "cryptography.x509" in sys.modules,
                 "ciphers": "analyzer.tls.decrypt" in sys.modules})
keying.freeze_imported = spied
secrets = load_keylog(open(sys.argv[2], "rb").read())
for _ in range(2):  # the second run finds both imports done
    run = Analysis(secrets=secrets)
    decided = [*run.feed_records(read_records([sys.argv[1]], [])), *run.finish()]
    assert any(d.attempt.tls.certificates for d in decided)
print(json.dumps(seen))
"""


def test_the_first_certificate_read_imports_x509_and_freezes_once_more() -> None:
    # handshake.certificate_info: `cryptography.x509` comes in when a report first reads a
    # certificate (after the ciphers, at the first key), and is frozen as they are
    done = subprocess.run([sys.executable, "-c", _SPIED, str(CAPTURE),
                           str(CAPTURE.with_suffix(".keys"))], cwd=REPO, capture_output=True,
                          text=True, timeout=60, check=True)
    ciphers, x509 = json.loads(done.stdout)
    assert ciphers["ciphers"] and not ciphers["x509"]
    assert x509["x509"] and x509["frozen"] > ciphers["frozen"] + 1000  # its objects


def test_the_tls12_key_block_is_made_once_per_session_and_equals_the_plain_prf() -> None:
    # keying.tls12_key_block against its plain twin, keys.tls12_traffic_keys (both directions'
    # ChangeCipherSpec ask for it; new inputs, as after a new ServerHello, make a new block)
    from analyzer.tls.keying import tls12_key_block
    from analyzer.tls.keys import tls12_traffic_keys
    from analyzer.tls.session import TlsSession
    from analyzer.tls.suites import SUITES

    session = TlsSession()
    for code in (0xC02F, 0xC030, 0xCCA8, 0xC013):  # GCM SHA-256/384, ChaCha20, CBC
        suite = SUITES[code]
        for version in (0x0303, 0x0302):
            master, client, server = bytes(range(48)), b"c" * 32, bytes([code & 0xFF]) * 32
            first = tls12_key_block(session, suite, version, master, client, server)
            assert first == tls12_traffic_keys(suite, version, master, client, server)
            assert tls12_key_block(session, suite, version, master, client, server) is first
            other = tls12_key_block(session, suite, version, master, client, b"s" * 32)
            assert other == tls12_traffic_keys(suite, version, master, client, b"s" * 32)
            assert other != first
