"""A throwaway certificate authority for the TLS captures, made fresh in a temp dir each run.

Nothing here is kept in the repository: the captures carry the certificates the servers sent,
and the key logs carry the session secrets; the private keys of this CA and its leaves are
deleted with the temp dir when the generator ends.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NAME = "wss.upgrade.test"  # the name clients ask for (SNI, Host); resolved to 127.0.0.1 by hand
OTHER_NAME = "other.upgrade.test"  # a name the server's certificates do not cover
DAY = datetime.timedelta(days=1)

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Leaf:
    chain: Path  # PEM: the leaf, then the CA that signed it (the chain a server sends)
    key: Path  # PEM private key


@dataclass(frozen=True)
class Pki:
    ca: Path  # PEM: the CA every client trusts
    other_ca: Path  # PEM: a CA that signed nothing the servers send ("unknown CA")
    rsa: Leaf  # RSA 2048, SAN NAME, valid now
    ecdsa: Leaf  # P-256, SAN NAME, valid now
    expired: Leaf  # RSA, SAN NAME, expired yesterday
    wrong_name: Leaf  # RSA, SAN OTHER_NAME only


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "upgrade-analyzer tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _ca(common_name: str, now: datetime.datetime) -> tuple[x509.Certificate, PrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (x509.CertificateBuilder()
            .subject_name(_name(common_name)).issuer_name(_name(common_name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - DAY).not_valid_after(now + 30 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def _leaf(directory: Path, stem: str, ca: tuple[x509.Certificate, PrivateKey], key: PrivateKey,
          names: list[str], not_before: datetime.datetime, not_after: datetime.datetime) -> Leaf:
    ca_cert, ca_key = ca
    alt: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    cert = (x509.CertificateBuilder()
            .subject_name(_name(names[0])).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    chain = directory / f"{stem}.chain.pem"
    chain.write_bytes(cert.public_bytes(serialization.Encoding.PEM)
                      + ca_cert.public_bytes(serialization.Encoding.PEM))
    key_path = directory / f"{stem}.key.pem"
    key_path.write_bytes(_pem_key(key))
    key_path.chmod(0o600)
    return Leaf(chain, key_path)


def make_pki(directory: Path) -> Pki:
    """Writes a CA, an unrelated CA and the leaves the scenarios need into `directory`."""
    now = datetime.datetime.now(datetime.UTC)
    ca = _ca("upgrade-analyzer test CA", now)
    other = _ca("upgrade-analyzer unknown CA", now)
    for stem, (cert, _) in (("ca", ca), ("other_ca", other)):
        (directory / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def rsa_key() -> PrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    return Pki(
        ca=directory / "ca.pem",
        other_ca=directory / "other_ca.pem",
        rsa=_leaf(directory, "rsa", ca, rsa_key(), [NAME], now - DAY, now + 30 * DAY),
        ecdsa=_leaf(directory, "ecdsa", ca, ec.generate_private_key(ec.SECP256R1()), [NAME],
                    now - DAY, now + 30 * DAY),
        expired=_leaf(directory, "expired", ca, rsa_key(), [NAME], now - 30 * DAY, now - DAY),
        wrong_name=_leaf(directory, "wrong_name", ca, rsa_key(), [OTHER_NAME], now - DAY,
                         now + 30 * DAY),
    )
