"""WebSockets over HTTP/2 inside TLS with real software: hypercorn serving its ASGI app over TLS
(ALPN h2, extended CONNECT enabled), a client on the ``h2`` library over Python ``ssl`` with ALPN
``["h2"]`` writing a key log, captured with tcpdump on ``lo`` and read by the real command line
with and without ``--keylog``; tshark with the same key log is the referee for the HEADERS and
statuses.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.builder import write_pcap
from tests.h2_app import _ws_frame, extended_connect
from tests.test_h2_live import (
    HOST,
    ROOT,
    _free_port,
    _replay,
    _stop,
    _wait_listening,
    reorder_within_turns,
    tcpdump,
)
from tests.test_h2_live import pytestmark as _live_marks
from tests.tls_memory import make_certificate

pytest.importorskip("h2")
pytest.importorskip("hypercorn")

pytestmark = _live_marks
SNI = "localhost"


@contextlib.contextmanager
def hypercorn_tls(directory: Path) -> Iterator[tuple[int, Path]]:
    """hypercorn over TLS on a free port; yields the port and the certificate to trust."""
    cert, key = make_certificate(directory, SNI)
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "tests.h2_app", str(port), str(cert),
                                str(key)], cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_listening(port, process)
        yield port, cert
    finally:
        _stop(process)


def _client_context(cert: Path, keylog: Path, version: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert))
    context.set_alpn_protocols(["h2"])
    context.keylog_filename = str(keylog)
    context.maximum_version = VERSIONS[version]
    return context


# TLS 1.3, and TLS 1.2 (ECDHE with AES-GCM: the record reader's other path, RFC 9113 §9.2)
VERSIONS = {"TLS 1.3": ssl.TLSVersion.TLSv1_3, "TLS 1.2": ssl.TLSVersion.TLSv1_2}


# (path, verdict, primary reason, status), in the order of the capture; the same outcomes as
# in cleartext (tests/test_h2_live.py)
EXPECTED = [
    ("/echo", "succeeded", None, 200),
    ("/deny", "failed", "response_forbidden", 403),
    ("/missing", "failed", "response_not_found", 404),
    ("/policy", "aborted", "ws_closed_with_error", 200),
]


Capture = tuple[Path, Path, dict[str, str], str]


@pytest.fixture(scope="module", params=list(VERSIONS))
def capture(request: pytest.FixtureRequest) -> Iterator[Capture]:
    """One capture of every scenario, each on its own TLS connection, and its key log."""
    version: str = request.param
    with tempfile.TemporaryDirectory(prefix="h2-tls-live-") as tmp:
        path, keylog = Path(tmp, "h2tls.pcap"), Path(tmp, "h2tls.keys")
        said: dict[str, str] = {}
        with hypercorn_tls(Path(tmp)) as (port, cert), tcpdump(path, [port]):
            for target, *_ in EXPECTED:
                said[target] = extended_connect(HOST, port, target,
                                                _client_context(cert, keylog, version), SNI)
                time.sleep(0.05)
        yield path, keylog, said, version


def several_streams(port: int, context: ssl.SSLContext) -> list[str]:
    """One TLS connection, three extended CONNECTs on streams 1, 3, 5 (/deny, /echo, /missing)
    and a plain GET on stream 7; on /echo one text message, then Close 1000 with END_STREAM.
    Returns the h2 events the client saw (statuses inline)."""
    import h2.config
    import h2.connection
    import h2.events

    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    seen: list[str] = []
    with socket.create_connection((HOST, port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=SNI) as sock:
        sock.settimeout(0.2)

        def pump(rounds: int) -> None:  # bounded: at most rounds x 0.2 s
            for _ in range(rounds):
                with contextlib.suppress(TimeoutError):
                    data = sock.recv(65536)
                    if not data:
                        return
                    for event in conn.receive_data(data):
                        seen.append(type(event).__name__)
                        if isinstance(event, h2.events.ResponseReceived):
                            fields: dict[Any, Any] = dict(event.headers)  # str: utf-8
                            seen.append(fields[":status"])
                        if isinstance(event, h2.events.DataReceived):
                            conn.acknowledge_received_data(event.flow_controlled_length,
                                                           event.stream_id)
                sock.sendall(conn.data_to_send())

        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        pump(3)
        for stream_id, path in ((1, "/deny"), (3, "/echo"), (5, "/missing")):
            conn.send_headers(stream_id, [(":method", "CONNECT"), (":protocol", "websocket"),
                                          (":scheme", "https"), (":path", path),
                                          (":authority", SNI), ("sec-websocket-version", "13")])
        conn.send_headers(7, [(":method", "GET"), (":scheme", "https"), (":path", "/"),
                              (":authority", SNI)], end_stream=True)
        sock.sendall(conn.data_to_send())
        pump(5)
        conn.send_data(3, _ws_frame(0x1, b"hello"))
        sock.sendall(conn.data_to_send())
        pump(3)
        conn.send_data(3, _ws_frame(0x8, struct.pack(">H", 1000)), end_stream=True)
        sock.sendall(conn.data_to_send())
        pump(3)
        conn.close_connection()
        sock.sendall(conn.data_to_send())
    return seen


def read_json(path: Path, *options: str) -> dict[str, Any]:
    """``python3 -m analyzer read PATH OPTIONS --format json``, as a user runs it."""
    result = subprocess.run([sys.executable, "-m", "analyzer", "read", str(path), *options,
                             "--format", "json"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def _outcomes(document: dict[str, Any]) -> list[tuple[str, str, str | None, int | None]]:
    attempts = sorted(document["attempts"], key=lambda a: a["request_frame"])
    return [(a["path"], a["verdict"],
             a["reasons"][0] if a["verdict"] != "succeeded" and a["reasons"] else None,
             a["status"]) for a in attempts]


def test_real_hypercorn_over_tls_h2_with_keylog(
        capture: Capture) -> None:
    path, keylog, said, version = capture
    assert said["/echo"].startswith("connected") and "403" in said["/deny"], said
    assert "404" in said["/missing"] and "Close 1008" in said["/policy"], said
    document = read_json(path, "--keylog", str(keylog))
    assert _outcomes(document) == EXPECTED, said
    ports = set()
    for attempt in document["attempts"]:
        assert attempt["transport"] == "h2" and attempt["stream_id"] == 1, attempt
        assert attempt["method"] == "CONNECT" and attempt["protocol"] == "websocket"
        tls = attempt["tls"]
        assert (tls["decrypted"], tls["alpn"], tls["sni"]) == (True, "h2", SNI), tls
        assert tls["alpn_offered"] == ["h2"] and tls["version"] == version
        ports.add(attempt["client"])
    assert len(ports) == len(EXPECTED)  # one TLS connection per attempt
    policy = next(a for a in document["attempts"] if a["path"] == "/policy")
    close = next(f for f in policy["findings"] if f["id"] == "ws_closed_with_error")
    assert "1008" in close["found"] and "server" in close["found"], close
    summary = document["summary"]
    assert summary["tls_decrypted"] == len(EXPECTED) and summary["tls_not_inspected"] == 0


def test_without_keylog_the_sessions_are_counted_as_h2(
        capture: Capture) -> None:
    path, _, _, version = capture
    document = read_json(path)
    assert document["attempts"] == []
    summary = document["summary"]
    assert summary["tls_not_inspected"] == len(EXPECTED) and summary["tls_decrypted"] == 0
    listed = summary["tls_sessions_not_inspected"]
    # (TLS 1.3 encrypts the server's choice: there only the client's offer shows)
    chosen = "h2" if version == "TLS 1.2" else None
    assert [(s["sni"], s["alpn"], s["alpn_offered"], s["reason"]) for s in listed] == [
        (SNI, chosen, ["h2"], "no key")] * 4


@pytest.mark.parametrize(("mss", "mangling"), [(7, {}), (60, {"reorder": 2}),
                                               (100, {"duplicate": 3})],
                         ids=["mss7", "mss60-reorder", "mss100-duplicate"])
def test_resegmented_real_tls_capture_gives_the_same(
        capture: Capture, mss: int, mangling: dict[str, int], tmp_path: Path) -> None:
    """The real TLS bytes of each direction, replayed with other segment sizes (records split
    across many segments), reordered or duplicated, give the same verdicts and reasons."""
    path, keylog, _, _ = capture
    # the capture's own time, so that the (decrypted) certificate is as valid as it was
    conversations = _replay(path, mss, start=int(path.stat().st_mtime) - 5)
    out = tmp_path / "mangled.pcap"
    if "reorder" in mangling:  # within each turn only (see reorder_within_turns)
        write_pcap(out, [reorder_within_turns(c.segments(), mangling["reorder"])
                         for c in conversations])
    else:
        write_pcap(out, conversations, **mangling)  # type: ignore[arg-type]
    document = read_json(out, "--keylog", str(keylog))
    assert _outcomes(document) == EXPECTED
    assert all(a["tls"]["decrypted"] and a["transport"] == "h2" for a in document["attempts"])


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is the referee here")
def test_tshark_with_the_keylog_sees_the_same_headers_and_statuses(
        capture: Capture) -> None:
    path, keylog, _, _ = capture
    document = read_json(path, "--keylog", str(keylog))
    port = document["attempts"][0]["server"].rsplit(":", 1)[1]
    result = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-o", f"tls.keylog_file:{keylog}",
         "-d", f"tcp.port=={port},tls", "-Y", "http2.type == 1", "-T", "fields",
         "-e", "frame.number", "-e", "http2.header.name", "-e", "http2.header.value"],
        capture_output=True, text=True, timeout=60, check=True)
    tshark_requests: list[tuple[int, str]] = []
    tshark_statuses: list[tuple[int, int]] = []
    for line in result.stdout.splitlines():
        number, names, values = (line.split("\t") + ["", ""])[:3]
        fields = dict(zip(names.split(","), values.split(","), strict=False))
        if ":protocol" in fields:
            tshark_requests.append((int(number), fields[":path"]))
        if ":status" in fields:
            tshark_statuses.append((int(number), int(fields[":status"])))
    attempts = document["attempts"]
    assert sorted((a["request_frame"], a["path"]) for a in attempts) == sorted(tshark_requests)
    assert sorted((a["response_frame"], a["status"]) for a in attempts) == sorted(
        tshark_statuses)


def test_many_streams_on_one_tls_connection_are_separate_attempts(tmp_path: Path) -> None:
    """Three extended CONNECTs and a GET multiplexed on one h2 session inside TLS 1.3: three
    attempts on their own streams, the GET an ordinary exchange."""
    path, keylog = tmp_path / "streams.pcap", tmp_path / "streams.keys"
    with hypercorn_tls(tmp_path) as (port, cert), tcpdump(path, [port]):
        seen = several_streams(port, _client_context(cert, keylog, "TLS 1.3"))
    assert {"403", "404"} <= set(seen) and seen.count("200") == 2, " ".join(seen)  # /echo, GET
    document = read_json(path, "--keylog", str(keylog))
    got = sorted((a["stream_id"], a["path"], a["verdict"], a["status"],
                  a["reasons"][0] if a["verdict"] != "succeeded" else None)
                 for a in document["attempts"])
    assert got == [(1, "/deny", "failed", 403, "response_forbidden"),
                   (3, "/echo", "succeeded", 200, None),
                   (5, "/missing", "failed", 404, "response_not_found")], seen
    assert len({a["client"] for a in document["attempts"]}) == 1
    assert all(a["tls"]["decrypted"] and a["transport"] == "h2" for a in document["attempts"])
    summary = document["summary"]
    assert summary["ordinary_http_exchanges"] == 1 and summary["tls_decrypted"] == 1
