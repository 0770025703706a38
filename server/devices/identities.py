"""West Connectivity's ``identities.csv``: the header ``ID,TLS Client Certificate,Tags``, a PEM
client certificate (optional) that pins the lock, and Tags as a JSON array of
``{"name": ..., "value": ...}`` objects, CSV-quoted. Checks for one row, and the export."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

HEADER = ("ID", "TLS Client Certificate", "Tags")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_TAG = 100


def is_header(cells: list[str]) -> bool:
    return tuple(c.strip() for c in cells) == HEADER


def fingerprint(der: bytes) -> str:
    """The SHA-256 of a certificate's DER bytes, in hex: what pins a lock's certificate."""
    return hashlib.sha256(der).hexdigest()


def common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def pin_of(pem: str, serial: str) -> dict:
    """The pin a row's certificate gives its lock; ValueError saying why it cannot."""
    try:
        cert = x509.load_pem_x509_certificate(pem.strip().encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise ValueError("the TLS Client Certificate is not a PEM certificate") from None
    cn = common_name(cert)
    if cn.upper() != serial:
        raise ValueError(f"the certificate's CN {cn!r} is not the ID {serial}")
    der = cert.public_bytes(Encoding.DER)
    return {"fingerprint": fingerprint(der), "subject": cert.subject.rfc4514_string(),
            "pem": cert.public_bytes(Encoding.PEM).decode("ascii")}


def parse_tags(text: str) -> list[dict]:
    """Tags as West writes them; ValueError saying what is wrong."""
    if not text.strip():
        return []
    try:
        tags = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"Tags is not JSON ({exc})") from None
    if not isinstance(tags, list):
        raise ValueError('Tags is not a JSON array of {"name": ..., "value": ...} objects')
    for n, tag in enumerate(tags, 1):
        if not (isinstance(tag, dict) and set(tag) == {"name", "value"}
                and all(isinstance(v, str) for v in tag.values())):
            raise ValueError(f'tag {n} is not an object of exactly "name" and "value" (text)')
        if any(len(v) > MAX_TAG or _CONTROL.search(v) for v in tag.values()):
            raise ValueError(f"tag {n} is longer than {MAX_TAG} characters or holds a line "
                             "break or other control character")
    return tags


def export_text(records: list[dict]) -> str:
    """``identities.csv`` for these records: a lock's pinned certificate and its tags (a tag
    from the ``serial,name,tags`` form becomes ``{"name": tag, "value": ""}``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    for record in records:
        tags = [t if isinstance(t, dict) else {"name": str(t), "value": ""}
                for t in record.get("tags") or []]
        pin = record.get("pinned_cert") or {}
        writer.writerow([record["serial"], pin.get("pem", ""), json.dumps(tags) if tags else ""])
    return out.getvalue()
