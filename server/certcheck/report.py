"""Validation report of a certificate set (DESIGN.md "Certificate sets", PROTOCOL.md "TLS limits").

Every problem is a :class:`Finding` with a stable id, a severity, the certificate it concerns
(depth 0 = server certificate, counting up to the anchor) and a sentence an operator can act
on. Our own checks cover what a generic verifier does not: chain bytes against the locks'
4096-byte limit, key sizes and types, the server key, the presented order, each signature
link, validity and the anchor change. Path validation then runs ``cryptography``'s verifier
from the server certificate to the anchor.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

ERROR, WARNING, INFO = "error", "warning", "info"
CHAIN_LIMIT_BYTES = 4096
# Every finding id, with what it is about: ids are stable, scripts and the console key on them.
FINDING_IDS = {
    "hash": "the HMAC hash the locks receive for the anchor",
    "hash.unavailable": "no usable site key, so the hash the locks receive is unknown",
    "anchor.fingerprint": "SHA-256 fingerprint of the anchor",
    "anchor.not_ca": "the anchor is not a CA certificate",
    "anchor.intermediate": "the anchor is an intermediate CA, not a root (allowed, but said)",
    "anchor.changes": "activating the set changes the anchor (a fleet-wide change)",
    "anchor.same": "same anchor as the active set (locks need nothing)",
    "chain.size": "DER bytes of root + intermediates + server against the 4096-byte limit",
    "chain.order": "chain.pem is not leaf first, each followed by its issuer",
    "chain.extra": "a certificate in chain.pem is off the path to the anchor",
    "chain.duplicate": "a certificate appears more than once in chain.pem",
    "chain.incomplete": "an issuer between the server certificate and the anchor is missing",
    "chain.signature": "a signature link does not verify",
    "chain.untrusted": "path validation to the anchor fails",
    "chain.unchecked": "path validation could not run: the verifier accepts none of the names",
    "key.size": "an RSA key over 2048 bits",
    "key.type": "a non-RSA key (lock support unknown)",
    "key.mismatch": "the server key does not match the server certificate",
    "key.encrypted": "the server key file is encrypted",
    "key.unreadable": "the server key file cannot be read",
    "key.permissions": "the server key file is readable by other users",
    "cert.expired": "a certificate has expired",
    "cert.not_yet_valid": "a certificate is not valid yet",
    "cert.expiring": "a certificate expires within 30 days",
    "cert.sha1": "a certificate is signed with SHA-1",
    "cert.leaf_ca": "the server certificate is marked as a CA",
    "host.no_san": "the server certificate has no subjectAltName",
    "host.mismatch": "a configured host name is not in the server certificate",
    "host.unchecked": "no host_names setting, so host names were not compared",
}


@dataclass
class Finding:
    id: str                 # stable id: chain.size, key.size, key.mismatch, chain.order, ...
    severity: str           # error / warning / info
    message: str            # a sentence an operator can act on
    depth: int | None = None  # 0 = server certificate, counting up to the anchor
    subject: str = ""


@dataclass
class CertInfo:
    depth: int
    role: str               # server / intermediate / anchor / extra (in chain.pem, off the path)
    subject: str
    issuer: str
    bytes: int
    not_after: str
    key: str                # e.g. "RSA 2048"
    sha256: str = ""
    not_before: str = ""
    signature: str = ""     # signature hash, e.g. "sha256"


@dataclass
class Report:
    set_name: str
    findings: list[Finding] = field(default_factory=list)
    hash: str | None = None     # the HMAC the locks will receive; None without a site key
    anchor_sha256: str = ""
    chain_bytes: int = 0        # root + intermediates + server, DER
    chain_limit: int = CHAIN_LIMIT_BYTES
    largest_key_bits: int = 0
    days_to_expiry: int | None = None
    chain: list[CertInfo] = field(default_factory=list)  # server first, anchor last

    @property
    def verdict(self) -> str:
        severities = {f.severity for f in self.findings}
        return "ERROR" if ERROR in severities else "WARNING" if WARNING in severities else "OK"

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    def ids(self, severity: str | None = None) -> set[str]:
        return {f.id for f in self.findings if severity is None or f.severity == severity}

    def to_dict(self) -> dict:
        return {**asdict(self), "verdict": self.verdict}
