"""TLS 1.3 whose ServerHello the capture lost: the suite is the offered one whose keys, made
from the key log's secrets, authenticate a record (tls/keying.py `suite_from_record`), and the
session is decrypted. Holes cut with `editcap` from the bundled real captures of each suite
(frame 6 carries the server's whole flight: ServerHello, ChangeCipherSpec, then its encrypted
EncryptedExtensions, Certificate, CertificateVerify and Finished)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import dpkt
import pytest

from analyzer.exchange.model import AttemptKind
from analyzer.pipeline import Analysis, analyze
from analyzer.source import read_captures
from analyzer.tls.keylog import KeyStore, load_keylog
from analyzer.verdict import Diagnosis, Verdict
from tests.helpers import run_cli

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
SERVER_FLIGHT = 6
SUITES = {
    "wss_tls13_aes128_gcm": "TLS_AES_128_GCM_SHA256",
    "wss_tls13_aes256_gcm": "TLS_AES_256_GCM_SHA384",
    "wss_tls13_chacha20": "TLS_CHACHA20_POLY1305_SHA256",
}

pytestmark = pytest.mark.skipif(
    shutil.which("editcap") is None,
    reason="frames are cut with editcap (apt-get install wireshark-common)")


def cut(tmp_path: Path, name: str, *frames: int) -> Path:
    out = tmp_path / f"{name}.pcap"
    subprocess.run(["editcap", str(CAPTURES / f"{name}.pcap"), str(out), *map(str, frames)],
                   check=True, capture_output=True, timeout=30)
    return out


def keys(name: str) -> KeyStore:
    return load_keylog((CAPTURES / f"{name}.keys").read_bytes())


def analyse(path: Path, secrets: KeyStore | None) -> tuple[list[Diagnosis], Analysis]:
    run = Analysis(secrets=secrets)
    diagnoses = list(analyze(read_captures([str(path)], []), run))
    return sorted(diagnoses, key=lambda d: d.attempt.client.port), run


def summary(diagnoses: list[Diagnosis]) -> list[tuple[Verdict, list[str]]]:
    return [(d.verdict, [f.check for f in d.findings]) for d in diagnoses]


@pytest.mark.parametrize("name", sorted(SUITES))
def test_server_hello_lost_the_session_decrypts_with_the_suite_that_authenticates(
        tmp_path: Path, name: str) -> None:
    """Each of the three TLS 1.3 suites: the upgrade inside is read, with the verdict and
    findings of the whole capture; the suite is the one the server chose; the lost
    ServerHello is in the TLS facts (no ServerHello frame, a hole on the server's side),
    not the verdict's reason."""
    whole, _run = analyse(CAPTURES / f"{name}.pcap", keys(name))
    lossy, run = analyse(cut(tmp_path, name, SERVER_FLIGHT), keys(name))
    assert summary(lossy) == summary(whole) == [(Verdict.SUCCEEDED, ["ws_closed_normally"])]
    [attempt] = [d.attempt for d in lossy]
    assert attempt.kind is AttemptKind.HTTP and attempt.response_head is not None
    assert attempt.response_head.status == 101
    tls = attempt.tls
    assert tls is not None and tls.decrypted and tls.version == "TLS 1.3"
    assert tls.cipher_suite == SUITES[name]
    assert tls.server_hello_frame == 0 and tls.hole_side == "server"
    assert run.stats.tls_decrypted == 1 and run.stats.tls_uninspected == 0


def test_detail_says_the_server_hello_was_lost(tmp_path: Path) -> None:
    name = "wss_tls13_chacha20"
    out = run_cli("read", str(cut(tmp_path, name, SERVER_FLIGHT)), "--keylog",
                  str(CAPTURES / f"{name}.keys"), "--attempt", "1")
    assert "the capture lost the ServerHello" in out.stdout
    assert ("TLS_CHACHA20_POLY1305_SHA256, resumption unknown; decrypted with the key log"
            in out.stdout)
    assert "SUCCEEDED" in out.stdout
    whole = run_cli("read", str(CAPTURES / f"{name}.pcap"), "--keylog",
                    str(CAPTURES / f"{name}.keys"), "--attempt", "1")
    assert "the capture lost the ServerHello" not in whole.stdout  # the near miss


def test_wrong_secrets_leave_it_a_hole_never_a_guess(tmp_path: Path) -> None:
    """The near miss: the key log has lines for this ClientHello's random, but their secrets
    are another session's (a 48-byte SHA384 secret and a 32-byte one): no offered suite
    authenticates, so nothing is decrypted and the session stays a handshake hole (not a key
    mismatch: the records it would need were lost)."""
    name = "wss_tls13_aes128_gcm"
    own_random = next(line.split()[1] for line in (CAPTURES / f"{name}.keys").read_bytes()
                      .splitlines() if line and not line.startswith(b"#"))
    borrowed = b"\n".join(
        b" ".join((parts[0], own_random, parts[2]))
        for other in ("wss_tls13_aes256_gcm", "wss_tls13_chacha20")
        for line in (CAPTURES / f"{other}.keys").read_bytes().splitlines()
        if len(parts := line.split()) == 3 and not line.startswith(b"#"))
    diagnoses, run = analyse(cut(tmp_path, name, SERVER_FLIGHT), load_keylog(borrowed))
    assert summary(diagnoses) == [(Verdict.INCONCLUSIVE, ["capture_gap_tls_handshake"])]
    assert diagnoses[0].attempt.tls is not None and diagnoses[0].attempt.tls.key == "present"
    assert run.stats.tls_decrypted == 0


def test_without_a_key_log_it_is_counted_as_before(tmp_path: Path) -> None:
    name = "wss_tls13_aes256_gcm"
    diagnoses, run = analyse(cut(tmp_path, name, SERVER_FLIGHT), None)
    assert diagnoses == [] and run.stats.tls_uninspected == 1


def test_suite_not_offered_is_never_tried(tmp_path: Path) -> None:
    """The near miss on the candidates: the client's Finished record of a real TLS 1.3
    conversation (OpenSSL in memory) gives its suite when the ClientHello offered it, and
    none when the ClientHello (as read) offered only the other TLS 1.3 suites."""
    from dataclasses import replace

    from analyzer.tls.keying import suite_from_record
    from analyzer.tls.records import RecordReader
    from analyzer.tls.session import TlsSession
    from tests.tls_memory import CLIENT, converse

    conv = converse(tmp_path, tls13=True, client_plain=b"GET / HTTP/1.1\r\n\r\n",
                    server_plain=b"HTTP/1.1 200 OK\r\n\r\n")
    records = list(RecordReader().feed(0, conv.stream(CLIENT), 1, 0.0))
    hello = records[0]
    finished = next(r for r in records if r.content_type == 23)  # its first protected one
    session = TlsSession(load_keylog(conv.keylog))
    session.feed(CLIENT, 0, conv.stream(CLIENT)[:5 + len(hello.body)], 1, 0.0)
    assert session.client_hello is not None and session.client_side == CLIENT
    chosen = suite_from_record(session, CLIENT, finished, 1)
    assert chosen in (0x1301, 0x1302, 0x1303)
    others = tuple(code for code in (0x1301, 0x1302, 0x1303) if code != chosen)
    session.client_hello = replace(session.client_hello, suites=others)
    assert suite_from_record(session, CLIENT, finished, 1) == 0


def test_the_lost_flight_held_the_reason_it_stays_inconclusive(tmp_path: Path) -> None:
    """Mutual TLS without a client certificate, the server's flight (with its
    CertificateRequest) lost: the request decrypts, then the server closes; why is in the
    lost bytes, so the hole stays the primary cause (not "the server closed")."""
    name = "tls_mtls_no_client_cert"
    diagnoses, _run = analyse(cut(tmp_path, name, SERVER_FLIGHT), keys(name))
    first = min(diagnoses, key=lambda d: d.attempt.tcp.syn.frame if d.attempt.tcp.syn else 0)
    assert first.attempt.request_head is not None  # decrypted: the request was read
    assert first.attempt.tls is not None and first.attempt.tls.decrypted
    assert first.verdict is Verdict.INCONCLUSIVE
    assert first.findings[0].check == "capture_gap_tls_handshake"


def strip_first_record(tmp_path: Path, name: str, frame: int) -> Path:
    """``name`` with the first TLS record of ``frame`` (an Ethernet capture) cut out, the
    rest of that segment kept: the ServerHello alone lost, the server's flight after it
    captured (a hole of the record's length on the server's side)."""
    out = tmp_path / f"{name}-{frame}.pcap"
    with open(CAPTURES / f"{name}.pcap", "rb") as source, open(out, "wb") as sink:
        reader = dpkt.pcap.Reader(source)
        writer = dpkt.pcap.Writer(sink, linktype=reader.datalink())
        for number, (time, data) in enumerate(reader, 1):
            if number == frame:
                ethernet = dpkt.ethernet.Ethernet(data)
                ip = ethernet.data
                segment = ip.data
                assert segment.data[0] == 22 and segment.data[5] == 2  # a ServerHello
                length = 5 + int.from_bytes(segment.data[3:5], "big")
                segment.seq = (segment.seq + length) & 0xFFFFFFFF
                segment.data, segment.sum = segment.data[length:], 0
                ip.len, ip.sum = ip.len - length, 0
                data = bytes(ethernet)
            writer.writepkt(data, time)
    return out


def test_resumption_is_read_from_the_server_flight_or_left_unknown(tmp_path: Path) -> None:
    """The ServerHello's pre_shared_key says whether a TLS 1.3 session resumed; when it was
    lost, the decrypted flight after it says so (a Certificate: a full handshake; none
    between EncryptedExtensions and Finished: a resumed key). When the flight was lost
    too, the report says unknown (null), never "not resumed"."""
    name = "wss_tls13_resumed"  # a full handshake (frame 6), then a resumption (frame 29)
    whole, _run = analyse(CAPTURES / f"{name}.pcap", keys(name))
    assert [d.attempt.tls and d.attempt.tls.resumed for d in whole] == [False, True]
    for frame in (6, 29):
        lossy, _run = analyse(strip_first_record(tmp_path, name, frame), keys(name))
        assert summary(lossy) == summary(whole)
        assert [(d.attempt.tls.resumed, bool(d.attempt.tls.server_hello_frame))
                for d in lossy if d.attempt.tls] == [
            (False, frame != 6), (True, frame != 29)]
    lossy, _run = analyse(cut(tmp_path, name, 6, 29), keys(name))
    assert summary(lossy) == summary(whole)
    assert [d.attempt.tls.resumed for d in lossy if d.attempt.tls] == [None, None]
    out = run_cli("read", str(cut(tmp_path, name, 29)), "--keylog",
                  str(CAPTURES / f"{name}.keys"), "--attempt", "2")
    assert "resumption unknown; decrypted with the key log" in out.stdout
