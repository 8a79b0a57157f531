"""The bundled TLS captures (captures/generate_tls.py) hold what expected.json says, by tshark.

tshark is the referee the analyzer's TLS stage is compared with: decrypting each capture with
its key log (or the pcapng's Decryption Secrets Block), it must find exactly the HTTP requests
and statuses the real software exchanged, WebSocket frames after every switch that succeeded,
and nothing readable where no key was logged. Every key log line must name a ClientHello of its
capture (that is how a key finds its connection).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
GENERATOR = "captures/generate_tls.py"
EXPECTED: list[dict[str, Any]] = [
    e for e in json.loads((CAPTURES / "expected.json").read_text())["captures"]
    if e.get("generator") == GENERATOR
]
# NSS key log labels (RFC 9850): TLS 1.2 master secrets, the older RSA premaster form, and the
# TLS 1.3 traffic secrets.
LABELS = {"CLIENT_RANDOM", "RSA", "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
          "SERVER_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0",
          "SERVER_TRAFFIC_SECRET_0", "EXPORTER_SECRET", "CLIENT_EARLY_TRAFFIC_SECRET",
          "EARLY_EXPORTER_SECRET"}
FIELDS = ["ip.src", "ipv6.src", "tcp.srcport", "ip.dst", "ipv6.dst", "tcp.dstport",
          "http.request.method", "http.request.uri", "http.response.code", "websocket.opcode",
          "tls.handshake.type", "tls.handshake.random"]

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None,
                                reason="the referee needs tshark (apt-get install tshark)")


def _endpoint(v4: str, v6: str, port: str) -> str:
    return f"{v4}:{port}" if v4 else f"[{v6}]:{port}"


class Seen:
    """What tshark decoded on one TCP connection, client to server and back."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.statuses: list[int] = []
        self.websocket_frames = 0
        self.client_randoms: list[str] = []


def tshark(path: Path, keys: Path | None, tls_ports: list[int]) -> dict[tuple[str, str], Seen]:
    """(client, server) -> what tshark shows on that connection; the client is the side that
    sent the SYN, found by the server ports expected.json names."""
    command = ["tshark", "-r", str(path), "-n", "-T", "fields", "-E", "occurrence=f",
               "-Y", "http || websocket || tls.handshake.type == 1"]
    if keys is not None:
        command += ["-o", f"tls.keylog_file:{keys}"]
    for port in tls_ports:
        command += ["-d", f"tcp.port=={port},tls"]
    for name in FIELDS:
        command += ["-e", name]
    out = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    servers = {a["server"] for e in EXPECTED for a in e["attempts"] + e.get("uninspected", [])}
    seen: dict[tuple[str, str], Seen] = defaultdict(Seen)
    for line in out.stdout.splitlines():
        f = dict(zip(FIELDS, line.split("\t"), strict=True))
        source = _endpoint(f["ip.src"], f["ipv6.src"], f["tcp.srcport"])
        target = _endpoint(f["ip.dst"], f["ipv6.dst"], f["tcp.dstport"])
        key = (source, target) if target in servers else (target, source)
        if f["http.request.method"]:
            seen[key].requests.append((f["http.request.method"], f["http.request.uri"]))
        if f["http.response.code"]:
            seen[key].statuses.append(int(f["http.response.code"]))
        if f["websocket.opcode"]:
            seen[key].websocket_frames += 1
        if f["tls.handshake.type"] == "1":
            seen[key].client_randoms.append(f["tls.handshake.random"])
    return dict(seen)


@functools.cache
def decoded(file: str) -> dict[tuple[str, str], Seen]:
    entry = entry_for(file)
    keys = CAPTURES / entry["keylog"] if entry["keylog"] else None
    return tshark(CAPTURES / file, keys, entry["tls_ports"])


def entry_for(file: str) -> dict[str, Any]:
    return next(e for e in EXPECTED if e["file"] == file)


