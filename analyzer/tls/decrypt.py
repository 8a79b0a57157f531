"""Record protection, undone: one direction's records opened with its traffic keys.

TLS 1.3 (RFC 8446 §5.2-5.3): AEAD with the per-record nonce `iv XOR sequence number`, the
record header as additional data, and an inner content type after the content, followed by
zero padding. TLS 1.2 AEAD: AES-GCM with a 4-byte fixed IV and an 8-byte explicit nonce at the
front of each record (RFC 5288 §3); ChaCha20-Poly1305 with the TLS 1.3-style nonce (RFC 7905
§2); both with `seq || type || version || length` as additional data (RFC 5246 §6.2.3.3).
TLS 1.2 CBC (RFC 5246 §6.2.3.2): an explicit IV (TLS 1.1 and later), MAC-then-encrypt with
HMAC over `seq || type || version || length || content`, or encrypt-then-MAC when RFC 7366 was
negotiated. Sequence numbers count records per direction from 0 at each key change.

Only `cryptography` primitives do the work (AESGCM, ChaCha20Poly1305, AESCCM, AES-CBC, HMAC).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher as CipherContext
from cryptography.hazmat.primitives.ciphers import algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305

from analyzer.slotted import slot_setters
from analyzer.tls.keys import TrafficKeys, tls13_next_secret, tls13_traffic_keys
from analyzer.tls.records import Record
from analyzer.tls.suites import Cipher, Suite
from analyzer.tls.values import DecryptError

_MAC_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384}


@dataclass(frozen=True, slots=True)
class Opened:
    """A record's plaintext once decrypted, with its real content type."""
    content_type: int  # the real content type (TLS 1.3: the inner one)
    plaintext: bytes
    lead: int  # bytes of the record body before the plaintext (explicit nonce or IV)


# Made through its slots' descriptors, not the frozen ``__init__`` (see records.made_record;
# the constructor is its plain twin, compared in tests/test_made_values.py).
_set_content_type, _set_plaintext, _set_lead = slot_setters(Opened)


def made_opened(content_type: int, plaintext: bytes, lead: int) -> Opened:
    """``Opened(content_type, plaintext, lead)``."""
    made = object.__new__(Opened)
    _set_content_type(made, content_type)
    _set_plaintext(made, plaintext)
    _set_lead(made, lead)
    return made


