"""Throwaway certificates for the TLS tests, made in the test with `cryptography`: a CA, its
intermediates, and certificates for the names and addresses a test asks for, written as PEM
files the way an admin would give them to smsc."""

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class CA:
    """A certificate authority; `issuer`: the CA that signs this one (an intermediate)."""

    def __init__(self, name: str, issuer: "CA | None" = None):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.issuer = issuer
        usage = x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False,
        )  # fmt: skip
        builder = _builder(self.name, self.key).add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True
        )
        self.cert = (issuer or self)._sign(builder.add_extension(usage, critical=True))

    def _sign(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        # Python's ssl (3.13: VERIFY_X509_STRICT) wants the authority key identifier.
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key())
        builder = builder.issuer_name(self.name).add_extension(aki, critical=False)
        return builder.sign(self.key, hashes.SHA256())

    @property
    def chain(self) -> list[x509.Certificate]:
        """This CA's certificate and its issuers' up to the root's (not included)."""
        return [] if self.issuer is None else [self.cert, *self.issuer.chain]

    def write(self, directory: Path) -> str:
        """Its certificate as a PEM file (what `tls_ca` names); returns the path."""
        path = directory / f"{self.name.rfc4514_string().replace(' ', '_')}.pem"
        path.write_bytes(_pem(self.cert))
        return str(path)

    def issue(self, directory: Path, stem: str, *names: str) -> tuple[str, str]:
        """A server certificate for `names` (host names and IP addresses), written with this
        CA's intermediates after it, and its key: (cert path, key path)."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
        alt = [_general_name(n) for n in names]
        builder = (
            _builder(subject, key)
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        )
        cert = self._sign(builder)
        cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
        cert_path.write_bytes(b"".join(_pem(c) for c in [cert, *self.chain]))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return str(cert_path), str(key_path)


def _builder(subject: x509.Name, key) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)
