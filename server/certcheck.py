"""Validation report of a certificate set (DESIGN.md "Certificate sets", issue 3).

INTERFACE STUB - the certificate issue fills in the checks; the console codes against these
names, so keep them (add, do not rename).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field

ERROR, WARNING, INFO = "error", "warning", "info"


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
    role: str               # server / intermediate / anchor
    subject: str
    issuer: str
    bytes: int
    not_after: str
    key: str                # e.g. "RSA 2048"


@dataclass
class Report:
    set_name: str
    findings: list[Finding] = field(default_factory=list)
    hash: str = ""              # the HMAC the locks will receive
    anchor_sha256: str = ""
    chain_bytes: int = 0        # root + intermediates + server, DER
    chain_limit: int = 4096
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

    def to_dict(self) -> dict:
        return {**asdict(self), "verdict": self.verdict}


def check_set(cert_set, site_key, settings, active=None, now: dt.datetime | None = None) -> Report:
    """Every finding for ``cert_set`` (a certstore.CertSet); ``active`` is the active CertSet
    to compare anchors with. Fast: runs as the console's cursor moves."""
    return Report(set_name=cert_set.name, hash=site_key.hash(cert_set.anchor_der),
                  anchor_sha256=cert_set.anchor_sha256)
