"""Which anchor each lock trusts (issue 13): what the host learns by address, in memory and
bounded, and folds into a lock's record when the lock names itself.

- ``anchor_trusted`` {sha256, at, proof: "tls-handshake"}: the anchor of the set whose chain the
  lock accepted in a TLS handshake on a connection that then named the lock. Proof.
- ``anchor_fetched`` {sha256, at, address, inferred: "from address"}: the anchor last downloaded
  from the lock's address, when a TLS call-in from that address names the lock within
  ``fetch_attribution_seconds`` of the download. Inference: when other locks called in from the
  same address in that time (NAT), it says ``ambiguous`` with their serials and no sha256.
- ``tls_failures`` {count, last: [{at, reason, address}]}: handshake failures from the address
  of the lock's last TLS call-in (one lock there only), ``count`` since its last good call-in.

Times in the maps are monotonic, so a wall-clock jump neither widens nor shuts the window.
``evidence(address)`` is what an anchor migration chooses a connection's chain from
(server/migration/choice.py): the serials seen there, the newest download and the proofs.
"""

from __future__ import annotations

import collections
import datetime as dt
import threading
import time
from dataclasses import dataclass

MAX_ADDRESSES = 100_000   # each map keeps at most this many entries, the oldest dropped first
FAILURES_KEPT = 5         # failures listed in a record
SHARED_NAMED = 10         # other locks behind one address a record names (all are counted)
FAILURE_WRITE_SECONDS = 5.0  # a failing lock's record is written at most this often
PROOF, INFERRED, AMBIGUOUS = "tls-handshake", "from address", "ambiguous"


def _bounded_put(mapping: collections.OrderedDict, key, value) -> None:
    mapping[key] = value
    mapping.move_to_end(key)
    while len(mapping) > MAX_ADDRESSES:
        mapping.popitem(last=False)


@dataclass(frozen=True)
class Evidence:
    """What the host knows of one address: ``fetch`` (sha256, monotonic, the sha256 fetched
    before it or "") of its newest anchor download, ``trusted`` {serial: (sha256, monotonic)}
    of the handshake proofs of the locks seen there."""

    serials: tuple[str, ...]
    fetch: tuple[str, float, str] | None
    trusted: dict


def monotonic_of(at: str, clock=time.monotonic) -> float:
    """The monotonic time of wall-clock ``at`` (ISO 8601), for facts read back from disk;
    -inf when it does not parse."""
    try:
        when = dt.datetime.fromisoformat(at)
        ago = (dt.datetime.now(dt.timezone.utc) - when).total_seconds()
    except (TypeError, ValueError):
        return float("-inf")
    return clock() - ago


