"""The TLS stage in the pipeline: real OpenSSL conversations (Python ssl, memory BIOs) written as
pcaps with the builder, read back with and without their key logs."""

from __future__ import annotations

import shutil
import ssl
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analyzer.exchange.model import AttemptKind
from analyzer.pipeline import Analysis, analyze
from analyzer.source import read_captures, read_records
from analyzer.source.frame import Frame
from analyzer.source.keylog_file import FollowedKeyLog, WholeLines
from analyzer.source.writer import RotatingPcapngWriter
from analyzer.tls.keylog import KeyStore, load_keylog
from analyzer.verdict import Diagnosis, Verdict
from tests.builder import Conversation, http_response, websocket_request, websocket_response
from tests.helpers import run_cli
from tests.tls_memory import CLIENT, Talk, contexts, make_certificate, talk

REQUEST = websocket_request("localhost", "/chat", origin="https://localhost")
SWITCH = websocket_response()
REJECT = http_response(403, "Forbidden", [("Content-Length", "9")], b"forbidden")


def write(path: Path, chunks: list[tuple[int, bytes]], *, end: str = "fin-both",
          max_segment: int = 1400, skip: int = 0, port: int = 443, pcapng: bool = False) -> Path:
    """The conversation as a pcap: TCP handshake, each chunk in segments, then the end."""
    # Now, not the builder's 2023 default: certificates are checked against the capture's time.
    conv = Conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", port),
                        start=int(time.time()))
    conv.handshake()
    for side, data in chunks:
        conv.send(side == CLIENT, data, max_segment=max_segment, delay=0.001)
    if skip:  # the capture starts after the first `skip` records
        del conv.records[:skip]
    if end == "fin-both":
        conv.client_fin(0.001)
        conv.server_fin(0.001)
    elif end == "client-fin":
        conv.client_fin(0.001)
    elif end == "client-rst":
        conv.client_rst(0.001)
    elif end == "server-rst":
        conv.server_rst(0.001)
    elif end == "server-fin":
        conv.server_fin(0.001)
        conv.client_fin(0.001)
    from tests.builder import write_pcap

    write_pcap(path, [conv], pcapng=pcapng)
    return path


def with_secrets_block(path: Path, keylog: bytes) -> Path:
    """The pcapng with a Decryption Secrets Block (type 0xA, TLSK) after its first interface
    block, as `editcap --inject-secrets tls,KEYS` writes it."""
    data = path.read_bytes()
    position = 0
    while True:
        kind, length = struct.unpack_from("<II", data, position)
        position += length
        if kind == 1:  # the Interface Description Block
            break
    secrets = keylog + b"\0" * (-len(keylog) % 4)
    body = struct.pack("<II", 0x544C534B, len(keylog)) + secrets
    block = struct.pack("<II", 0xA, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))
    path.write_bytes(data[:position] + block + data[position:])
    return path


def analyse(path: Path, keys: KeyStore | None = None) -> tuple[list[Diagnosis], Analysis]:
    run = Analysis(secrets=keys)
    return list(analyze(read_captures([str(path)], []), run)), run


@pytest.fixture()
def keylog(tmp_path: Path) -> Path:
    return tmp_path / "keys.log"


def _wss(tmp_path: Path, keylog: Path, tls13: bool, ciphers: str = "",
         response: bytes = SWITCH) -> Talk:
    client_ctx, server_ctx = contexts(tmp_path, tls13=tls13, ciphers=ciphers, keylog=keylog)
    client_ctx.set_alpn_protocols(["http/1.1"])
    server_ctx.set_alpn_protocols(["http/1.1"])
    conversation = talk(client_ctx, server_ctx, client_plain=REQUEST, server_plain=response)
    assert conversation.server_received == REQUEST
    return conversation


@pytest.mark.parametrize(("tls13", "ciphers"), [
    (True, ""), (False, "ECDHE-ECDSA-AES128-GCM-SHA256"),
    (False, "ECDHE-ECDSA-CHACHA20-POLY1305"), (False, "ECDHE-ECDSA-AES256-SHA384")])
