"""The cipher suites this stage can decrypt, as a table (IANA TLS Cipher Suites registry).

One row says everything the key schedule and the record protection need: the AEAD or CBC
cipher, key and IV lengths, the MAC hash of CBC suites and the hash of the PRF/HKDF. The key
exchange part of a TLS 1.2 name (ECDHE_RSA, RSA, DHE...) does not matter once the key log gives
the master secret, so suites that differ only there share a row shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Cipher(Enum):
    AES_GCM = "AES-GCM"
    CHACHA20_POLY1305 = "ChaCha20-Poly1305"
    AES_CCM = "AES-CCM"
    AES_CBC = "AES-CBC"


@dataclass(frozen=True, slots=True)
class Suite:
    """A cipher suite this stage decrypts: its code, name and parameters."""
    code: int
    name: str
    tls13: bool
    cipher: Cipher
    key_length: int
    iv_length: int  # TLS 1.3: the per-record nonce base; 1.2 AEAD: the fixed (implicit) part
    hash: str  # "sha256" or "sha384": HKDF (1.3) or PRF (1.2) hash
    mac: str = ""  # CBC suites: "sha1", "sha256" or "sha384"
    tag_length: int = 16

    @property
    def mac_length(self) -> int:
        return {"": 0, "sha1": 20, "sha256": 32, "sha384": 48}[self.mac]


def _tls13(code: int, name: str, cipher: Cipher, key: int, hash_: str, tag: int = 16) -> Suite:
    return Suite(code, name, True, cipher, key, 12, hash_, tag_length=tag)


def _gcm12(code: int, name: str, key: int, hash_: str) -> Suite:
    return Suite(code, name, False, Cipher.AES_GCM, key, 4, hash_)  # RFC 5288 §3


def _chacha12(code: int, name: str) -> Suite:
    return Suite(code, name, False, Cipher.CHACHA20_POLY1305, 32, 12, "sha256")  # RFC 7905 §2


def _cbc12(code: int, name: str, key: int, mac: str) -> Suite:
    # RFC 5246 §6.3: CBC keys need an IV only for TLS 1.0 (later versions send it explicitly).
    return Suite(code, name, False, Cipher.AES_CBC, key, 16, "sha384" if mac == "sha384"
                 else "sha256", mac=mac)


_ROWS = (
    _tls13(0x1301, "TLS_AES_128_GCM_SHA256", Cipher.AES_GCM, 16, "sha256"),
    _tls13(0x1302, "TLS_AES_256_GCM_SHA384", Cipher.AES_GCM, 32, "sha384"),
    _tls13(0x1303, "TLS_CHACHA20_POLY1305_SHA256", Cipher.CHACHA20_POLY1305, 32, "sha256"),
    _tls13(0x1304, "TLS_AES_128_CCM_SHA256", Cipher.AES_CCM, 16, "sha256"),
    _tls13(0x1305, "TLS_AES_128_CCM_8_SHA256", Cipher.AES_CCM, 16, "sha256", tag=8),
    _gcm12(0xC02F, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", 16, "sha256"),
    _gcm12(0xC030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", 32, "sha384"),
    _gcm12(0xC02B, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", 16, "sha256"),
    _gcm12(0xC02C, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", 32, "sha384"),
    _gcm12(0x009E, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", 16, "sha256"),
    _gcm12(0x009F, "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", 32, "sha384"),
    _gcm12(0x009C, "TLS_RSA_WITH_AES_128_GCM_SHA256", 16, "sha256"),
    _gcm12(0x009D, "TLS_RSA_WITH_AES_256_GCM_SHA384", 32, "sha384"),
    _chacha12(0xCCA8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
    _chacha12(0xCCA9, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"),
    _chacha12(0xCCAA, "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
    _cbc12(0xC013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", 16, "sha1"),
    _cbc12(0xC014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", 32, "sha1"),
    _cbc12(0xC009, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", 16, "sha1"),
    _cbc12(0xC00A, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", 32, "sha1"),
    _cbc12(0xC027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", 16, "sha256"),
    _cbc12(0xC028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", 32, "sha384"),
    _cbc12(0xC023, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", 16, "sha256"),
    _cbc12(0xC024, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", 32, "sha384"),
    _cbc12(0x002F, "TLS_RSA_WITH_AES_128_CBC_SHA", 16, "sha1"),
    _cbc12(0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA", 32, "sha1"),
    _cbc12(0x003C, "TLS_RSA_WITH_AES_128_CBC_SHA256", 16, "sha256"),
    _cbc12(0x003D, "TLS_RSA_WITH_AES_256_CBC_SHA256", 32, "sha256"),
    _cbc12(0x0033, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA", 16, "sha1"),
    _cbc12(0x0039, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA", 32, "sha1"),
    _cbc12(0x0067, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256", 16, "sha256"),
    _cbc12(0x006B, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256", 32, "sha256"),
)

SUITES: dict[int, Suite] = {row.code: row for row in _ROWS}


def suite_name(code: int) -> str:
    row = SUITES.get(code)
    return row.name if row else f"{code:#06x}"
