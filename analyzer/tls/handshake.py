"""TLS handshake messages and alerts: the facts a handshake shows (RFC 8446 §4, RFC 5246 §7.4).

Handshake messages can share a record or span several (RFC 8446 §5.1), so a `HandshakeReader`
per direction collects the handshake-type records' bytes and cuts whole messages off them. The
parsers are tolerant: a message that is cut short or malformed gives a `problem` string and the
fields read so far, never an exception.
"""

from __future__ import annotations

import datetime
import functools
import struct
import warnings
from dataclasses import dataclass
from enum import IntEnum
from types import ModuleType
from typing import Any

from analyzer.slotted import slot_setters
from analyzer.tls.names import alert_name, version_name

MAX_MESSAGE_LENGTH = 256 * 1024  # a certificate chain can be long, but not endless

# RFC 8446 §4.1.3: a HelloRetryRequest is a ServerHello with random SHA-256("HelloRetryRequest").
HELLO_RETRY_RANDOM = bytes.fromhex(
    "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")


class HandshakeType(IntEnum):
    """RFC 8446 §4 and RFC 5246 §7.4."""

    HELLO_REQUEST = 0
    CLIENT_HELLO = 1
    SERVER_HELLO = 2
    NEW_SESSION_TICKET = 4
    END_OF_EARLY_DATA = 5
    ENCRYPTED_EXTENSIONS = 8
    CERTIFICATE = 11
    SERVER_KEY_EXCHANGE = 12
    CERTIFICATE_REQUEST = 13
    SERVER_HELLO_DONE = 14
    CERTIFICATE_VERIFY = 15
    CLIENT_KEY_EXCHANGE = 16
    FINISHED = 20
    KEY_UPDATE = 24


class Extension(IntEnum):
    SERVER_NAME = 0  # RFC 6066 §3
    ALPN = 16  # RFC 7301 §3.1
    ENCRYPT_THEN_MAC = 22  # RFC 7366
    EXTENDED_MASTER_SECRET = 23  # RFC 7627
    SESSION_TICKET = 35  # RFC 5077
    PRE_SHARED_KEY = 41  # RFC 8446 §4.2.11
    EARLY_DATA = 42
    SUPPORTED_VERSIONS = 43


class _Short(Exception):
    """A length field points past the end of the message."""


class _Cursor:
    __slots__ = ("data", "at")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise _Short
        chunk = self.data[self.at:self.at + n]
        self.at += n
        return chunk

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vector(self, length_bytes: int) -> bytes:
        return self.take(self.uint(length_bytes))

    @property
    def left(self) -> int:
        return len(self.data) - self.at


@dataclass(frozen=True, slots=True)
class ClientHello:
    """What a ClientHello offers (RFC 8446 §4.1.2), read from the cleartext handshake."""
    random: bytes = b""
    legacy_version: int = 0
    versions: tuple[int, ...] = ()  # supported_versions, or (legacy_version,) without it
    suites: tuple[int, ...] = ()
    sni: str = ""
    alpn: tuple[str, ...] = ()
    session_id: bytes = b""
    ticket: bool = False  # a non-empty session_ticket extension (RFC 5077 resumption)
    psk: bool = False  # pre_shared_key offered (TLS 1.3 resumption)
    early_data: bool = False
    encrypt_then_mac: bool = False
    problem: str = ""


@dataclass(frozen=True, slots=True)
class ServerHello:
    """What a ServerHello chose (RFC 8446 §4.1.3)."""
    random: bytes = b""
    legacy_version: int = 0
    version: int = 0  # the version chosen (supported_versions in TLS 1.3)
    suite: int = 0
    session_id: bytes = b""
    alpn: str = ""
    retry: bool = False  # a HelloRetryRequest (RFC 8446 §4.1.4)
    psk: bool = False  # the server accepted a pre-shared key (TLS 1.3 resumption)
    encrypt_then_mac: bool = False
    problem: str = ""


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """One certificate of a chain, as far as a diagnosis needs it."""

    subject: str
    issuer: str
    names: tuple[str, ...]  # subjectAltName DNS names and IP addresses
    not_before: float  # seconds since 1970, UTC
    not_after: float
    self_signed: bool = False

    def covers(self, host: str) -> bool:
        return name_covers(self.names, host)


