"""Validation report of a certificate set (DESIGN.md "Certificate sets", PROTOCOL.md "TLS limits").

Every problem is a :class:`Finding` with a stable id, a severity, the certificate it concerns
(depth 0 = server certificate, counting up to the anchor) and a sentence an operator can act
on. Our own checks cover what a generic verifier does not: chain bytes against the locks'
4096-byte limit, key sizes and types, the server key, the presented order, each signature
link, validity and the anchor change. Path validation then runs ``cryptography``'s verifier
from the server certificate to the anchor.

The verifier's verdict is one coarse error (``chain.untrusted``), so it is reported only when
no specific finding already explains a broken path (a bad signature, a missing intermediate, an
expired certificate, a CA flag on the server certificate, no subjectAltName): each problem maps
to exactly one finding. The verifier refuses SHA-1 signatures outright; that refusal alone is
left to ``cert.sha1``, any other verifier error is still reported. Host names are checked
against the subjectAltName by us; the verifier is given the first configured name the
certificate covers, else the first SAN entry it accepts (a wildcard as a name under it), so a
host-name mismatch does not hide other path problems; when it accepts none, a warning says the
path was not validated. With no ``host_names`` setting, the names are not compared (an info
finding says so).

The server key is read without OpenSSL's RSA consistency check (~35 ms for a 2048-bit key,
too slow for a check that runs as the cursor moves); activation builds the TLS context, which
loads the key fully before anything changes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
from dataclasses import asdict, dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

ERROR, WARNING, INFO = "error", "warning", "info"
CHAIN_LIMIT_BYTES = 4096
KEY_LIMIT_BITS = 2048
EXPIRY_WARNING_DAYS = 30
# Every finding id, with what it is about: ids are stable, scripts and the console key on them.
FINDING_IDS = {
    "hash": "the HMAC hash the locks receive for the anchor",
    "anchor.fingerprint": "SHA-256 fingerprint of the anchor",
    "anchor.not_ca": "the anchor is not a CA certificate",
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
_SEVERITY_ORDER = {ERROR: 0, WARNING: 1, INFO: 2}
# Findings that already say why path validation fails; the verifier's coarse error is dropped.
_EXPLAINS_PATH = {"chain.signature", "chain.incomplete", "chain.untrusted", "cert.expired",
                  "cert.not_yet_valid", "cert.leaf_ca", "anchor.not_ca", "host.no_san"}


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
    hash: str = ""              # the HMAC the locks will receive
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


def check_set(cert_set, site_key, settings, active=None, now: dt.datetime | None = None) -> Report:
    """Every finding for ``cert_set`` (a certstore.CertSet); ``active`` is the active CertSet
    to compare anchors with. Fast: runs as the console's cursor moves."""
    return _Check(cert_set, site_key, settings, active,
                  now or dt.datetime.now(dt.timezone.utc)).run()


def gate(site_key, settings):
    """The activation gate for :class:`server.activation.Certificates`: the error sentences
    that forbid activating a set."""
    def errors(cert_set) -> list[str]:
        return [f"{f.id}: {f.message}" for f in check_set(cert_set, site_key, settings).errors]
    return errors


# --- describing certificates and keys ---------------------------------------------------------

def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def short_name(cert: x509.Certificate) -> str:
    """The common name, else the whole subject: how a certificate is named in a sentence."""
    cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else cert.subject.rfc4514_string() or "(empty subject)"


def key_label(key) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA {key.key_size}"
    return type(key).__name__


def key_bits(key) -> int:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return 256
    if isinstance(key, ed448.Ed448PublicKey):
        return 456
    return getattr(key, "key_size", 0)


def spki(key) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def fingerprint(data: bytes) -> str:
    return ":".join(f"{b:02X}" for b in hashlib.sha256(data).digest())


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def signature_hash(cert: x509.Certificate) -> str:
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return "unknown"
    return algorithm.name if algorithm else "none"


def san_of(cert: x509.Certificate) -> x509.SubjectAlternativeName | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None


def san_covers(san: x509.SubjectAlternativeName, host: str) -> bool:
    """Whether ``host`` (a DNS name or an IP address) is in the SAN, with one-label wildcards."""
    try:
        return ipaddress.ip_address(host) in san.get_values_for_type(x509.IPAddress)
    except ValueError:
        pass
    host = host.lower().rstrip(".")
    for name in san.get_values_for_type(x509.DNSName):
        name = name.lower().rstrip(".")
        if name == host:
            return True
        if name.startswith("*.") and "." in host and host.split(".", 1)[1] == name[2:]:
            return True
    return False


