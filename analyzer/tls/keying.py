"""A TLS session's record openers, made from the key log's secrets (RFC 8446 §7.1, RFC 5246
§6.3): `prepare_openers` after the ServerHello (TLS 1.3: both directions, handshake and
application keys, early data; TLS 1.2: whether the master secret is there), `protect_tls12` at
a TLS 1.2 side's ChangeCipherSpec. Used only by `tls/session.py`; the key schedule itself is
`tls/keys.py`, the ciphers `tls/decrypt.py` (`cryptography`).
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

from analyzer.tls.suites import SUITES
from analyzer.tls.values import DecryptError, Decryption

if TYPE_CHECKING:
    from analyzer.tls.keys import TrafficKeys
    from analyzer.tls.records import Record
    from analyzer.tls.session import TlsSession
    from analyzer.tls.suites import Suite

_DIGEST_SIZES = {"sha256": 32, "sha384": 48}  # a TLS 1.3 secret is as long as its hash
# A TLS 1.3 side's key log labels, in the order its records use them (RFC 8446 §7.1; the NSS
# key log format): the handshake traffic secret, then the first application traffic secret.
_CLIENT_SECRETS = ("CLIENT_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0")
_SERVER_SECRETS = ("SERVER_HANDSHAKE_TRAFFIC_SECRET", "SERVER_TRAFFIC_SECRET_0")


_decrypt: ModuleType | None = None  # tls/decrypt.py, once `load_decryption` brought it in
# False: `load_decryption` does not freeze. The test process sets it (tests/__init__.py): there
# a freeze would take pytest's and its plugins' objects too, which `gc.get_referrers` then
# no longer sees (Hypothesis warns that trio's generator may be collected).
FREEZE_AT_LOAD = True


def load_decryption() -> ModuleType:
    """tls/decrypt.py with `cryptography`'s ciphers, brought in at the first session that has
    keys (a run without keys never imports them); what the process holds then is frozen
    (`freeze_imported`). Kept here: an import statement in each session's key schedule
    asked the import machinery again, ≈ 1 µs a name."""
    global _decrypt
    if _decrypt is None:
        import analyzer.tls.decrypt as decrypt

        freeze_imported()
        _decrypt = decrypt
    return _decrypt


def freeze_imported() -> None:
    """After a one-time import in the middle of a run (the ciphers above, `cryptography.x509`
    at the first certificate read, handshake.py `certificate_info`): freeze what the process
    holds (`gc.freeze`). The import's objects (and the run's start-up, already in the oldest
    generation) live until the exit, yet each collection after the import walked them, and
    the interpreter's collections at exit walked them all again: 36 M of the 3,193 M
    instructions of the 200 MB TLS 1.3 benchmark with keys, 27 M of them at exit
    (benchmarks/README.md, the `tls13one` round); `cryptography.x509`'s objects 6.5 M of
    1,175 M (the `tlsend` branch). Once an import: what is frozen is never collected, so a
    cycle alive at that moment that becomes garbage later stays, which bounds what it can
    keep to what the run held when its first key was used or its first certificate read."""
    if FREEZE_AT_LOAD:
        import gc

        gc.freeze()


def prepare_openers(session: TlsSession) -> None:
    """After the ServerHello: find the session's secrets and prepare its openers."""
    hello, server = session.client_hello, session.server_hello
    if session.secrets is None or hello is None or server is None or session.client_side is None:
        return
    secrets = session.secrets.secrets_for(hello.random)
    if not secrets:
        session.decryption = Decryption.NO_KEY
        if session.secrets.wait > 0:  # the key log is still being written: wait for it
            session.decryption = Decryption.WAITING
            session._waiting_until = session.server_hello_time + session.secrets.wait
        return
    suite = SUITES.get(server.suite)
    if suite is None or suite.tls13 != (server.version == 0x0304):
        session.decryption = Decryption.UNSUPPORTED
        return
    session.decryption = Decryption.PENDING
    decrypt = load_decryption()
    RecordOpener, tls13_traffic_keys = decrypt.RecordOpener, decrypt.tls13_traffic_keys

    client, serving = session._dirs[session.client_side], session._dirs[1 - session.client_side]
    if suite.tls13:
        for direction, labels in ((client, _CLIENT_SECRETS), (serving, _SERVER_SECRETS)):
            for label in labels:
                secret = secrets.get(label)
                if secret is not None:
                    direction.openers.append(RecordOpener(
                        suite, 0x0304, tls13_traffic_keys(suite, secret), secret=secret))
            direction.tolerate_failures = labels[0] not in secrets
            direction.protected = True
        if not client.openers and not serving.openers:
            session.decryption = Decryption.NO_KEY
        if hello.early_data:  # its EndOfEarlyData and early records: the early secret
            early = secrets.get("CLIENT_EARLY_TRAFFIC_SECRET")
            if early is not None:
                client.openers.insert(0, RecordOpener(
                    suite, 0x0304, tls13_traffic_keys(suite, early), secret=early))
            else:  # (not logged: the first record may not open, and that is no mismatch)
                client.tolerate_failures = True
    elif "CLIENT_RANDOM" not in secrets:
        session.decryption = Decryption.NO_KEY


