"""The TLS stage's sans-IO core against real OpenSSL bytes (Python's ssl over memory BIOs)."""

from __future__ import annotations

import datetime
import random
import warnings
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.tls.handshake import HandshakeReader, certificate_info, parse_client_hello
from analyzer.tls.keylog import KeyStore, load_keylog
from analyzer.tls.keys import (
    hkdf_expand_label,
    prf,
    tls13_traffic_keys,
    tls13_traffic_keys_plain,
)
from analyzer.tls.records import ContentType, RecordReader
from analyzer.tls.session import Decryption, TlsSession
from analyzer.tls.suites import SUITES
from tests.tls_memory import CLIENT, SERVER, Conversation, converse

REQUEST = b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\r\n" + b"x" * 3000
RESPONSE = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n" + b"y" * 20000

# (TLS 1.3?, OpenSSL cipher string, RSA certificate?, encrypt-then-MAC?)
CASES = [
    (True, "", False, True),
    (False, "ECDHE-ECDSA-AES128-GCM-SHA256", False, True),
    (False, "ECDHE-ECDSA-AES256-GCM-SHA384", False, True),
    (False, "ECDHE-ECDSA-CHACHA20-POLY1305", False, True),
    (False, "ECDHE-ECDSA-AES128-SHA", False, True),
    (False, "ECDHE-ECDSA-AES128-SHA", False, False),
    (False, "ECDHE-ECDSA-AES256-SHA384", False, True),
    (False, "ECDHE-ECDSA-AES128-SHA256", False, False),
    (False, "AES128-GCM-SHA256", True, True),
    (False, "AES256-SHA256", True, False),
    (False, "ECDHE-RSA-AES256-SHA", True, False),
]


def _ids(case: tuple[bool, str, bool, bool]) -> str:
    tls13, ciphers, _rsa, etm = case
    return ("TLS1.3" if tls13 else ciphers) + ("" if etm else "-mte")


def _run(conversation: Conversation, store: KeyStore | None, pieces: random.Random | None
         ) -> tuple[TlsSession, dict[int, bytes], dict[int, list[int]]]:
    """Feed the conversation's bytes in write order (cut into small pieces when asked)."""
    session = TlsSession(store)
    offsets = {CLIENT: 0, SERVER: 0}
    plain: dict[int, bytes] = {CLIENT: b"", SERVER: b""}
    frames: dict[int, list[int]] = {CLIENT: [], SERVER: []}
    frame = 0
    for side, data in conversation.chunks:
        cuts = [0, len(data)]
        if pieces is not None:
            cuts = sorted({0, len(data), *(pieces.randrange(len(data)) for _ in range(40))})
        for start, end in zip(cuts, cuts[1:], strict=False):
            frame += 1
            for chunk in session.feed(side, offsets[side], data[start:end], frame, float(frame)):
                assert chunk.offset == len(plain[chunk.side])
                plain[chunk.side] += chunk.data
                frames[chunk.side].append(chunk.frame)
            offsets[side] += end - start
    return session, plain, frames


@pytest.fixture(scope="module", params=CASES, ids=_ids)
def conversation(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                 ) -> Conversation:
    tls13, ciphers, use_rsa, etm = request.param
    return converse(tmp_path_factory.mktemp("tls"), tls13=tls13, ciphers=ciphers,
                    client_plain=REQUEST, server_plain=RESPONSE, alpn=("http/1.1",),
                    server_alpn=("http/1.1",), use_rsa=use_rsa, encrypt_then_mac=etm)


@pytest.mark.parametrize("split", [False, True], ids=["whole", "pieces"])
def test_decrypts_what_was_sent(conversation: Conversation, split: bool) -> None:
    assert conversation.server_received == REQUEST  # the real endpoints agreed
    session, plain, frames = _run(conversation, load_keylog(conversation.keylog),
                                  random.Random(7) if split else None)
    assert session.decryption == Decryption.DECRYPTED
    assert plain[CLIENT] == REQUEST
    assert plain[SERVER] == RESPONSE
    assert session.client_side == CLIENT
    assert session.client_hello is not None and session.client_hello.sni == "localhost"
    assert session.client_hello.alpn == ("http/1.1",)
    assert session.alpn == "http/1.1"
    assert session.version == (0x0304 if conversation.version == "TLSv1.3" else 0x0303)
    assert frames[CLIENT] == sorted(frames[CLIENT])
    assert session.carried_application_data()
    assert session.certificates and session.certificates[0].covers("localhost")


