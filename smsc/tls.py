"""TLS options for Twisted (pyOpenSSL and service_identity, the `twisted[tls]` extra): what
the SMPP listener and a simulated carrier present, and what the switch checks of a carrier.

Twisted's defaults stand (TLS 1.2 or later, its cipher list). The files are read at start,
not when the config is loaded: the admin commands, run by other users, have no business with
the service's private key. What is wrong with a file stops the start in one line naming its
key."""

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto
from service_identity import VerificationError
from twisted.internet import ssl
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.python.failure import Failure

from .config import CarrierConfig, ConfigError


def server_options(cert_path: str, key_path: str, where: str) -> ssl.CertificateOptions:
    """The first certificate of `cert_path` (the intermediates follow it there) with the key
    of `key_path`. `where`: the config table they come from ("smpp")."""
    chain = _certificates(cert_path, f"{where}.tls_cert")
    key = _private_key(key_path, f"{where}.tls_key")
    if _public(key) != _public(chain[0]):
        raise ConfigError(f"{where}.tls_key: {key_path} is not the key of {cert_path}")
    # cryptography's objects, which pyOpenSSL takes (its own X509 and PKey are deprecated).
    return ssl.CertificateOptions(privateKey=key, certificate=chain[0], extraCertChain=chain[1:])


def client_options(carrier: CarrierConfig, where: str) -> IOpenSSLClientConnectionCreator:
    """How the switch connects to a carrier with `tls = true`: its certificate must chain to
    `tls_ca` (or to the system's trust store) and name `host`; `tls_verify = false` takes
    any certificate (a test lab's self-signed one)."""
    if not carrier.tls_verify:
        return ssl.CertificateOptions()
    if carrier.tls_ca is None:
        trust = ssl.platformTrust()
    else:
        cas = _certificates(carrier.tls_ca, f"{where}.tls_ca")
        trust = ssl.trustRootFromCertificates(
            [ssl.Certificate(crypto.X509.from_cryptography(c)) for c in cas]
        )
    return ssl.optionsForClientTLS(carrier.host, trust)


def failure(reason: Failure) -> str | None:
    """Why TLS ended a connection (a certificate refused, most often), or None when it was
    not TLS that ended it."""
    if reason.check(VerificationError):
        return "the certificate is not for this host name"
    if reason.check(SSL.Error):
        # Mostly OpenSSL's error queue, (library, function, reason) triples; a SysCallError
        # (the peer hung up in the handshake) carries (errno, text) instead.
        args = reason.value.args
        queue = args[0] if args and isinstance(args[0], list) else []
        reasons = [r[-1] for r in queue if isinstance(r, tuple) and r[-1]]
        return "; ".join(reasons) or str(reason.value) or reason.type.__name__
    return None


def _certificates(path: str, key: str) -> list[x509.Certificate]:
    try:
        found = x509.load_pem_x509_certificates(_read(path, key))
    except ValueError:
        found = []
    if not found:
        raise ConfigError(f"{key}: no PEM certificate in {path}")
    return found


def _private_key(path: str, key: str):
    try:
        return serialization.load_pem_private_key(_read(path, key), password=None)
    except TypeError:  # a passphrase: nobody would be there to type it at start
        raise ConfigError(f"{key}: {path} is encrypted; give it without a passphrase") from None
    except ValueError:
        raise ConfigError(f"{key}: no PEM private key in {path}") from None


def _read(path: str, key: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ConfigError(f"{key}: cannot read {path}: {e.strerror}") from None


def _public(item) -> bytes:
    return item.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
