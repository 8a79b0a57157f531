"""What tshark reads in a capture's TLS handshakes, per TCP connection (the referee's view).

The generator records these facts in expected.json beside what the software said, the way it
reads client ports back with tcpdump: version, suite, SNI, ALPN offered and selected, alerts by
side, the server's certificate names and validity, and the ClientHello random (how a key log line
finds its connection). With the key log, tshark also reads what TLS 1.3 encrypts (the
certificate, alerts after the ServerHello).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

# The suites the scenarios negotiate, by IANA code (tshark prints codes in -T fields).
SUITES = {
    0x1301: "TLS_AES_128_GCM_SHA256",
    0x1302: "TLS_AES_256_GCM_SHA384",
    0x1303: "TLS_CHACHA20_POLY1305_SHA256",
    0xC02F: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    0xC02B: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    0xC030: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    0xC02C: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    0xCCA8: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    0xCCA9: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    0xC013: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    0xC027: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    0x009C: "TLS_RSA_WITH_AES_128_GCM_SHA256",
    0x009D: "TLS_RSA_WITH_AES_256_GCM_SHA384",
    0x002F: "TLS_RSA_WITH_AES_128_CBC_SHA",
}
VERSIONS = {0x0304: "TLS 1.3", 0x0303: "TLS 1.2", 0x0302: "TLS 1.1", 0x0301: "TLS 1.0"}
# RFC 8446 §6 names (and RFC 7301's no_application_protocol).
ALERTS = {
    0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 40: "handshake_failure",
    42: "bad_certificate", 43: "unsupported_certificate", 44: "certificate_revoked",
    45: "certificate_expired", 46: "certificate_unknown", 47: "illegal_parameter",
    48: "unknown_ca", 50: "decode_error", 51: "decrypt_error", 70: "protocol_version",
    71: "insufficient_security", 80: "internal_error", 86: "inappropriate_fallback",
    90: "user_canceled", 109: "missing_extension", 110: "unsupported_extension",
    112: "unrecognized_name", 116: "certificate_required", 120: "no_application_protocol",
}
FIELDS = ["frame.number", "ip.src", "ipv6.src", "tcp.srcport", "ip.dst", "ipv6.dst",
          "tcp.dstport", "tls.handshake.type", "tls.handshake.extensions_server_name",
          "tls.handshake.extensions_alpn_str", "tls.handshake.ciphersuite",
          "tls.handshake.extensions.supported_version", "tls.handshake.version",
          "tls.alert_message.level", "tls.alert_message.desc", "tls.handshake.random",
          "x509ce.dNSName", "x509af.utcTime", "tls.handshake.extension.type",
          "tls.handshake.session_id"]
# ClientHello, ServerHello, EncryptedExtensions (TLS 1.3's ALPN), Certificate, and alerts.
FILTER = " || ".join(["tls.alert_message"]
                     + [f"tls.handshake.type == {t}" for t in (1, 2, 8, 11)])


def tshark_rows(path: Path, keys: Path | None, ports: tuple[int, ...],
                display_filter: str, fields: list[str]) -> list[dict[str, list[str]]]:
    """tshark's fields for the frames matching the filter, one dict per frame (lists of values)."""
    command = ["tshark", "-r", str(path), "-n", "-Y", display_filter, "-T", "fields",
               "-E", "occurrence=a", "-E", "aggregator=|", "-E", "separator=/t"]
    if keys is not None:
        command += ["-o", f"tls.keylog_file:{keys}"]
    for port in ports:
        command += ["-d", f"tcp.port=={port},tls"]
    for name in fields:
        command += ["-e", name]
    out = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    rows = []
    for line in out.stdout.splitlines():
        values = line.split("\t")
        rows.append({name: [v for v in value.split("|") if v]
                     for name, value in zip(fields, values, strict=False)})
    return rows