def test_wss_handshake_is_judged_inside_tls(tmp_path: Path, keylog: Path, tls13: bool,
                                            ciphers: str) -> None:
    conversation = _wss(tmp_path, keylog, tls13, ciphers)
    pcap = write(tmp_path / "wss.pcap", conversation.chunks, max_segment=300, end="open")
    found, run = analyse(pcap, load_keylog(keylog.read_bytes()))
    assert len(found) == 1
    diagnosis = found[0]
    attempt = diagnosis.attempt
    assert diagnosis.verdict is Verdict.SUCCEEDED, diagnosis.findings
    assert attempt.kind is AttemptKind.HTTP and attempt.tls is not None
    assert attempt.tls.decrypted and attempt.tls.sni == "localhost"
    assert attempt.tls.alpn == "http/1.1"
    assert attempt.tls.version == ("TLS 1.3" if tls13 else "TLS 1.2")
    assert attempt.request_head is not None and attempt.request_head.target == "/chat"
    assert attempt.request is not None and attempt.response is not None
    assert attempt.request.first_frame > attempt.tls.server_hello_frame
    assert attempt.response.first_frame > attempt.request.first_frame
    assert run.stats.tls_decrypted == 1 and run.stats.tls_uninspected == 0


def test_rejection_inside_tls_is_the_same_finding_as_in_cleartext(tmp_path: Path,
                                                                  keylog: Path) -> None:
    conversation = _wss(tmp_path, keylog, True, response=REJECT)
    pcap = write(tmp_path / "wss403.pcap", conversation.chunks, max_segment=7)  # tiny segments
    found, _run = analyse(pcap, load_keylog(keylog.read_bytes()))
    assert [d.verdict for d in found] == [Verdict.FAILED]
    assert found[0].findings[0].check == "response_forbidden"


def test_without_keys_a_working_session_is_counted_not_listed(tmp_path: Path,
                                                              keylog: Path) -> None:
    conversation = _wss(tmp_path, keylog, True)
    pcap = write(tmp_path / "wss.pcap", conversation.chunks)
    # no --keylog, and a key log without this session (asking for --keylog would not help)
    for keys, why in ((None, "no key"), (KeyStore(), "not in the key log")):
        found, run = analyse(pcap, keys)
        assert found == []
        assert run.stats.tls_uninspected == 1
        listed = run.stats.tls_uninspected_listed[0]
        # (TLS 1.3 encrypts the server's choice: the client's offer is what shows)
        assert (listed.sni, listed.alpn, listed.alpn_offered, listed.version) == (
            "localhost", "", "http/1.1", "TLS 1.3")
        assert listed.first_frame == 4  # SYN, SYN-ACK, ACK, ClientHello
        assert listed.reason == why
    plain = run_cli("read", str(pcap)).stdout
    assert "1 to SNI localhost offering ALPN http/1.1; use --keylog" in plain
    other = tmp_path / "other.keys"  # another process's key log
    other.write_text("CLIENT_RANDOM " + "ab" * 32 + " " + "cd" * 48 + "\n")
    given = run_cli("read", str(pcap), "--keylog", str(other)).stdout
    assert "1 to SNI localhost offering ALPN http/1.1 (not in the key log); use the key log of " \
           "the client process" in given
    assert "use --keylog" not in given


def test_wrong_key_is_inconclusive(tmp_path: Path, keylog: Path) -> None:
    conversation = _wss(tmp_path, keylog, False, "ECDHE-ECDSA-AES128-GCM-SHA256")
    pcap = write(tmp_path / "wss.pcap", conversation.chunks)
    lines = []
    for line in keylog.read_text().splitlines():
        if line.startswith("CLIENT_RANDOM"):
            label, random_hex, secret = line.split()
            line = f"{label} {random_hex} {'00' * 48}"
        lines.append(line)
    found, _run = analyse(pcap, load_keylog("\n".join(lines).encode()))
    assert [d.verdict for d in found] == [Verdict.INCONCLUSIVE]
    assert found[0].findings[0].check == "tls_key_mismatch"
    assert found[0].attempt.kind is AttemptKind.TLS


def test_key_log_with_garbage_still_decrypts(tmp_path: Path, keylog: Path) -> None:
    conversation = _wss(tmp_path, keylog, True)
    pcap = write(tmp_path / "wss.pcap", conversation.chunks, end="open")
    text = b"garbage\n\x00\xff\nCLIENT_RANDOM zz\n" + keylog.read_bytes() + b"\nhalf a li"
    store = load_keylog(text)
    found, run = analyse(pcap, store)
    assert [d.verdict for d in found] == [Verdict.SUCCEEDED]
    assert store.ignored == 4 and run.stats.keylog_ignored_lines == 4


