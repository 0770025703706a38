"""Lock call-ins over TLS: call-ins per second and p99 latency, each call-in a new TLS
connection (full handshake) carrying PUT Config, GET db and POST audit, sent by simulated locks
(``server/lockclient.py``) in client processes against ``engage-console --headless`` in its own
process. Target: at least 150 call-ins/s on a 2-core machine (90,000 locks every 10 minutes).

The note also gives the host's CPU per call-in: a second view of the run, less tied than the
rate to how the two cores are shared with the simulated locks (it still moves with the machine:
3.6 to 4.0 ms on 2026-12-01; 5 to 8 ms the same day with the selector-and-workers server).

Also the device list: ``Devices.summaries()`` over 10,000 records, each with an audit log,
after a call-in (from the index), with the first listing (from disk, reading every log's last
line), a cold listing as ``devices list`` does it in a new process (from disk, audit counts from
the counts file) and the re-synchronisation after another process wrote a record.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.bench_delivery import (LOOPBACK, free_ports, prepare_site, process_cpu_seconds,
                                       start_ours)
from benchmarks.run import Row
from server.config import Settings
from server.devices.store import Devices
from server.lockclient import SimulatedLock
from server.simfleet import make_fleet, run_fleet

TARGET_PER_SECOND = 150.0
TARGET_LIST_MS = 50.0
PROCESSES, THREADS = 2, 4  # 8 call-ins in flight
LOCKS_PER_PROCESS = 200
RECORDS = 10_000
AUDITS_PER_LOCK = 50


def _clients(seed: int, http_port: int, tls_port: int, hmac_key: bytes, seconds: float,
             anchor: bytes) -> dict:
    """One client process: a fleet calling in back to back for ``seconds``."""
    fleet = make_fleet(LOCKS_PER_PROCESS, LOOPBACK, http_port, tls_port, hmac_key, seed=seed)
    for lock in fleet:
        lock.anchor = anchor  # installed earlier by certificate delivery
    summary = run_fleet(fleet, interval=0, duration=seconds, workers=THREADS,
                        alert_probability=0.0)
    return {"ok": summary.ok, "failed": dict(summary.failed), "seconds": summary.duration,
            "latencies": [r.latency for r in summary.results if r.ok]}


def measure_callins(seconds: float) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-callins-") as tmp, \
            contextlib.ExitStack() as stack:
        folder = Path(tmp)
        key, _ = prepare_site(folder)
        http_port, tls_port = free_ports(2)
        host_pid = start_ours(stack, folder, http_port, tls_port).pids["tls"]
        probe = make_fleet(1, LOOPBACK, http_port, tls_port, key.hmac_key(), seed=0)[0]
        anchor = probe.fetch_anchor()
        warm = probe.call_in()
        if not warm.ok:
            raise RuntimeError(f"warm-up call-in failed: {warm.error}")
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(PROCESSES) as pool:
            cpu_before = process_cpu_seconds(host_pid)
            parts = pool.starmap(_clients, [(seed, http_port, tls_port, key.hmac_key(), seconds,
                                             anchor) for seed in range(1, PROCESSES + 1)])
            cpu_after = process_cpu_seconds(host_pid)
        records = len(list((folder / "Engage_Data").glob("*.json")))
    ok = sum(p["ok"] for p in parts)
    failed: dict[str, int] = {}
    for p in parts:
        for reason, n in p["failed"].items():
            failed[reason] = failed.get(reason, 0) + n
    rate = sum(p["ok"] / p["seconds"] for p in parts)
    latencies = [x for p in parts for x in p["latencies"]]
    p99 = statistics.quantiles(latencies, n=100)[98] * 1000 if len(latencies) > 1 else 0.0
    p50 = statistics.median(latencies) * 1000 if latencies else 0.0
    cpu = "?" if cpu_before is None or cpu_after is None or not ok \
        else f"{(cpu_after - cpu_before) / ok * 1000:.2f} ms"
    note = (f"ratio {rate / TARGET_PER_SECOND:.2f} of the target; p50 {p50:.1f} ms, "
            f"p99 {p99:.1f} ms; host CPU per call-in {cpu}; "
            f"{ok} call-ins from {PROCESSES * LOCKS_PER_PROCESS} locks "
            f"({records} records), {PROCESSES}x{THREADS} in flight"
            + (f"; failed: {json.dumps(failed)}" if failed else ""))
    return [Row(benchmark="call-ins TLS (new connection each)", figure=rate, unit="call-ins/s",
                target=f">= {TARGET_PER_SECOND:.0f}/s",
                ok=rate >= TARGET_PER_SECOND and not failed, note=note),
            Row(benchmark="call-in latency p99 (same run)", figure=p99, unit="ms")]


def write_records(folder: Path) -> None:
    """RECORDS records, each with the last Config body a simulated lock sends and an audit log
    of AUDITS_PER_LOCK events."""
    config = SimulatedLock("0", LOOPBACK, 0, 0, b"k").config_body()
    log = "".join(json.dumps({"received": "2026-01-01T00:00:00+00:00", "seq": k + 1,
                              "event": {"event": 11111111, "time": 20260101000000,
                                        "auditId": k + 1}}) + "\n"
                  for k in range(AUDITS_PER_LOCK))
    for i in range(RECORDS):
        serial = f"{i:016X}"
        (folder / f"{serial}.json").write_text(json.dumps(
            {"serial": serial, "model": "NDE", "last_seen": "2026-01-01T00:00:00+00:00",
             "address": "10.0.0.1", "firmware": config["fwVer"], "battery": config["battV"],
             "last_config": config}))
        (folder / f"{serial}.audit.jsonl").write_text(log)


def timed_listing(devices: Devices, expected: int, audits: bool = False) -> float:
    """Milliseconds of a listing: the summaries (the console's and the host's), with the audit
    counts too when ``audits`` (what `devices list` prints)."""
    started = time.perf_counter()
    summaries = devices.summaries()
    assert len(summaries) == expected
    if audits:
        assert devices.audit_counts()[summaries[0].serial] == AUDITS_PER_LOCK
    return (time.perf_counter() - started) * 1000


def measure_listing() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-devices-") as tmp:
        settings = Settings()
        write_records(Path(tmp))
        devices = Devices(Path(tmp), settings)
        devices.index.rescan_seconds = 0
        first = timed_listing(devices, RECORDS, audits=True)  # no counts file: every log's end
        devices.index.saver.flush()  # the next process comes later
        cold = timed_listing(Devices(Path(tmp), settings), RECORDS, audits=True)  # devices list
        devices.config_callin({"lckPrmtrs": {"lckSn": "FFFF0000FFFF0000", "mdl": "LE"}})
        again = timed_listing(devices, RECORDS + 1)
        other = Devices(Path(tmp), settings)  # another process's write
        other.config_callin({"lckPrmtrs": {"lckSn": "FFFF0000FFFF0001", "mdl": "LE"}})
        resync = timed_listing(devices, RECORDS + 2)
    return [Row(benchmark=f"device list, {RECORDS:,} records", figure=again, unit="ms",
                target=f"<= {TARGET_LIST_MS:.0f} ms", ok=again <= TARGET_LIST_MS,
                note=f"after a call-in (from the index); after another process wrote a record "
                     f"{resync:.0f} ms (stats every file); first listing from disk {first:.0f} "
                     f"ms (reads the end of every audit log)"),
            Row(benchmark=f"device list cold (new process), {RECORDS:,} records", figure=cold,
                unit="ms", note=f"each with {AUDITS_PER_LOCK} audits; summaries from the "
                                "summaries file, audit counts from the counts file (a stat "
                                "of each record and log, none read)")]


def run(quick: bool) -> list[Row]:
    return [*measure_callins(3.0 if quick else 15.0), *measure_listing()]


if __name__ == "__main__":
    from benchmarks.run import format_table

    print(format_table(run(quick=True)))
