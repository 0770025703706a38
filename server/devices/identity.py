"""The site's device identity format, in West Connectivity's terms: an optional prefix, a type
(decimal, hex, a MAC-address spelling, UUIDv4 or opaque) and an optional length that does not
count the prefix. ``devices import``, the batch issuer and the ``identity_*`` settings use it."""

from __future__ import annotations

import re

from ..errors import ConfigError

HEX = "0123456789ABCDEF"
# Each type: (what a person reads, the pattern of what follows the prefix, after upper-casing).
# MAC spellings: bare (001422012345), colons (00:14:22:01:23:45), dashes (00-14-22-01-23-45).
TYPES = {
    "decimal": ("decimal digits", re.compile(r"[0-9]+")),
    "hex": ("hex digits", re.compile(r"[0-9A-F]+")),
    "mac": ("a MAC address of 12 hex digits", re.compile(r"[0-9A-F]{12}")),
    "mac-colon": ("a MAC address written 00:14:22:01:23:45",
                  re.compile(r"[0-9A-F]{2}(?::[0-9A-F]{2}){5}")),
    "mac-dash": ("a MAC address written 00-14-22-01-23-45",
                 re.compile(r"[0-9A-F]{2}(?:-[0-9A-F]{2}){5}")),
    "uuid4": ("a UUIDv4 (8-4-4-4-12 hex digits, version 4)",
              re.compile(r"[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}")),
    "opaque": ("any identity", re.compile(r".+")),
}
FIXED_LENGTH = ("mac", "mac-colon", "mac-dash", "uuid4")  # the type says the length


def identity_format(settings) -> tuple[str, str, int]:
    """(prefix, type, length) of the settings (the defaults without settings); ConfigError for
    a length given with a type whose length is fixed."""
    if settings is None:
        return "", "hex", 0
    kind, length = settings.identity_type, settings.identity_length
    if length and kind in FIXED_LENGTH:
        raise ConfigError(f"identity_length = {length}: identity_type {kind} has a fixed length; "
                          "set identity_length to 0")
    return settings.identity_prefix.upper(), kind, length


def check_identity(serial: str, settings) -> str | None:
    """Why the (upper-cased) ``serial`` does not fit the identity format, or None."""
    prefix, kind, length = identity_format(settings)
    if not serial.startswith(prefix):
        return f"identity {serial!r} does not start with the prefix {prefix!r}"
    rest = serial[len(prefix):]
    what, pattern = TYPES[kind]
    if not pattern.fullmatch(rest):
        after = f"{prefix!r} followed by " if prefix else ""
        return f"identity {serial!r} is not {after}{what} (identity_type {kind})"
    if length and len(rest) != length:
        return (f"identity {serial!r} has {len(rest)} characters after the prefix, expected "
                f"{length} (identity_length)")
    return None