@pytest.mark.parametrize("tls13", [True, False], ids=["TLS1.3", "TLS1.2"])
def test_client_rejects_the_certificate(tmp_path: Path, keylog: Path, tls13: bool) -> None:
    other_ca, _key = make_certificate(tmp_path, "other-ca")
    client_ctx, server_ctx = contexts(tmp_path, tls13=tls13, keylog=keylog, trust=other_ca)
    conversation = talk(client_ctx, server_ctx)
    assert "CERTIFICATE_VERIFY_FAILED" in conversation.client_error
    pcap = write(tmp_path / "reject.pcap", conversation.chunks, end="client-fin")
    for keys in (None, load_keylog(keylog.read_bytes()) if keylog.exists() else None):
        found, _run = analyse(pcap, keys)
        assert [d.verdict for d in found] == [Verdict.FAILED]
        attempt = found[0].attempt
        assert attempt.kind is AttemptKind.TLS
        reasons = [f.check for f in found[0].findings]
        assert reasons[0] == "tls_certificate_rejected", reasons
        if not tls13 or keys is not None:  # the alert is readable
            assert reasons[0] == "tls_certificate_rejected"
            assert any(a.description == "unknown_ca" for a in attempt.tls.alerts)


def test_certificate_for_another_name(tmp_path: Path) -> None:
    cert = make_certificate(tmp_path, "api.example.com", names=("api.example.com",))
    client_ctx, server_ctx = contexts(tmp_path, tls13=False, cert=cert)
    conversation = talk(client_ctx, server_ctx, sni="chat.example.com")
    assert "Hostname mismatch" in conversation.client_error or "IP address mismatch" in \
        conversation.client_error or "mismatch" in conversation.client_error
    pcap = write(tmp_path / "name.pcap", conversation.chunks, end="client-fin")
    found, _run = analyse(pcap)
    assert [d.verdict for d in found] == [Verdict.FAILED]
    assert found[0].findings[0].check == "tls_certificate_name_mismatch"
    assert "chat.example.com" in found[0].findings[0].expected


def test_expired_certificate(tmp_path: Path) -> None:
    import datetime

    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    cert = make_certificate(tmp_path, "localhost", days=30, start=start)
    client_ctx, server_ctx = contexts(tmp_path, tls13=False, cert=cert)
    conversation = talk(client_ctx, server_ctx)
    assert "expired" in conversation.client_error
    pcap = write(tmp_path / "expired.pcap", conversation.chunks, end="client-fin")
    found, _run = analyse(pcap)
    reasons = [f.check for f in found[0].findings]
    assert reasons[0] == "tls_certificate_expired", reasons
    assert "tls_certificate_rejected" in reasons


@pytest.mark.parametrize("tls13", [True, False], ids=["TLS1.3", "TLS1.2"])
def test_mutual_tls_without_a_client_certificate(tmp_path: Path, keylog: Path,
                                                 tls13: bool) -> None:
    client_ctx, server_ctx = contexts(tmp_path, tls13=tls13, keylog=keylog)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_verify_locations(make_certificate(tmp_path, "client-ca")[0])
    conversation = talk(client_ctx, server_ctx)
    assert conversation.server_error
    pcap = write(tmp_path / "mtls.pcap", conversation.chunks, end="server-fin")
    keys = load_keylog(keylog.read_bytes()) if tls13 else None  # 1.3 hides the request
    found, _run = analyse(pcap, keys)
    assert [d.verdict for d in found] == [Verdict.FAILED]
    assert found[0].findings[0].check == "tls_client_certificate_required"


def test_client_hello_unanswered_is_no_response(tmp_path: Path) -> None:
    client_ctx, _server_ctx = contexts(tmp_path)
    hello = talk(client_ctx, ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)).chunks[0]
    pcap = write(tmp_path / "silent.pcap", [hello], end="server-rst")
    found, _run = analyse(pcap)
    assert [d.verdict for d in found] == [Verdict.NO_RESPONSE]
    assert found[0].findings[0].check == "tls_no_server_hello"
    assert found[0].attempt.tls is not None and found[0].attempt.tls.sni == "localhost"


