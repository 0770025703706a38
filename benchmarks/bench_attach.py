"""The host's CPU per request with a console attached and following the request log (issue
14): a real ``engage-console --headless`` serving plain-HTTP ``/current`` from a load
generator, measured in alternating slices with no follower and with one reading the control
socket's ``follow`` stream, in the same run. Target: attached <= 1.05 x none.
Then the attached console itself (an AttachedConsole over a RemoteHost, on Textual's headless
driver in this process) while the host serves about 2,000 requests/s: key press to screen
update as bench_console measures it. Target: p99 under 150 ms."""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.bench_console import _rows, drive_under_load
from benchmarks.bench_delivery import (CURRENT_PATH, Measured, free_ports, prepare_site,
                                       process_cpu_seconds, start_ours)
from benchmarks.loadgen import Load, LoadGenerator, Request
from benchmarks.run import Row
from console.attached import AttachedConsole
from console.remote import RemoteHost
from server.config import Settings
from server.control.client import ControlClient

SOCKET = Path("run") / "engage-console.sock"
REQUESTS_PER_SECOND = 2000


class Follower:
    """An attached console's stream reader: counts the events it is sent."""

    def __init__(self, path: Path):
        self.client = ControlClient(path)
        newest = self.client.call("status")["log_seq"]  # follow from now: no ring backlog
        self.events = 0
        self.dropped = False
        self._thread = threading.Thread(target=self._read, args=(self.client.follow(newest),),
                                        daemon=True)
        self._thread.start()

    def _read(self, messages) -> None:
        for message in messages:
            self.events += "event" in message
            self.dropped |= "dropped" in message

    def close(self) -> None:
        self.client.close()
        self._thread.join(timeout=5)


def measure_slice(gen: LoadGenerator, load: Load, pid: int, seconds: float,
                  into: Measured) -> None:
    cpu = process_cpu_seconds(pid)
    result = gen.run(load, seconds)
    used = process_cpu_seconds(pid)
    into.add(result, seconds, None if cpu is None or used is None else used - cpu)


def bench_cpu(gen: LoadGenerator, load: Load, pid: int, folder: Path,
              quick: bool) -> list[Row]:
    seconds, rounds = (1.0, 2) if quick else (4.0, 5)
    none, attached, followed = Measured(), Measured(), 0
    for _ in range(rounds):
        measure_slice(gen, load, pid, seconds, none)
        follower = Follower(folder / SOCKET)
        measure_slice(gen, load, pid, seconds, attached)
        deadline = time.monotonic() + 5
        while follower.events < attached.result.exchanges - followed and \
                time.monotonic() < deadline and not follower.dropped:
            time.sleep(0.05)  # the stream catches up with the slice's requests
        followed += follower.events
        follower.close()
    if none.cpu_ms_per_request is None:
        return [Row("attach: host CPU per request", 0, "us", note="no /proc: not measured")]
    ours, base = attached.cpu_ms_per_request * 1000, none.cpu_ms_per_request * 1000
    return [Row("attach: host CPU per request, console following", ours, "us", baseline=base,
                target="ratio <= 1.05", ok=ours <= 1.05 * base,
                note=f"{attached.result.rate:,.0f} req/s attached, {none.result.rate:,.0f} "
                     f"req/s alone; the follower received {followed:,} of "
                     f"{attached.result.exchanges:,} events")]


def bench_console(gen: LoadGenerator, load: Load, folder: Path, seconds: float) -> list[Row]:
    """The attached console's key -> screen latency while ``gen`` drives the host."""
    remote = RemoteHost(Settings(), folder / SOCKET)
    remote.log.last_seq = remote.client.call("status")["log_seq"]  # no ring backlog counted
    try:
        app = AttachedConsole(remote, freeze_gc=True)  # as run_attached runs it
        latencies, growth, shown, result = drive_under_load(app, gen, load, seconds,
                                                            REQUESTS_PER_SECOND)
    finally:
        remote.close()
    return _rows("attached (2,000 requests/s)", latencies, growth,
                 f"the host served {result.rate:,.0f} requests/s ({result.errors} failed); "
                 f"{shown:,} of its {result.exchanges:,} events ({shown / seconds:,.0f}/s) "
                 "reached the attached log view while keys were pressed")


def run(quick: bool) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-attach-") as tmp, \
            contextlib.ExitStack() as stack:
        folder = Path(tmp)
        prepare_site(folder)
        http_port, tls_port = free_ports(2)
        host = start_ours(stack, folder, http_port, tls_port)
        load = Load(http_port, (Request(CURRENT_PATH),))
        gen = stack.enter_context(LoadGenerator(processes=1, threads=3))
        gen.run(load, 0.5)  # warm up
        return (bench_cpu(gen, load, host.pids["http"], folder, quick)
                + bench_console(gen, load, folder, 3.0 if quick else 30.0))
