"""The console under traffic: key press to screen update, and memory growth.

The real console app runs on Textual's headless driver over a real host in this process.
1. Injected: a thread records 2,000 request events a second straight into the host's request
   log (more than the listeners can produce on this machine) for 30 s (3 s in quick mode).
2. Real: a load generator sends requests through the HTTP listener as fast as it can.
Meanwhile a key is pressed every 100 ms (cursor up/down in the lock log, now and then End to
follow again). Latency is from the press until the first frame the compositor produces after
the key's action ran (targets: p99 under 150 ms); memory growth is the process's resident size
at the end minus at the start (target under 50 MB).
3. The devices screen over 10,000 records (issue 13): from the key until the fleet is listed
   with its summary line (target under 1 s), and the screen's recomputation of the summary and
   the rows after a call-in (target under 100 ms).
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import threading
import time
from pathlib import Path

from textual import events

from benchmarks.bench_fleet import write_records
from benchmarks.loadgen import Load, LoadGenerator, Request
from benchmarks.run import Row
from console.app import EngageConsole
from console.screens.devices import FIRST_ROWS, MAX_ROWS, DevicesScreen
from console.widgets.lock_log import LockLog
from server.config import load_settings
from server.events import Event
from server.host import Host
from server.sitekey import SiteKey, write_key_file

EVENTS_PER_SECOND = 2000
KEY_INTERVAL = 0.1
LATENCY_TARGET_MS = 150.0
MEMORY_TARGET_MB = 50.0
KEYS = ("up", "up", "down", "up", "down", "end")


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(0.99 * len(ordered))) - 1] if ordered else float("nan")


def _feed(log, stop: threading.Event, counter: list[int]) -> None:
    """Record events at EVENTS_PER_SECOND until stopped, catching up after any stall."""
    started = time.perf_counter()
    sent = 0
    while not stop.is_set():
        due = int((time.perf_counter() - started) * EVENTS_PER_SECOND)
        while sent < due:
            log.record(Event(listener="tls", client=f"10.44.{sent % 200}.{sent % 250}",
                             method="PUT", path="/swordfish/lock/Config", status=200,
                             bytes=120, duration_ms=2.5, serial=f"LOCK{sent % 5000:05d}"))
            sent += 1
        counter[0] = sent
        time.sleep(0.005)


async def _drive(app: EngageConsole, seconds: float) -> tuple[list[float], float, int]:
    """Press keys for ``seconds``; latencies (ms), memory growth (MB), events shown."""
    latencies: list[float] = []
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        log = app.screen.query_one(LockLog)
        frames: list[float] = []
        handled: list[float] = []
        display = app._display

        def timed_display(screen, renderable):
            display(screen, renderable)
            if renderable is not None:
                frames.append(time.perf_counter())

        def timed(action):
            def run(*args):
                action(*args)
                handled.append(time.perf_counter())
            return run

        app._display = timed_display
        log.action_cursor = timed(log.action_cursor)
        log.action_follow = timed(log.action_follow)
        shown = 0
        original_add = log.add_events

        def counting_add(events):
            nonlocal shown
            shown += len(events)
            original_add(events)

        log.add_events = counting_add
        rss_start = _rss_mb()
        deadline = time.perf_counter() + seconds
        presses = 0
        while time.perf_counter() < deadline:
            key = KEYS[presses % len(KEYS)]
            presses += 1
            handled.clear()
            pressed = time.perf_counter()
            app._driver.send_message(events.Key(key, None))  # as a terminal driver delivers it
            limit = time.perf_counter() + 2.0
            while time.perf_counter() < limit:
                if handled and frames and frames[-1] >= handled[0]:
                    break
                await asyncio.sleep(0.001)
            after = [f for f in frames if handled and f >= handled[0]]
            latencies.append(((after[0] if after else time.perf_counter()) - pressed) * 1000)
            frames.clear()
            await asyncio.sleep(KEY_INTERVAL)
        growth = _rss_mb() - rss_start
    return latencies, growth, shown


def drive_under_load(app: EngageConsole, gen: LoadGenerator, load: Load, seconds: float,
                     rate: float | None = None):
    """``_drive`` while ``gen`` sends ``load`` (at ``rate``) for as long; and the load's Result."""
    outcome = {}
    runner = threading.Thread(
        target=lambda: outcome.setdefault("result", gen.run(load, seconds, rate)), daemon=True)
    runner.start()
    latencies, growth, shown = asyncio.run(_drive(app, seconds))
    runner.join()
    return latencies, growth, shown, outcome["result"]


def _host(folder: Path) -> Host:
    key = SiteKey.generate()
    write_key_file(folder / "site.key", key)
    settings = load_settings(env={}, flags={
        "bind": "127.0.0.1", "http_port": 0, "tls_port": 0, "host_names": ["localhost"],
        "certs_dir": str(folder / "certs"), "ca_dir": str(folder / "ca"),
        "logs_dir": str(folder / "logs"), "data_dir": str(folder / "data"),
        "site_key_file": str(folder / "site.key")})
    return Host.from_settings(settings, env={})