def name_covers(names: tuple[str, ...], host: str) -> bool:
    """Whether ``host`` matches one of ``names`` (RFC 6125 §6.4.3: one left-most wildcard)."""
    host = host.rstrip(".").lower()
    for name in names:
        name = name.rstrip(".").lower()
        if name == host:
            return True
        if name.startswith("*.") and "." in host:
            label, rest = host.split(".", 1)
            if rest == name[2:] and label:
                return True
    return False


@dataclass(frozen=True, slots=True)
class Alert:
    """A TLS alert's level and description (RFC 8446 §6)."""
    level: int  # 1 warning, 2 fatal
    description: int

    @property
    def name(self) -> str:
        return alert_name(self.description)

    @property
    def fatal(self) -> bool:
        # RFC 8446 §6: every alert but close_notify and user_canceled is fatal in TLS 1.3,
        # whatever its level says; in TLS 1.2 the level decides.
        return self.level == 2


def parse_alert(body: bytes) -> Alert | None:
    """An alert record's body (RFC 8446 §6: level, description); None when not 2 bytes."""
    if len(body) != 2:
        return None
    return Alert(level=body[0], description=body[1])


def _extensions(cursor: _Cursor) -> list[tuple[int, bytes]]:
    """(type, data) of each extension (RFC 8446 §4.2: a 2-byte type, a 2-byte length). Read
    by index rather than through a `_Cursor` per field: a ClientHello carries a dozen or more,
    and three method calls for each were a third of its parse (once per session)."""
    if cursor.left == 0:  # RFC 5246 §7.4.1.2: extensions may be absent altogether
        return []
    block = cursor.vector(2)
    found = []
    at, end = 0, len(block)
    while at < end:
        start = at + 4
        if start > end:
            raise _Short
        after = start + ((block[at + 2] << 8) | block[at + 3])
        if after > end:
            raise _Short
        found.append(((block[at] << 8) | block[at + 1], block[start:after]))
        at = after
    return found


def _uint16s(data: bytes) -> tuple[int, ...]:
    """The big-endian 2-byte integers of ``data`` (a trailing odd byte is not one)."""
    count = len(data) // 2
    return struct.unpack(f">{count}H", data[:2 * count])


def _server_name(data: bytes) -> str:
    # RFC 6066 §3: ServerNameList of (name_type, HostName); type 0 is host_name.
    cursor = _Cursor(_Cursor(data).vector(2))
    while cursor.left:
        kind = cursor.uint(1)
        name = cursor.vector(2)
        if kind == 0:
            return name.decode("ascii", "replace")
    return ""


def _protocols(data: bytes) -> tuple[str, ...]:
    # RFC 7301 §3.1: ProtocolNameList of opaque ProtocolName<1..2^8-1>.
    cursor = _Cursor(_Cursor(data).vector(2))
    names = []
    while cursor.left:
        names.append(cursor.vector(1).decode("ascii", "replace"))
    return tuple(names)


def parse_client_hello(body: bytes) -> ClientHello:
    """RFC 8446 §4.1.2 (and RFC 5246 §7.4.1.2, the same layout)."""
    cursor = _Cursor(body)
    fields: dict[str, object] = {}
    try:
        fields["legacy_version"] = legacy = cursor.uint(2)
        fields["random"] = cursor.take(32)
        fields["session_id"] = cursor.vector(1)
        fields["suites"] = _uint16s(cursor.vector(2))
        cursor.vector(1)  # compression methods
        fields["versions"] = (legacy,)
        for kind, data in _extensions(cursor):
            if kind == Extension.SERVER_NAME:
                fields["sni"] = _server_name(data)
            elif kind == Extension.ALPN:
                fields["alpn"] = _protocols(data)
            elif kind == Extension.SUPPORTED_VERSIONS:
                fields["versions"] = _uint16s(_Cursor(data).vector(1))
            elif kind == Extension.SESSION_TICKET:
                fields["ticket"] = bool(data)
            elif kind == Extension.PRE_SHARED_KEY:
                fields["psk"] = True
            elif kind == Extension.EARLY_DATA:
                fields["early_data"] = True
            elif kind == Extension.ENCRYPT_THEN_MAC:
                fields["encrypt_then_mac"] = True
    except _Short:
        fields["problem"] = "ClientHello cut short"
    return ClientHello(**fields)  # type: ignore[arg-type]