def test_client_hello_to_a_cleartext_port(tmp_path: Path) -> None:
    client_ctx, _server_ctx = contexts(tmp_path)
    hello = talk(client_ctx, ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)).chunks[0]
    answer = http_response(400, "Bad Request", [("Content-Type", "text/plain"),
                                                ("Content-Length", "11")], b"Bad Request")
    pcap = write(tmp_path / "tls2http.pcap", [hello, (1, answer)], end="server-fin", port=8080)
    found, _run = analyse(pcap)
    assert [d.verdict for d in found] == [Verdict.FAILED]
    assert found[0].findings[0].check == "tls_client_hello_to_cleartext_port"
    assert found[0].attempt.response_head is not None
    assert found[0].attempt.response_head.status == 400


def test_cleartext_request_to_a_tls_port(tmp_path: Path) -> None:
    alert = bytes.fromhex("15030300020232")  # what OpenSSL answers: fatal decode_error
    pcap = write(tmp_path / "http2tls.pcap", [(CLIENT, REQUEST), (1, alert)], end="server-fin")
    found, _run = analyse(pcap)
    assert [d.verdict for d in found] == [Verdict.FAILED]
    assert found[0].findings[0].check == "tls_plain_http_to_tls_port"


def test_capture_starting_mid_session_is_not_a_guess(tmp_path: Path, keylog: Path) -> None:
    conversation = _wss(tmp_path, keylog, True)
    pcap = write(tmp_path / "mid.pcap", conversation.chunks, skip=6)
    found, run = analyse(pcap, load_keylog(keylog.read_bytes()))
    assert found == []  # no ClientHello: nothing to match a key to, nothing judged
    assert run.stats.tls_uninspected == 1
    assert run.stats.tls_uninspected_listed[0].reason == "the capture started after the handshake"


def test_bytes_that_only_look_like_tls_are_let_go_at_once(tmp_path: Path) -> None:
    """A record header in front of garbage (the benchmark's bulk traffic): no attempt, and the
    connection is ignored from its first record on, as any other non-HTTP connection."""
    junk = bytes.fromhex("1603010200010001fc0303") + bytes(range(256)) * 2
    pcap = write(tmp_path / "junk.pcap", [(CLIENT, junk[:517]), (1, bytes(3000))], end="open")
    run = Analysis()
    found = list(run.feed_records(read_records([str(pcap)], [])))
    entries = list(run._reassembler.flows.values())
    assert entries and all(conn.ignored for conn, _ in entries)
    found += run.finish()
    assert found == [] and run.stats.tls_uninspected == 0


