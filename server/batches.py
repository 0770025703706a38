"""Batches of lock client certificates, as Sectigo IoT Manager issues them: from an upload of
CSRs (a comma-separated list of PEM CSRs with Unix line endings) or from a NUMERIC common-name
generator (``startValue``, ``increment``), signed by the site's client CA (``certs client-ca
init``; its key in ``ca/client/``, mode 0600). A batch is one JSON record in
``certs/.batches/<id>.json`` (mode 0600: a generated batch holds its keys), written atomically
once every certificate is issued, so a batch that fails half-way leaves nothing behind."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import secrets
import zipfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from . import pki
from .atomic import write_atomic
from .devices.identities import common_name, export_text, fingerprint
from .devices.identity import check_identity
from .errors import CertificateError

CLIENT_CA = "client"  # the client CA's folder under ca_dir
BATCHES = ".batches"  # under certs_dir; a dot keeps it from being taken for a set
START_VALUE = re.compile(r"^(0|[1-9][0-9]{0,63})$")  # Sectigo's validators
INCREMENT = re.compile(r"^[1-9][0-9]*$")
PROFILES = ("rsa2048", "p256")
READY = "Ready for Download"
CLIENT_DAYS = 10 * 365
CA_DAYS = 20 * 365


class BatchError(CertificateError):
    """A batch cannot be made as asked; ``problems`` lists each reason (one per CSR)."""

    def __init__(self, message: str, problems: list[str] | None = None):
        self.problems = problems or []
        super().__init__(message + "".join(f"\n  {p}" for p in self.problems))


def _ca_folder(ca_dir) -> Path:
    return Path(ca_dir) / CLIENT_CA


def init_client_ca(ca_dir, common_name_: str = "ENGAGE Lock Client CA") -> x509.Certificate:
    """The site's client CA (RSA-2048), written once: its key mode 0600, apart from the sets.
    The certificate is what ``client_ca_file`` names."""
    folder = _ca_folder(ca_dir)
    if (folder / "ca.key").exists():
        raise BatchError(f"{folder} already holds a client CA: the locks' certificates chain "
                         "to it; move it away only if no lock uses them")
    root = pki.issue_root(common_name_, days=CA_DAYS)
    write_atomic(folder / "ca.pem", pki.cert_pem(root.cert))
    write_atomic(folder / "ca.key", pki.key_pem(root.key), mode=0o600)
    return root.cert


def client_ca_file(ca_dir) -> Path:
    return _ca_folder(ca_dir) / "ca.pem"


def _load_ca(ca_dir) -> pki.Issued:
    folder = _ca_folder(ca_dir)
    try:
        return pki.Issued(x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes()),
                          serialization.load_pem_private_key((folder / "ca.key").read_bytes(),
                                                             None))
    except FileNotFoundError:
        raise BatchError(f"no client CA in {folder}: run engage-console certs client-ca init") \
            from None
    except (OSError, ValueError, TypeError) as exc:
        raise BatchError(f"cannot read the client CA in {folder}: {exc}") from None


def _key_problem(key) -> str | None:
    """Why a lock could not use this key (RSA up to 2048 bits, or P-256), or None."""
    if isinstance(key, rsa.RSAPublicKey):
        return None if 1024 <= key.key_size <= 2048 else \
            f"an RSA key of {key.key_size} bits (locks take RSA up to 2048 bits, or P-256)"
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return None
    return f"a {type(key).__name__} key (locks take RSA up to 2048 bits, or P-256)"


def parse_csr_file(text: str, settings) -> list[tuple[str, object]]:
    """(CN, public key) of every CSR in Sectigo's upload form; BatchError naming each bad one
    (by its place in the list) with its reason."""
    if "\r" in text:
        raise BatchError("the CSR file has Windows (CRLF) line endings; Sectigo's upload form "
                         "is Unix line endings: convert it (e.g. dos2unix) and try again")
    parts = [p.strip() for p in text.split(",")]
    out, problems, seen = [], [], {}
    for n, part in enumerate(parts, 1):
        try:
            csr = x509.load_pem_x509_csr(part.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            problems.append(f"CSR {n}: not a PEM certificate request")
            continue
        cn = common_name(csr).upper()
        problem = ("its signature does not verify" if not csr.is_signature_valid
                   else _key_problem(csr.public_key())
                   or (check_identity(cn, settings) if cn else "it has no common name (CN)")
                   or (f"CN {cn} repeats CSR {seen[cn]}" if cn in seen else None))
        if problem:
            problems.append(f"CSR {n}: {problem}")
            continue
        seen[cn] = n
        out.append((cn, csr.public_key()))
    if problems:
        raise BatchError(f"{len(problems)} bad CSR(s) of {len(parts)}; no batch made", problems)
    return out


def numeric_identities(start: str, increment: str, size: int, settings) -> list[str]:
    """Common names of Sectigo's NUMERIC generator: start, start + increment, ..."""
    if not START_VALUE.match(str(start)):
        raise BatchError(f"start value {start!r} fails ^(0|[1-9][0-9]{{0,63}})$ (a whole number, "
                         "no leading zeros, up to 64 digits)")
    if not INCREMENT.match(str(increment)):
        raise BatchError(f"increment {increment!r} fails ^[1-9][0-9]*$ (a whole number from 1)")
    _check_size(size, settings)
    names = [str(int(start) + i * int(increment)) for i in range(size)]
    bad = next(((n, why) for n in names if (why := check_identity(n, settings))), None)
    if bad:
        raise BatchError(f"generated common name {bad[0]} does not fit the identity format: "
                         f"{bad[1]}")
    return names