def test_no_keys_gives_facts_only(conversation: Conversation) -> None:
    session, plain, _frames = _run(conversation, None, None)
    assert session.decryption == Decryption.NO_KEYS
    assert plain == {CLIENT: b"", SERVER: b""}
    assert session.client_hello is not None and session.client_hello.sni == "localhost"
    assert session.carried_application_data()
    if conversation.version != "TLSv1.3":  # the chain is in cleartext only before TLS 1.3
        assert session.certificates[0].names == ("localhost", "127.0.0.1")


def test_key_for_another_session_is_not_a_key(conversation: Conversation) -> None:
    store = KeyStore()
    session, plain, _frames = _run(conversation, store, None)
    assert session.decryption == Decryption.NO_KEY and plain[CLIENT] == b""


def test_wrong_key_is_a_mismatch(conversation: Conversation) -> None:
    # Every secret's bytes flipped: the session has a key, and it does not open the records.
    lines = []
    for line in conversation.keylog.decode().splitlines():
        if line.startswith("#"):
            continue
        label, client_random, secret = line.split()
        lines.append(f"{label} {client_random} {bytes(b ^ 1 for b in bytes.fromhex(secret)).hex()}")
    session, plain, _frames = _run(conversation, load_keylog("\n".join(lines).encode()), None)
    assert session.decryption == Decryption.MISMATCH
    assert session.mismatch_frame > 0
    assert plain == {CLIENT: b"", SERVER: b""}


def test_hkdf_expand_label_rfc8448() -> None:
    # RFC 8448 §3, "derive write traffic keys for handshake data" (server).
    secret = bytes.fromhex("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")
    assert hkdf_expand_label(secret, "key", b"", 16, "sha256").hex() == \
        "3fce516009c21727d0f2e4e86ee403bc"
    assert hkdf_expand_label(secret, "iv", b"", 12, "sha256").hex() == "5d313eb2671276ee13000b30"
    keys = tls13_traffic_keys(SUITES[0x1301], secret)  # TLS_AES_128_GCM_SHA256, as RFC 8448
    assert (keys.key.hex(), keys.iv.hex(), keys.mac_key) == (
        "3fce516009c21727d0f2e4e86ee403bc", "5d313eb2671276ee13000b30", b"")


def test_traffic_keys_made_per_suite_are_the_plain_ones() -> None:
    """`tls13_traffic_keys` (what each suite's labels share made once, the keys stored
    through their slots) against its plain twin, for every TLS 1.3 suite, twice each."""
    tls13 = [suite for suite in SUITES.values() if suite.tls13]
    assert len(tls13) >= 5
    for suite in tls13 * 2:
        for secret in (bytes(range(32)), bytes(range(48)), bytes(48)):
            made, plain = tls13_traffic_keys(suite, secret), tls13_traffic_keys_plain(suite,
                                                                                      secret)
            assert made == plain and type(made) is type(plain)
            assert (len(made.key), len(made.iv)) == (suite.key_length, suite.iv_length)


def test_tls12_prf_known_answer() -> None:
    # The TLS 1.2 PRF (SHA-256) test vector published on the IETF TLS list (Joseph Birr-Pixton).
    secret = bytes.fromhex("9bbe436ba940f017b17652849a71db35")
    seed = bytes.fromhex("a0ba9f936cda311827a6f796ffd5198c")
    out = prf(0x0303, "sha256", secret, b"test label", seed, 100)
    assert out[:16].hex() == "e3f229ba727be17b8d122620557cd453"
    assert out[-4:].hex() == "87347b66"


