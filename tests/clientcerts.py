"""Client certificates for tests: a lock CA and the certificates locks present (P-256 keys:
generated fast at run time)."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from server.pki import Issued, cert_pem, key_pem

NOW = dt.datetime.now(dt.timezone.utc)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def lock_ca(cn: str = "lock CA") -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    return Issued(cert, key)


def lock_cert(ca: Issued, cn: str, days: tuple[float, float] = (-1, 30), san=()) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca.cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(NOW + dt.timedelta(days=days[0]))
               .not_valid_after(NOW + dt.timedelta(days=days[1]))
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False))
    if san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in san]), False)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


def write_pair(folder, stem: str, issued: Issued) -> tuple[str, str]:
    """``stem.pem`` and ``stem.key`` in ``folder``: the paths, for ``load_cert_chain``."""
    (folder / f"{stem}.pem").write_bytes(cert_pem(issued.cert))
    (folder / f"{stem}.key").write_bytes(key_pem(issued.key))
    return str(folder / f"{stem}.pem"), str(folder / f"{stem}.key")
