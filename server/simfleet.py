"""What a simulated fleet does around a rotation (issue 13), for ``simulate``, tests and demos:
each lock connecting from its own loopback address (or all from one, as behind NAT), the
anchors the locks installed kept between runs in a fleet file, and the share of locks that
re-fetch the anchor at start (the rest keep the one they hold, and fail with unknown CA against
a chain to another anchor, as a lock does), or at random moments during the run (a migration's
fleet, issue 16: :class:`Refetches`)."""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import random
import threading
import time
from collections import Counter
from pathlib import Path

from .atomic import write_atomic
from .errors import ConfigError
from .lockclient import LockError, SimulatedLock

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


def delivered_anchor(host: str, port: int, timeout: float = 10.0) -> str:
    """SHA-256 of the anchor ``/current`` delivers now, read from its content-addressed
    ``cert_url`` (nothing is downloaded, so no lock's address is seen fetching it); ""
    when the answer does not say."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/swordfish/lock/certificates/current")
        url = json.loads(conn.getresponse().read()).get("cert_url", "")
    except (OSError, ValueError, http.client.HTTPException, AttributeError):
        return ""
    finally:
        conn.close()
    name = url.rsplit("/", 1)[-1]
    return name[:-4] if name.endswith(".der") else ""


def by_chain(chains: Counter, new: str) -> dict[str, int]:
    """Handshakes by chain: ``new`` the anchor ``/current`` delivered, ``old`` any other."""
    return {"new": chains.get(new, 0), "old": sum(n for a, n in chains.items() if a != new)}


class Refetches:
    """``fraction`` of the locks (chosen by ``seed``) each fetch the anchor again at a random
    moment of the first ``within`` seconds of the run, on a thread, as when someone starts them
    from the ENGAGE app: the serials chosen, and the failed fetches by reason."""

    def __init__(self, locks: list[SimulatedLock], fraction: float, within: float,
                 seed: int | None = None):
        if not 0 <= fraction <= 1:
            raise ConfigError("--refetch-during must be between 0 and 1")
        rng = random.Random(seed)
        chosen = rng.sample(locks, round(fraction * len(locks)))
        self.plan = sorted((rng.uniform(0, within), lock.serial, lock) for lock in chosen)
        self.serials = sorted(lock.serial for lock in chosen)
        self.failed: Counter = Counter()
        self.done: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lock-sim-refetch", daemon=True)

    def start(self) -> "Refetches":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        begin = time.monotonic()
        for at, serial, lock in self.plan:
            if self._stop.wait(max(0.0, begin + at - time.monotonic())):
                return
            try:
                with lock.busy:  # never in the middle of its call-in
                    lock.fetch_anchor()
                self.done.append(serial)
            except LockError as exc:
                self.failed[f"re-fetch: {exc.reason}"] += 1
