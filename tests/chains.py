"""Certificate chains for tests, built at run time with fixed serial numbers (so sizes are
exact) from a pool of keys generated once per session (RSA generation is slow)."""

from __future__ import annotations

import datetime as dt
import itertools
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from server.certstore import load_set
from server.pki import cert_der, cert_pem, key_pem, new_key, san_entries

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
PAD_OID = x509.ObjectIdentifier("1.3.6.1.4.1.55555.1")
SHA256_RSA, SHA1_RSA = bytes.fromhex("2a864886f70d01010b"), bytes.fromhex("2a864886f70d010105")
HOSTS = ("localhost", "127.0.0.1")

_keys: dict = {}
_names = itertools.count()


def key(slot: str, bits: int = 2048):
    """The same key for the same (slot, bits) for the whole session."""
    if (slot, bits) not in _keys:
        _keys[slot, bits] = new_key(bits) if bits else ec.generate_private_key(ec.SECP256R1())
    return _keys[slot, bits]


def make_cert(cn: str, public_key, issuer_cn: str, issuer_key, *, ca: bool, serial: int,
              path_length: int | None = None, days: tuple[float, float] = (-1, 365),
              hosts=HOSTS, pad: int = 0, aki: bool = True,
              leaf_usage: bool = False) -> x509.Certificate:
    """One certificate; ``leaf_usage`` adds a server certificate's key usage, EKU and SAN."""
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
         .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]))
         .public_key(public_key).serial_number(serial)
         .not_valid_before(NOW + dt.timedelta(days=days[0]))
         .not_valid_after(NOW + dt.timedelta(days=days[1]))
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))
    b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None),
                        critical=True)
    if ca or leaf_usage:
        b = b.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=leaf_usage,
            data_encipherment=False, key_agreement=False, key_cert_sign=not leaf_usage,
            crl_sign=not leaf_usage,
            encipher_only=False, decipher_only=False), critical=True)
    if leaf_usage:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
    if hosts is not None and leaf_usage:
        b = b.add_extension(x509.SubjectAlternativeName(san_entries(list(hosts))), False)
    if aki and issuer_cn != cn:
        b = b.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False)
    if pad:
        b = b.add_extension(x509.UnrecognizedExtension(PAD_OID, b"p" * pad), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


@dataclass
class Chain:
    """root -> intermediates... -> server, plus the server key file's key."""
    certs: list[x509.Certificate]          # server first, root last
    server_key: object
    anchor: x509.Certificate | None = None  # default: the root
    presented: list[x509.Certificate] | None = None  # default: all but the root
    extra: dict = field(default_factory=dict)

    @property
    def server(self) -> x509.Certificate:
        return self.certs[0]

    @property
    def root(self) -> x509.Certificate:
        return self.certs[-1]

    def der_bytes(self) -> int:
        """What the locks count: every presented certificate (repeats too) and the anchor."""
        shown = self.presented if self.presented is not None else self.certs[:-1]
        anchor = self.anchor or self.root
        return sum(len(cert_der(c)) for c in shown + ([] if anchor in shown else [anchor]))


def build(bits=(2048, 2048, 2048), intermediates: int = 1, pad: int = 0, **server) -> Chain:
    """A chain with one root (bits[-1]), ``intermediates`` CAs and a server certificate
    (bits[0]); ``server`` keywords go to make_cert for the server certificate."""
    bits = list(bits)
    while len(bits) < intermediates + 2:
        bits.insert(1, 2048)
    keys = [key(f"depth{d}", b) for d, b in enumerate(bits)]
    depth = len(keys) - 1
    names = ["server"] + [f"Inter {i}" for i in range(intermediates, 0, -1)] + ["Root"]
    certs = [make_cert(names[depth], keys[depth].public_key(), names[depth], keys[depth],
                       ca=True, serial=100 + depth)]
    for d in range(depth - 1, 0, -1):
        certs.insert(0, make_cert(names[d], keys[d].public_key(), names[d + 1], keys[d + 1],
                                  ca=True, serial=100 + d))
    ca = server.pop("ca", False)
    certs.insert(0, make_cert("server", keys[0].public_key(), names[1], keys[1], ca=ca,
                              serial=100, pad=pad, leaf_usage=True, **server))
    return Chain(certs, keys[0])


def sized(target: int) -> Chain:
    """A chain of exactly ``target`` DER bytes (root + intermediate + server), padded in the
    server certificate."""
    pad = 0
    for _ in range(12):
        chain = build(pad=pad)
        diff = target - chain.der_bytes()
        if diff == 0:
            return chain
        pad = max(0, pad + diff)
    for p in range(max(0, pad - 4), pad + 5):
        chain = build(pad=p)
        if chain.der_bytes() == target:
            return chain
    raise AssertionError(f"cannot build a chain of exactly {target} bytes")


def flip_signature(cert: x509.Certificate) -> x509.Certificate:
    data = bytearray(cert_der(cert))
    data[-1] ^= 0x01
    return x509.load_der_x509_certificate(bytes(data))


def sha1_signed(cert: x509.Certificate, issuer_key) -> x509.Certificate:
    """The same certificate signed with SHA-1 (cryptography no longer builds those)."""
    data = cert_der(cert)
    assert data.count(SHA256_RSA) == 2
    patched = x509.load_der_x509_certificate(data.replace(SHA256_RSA, SHA1_RSA))
    signature = issuer_key.sign(patched.tbs_certificate_bytes, padding.PKCS1v15(), hashes.SHA1())
    out = cert_der(patched)
    return x509.load_der_x509_certificate(out[:-len(signature)] + signature)


def write(root: Path, chain: Chain, name: str | None = None, key_bytes: bytes | None = None,
          key_mode: int = 0o600):
    """Write ``chain`` as a set folder under ``root`` and load it."""
    folder = Path(root) / (name or f"set{next(_names)}")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shown = chain.presented if chain.presented is not None else chain.certs[:-1]
    (folder / "anchor.der").write_bytes(cert_der(chain.anchor or chain.root))
    (folder / "chain.pem").write_bytes(b"".join(cert_pem(c) for c in shown))
    (folder / "server.key").write_bytes(key_bytes if key_bytes is not None
                                        else key_pem(chain.server_key))
    (folder / "server.key").chmod(key_mode)
    return load_set(folder)


def pem_key(k, passphrase: bytes | None = None, traditional: bool = False) -> bytes:
    fmt = (serialization.PrivateFormat.TraditionalOpenSSL if traditional
           else serialization.PrivateFormat.PKCS8)
    enc = (serialization.BestAvailableEncryption(passphrase) if passphrase
           else serialization.NoEncryption())
    return k.private_bytes(serialization.Encoding.PEM, fmt, enc)


def loose_files(folder: Path, chain: Chain) -> Path:
    """The ENGAGE procedure's files for ``chain`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    server, inter, root = chain.certs
    (folder / "partner_CA.der").write_bytes(cert_der(root))
    (folder / "partner_intermediate.der").write_bytes(cert_der(inter))
    (folder / "partner_server.pem").write_bytes(cert_pem(server))
    (folder / "partner_server.key").write_bytes(pem_key(chain.server_key))
    return folder


def reuse_keys(monkeypatch, size: int = 8) -> None:
    """Make pki hand out keys from a session pool (cycled, so keys within one set differ)
    instead of generating each one: `certs init` costs three RSA generations."""
    from server import pki

    pool = itertools.cycle([key(f"pool{i}") for i in range(size)])
    real = pki.new_key
    monkeypatch.setattr(pki, "new_key", lambda bits=2048: next(pool) if bits == 2048
                        else real(bits))