def _check_size(size: int, settings) -> None:
    limit = settings.max_batch_size
    if not 1 <= size <= limit:
        raise BatchError(f"batch size {size}: allowed 1 to {limit} (max_batch_size)")


def _new_key(profile: str):
    if profile == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    return pki.new_key(2048)


def _issue(ca: pki.Issued, cn: str, public_key, now: dt.datetime) -> x509.Certificate:
    return (x509.CertificateBuilder().subject_name(pki._name(cn)).issuer_name(ca.cert.subject)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CLIENT_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca.key.public_key()), False)
            .sign(ca.key, hashes.SHA256()))


def create_batch(settings, *, csrs: list[tuple[str, object]] | None = None,
                 names: list[str] | None = None, profile: str = "p256",
                 generator: dict | None = None) -> dict:
    """Issue a batch (for CSRs, or for generated names with new keys) and write its record."""
    ca = _load_ca(settings.path("ca_dir"))
    now = dt.datetime.now(dt.timezone.utc)
    if csrs is not None:
        _check_size(len(csrs), settings)
        pairs, profile = [(cn, public_key, None) for cn, public_key in csrs], "csr"
    elif profile not in PROFILES:
        raise BatchError(f"profile {profile!r}: allowed {', '.join(PROFILES)}")
    else:
        pairs = [(cn, key.public_key(), key) for cn in names for key in [_new_key(profile)]]
    items = []
    for cn, public_key, key in pairs:
        cert = _issue(ca, cn, public_key, now)
        item = {"cn": cn, "cert": pki.cert_pem(cert).decode("ascii"),
                "fingerprint": fingerprint(pki.cert_der(cert))}
        if key is not None:
            item["key"] = pki.key_pem(key).decode("ascii")
        items.append(item)
    record = {"id": 0, "created": now.isoformat(timespec="seconds"), "profile": profile,
              "size": len(items), "status": READY,
              "source": "csr" if csrs is not None else "generator",
              "generator": generator or {}, "listed": False, "items": items}
    _store_new(settings.path("certs_dir") / BATCHES, record)
    return record


def _store_new(folder: Path, record: dict) -> None:
    """Write ``record`` under the next free batch id. The whole record is written to a
    temporary file first and then hard-linked to ``<id>.json``, which fails when another
    process took that id meanwhile: two batches made at once never share an id, and a
    half-written record is never listed."""
    batch_id = max((int(p.stem) for p in _records(folder)), default=0)
    while True:
        batch_id += 1
        record["id"] = batch_id
        tmp = folder / f".new-{secrets.token_hex(6)}.tmp"
        write_atomic(tmp, json.dumps(record, indent=1), mode=0o600)
        try:
            os.link(tmp, folder / f"{batch_id}.json")
            return
        except FileExistsError:
            continue
        finally:
            tmp.unlink()


def _records(folder: Path) -> list[Path]:
    return sorted((p for p in folder.glob("*.json") if p.stem.isdigit()),
                  key=lambda p: int(p.stem)) if folder.is_dir() else []


def summary(record: dict) -> dict:
    """What ``batch list`` and ``show`` say: never a key."""
    return {k: v for k, v in record.items() if k != "items"}


def list_batches(settings) -> list[dict]:
    return [summary(load_batch(settings, int(p.stem)))
            for p in _records(settings.path("certs_dir") / BATCHES)]


def load_batch(settings, batch_id: int) -> dict:
    path = settings.path("certs_dir") / BATCHES / f"{int(batch_id)}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BatchError(f"no batch {batch_id} (engage-console certs batch list)") from None
    except (OSError, ValueError) as exc:
        raise BatchError(f"batch record {path} cannot be read: {exc}") from None


def zip_bytes(settings, record: dict) -> bytes:
    """The download: a certificate per identity, the keys of a generated batch (mode 0600
    inside the zip too) and the client CA certificate."""
    ca_pem = client_ca_file(settings.path("ca_dir")).read_bytes()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        def add(name: str, data: str | bytes, mode: int) -> None:
            info = zipfile.ZipInfo(f"batch-{record['id']}/{name}", (1980, 1, 1, 0, 0, 0))
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
        add("client-ca.pem", ca_pem, 0o644)
        for item in record["items"]:
            add(f"certs/{item['cn']}.pem", item["cert"], 0o644)
            if "key" in item:
                add(f"keys/{item['cn']}.key", item["key"], 0o600)
    return out.getvalue()


def identities_csv(record: dict) -> str:
    """The batch as West's ``identities.csv``: each identity pinned to its certificate."""
    return export_text([{"serial": i["cn"], "pinned_cert": {"pem": i["cert"]}}
                        for i in record["items"]])


def mark_listed(settings, record: dict) -> None:
    record["listed"] = True
    path = settings.path("certs_dir") / BATCHES / f"{record['id']}.json"
    write_atomic(path, json.dumps(record, indent=1), mode=0o600)
