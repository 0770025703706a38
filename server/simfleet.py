"""What a simulated fleet does around a rotation (issue 13), for ``simulate``, tests and demos:
each lock connecting from its own loopback address (or all from one, as behind NAT), the
anchors the locks installed kept between runs in a fleet file, and the share of locks that
re-fetch the anchor at start (the rest keep the one they hold, and fail with unknown CA against
a chain to another anchor, as a lock does), or at random moments during the run (a migration's
fleet, issue 16: :class:`Refetches`); and :func:`run_fleet`, which runs simulated locks on a
schedule and sums up the outcome (:class:`FleetSummary`)."""

from __future__ import annotations

import base64
import heapq
import http.client
import ipaddress
import json
import random
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import write_atomic
from .errors import ConfigError
from .lockclient import MODELS, LockError, SimulatedLock

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


# --- running a fleet ----------------------------------------------------------------------------

@dataclass
class FleetSummary:
    locks: int
    duration: float
    ok: int = 0
    failed: Counter = field(default_factory=Counter)
    chains: Counter = field(default_factory=Counter)  # anchor SHA-256 -> handshakes that passed
    latencies: list = field(default_factory=list)
    results: list = field(default_factory=list, repr=False)

    @property
    def total(self) -> int:
        return self.ok + sum(self.failed.values())

    def percentile(self, p: float) -> float:
        """Latency percentile in seconds (0 with no call-ins)."""
        if not self.latencies:
            return 0.0
        if len(self.latencies) == 1:
            return self.latencies[0]
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[int(p) - 1]

    @property
    def rate(self) -> float:
        return self.total / self.duration if self.duration else 0.0

    def to_dict(self) -> dict:
        return {"locks": self.locks, "duration_s": round(self.duration, 3),
                "call_ins": self.total, "ok": self.ok, "failed": dict(self.failed),
                "per_second": round(self.rate, 1),
                "p50_ms": round(self.percentile(50) * 1000, 1),
                "p99_ms": round(self.percentile(99) * 1000, 1)}

    def text(self) -> str:
        d = self.to_dict()
        lines = [f"{d['call_ins']} call-ins from {d['locks']} locks in {d['duration_s']} s "
                 f"({d['per_second']}/s): {d['ok']} ok, {d['call_ins'] - d['ok']} failed",
                 f"latency p50 {d['p50_ms']} ms, p99 {d['p99_ms']} ms"]
        lines += [f"  failed: {reason}: {n}" for reason, n in self.failed.most_common()]
        return "\n".join(lines)


def make_fleet(count: int, host: str, http_port: int, tls_port: int, hmac_key: bytes,
               seed: int | None = None, prefix: str = "") -> list[SimulatedLock]:
    """``count`` locks with distinct 16-hex-digit serials (after ``prefix``)."""
    rng = random.Random(seed)
    base = rng.getrandbits(40) << 20
    return [SimulatedLock(f"{prefix}{base + i:016X}", host, http_port, tls_port, hmac_key,
                          model=rng.choice(MODELS), rng=random.Random(rng.getrandbits(64)))
            for i in range(count)]


def run_fleet(locks: list[SimulatedLock], interval: float, duration: float,
              workers: int = 16, alert_probability: float = 0.05,
              stop: threading.Event | None = None) -> FleetSummary:
    """Each lock calls in at a random moment of the first ``interval`` (of the whole run when
    ``duration`` is shorter, so that every lock calls in) and every ``interval`` after that
    (``0``: back to back, as fast as ``workers`` threads go) until ``duration`` seconds have
    passed: no call-in starts after that, those already started finish."""
    stop = stop or threading.Event()
    started = time.monotonic()
    deadline = started + duration
    spread = random.Random(len(locks))
    first = min(interval, duration)
    due = [(started + spread.uniform(0, first) if first else started, i)
           for i in range(len(locks))]
    heapq.heapify(due)
    guard = threading.Condition()
    summary = FleetSummary(locks=len(locks), duration=0.0)

    def worker() -> None:
        while True:
            with guard:
                while True:
                    if stop.is_set() or not due:
                        return
                    when, i = due[0]
                    now = time.monotonic()
                    if when >= deadline or now >= deadline:
                        return
                    if when <= now:
                        heapq.heappop(due)
                        break
                    guard.wait(min(when - now, deadline - now))
            lock = locks[i]
            result = lock.call_in(alert=lock.rng.random() < alert_probability)
            with guard:
                summary.results.append(result)
                summary.latencies.append(result.latency)
                if result.anchor:
                    summary.chains[result.anchor] += 1
                if result.ok:
                    summary.ok += 1
                else:
                    summary.failed[result.reason] += 1
                heapq.heappush(due, (max(when + interval, time.monotonic()) if interval
                                     else time.monotonic(), i))
                guard.notify()

    threads = [threading.Thread(target=worker, name=f"lock-sim-{n}", daemon=True)
               for n in range(max(1, min(workers, len(locks))))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    summary.duration = time.monotonic() - started
    return summary
