"""One TLS connection, sans-IO: ciphertext of both directions in, handshake facts and plaintext out.

How it works
------------
Each direction has a `RecordReader` (records with their frames) and a `HandshakeReader`
(handshake messages across records). The side that sends a ClientHello is the client. The
ClientHello and ServerHello give the randoms, the version and the suite; with a key store, the
ServerHello is where the secrets are looked up by client random and record openers are made:

- TLS 1.2: a direction is protected from its ChangeCipherSpec on, with the key block's keys.
- TLS 1.3: after a (non-retry) ServerHello both directions are protected: first with the
  handshake traffic keys, then, after that side's Finished, with the application traffic keys
  (RFC 8446 §7.1). KeyUpdate moves a direction to its next secret. A record that does not open
  with the current keys is tried with the next ones (a key log may lack the handshake secrets).

Decrypted application data comes out as `Plain` chunks, at most two per record (all but its
last byte in the frame of the record's first byte, the last byte in the frame that completed it),
with offsets in the plaintext stream of that direction. A key that is present but does not
open the first protected record is a key mismatch (never a guess); a later failure stops
decrypting that direction.

A hole in a direction (bytes missing from the capture) loses the record it cuts and the
sequence numbers of the records inside it. The record reader seeks the next record header
(records.py); the next protected record is then tried with the next `RESYNC_RECORDS` sequence
numbers of each opener, and only a record that authenticates is believed (never unauthenticated
plaintext). A hole before a side finished its handshake is remembered (`handshake_hole`): the
stage reports that instead of "no key" or a key mismatch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from analyzer.tls.facts import SessionFacts
from analyzer.tls.handshake import (
    CertificateInfo,
    ClientHello,
    HandshakeMessage,
    HandshakeReader,
    HandshakeType,
    ServerHello,
    early_data_accepted,
    parse_alert,
    parse_certificate,
    parse_client_hello,
    parse_encrypted_extensions,
    parse_server_hello,
)
from analyzer.tls.keying import prepare_openers, protect_tls12, server_hello_lost
from analyzer.tls.keylog import KeyStore
from analyzer.tls.records import ContentType, Record, RecordReader
from analyzer.tls.values import DecryptError, Decryption, Plain, SeenAlert, made_plain

if TYPE_CHECKING:  # `cryptography` is imported only by a run that has keys (7 MB, 60 ms)
    from analyzer.tls.decrypt import Opened, RecordOpener
    from analyzer.tls.keys import TrafficKeys

MAX_HELD = 1 << 20  # record bytes held while a session waits for its key (live)
PREFIX = 256  # first bytes kept per direction (what a server that is not TLS answered)
_MAX_EARLY_RECORDS = 64  # early data records held (servers accept 16 KiB: a few records)
RESYNC_RECORDS = 64  # sequence numbers tried after a hole (records lost in it, at most)
_ALERT_RECORD = 2 + 1 + 16  # an alert, its inner content type and a 16-byte AEAD tag
_CCS = ContentType.CHANGE_CIPHER_SPEC
_ALERT = ContentType.ALERT
_HANDSHAKE = ContentType.HANDSHAKE
_APPLICATION = ContentType.APPLICATION_DATA
# Read off their classes once: an Enum member read off its class costs ≈ 90 ns in Python
# 3.11 against ≈ 6 ns for a module global, and `_message`, `_protected` and `feed` ask for
# them at every message, record and chunk of a decrypted session (≈ 10 µs a session).
_CLIENT_HELLO = int(HandshakeType.CLIENT_HELLO)
_SERVER_HELLO = int(HandshakeType.SERVER_HELLO)
_ENCRYPTED_EXTENSIONS = int(HandshakeType.ENCRYPTED_EXTENSIONS)
_CERTIFICATE = int(HandshakeType.CERTIFICATE)
_CERTIFICATE_REQUEST = int(HandshakeType.CERTIFICATE_REQUEST)
_FINISHED = int(HandshakeType.FINISHED)
_KEY_UPDATE = int(HandshakeType.KEY_UPDATE)
_WAITING = Decryption.WAITING
_PENDING = Decryption.PENDING
_NO_KEY = Decryption.NO_KEY
_DECRYPTED = Decryption.DECRYPTED


@dataclass(slots=True)
class _Direction:
    """One direction's TLS reading state: records, handshake, keys."""
    records: RecordReader = field(default_factory=RecordReader)
    handshake: HandshakeReader = field(default_factory=HandshakeReader)
    protected: bool = False  # records from here on are protected
    openers: list[RecordOpener] = field(default_factory=list)  # current first, then next ones
    opened: int = 0  # protected records opened
    stopped: bool = False  # decryption gave up on this direction
    plain_offset: int = 0
    no_record_lost: int = 0  # of plain_offset, holes at a record boundary too short for one
    application_records: int = 0  # records of outer type application_data
    first_application: tuple[int, float] | None = None  # frame, time of the first such record
    last_frame: int = 0
    finished: bool = False  # its Finished was seen (decrypted) or implied
    # Handshake message types read since this side's last hole, one bit each: whether a
    # TLS 1.3 server's flight after a lost ServerHello carried a Certificate (`resumed`).
    kinds_since_hole: int = 0
    prefix: bytearray = field(default_factory=bytearray)  # the first PREFIX bytes
    first_data: tuple[int, float] = (0, 0.0)  # frame and time of the first byte
    records_after_hello: int = 0  # records sent after the ServerHello
    tolerate_failures: bool = False  # TLS 1.3 without this side's handshake secret
    resync: bool = False  # after a hole: the next protected record's sequence number is unknown


