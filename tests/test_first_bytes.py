"""The first-bytes classifier and the hand-off of a connection to another stage."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analyzer.exchange.first_bytes import (
    H2_PREFACE,
    Start,
    classify_first_bytes,
    describe_start,
    read_first_bytes,
)
from analyzer.exchange.handoff import RunContext
from analyzer.exchange.tcplog import TcpLog
from analyzer.pipeline import Analysis, analyze
from analyzer.reassembly import Connection
from analyzer.source import read_captures
from tests.builder import Conversation, http_request, write_pcap


def _client_hello(version: ssl.TLSVersion) -> bytes:
    """The first flight of a real OpenSSL client (Python's ssl over memory BIOs)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = context.maximum_version = version
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(incoming, outgoing, server_hostname="example.com")
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    return outgoing.read()


# An HTTP/2 server's first frame: SETTINGS (type 4) on stream 0 with one setting,
# SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 (RFC 9113 §6.5, RFC 8441 §3).
H2_SERVER_SETTINGS = b"\x00\x00\x06\x04\x00\x00\x00\x00\x00" + b"\x00\x08\x00\x00\x00\x01"
TLS_FATAL_ALERT = b"\x15\x03\x03\x00\x02\x02\x30"  # alert(21) TLS 1.2, fatal unknown_ca(48)

CASES = [
    (_client_hello(ssl.TLSVersion.TLSv1_3), Start.TLS, "a TLS handshake record"),
    (_client_hello(ssl.TLSVersion.TLSv1_2), Start.TLS, "a TLS handshake record"),
    (TLS_FATAL_ALERT, Start.TLS, "a TLS alert record"),
    (H2_PREFACE + H2_SERVER_SETTINGS, Start.H2_PREFACE, "the HTTP/2 client preface"),
    (H2_SERVER_SETTINGS, Start.H2_FRAMES, "an HTTP/2 SETTINGS frame"),
    (b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", Start.SSH,
     "an SSH banner 'SSH-2.0-OpenSSH_9.2p1 Debian-2'"),
    (b"POST /upload HTTP/1.1\r\n", Start.HTTP1_REQUEST, "an HTTP/1.x request"),
    (b"PUT /x HTTP/1.1\r\n", Start.HTTP1_REQUEST, "an HTTP/1.x request"),
    (b"PRI /not-the-preface HTTP/1.1\r\n", Start.HTTP1_REQUEST, "an HTTP/1.x request"),
    (b"GET /ws HTTP/1.1\r\n", Start.HTTP1_REQUEST, "an HTTP/1.x request"),
    (b"HTTP/1.1 101 Switching Protocols\r\n", Start.HTTP1_RESPONSE, "an HTTP/1.x response"),
    (b"220 mail.example.com ESMTP\r\n", Start.OTHER, "an SMTP greeting"),
    (b"\x16\x01\x00\x00", Start.OTHER, "4+ bytes of another protocol (16 01 00 00)"),
    (b"\x00\x00\x06\x01\x04\x00\x00\x00\x01", Start.OTHER,
     "9+ bytes of another protocol (00 00 06 01 04 00 00 00 ...)"),
]


@pytest.mark.parametrize(("prefix", "kind", "words"), CASES,
                         ids=[c[2] + f" {i}" for i, c in enumerate(CASES)])
def test_classify_first_bytes(prefix: bytes, kind: Start, words: str) -> None:
    assert classify_first_bytes(prefix) is kind
    assert classify_first_bytes(bytearray(prefix)) is kind
    assert describe_start(kind, prefix) == words


@pytest.mark.parametrize(("prefix", "kind", "words"), CASES,
                         ids=[c[2] + f" {i}" for i, c in enumerate(CASES)])
def test_the_answer_never_changes_once_given(prefix: bytes, kind: Start, words: str) -> None:
    answers = [classify_first_bytes(prefix[:n]) for n in range(len(prefix) + 1)]
    decided = [a for a in answers if a is not Start.NEED_MORE]
    assert decided and set(decided) == {kind}
    first = answers.index(kind)
    assert all(a is kind for a in answers[first:])


@given(st.binary(max_size=64), st.binary(max_size=64))
def test_stable_on_any_bytes(data: bytes, more: bytes) -> None:
    first = classify_first_bytes(data)
    if first is not Start.NEED_MORE:
        assert classify_first_bytes(data + more) is first


_FIRST_PIECES = [b"GET", b"POST", b"PUT", b"PRI", b" * ", b"HTTP/1.1", b"HTTP/2.0", b" ", b"\t",
                 b"/a", b"a", b"\r\n", b"SSH-", b"S", b"P", b"\x16\x03\x01", b"\x00\x00",
                 b"\x04", b"101", b"\x01", b"H", H2_PREFACE[:9]]


def _read_on(prefix: bytes, cuts: list[int]) -> None:
    so_far = None
    for cut in cuts:
        kind, so_far = read_first_bytes(prefix[:cut], so_far)
        assert kind is classify_first_bytes(prefix[:cut]), cut
        if kind is not Start.NEED_MORE:
            assert so_far is None
            return


@pytest.mark.parametrize(("prefix", "kind", "words"), CASES,
                         ids=[c[2] + f" {i}" for i, c in enumerate(CASES)])
def test_first_bytes_read_on_answer_as_read_whole(prefix: bytes, kind: Start, words: str) -> None:
    """`read_first_bytes` reads an HTTP/1 start line still growing on from where it was left
    (http/start.py `read_start`); its twin `classify_first_bytes` reads every prefix whole."""
    _read_on(prefix, list(range(1, len(prefix) + 1)))


@given(st.lists(st.sampled_from(_FIRST_PIECES), max_size=10).map(b"".join),
       st.lists(st.integers(1, 30), max_size=8))
def test_first_bytes_read_on_answer_as_read_whole_however_cut(prefix: bytes,
                                                               steps: list[int]) -> None:
    _read_on(prefix, list(range(1, len(prefix) + 1)))
    cuts = [sum(steps[: i + 1]) for i in range(len(steps))]
    _read_on(prefix, [c for c in cuts if c < len(prefix)] + [len(prefix)])


# --- the hand-off -----------------------------------------------------------------------------


class RecordingStage:
    """A stage that takes SSH connections over and records what the reassembler tells it."""

    made: list[RecordingStage] = []

    def __init__(self, run: RunContext, conn: Connection, tcp: TcpLog, kind: Start) -> None:
        self.kind = kind
        self.tcp = tcp
        self.data: dict[int, bytearray] = {0: bytearray(), 1: bytearray()}
        self.offsets: dict[int, list[int]] = {0: [], 1: []}
        self.ends: list[str] = []
        RecordingStage.made.append(self)

    def on_syn(self, side: int, frame: int, time: float, with_ack: bool) -> None:
        self.tcp.syn(frame, time, with_ack)

    def on_data(self, side: int, offset: int, data: bytes, frame: int, time: float) -> None:
        assert offset == len(self.data[side]), "bytes must come in order, none twice"
        self.offsets[side].append(offset)
        self.data[side] += data

    def on_gap(self, side: int, offset: int, length: int, frame: int, time: float,
               cause: str = "capture") -> None:
        raise AssertionError("no hole in this capture")

    def on_conflict(self, side: int, offset: int, length: int, frame: int, time: float) -> None:
        raise AssertionError("no conflict in this capture")

    def on_resent(self, side: int, offset: int, length: int, frame: int, time: float) -> None:
        pass  # (the first bytes are what this listener is about)

    def on_fin(self, side: int, frame: int, time: float, lost: bool = False) -> None:
        self.tcp.fin_of(side, frame, time)

    def on_rst(self, side: int, frame: int, time: float) -> None:
        self.tcp.rst_of(side, frame, time)

    def on_end(self, time: float, reason: str) -> None:
        self.ends.append(reason)

    def on_tick(self, now: float, patience: float) -> None:
        pass


CLIENT_BANNER = b"SSH-2.0-OpenSSH_9.2p1\r\n" + bytes(range(200))
SERVER_BANNER = b"SSH-2.0-dropbear_2022.83\r\n" + bytes(range(100, 250))


def _ssh_capture(tmp_path: Path, client_first: list[int]) -> Path:
    conv = Conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 22))
    conv.handshake()
    if client_first:  # a few client bytes that cannot be classified yet
        conv.client(CLIENT_BANNER[: client_first[0]])
    conv.server(SERVER_BANNER, split=[2, 5])
    conv.client(CLIENT_BANNER[client_first[0] if client_first else 0:], split=[7])
    conv.client_fin()
    conv.server_fin()
    # an HTTP/1 connection beside it must still be read by the HTTP/1 tracker
    http = Conversation(client=("10.0.0.1", 40001), server=("10.0.0.2", 80))
    http.handshake()
    http.client(http_request("GET", "/ws", [("Host", "x"), ("Upgrade", "websocket"),
                                            ("Connection", "Upgrade")]))
    http.client_fin()
    path = tmp_path / "ssh.pcap"
    write_pcap(path, [conv, http])
    return path