def san_text(san: x509.SubjectAlternativeName | None) -> str:
    if san is None:
        return "none"
    values = [str(v) for v in san.get_values_for_type(x509.DNSName)]
    values += [str(v) for v in san.get_values_for_type(x509.IPAddress)]
    return ", ".join(values) or "none"


def issues(issuer: x509.Certificate, child: x509.Certificate) -> bool:
    return child.issuer == issuer.subject and child != issuer


def signed_by(child: x509.Certificate, issuer: x509.Certificate) -> bool | None:
    """True/False when the signature link verifies or not; None when it cannot be checked."""
    try:
        child.verify_directly_issued_by(issuer)
        return True
    except InvalidSignature:
        return False
    except (TypeError, ValueError, UnsupportedAlgorithm):
        pass
    # cryptography refuses legacy algorithms (SHA-1) here; check those links by hand.
    key = issuer.public_key()
    try:
        algorithm = child.signature_hash_algorithm
        if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
            key.verify(child.signature, child.tbs_certificate_bytes, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
            key.verify(child.signature, child.tbs_certificate_bytes, ec.ECDSA(algorithm))
        else:
            return None
        return True
    except InvalidSignature:
        return False
    except (TypeError, ValueError, UnsupportedAlgorithm):
        return None


def issuer_path(leaf: x509.Certificate, candidates: list[x509.Certificate],
                anchor: x509.Certificate | None = None) -> list[x509.Certificate]:
    """``leaf``, then each issuer found among ``candidates`` by name (preferring one whose
    signature fits, then ``anchor``), until the anchor, a self-issued certificate or no
    issuer."""
    path = [leaf]
    while path[-1] != anchor and path[-1].issuer != path[-1].subject:
        child = path[-1]
        named = [c for c in candidates if c not in path and issues(c, child)]
        if not named:
            break
        named.sort(key=lambda c: (signed_by(child, c) is False, c != anchor))
        path.append(named[0])
    return path


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


# --- the check --------------------------------------------------------------------------------

class _Check:
    def __init__(self, cert_set, site_key, settings, active, now: dt.datetime):
        self.set = cert_set
        self.site_key = site_key
        self.settings = settings
        self.active = active
        self.now = _utc(now)
        self.findings: list[Finding] = []
        self.anchor = x509.load_der_x509_certificate(cert_set.anchor_der)
        self.presented = list(dict.fromkeys(cert_set.chain))  # unique, in chain.pem order
        self.key = self._read_key()
        pool = [c for c in self.presented if c != self.anchor]
        self.leaf = self._pick_leaf(pool)
        self.path, self.reached = self._build_path(pool)
        self.extras = [c for c in self.presented if c not in self.path and c != self.anchor]

    def add(self, id: str, severity: str, message: str, cert: x509.Certificate | None = None):
        depth = self.depth(cert) if cert is not None else None
        self.findings.append(Finding(id, severity, message, depth,
                                     cert.subject.rfc4514_string() if cert is not None else ""))

    def depth(self, cert: x509.Certificate) -> int | None:
        if cert in self.path:
            return self.path.index(cert)
        if cert == self.anchor:
            return len(self.path)
        return None

    # --- material ---------------------------------------------------------------------------

    def _read_key(self):
        path = self.set.key_path
        try:
            data = path.read_bytes()
            mode = os.stat(path).st_mode & 0o777
        except OSError as exc:
            self.add("key.unreadable", ERROR, f"cannot read {path.name}: {exc.strerror}; the TLS "
                     "listener needs it")
            return None
        if mode & 0o077:
            self.add("key.permissions", WARNING, f"{path.name} is readable by other users "
                     f"(mode {mode:04o}): run chmod 600 {path}")
        try:
            return serialization.load_pem_private_key(data, None,
                                                      unsafe_skip_rsa_key_validation=True)
        except TypeError:
            self.add("key.encrypted", ERROR, f"{path.name} is encrypted: the TLS listener cannot "
                     "use it unattended; import the set again with its passphrase (engage-console "
                     "certs import) to store the key decrypted with mode 0600")
        except (ValueError, UnsupportedAlgorithm) as exc:
            self.add("key.unreadable", ERROR, f"{path.name} is not a PEM private key ({exc}): "
                     "put the server certificate's key there")
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

    # --- checks -----------------------------------------------------------------------------

    def run(self) -> Report:
        for check in (self.check_identity, self.check_size, self.check_keys, self.check_key_match,
                      self.check_order, self.check_links, self.check_ca_flags,
                      self.check_validity, self.check_hosts, self.check_path,
                      self.check_anchor_change):
            check()
        self.findings.sort(key=lambda f: _SEVERITY_ORDER[f.severity])
        return self.report()

    def check_identity(self):
        self.add("hash", INFO, f"locks receive hash {self.site_key.hash(self.set.anchor_der)} "
                 "(HMAC-SHA1 of the anchor's DER with the site key)", self.anchor)
        self.add("anchor.fingerprint", INFO, f"anchor {short_name(self.anchor)}, SHA-256 "
                 f"{fingerprint(self.set.anchor_der)}", self.anchor)

    def chain_bytes(self) -> int:
        """Every certificate as chain.pem presents it (repeats too: TLS sends each copy),
        plus the anchor when it is not among them."""
        sent = list(self.set.chain)
        return sum(len(der(c)) for c in sent + ([] if self.anchor in sent else [self.anchor]))

    def check_size(self):
        total, limit = self.chain_bytes(), CHAIN_LIMIT_BYTES
        if total > limit:
            self.add("chain.size", ERROR, f"chain is {total:,} bytes of DER (root + intermediates "
                     f"+ server), {total - limit:,} over the locks' {limit:,}-byte limit: NDE and "
                     "MT20W locks fail every TLS call-in; use RSA-2048 keys, shorter names or "
                     "fewer intermediates")
        else:
            self.add("chain.size", INFO, f"chain is {total:,} bytes of DER (root + intermediates "
                     f"+ server), {limit - total:,} under the locks' {limit:,}-byte limit")

    def all_certs(self) -> list[x509.Certificate]:
        return list(dict.fromkeys(self.path + [self.anchor] + self.extras))

    def check_keys(self):
        for cert in self.all_certs():
            key = cert.public_key()
            if isinstance(key, rsa.RSAPublicKey):
                if key.key_size > KEY_LIMIT_BITS:
                    self.add("key.size", ERROR, f"{short_name(cert)} has an RSA {key.key_size}-bit "
                             f"key; the locks accept at most {KEY_LIMIT_BITS} bits: reissue it "
                             "with an RSA-2048 key", cert)
            else:
                self.add("key.type", WARNING, f"{short_name(cert)} has a {key_label(key)} key; "
                         "Allegion documents RSA only, so lock support is unknown: test with one "
                         "lock before rolling it out", cert)

    def check_key_match(self):
        if self.key is None:
            return
        mine = spki(self.key.public_key())
        if mine != spki(self.leaf.public_key()):
            owner = next((c for c in self.all_certs() if spki(c.public_key()) == mine), None)
            self.add("key.mismatch", ERROR, f"{self.set.key_path.name} does not match the server "
                     f"certificate {short_name(self.leaf)}"
                     + (f" (it is the key of {short_name(owner)})" if owner else "")
                     + ": the TLS listener cannot present it; use the key this certificate was "
                     "issued for", self.leaf)

    def check_order(self):
        if not [c for c in self.presented if c != self.anchor]:
            self.add("chain.incomplete", ERROR, f"{self.set.chain_path.name} holds only the "
                     "anchor: put the server certificate first, then its intermediates")
            return
        on_path = [c for c in self.presented if c in self.path]
        expected = sorted(on_path, key=self.path.index)
        if on_path != expected or self.presented[0] != self.leaf:
            shown = ", ".join(short_name(c) for c in self.presented)
            wanted = ", ".join(short_name(c) for c in expected)
            self.add("chain.order", ERROR, f"{self.set.chain_path.name} presents {shown}; TLS "
                     f"needs the server certificate first, each followed by its issuer: {wanted}. "
                     "Reorder the file (it is not fixed silently)")
        for cert in self.presented:
            copies = self.set.chain.count(cert)
            if copies > 1:
                self.add("chain.duplicate", WARNING, f"{short_name(cert)} is {copies} times in "
                         f"{self.set.chain_path.name}; TLS sends every copy, adding "
                         f"{(copies - 1) * len(der(cert)):,} bytes to the chain: remove the "
                         "repeats", cert)
        for cert in self.extras:
            self.add("chain.extra", WARNING, f"{short_name(cert)} in {self.set.chain_path.name} "
                     f"is not on the path from the server certificate to the anchor; it adds "
                     f"{len(der(cert)):,} bytes to the chain: remove it", cert)

    def check_links(self):
        for child, issuer in zip(self.path, self.path[1:]):
            ok = signed_by(child, issuer)
            if ok is False:
                self.add("chain.signature", ERROR, f"the signature on {short_name(child)} does not "
                         f"verify with the key of {short_name(issuer)}: the certificate is "
                         "damaged or was not issued by that CA; get a fresh copy", child)
            elif ok is None:
                self.add("chain.signature", WARNING, f"the signature on {short_name(child)} uses "
                         "an algorithm this check cannot verify", child)
        if self.reached:
            return
        top = self.path[-1]
        if top.issuer == top.subject:
            self.add("chain.untrusted", ERROR, f"the chain ends at {short_name(top)}, which is not "
                     f"this set's anchor {short_name(self.anchor)}: import the CA that issued the "
                     "chain as the anchor", top)
        else:
            self.add("chain.incomplete", ERROR, f"nothing in {self.set.chain_path.name} or the "
                     f"anchor issued {short_name(top)} (issuer {top.issuer.rfc4514_string()}): "
                     "add the missing intermediate certificate", top)

    def check_ca_flags(self):
        if not is_ca(self.anchor):
            self.add("anchor.not_ca", ERROR, f"the anchor {short_name(self.anchor)} is not a CA "
                     "certificate (no basicConstraints CA:TRUE); locks install it as their trust "
                     "anchor, so it must be the CA that issued the chain (partner_CA.der)",
                     self.anchor)
        if self.leaf != self.anchor and is_ca(self.leaf):
            self.add("cert.leaf_ca", ERROR, f"the server certificate {short_name(self.leaf)} is "
                     "marked as a CA (basicConstraints CA:TRUE); TLS clients refuse it as a "
                     "server certificate: reissue it without the CA flag", self.leaf)

    def check_validity(self):
        for cert in dict.fromkeys(self.path + [self.anchor]):
            start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
            role = "the anchor" if cert == self.anchor else short_name(cert)
            if end < self.now:
                self.add("cert.expired", ERROR, f"{role} expired on {end:%Y-%m-%d %H:%M} UTC: "
                         + _renew_hint(cert == self.anchor), cert)
            elif start > self.now:
                self.add("cert.not_yet_valid", ERROR, f"{role} is not valid before "
                         f"{start:%Y-%m-%d %H:%M} UTC: check this machine's clock, or wait", cert)
            elif end - self.now < dt.timedelta(days=EXPIRY_WARNING_DAYS):
                days = (end - self.now).days
                self.add("cert.expiring", WARNING, f"{role} expires in {days} days "
                         f"({end:%Y-%m-%d}): " + _renew_hint(cert == self.anchor), cert)
            if cert != self.anchor and signature_hash(cert) == "sha1":
                self.add("cert.sha1", WARNING, f"{short_name(cert)} is signed with SHA-1, which "
                         "TLS clients increasingly refuse: reissue it with SHA-256", cert)

    def check_hosts(self):
        san = san_of(self.leaf)
        hosts = list(self.settings.host_names or [])
        if san is None:
            self.add("host.no_san", ERROR, f"the server certificate {short_name(self.leaf)} has "
                     "no subjectAltName: TLS clients check the host name against it; reissue it "
                     "with the names locks use" + (f" ({', '.join(hosts)})" if hosts else ""),
                     self.leaf)
            return
        if not hosts:
            self.add("host.unchecked", INFO, f"no host_names setting: the server certificate's "
                     f"names ({san_text(san)}) were not compared with the names locks use")
            return
        missing = [h for h in hosts if not san_covers(san, h)]
        if missing:
            self.add("host.mismatch", ERROR, f"the server certificate does not cover "
                     f"{', '.join(missing)} (its names: {san_text(san)}): locks calling in at "
                     "that name reject it; reissue it with those names (engage-console certs "
                     "renew) or correct the host_names setting", self.leaf)

    def verifier_subjects(self) -> list:
        """Names to validate the path for: configured names the certificate covers, then its
        own SAN entries (a lock may use any of them; ``*.x.y`` as ``engage-check.x.y``)."""
        san = san_of(self.leaf)
        out = []
        for host in self.settings.host_names or []:
            if san_covers(san, host):
                try:
                    out.append(x509.IPAddress(ipaddress.ip_address(host)))
                except ValueError:
                    out.append(x509.DNSName(host))
        for name in san.get_values_for_type(x509.DNSName):
            if name.startswith("*."):
                out.append(x509.DNSName("engage-check" + name[1:]))
            elif "*" not in name:
                out.append(x509.DNSName(name))
        out += [x509.IPAddress(ip) for ip in san.get_values_for_type(x509.IPAddress)]
        return out

    def check_path(self):
        if self.ids() & _EXPLAINS_PATH:
            return
        intermediates = [c for c in self.presented if c != self.leaf]
        for subject in self.verifier_subjects():
            try:
                verifier = (PolicyBuilder().store(Store([self.anchor])).time(self.now)
                            .build_server_verifier(subject))
            except ValueError:
                continue  # a name the verifier cannot take (e.g. with '_'): try the next one
            try:
                verifier.verify(self.leaf, intermediates)
            except (VerificationError, ValueError, TypeError) as exc:
                reason = str(exc).split(" (encountered processing", 1)[0]
                if self.refused_for_sha1(reason):
                    return
                self.add("chain.untrusted", ERROR, f"path validation from the server certificate "
                         f"to the anchor failed for {subject.value}: {reason}", self.leaf)
            return
        names = san_text(san_of(self.leaf))
        self.add("chain.unchecked", WARNING, "path validation to the anchor could not run: the "
                 f"verifier accepts none of the server certificate's names ({names}; names with "
                 "'_' are refused), so the chain is unverified: reissue it with the DNS name or IP "
                 "address locks use (engage-console certs renew NAME --host ...)", self.leaf)

    def refused_for_sha1(self, reason: str) -> bool:
        """Whether the verifier only refused a SHA-1 signature, which cert.sha1 reports."""
        text = reason.lower()
        return ("cert.sha1" in self.ids() and "forbidden signature algorithm" in text
                and "sha1" in text)

    def check_anchor_change(self):
        if self.active is None:
            return
        if self.active.anchor_sha256 == self.set.anchor_sha256:
            if self.active.name != self.set.name:
                self.add("anchor.same", INFO, f"same anchor as the active set {self.active.name}: "
                         "locks need nothing to accept this set", self.anchor)
            return
        self.add("anchor.changes", WARNING, f"activating this set changes the anchor from "
                 f"{short_name(self.active.anchor)} to {short_name(self.anchor)}: every lock keeps "
                 "the old anchor and fails TLS until it fetches the new one (commissioning or a "
                 "manual start from the ENGAGE app), a fleet-wide change; a server certificate "
                 "renewed under the same anchor avoids it", self.anchor)

    def ids(self) -> set[str]:
        return {f.id for f in self.findings}

    # --- report -----------------------------------------------------------------------------

    def report(self) -> Report:
        chain = self.path + ([] if self.reached else [self.anchor])
        infos = [self.info(c, i, "anchor" if c == self.anchor else "server" if i == 0
                           else "intermediate") for i, c in enumerate(chain)]
        infos += [self.info(c, len(chain) + i, "extra") for i, c in enumerate(self.extras)]
        certs = self.all_certs()
        ends = [c.not_valid_after_utc for c in dict.fromkeys(self.path + [self.anchor])]
        return Report(
            set_name=self.set.name, findings=self.findings,
            hash=self.site_key.hash(self.set.anchor_der), anchor_sha256=self.set.anchor_sha256,
            chain_bytes=self.chain_bytes(),
            largest_key_bits=max(key_bits(c.public_key()) for c in certs),
            days_to_expiry=(min(ends) - self.now).days, chain=infos)

    @staticmethod
    def info(cert: x509.Certificate, depth: int, role: str) -> CertInfo:
        data = der(cert)
        return CertInfo(depth=depth, role=role, subject=cert.subject.rfc4514_string(),
                        issuer=cert.issuer.rfc4514_string(), bytes=len(data),
                        not_after=cert.not_valid_after_utc.isoformat(),
                        key=key_label(cert.public_key()), sha256=hashlib.sha256(data).hexdigest(),
                        not_before=cert.not_valid_before_utc.isoformat(),
                        signature=signature_hash(cert))


def _renew_hint(anchor: bool) -> str:
    if anchor:
        return ("a new anchor must reach every lock (a fleet-wide change): plan it before this "
                "date")
    return "renew it (engage-console certs renew NAME, or import a new certificate from its CA)"
