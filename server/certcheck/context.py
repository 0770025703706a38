"""What every rule reads, computed once per check: the parsed set, the server certificate, the
path from it to the anchor, the server key, the hash the locks receive, the settings and the
time of the check."""

from __future__ import annotations

import datetime as dt

from cryptography import x509

from ..errors import SiteKeyError
from .keyfile import read_key
from .report import Finding
from .x509util import der, is_ca, issuer_path, issues


class Context:
    """Read by the rules, never changed by them; :meth:`finding` places a finding at the depth
    of the certificate it concerns."""

    def __init__(self, cert_set, site_key, settings, active, now: dt.datetime):
        self.set = cert_set
        # No usable site key (a SiteKeyError in its place): no hash, and why, for the report.
        missing = isinstance(site_key, SiteKeyError)
        self.hash = None if missing else site_key.hash(cert_set.anchor_der)
        self.no_hash_reason = str(site_key) if missing else ""
        self.settings = settings
        self.active = active
        self.now = _utc(now)
        self.anchor = x509.load_der_x509_certificate(cert_set.anchor_der)
        self.presented = list(dict.fromkeys(cert_set.chain))  # unique, in chain.pem order
        self.key, self.key_problems = read_key(cert_set.key_path)
        pool = [c for c in self.presented if c != self.anchor]
        self.leaf = self._pick_leaf(pool)
        self.path, self.reached = self._build_path(pool)
        self.extras = [c for c in self.presented if c not in self.path and c != self.anchor]

    def finding(self, id: str, severity: str, message: str,
                cert: x509.Certificate | None = None) -> Finding:
        depth = self.depth(cert) if cert is not None else None
        return Finding(id, severity, message, depth,
                       cert.subject.rfc4514_string() if cert is not None else "")

    def depth(self, cert: x509.Certificate) -> int | None:
        if cert in self.path:
            return self.path.index(cert)
        if cert == self.anchor:
            return len(self.path)
        return None

    def _pick_leaf(self, pool: list[x509.Certificate]) -> x509.Certificate:
        """The server certificate by the chain's structure, never by the key (a key of another
        certificate is a key.mismatch): the first issuing no other, preferring a non-CA."""
        if not pool:
            return self.presented[0]
        ends = [c for c in pool if not any(issues(c, other) for other in pool)] or pool
        return next((c for c in ends if not is_ca(c)), ends[0])

    def _build_path(self, pool):
        path = issuer_path(self.leaf, pool + [self.anchor], self.anchor)
        return path, path[-1] == self.anchor

    def chain_bytes(self) -> int:
        """Every certificate as chain.pem presents it (repeats too: TLS sends each copy),
        plus the anchor when it is not among them."""
        sent = list(self.set.chain)
        return sum(len(der(c)) for c in sent + ([] if self.anchor in sent else [self.anchor]))

    def all_certs(self) -> list[x509.Certificate]:
        return list(dict.fromkeys(self.path + [self.anchor] + self.extras))


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