def parse_server_hello(body: bytes) -> ServerHello:
    """RFC 8446 §4.1.3 (and RFC 5246 §7.4.1.3)."""
    cursor = _Cursor(body)
    fields: dict[str, object] = {}
    try:
        fields["legacy_version"] = fields["version"] = cursor.uint(2)
        fields["random"] = random = cursor.take(32)
        fields["retry"] = random == HELLO_RETRY_RANDOM
        fields["session_id"] = cursor.vector(1)
        fields["suite"] = cursor.uint(2)
        cursor.uint(1)  # compression method
        for kind, data in _extensions(cursor):
            if kind == Extension.SUPPORTED_VERSIONS and len(data) == 2:
                fields["version"] = int.from_bytes(data, "big")
            elif kind == Extension.ALPN:
                chosen = _protocols(data)
                fields["alpn"] = chosen[0] if chosen else ""
            elif kind == Extension.PRE_SHARED_KEY:
                fields["psk"] = True
            elif kind == Extension.ENCRYPT_THEN_MAC:
                fields["encrypt_then_mac"] = True
    except _Short:
        fields["problem"] = "ServerHello cut short"
    return ServerHello(**fields)  # type: ignore[arg-type]


def parse_encrypted_extensions(body: bytes) -> str:
    """The ALPN protocol a TLS 1.3 server selected (RFC 8446 §4.3.1), or ""."""
    try:
        for kind, data in _extensions(_Cursor(body)):
            if kind == Extension.ALPN:
                chosen = _protocols(data)
                return chosen[0] if chosen else ""
    except _Short:
        pass
    return ""


def early_data_accepted(body: bytes) -> bool:
    """Whether a TLS 1.3 server's EncryptedExtensions accept the client's early data: RFC 8446
    §4.2.10, "a server which receives an "early_data" extension MUST ... return
    "early_data" in its EncryptedExtensions" when it accepts it."""
    try:
        return any(kind == Extension.EARLY_DATA for kind, _ in _extensions(_Cursor(body)))
    except _Short:
        return False


def parse_certificate(body: bytes, tls13: bool) -> tuple[tuple[CertificateInfo, ...], str]:
    """The chain of a Certificate message (RFC 5246 §7.4.2, RFC 8446 §4.4.2) and a problem."""
    cursor = _Cursor(body)
    chain: list[CertificateInfo] = []
    try:
        if tls13:
            cursor.vector(1)  # certificate_request_context
        entries = _Cursor(cursor.vector(3))
        while entries.left:
            der = entries.vector(3)
            if tls13:
                entries.vector(2)  # per-certificate extensions
            info = certificate_info(der)
            if info is None:
                return tuple(chain), "a certificate in the chain is not valid DER X.509"
            chain.append(info)
    except _Short:
        return tuple(chain), "Certificate message cut short"
    return tuple(chain), ""


@functools.lru_cache(maxsize=256)
def certificate_info(der: bytes) -> CertificateInfo | None:
    """Subject, names, issuer and validity of one DER certificate, or None if unreadable.
    Kept for the last 256 certificates: a busy capture shows the same few chains in every
    session (≈ 0.2 ms each to parse; a value, so sharing it is safe)."""
    x509 = _x509()
    try:
        with warnings.catch_warnings():
            # cryptography warns of a certificate that breaks RFC 5280 yet parses (a serial
            # number of zero or below: "will cause an exception in a future release", then
            # read here as not valid): a capture's certificate is read as it came, and a
            # library's warning is no line of this tool's output
            warnings.simplefilter("ignore")
            return _certificate_info(x509, x509.load_der_x509_certificate(der))
    except Exception:  # noqa: BLE001 - any malformed DER is a finding, not a crash
        return None