def test_tls10_prf_is_md5_xor_sha1_of_the_secret_halves() -> None:
    """RFC 2246 §5 (TLS 1.0 and 1.1): PRF = P_MD5(S1, label + seed) XOR P_SHA-1(S2, label +
    seed), S1 and S2 the secret's halves (sharing the middle byte when its length is odd),
    computed here with the standard library's HMAC, not the `cryptography` one keys.py uses."""
    import hashlib
    import hmac as std_hmac

    def p_hash(name: str, secret: bytes, seed: bytes, length: int) -> bytes:
        out, a = b"", seed
        while len(out) < length:
            a = std_hmac.new(secret, a, getattr(hashlib, name)).digest()
            out += std_hmac.new(secret, a + seed, getattr(hashlib, name)).digest()
        return out[:length]

    for secret in (bytes(range(48)), bytes(range(47))):
        half = (len(secret) + 1) // 2
        seed = b"key expansion" + bytes(range(64))
        expected = bytes(x ^ y for x, y in zip(p_hash("md5", secret[:half], seed, 104),
                                               p_hash("sha1", secret[-half:], seed, 104),
                                               strict=True))
        assert prf(0x0301, "sha256", secret, b"key expansion", bytes(range(64)), 104) \
            == expected


def test_record_reader_frames_and_split() -> None:
    record = bytes((ContentType.HANDSHAKE, 3, 1, 0, 10)) + bytes(range(10))
    stream = record * 3
    reader = RecordReader()
    got = []
    for position in range(len(stream)):  # one byte per frame
        got += reader.feed(position, stream[position:position + 1], position + 1, 0.0)
    assert [(r.first_frame, r.last_frame) for r in got] == [(1, 15), (16, 30), (31, 45)]
    assert all(r.body == bytes(range(10)) for r in got)
    whole = RecordReader().feed(0, stream, 9, 0.0)
    assert [(r.first_frame, r.last_frame, r.offset) for r in whole] == [
        (9, 9, 0), (9, 9, 15), (9, 9, 30)]


def test_record_reader_stops_on_non_tls() -> None:
    reader = RecordReader()
    assert reader.feed(0, b"GET / HTTP/1.1\r\n\r\n", 1, 0.0) == []
    assert "content type" in reader.broken
    assert RecordReader().feed(0, bytes((23, 3, 3, 0xFF, 0xFF)), 1, 0.0) == []


def test_handshake_messages_across_records() -> None:
    message = bytes((1, 0, 0, 5)) + b"abcde"
    reader = HandshakeReader()
    assert reader.feed(message[:3], 1, 0.0) == []
    got = reader.feed(message[3:] + message, 2, 0.0)
    assert [(m.kind, m.body, m.frame) for m in got] == [(1, b"abcde", 1), (1, b"abcde", 2)]


def _reader_runs(monkeypatch: pytest.MonkeyPatch, chunks: list[bytes]
                 ) -> list[list[tuple[object, ...]]]:
    """What a record reader, and a handshake reader over its handshake records' bodies, make of
    ``chunks`` with the whole-record and whole-message reads on and off (their plain twins):
    per chunk, the records and messages it completed and each reader's state after it."""
    from analyzer.tls import handshake, records

    runs = []
    for whole in (True, False):
        monkeypatch.setattr(records, "WHOLE_RECORDS", whole)
        monkeypatch.setattr(handshake, "WHOLE_MESSAGES", whole)
        reader, messages = RecordReader(), HandshakeReader()
        offset, seen = 0, []
        for frame, chunk in enumerate(chunks, 1):
            cut = reader.feed(offset, chunk, frame, float(frame))
            offset += len(chunk)
            made = [message for record in cut if record.content_type == ContentType.HANDSHAKE
                    for message in messages.feed(record.body, record.last_frame, record.time)]
            seen.append((cut, made, reader.next_offset, reader.buffered, reader.records_read,
                         reader.broken, reader.partial(), messages.pending, messages.broken))
        runs.append(seen)
    return runs


def _records(kind: int, bodies: list[bytes]) -> bytes:
    return b"".join(bytes((kind, 3, 3, len(body) >> 8, len(body) & 0xFF)) + body
                    for body in bodies)


