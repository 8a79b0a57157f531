"""Rules about the request: RFC 9110 §7.8 for any upgrade, RFC 6455 §4.1, RFC 7540 §3.2."""

from __future__ import annotations

import base64
import binascii
import re

from analyzer.checks.catalogue import Finding
from analyzer.checks.facts import Facts, frames_of, offers_websocket
from analyzer.exchange.model import Attempt
from analyzer.http.message import RequestHead


def check_request(attempt: Attempt, facts: Facts) -> list[Finding]:
    head = facts.request_head
    if head is None or attempt.request is None or not attempt.request.head_complete:
        # an unfinished head (request_head_incomplete) lacks fields it had no time to send
        return []
    ev = frames_of(attempt.request)
    findings: list[Finding] = []
    headers = head.headers
    connection = headers.tokens("connection")
    has_upgrade = headers.has("upgrade")
    if head.method.upper() == "CONNECT":
        if not _AUTHORITY.fullmatch(head.target):
            findings.append(Finding("connect_target_invalid", "host:port", head.target[:80], ev))
        return findings
    if not has_upgrade:
        if facts.websocket and _has_websocket_fields(head):
            findings.append(Finding("upgrade_header_missing", "Upgrade: websocket",
                                    "no Upgrade header", ev))
        elif facts.websocket:
            found = f"plain {head.method} {head.target}"
            if attempt.promoted is not None:
                found += f", {attempt.promoted.describe()}"
            findings.append(Finding("request_without_upgrade", "Upgrade: websocket", found, ev))
    if head.version.upper() == "HTTP/1.0" and (has_upgrade or facts.websocket):
        findings.append(Finding("request_http10", "HTTP/1.1", head.version, ev))
    if has_upgrade and "upgrade" not in connection:
        found = ", ".join(headers.all("connection")) or "no Connection header"
        findings.append(Finding("connection_without_upgrade", "Connection: Upgrade", found, ev))
    elif "upgrade" in connection and not _UPGRADE_COMPANIONS.issuperset(connection):
        # HTTP2-Settings beside Upgrade is what RFC 7540 §3.2.1 requires, not a trap.
        findings.append(Finding("connection_upgrade_with_others", "Connection: Upgrade",
                                ", ".join(headers.all("connection")), ev))
    offered = facts.offered
    if len(offered) != len(set(offered)) or headers.count("upgrade") > 1:
        findings.append(Finding("upgrade_token_repeated", "each token once",
                                ", ".join(headers.all("upgrade")), ev))
    if facts.websocket:
        findings.extend(_websocket_request(head, offered, has_upgrade, ev))
    if "h2" in offered:
        findings.append(Finding("h2_token_in_cleartext", "h2c", ", ".join(offered), ev))
    if facts.protocol == "h2c":
        findings.extend(_h2c_request(head, connection, ev))
    proxy_marks = [
        f"{f.name}: {f.value}" for f in headers.fields if f.name.lower() in _PROXY_FIELDS
    ] if not _PROXY_FIELDS.isdisjoint(headers.names()) else []
    if proxy_marks:
        findings.append(Finding("via_proxy", "", "; ".join(proxy_marks)[:120], ev))
    after = attempt.after
    if after is not None and after.early_client_bytes:
        findings.append(Finding("early_client_data", "nothing until the 101",
                                f"{after.early_client_bytes} bytes before the response",
                                (after.early_client_frame,)))
    return findings


# authority-form (RFC 9112 §3.2.3): a host name, IPv4 or [IPv6] literal, and a port
_AUTHORITY = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~%!$&'()*+,;=-]+):[0-9]{1,5}")
_PROXY_FIELDS = frozenset(("via", "forwarded", "x-forwarded-for", "x-real-ip"))
# Connection tokens an upgrade offer may carry without others beside them.
_UPGRADE_COMPANIONS = frozenset(("upgrade", "http2-settings"))


def _has_websocket_fields(head: RequestHead) -> bool:
    return any(f.name.lower().startswith("sec-websocket-") for f in head.headers.fields)


def _websocket_request(head: RequestHead, offered: tuple[str, ...], has_upgrade: bool,
                       ev: tuple[int, ...]) -> list[Finding]:
    headers = head.headers
    findings: list[Finding] = []
    if head.method.upper() != "GET":
        findings.append(Finding("ws_method_not_get", "GET", head.method, ev))
    if not headers.has("host"):
        findings.append(Finding("ws_host_missing", "Host header", "no Host header", ev))
    if has_upgrade and not offers_websocket(offered):
        findings.append(Finding("upgrade_not_websocket", "Upgrade: websocket",
                                ", ".join(headers.all("upgrade")), ev))
    if not has_upgrade and not _has_websocket_fields(head):
        return findings  # a plain request: the key and version rules say nothing more
    keys = headers.all("sec-websocket-key")
    if not keys:
        findings.append(Finding("ws_key_missing", "Sec-WebSocket-Key",
                                "no Sec-WebSocket-Key header", ev))
    elif len(keys) > 1:
        findings.append(Finding("ws_key_repeated", "one Sec-WebSocket-Key",
                                f"{len(keys)} headers", ev))
    elif not _is_valid_key(keys[0]):
        findings.append(Finding("ws_key_invalid", "base64 of 16 bytes", repr(keys[0])[:80], ev))
    versions = headers.all("sec-websocket-version")
    if not versions:
        findings.append(Finding("ws_version_missing", "Sec-WebSocket-Version: 13",
                                "no version header", ev))
    elif len(versions) != 1 or versions[0].strip() != "13":
        findings.append(Finding("ws_version_not_13", "13", ", ".join(versions), ev))
    return findings


def _is_valid_key(key: str) -> bool:
    try:
        # base64.b64decode(key, validate=True) without its Python wrapper: the wrapper makes
        # an ASCII str bytes (ValueError for another) and calls exactly this
        return len(binascii.a2b_base64(key.strip(), strict_mode=True)) == 16
    except (binascii.Error, ValueError):
        return False


def _h2c_request(head: RequestHead, connection: list[str], ev: tuple[int, ...]) -> list[Finding]:
    findings: list[Finding] = []
    settings = head.headers.all("http2-settings")
    if len(settings) != 1:
        findings.append(Finding("h2c_settings_count", "exactly one HTTP2-Settings",
                                f"{len(settings)}", ev))
    elif not _is_settings_payload(settings[0]):
        findings.append(Finding("h2c_settings_invalid", "base64url of 6-byte entries",
                                repr(settings[0])[:80], ev))
    if settings and "http2-settings" not in connection:
        findings.append(Finding("h2c_connection_settings_missing",
                                "Connection: Upgrade, HTTP2-Settings",
                                ", ".join(head.headers.all("connection"))
                                or "no Connection header", ev))
    return findings


def _is_settings_payload(value: str) -> bool:
    text = value.strip()
    if "=" in text or "+" in text or "/" in text:
        return False  # base64url without padding (RFC 7540 §3.2.1)
    try:
        payload = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return False
    return len(payload) % 6 == 0