def _certificate_info(x509: ModuleType, cert: Any) -> CertificateInfo:
    """`certificate_info` of a parsed certificate (``x509``: the module)."""
    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names += san.get_values_for_type(x509.DNSName)
        names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    subject = cert.subject.rfc4514_string()
    issuer = cert.issuer.rfc4514_string()
    if not names:  # RFC 6125 §6.4.4: the CN is consulted only without DNS names
        names += [str(a.value) for a in
                  cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    return CertificateInfo(
        subject=subject,
        issuer=issuer,
        names=tuple(names),
        not_before=_utc_seconds(cert.not_valid_before_utc),
        not_after=_utc_seconds(cert.not_valid_after_utc),
        self_signed=cert.subject == cert.issuer,
    )


def _x509() -> ModuleType:
    """`cryptography.x509`, imported at the first certificate read (only runs that report a
    chain pay for it, ≈ 84 M instructions) and frozen then, as the ciphers are."""
    global _x509_module
    if _x509_module is None:
        from cryptography import x509

        from analyzer.tls.keying import freeze_imported

        freeze_imported()
        _x509_module = x509
    return _x509_module


_x509_module: ModuleType | None = None


def _utc_seconds(moment: datetime.datetime) -> float:
    return moment.timestamp()


@dataclass(frozen=True, slots=True)
class HandshakeMessage:
    """One handshake message, whole, with the frame and time of its first byte."""
    kind: int
    body: bytes
    frame: int  # frame that carried the message's first byte
    time: float


# Made through its slots' descriptors, not the frozen ``__init__`` (see records.made_record;
# the constructor is its plain twin, compared in tests/test_made_values.py).
_set_kind, _set_body, _set_frame, _set_time = slot_setters(HandshakeMessage)


def made_handshake_message(kind: int, body: bytes, frame: int, time: float) -> HandshakeMessage:
    """``HandshakeMessage(kind, body, frame, time)``."""
    made = object.__new__(HandshakeMessage)
    _set_kind(made, kind)
    _set_body(made, body)
    _set_frame(made, frame)
    _set_time(made, time)
    return made


# Nearly every record of a handshake holds whole messages (one, or a few, never cut): read
# from the record's bytes where they lie, they need neither the buffer nor its chunk
# positions (`_whole_messages`). False: every record goes through the buffer, the plain
# twin tests/test_tls.py compares it with.
WHOLE_MESSAGES = True


def _whole_messages(data: bytes, frame: int, time: float) -> list[HandshakeMessage] | None:
    """The messages of ``data`` when it holds whole ones and nothing else (what `feed` makes
    of it with an empty buffer), None otherwise (a message cut, or one over the bound)."""
    messages: list[HandshakeMessage] = []
    size = len(data)
    position = 0
    while position < size:
        if size - position < 4:
            return None
        end = position + 4 + ((data[position + 1] << 16) | (data[position + 2] << 8)
                              | data[position + 3])
        if end > size or end - position - 4 > MAX_MESSAGE_LENGTH:
            return None
        messages.append(made_handshake_message(data[position], data[position + 4:end], frame,
                                               time))
        position = end
    return messages


class HandshakeReader:
    """Cuts one direction's handshake-type record bytes into handshake messages."""

    __slots__ = ("_buffer", "_frames", "broken")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._frames: list[tuple[int, int, float]] = []  # (buffer position, frame, time)
        self.broken = ""

    def feed(self, data: bytes, frame: int, time: float) -> list[HandshakeMessage]:
        if self.broken:
            return []
        if WHOLE_MESSAGES and not self._buffer and type(data) is bytes:
            whole = _whole_messages(data, frame, time)
            if whole is not None:
                return whole
        self._frames.append((len(self._buffer), frame, time))
        self._buffer += data
        messages: list[HandshakeMessage] = []
        while len(self._buffer) >= 4:
            length = int.from_bytes(self._buffer[1:4], "big")
            if length > MAX_MESSAGE_LENGTH:
                self.broken = f"handshake message of {length} bytes"
                self._buffer.clear()
                return messages
            if len(self._buffer) < 4 + length:
                break
            _position, first_frame, first_time = self._frames[0]
            messages.append(made_handshake_message(
                self._buffer[0], bytes(self._buffer[4:4 + length]), first_frame, first_time))
            del self._buffer[:4 + length]
            self._shift(4 + length)
        if not self._buffer:
            self._frames.clear()
        return messages

    def _shift(self, consumed: int) -> None:
        """Move the chunk positions after ``consumed`` bytes left the buffer's front."""
        frames = [(position - consumed, f, t) for position, f, t in self._frames]
        while len(frames) > 1 and frames[1][0] <= 0:  # the next chunk starts at or before 0
            del frames[0]
        self._frames = frames

    @property
    def pending(self) -> int:
        return len(self._buffer)


def describe_versions(versions: tuple[int, ...]) -> str:
    return ", ".join(version_name(v) for v in versions if v & 0x0F0F != 0x0A0A)  # drop GREASE
