"""What a simulated fleet does around a rotation (issue 13), for ``simulate``, tests and demos:
each lock connecting from its own loopback address (or all from one, as behind NAT), the
anchors the locks installed kept between runs in a fleet file, and the share of locks that
re-fetch the anchor at start (the rest keep the one they hold, and fail with unknown CA against
a chain to another anchor, as a lock does)."""

from __future__ import annotations

import base64
import ipaddress
import json
import random
from pathlib import Path

from .atomic import write_atomic
from .errors import ConfigError
from .lockclient import SimulatedLock

FIRST_SOURCE = ipaddress.IPv4Address("127.0.0.2")  # Linux routes all of 127.0.0.0/8 locally
LAST_SOURCE = ipaddress.IPv4Address("127.255.255.254")


def on_loopback(host: str) -> bool:
    """Whether ``host`` is an IPv4 loopback address (locks can then each have their own)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.version == 4 and address.is_loopback


def assign_sources(locks: list[SimulatedLock], same: bool = False) -> None:
    """127.0.0.2, 127.0.0.3, ... one per lock; ``same``: all from 127.0.0.2."""
    if len(locks) > int(LAST_SOURCE) - int(FIRST_SOURCE) + 1:
        raise ConfigError("too many locks for one loopback address each: use --same-address")
    for i, lock in enumerate(locks):
        lock.source = str(FIRST_SOURCE if same else FIRST_SOURCE + i)


def load_anchors(path: Path, locks: list[SimulatedLock]) -> None:
    """Install in each lock the anchor the fleet file holds for its serial (none: it
    commissions, fetching the active anchor, at its first call-in)."""
    try:
        held = json.loads(path.read_text()) if path.exists() else {}
        anchors = {serial: base64.b64decode(der) for serial, der in held.items()}
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise ConfigError(f"fleet file {path}: not a fleet file written by simulate ({exc})") \
            from None
    for lock in locks:
        lock.anchor = anchors.get(lock.serial, lock.anchor)


def save_anchors(path: Path, locks: list[SimulatedLock]) -> None:
    held = {lock.serial: base64.b64encode(lock.anchor).decode() for lock in locks if lock.anchor}
    write_atomic(path, (json.dumps(held, indent=1) + "\n").encode())


def refetch(locks: list[SimulatedLock], fraction: float, seed: int | None = None) -> list[str]:
    """Make ``fraction`` of the locks (chosen by ``seed``) drop their anchor so that they fetch
    the active one at their next call-in; the serials chosen."""
    if not 0 <= fraction <= 1:
        raise ConfigError("--refetch-fraction must be between 0 and 1")
    chosen = random.Random(seed).sample(locks, round(fraction * len(locks)))
    for lock in chosen:
        lock.anchor = None
    return sorted(lock.serial for lock in chosen)