class TlsSession(SessionFacts):
    """The TLS facts of one connection, and its plaintext when a key store has its secrets."""

    def __init__(self, secrets: KeyStore | None = None) -> None:
        self.secrets = secrets
        self.client_side: int | None = None
        self.client_hello: ClientHello | None = None
        self.client_hello_frame = 0
        self.client_hello_time = 0.0
        self.server_hello: ServerHello | None = None
        self.server_hello_frame = 0
        self.server_hello_time = 0.0
        self.retry = False  # a HelloRetryRequest came first
        # (inputs, (client keys, server keys)) of the TLS 1.2 key block (`keying.tls12_key_block`)
        self.tls12_keys: tuple[tuple[int, int, bytes, bytes, bytes],
                               tuple[TrafficKeys, TrafficKeys]] | None = None
        # Sides whose first protected record was tried for the suite of a lost ServerHello
        # (`keying.server_hello_lost`: `server_hello` then stands in with version and suite).
        self._suite_tried = 0
        # The server's Certificate message, parsed when first asked for (`certificates`): only
        # an attempt's report and checks read the chain, and parsing imports `cryptography`'s
        # x509 (34 ms) and costs ≈ 0.2 ms a chain, for every session of a busy capture.
        self._certificate_message: tuple[bytes, bool] | None = None
        self._chain: tuple[tuple[CertificateInfo, ...], str] | None = None
        self.certificate_frame = 0
        self.certificate_request = False  # the server asked for a client certificate
        self.client_certificate_empty = False  # ... and the client sent none
        self.alpn = ""  # selected (ServerHello in 1.2, EncryptedExtensions in 1.3)
        self.alerts: list[SeenAlert] = []
        self.decryption = Decryption.NO_KEYS if secrets is None else Decryption.NO_KEY
        self.problem = ""  # why the records stopped making sense ("" while they do)
        self.problem_side: int | None = None
        self.server_flight_frame = 0  # last frame of the server's records before the client's
        self.unreadable_alerts: list[tuple[int, int, float]] = []  # (side, frame, time)
        self.mismatch_frame = 0
        self.handshake_hole: tuple[int, int] | None = None  # (side, frame) of a hole in it
        self.handshake_gaps: set[tuple[int, int]] = set()  # (side, offset) of those holes
        self.hole_stop_frame = 0  # decryption stopped at this frame, after a hole
        self.hole_stop_side: int | None = None
        # why: "capture" (a hole), or "decryption" (a record did not open after records
        # counted unopened: tls/passing.py, "Records counted unopened"); `Gap.cause`
        self.hole_stop_cause = ""
        self._dirs = (_Direction(), _Direction())
        # The connection's first record: a handshake record whose message is a ClientHello is
        # the start of a session; anything else means the capture began mid-session.
        self.first_record: tuple[int, int] | None = None  # (side, content type)
        self.first_message: int | None = None  # type of the first handshake message
        self.records = 0  # records read, both sides
        self._waiting_until = 0.0  # WAITING: when to give up on the key
        self._held: list[tuple[int, Record]] = []
        self._held_bytes = 0
        # TLS 1.3 early data (0-RTT, RFC 8446 §4.2.10): the client's records sent right after
        # its ClientHello are held until the server's EncryptedExtensions say whether it
        # accepted them (read then, with CLIENT_EARLY_TRAFFIC_SECRET) or not (dropped: the
        # server never read them, and a client sends the request again after the handshake).
        self.early_data = ""  # "", "accepted" or "rejected"
        self._early: list[Record] = []

    # ---- input -------------------------------------------------------------------------

    def feed(self, side: int, offset: int, data: bytes, frame: int, time: float) -> list[Plain]:
        """The next in-order bytes of ``side``; returns the application plaintext they completed."""
        direction = self._dirs[side]
        direction.last_frame = frame
        if not direction.prefix:
            direction.first_data = (frame, time)
        if len(direction.prefix) < PREFIX:
            direction.prefix += data[:PREFIX - len(direction.prefix)]
        out: list[Plain] = []
        if self.decryption is _WAITING:
            self.look_for_key(time, out)
        for record in direction.records.feed(offset, data, frame, time):
            if self.decryption is _WAITING:
                self._held.append((side, record))
                self._held_bytes += len(record.body)
                if self._held_bytes > MAX_HELD:
                    self.look_for_key(float("inf"), out)
                continue
            if (self.server_hello is None and side == self.client_side
                    and record.content_type == _APPLICATION and self.secrets is not None
                    and self.client_hello is not None and self.client_hello.early_data
                    and len(self._early) < _MAX_EARLY_RECORDS):
                self._early.append(record)
                continue
            self._record(side, record, out)
            if self.in_server_flight(side):
                self.server_flight_frame = record.last_frame  # the server's flight goes on
        if self.early_data and self._early:
            self._release_early(out)
        if direction.records.broken and not self.problem:
            if direction.resync:  # no record header after a hole: a loss, not a non-TLS peer
                direction.stopped = True
                if not self.hole_stop_frame:
                    self.hole_stop_frame, self.hole_stop_side = frame, side
                    self.hole_stop_cause = "capture"
                if self.decryption == Decryption.DECRYPTED:
                    self.decryption = Decryption.FAILED
            else:
                self.problem = direction.records.broken
                self.problem_side = side
        return out

    def in_server_flight(self, side: int) -> bool:
        """Whether a record of ``side`` now would be the server's and still of its flight
        (after its hello, before any record of the client's): `server_flight_frame`
        follows each one (tls/skipping.py passes none such in C)."""
        client = self.client_side
        return (side != client and client is not None and self.server_hello is not None
                and not self._dirs[client].records_after_hello)

    def _release_early(self, out: list[Plain]) -> None:
        """The server said whether it accepted the held early data: read it, or drop it."""
        held, self._early = self._early, []
        if self.early_data != "accepted" or self.client_side is None:
            return
        client = self._dirs[self.client_side]
        after_hello = client.records_after_hello  # they were sent before the ServerHello
        for record in held:
            self._record(self.client_side, record, out)
        client.records_after_hello = after_hello

    def look_for_key(self, now: float, out: list[Plain]) -> None:
        """A session waiting for its key: look again; past the wait, go on without it. The
        records held meanwhile are read now (their plaintext lands in ``out``)."""
        if self.decryption is not Decryption.WAITING:
            return
        hello = self.client_hello
        found = self.secrets is not None and hello is not None and bool(
            self.secrets.secrets_for(hello.random))
        if not found and now < self._waiting_until:
            return
        self.decryption = Decryption.NO_KEY
        if found:
            prepare_openers(self)
        held, self._held, self._held_bytes = self._held, [], 0
        for side, record in held:
            self._record(side, record, out)

    def gap(self, side: int, offset: int, length: int, frame: int) -> None:
        """Bytes ``offset`` to ``offset + length`` of ``side`` are missing from the capture:
        the records in them (and their sequence numbers) are lost; reading resumes at the next
        record header after them (the module's docstring)."""
        direction = self._dirs[side]
        if not self._handshake_done(side):
            self.handshake_gaps.add((side, offset))
            if self.handshake_hole is None:
                self.handshake_hole = (side, frame)
        direction.records.resume(offset + length)
        direction.handshake = HandshakeReader()  # a message the hole cut is lost
        direction.kinds_since_hole = 0
        direction.plain_offset += length  # (the plaintext lost is about as long)
        if length < 6 and not direction.records.buffered:
            # Fewer bytes than a record's header and content (a FIN's sequence number, when
            # the other side's data kept it a hole): no application data was lost in them.
            direction.no_record_lost += length
        direction.resync = True

    def _handshake_done(self, side: int) -> bool:
        """Whether ``side`` had finished its part of the handshake (so a hole now only costs
        records of application data)."""
        if self.server_hello is None or self.client_side is None:
            return False
        direction = self._dirs[side]
        if direction.finished:
            return True
        if side == self.client_side:
            return self.client_finished()
        if self.tls13:  # the server's flight ends when the client answers it
            return self._dirs[self.client_side].records_after_hello > 0
        return direction.protected  # its ChangeCipherSpec, which precedes its Finished

    @property
    def key_absent(self) -> bool:
        """A key log was given, and it has nothing for this session's (seen) client random."""
        hello = self.client_hello
        return self.secrets is not None and hello is not None and not \
            self.secrets.secrets_for(hello.random)

    # ---- records -----------------------------------------------------------------------

    def _record(self, side: int, record: Record, out: list[Plain]) -> None:
        self.records += 1
        direction = self._dirs[side]
        kind = record.content_type
        if self.first_record is None:
            self.first_record = (side, kind)
        if (kind == _APPLICATION and self.server_hello is None and self.handshake_hole
                and not self._suite_tried & (1 << side)):
            self._suite_tried |= 1 << side  # (each side's first protected record is tried)
            server_hello_lost(self, side, record, RESYNC_RECORDS if direction.resync else 1)
        if self.server_hello is not None:
            direction.records_after_hello += 1
        if (kind == _APPLICATION and not direction.openers and self.tls13
                and len(record.body) <= _ALERT_RECORD):
            # RFC 8446 §5.2: a protected record this small holds at most 2 bytes of content,
            # too few for any handshake message (4-byte header): an alert, unreadable here.
            self.unreadable_alerts.append((side, record.first_frame, record.time))
            return
        if kind == _APPLICATION:
            direction.application_records += 1
            if direction.first_application is None:
                direction.first_application = (record.first_frame, record.time)
        if kind == _CCS:
            # RFC 8446 §5: TLS 1.3 sends it only for middlebox compatibility, unprotected.
            if not self.tls13 and self.server_hello is not None:
                protect_tls12(self, side)
            return
        if (kind == _APPLICATION and direction.resync and not direction.protected
                and not self.tls13 and self.server_hello is not None):
            protect_tls12(self, side)  # its ChangeCipherSpec was lost in the hole
        if direction.protected and (kind == _APPLICATION or not self.tls13):
            self._protected(side, record, out)
            return
        if kind == _HANDSHAKE:
            self._handshake(side, record.body, record.first_frame, record.time, False)
        elif kind == _ALERT:
            self._alert(side, record.body, record.first_frame, record.time, False)

    def _protected(self, side: int, record: Record, out: list[Plain]) -> None:
        direction = self._dirs[side]
        if record.content_type == _ALERT and not direction.openers:
            self.unreadable_alerts.append((side, record.first_frame, record.time))
        if direction.stopped or not direction.openers:
            return
        opened = None
        if not direction.resync:  # the usual case: the current keys open it, or none does
            opener = direction.openers[0]
            try:
                opened = opener.open(record)
                opener.unconfirmed = 0
            except DecryptError:
                pass
            if opened is None and len(direction.openers) > 1:
                opened = self._open_trying(direction, record, 1)
        else:
            opened = self._open_trying(direction, record, 0)
        if opened is None:
            if direction.openers[0].unconfirmed:
                # records counted unopened came before (tls/passing.py): one of them was not
                # application data (a KeyUpdate padded past the size trusted), or this record
                # is damaged; either way what follows is unread, as after a capture hole
                direction.stopped = True
                if not self.hole_stop_frame:  # the inner reader is told a hole from here
                    self.hole_stop_frame, self.hole_stop_side = record.first_frame, side
                    self.hole_stop_cause = "decryption"
                if self.decryption == Decryption.DECRYPTED:
                    self.decryption = Decryption.FAILED
                return
            if direction.resync:  # nothing after the hole authenticates: stop, and say why
                direction.stopped = True
                self.hole_stop_frame = record.first_frame
                self.hole_stop_side = side
                self.hole_stop_cause = "capture"
                if self.decryption == Decryption.DECRYPTED:
                    self.decryption = Decryption.FAILED
                return
            if direction.opened == 0 and not direction.tolerate_failures:
                self.decryption = Decryption.MISMATCH
                self.mismatch_frame = record.first_frame
                direction.stopped = True
            elif direction.opened:
                if self.decryption == Decryption.DECRYPTED:
                    self.decryption = Decryption.FAILED
                direction.stopped = True
            return
        direction.opened += 1
        decryption = self.decryption
        if decryption is _PENDING or decryption is _NO_KEY:
            self.decryption = _DECRYPTED
        if opened.content_type == _APPLICATION:
            self._plain(side, record, opened.plaintext, out)
        elif opened.content_type == _HANDSHAKE:
            self._handshake(side, opened.plaintext, record.first_frame, record.time, True)
        elif opened.content_type == _ALERT:
            self._alert(side, opened.plaintext, record.first_frame, record.time, True)

    @staticmethod
    def _open_trying(direction: _Direction, record: Record, first: int) -> Opened | None:
        """``record`` opened by the first of ``direction``'s openers from index ``first`` on
        that opens it (after a hole: at one of the next `RESYNC_RECORDS` sequence numbers),
        which becomes the current one; None when none does (every opener's sequence as it
        was)."""
        tries = RESYNC_RECORDS if direction.resync else 1
        openers = direction.openers
        for index in range(first, len(openers)):
            opener = openers[index]
            sequence_before = opener.sequence
            for sequence in range(sequence_before, sequence_before + tries):
                opener.sequence = sequence
                try:
                    opened = opener.open(record)
                except DecryptError:
                    continue
                break
            else:
                opener.sequence = sequence_before
                continue
            del direction.openers[:index]
            direction.resync = False
            opener.unconfirmed = 0
            return opened
        return None

    def _plain(self, side: int, record: Record, plaintext: bytes, out: list[Plain]) -> None:
        """The record's plaintext, carried by the frames of the record's first and last byte:
        all but its last byte in the first frame, the last byte in the frame that completed
        the record (when the plaintext could be read). A head inside the record thus gets the
        record's first frame as its first and the record's last frame as its last."""
        direction = self._dirs[side]
        if not plaintext:
            return
        if record.first_frame != record.last_frame and len(plaintext) > 1:
            first_time = record.pieces[0][2]
            out.append(made_plain(side, direction.plain_offset, plaintext[:-1],
                                  record.first_frame, first_time))
            direction.plain_offset += len(plaintext) - 1
            plaintext = plaintext[-1:]
        out.append(made_plain(side, direction.plain_offset, plaintext, record.last_frame,
                              record.time))
        direction.plain_offset += len(plaintext)

    # ---- handshake ---------------------------------------------------------------------

    def _handshake(self, side: int, data: bytes, frame: int, time: float,
                   decrypted: bool) -> None:
        for message in self._dirs[side].handshake.feed(data, frame, time):
            self._message(side, message, decrypted)

    def _message(self, side: int, message: HandshakeMessage, decrypted: bool) -> None:
        kind = message.kind
        if kind < 32:
            self._dirs[side].kinds_since_hole |= 1 << kind
        if self.first_message is None:
            self.first_message = kind
        if kind == _CLIENT_HELLO:
            if self.client_side is None:
                self.client_side = side
            client = parse_client_hello(message.body)
            if self.client_hello is None or self.retry:
                self.client_hello = client
                if not self.client_hello_frame:
                    self.client_hello_frame, self.client_hello_time = message.frame, message.time
        elif kind == _SERVER_HELLO:
            if self.client_side is None:
                self.client_side = 1 - side
            server = parse_server_hello(message.body)
            if server.retry:
                self.retry = True
            if self.server_hello is None or self.server_hello.retry:
                self.server_hello = server
                self.server_hello_frame = message.frame
                self.server_hello_time = message.time
                self.alpn = server.alpn
                if not server.retry:
                    prepare_openers(self)
        elif kind == _ENCRYPTED_EXTENSIONS:
            self.alpn = parse_encrypted_extensions(message.body) or self.alpn
            if self.client_hello is not None and self.client_hello.early_data:
                self.early_data = "accepted" if early_data_accepted(message.body) \
                    else "rejected"
        elif kind == _CERTIFICATE:
            if side != self.client_side and not self.certificates:
                self._certificate_message, self._chain = (message.body, self.tls13), None
                self.certificate_frame = message.frame
            elif side == self.client_side and self.certificate_request:
                chain, _problem = parse_certificate(message.body, self.tls13)
                self.client_certificate_empty = not chain
        elif kind == _CERTIFICATE_REQUEST:
            self.certificate_request = True
        elif kind == _FINISHED:
            self._finished(side)
        elif kind == _KEY_UPDATE and decrypted:
            openers = self._dirs[side].openers
            if openers:
                openers[0].key_update()

    def _finished(self, side: int) -> None:
        direction = self._dirs[side]
        direction.finished = True
        if self.tls13 and len(direction.openers) > 1:
            del direction.openers[0]  # handshake keys done: application keys next

    def _alert(self, side: int, body: bytes, frame: int, time: float, encrypted: bool) -> None:
        alert = parse_alert(body[:2])
        if alert is not None:
            self.alerts.append(SeenAlert(side, alert, frame, time, encrypted))