def keylog_randoms(text: str) -> list[str]:
    """The client randoms of a key log's lines (comments and blank lines skipped); the label
    of every line must be one the NSS format defines."""
    randoms = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        label, random, secret = line.split()
        assert label in LABELS, line.split()[0]
        if label != "RSA":  # RSA lines carry the first 8 bytes of the encrypted premaster
            assert len(random) == 64, label
        assert len(secret) >= 64, label
        randoms.append(random.lower())
    return randoms


def embedded_secrets(path: Path) -> str:
    """The TLS key log inside a pcapng's Decryption Secrets Blocks (type 0x0A, "TLSK")."""
    data = path.read_bytes()
    assert data[:4] == b"\x0a\x0d\x0d\x0a", "not a pcapng"
    order = "<" if data[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
    secrets, offset = [], 0
    while offset + 12 <= len(data):
        kind, length = struct.unpack_from(order + "II", data, offset)
        if kind == 0x0000000A:
            secrets_type, secrets_length = struct.unpack_from(order + "II", data, offset + 8)
            if secrets_type == 0x544C534B:
                secrets.append(data[offset + 16:offset + 16 + secrets_length].decode())
        offset += length
    return "".join(secrets)


def _files(predicate: Any = lambda e: True) -> list[str]:
    return [e["file"] for e in EXPECTED if predicate(e)]


def test_there_are_tls_captures_of_every_kind() -> None:
    assert len(EXPECTED) >= 25
    assert any(e["secrets_embedded"] for e in EXPECTED)
    assert any(e.get("uninspected") for e in EXPECTED)
    assert any(e["link"].startswith("Linux cooked") for e in EXPECTED)
    resumed = [a["tls"]["version"] for e in EXPECTED for a in e["attempts"]
               if a["tls"] and a["tls"]["resumed"]]
    assert sorted(resumed) == ["TLS 1.2", "TLS 1.3"]
    suites = {a["tls"]["cipher_suite"] for e in EXPECTED for a in e["attempts"] if a["tls"]}
    assert {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
            "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "TLS_RSA_WITH_AES_128_GCM_SHA256"} <= suites


@pytest.mark.parametrize("file", _files())
def test_tshark_decrypts_the_requests_and_statuses_the_software_exchanged(file: str) -> None:
    entry = entry_for(file)
    seen = decoded(file)
    expected: dict[tuple[str, str], Seen] = defaultdict(Seen)
    for attempt in entry["attempts"]:
        on = expected[(attempt["client"], attempt["server"])]
        if attempt["method"] is not None:
            on.requests.append((attempt["method"], attempt["path"]))
        if attempt["status"] is not None:
            on.statuses.append(attempt["status"])
    for connection, wanted in expected.items():
        got = seen.get(connection, Seen())
        assert got.requests == wanted.requests, f"{file} {connection}: requests"
        assert got.statuses == wanted.statuses, f"{file} {connection}: statuses"
    readable = {c for c, s in seen.items() if s.requests or s.statuses}
    assert readable <= set(expected), f"{file}: HTTP that expected.json does not list"


@pytest.mark.parametrize("file", _files(lambda e: any(a["verdict"] == "succeeded"
                                                      for a in e["attempts"])))
def test_tshark_reads_websocket_frames_after_every_switch(file: str) -> None:
    seen = decoded(file)
    for attempt in entry_for(file)["attempts"]:
        if attempt["verdict"] == "succeeded":
            got = seen.get((attempt["client"], attempt["server"]), Seen())
            assert got.websocket_frames >= 2, f"{file} {attempt['server']}: {got.__dict__}"


@pytest.mark.parametrize("file", _files(lambda e: e.get("uninspected")))
def test_without_a_key_nothing_is_readable(file: str) -> None:
    entry = entry_for(file)
    assert entry["keylog"] is None and not entry["secrets_embedded"]
    assert not (CAPTURES / file).with_suffix(".keys").exists()
    seen = decoded(file)
    assert all(not s.requests and not s.statuses and not s.websocket_frames
               for s in seen.values())
    for session in entry["uninspected"]:
        assert seen[(session["client"], session["server"])].client_randoms == [
            session["tls"]["client_random"]]
        assert session["tls"]["sni"] and session["tls"]["version"]


@pytest.mark.parametrize("file", _files(lambda e: e["keylog"] or e["secrets_embedded"]))
def test_every_key_log_line_names_a_client_hello_of_its_capture(file: str) -> None:
    entry = entry_for(file)
    path = CAPTURES / file
    text = (embedded_secrets(path) if entry["secrets_embedded"]
            else (CAPTURES / entry["keylog"]).read_text())
    logged = keylog_randoms(text)
    assert logged
    hellos = {r for s in decoded(file).values() for r in s.client_randoms}
    rsa_prefixes = {r for line in text.splitlines() if line.startswith("RSA ")
                    for r in [line.split()[1].lower()]}
    assert set(logged) - rsa_prefixes <= hellos
    for attempt in entry["attempts"]:
        if attempt["tls"] is not None:
            assert attempt["tls"]["client_random"] in hellos
            assert attempt["tls"]["in_keylog"] == (attempt["tls"]["client_random"] in logged)


def test_every_key_log_file_belongs_to_a_capture() -> None:
    named = {e["keylog"] for e in EXPECTED if e["keylog"]}
    assert {p.name for p in CAPTURES.glob("*.keys")} == named
    for entry in EXPECTED:
        if entry["keylog"]:
            assert entry["keylog"] == Path(entry["file"]).with_suffix(".keys").name


def test_failed_handshakes_are_labelled_for_the_tls_stage() -> None:
    """Each TLS-layer failure names a proposed tls_* reason and shows tshark's facts."""
    for entry in EXPECTED:
        for attempt in entry["attempts"]:
            if attempt["method"] is None:
                assert attempt["reason"].startswith("tls_"), attempt["why"]
                assert attempt["verdict"] in ("failed", "no_response")
                assert attempt["tls"]["client_random"]
            assert attempt["client_said"] and attempt["server_said"]


# --- the generator itself, run live -----------------------------------------------------------


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("captures_generate_tls",
                                                  CAPTURES / "generate_tls.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


LIVE = ["wss_tls12_ecdhe_rsa_aes128_gcm", "tls_nginx_wrong_sni", "tls12_cert_expired"]


@pytest.mark.timeout(90)
@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="regenerating captures needs root (tcpdump on loopback)")
@pytest.mark.skipif(any(shutil.which(t) is None for t in ("tcpdump", "nginx", "openssl")),
                    reason="regenerating TLS captures needs tcpdump, nginx and openssl")
def test_generator_regenerates_tls_scenarios_live(tmp_path: Path) -> None:
    pytest.importorskip("websockets", reason="the generator's scenarios need websockets")
    generator = _load_generator()
    entries = generator.generate(LIVE, tmp_path)
    for entry in entries:
        checked_in = entry_for(entry["file"])
        assert [(a["server"], a["verdict"], a["reason"], a["tls"]["version"],
                 a["tls"]["cipher_suite"], [x["description"] for x in a["tls"]["alerts"]])
                for a in entry["attempts"]] == [
            (a["server"], a["verdict"], a["reason"], a["tls"]["version"],
             a["tls"]["cipher_suite"], [x["description"] for x in a["tls"]["alerts"]])
            for a in checked_in["attempts"]]
        keys = tmp_path / entry["keylog"] if entry["keylog"] else None
        seen = tshark(tmp_path / entry["file"], keys, entry["tls_ports"])
        for attempt in entry["attempts"]:
            got = seen.get((attempt["client"], attempt["server"]), Seen())
            assert got.statuses == ([attempt["status"]] if attempt["status"] else [])
            assert got.client_randoms == [attempt["tls"]["client_random"]]
