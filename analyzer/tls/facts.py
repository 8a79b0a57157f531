"""What a TLS session's records said so far, asked by the stage, the reporting and the checks:
version and resumption, the server's chain, how far each side got in the handshake, whether
the client sent application data, where the capture started.

A mixin of `TlsSession` (session.py), which reads the records and keeps the state these
questions read; nothing here changes it (but for the chain, parsed once when first asked).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from analyzer.tls.handshake import (
    CertificateInfo,
    ClientHello,
    HandshakeType,
    ServerHello,
    parse_certificate,
)
from analyzer.tls.records import ContentType

if TYPE_CHECKING:
    from analyzer.tls.session import _Direction

_HANDSHAKE = ContentType.HANDSHAKE
_FIRST_AND_LAST_OF_FLIGHT = (1 << HandshakeType.ENCRYPTED_EXTENSIONS
                             | 1 << HandshakeType.FINISHED)


class SessionFacts:
    """Mixin of TlsSession: read-only questions about the session (module docstring)."""

    # TlsSession's fields these questions read (set in TlsSession.__init__)
    client_side: int | None
    client_hello: ClientHello | None
    server_hello: ServerHello | None
    server_hello_frame: int
    retry: bool
    certificate_request: bool
    handshake_hole: tuple[int, int] | None
    first_record: tuple[int, int] | None
    first_message: int | None
    _certificate_message: tuple[bytes, bool] | None
    _chain: tuple[tuple[CertificateInfo, ...], str] | None
    _dirs: tuple[_Direction, _Direction]

    @property
    def version(self) -> int:
        return self.server_hello.version if self.server_hello else 0

    @property
    def tls13(self) -> bool:
        return self.version == 0x0304

    @property
    def resumed(self) -> bool | None:
        """Whether the session resumed an earlier one; None when the capture cannot tell."""
        hello, server = self.client_hello, self.server_hello
        if hello is None or server is None:
            return False
        if self.tls13 and not self.server_hello_frame and self.client_side is not None:
            # The ServerHello (whose pre_shared_key says it) was lost and a suite stands in
            # (keying.server_hello_lost). The server's decrypted flight tells, when all of it
            # came after the hole: EncryptedExtensions, then a Certificate unless a key was
            # resumed (RFC 8446 §2.2, §4.4.2), then Finished.
            kinds = self._dirs[1 - self.client_side].kinds_since_hole
            if kinds & _FIRST_AND_LAST_OF_FLIGHT != _FIRST_AND_LAST_OF_FLIGHT:
                return None
            return not kinds & 1 << HandshakeType.CERTIFICATE
        if self.tls13:
            return server.psk
        return bool(server.session_id) and server.session_id == hello.session_id

    @property
    def certificates(self) -> tuple[CertificateInfo, ...]:
        """The server's chain (TLS 1.2, or 1.3 decrypted), leaf first."""
        return self._parsed_chain()[0]

    @property
    def certificate_problem(self) -> str:
        return self._parsed_chain()[1]

    def _parsed_chain(self) -> tuple[tuple[CertificateInfo, ...], str]:
        if self._chain is None:
            message = self._certificate_message
            self._chain = ((), "") if message is None else parse_certificate(*message)
        return self._chain

    def prefix(self, side: int) -> bytes:
        return bytes(self._dirs[side].prefix)

    @property
    def started_mid_session(self) -> bool:
        """The capture began after the handshake: the first record is not a ClientHello's."""
        if self.first_record is None or self.handshake_hole is not None:
            return False  # (a hole where the handshake was: the SYN was seen, it started)
        side, kind = self.first_record
        return kind != _HANDSHAKE or (
            self.first_message is not None and self.first_message != HandshakeType.CLIENT_HELLO
        ) or (self.client_hello is None and self._dirs[side].handshake.broken != "")

    @property
    def hello_unreadable(self) -> bool:
        """The ClientHello did not parse: not a TLS client this stage can say anything about."""
        return self.client_hello is not None and bool(self.client_hello.problem)

    def first_data(self, side: int) -> tuple[int, float]:
        return self._dirs[side].first_data

    def last_frame(self, side: int) -> int:
        return self._dirs[side].last_frame

    def plain_offset(self, side: int) -> int:
        return self._dirs[side].plain_offset

    def client_finished(self) -> bool:
        """Whether the client completed its side of the handshake (sent its Finished)."""
        if self.client_side is None or self.server_hello is None:
            return False
        client = self._dirs[self.client_side]
        if client.finished:
            return True
        if self.tls13:  # every protected record looks alike: the first is the Finished flight
            return client.application_records >= 1
        return client.protected  # its ChangeCipherSpec, which precedes its Finished

    def application_records(self, side: int) -> int:
        return self._dirs[side].application_records

    def first_application(self, side: int) -> tuple[int, float] | None:
        return self._dirs[side].first_application

    def handshake_pending(self, side: int) -> int:
        """Bytes of ``side`` waiting to complete a record."""
        return self._dirs[side].records.buffered

    def carried_application_data(self) -> bool:
        """Whether the client sent application data (so the handshake completed).

        In TLS 1.2 application data has its own record type. In TLS 1.3 every protected record
        looks like application data; the client's first one is its Finished (or its
        certificate flight), so data needs at least two, or a decrypted one.
        """
        if self.client_side is None:
            return False
        client = self._dirs[self.client_side]
        if client.plain_offset > client.no_record_lost:
            return True
        hello = self.client_hello
        if self.tls13 or self.server_hello is None and (  # (its ServerHello lost: as offered)
                hello is None or 0x0304 in hello.versions):
            return client.application_records >= 2 + (1 if self.certificate_request else 0)
        return client.application_records >= 1

    def server_flight_seen(self) -> bool:
        return self.server_hello is not None and not self.retry
