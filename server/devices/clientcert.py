"""Mutual TLS bound to identity: the client certificate a lock presented on its connection (it
chains to ``client_ca_file``: the TLS context checked that) must name the lock (its CN or a
subjectAltName equals the serial), and a pinned certificate must be that very one (same
SHA-256 fingerprint)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from cryptography import x509

from .errors import IdentityMismatch
from .identities import common_name, fingerprint


@dataclass(frozen=True)
class ClientCert:
    subject: str
    fingerprint: str
    names: frozenset  # CN and subjectAltName values, upper-cased

    def summary(self) -> dict:
        return {"subject": self.subject, "fingerprint": self.fingerprint}

    def label(self) -> str:
        return f"{self.subject} (sha256 {self.fingerprint})"


@functools.lru_cache(maxsize=4096)  # a lock presents the same certificate at every call-in
def client_cert(der: bytes) -> ClientCert:
    cert = x509.load_der_x509_certificate(der)
    names = {common_name(cert)}
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names.update(str(v) for kind in (x509.DNSName, x509.UniformResourceIdentifier)
                     for v in san.get_values_for_type(kind))
    except x509.ExtensionNotFound:
        pass
    return ClientCert(cert.subject.rfc4514_string(), fingerprint(der),
                      frozenset(n.upper() for n in names if n))


def check_client(serial: str, der: bytes | None, record: dict | None) -> ClientCert:
    """The certificate, if it may speak for lock ``serial``; IdentityMismatch naming both
    sides otherwise."""
    if not der:
        raise IdentityMismatch(f"lock {serial} presented no client certificate (client_ca_file "
                               "is set: call-ins need one, over TLS)")
    cert = client_cert(der)
    if serial not in cert.names:
        raise IdentityMismatch(f"client certificate {cert.subject} names "
                               f"{', '.join(sorted(cert.names)) or 'nothing'}, not lock {serial}")
    pin = (record or {}).get("pinned_cert") or {}
    if pin.get("fingerprint") and pin["fingerprint"] != cert.fingerprint:
        raise IdentityMismatch(f"lock {serial} presented certificate sha256 {cert.fingerprint}, "
                               f"not its pinned certificate sha256 {pin['fingerprint']}")
    return cert
