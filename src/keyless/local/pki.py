"""A certificate authority for the local stack: a root CA and a TLS server certificate for
127.0.0.1/localhost, so that local HTTPS is verified like the real thing (never ``verify=False``).
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from keyless.fsutil import write_public_file, write_secret_file

__all__ = ["DEFAULT_HOSTS", "LocalPki", "PkiFiles", "write_atomic"]

#: Names the server certificate is valid for. The local stack listens on loopback only.
DEFAULT_HOSTS: Final = ("127.0.0.1", "localhost")

_CA_VALIDITY: Final = datetime.timedelta(days=3650)
_SERVER_VALIDITY: Final = datetime.timedelta(days=90)
#: A loaded server certificate with less than this left is reissued from the same CA.
_SERVER_RENEW_BEFORE: Final = datetime.timedelta(days=1)
#: Certificates start a little in the past so that a clock behind by minutes still accepts them.
_BACKDATE: Final = datetime.timedelta(hours=1)

_CA_CERT, _CA_KEY = "ca.pem", "ca-key.pem"
_SERVER_CERT, _SERVER_KEY = "server.pem", "server-key.pem"

Clock = Callable[[], datetime.datetime]


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


@dataclass(frozen=True, slots=True, kw_only=True)
class PkiFiles:
    """Where a ``LocalPki`` was written. ``ca_bundle`` is what clients trust."""

    ca_bundle: Path
    server_chain: Path  # server certificate, then the CA certificate
    server_key: Path  # 0600


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalPki:
    """A root CA and one server certificate it signed. Private keys are PEM, never in ``repr``."""

    ca_cert_pem: bytes
    ca_key_pem: bytes = field(repr=False)
    server_cert_pem: bytes
    server_key_pem: bytes = field(repr=False)

    @classmethod
    def generate(
        cls,
        *,
        hosts: Sequence[str] = DEFAULT_HOSTS,
        common_name: str = "keyless local CA",
        clock: Clock = _utcnow,
    ) -> LocalPki:
        """A fresh CA (P-256, ten years) and a server certificate for ``hosts`` (90 days)."""
        now = clock()
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _CA_VALIDITY)
            # A CA that can sign server certificates and nothing below them (pathlen 0).
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        ca = cls(
            ca_cert_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
            ca_key_pem=_private_pem(ca_key),
            server_cert_pem=b"",
            server_key_pem=b"",
        )
        return ca.reissue_server(hosts=hosts, clock=clock)

    def reissue_server(
        self, *, hosts: Sequence[str] = DEFAULT_HOSTS, clock: Clock = _utcnow
    ) -> LocalPki:
        """The same CA with a new server key and certificate for ``hosts``."""
        if not hosts:
            raise ValueError("a server certificate needs at least one host name or address")
        now = clock()
        ca_cert = x509.load_pem_x509_certificate(self.ca_cert_pem)
        ca_key = serialization.load_pem_private_key(self.ca_key_pem, password=None)
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise ValueError("the local CA key is not an EC key")
        server_key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        server_cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(ca_cert.subject)
            .public_key(server_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(min(now + _SERVER_VALIDITY, ca_cert.not_valid_after_utc))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        return LocalPki(
            ca_cert_pem=self.ca_cert_pem,
            ca_key_pem=self.ca_key_pem,
            server_cert_pem=server_cert.public_bytes(serialization.Encoding.PEM),
            server_key_pem=_private_pem(server_key),
        )

    @property
    def ca_thumbprint(self) -> str:
        """SHA-1 of the CA certificate (DER), 40 lowercase hex digits: the form IAM's OIDC
        provider ``ThumbprintList`` takes (the top CA of the chain the issuer serves)."""
        cert = x509.load_pem_x509_certificate(self.ca_cert_pem)
        return cert.fingerprint(hashes.SHA1()).hex()  # noqa: S303 - IAM defines it as SHA-1

    @property
    def server_not_after(self) -> datetime.datetime:
        return x509.load_pem_x509_certificate(self.server_cert_pem).not_valid_after_utc

    def write(self, directory: Path) -> PkiFiles:
        """Write the four PEM files into ``directory`` (created 0700); keys are 0600."""
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(directory / _CA_CERT, self.ca_cert_pem, mode=0o644)
        write_secret_file(directory / _CA_KEY, self.ca_key_pem.decode("ascii"))
        write_atomic(directory / _SERVER_CERT, self.server_cert_pem + self.ca_cert_pem, mode=0o644)
        write_secret_file(directory / _SERVER_KEY, self.server_key_pem.decode("ascii"))
        return self.files(directory)

    @staticmethod
    def files(directory: Path) -> PkiFiles:
        return PkiFiles(
            ca_bundle=directory / _CA_CERT,
            server_chain=directory / _SERVER_CERT,
            server_key=directory / _SERVER_KEY,
        )

    @classmethod
    def load(cls, directory: Path) -> LocalPki | None:
        """The PKI written to ``directory`` earlier, or ``None`` when there is none."""
        paths = [directory / name for name in (_CA_CERT, _CA_KEY, _SERVER_CERT, _SERVER_KEY)]
        if not all(path.is_file() for path in paths):
            return None
        ca_cert, ca_key, server_chain, server_key = (path.read_bytes() for path in paths)
        # server.pem holds the chain; the server certificate is its first PEM block.
        first_end = server_chain.find(b"-----END CERTIFICATE-----")
        server_cert = server_chain[: first_end + len(b"-----END CERTIFICATE-----")] + b"\n"
        return cls(
            ca_cert_pem=ca_cert,
            ca_key_pem=ca_key,
            server_cert_pem=server_cert,
            server_key_pem=server_key,
        )

    @classmethod
    def load_or_create(
        cls,
        directory: Path,
        *,
        hosts: Sequence[str] = DEFAULT_HOSTS,
        clock: Clock = _utcnow,
    ) -> tuple[LocalPki, PkiFiles]:
        """Reuse the CA in ``directory`` (so clients keep trusting it), renewing the server
        certificate when it is about to expire; create both when there is none."""
        pki = cls.load(directory)
        if pki is None:
            pki = cls.generate(hosts=hosts, clock=clock)
            return pki, pki.write(directory)
        if pki.server_not_after - clock() < _SERVER_RENEW_BEFORE:
            pki = pki.reissue_server(hosts=hosts, clock=clock)
            return pki, pki.write(directory)
        return pki, cls.files(directory)


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_atomic(path: Path, data: bytes, *, mode: int) -> None:
    """Write public ``data`` (a certificate, an index) to ``path`` atomically. Private keys go
    through ``keyless.fsutil.write_secret_file`` instead (0600)."""
    write_public_file(path, data, mode=mode)