def _rows(label: str, latencies: list[float], growth: float, note: str) -> list[Row]:
    p99 = _p99(latencies)
    return [
        Row(f"console {label}: key -> screen p99", p99, "ms", target=f"<= {LATENCY_TARGET_MS:g} ms",
            ok=p99 <= LATENCY_TARGET_MS,
            note=f"{len(latencies)} presses, median {sorted(latencies)[len(latencies) // 2]:.1f} "
                 f"ms; {note}"),
        Row(f"console {label}: memory growth", growth, "MB", target=f"<= {MEMORY_TARGET_MB:g} MB",
            ok=growth <= MEMORY_TARGET_MB),
    ]


def bench_injected(seconds: float) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        host = _host(Path(tmp))
        stop, counter = threading.Event(), [0]
        feeder = threading.Thread(target=_feed, args=(host.log, stop, counter), daemon=True)
        try:
            app = EngageConsole(host, start=False, freeze_gc=True)  # as run_console runs it
            feeder.start()
            started = time.perf_counter()
            latencies, growth, shown = asyncio.run(_drive(app, seconds))
            elapsed = time.perf_counter() - started
        finally:
            stop.set()
            feeder.join()
            host.close()
    return _rows("(2,000 injected events/s)", latencies, growth,
                 f"{counter[0] / elapsed:,.0f} events/s fed, {shown:,} reached the log view")


def bench_real(seconds: float) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        host = _host(Path(tmp))
        try:
            host.start(("http",))
            port = host.listeners["http"].bound_port
            app = EngageConsole(host, start=False, freeze_gc=True)
            with LoadGenerator(processes=1, threads=4) as gen:
                load = Load(port, (Request("/swordfish/lock/certificates/current"),))
                latencies, growth, shown, result = drive_under_load(app, gen, load, seconds)
        finally:
            host.close()
    return _rows("(real requests)", latencies, growth,
                 f"{result.rate:,.0f} requests/s through the HTTP listener, {result.errors} "
                 f"failed, {shown:,} reached the log view")


async def _open_devices(app: EngageConsole, count: int):
    """Seconds from the console's start to its fleet model worked out (it reads every record);
    seconds from the key to the fleet listed; milliseconds from a call-in's record written to
    the summary line redrawn, for seven call-ins: the screen's part (from the change handed to
    it) and the whole (the console hands changes to its screens ten times a second)."""
    started = time.perf_counter()
    async with app.run_test(size=(120, 36)) as pilot:
        await _until(lambda: app.fleet.version >= 0)
        warmed = time.perf_counter() - started
        await pilot.pause()
        started = time.perf_counter()
        # not pilot.press: that waits until the app is idle, after all 1,000 rows are drawn
        app.simulate_key("3")
        screen = await _until(lambda: isinstance(app.screen, DevicesScreen) and (
            app.screen.is_mounted and app.screen.query_one("#devices").row_count >= min(
                count, FIRST_ROWS)) and app.screen)
        opened = time.perf_counter() - started
        await pilot.pause()  # the rest of the rows drawn
        active = app.host.certificates.current().cert_set.anchor_sha256
        noticed: dict[str, float] = {}
        handed = screen.host_changed

        def host_changed(change) -> None:  # when the console hands the change to the screen
            for serial in change.serials:
                noticed.setdefault(serial, time.perf_counter())
            handed(change)

        screen.host_changed = host_changed
        own, whole = [], []
        for n in range(7):  # records 7, 14, ... trust another anchor: each moves to ok
            serial = f"{7 * (n + 1):016X}"
            before = str(screen.query_one("#fleet-summary").render())
            app.host.devices.config_callin({"lckPrmtrs": {"lckSn": serial}}, "10.0.0.1", "tls",
                                           anchor_sha256=active)
            started = time.perf_counter()  # the record is written
            await _until(lambda: str(screen.query_one("#fleet-summary").render()) != before)
            done = time.perf_counter()
            own.append((done - noticed.get(serial, started)) * 1000)  # or the poll found it
            whole.append((done - started) * 1000)
        return warmed, opened, sorted(own), sorted(whole)


async def _until(predicate, seconds: float = 60):
    deadline = time.perf_counter() + seconds
    while not (found := predicate()):
        if time.perf_counter() > deadline:
            raise TimeoutError("the devices screen did not show the fleet")
        await asyncio.sleep(0.002)
    return found


def bench_devices_screen(count: int) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        write_records(Path(tmp) / "data", count)
        host = _host(Path(tmp))
        try:
            warmed, opened, own, whole = asyncio.run(_open_devices(EngageConsole(host, start=False),
                                                               count))
        finally:
            host.close()
    return [
        Row(f"Console start: fleet worked out ({count:,} records)", warmed * 1000, "ms",
            note="in a worker thread, records read from disk; no target"),
        Row(f"Devices screen opens with {count:,} records", opened * 1000, "ms",
            target="<= 1000 ms", ok=opened <= 1.0,
            note=f"first {FIRST_ROWS:,} rows drawn (the rest, to {MAX_ROWS:,}, just after)"),
        Row(f"Devices screen: summary and rows after a call-in ({count:,})", own[3], "ms",
            target="<= 100 ms", ok=own[3] <= 100,
            note=f"median of 7, slowest {own[-1]:.0f} ms; from the record written (10 hand-overs "
                 f"a second): median {whole[3]:.0f} ms, slowest {whole[-1]:.0f} ms"),
    ]


def run(quick: bool) -> list[Row]:
    seconds = 3.0 if quick else 30.0
    fleets = (10_000,) if quick else (10_000, 100_000)
    return bench_injected(seconds) + bench_real(seconds) + [
        row for count in fleets for row in bench_devices_screen(count)]
