"""Small text formatters shared by the console's screens (times, sizes, fingerprints)."""

from __future__ import annotations

import datetime as dt

from cryptography import x509


def parse_time(iso: str) -> dt.datetime | None:
    try:
        value = dt.datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def relative(iso: str, now: dt.datetime) -> str:
    """'12s ago', '5m ago', '3h ago', '2d ago' or 'never'."""
    when = parse_time(iso) if iso else None
    if when is None:
        return "never" if not iso else iso
    seconds = int((now - when).total_seconds())
    if seconds < 0:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def duration(seconds: float) -> str:
    """'40 s', '12 min', '5 h', '3 d': how long a host has been up."""
    seconds = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def clock_time(iso: str) -> str:
    """The HH:MM:SS part of an ISO time (listeners report UTC), or '-'."""
    when = parse_time(iso) if iso else None
    return when.strftime("%H:%M:%S UTC") if when else "-"


def fingerprint(sha256_hex: str, groups: int = 8) -> str:
    """A short, readable form of a SHA-256 fingerprint: the first bytes, colon separated."""
    if not sha256_hex:
        return "-"
    pairs = [sha256_hex[i:i + 2].upper() for i in range(0, min(len(sha256_hex), groups * 2), 2)]
    return ":".join(pairs) + ("…" if len(sha256_hex) > groups * 2 else "")


def days_to_expiry(certs: list[x509.Certificate], now: dt.datetime) -> int | None:
    """Whole days until the first of these certificates expires."""
    if not certs:
        return None
    first = min(c.not_valid_after_utc for c in certs)
    return (first - now).days


def expiry_words(days: int | None) -> str:
    if days is None:
        return "-"
    if days < 0:
        return f"EXPIRED {-days} d ago"
    return f"{days} d"


def due_in(iso: str, now: dt.datetime) -> str:
    """When an expected time comes: 'in 5m', 'now', '12m late', or '-'."""
    when = parse_time(iso) if iso else None
    if when is None:
        return iso or "-"
    seconds = int((when - now).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if abs(seconds) >= size:
            amount = f"{abs(seconds) // size}{unit}"
            return f"in {amount}" if seconds > 0 else f"{amount} late"
    return "now"