@pytest.mark.parametrize("seed", range(6))
def test_whole_records_and_messages_are_read_as_through_the_buffer(
        conversation: Conversation, monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    """The reads of whole records and whole messages where they lie (`records.WHOLE_RECORDS`,
    `handshake.WHOLE_MESSAGES`) against their plain twins, on real OpenSSL bytes cut as they
    were written, at random, and around hand-made records: handshake records of several whole
    messages or a message cut across records, a record cut, a header at fault."""
    pieces = random.Random(seed)
    message = bytes((2, 0, 0, 6)) + b"abcdef"
    for side in (CLIENT, SERVER):
        stream = b"".join(data for chunk_side, data in conversation.chunks if chunk_side == side)
        handmade = (_records(ContentType.HANDSHAKE, [message * 3, message[:7], message[7:]])
                    + _records(ContentType.APPLICATION_DATA, [b"x" * 40, b""]))
        for data in (stream, handmade + stream, handmade + b"\x63\x03\x03\x00\x01z" + stream):
            if seed == 0:  # as written: each write whole
                chunks = [chunk for chunk_side, chunk in conversation.chunks
                          if chunk_side == side] if data is stream else [data]
            else:
                cuts = sorted({0, len(data), *(pieces.randrange(len(data))
                                               for _ in range(seed * 6))})
                chunks = [data[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]
            whole, plain = _reader_runs(monkeypatch, chunks)
            assert whole == plain


def test_client_hello_cut_short_is_a_problem_not_a_crash() -> None:
    hello = parse_client_hello(bytes((3, 3)) + bytes(10))
    assert hello.problem and hello.legacy_version == 0x0303
    assert certificate_info(b"\x30\x03junk") is None


def test_a_certificate_whose_serial_is_zero_is_read_without_a_library_warning() -> None:
    """RFC 5280 §4.1.2.2 wants a positive serial number; test CAs and appliances issue 0.
    cryptography parses it with a CryptographyDeprecationWarning (the fuzzer met one), which
    must not become a line on the user's terminal: the certificate is read as it came."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "zero.example")])
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    der = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
           .public_key(key.public_key()).serial_number(0x55).not_valid_before(start)
           .not_valid_after(start + datetime.timedelta(days=30)).sign(key, hashes.SHA256())
           .public_bytes(serialization.Encoding.DER))
    serial = der.index(bytes((0x02, 0x01, 0x55)))  # INTEGER 0x55 → INTEGER 0
    zero = der[:serial] + bytes((0x02, 0x01, 0x00)) + der[serial + 3:]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        info = certificate_info(zero)
    assert info is not None and info.names == ("zero.example",) and info.self_signed


def test_keylog_ignores_garbage_and_never_shows_secrets() -> None:
    secret = "ab" * 48
    text = (f"# comment\n\nCLIENT_RANDOM {'11' * 32} {secret}\n"
            f"CLIENT_RANDOM {'22' * 32} zz\nnonsense line\nCLIENT_RANDOM {'33' * 31} {secret}\n"
            f"SERVER_TRAFFIC_SECRET_0 {'44' * 32} {'cd' * 32}\nCLIENT_RANDOM {'55' * 32} abcd")
    store = load_keylog(text.encode())
    assert len(store) == 2 and store.lines == 2 and store.ignored == 4
    assert bytes.fromhex("11" * 32) in store
    assert secret not in repr(store) and secret not in str(store)
    assert "cd" * 32 not in repr(store)


def test_keylog_growing_file_waits_for_whole_lines() -> None:
    store = KeyStore()
    line = f"CLIENT_RANDOM {'11' * 32} {'ab' * 48}\n"
    store.add_text(line[:30])
    assert len(store) == 0
    store.add_text(line[30:])
    assert len(store) == 1 and store.ignored == 0


def test_keystore_needs_no_filesystem(tmp_path: Path) -> None:
    # The key store is sans-IO: reading the file is the caller's job.
    path = tmp_path / "k.log"
    path.write_text(f"CLIENT_RANDOM {'11' * 32} {'ab' * 48}\n")
    assert len(load_keylog(path.read_bytes())) == 1


@given(st.data())
@settings(max_examples=150, deadline=None, derandomize=True)
def test_damaged_conversations_never_raise(data: st.DataObject) -> None:
    """Flipped bytes, cuts and junk anywhere in a real conversation: facts, never a traceback."""
    conversation = _FUZZ_SEEDS[data.draw(st.integers(0, len(_FUZZ_SEEDS) - 1))]
    chunks = [list(bytearray(d)) for _, d in conversation.chunks]
    index = data.draw(st.integers(0, len(chunks) - 1))
    action = data.draw(st.sampled_from(["flip", "cut", "junk", "length"]))
    target = chunks[index]
    where = data.draw(st.integers(0, len(target) - 1))
    if action == "flip":
        target[where] ^= data.draw(st.integers(1, 255))
    elif action == "cut":
        del target[where:]
    elif action == "junk":
        target[where:where] = list(data.draw(st.binary(min_size=1, max_size=40)))
    else:
        target[where:where + 2] = [0xFF, 0xFF]
    session = TlsSession(load_keylog(conversation.keylog))
    offsets = {CLIENT: 0, SERVER: 0}
    for frame, ((side, _), chunk) in enumerate(zip(conversation.chunks, chunks, strict=True)):
        session.feed(side, offsets[side], bytes(chunk), frame + 1, float(frame))
        offsets[side] += len(chunk)
    assert session.decryption in tuple(Decryption)
    session.carried_application_data()
    session.client_finished()


def _seed(tls13: bool, ciphers: str) -> Conversation:
    import tempfile

    return converse(Path(tempfile.mkdtemp(prefix="tls-fuzz-")), tls13=tls13, ciphers=ciphers,
                    client_plain=REQUEST[:200], server_plain=RESPONSE[:300])


_FUZZ_SEEDS = [_seed(True, ""), _seed(False, "ECDHE-ECDSA-AES128-GCM-SHA256"),
               _seed(False, "ECDHE-ECDSA-AES128-SHA")]


def test_hello_retry_request_then_decryption(tmp_path: Path) -> None:
    """A server that wants another key share group answers HelloRetryRequest (RFC 8446
    §4.1.4); the client's second ClientHello keeps its random, and the keys still open."""
    from tests.tls_memory import contexts, talk

    client_ctx, server_ctx = contexts(tmp_path, tls13=True, keylog=tmp_path / "k.log")
    server_ctx.set_ecdh_curve("secp384r1")  # the client's first key share is X25519
    talk_ = talk(client_ctx, server_ctx, client_plain=REQUEST[:300], server_plain=RESPONSE[:300])
    assert talk_.server_received == REQUEST[:300]
    conversation = Conversation(talk_.chunks, (tmp_path / "k.log").read_bytes(), b"", b"",
                                "TLSv1.3", "")
    session, plain, _frames = _run(conversation, load_keylog(conversation.keylog), None)
    assert session.retry and session.version == 0x0304
    assert session.decryption == Decryption.DECRYPTED
    assert plain[CLIENT] == REQUEST[:300] and plain[SERVER] == RESPONSE[:300]


def _hellos_of_bundled_captures() -> list[bytes]:
    """The ClientHello and ServerHello bodies found whole in the bundled captures' bytes (a
    handshake record's header followed by the message's, within one packet)."""
    bodies: list[bytes] = []
    for path in sorted(Path(__file__).resolve().parents[1].glob("captures/*.pcap*")):
        data = path.read_bytes()
        at = data.find(b"\x16\x03")
        while at >= 0:
            if len(data) > at + 9 and data[at + 5] in (1, 2) and data[at + 6] == 0:
                length = int.from_bytes(data[at + 6:at + 9], "big")
                body = data[at + 9:at + 9 + length]
                if len(body) == length > 38 and body[0] == 3 and body not in bodies:
                    bodies.append(body)
            at = data.find(b"\x16\x03", at + 1)
    return bodies


def test_hello_extensions_read_by_index_equal_the_cursor_reading() -> None:
    # handshake._extensions and _uint16s (read by index) against the plain `_Cursor` reading
    # they replaced, on every hello of the bundled captures, whole and cut at every length
    from analyzer.tls.handshake import _Cursor, _extensions, _Short, _uint16s

    def plain_extensions(cursor: _Cursor) -> list[tuple[int, bytes]]:
        if cursor.left == 0:
            return []
        block = _Cursor(cursor.vector(2))
        found = []
        while block.left:
            kind = block.uint(2)
            found.append((kind, block.vector(2)))
        return found

    def outcome(read, body: bytes) -> object:
        cursor = _Cursor(body)
        try:
            return read(cursor), cursor.at
        except _Short:
            return "short"

    hellos = _hellos_of_bundled_captures()
    assert len(hellos) > 20
    for hello in hellos:
        for start in (0, 1, 2, 34, 35, 66, 67, 68, 69, 70):  # where a field may begin
            body = hello[start:]
            for cut in range(len(body) + 1):
                assert outcome(_extensions, body[:cut]) == outcome(plain_extensions, body[:cut])
        for cut in range(len(hello) + 1):
            data = hello[:cut]
            assert _uint16s(data) == tuple(int.from_bytes(data[i:i + 2], "big")
                                           for i in range(0, len(data) - 1, 2))
