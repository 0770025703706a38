"""Describing certificates and keys, and finding issuers: the helpers every rule family uses,
and the import code that orders a chain before it is stored."""

from __future__ import annotations

import hashlib
import ipaddress

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def short_name(cert: x509.Certificate) -> str:
    """The common name, else the whole subject: how a certificate is named in a sentence."""
    cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else cert.subject.rfc4514_string() or "(empty subject)"


def issuer_label(cert: x509.Certificate) -> str:
    """The issuer ``cert`` names: its DN and, when ``cert`` carries it, the issuer's key
    identifier (what tells two CAs of the same name apart)."""
    try:
        kid = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value \
            .key_identifier
    except x509.ExtensionNotFound:
        kid = None
    name = cert.issuer.rfc4514_string()
    return f"{name} (key identifier {kid.hex(':').upper()})" if kid else name


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
