"""The site key: 32 secret bytes per site, shared with Allegion, keying the certificate HMAC.

Accepted as 44 characters of standard Base64 or as 64 hex digits. The key is never printed,
logged or shown by ``repr``; key files are written with mode 0600.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

from .atomic import write_atomic
from .errors import SiteKeyError

KEY_BYTES = 32
HMAC_FORMS = ("raw", "ascii")
DEMO_MARKER = "# DEMO site key"
_B64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")
_HEX = re.compile(r"^[0-9A-Fa-f]*$")


class SiteKey:
    """A parsed site key. ``hmac_form`` picks what keys the HMAC: the 32 raw bytes (the
    default, PROTOCOL.md's strong inference) or the ASCII text of its Base64 form (an option
    for integrators whose locks disagree)."""

    __slots__ = ("_raw", "hmac_form", "demo")

    def __init__(self, raw: bytes, hmac_form: str = "raw", demo: bool = False):
        if len(raw) != KEY_BYTES:
            raise SiteKeyError(f"a site key is {KEY_BYTES} bytes, this one is {len(raw)}")
        if hmac_form not in HMAC_FORMS:
            raise SiteKeyError(f"HMAC key form must be one of {', '.join(HMAC_FORMS)}")
        self._raw = raw
        self.hmac_form = hmac_form
        self.demo = demo

    @classmethod
    def parse(cls, text: str, hmac_form: str = "raw", demo: bool = False) -> "SiteKey":
        return cls(parse_key_text(text), hmac_form, demo)

    @classmethod
    def generate(cls) -> "SiteKey":
        return cls(secrets.token_bytes(KEY_BYTES))

    def base64(self) -> str:
        """The form registered with Allegion. Callers show it once, never log it."""
        return base64.b64encode(self._raw).decode("ascii")

    def hmac_key(self) -> bytes:
        return self._raw if self.hmac_form == "raw" else self.base64().encode("ascii")

    def hash(self, der: bytes) -> str:
        """Base64 of HMAC-SHA1 over certificate DER bytes: the ``hash`` a lock checks."""
        digest = hmac.new(self.hmac_key(), der, hashlib.sha1).digest()
        return base64.b64encode(digest).decode("ascii")

    def __repr__(self) -> str:
        return f"<SiteKey {'demo ' if self.demo else ''}(hidden), hmac={self.hmac_form}>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SiteKey) and hmac.compare_digest(self._raw, other._raw)

    __hash__ = None  # type: ignore[assignment]


def parse_key_text(text: str) -> bytes:
    """32 bytes from Base64 (44 characters) or hex (64 digits); say exactly what is wrong."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if not lines:
        raise SiteKeyError("the site key is empty: expected 44 Base64 characters or 64 hex digits")
    if len(lines) > 1:
        raise SiteKeyError("the site key must be on one line")
    value = lines[0].replace(" ", "")
    if len(value) == 64 and _HEX.match(value):
        return bytes.fromhex(value)
    if len(value) == 44:
        if not _B64.match(value):
            raise SiteKeyError(
                "the site key has characters outside the Base64 alphabet (A-Z a-z 0-9 + / =)"
            )
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SiteKeyError(f"the site key is not valid Base64: {exc}") from None
        if len(raw) != KEY_BYTES:
            raise SiteKeyError(f"the site key decodes to {len(raw)} bytes, expected {KEY_BYTES}")
        return raw
    if _HEX.match(value):
        raise SiteKeyError(
            f"the site key has {len(value)} hex digits ({len(value) / 2:g} bytes); "
            f"expected 64 digits for {KEY_BYTES} bytes"
        )
    if _B64.match(value):
        raise SiteKeyError(
            f"the site key has {len(value)} Base64 characters; expected 44 for {KEY_BYTES} bytes"
        )
    raise SiteKeyError(
        f"the site key ({len(value)} characters) is neither 44 Base64 characters nor 64 hex digits"
    )


def read_key_file(path: str | os.PathLike, hmac_form: str = "raw") -> SiteKey:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SiteKeyError(
            f"site key file {path} does not exist; create one with `engage-console sitekey generate`"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SiteKeyError(f"cannot read site key file {path}: {exc}") from None
    try:
        return SiteKey.parse(text, hmac_form, demo=text.lstrip().startswith(DEMO_MARKER))
    except SiteKeyError as exc:
        raise SiteKeyError(f"{path}: {exc}") from None


def write_key_file(path: str | os.PathLike, key: SiteKey, demo: bool = False) -> None:
    """Write the key as Base64 with mode 0600; a demo key carries a comment saying so."""
    header = (
        f"{DEMO_MARKER}, generated by engage-console on first run. It is NOT registered with\n"
        "# Allegion: real locks will reject certificates hashed with it. Replace it with your\n"
        "# site's key, or run `engage-console sitekey generate` for a new site.\n"
        if demo
        else ""
    )
    write_atomic(path, header + key.base64() + "\n", mode=0o600)