@pytest.mark.parametrize("client_first", [[], [1], [3]], ids=["server first", "1 byte", "3 bytes"])
def test_a_stage_with_a_handler_takes_the_connection_over(
    tmp_path: Path, client_first: list[int]
) -> None:
    RecordingStage.made.clear()
    analysis = Analysis(handlers={Start.SSH: RecordingStage})
    diagnoses = list(analyze(read_captures([str(_ssh_capture(tmp_path, client_first))], []),
                             analysis))
    [stage] = RecordingStage.made
    assert stage.kind is Start.SSH
    assert bytes(stage.data[0]) == CLIENT_BANNER  # every byte once, the buffered ones first
    assert bytes(stage.data[1]) == SERVER_BANNER
    assert stage.ends == ["closed"]
    assert stage.tcp.syn_seen is not None and stage.tcp.syn_ack is not None  # seen before
    assert stage.tcp.fin[0] is not None and stage.tcp.fin[1] is not None
    # the SSH connection made no attempt; the HTTP one still did
    assert [d.attempt.server.port for d in diagnoses] == [80]


def test_without_a_handler_such_a_connection_is_ignored(tmp_path: Path) -> None:
    RecordingStage.made.clear()
    analysis = Analysis(handlers={})
    diagnoses = list(analyze(read_captures([str(_ssh_capture(tmp_path, [3]))], []), analysis))
    assert not RecordingStage.made
    assert [d.attempt.server.port for d in diagnoses] == [80]
    assert analysis.stats.http_connections == 1
