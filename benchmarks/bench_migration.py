"""Host CPU per TLS call-in during an anchor migration (issue 16) against outside one, same
run: ``engage-console --headless`` in its own process, simulated locks (each from its own
loopback address, as the migration's choice of chain is per address) in client processes
calling in back to back. Outside: every lock holds the active anchor. During: half of them
fetched the new anchor (they get its chain), the others keep the old one. Phases alternate
(outside, during, outside, during) so drift on a shared machine hits both.
Target: during within 10 % of outside (ratio <= 1.10)."""

from __future__ import annotations

import contextlib
import multiprocessing
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchmarks.bench_delivery import (LOOPBACK, free_ports, prepare_site, process_cpu_seconds,
                                       start_ours)
from benchmarks.run import Row
from server import pki
from server.certcheck.rules import gate
from server.devices.store import Devices
from server.migration import service
from server.simfleet import delivered_anchor, make_fleet, run_fleet

PROCESSES, THREADS, LOCKS_PER_PROCESS = 2, 4, 50
TARGET_RATIO = 1.10
NEW_SET = "bench-new"


def _fleet(index: int, http_port: int, tls_port: int, hmac_key: bytes):
    """Client process ``index``'s locks, each from its own address 127.0.<index>.<n>."""
    locks = make_fleet(LOCKS_PER_PROCESS, LOOPBACK, http_port, tls_port, hmac_key, seed=index)
    for n, lock in enumerate(locks):
        lock.source = f"127.0.{index}.{n + 2}"
    return locks


def _clients(index: int, http_port: int, tls_port: int, hmac_key: bytes, seconds: float,
             anchors: list[bytes]) -> dict:
    locks = _fleet(index, http_port, tls_port, hmac_key)
    for lock, anchor in zip(locks, anchors):
        lock.anchor = anchor
    summary = run_fleet(locks, interval=0, duration=seconds, workers=THREADS,
                        alert_probability=0.0)
    return {"ok": summary.ok, "failed": dict(summary.failed), "chains": dict(summary.chains)}


def _phase(pool, host_pid: int, ports, key, seconds: float, fleets) -> tuple[float, int, Counter]:
    """(host CPU seconds, call-ins ok, failures and chains) of one phase."""
    before = process_cpu_seconds(host_pid)
    parts = pool.starmap(_clients, [(i, *ports, key.hmac_key(), seconds,
                                     [lock.anchor for lock in locks])
                                    for i, locks in fleets.items()])
    after = process_cpu_seconds(host_pid)
    seen = Counter()
    for p in parts:
        seen.update({f"failed: {k}": v for k, v in p["failed"].items()})
        seen.update({f"chain {k[:8]}": v for k, v in p["chains"].items()})
    return (after - before if before is not None and after is not None else 0.0,
            sum(p["ok"] for p in parts), seen)


def _until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("the host did not follow the migration within 10 s")
        time.sleep(0.05)


def measure(seconds: float) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-migration-") as tmp, \
            contextlib.ExitStack() as stack:
        folder = Path(tmp)
        key, certificates = prepare_site(folder)
        certificates.gate = gate(key, certificates.settings)
        pki.init_set(certificates.store, folder / "ca", NEW_SET, ["localhost", LOOPBACK])
        new = certificates.store.load(NEW_SET).anchor_sha256
        ports = free_ports(2)
        host_pid = start_ours(stack, folder, *ports).pids["tls"]
        fleets = {i: _fleet(i, *ports, key.hmac_key()) for i in range(1, PROCESSES + 1)}
        for lock in (lock for locks in fleets.values() for lock in locks):
            if not lock.call_in().ok:  # commissioned: records exist, the old anchor installed
                raise RuntimeError(f"warm-up call-in of {lock.serial} failed")
        old_anchors = {i: [lock.anchor for lock in locks] for i, locks in fleets.items()}
        totals = {"outside": [0.0, 0, Counter()], "during": [0.0, 0, Counter()]}
        with multiprocessing.get_context("spawn").Pool(PROCESSES) as pool:
            _phase(pool, host_pid, ports, key, 0.5, fleets)  # clients started, not counted
            for _ in range(2):
                for i, locks in fleets.items():
                    for lock, anchor in zip(locks, old_anchors[i]):
                        lock.anchor = anchor
                for name in ("outside", "during"):
                    if name == "during":
                        service.start(certificates, NEW_SET, by="benchmark")
                        _until(lambda: delivered_anchor(LOOPBACK, ports[0]) == new)
                        for locks in fleets.values():
                            for lock in locks[::2]:
                                lock.fetch_anchor()  # the new anchor, from its own address
                    cpu, ok, seen = _phase(pool, host_pid, ports, key, seconds, fleets)
                    totals[name][0] += cpu
                    totals[name][1] += ok
                    totals[name][2].update(seen)
                service.abort(certificates, Devices(folder / "Engage_Data"), by="benchmark")
                _until(lambda: delivered_anchor(LOOPBACK, ports[0]) != new)
    per = {name: cpu / ok * 1000 if ok else 0.0 for name, (cpu, ok, _) in totals.items()}
    ratio = per["during"] / per["outside"] if per["outside"] else 0.0
    failed = sum(v for name in totals for k, v in totals[name][2].items() if k.startswith("fail"))
    note = (f"{totals['outside'][1]} call-ins outside, {totals['during'][1]} during "
            f"({', '.join(f'{k} {v}' for k, v in sorted(totals['during'][2].items()))}); "
            f"{PROCESSES * LOCKS_PER_PROCESS} locks, each its own address")
    return [Row("host CPU per TLS call-in during a migration", per["during"], "ms",
                baseline=per["outside"], target=f"ratio <= {TARGET_RATIO:.2f}",
                ok=bool(per["outside"]) and ratio <= TARGET_RATIO and not failed, note=note)]


def run(quick: bool) -> list[Row]:
    return measure(2.0 if quick else 8.0)