class Trust:
    """Anchor downloads, lock serials and handshake failures by client address."""

    def __init__(self, attribution_seconds: float = 3600, clock=time.monotonic):
        self.attribution_seconds = attribution_seconds
        self.clock = clock
        self._fetches: collections.OrderedDict[str, tuple[str, str, float, str]] = \
            collections.OrderedDict()  # address -> (sha256, at, monotonic, sha256 before it)
        self._seen: collections.OrderedDict[str, dict[str, float]] = \
            collections.OrderedDict()  # address -> {serial: monotonic of its last call-in}
        self._address: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._trusted: collections.OrderedDict[str, tuple[str, float]] = \
            collections.OrderedDict()  # serial -> (sha256 its last handshake proved, monotonic)
        self._written: dict[str, float] = {}  # serial -> monotonic of its last failure write
        self._pending: dict[str, list] = {}  # serial -> failures not yet in its record
        self._lock = threading.Lock()

    def fetched(self, address: str, sha256: str, at: str, when: float | None = None) -> bool:
        """The anchor ``sha256`` was downloaded from ``address`` (at monotonic ``when``, default
        now); whether that is another anchor than the address fetched before."""
        with self._lock:
            old = self._fetches.get(address)
            previous = (old[0] if old[0] != sha256 else old[3]) if old else ""
            _bounded_put(self._fetches, address,
                         (sha256, at, self.clock() if when is None else when, previous))
            return old is None or old[0] != sha256

    def seed(self, serial: str, address: str, trusted: str = "", trusted_at: str = "") -> None:
        """What a record on disk says of a lock's address and proven anchor (a host that just
        started)."""
        with self._lock:
            if serial not in self._address and address:
                self._note(serial, address, float("-inf"))
            if trusted and serial not in self._trusted:
                _bounded_put(self._trusted, serial, (trusted, monotonic_of(trusted_at, self.clock)))

    def evidence(self, address: str) -> Evidence:
        with self._lock:
            serials = tuple(self._seen.get(address, ()))
            fetch = self._fetches.get(address)
            trusted = {s: self._trusted[s] for s in serials if s in self._trusted}
        return Evidence(serials, (fetch[0], fetch[2], fetch[3]) if fetch else None, trusted)

    def fold(self, record: dict, serial: str, address: str, anchor_sha256: str | None,
             at: str) -> None:
        """A TLS call-in from ``address`` named ``serial`` after a handshake with the chain of
        anchor ``anchor_sha256``: update ``record`` (the caller writes it)."""
        now = self.clock()
        with self._lock:
            self._note(serial, address, now)
            if anchor_sha256:
                _bounded_put(self._trusted, serial, (anchor_sha256, now))
            self._pending.pop(serial, None)
            fetch = self._fetches.get(address)
            if fetch is not None and now - fetch[2] > self.attribution_seconds:
                fetch = None
            others = [] if fetch is None else [
                s for s, t in self._seen.get(address, {}).items()
                if s != serial and now - t <= self.attribution_seconds]
        note_trusted(record, anchor_sha256, at)
        if fetch is not None:
            fetched = {"sha256": fetch[0], "at": fetch[1], "address": address,
                       "inferred": INFERRED}
            if others:  # behind NAT: hundreds of locks may share it, a record names a few
                fetched = {"sha256": "", "at": fetch[1], "address": address,
                           "inferred": AMBIGUOUS, "shared_with": sorted(others)[:SHARED_NAMED],
                           "shared_count": len(others)}
            record["anchor_fetched"] = fetched
        failures = record.get("tls_failures")
        if isinstance(failures, dict) and failures.get("count"):
            record["tls_failures"] = {**failures, "count": 0}

    def failed(self, address: str, reason: str, at: str) -> tuple[str, list] | None:
        """A handshake from ``address`` failed: (serial, failures to add to its record) for the
        one lock whose last TLS call-in came from there, at most every FAILURE_WRITE_SECONDS
        (failures meanwhile wait for the next write); None for no lock, several, or later."""
        now = self.clock()
        with self._lock:
            serials = list(self._seen.get(address, {}))
            if len(serials) != 1:
                return None
            serial = serials[0]
            pending = self._pending.setdefault(serial, [])
            pending.append({"at": at, "reason": reason, "address": address})
            if now - self._written.get(serial, float("-inf")) < FAILURE_WRITE_SECONDS:
                return None
            self._written[serial] = now
            if len(self._written) > MAX_ADDRESSES:
                self._written.pop(next(iter(self._written)))
            return serial, self._pending.pop(serial)

    def _note(self, serial: str, address: str, when: float) -> None:
        old = self._address.get(serial)
        if old is not None and old != address and old in self._seen:
            self._seen[old].pop(serial, None)  # the lock moved: failures there are not its
            if not self._seen[old]:
                del self._seen[old]
        _bounded_put(self._address, serial, address)
        seen = self._seen.get(address) or {}
        seen[serial] = when
        _bounded_put(self._seen, address, seen)


def note_trusted(record: dict, anchor_sha256: str | None, at: str) -> bool:
    """Record the handshake proof; whether it names another anchor than before."""
    if not anchor_sha256:
        return False
    before = record.get("anchor_trusted")
    record["anchor_trusted"] = {"sha256": anchor_sha256, "at": at, "proof": PROOF}
    return not (isinstance(before, dict) and before.get("sha256") == anchor_sha256)


def add_failures(record: dict, new: list) -> None:
    """Handshake failures ``new`` ({at, reason, address} each) added to ``record``."""
    failures = record.get("tls_failures")
    failures = failures if isinstance(failures, dict) else {}
    last = [f for f in failures.get("last") or [] if isinstance(f, dict)]
    count = failures.get("count") if type(failures.get("count")) is int else 0
    record["tls_failures"] = {"count": count + len(new), "last": (last + new)[-FAILURES_KEPT:]}
