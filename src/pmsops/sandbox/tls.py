"""A private CA and a server certificate for 127.0.0.1 and localhost: the one generator for TLS on loopback.

Used by the sandbox's nginx (``pmsops sandbox up --proxy``) and by the tests' TLS Redis, TLS PostgreSQL and proxy
variants. ``cryptography`` writes them; nothing leaves loopback. The key is 0600 (and, for a server that runs as its
own user, owned by it); the certificates 0644.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from pmsops import safefile


@dataclass
class Certificates:
    """A private CA and a server certificate for 127.0.0.1 and localhost (PEM files)."""

    ca: Path
    cert: Path
    key: Path


def _usage(ca: bool):
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def make_certificates(directory: Path, owner_uid: int | None = None, owner_gid: int | None = None, days: int = 30) -> Certificates:
    """Write ca.pem, server.pem and server.key into ``directory`` (created if absent), never through a link."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    valid = {"not_valid_before": now - datetime.timedelta(minutes=5), "not_valid_after": now + datetime.timedelta(days=days)}
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pmsops private CA")])
    ca = (
        x509.CertificateBuilder(
            subject_name=ca_name, issuer_name=ca_name, public_key=ca_key.public_key(), serial_number=x509.random_serial_number(), **valid
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server = (
        x509.CertificateBuilder(
            subject_name=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]),
            issuer_name=ca_name,
            public_key=key.public_key(),
            serial_number=x509.random_serial_number(),
            **valid,
        )
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)  # its privacy is the caller's (the sandbox's proxy directory is 0700)
    pem = serialization.Encoding.PEM
    paths = Certificates(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    safefile.write_text(paths.ca, ca.public_bytes(pem).decode(), "CA certificate")
    safefile.write_text(paths.cert, server.public_bytes(pem).decode(), "server certificate")
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()).decode()
    safefile.write_text(paths.key, key_pem, "server key")
    for path in (paths.ca, paths.cert):
        path.chmod(0o644)
    if owner_uid is not None:  # a server that runs as its own user reads its key
        for path in (paths.ca, paths.cert, paths.key):
            os.chown(path, owner_uid, owner_gid if owner_gid is not None else -1)
    return paths