class RecordOpener:
    """Opens the protected records of one direction, in order."""

    # what `cryptography`'s AEADs raise when a record does not authenticate (tls/passing.py
    # `offer_open` gives it to the compiled skip, which opens records with `aead`)
    invalid_tag = InvalidTag

    __slots__ = ("suite", "version", "_keys", "_aead", "encrypt_then_mac", "sequence",
                 "_secret", "_cbc_iv", "_iv_number", "_iv_length", "_mac_keyed",
                 "padding_seen", "unconfirmed")

    def __init__(self, suite: Suite, version: int, keys: TrafficKeys,
                 encrypt_then_mac: bool = False, secret: bytes = b"") -> None:
        self.suite = suite
        self.version = version
        self.encrypt_then_mac = encrypt_then_mac
        self.sequence = 0
        # TLS 1.3, for the records counted unopened (tls/passing.py): whether a record of
        # this sender opened with padding, and how many records were counted since the last
        # one that opened
        self.padding_seen = False
        self.unconfirmed = 0
        self._secret = secret  # TLS 1.3 traffic secret, for KeyUpdate
        self._keys = keys
        self._aead = _make_aead(suite, keys.key)
        self._cbc_iv = keys.iv  # TLS 1.0 chains the IV from record to record
        self._iv_number = int.from_bytes(keys.iv, "big")  # each record's nonce XORs it
        self._iv_length = len(keys.iv)
        self._mac_keyed: hmac.HMAC | None = None  # CBC suites: HMAC keyed with the MAC key

    def __repr__(self) -> str:
        return f"RecordOpener({self.suite.name}, sequence {self.sequence})"

    def open(self, record: Record) -> Opened:
        """Decrypt and authenticate ``record``; raises DecryptError. Advances the sequence."""
        if self.suite.tls13:
            opened = self._open_tls13(record)
        elif self.suite.cipher == Cipher.AES_CBC:
            opened = self._open_cbc(record)
        else:
            opened = self._open_aead12(record)
        self.sequence += 1
        return opened

    def key_update(self) -> None:
        """RFC 8446 §4.6.3: the sender moved to the next application traffic secret."""
        self._secret = tls13_next_secret(self.suite, self._secret)
        self._keys = tls13_traffic_keys(self.suite, self._secret)
        self._aead = _make_aead(self.suite, self._keys.key)
        self._iv_number = int.from_bytes(self._keys.iv, "big")
        self._iv_length = len(self._keys.iv)
        self.sequence = 0

    def aead(self) -> tuple[Callable[[bytes, bytes, bytes], bytes], Callable[..., int] | None,
                            bytes]:
        """For tls/passing.py (TLS 1.3, and TLS 1.2 AEAD in life): the AEAD's
        ``decrypt(nonce, data, aad)`` with these keys, its ``decrypt_into(nonce, data, aad,
        out)`` (None in an older `cryptography`), and the IV that each record's nonce is made
        from (RFC 8446 §5.3; TLS 1.2 AES-GCM: its 4-byte implicit part, RFC 5288 §3)."""
        assert self._aead is not None
        return self._aead.decrypt, getattr(self._aead, "decrypt_into", None), self._keys.iv

    def _nonce(self) -> bytes:
        # RFC 8446 §5.3 and RFC 7905 §2: the sequence number, left-padded, XOR the IV.
        return (self._iv_number ^ self.sequence).to_bytes(self._iv_length, "big")

    def _open_tls13(self, record: Record) -> Opened:
        assert self._aead is not None
        body, version = record.body, record.version
        length = len(body)
        try:  # the nonce as `_nonce` makes it; the record's 5 header bytes, the additional data
            inner = self._aead.decrypt(
                (self._iv_number ^ self.sequence).to_bytes(self._iv_length, "big"), body,
                bytes((record.content_type, version >> 8, version & 0xFF, length >> 8,
                       length & 0xFF)))
        except InvalidTag as error:
            raise DecryptError("authentication tag mismatch") from error
        # RFC 8446 §5.4: strip the zero padding; the last non-zero byte is the content type.
        end = len(inner)
        if end and inner[end - 1]:  # the usual case: no padding
            return made_opened(inner[end - 1], inner[:end - 1], 0)
        while end and inner[end - 1] == 0:
            end -= 1
        if end != len(inner):
            self.padding_seen = True
        if not end:
            raise DecryptError("record holds only padding (no inner content type)")
        return made_opened(inner[end - 1], inner[:end - 1], 0)

    def _aad(self, content_type: int, length: int) -> bytes:
        return (self.sequence.to_bytes(8, "big") + bytes((content_type,))
                + self.version.to_bytes(2, "big") + length.to_bytes(2, "big"))

    def _open_aead12(self, record: Record) -> Opened:
        assert self._aead is not None
        tag = self.suite.tag_length
        if self.suite.cipher == Cipher.CHACHA20_POLY1305:
            nonce, lead = self._nonce(), 0
        else:
            if len(record.body) < 8 + tag:
                raise DecryptError("record shorter than its explicit nonce and tag")
            nonce, lead = self._keys.iv + record.body[:8], 8
        ciphertext = record.body[lead:]
        if len(ciphertext) < tag:
            raise DecryptError("record shorter than its tag")
        aad = self._aad(record.content_type, len(ciphertext) - tag)
        try:
            return made_opened(record.content_type, self._aead.decrypt(nonce, ciphertext, aad),
                               lead)
        except InvalidTag as error:
            raise DecryptError("authentication tag mismatch") from error

    def _mac(self, data: bytes) -> bytes:
        keyed = self._mac_keyed
        if keyed is None:  # keyed once per opener; each record's HMAC is a copy of it
            keyed = self._mac_keyed = hmac.HMAC(self._keys.mac_key,
                                                _MAC_HASHES[self.suite.mac]())
        mac = keyed.copy()
        mac.update(data)
        return mac.finalize()

    def _open_cbc(self, record: Record) -> Opened:
        body = record.body
        mac_length = self.suite.mac_length
        explicit = 16 if self.version >= 0x0302 else 0
        if self.encrypt_then_mac:  # RFC 7366 §3: the MAC covers IV and ciphertext
            if len(body) < explicit + 16 + mac_length:
                raise DecryptError("record shorter than IV, one block and MAC")
            protected, mac = body[:-mac_length], body[-mac_length:]
            if self._mac(self._aad(record.content_type, len(protected)) + protected) != mac:
                raise DecryptError("MAC mismatch")
            body = protected
        if len(body) < explicit + 16 or (len(body) - explicit) % 16:
            raise DecryptError("CBC record is not a whole number of blocks")
        iv = body[:16] if explicit else self._cbc_iv
        ciphertext = body[explicit:]
        decryptor = CipherContext(algorithms.AES(self._keys.key), modes.CBC(iv)).decryptor()
        padded = decryptor.update(ciphertext) + decryptor.finalize()
        if not explicit:
            self._cbc_iv = ciphertext[-16:]
        pad = padded[-1]
        if pad + 1 > len(padded) or any(b != pad for b in padded[-pad - 1:]):
            raise DecryptError("bad CBC padding")
        content = padded[:-pad - 1]
        if self.encrypt_then_mac:
            return made_opened(record.content_type, content, explicit)
        if len(content) < mac_length:
            raise DecryptError("record shorter than its MAC")
        content, mac = content[:len(content) - mac_length], content[len(content) - mac_length:]
        if self._mac(self._aad(record.content_type, len(content)) + content) != mac:
            raise DecryptError("MAC mismatch")
        return made_opened(record.content_type, content, explicit)


def _make_aead(suite: Suite, key: bytes) -> AESGCM | ChaCha20Poly1305 | AESCCM | None:
    if suite.cipher == Cipher.AES_GCM:
        return AESGCM(key)
    if suite.cipher == Cipher.CHACHA20_POLY1305:
        return ChaCha20Poly1305(key)
    if suite.cipher == Cipher.AES_CCM:
        return AESCCM(key, tag_length=suite.tag_length)
    return None
