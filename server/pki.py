"""A small private PKI for a site: root CA, intermediate CA and server certificates.

What ``certs init`` and the first-run demo create. Everything is RSA-2048 with SHA-256 (the
locks refuse keys over 2048 bits) and short names, so root + intermediate + server stay near
2.4 KB of DER, well under the locks' 4096-byte chain limit.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .atomic import write_atomic
from .certstore import check_set_name, write_set
from .errors import CertificateError

KEY_BITS = 2048
ROOT_DAYS = 20 * 365
INTERMEDIATE_DAYS = 10 * 365
SERVER_DAYS = 2 * 365
MAX_COMMON_NAME = 64  # what X.509 allows in a common name


@dataclass
class Issued:
    cert: x509.Certificate
    key: rsa.RSAPrivateKey


def new_key(bits: int = KEY_BITS) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def cert_der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _builder(subject: str, issuer: x509.Name, public_key, days: int,
             now: dt.datetime | None = None) -> x509.CertificateBuilder:
    now = now or dt.datetime.now(dt.timezone.utc)
    return (x509.CertificateBuilder()
            .subject_name(_name(subject))
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                         crl_sign=True, encipher_only=False, decipher_only=False)


def issue_root(common_name: str, key=None, days: int = ROOT_DAYS) -> Issued:
    key = key or new_key()
    cert = (_builder(common_name, _name(common_name), key.public_key(), days)
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(_ca_usage(), critical=True)
            .sign(key, hashes.SHA256()))
    return Issued(cert, key)


def _aki(issuer: Issued) -> x509.AuthorityKeyIdentifier:
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key())


def issue_intermediate(root: Issued, common_name: str, key=None,
                       days: int = INTERMEDIATE_DAYS) -> Issued:
    key = key or new_key()
    cert = (_builder(common_name, root.cert.subject, key.public_key(), days)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_ca_usage(), critical=True)
            .add_extension(_aki(root), critical=False)
            .sign(root.key, hashes.SHA256()))
    return Issued(cert, key)


def san_entry(host: str) -> x509.GeneralName:
    """An IP address, or a DNS name (non-ASCII names IDNA-encoded, as certificates need)."""
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        return x509.DNSName(host.encode("idna").decode("ascii"))
    except (UnicodeError, ValueError) as exc:
        raise CertificateError(f"host name {host!r} cannot go in a certificate: {exc}") from None


def san_entries(hosts: list[str]) -> list[x509.GeneralName]:
    """DNS names and IP addresses for a server certificate's subjectAltName."""
    return [san_entry(h) for h in dict.fromkeys(h.strip() for h in hosts if h.strip())]


def issue_server(issuer: Issued, hosts: list[str], key=None, days: int = SERVER_DAYS) -> Issued:
    if not hosts:
        raise ValueError("a server certificate needs at least one host name or address")
    key = key or new_key()
    usage = x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                          data_encipherment=False, key_agreement=False, key_cert_sign=False,
                          crl_sign=False, encipher_only=False, decipher_only=False)
    common_name = hosts[0][:MAX_COMMON_NAME]  # informational: locks check the SAN entries
    cert = (_builder(common_name, issuer.cert.subject, key.public_key(), days)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(san_entries(hosts)), critical=False)
            .add_extension(_aki(issuer), critical=False)
            .sign(issuer.key, hashes.SHA256()))
    return Issued(cert, key)


def default_hosts(bind: str = "0.0.0.0") -> list[str]:
    """Names a lock on the site may use for this host when none are configured."""
    hosts = [socket.gethostname(), "localhost", "127.0.0.1"]
    try:
        hosts.append(socket.gethostbyname(socket.gethostname()))
    except (OSError, UnicodeError):  # a machine name DNS cannot encode raises UnicodeError
        pass
    if bind not in ("0.0.0.0", "::", ""):
        hosts.insert(0, bind)
    return [h for h in dict.fromkeys(hosts) if _usable(h)]


def _usable(host: str) -> bool:
    try:
        san_entry(host)
        return True
    except CertificateError:
        return False