def _endpoint(row: dict[str, list[str]], side: str) -> str:
    v4, v6, port = row[f"ip.{side}"], row[f"ipv6.{side}"], row[f"tcp.{side}port"][0]
    return f"{v4[0]}:{port}" if v4 else f"[{v6[0]}]:{port}"


def _code(value: str) -> int:
    return int(value, 16) if value.startswith("0x") else int(value)


def sessions(path: Path, keys: Path | None,
             ports: tuple[int, ...]) -> dict[tuple[str, str], dict[str, Any]]:
    """(client, server) -> what tshark read of that connection's TLS, for every connection
    that started with a ClientHello. `-i any` captures show each loopback packet once per
    direction here (tshark dissects each frame; a frame seen before is skipped by number)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for row in tshark_rows(path, keys, ports, FILTER, FIELDS):
        source, target = _endpoint(row, "src"), _endpoint(row, "dst")
        types = [int(t) for t in row["tls.handshake.type"]]
        if 1 in types and (source, target) not in found:
            found[(source, target)] = {
                "version": "", "cipher_suite": "",
                "sni": (row["tls.handshake.extensions_server_name"] or [""])[0],
                "alpn_offered": row["tls.handshake.extensions_alpn_str"], "alpn": "",
                "client_random": row["tls.handshake.random"][0],
                "certificate_names": [], "certificate_validity": [], "alerts": [],
                "resumed": False,
                "_session_id": (row["tls.handshake.session_id"] or [""])[0],
            }
            continue
        if (source, target) in found:
            session, side = found[(source, target)], "client"
        elif (target, source) in found:
            session, side = found[(target, source)], "server"
        else:
            continue
        if 2 in types and not session["version"]:
            chosen = row["tls.handshake.extensions.supported_version"] or \
                row["tls.handshake.version"]
            session["version"] = VERSIONS.get(_code(chosen[0]), chosen[0])
            code = _code(row["tls.handshake.ciphersuite"][0])
            session["cipher_suite"] = SUITES.get(code, f"0x{code:04X}")
            # Resumed: TLS 1.3 accepts a PSK (pre_shared_key, 41, in the ServerHello); TLS 1.2
            # echoes the session id the client proposed (RFC 5246 §7.4.1.3; with a ticket the
            # client proposes a fresh id the server echoes, RFC 5077 §3.4).
            server_id = (row["tls.handshake.session_id"] or [""])[0]
            session["resumed"] = ("41" in row["tls.handshake.extension.type"]
                                  if session["version"] == "TLS 1.3" else
                                  bool(server_id) and server_id == session["_session_id"])
        if side == "server" and (2 in types or 8 in types) and not session["alpn"]:
            session["alpn"] = (row["tls.handshake.extensions_alpn_str"] or [""])[0]
        if side == "server" and 11 in types and not session["certificate_names"]:
            session["certificate_names"] = row["x509ce.dNSName"]
            times = row["x509af.utcTime"]
            session["certificate_validity"] = [f"{a} - {b}" for a, b in
                                               zip(times[::2], times[1::2], strict=False)]
        for level, description in zip(row["tls.alert_message.level"],
                                      row["tls.alert_message.desc"], strict=False):
            alert = {"side": side, "frame": int(row["frame.number"][0]),
                     "level": {1: "warning", 2: "fatal"}.get(int(level), level),
                     "description": ALERTS.get(int(description), description)}
            session["alerts"].append(alert)
    for session in found.values():
        del session["_session_id"]
    return found


def record_segments(path: Path, keys: Path | None, ports: tuple[int, ...]) -> list[int]:
    """How many TCP segments each reassembled TLS record a client sent took, by tshark."""
    towards = " || ".join(f"tcp.dstport == {port}" for port in ports)
    rows = tshark_rows(path, keys, ports, f"tls && tcp.segment.count && ({towards})",
                       ["tcp.segment.count"])
    return [int(row["tcp.segment.count"][0]) for row in rows]