def server_hello_lost(session: TlsSession, side: int, record: Record, tries: int) -> None:
    """A protected record of ``side``, and the ServerHello was lost in a hole: with the key
    log's TLS 1.3 secrets, the suite that authenticates this record stands for the lost
    ServerHello (version and suite alone), and the session is decrypted from here."""
    hello = session.client_hello
    if session.secrets is None or hello is None or 0x0304 not in hello.versions:
        return
    code = suite_from_record(session, side, record, tries)
    if code:
        from analyzer.tls.handshake import ServerHello

        session.server_hello = ServerHello(legacy_version=0x0303, version=0x0304, suite=code)
        prepare_openers(session)


def suite_from_record(session: TlsSession, side: int, record: Record, tries: int) -> int:
    """TLS 1.3 whose ServerHello the capture lost: the suite the server chose is the one of the
    ClientHello's TLS 1.3 suites whose keys, made from the key log's secrets for ``side``
    (its handshake or first application secret; the secret's length gives the hash),
    authenticate ``record``, ``side``'s first protected record, at one of the first ``tries``
    sequence numbers. 0 when none does, or more than one (never a guess)."""
    hello = session.client_hello
    if session.secrets is None or hello is None or session.client_side is None:
        return 0
    secrets = session.secrets.secrets_for(hello.random) or {}
    prefix = "CLIENT" if side == session.client_side else "SERVER"
    labelled = [secret for label in (f"{prefix}_HANDSHAKE_TRAFFIC_SECRET",
                                     f"{prefix}_TRAFFIC_SECRET_0")
                if (secret := secrets.get(label)) is not None]
    decrypt = load_decryption()
    RecordOpener, tls13_traffic_keys = decrypt.RecordOpener, decrypt.tls13_traffic_keys

    found = set()
    for code in dict.fromkeys(hello.suites):  # (offered twice is offered once)
        suite = SUITES.get(code)
        if suite is None or not suite.tls13:
            continue
        for secret in labelled:
            if len(secret) != _DIGEST_SIZES[suite.hash]:
                continue
            opener = RecordOpener(suite, 0x0304, tls13_traffic_keys(suite, secret))
            for sequence in range(tries):
                opener.sequence = sequence
                try:
                    opener.open(record)
                except DecryptError:
                    continue
                found.add(code)
                break
    return found.pop() if len(found) == 1 else 0


def protect_tls12(session: TlsSession, side: int) -> None:
    direction = session._dirs[side]
    direction.protected = True
    hello, server = session.client_hello, session.server_hello
    if (session.decryption not in (Decryption.PENDING, Decryption.DECRYPTED)
            or hello is None or server is None):
        return
    master = (session.secrets.secrets_for(hello.random) or {}).get("CLIENT_RANDOM") \
        if session.secrets is not None else None
    suite = SUITES.get(server.suite)
    if master is None or suite is None:
        return
    RecordOpener = load_decryption().RecordOpener
    client_keys, server_keys = tls12_key_block(session, suite, server.version, master,
                                               hello.random, server.random)
    keys = client_keys if side == session.client_side else server_keys
    etm = hello.encrypt_then_mac and server.encrypt_then_mac
    direction.openers = [RecordOpener(suite, server.version, keys, encrypt_then_mac=etm)]


def tls12_key_block(session: TlsSession, suite: Suite, version: int, master: bytes,
                    client_random: bytes, server_random: bytes) -> tuple[TrafficKeys, TrafficKeys]:
    """`tls12_traffic_keys`, made once per session: each side's ChangeCipherSpec asks for it,
    and the PRF (a few HMACs in Python) was the same work twice per session. Kept with its
    inputs, so a session whose inputs changed (a new ServerHello) gets its own block."""
    from analyzer.tls.keys import tls12_traffic_keys

    inputs = (suite.code, version, master, client_random, server_random)
    kept = session.tls12_keys
    if kept is not None and kept[0] == inputs:
        return kept[1]
    block = tls12_traffic_keys(suite, version, master, client_random, server_random)
    session.tls12_keys = (inputs, block)
    return block
