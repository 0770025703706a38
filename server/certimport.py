"""Import what integrators actually have into a normalised certificate set.

Accepted: the ENGAGE procedure's loose files (``partner_CA.der``, ``partner_intermediate.der``,
``partner_server.pem``, ``partner_server.key``), PEM bundles in any order, DER certificates and
keys, PKCS#12 files and encrypted keys (with a passphrase). The server certificate is the one
the key belongs to; the key of a CA that issued another of the certificates is passed over
(alone, refused); the chain is built upward from it by issuer; the anchor is the top CA found (the
root, or the intermediate when that is all the integrator has), unless chosen explicitly. The
set is written in one step (``certstore.write_set``): any error writes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from .certcheck.x509util import is_ca, issuer_label, issuer_path, issues, short_name, spki
from .certstore import CertSet, CertStore, check_set_name, write_set
from .errors import CertificateError
from .pki import cert_der, cert_pem, key_pem

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.S)
_CERT_LABELS = {b"CERTIFICATE", b"X509 CERTIFICATE", b"TRUSTED CERTIFICATE"}
_KEY_LABELS = {b"PRIVATE KEY", b"RSA PRIVATE KEY", b"EC PRIVATE KEY", b"DSA PRIVATE KEY",
               b"ENCRYPTED PRIVATE KEY"}


class PassphraseRequired(CertificateError):
    """A key or PKCS#12 file is encrypted and no passphrase was given (``tried`` False) or
    none of those given fits (``tried`` True)."""

    def __init__(self, path: Path, tried: bool = False):
        self.path = path
        self.tried = tried
        super().__init__(f"wrong passphrase for {path.name}" if tried
                         else f"{path.name} is encrypted: give its passphrase")


@dataclass
class _Material:
    certs: dict[x509.Certificate, list[Path]] = field(default_factory=dict)  # cert -> sources
    keys: list[tuple[object, Path]] = field(default_factory=list)

    def add_cert(self, cert: x509.Certificate, path: Path) -> None:
        self.certs.setdefault(cert, []).append(path)

    def add_key(self, key, path: Path) -> None:
        if all(spki(key.public_key()) != spki(k.public_key()) for k, _ in self.keys):
            self.keys.append((key, path))


def import_set(store: CertStore, name: str, paths: Iterable, passphrase=None,
               anchor: str | None = None, accept=None) -> CertSet:
    """Normalise ``paths`` into the new set ``name`` and return it.

    ``passphrase``: one text, or several to try (e.g. a key passphrase and a PKCS#12
    password). ``anchor``: a file name or stem, subject or common name, or SHA-256 prefix of
    the CA certificate the locks should trust; default the top CA on the server's path.
    ``accept(cert_set)`` is shown the set before it is moved into place (e.g. to refuse one
    whose report has errors): an exception it raises writes nothing. Raises
    PassphraseRequired for an encrypted file without a fitting passphrase, and
    CertificateError for anything else; either way nothing is written."""
    check_set_name(name)
    if store.set_path(name).exists():
        raise CertificateError(f"set {name} already exists: choose another name")
    paths = [Path(p) for p in paths]
    if not paths:
        raise CertificateError("no files to import: name the certificate and key files")
    passphrases = [passphrase] if isinstance(passphrase, (str, bytes)) else \
        [p for p in (passphrase or []) if p]
    material = _Material()
    for path in paths:
        _read_file(path, [p.encode() if isinstance(p, str) else p for p in passphrases], material)
    leaf, key, key_path = _server_pair(material)
    path = issuer_path(leaf, list(material.certs))
    chosen = _choose_anchor(path, material, anchor)
    chain = path[:path.index(chosen)]
    dropped = [c for c in material.certs if c not in chain and c != chosen]
    sources = material.certs[chosen]
    alone = [p for p in sources if sum(p in s for s in material.certs.values()) == 1]
    meta = {
        "source": "import",
        "imported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "files": [p.name for p in paths],
        "legacy_name": (alone or sources)[0].stem,
        "key_from": key_path.name,
        "dropped": [c.subject.rfc4514_string() for c in dropped],
    }
    write_set(store.set_path(name), cert_der(chosen), b"".join(cert_pem(c) for c in chain),
              key_pem(key), meta, accept)
    return store.load(name)


# --- reading files ----------------------------------------------------------------------------

def _read_file(path: Path, passphrases: list[bytes], material: _Material) -> None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CertificateError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise CertificateError(f"{path} is a folder: name the files inside it") from None
    except OSError as exc:
        raise CertificateError(f"cannot read {path}: {exc.strerror}") from None
    if not data.strip():
        raise CertificateError(f"{path.name} is empty")
    if b"-----BEGIN" in data:
        _read_pem(path, data, passphrases, material)
    elif _looks_like_pkcs12(data):
        _read_pkcs12(path, data, passphrases, material)
    else:
        _read_der(path, data, passphrases, material)


def _read_pem(path: Path, data: bytes, passphrases: list[bytes], material: _Material) -> None:
    blocks = list(_PEM_BLOCK.finditer(data))
    _check_outside_blocks(path, data, blocks)
    for n, block in enumerate(blocks, 1):
        label, text = block.group(1), block.group(0)
        if label in _CERT_LABELS:
            try:
                material.add_cert(x509.load_pem_x509_certificate(
                    text.replace(b"TRUSTED CERTIFICATE", b"CERTIFICATE")
                    .replace(b"X509 CERTIFICATE", b"CERTIFICATE")), path)
            except ValueError as exc:
                raise CertificateError(f"{path.name}: certificate {n} is damaged ({exc})") from None
        elif label in _KEY_LABELS:
            material.add_key(_load_key(path, text, passphrases,
                                       serialization.load_pem_private_key), path)
        else:
            raise CertificateError(f"{path.name} holds a {label.decode()}, which is neither a "
                                   "certificate nor a private key")


def _check_outside_blocks(path: Path, data: bytes, blocks: list) -> None:
    """Nothing may be lost around the PEM blocks: every BEGIN and END line belongs to a
    complete block, nothing follows the last one, and what precedes a block is text (the
    explanatory text RFC 7468 allows, e.g. openssl's "Bag Attributes"), not binary data."""
    begins, ends = data.count(b"-----BEGIN"), data.count(b"-----END")
    if not blocks or begins != len(blocks) or ends != len(blocks):
        raise CertificateError(
            f"{path.name} has a damaged PEM block ({begins} BEGIN and {ends} END lines but "
            f"{len(blocks)} complete block(s)): it is truncated or edited; get a fresh copy")
    if data[blocks[-1].end():].strip():
        raise CertificateError(f"{path.name} has data after its last PEM block: it is damaged "
                               "or something was appended to it; get a fresh copy")
    before = [data[start:b.start()] for start, b in zip([0] + [b.end() for b in blocks], blocks)]
    if not all(_is_text(text) for text in before):
        raise CertificateError(
            f"{path.name} holds binary data outside its PEM blocks (a DER file appended to a PEM "
            "file?): give each DER file separately, or get a fresh copy")


def _is_text(data: bytes) -> bool:
    try:
        return all(c.isprintable() or c in "\t\r\n\ufeff" for c in data.decode("utf-8"))
    except UnicodeDecodeError:
        return False


def _read_der(path: Path, data: bytes, passphrases: list[bytes], material: _Material) -> None:
    try:
        material.add_cert(x509.load_der_x509_certificate(data), path)
        return
    except ValueError:
        pass
    try:
        key = _load_key(path, data, passphrases, serialization.load_der_private_key)
    except PassphraseRequired:
        raise
    except CertificateError:
        raise CertificateError(f"{path.name} is not a certificate, private key or PKCS#12 file "
                               "(PEM or DER)") from None
    material.add_key(key, path)


def _load_key(path: Path, data: bytes, passphrases: list[bytes], loader):
    try:
        return loader(data, None)
    except TypeError:
        pass  # encrypted
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CertificateError(f"{path.name}: the private key cannot be read ({exc})") from None
    if not passphrases:
        raise PassphraseRequired(path)
    for passphrase in passphrases:
        try:
            return loader(data, passphrase)
        except (TypeError, ValueError):
            continue
    raise PassphraseRequired(path, tried=True)


def _looks_like_pkcs12(data: bytes) -> bool:
    """A PFX is a DER SEQUENCE whose first element is INTEGER 3 (its version)."""
    if len(data) < 8 or data[0] != 0x30:
        return False
    start = 2 + (data[1] & 0x7F if data[1] & 0x80 else 0)
    return data[start:start + 3] == b"\x02\x01\x03"


def _read_pkcs12(path: Path, data: bytes, passphrases: list[bytes], material: _Material) -> None:
    for passphrase in [None, b""] + passphrases:
        try:
            key, cert, extra = pkcs12.load_key_and_certificates(data, passphrase)
            break
        except (ValueError, TypeError):
            continue
    else:
        raise PassphraseRequired(path, tried=bool(passphrases))
    for c in ([cert] if cert else []) + list(extra or []):
        material.add_cert(c, path)
    if key is not None:
        material.add_key(key, path)


# --- building the set -------------------------------------------------------------------------

def _server_pair(material: _Material):
    if not material.certs:
        raise CertificateError("no certificate among the files: add the server certificate "
                               "(partner_server.pem) and its CA (partner_CA.der)")
    if not material.keys:
        raise CertificateError("no private key among the files: add the server key "
                               "(partner_server.key)")
    pairs = [(cert, key, path) for key, path in material.keys for cert in material.certs
             if spki(cert.public_key()) == spki(key.public_key())]
    if not pairs:
        names = ", ".join(short_name(c) for c in material.certs)
        keys = ", ".join(p.name for _, p in material.keys)
        raise CertificateError(f"the private key in {keys} matches none of the certificates "
                               f"({names}): use the key the server certificate was issued for")
    # The key of a CA that issued another certificate here is never the server's key.
    issued = {c: [o for o in material.certs if issues(c, o)] for c, _, _ in pairs if is_ca(c)}
    servers = [p for p in pairs if not issued.get(p[0])]
    if not servers:
        cert, _, path = pairs[0]
        raise CertificateError(f"the private key in {path.name} belongs to {short_name(cert)}, a "
                               f"CA certificate (it issued {short_name(issued[cert][0])}), not to "
                               "the server certificate: add the server certificate's key "
                               "(partner_server.key)")
    leaves = list(dict.fromkeys(c for c, _, _ in servers))
    if len(leaves) > 1:
        raise CertificateError("keys for several certificates ("
                               + ", ".join(short_name(c) for c in leaves)
                               + "): import one server certificate and its key at a time")
    return servers[0]


def _choose_anchor(path, material: _Material, anchor: str | None) -> x509.Certificate:
    leaf, issuers = path[0], path[1:]
    if not issuers:
        given = [c for c in material.certs if c != leaf and is_ca(c)]
        if given:
            names = ", ".join(f"{short_name(c)} ({', '.join(p.name for p in material.certs[c])})"
                              for c in given)
            raise CertificateError(f"none of the CA certificates given ({names}) issued "
                                   f"{short_name(leaf)}: its issuer {issuer_label(leaf)} is "
                                   "missing; add that certificate (an intermediate, e.g. "
                                   "partner_intermediate.der)")
        raise CertificateError(f"no CA certificate among the files issued {short_name(leaf)} "
                               f"(issuer {issuer_label(leaf)}): add the CA certificate "
                               "(partner_CA.der) the locks should trust")
    if anchor is None:
        return issuers[-1]
    wanted = anchor.strip()
    for cert in issuers:
        names = {short_name(cert), cert.subject.rfc4514_string()}
        for source in material.certs[cert]:
            names |= {source.name, source.stem}
        if wanted in names or (len(wanted) >= 8 and
                               _sha256(cert).startswith(wanted.lower().replace(":", ""))):
            return cert
    choices = "; ".join(f"{short_name(c)} ({', '.join(p.name for p in material.certs[c])})"
                        for c in issuers)
    raise CertificateError(f"anchor {anchor!r} is none of the CA certificates above the server "
                           f"certificate: choose one of {choices}")


def _sha256(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert_der(cert)).hexdigest()