def init_set(store, ca_dir, name: str, hosts: list[str], demo: bool = False) -> None:
    """Create root, intermediate and server certificate as set ``name``. The CA keys go to
    ``ca_dir/<name>/`` (mode 0600), apart from the set the host serves; CA keys already
    there (an earlier set of that name, which renewed sets may still need) are never
    overwritten."""
    check_set_name(name)
    ca = Path(ca_dir) / name
    if ca.exists():
        raise CertificateError(
            f"{ca} already holds the CA keys of a set named {name} (sets renewed from it need "
            f"them): choose another name, or move {ca} away if nothing needs that CA any more")
    label = "ENGAGE DEMO" if demo else "ENGAGE"
    root = issue_root(f"{label} Root {name}"[:64])
    inter = issue_intermediate(root, f"{label} Intermediate {name}"[:64])
    server = issue_server(inter, hosts)
    write_set(store.set_path(name), cert_der(root.cert),
              cert_pem(server.cert) + cert_pem(inter.cert), key_pem(server.key),
              {"demo": demo, "hosts": hosts, "source": "certs init", "legacy_name": "partner_CA"})
    for stem, issued in (("root", root), ("intermediate", inter)):
        write_atomic(ca / f"{stem}.pem", cert_pem(issued.cert))
        write_atomic(ca / f"{stem}.key", key_pem(issued.key), mode=0o600)


def renew_set(store, ca_dir, name: str, new_name: str | None = None,
              hosts: list[str] | None = None, days: int = SERVER_DAYS,
              today: dt.date | None = None):
    """A new server certificate (new key) under the intermediate that issued set ``name``,
    written as a new set with the same anchor, so locks need nothing and activation and
    rollback work as for any set. Needs the CA keys ``certs init`` left in ``ca_dir``.
    ``hosts`` defaults to the names of the current server certificate."""
    old = store.load(name)
    ca_name = str(old.meta.get("ca", name))
    ca = Path(ca_dir) / ca_name
    try:
        inter = Issued(x509.load_pem_x509_certificate((ca / "intermediate.pem").read_bytes()),
                       serialization.load_pem_private_key((ca / "intermediate.key").read_bytes(),
                                                          None))
    except FileNotFoundError:
        raise CertificateError(
            f"no CA keys for set {name} in {ca}: renew works for sets made by `certs init`; for "
            "an imported set, get a new server certificate from its CA and import it") from None
    except (OSError, ValueError, TypeError) as exc:
        raise CertificateError(f"cannot read the intermediate CA in {ca}: {exc}") from None
    if inter.cert not in old.chain:
        raise CertificateError(f"the intermediate in {ca} is not in set {name}'s chain: "
                               "renew only under the CA that issued the set")
    if not hosts:
        leaf = next((c for c in old.chain if c.issuer == inter.cert.subject), old.chain[0])
        try:
            san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            hosts = [str(v) for v in san.get_values_for_type(x509.DNSName)] + \
                [str(v) for v in san.get_values_for_type(x509.IPAddress)]
        except x509.ExtensionNotFound:
            hosts = list(old.meta.get("hosts") or [])
    if not hosts:
        raise CertificateError(f"set {name}'s server certificate names no host: give the host "
                               "names or addresses locks use")
    new_name = check_set_name(new_name) if new_name else renewed_name(store, ca_name, today)
    server = issue_server(inter, hosts, days=days)
    meta = {**old.meta, "source": "certs renew", "renewed_from": name, "ca": ca_name,
            "hosts": hosts, "renewed_at": dt.datetime.now(dt.timezone.utc)
            .isoformat(timespec="seconds")}
    write_set(store.set_path(new_name), old.anchor_der,
              cert_pem(server.cert) + cert_pem(inter.cert), key_pem(server.key), meta)
    return store.load(new_name)


def renewed_name(store, base: str, today: dt.date | None = None) -> str:
    """``<base>-renewed-YYYYMMDD``, then ``-2``, ``-3``... for the first free name."""
    stamp = f"-renewed-{(today or dt.date.today()):%Y%m%d}"
    base = base[:64 - len(stamp) - 4]
    taken = set(store.names())
    name, n = base + stamp, 2
    while name in taken:
        name, n = f"{base}{stamp}-{n}", n + 1
    return check_set_name(name)
