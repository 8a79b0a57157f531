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
from analyzer.pipeline import Analysis
from analyzer.source import read_records
from analyzer.tls.keylog import load_keylog
secrets = load_keylog(open(sys.argv[2], "rb").read()) if len(sys.argv) > 2 else None
frozen = []
for _ in range(2):  # the second run finds the ciphers loaded
    run = Analysis(secrets=secrets)
    decided = [*run.feed_records(read_records([sys.argv[1]], [])), *run.finish()]
    frozen.append(gc.get_freeze_count())
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


def test_tls13_traffic_keys_from_one_hmac_equal_the_plain_hkdf_expand_label() -> None:
    # keys.tls13_traffic_keys (one keyed HMAC, copied per label) against its plain twin
    # (HKDFExpand per label), for every TLS 1.3 traffic secret of the bundled key logs and
    # every TLS 1.3 suite whose hash is as long as the secret, and RFC 8448 §3's known answer.
    from analyzer.tls.keys import tls13_traffic_keys, tls13_traffic_keys_plain
    from analyzer.tls.suites import SUITES

    secrets = {bytes.fromhex("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")}
    for path in sorted((REPO / "captures").glob("*.keys")):
        for line in path.read_text().splitlines():
            fields = line.split()
            if len(fields) == 3 and "TRAFFIC_SECRET" in fields[0]:
                secrets.add(bytes.fromhex(fields[2]))
    digest_sizes = {"sha256": 32, "sha384": 48}
    compared = 0
    for suite in (suite for suite in SUITES.values() if suite.tls13):
        for secret in secrets:
            if len(secret) == digest_sizes[suite.hash]:
                fast, plain = tls13_traffic_keys(suite, secret), tls13_traffic_keys_plain(
                    suite, secret)
                assert (fast.key, fast.iv) == (plain.key, plain.iv)
                compared += 1
    assert compared > 50 and {s.hash for s in SUITES.values() if s.tls13} == {"sha256", "sha384"}
    rfc8448 = tls13_traffic_keys(SUITES[0x1301], bytes.fromhex(
        "b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38"))
    assert (rfc8448.key.hex(), rfc8448.iv.hex()) == ("3fce516009c21727d0f2e4e86ee403bc",
                                                     "5d313eb2671276ee13000b30")
