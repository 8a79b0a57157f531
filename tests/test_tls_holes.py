"""TLS sessions whose capture lost packets: holes made with `editcap` (frames removed) in a
bundled real capture (captures/wss_aiohttp.pcap: aiohttp over TLS 1.3, two connections; the
first upgrades and closes normally, the second is a plain GET answered 400)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from analyzer.exchange.model import AttemptKind
from analyzer.pipeline import Analysis, analyze
from analyzer.source import read_captures
from analyzer.tls.keylog import KeyStore, load_keylog
from analyzer.tls.session import TlsSession
from analyzer.verdict import Diagnosis, Verdict
from tests.helpers import run_cli

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
CAPTURE = CAPTURES / "wss_aiohttp.pcap"
KEYS = CAPTURES / "wss_aiohttp.keys"
# Frames of the first connection (tshark -o tls.keylog_file:...): 4 ClientHello, 6 the server's
# flight (ServerHello ... Finished), 8 the client's ChangeCipherSpec and Finished, 9 GET /ws,
# 12 two NewSessionTickets, 13 the 101, 15-18 WebSocket frames and Closes.
CLIENT_HELLO, SERVER_FLIGHT, CLIENT_FINISHED, TICKETS, SWITCH = 4, 6, 8, 12, 13

pytestmark = pytest.mark.skipif(
    shutil.which("editcap") is None,
    reason="holes are cut with editcap (apt-get install wireshark-common)")


def cut(tmp_path: Path, *frames: int) -> Path:
    """The bundled capture without ``frames`` (what a capture that dropped them holds)."""
    out = tmp_path / "hole.pcap"
    subprocess.run(["editcap", str(CAPTURE), str(out), *map(str, frames)], check=True,
                   capture_output=True, timeout=30)
    return out


def analyse(path: Path, keys: KeyStore | None) -> tuple[list[Diagnosis], Analysis]:
    """The diagnoses in connection order (the first connection's first), and the run."""
    run = Analysis(secrets=keys)
    diagnoses = list(analyze(read_captures([str(path)], []), run))
    return sorted(diagnoses, key=lambda d: d.attempt.client.port), run


def keys() -> KeyStore:
    return load_keylog(KEYS.read_bytes())


def ids(diagnosis: Diagnosis) -> list[str]:
    return [finding.check for finding in diagnosis.findings]


def test_whole_capture_has_no_hole_finding(tmp_path: Path) -> None:
    """The near miss: nothing lost, both sessions decrypted, no hole anywhere."""
    diagnoses, run = analyse(CAPTURE, keys())
    assert [d.verdict for d in diagnoses] == [Verdict.SUCCEEDED, Verdict.FAILED]
    assert not any("capture_gap_tls_handshake" in ids(d) for d in diagnoses)
    assert run.stats.tls_decrypted == 2 and run.stats.tls_uninspected == 0


# TLS 1.2 (frames: 4 ClientHello, 6 ServerHello ... ServerHelloDone, 7 the client's ACK of
# it): its keys need the server random, so a lost ServerHello leaves the session unreadable.
# (TLS 1.3 without its ServerHello is decrypted: tests/test_tls_server_hello_lost.py.)
TLS12 = "wss_tls12_ecdhe_rsa_aes128_gcm"


def cut12(tmp_path: Path) -> Path:
    out = tmp_path / "hello12.pcap"
    subprocess.run(["editcap", str(CAPTURES / f"{TLS12}.pcap"), str(out), "6"], check=True,
                   capture_output=True, timeout=30)
    return out


def test_server_hello_lost_with_the_key_is_a_hole_not_no_key(tmp_path: Path) -> None:
    secrets = load_keylog((CAPTURES / f"{TLS12}.keys").read_bytes())
    diagnoses, run = analyse(cut12(tmp_path), secrets)
    hole = diagnoses[0]
    assert hole.attempt.kind is AttemptKind.TLS
    assert hole.verdict is Verdict.INCONCLUSIVE
    assert ids(hole) == ["capture_gap_tls_handshake"]
    finding = hole.findings[0]
    assert "ServerHello" in finding.found and "has this session's key" in finding.found
    assert finding.frames == (CLIENT_HELLO, 7)  # the first frame after the hole
    assert hole.attempt.tls is not None and hole.attempt.tls.key == "present"
    assert run.stats.tls_uninspected == 0  # never "no key ... use --keylog"
    assert len(diagnoses) == 1


def test_server_hello_lost_cli_says_so(tmp_path: Path) -> None:
    out = run_cli("read", str(cut12(tmp_path)), "--keylog", str(CAPTURES / f"{TLS12}.keys"))
    assert "capture_gap_tls_handshake" in out.stdout
    assert "use --keylog" not in out.stdout and "could not be inspected" not in out.stdout


def test_server_hello_lost_without_a_key_log_is_counted_as_without_key(tmp_path: Path) -> None:
    """Without --keylog the key would be missing anyway: counted, as any session without key."""
    diagnoses, run = analyse(cut(tmp_path, SERVER_FLIGHT), None)
    assert len(diagnoses) == 0 or all(d.attempt.kind is not AttemptKind.TLS for d in diagnoses)
    assert run.stats.tls_uninspected == 2
    assert [s.reason for s in run.stats.tls_uninspected_listed] == ["no key", "no key"]


def test_server_hello_lost_and_random_not_in_the_log_is_counted(tmp_path: Path) -> None:
    other = b"\n".join(line for line in KEYS.read_bytes().splitlines()
                       if line.startswith(b"#") or line.split()[1:2] != [_first_random()])
    diagnoses, run = analyse(cut(tmp_path, SERVER_FLIGHT), load_keylog(other))
    assert [d.verdict for d in diagnoses] == [Verdict.FAILED]
    assert run.stats.tls_uninspected == 1
    assert run.stats.tls_uninspected_listed[0].reason == "not in the key log"


def _first_random() -> bytes:
    """The client random of the first connection's ClientHello (its first key log line's)."""
    for line in KEYS.read_bytes().splitlines():
        if line and not line.startswith(b"#"):
            return line.split()[1]
    raise AssertionError("empty key log")


def test_both_hellos_lost_is_listed_and_counted(tmp_path: Path) -> None:
    """A lossy capture that lost both sides' first flights: the session is still found (by its
    records after the holes) and said to have a hole, never silently dropped."""
    diagnoses, run = analyse(cut(tmp_path, CLIENT_HELLO, SERVER_FLIGHT), keys())
    assert ids(diagnoses[0]) == ["capture_gap_tls_handshake"]
    assert "ClientHello" in diagnoses[0].findings[0].found
    assert diagnoses[0].verdict is Verdict.INCONCLUSIVE
    assert run.stats.tls_uninspected == 0 and len(diagnoses) == 2


def test_client_finished_lost_the_session_still_decrypts(tmp_path: Path) -> None:
    """Resynchronised: the client's handshake records are lost, its first application record
    opens with the application keys; the request was whole, so no hole is claimed."""
    diagnoses, run = analyse(cut(tmp_path, CLIENT_FINISHED), keys())
    assert [d.verdict for d in diagnoses] == [Verdict.SUCCEEDED, Verdict.FAILED]
    assert not any(f.check.startswith("capture_gap") for f in diagnoses[0].findings)
    assert run.stats.tls_decrypted == 2


def test_lost_records_before_the_101_resynchronise(tmp_path: Path) -> None:
    """Two records (the tickets) lost: the 101 after them opens at sequence number 2 (tried,
    authenticated), so the switch is read; the hole before it keeps the verdict honest."""
    diagnoses, _run = analyse(cut(tmp_path, TICKETS), keys())
    first = diagnoses[0]
    assert first.attempt.kind is AttemptKind.HTTP and len(diagnoses) == 2
    assert first.attempt.response_head is not None and first.attempt.response_head.status == 101
    assert first.attempt.tls is not None and first.attempt.tls.hole_stop_frame == 0
    assert "tls_client_hello_to_cleartext_port" not in ids(first)


def test_lost_websocket_frame_the_close_after_it_is_read(tmp_path: Path) -> None:
    """A server record after the switch lost: the next ones authenticate again, and the
    normal Close handshake after the hole is still read."""
    diagnoses, _run = analyse(cut(tmp_path, 16), keys())
    assert diagnoses[0].verdict is Verdict.SUCCEEDED
    assert "ws_closed_normally" in ids(diagnoses[0])
    assert "capture_gap_after_switch" in ids(diagnoses[0])


# --- the session itself: a real OpenSSL conversation (memory BIOs) fed with a hole ----------

RECORD = 16384  # OpenSSL cuts a large write into records of this much plaintext


def _server_stream_with_hole(tmp_path: Path, lost_records: float
                             ) -> tuple[list[bytes], bytes, TlsSession]:
    """Feeds a session a real TLS 1.3 conversation whose server sends 80 full records of
    numbered plaintext, minus ``lost_records`` records' worth of its bytes (a hole starting
    mid-record when fractional); returns the plaintext read after the hole, the server's
    plaintext and the session."""
    from tests.tls_memory import CLIENT, converse

    numbered = b"".join(b"%08d" % n for n in range(80 * RECORD // 8))
    conv = converse(tmp_path, tls13=True, client_plain=b"GET / HTTP/1.1\r\n\r\n",
                    server_plain=numbered)
    session = TlsSession(load_keylog(conv.keylog))
    offsets = [0, 0]
    frame = 0
    wire = conv.stream(1 - CLIENT)
    bulk_start = len(wire) - 80 * (RECORD + 5 + 17)  # the 80 records are the stream's end
    hole = (bulk_start + RECORD // 2, int(lost_records * (RECORD + 22))) if lost_records else None
    after: list[bytes] = []
    for side, data in conv.chunks:
        for start in range(0, len(data), 1400):  # segments as a network would carry them
            piece = data[start:start + 1400]
            frame += 1
            offset = offsets[side]
            offsets[side] += len(piece)
            if hole is not None and side != CLIENT and offset + len(piece) > hole[0]:
                lost_end = hole[0] + hole[1]
                if offset < lost_end:  # the hole swallows this segment (or its start)
                    if offset + len(piece) <= lost_end:
                        continue
                    piece, offset = piece[lost_end - offset:], lost_end
                if hole[1]:
                    session.gap(side, hole[0], hole[1], frame)
                    hole = (hole[0], 0)
                    after = []
            plains = session.feed(side, offset, piece, frame, 0.0)
            after += [p.data for p in plains if p.side != CLIENT]
    return after, numbered, session


def test_session_resynchronises_mid_record_after_a_hole(tmp_path: Path) -> None:
    """A hole that starts and ends inside records: the reader finds the next header, the
    record there opens with a later sequence number, and the plaintext after it is exactly
    the server's, from the right place (authenticated, never guessed)."""
    after, numbered, session = _server_stream_with_hole(tmp_path, 3.5)
    plain = b"".join(after)
    assert plain and numbered.endswith(plain)  # the tail, whole and in order
    assert len(plain) % RECORD == 0 and len(plain) >= 75 * RECORD
    assert session.hole_stop_frame == 0


def test_session_stops_when_nothing_after_the_hole_authenticates(tmp_path: Path) -> None:
    """More records lost than the sequence numbers tried: decryption stops, and says where."""
    after, _numbered, session = _server_stream_with_hole(tmp_path, 70)
    assert after == [] and session.hole_stop_frame > 0


def test_detail_report_says_the_key_is_there_but_the_handshake_is_not(tmp_path: Path) -> None:
    out = run_cli("read", str(cut12(tmp_path)), "--keylog", str(CAPTURES / f"{TLS12}.keys"),
                  "--attempt", "1")
    assert "its key is in the key log, but the capture lost part of the handshake" in out.stdout
    assert "capture_gap_tls_handshake" in out.stdout or "TLS handshake are missing" in out.stdout


@pytest.mark.parametrize("suite", ["aes128_gcm", "aes128_cbc_sha", "chacha20"])
@pytest.mark.parametrize("lost", [(8,), (9,), (8, 9)], ids=["client", "server", "both"])
def test_tls12_finished_flights_lost_the_session_still_decrypts(tmp_path: Path, suite: str,
                                                                 lost: tuple[int, ...]) -> None:
    """TLS 1.2 (frames 8 and 9 carry each side's ChangeCipherSpec and Finished): a side whose
    ChangeCipherSpec was lost is protected from its first application record after the hole,
    whose sequence number (1, after the lost Finished) is found by authentication."""
    name = f"wss_tls12_ecdhe_rsa_{suite}"
    out = tmp_path / "hole.pcap"
    subprocess.run(["editcap", str(CAPTURES / f"{name}.pcap"), str(out), *map(str, lost)],
                   check=True, capture_output=True, timeout=30)
    diagnoses, run = analyse(out, load_keylog((CAPTURES / f"{name}.keys").read_bytes()))
    assert [(d.verdict, ids(d)) for d in diagnoses] == [(Verdict.SUCCEEDED, ["ws_closed_normally"])]
    assert run.stats.tls_decrypted == 1


def test_tls12_request_lost_is_a_hole_in_the_request(tmp_path: Path) -> None:
    """The near miss: the record lost is the request itself, so the hole is the request's."""
    name = "wss_tls12_ecdhe_rsa_aes128_gcm"
    out = tmp_path / "hole.pcap"
    subprocess.run(["editcap", str(CAPTURES / f"{name}.pcap"), str(out), "10"], check=True,
                   capture_output=True, timeout=30)
    diagnoses, _run = analyse(out, load_keylog((CAPTURES / f"{name}.keys").read_bytes()))
    assert diagnoses[0].verdict is Verdict.INCONCLUSIVE
    assert ids(diagnoses[0])[0] == "capture_gap_request"
    assert "capture_gap_tls_handshake" not in ids(diagnoses[0])


# --- the first bytes lost on both sides, the survivors starting inside a record ------------


def test_find_record_start_in_real_records_and_not_in_noise() -> None:
    """After a hole that ends inside a record, the next record is found where it really
    starts (checked on a real TLS 1.3 server stream at every cut), and never in noise."""
    import random

    from analyzer.tls.records import find_record_start
    from tests.tls_memory import SERVER, recorded

    stream = b"".join(data for side, data in recorded("ws13")[0] if side == SERVER)
    starts, position = [], 0
    while position < len(stream):
        starts.append(position)
        position += 5 + int.from_bytes(stream[position + 3:position + 5], "big")
    assert position == len(stream) and len(starts) >= 5
    found_at = 0
    for cut_at in range(1, len(stream) - 5):
        following = [s for s in starts if s >= cut_at]
        found = find_record_start(stream[cut_at:])
        if found is not None:  # never a wrong place
            assert cut_at + found == following[0], cut_at
            found_at += 1
    assert found_at > len(stream) // 2  # and mostly found
    noise = random.Random(7).randbytes(1 << 16)
    assert find_record_start(noise) is None


def test_both_hellos_lost_and_the_rest_starts_inside_a_record(tmp_path: Path) -> None:
    """A lossy capture kept only the end of the server's bytes, starting inside a record:
    the connection is still found to be TLS and said to have a hole in its handshake."""
    from tests.builder import Conversation, write_pcap
    from tests.tls_memory import SERVER, recorded

    chunks, keylog = recorded("ws13")
    conv = Conversation()
    conv.handshake()
    lost = conv.send(True, chunks[0][1])  # the ClientHello
    lost += conv.send(True, b"".join(d for s, d in chunks[1:] if s != SERVER))
    server = conv.send(False, b"".join(d for s, d in chunks if s == SERVER), max_segment=1000)
    lost += server[:1]  # the survivor starts inside the tickets' records
    conv.client_fin()
    conv.server_fin()
    path = tmp_path / "lossy.pcap"
    write_pcap(path, [conv], drop=lost)
    diagnoses, run = analyse(path, load_keylog(keylog))
    assert [(d.verdict, ids(d)) for d in diagnoses] == [
        (Verdict.INCONCLUSIVE, ["capture_gap_tls_handshake"])]
    assert "the ClientHello and the ServerHello missing" in diagnoses[0].findings[0].found


@pytest.mark.parametrize(("name", "lost", "keys_name"), [
    ("h2_websocket_hypercorn", 36, None),  # cleartext HTTP/2: the 403's HEADERS lost
    ("h2_tls_websocket_hypercorn", 39, "h2_tls_websocket_hypercorn"),  # the same inside TLS
])
def test_http2_answer_lost_is_a_hole_not_a_client_that_gave_up(
        tmp_path: Path, name: str, lost: int, keys_name: str | None) -> None:
    out = tmp_path / "hole.pcap"
    subprocess.run(["editcap", str(CAPTURES / f"{name}.pcap"), str(out), str(lost)], check=True,
                   capture_output=True, timeout=30)
    secrets = load_keylog((CAPTURES / f"{keys_name}.keys").read_bytes()) if keys_name else None
    diagnoses, _run = analyse(out, secrets)
    deny = [d for d in diagnoses if d.attempt.request_head is not None
            and d.attempt.request_head.target == "/deny"]
    assert len(deny) == 1
    assert deny[0].verdict is Verdict.INCONCLUSIVE
    assert ids(deny[0])[0] == "capture_gap_response"
    assert "no_response_client_gave_up" not in ids(deny[0])
    # the near miss: the other streams, whose answers were captured, keep their verdicts
    assert {d.verdict for d in diagnoses if d is not deny[0]} <= {
        Verdict.SUCCEEDED, Verdict.FAILED, Verdict.ABORTED}


def _mutual(tmp_path: Path, lost: int) -> Diagnosis:
    """The first connection of the bundled mutual-TLS capture (TLS 1.3: 6 the server's flight
    with its CertificateRequest, 8 the client's empty Certificate and Finished, 9 GET /chat,
    11 the server's FIN) without frame ``lost``."""
    name = "tls_mtls_no_client_cert"
    out = tmp_path / "hole.pcap"
    subprocess.run(["editcap", str(CAPTURES / f"{name}.pcap"), str(out), str(lost)], check=True,
                   capture_output=True, timeout=30)
    diagnoses, _run = analyse(out, load_keylog((CAPTURES / f"{name}.keys").read_bytes()))
    return min(diagnoses, key=lambda d: d.attempt.tcp.syn.frame if d.attempt.tcp.syn else 0)


def test_client_certificate_lost_is_a_hole_not_a_silent_server(tmp_path: Path) -> None:
    """The client's (empty) Certificate was lost: the request decrypts, the server closes
    without answering, and why is in the hole: inconclusive, not "server closed"."""
    first = _mutual(tmp_path, 8)
    assert first.attempt.request_head is not None
    assert first.verdict is Verdict.INCONCLUSIVE
    assert ids(first)[0] == "capture_gap_tls_handshake"


def test_server_fin_lost_mutual_tls_is_still_named(tmp_path: Path) -> None:
    """The near miss: the handshake is whole (only the server's FIN is lost): the empty client
    certificate is still the reason, never a success."""
    first = _mutual(tmp_path, 11)
    assert first.verdict is Verdict.FAILED
    assert ids(first)[0] == "tls_client_certificate_required"
    assert "capture_gap_tls_handshake" not in ids(first)


def test_server_flight_lost_with_only_fins_after_it(tmp_path: Path) -> None:
    """The server's only data (its flight) lost, then both FINs: the hole shows only at the
    connection's end (the FIN's sequence number): still a hole, not "no ServerHello"."""
    out = tmp_path / "hole.pcap"
    subprocess.run(["editcap", str(CAPTURES / "tls_client_unknown_ca.pcap"), str(out), "6"],
                   check=True, capture_output=True, timeout=30)
    for secrets in (None, load_keylog((CAPTURES / "tls_client_unknown_ca.keys").read_bytes())):
        diagnoses, _run = analyse(out, secrets)
        assert [(d.verdict, ids(d)) for d in diagnoses] == [
            (Verdict.INCONCLUSIVE, ["capture_gap_tls_handshake"])]
        assert "at the connection's end" in diagnoses[0].findings[0].found
    whole, _run = analyse(CAPTURES / "tls_client_unknown_ca.pcap", None)  # the near miss
    assert ids(whole[0])[0] == "tls_certificate_rejected"


def test_sessions_without_key_are_listed_in_the_order_of_their_ends(tmp_path: Path) -> None:
    """The first session lost its server's flight: it is counted only when the capture ends,
    after the second. One process listed them in the order counted, a shard's merge (--jobs
    2) by last frame: the two reports differed. Both list by last frame now."""
    path = cut(tmp_path, SERVER_FLIGHT)
    alone = run_cli("read", "-F", "json", str(path))
    listed = json.loads(alone.stdout)["summary"]["tls_sessions_not_inspected"]
    assert [s["last_frame"] for s in listed] == sorted(s["last_frame"] for s in listed)
    assert len(listed) == 2
    assert run_cli("read", "-F", "json", "--jobs", "2", str(path)).stdout == alone.stdout