def test_truncated_records_give_findings_not_tracebacks(tmp_path: Path, keylog: Path) -> None:
    conversation = _wss(tmp_path, keylog, False, "ECDHE-ECDSA-AES128-GCM-SHA256")
    chunks = [(side, data[: len(data) // 2] if index == 3 else data)
              for index, (side, data) in enumerate(conversation.chunks[:4])]
    pcap = write(tmp_path / "cut.pcap", chunks)
    found, _run = analyse(pcap, load_keylog(keylog.read_bytes()))
    assert all(d.verdict in (Verdict.INCONCLUSIVE, Verdict.FAILED, Verdict.NO_RESPONSE)
               for d in found)


def test_keys_in_a_pcapng_secrets_block_are_used(tmp_path: Path, keylog: Path) -> None:
    conversation = _wss(tmp_path, keylog, True)
    pcap = write(tmp_path / "dsb.pcapng", conversation.chunks, end="open", pcapng=True)
    with_secrets_block(pcap, keylog.read_bytes())
    run = Analysis()
    found = list(run.feed_records(read_records([str(pcap)], []))) + run.finish()
    assert [d.verdict for d in found] == [Verdict.SUCCEEDED]
    assert found[0].attempt.tls is not None and found[0].attempt.tls.decrypted


def test_cli_keylog_decrypts_and_never_prints_secrets(tmp_path: Path, keylog: Path) -> None:
    conversation = _wss(tmp_path, keylog, False, "ECDHE-ECDSA-AES128-GCM-SHA256")
    pcap = write(tmp_path / "wss.pcap", conversation.chunks, end="open")
    secrets = [line.split()[2] for line in keylog.read_text().splitlines()
               if line and not line.startswith("#")]
    for fmt in ("table", "json", "jsonl", "csv", "markdown"):
        result = run_cli("read", pcap, "--keylog", keylog, "--format", fmt)
        assert result.exit_code == 0, result.output
        assert "101" in result.output
        assert not any(secret in result.output for secret in secrets)
    detail = run_cli("read", pcap, "--keylog", keylog, "--attempt", "1")
    assert not any(secret in detail.output for secret in secrets)
    missing = run_cli("read", pcap, "--keylog", tmp_path / "nope.log")
    assert missing.exit_code == 1


def _frames_of(path: Path) -> list[Frame]:
    return list(read_captures([str(path)], []))


def test_live_session_waits_for_a_key_written_late(tmp_path: Path, keylog: Path) -> None:
    conversation = _wss(tmp_path, keylog, True)
    pcap = write(tmp_path / "wss.pcap", conversation.chunks, end="open")
    store = KeyStore(wait=10.0)
    run = Analysis(secrets=store)
    found: list[Diagnosis] = []
    for frame in _frames_of(pcap):
        found += run.feed(frame)
        if frame.number == 6:  # the key log is written after the ServerHello went by
            store.add_text(keylog.read_bytes())
    found += run.finish()
    assert [d.verdict for d in found] == [Verdict.SUCCEEDED]
    assert found[0].attempt.tls is not None and found[0].attempt.tls.decrypted


def test_live_session_without_its_key_is_counted_after_the_wait(tmp_path: Path,
                                                               keylog: Path) -> None:
    conversation = _wss(tmp_path, keylog, True)
    pcap = write(tmp_path / "wss.pcap", conversation.chunks, end="open")
    run = Analysis(secrets=KeyStore(wait=10.0))
    frames = _frames_of(pcap)
    found = [d for frame in frames for d in run.feed(frame)]
    assert run.stats.tls_uninspected == 0  # still waiting
    found += run.tick(frames[-1].time + 10.5, 5.0)
    assert found == [] and run.stats.tls_uninspected == 1


@pytest.mark.parametrize("response", [SWITCH, REJECT])
def test_live_session_that_ends_while_waiting_for_its_key_waits_too(
        tmp_path: Path, keylog: Path, response: bytes) -> None:
    """Live, a key log written as the traffic happens (sweep30a B3): a short session that ends
    (both FINs) before its key is read is judged once the key comes, from its plaintext, as a
    later read with the key log judges it (here the client's FIN 1 ms after the 101: aborted;
    the 403: failed), not from its handshake alone ("client FIN right after the server's
    flight", a certificate rejection)."""
    conversation = _wss(tmp_path, keylog, True, response=response)
    pcap = write(tmp_path / "wss.pcap", conversation.chunks, end="fin-both")
    store = KeyStore(wait=10.0)
    run = Analysis(secrets=store, lifetimes=True)
    frames = _frames_of(pcap)
    found = [d for frame in frames for d in run.feed(frame)]
    assert found == []  # ended, but its records wait for the key
    found += run.tick(frames[-1].time + 0.5, 5.0)
    assert found == []
    store.add_text(keylog.read_bytes())  # the key log is read at the next tick
    found += run.tick(frames[-1].time + 1.0, 5.0)
    read, _ = analyse(pcap, load_keylog(keylog.read_bytes()))  # read later, with the key log
    assert [_judged(d) for d in found] == [_judged(d) for d in read]
    assert found[0].verdict is (Verdict.ABORTED if response is SWITCH else Verdict.FAILED)
    tls = found[0].attempt.tls
    assert tls is not None and tls.decrypted
    assert "tls_certificate_rejected" not in {f.check for f in found[0].findings}
    assert found[0].attempt.response_head is not None
    assert run.finish() == [] and run.stats.tls_decrypted == 1


def _judged(diagnosis: Diagnosis) -> tuple[object, ...]:
    return (diagnosis.verdict, tuple(f.check for f in diagnosis.findings),
            diagnosis.attempt.first_frame)


def test_live_session_that_ends_without_its_key_is_counted_after_the_wait(
        tmp_path: Path, keylog: Path) -> None:
    conversation = _wss(tmp_path, keylog, True)
    pcap = write(tmp_path / "wss.pcap", conversation.chunks, end="fin-both")
    run = Analysis(secrets=KeyStore(wait=10.0), lifetimes=True)
    frames = _frames_of(pcap)
    found = [d for frame in frames for d in run.feed(frame)]
    found += run.tick(frames[-1].time + 5.0, 5.0)
    assert found == [] and run.stats.tls_uninspected == 0  # still waiting
    found += run.tick(frames[-1].time + 10.5, 5.0)
    assert found == [] and run.stats.tls_uninspected == 1  # without key, not a failure


def test_live_session_still_waiting_at_the_stop_is_judged_with_the_key_it_has(
        tmp_path: Path, keylog: Path) -> None:
    conversation = _wss(tmp_path, keylog, True)
    pcap = write(tmp_path / "wss.pcap", conversation.chunks, end="fin-both")
    store = KeyStore(wait=10.0)
    run = Analysis(secrets=store, lifetimes=True)
    found = [d for frame in _frames_of(pcap) for d in run.feed(frame)]
    store.add_text(keylog.read_bytes())  # read by the stop's last look at the key log
    found += run.finish()
    read, _ = analyse(pcap, load_keylog(keylog.read_bytes()))
    assert [_judged(d) for d in found] == [_judged(d) for d in read]
    assert found[0].attempt.tls is not None and found[0].attempt.tls.decrypted


def test_followed_key_log_reads_appended_and_rewritten_lines(tmp_path: Path) -> None:
    path = tmp_path / "growing.log"
    store = KeyStore(wait=10.0)
    follower = FollowedKeyLog(str(path), store)
    follower.poll()  # not there yet: nothing, no error
    line = f"CLIENT_RANDOM {'11' * 32} {'ab' * 48}\n"
    path.write_text(line[:40])
    follower.poll()
    assert len(store) == 0  # half a line waits for its end
    with path.open("a") as file:
        file.write(line[40:] + line.replace("11", "22", 32))
    follower.poll()
    assert len(store) == 2
    path.write_text(line.replace("11", "33", 32))  # a new client run rewrites the file
    follower.poll()
    assert len(store) == 3 and store.ignored == 0
    follower.close()


def test_written_pcapng_carries_the_key_log(tmp_path: Path, keylog: Path) -> None:
    """live --keylog --write: whole key log lines go into the written files as Decryption
    Secrets Blocks (again at the start of each rotated file), so they decrypt on their own."""
    conversation = _wss(tmp_path, keylog, True)
    pcap = write(tmp_path / "wss.pcap", conversation.chunks, end="open")
    out = tmp_path / "live.pcapng"
    writer = RotatingPcapngWriter(str(out), [("lo", 1)], 65535, limit=3000, keep=0)
    sink = WholeLines(KeyStore(), writer.write_secrets)
    text = keylog.read_bytes()
    sink.add_text(text[:50])  # half a line is held back
    sink.add_text(text[50:])
    for frame in _frames_of(pcap):
        writer.write(frame)
    writer.close()
    files = sorted(tmp_path.glob("live*.pcapng"))
    assert len(files) > 1  # rotated
    run = Analysis()
    found = list(run.feed_records(read_records([str(f) for f in files], []))) + run.finish()
    assert [d.verdict for d in found] == [Verdict.SUCCEEDED]
    assert found[0].attempt.tls is not None and found[0].attempt.tls.decrypted
    later = RotatingPcapngWriter(str(tmp_path / "one.pcapng"), [("lo", 1)], 65535)
    later.write_secrets(text)
    for frame in _frames_of(pcap):
        later.write(frame)
    later.close()
    run = Analysis()
    found = list(run.feed_records(read_records([str(tmp_path / "one.pcapng")], [])))
    assert [d.attempt.tls.decrypted for d in found + run.finish() if d.attempt.tls] == [True]


def _block_kinds(path: Path) -> list[int]:
    """The pcapng's block types, in file order."""
    data, position, kinds = path.read_bytes(), 0, []
    while position < len(data):
        kind, length = struct.unpack_from("<II", data, position)
        kinds.append(kind)
        position += length
    return kinds


@pytest.mark.parametrize("limit", [0, 3000])
def test_written_pcapng_has_its_keys_before_its_packets(tmp_path: Path, keylog: Path,
                                                        limit: int) -> None:
    """live --keylog --write (sweep30a B2): a key log line is read after the handshake it
    decrypts was captured and written, but readers (ours, Wireshark) use a Decryption Secrets
    Block only for the packets after it. At its close (the run's end, a rotation) a file gets
    its secrets blocks moved before its first packet, so it decrypts without the key log."""
    conversation = _wss(tmp_path, keylog, True)
    pcap = write(tmp_path / "wss.pcap", conversation.chunks, end="fin-both")
    out = tmp_path / "live.pcapng"
    writer = RotatingPcapngWriter(str(out), [("lo", 1)], 65535, limit=limit, keep=0)
    text = keylog.read_bytes()
    lines = text.splitlines(keepends=True)
    frames = _frames_of(pcap)
    for frame in frames:
        writer.write(frame)
        if frame.number == 7:  # the key log is read after the ServerHello was written
            writer.write_secrets(b"".join(lines[:2]))
        if frame.number == 10:
            writer.write_secrets(b"".join(lines[2:]))
    writer.flush()
    if not limit:
        before = _block_kinds(out)
        assert before.index(0xA) > before.index(6)  # as written: keys after packets
    writer.close()
    files = sorted(tmp_path.glob("live*.pcapng"))
    assert (len(files) > 1) is bool(limit)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []
    for path in files:
        kinds = _block_kinds(path)
        if 0xA in kinds:
            assert max(i for i, k in enumerate(kinds) if k == 0xA) < kinds.index(6), kinds
    first = _block_kinds(files[0])
    assert first.count(0xA) == 2
    assert sum(_block_kinds(path).count(6) for path in files) == len(frames)
    run = Analysis()
    found = list(run.feed_records(read_records([str(f) for f in files], []))) + run.finish()
    read, _ = analyse(pcap, load_keylog(text))
    assert [(d.verdict, d.attempt.tls.decrypted if d.attempt.tls else None) for d in found] == [
        (d.verdict, True) for d in read]
    tshark = shutil.which("tshark")
    if tshark is not None and not limit:  # Wireshark's reader too (one pass)
        shown = subprocess.run([tshark, "-r", str(files[0]), "-Y", "http", "-T", "fields",
                                "-e", "http.request.uri", "-e", "http.response.code"],
                               capture_output=True, text=True, timeout=60, check=True)
        assert shown.stdout.split() == ["/chat", "101"], shown


def test_written_pcapng_keys_first_keeps_the_file_mode(tmp_path: Path, keylog: Path) -> None:
    conversation = _wss(tmp_path, keylog, True)
    pcap = write(tmp_path / "wss.pcap", conversation.chunks, end="fin-both")
    out = tmp_path / "live.pcapng"
    writer = RotatingPcapngWriter(str(out), [("lo", 1)], 65535)
    out.chmod(0o640)
    frames = _frames_of(pcap)
    writer.write(frames[0])
    writer.write_secrets(keylog.read_bytes())
    for frame in frames[1:]:
        writer.write(frame)
    writer.close()
    assert out.stat().st_mode & 0o777 == 0o640
    kinds = _block_kinds(out)
    assert kinds[:3] == [0x0A0D0D0A, 1, 0xA] and kinds.count(6) == len(frames)


H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000")


class _H2Recorder:
    """A stand-in for the HTTP/2 stage: records the plaintext it is given, then lets its
    (shadow) connection go by itself, as a stage may."""

    seen: list[bytes] = []

    def __init__(self, run: object, conn: object, tcp: object, kind: object) -> None:
        self._conn = conn

    def on_data(self, side: int, offset: int, data: bytes, frame: int, time: float) -> None:
        _H2Recorder.seen.append(data)
        self._conn.ignore()  # type: ignore[attr-defined]

    def on_syn(self, *args: object) -> None: ...
    def on_gap(self, *args: object) -> None: ...
    def on_conflict(self, *args: object) -> None: ...
    def on_resent(self, *args: object) -> None: ...
    def on_fin(self, *args: object) -> None: ...
    def on_rst(self, *args: object) -> None: ...
    def on_end(self, *args: object) -> None: ...
    def on_tick(self, *args: object) -> None: ...


def test_alpn_h2_plaintext_goes_to_the_http2_stage_or_is_counted(tmp_path: Path,
                                                                 keylog: Path) -> None:
    from analyzer.exchange.first_bytes import Start
    from analyzer.tls.layer import tls_handler

    client_ctx, server_ctx = contexts(tmp_path, tls13=True, keylog=keylog)
    client_ctx.set_alpn_protocols(["h2"])
    server_ctx.set_alpn_protocols(["h2"])
    conversation = talk(client_ctx, server_ctx, client_plain=H2_PREFACE,
                        server_plain=bytes.fromhex("000000040000000000"))
    pcap = write(tmp_path / "h2.pcap", conversation.chunks, end="open")
    keys = load_keylog(keylog.read_bytes())
    run = Analysis(secrets=keys, handlers={Start.TLS: tls_handler})  # no HTTP/2 stage
    found = list(analyze(read_captures([str(pcap)], []), run))
    assert found == [] and run.stats.tls_uninspected == 1
    assert run.stats.tls_uninspected_listed[0].reason == "HTTP/2 not analysed"
    _H2Recorder.seen = []
    handlers = {Start.TLS: tls_handler, Start.H2_PREFACE: _H2Recorder}  # type: ignore[dict-item]
    run = Analysis(secrets=load_keylog(keylog.read_bytes()),
                   handlers=handlers)  # type: ignore[arg-type]
    found = list(analyze(read_captures([str(pcap)], []), run))
    assert found == [] and b"".join(_H2Recorder.seen).startswith(b"PRI * HTTP/2.0")
    assert run.stats.tls_uninspected == 0 and run.stats.tls_decrypted == 1


def test_tls_looking_start_answered_by_non_tls_bulk_is_let_go(tmp_path: Path) -> None:
    # A record header promising more bytes than the client ever sends, then a server that
    # streams bytes that are not TLS records: once the server's side broke, nothing more can
    # be said, so the connection is ignored (its later segments skipped) instead of followed
    # to its end; the end itself is reported as before (nothing: no ClientHello was read).
    hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(200))
    bulk = bytes((i * 7 + 0xB8) % 256 for i in range(60_000))
    pcap = write(tmp_path / "bulk.pcap", [(CLIENT, hello), (1, bulk)], end="server-fin")
    run = Analysis()
    seen: list[bool] = []

    def frames():  # notes, before each frame, whether the connection is ignored yet
        for item in read_captures([str(pcap)], []):
            seen.append(any(conn.ignored for conn, _ in run._reassembler.flows.values()))
            yield item

    assert list(analyze(frames(), run)) == []
    # ignored from the server's first segment on, well before the bulk ended
    assert True in seen and seen.index(True) < 8


def test_a_session_missing_from_embedded_keys_is_told_by_what_its_own_file_carried(
        tmp_path: Path) -> None:
    """Keys come only from pcapng Decryption Secrets Blocks (no --keylog). A session whose
    own capture embedded keys, though not its own, asks for --keylog with its client's key
    log, read alone or with others; a session of another capture read with such a one,
    whose own file embedded none, asks for --keylog plainly, as when read alone, in either
    order. And with a --keylog lacking it, for the client's key log."""
    captures = Path(__file__).resolve().parent.parent / "captures"
    dsb = str(captures / "wss_dsb.pcapng")
    other = captures / "wss_tls13_aes128_gcm.pcap"
    plainly = "1 to SNI wss.upgrade.test without ALPN; use --keylog"
    for order in ((dsb, str(other)), (str(other), dsb)):
        out = run_cli("read", *order).stdout
        assert plainly in out and "embedded keys" not in out
        assert "TLS sessions decrypted: 1" in out  # the pcapng's own session
    assert plainly in run_cli("read", str(other)).stdout
    # the same session in a pcapng that embeds another session's keys
    sys.path.insert(0, str(captures.parent / "benchmarks"))
    try:
        from run import write_as_pcapng
    finally:
        sys.path.remove(str(captures.parent / "benchmarks"))
    own = tmp_path / "other-keys.pcapng"
    write_as_pcapng(other, own)
    with_secrets_block(own, (captures / "wss_tls13_chacha20.keys").read_bytes())
    missing = ("1 to SNI wss.upgrade.test without ALPN (not in the capture's embedded keys); "
               "use --keylog with the key log of the client process")
    assert missing in run_cli("read", str(own)).stdout
    together = run_cli("read", dsb, str(own)).stdout
    assert missing in together and "TLS sessions decrypted: 1" in together
    given = run_cli("read", str(other), "--keylog",
                    str(captures / "wss_tls13_chacha20.keys")).stdout
    assert "(not in the key log); use the key log of the client process" in given
