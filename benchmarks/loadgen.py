"""A small load generator for benchmarks: several client processes, each with a few threads,
open a NEW connection for every exchange (TLS: a full handshake, never a resumed session),
send one or more requests on it, read each response by its ``Content-Length`` and close.

Only 127.0.0.1 is ever contacted. Use it as::

    with LoadGenerator(processes=2, threads=4) as gen:
        result = gen.run(Load(port, (Request("/path"),), tls=True), seconds=2.0)
    result.rate, result.p99_ms, result.errors

``run(..., rate=2000)`` paces the clients to about that many exchanges a second in all
(default: as fast as they can).

Client processes are spawned, so a script that uses this needs an
``if __name__ == "__main__":`` guard. Stdlib only, so the client costs the same whichever
server it drives.
"""

from __future__ import annotations

import math
import multiprocessing
import queue
import socket
import ssl
import threading
import time
from array import array
from dataclasses import dataclass, field

LOOPBACK = "127.0.0.1"
IO_TIMEOUT = 5.0          # seconds one socket operation may take before the exchange fails
START_DELAY = 0.05        # workers start together this long after the job is handed out
MAX_HEAD_BYTES = 65536
MAX_ERROR_SAMPLES = 5


@dataclass(frozen=True)
class Request:
    path: str
    method: str = "GET"
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()

    def encode(self, port: int) -> bytes:
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {LOOPBACK}:{port}",
                 *(f"{name}: {value}" for name, value in self.headers)]
        if self.body or self.method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


@dataclass(frozen=True)
class Load:
    """What one exchange is: a new connection to ``port`` carrying ``requests`` in order."""

    port: int
    requests: tuple[Request, ...]
    tls: bool = False


@dataclass
class Result:
    """Completed exchanges (all responses 2xx), failures, and the latency of each exchange."""

    exchanges: int = 0
    errors: int = 0
    rate: float = 0.0                      # successful exchanges per second, all clients
    latencies: array = field(default_factory=lambda: array("d"))   # seconds, successes only
    error_samples: list[str] = field(default_factory=list)
    resumed: int = 0                        # TLS sessions resumed (should stay 0)

    def merge(self, other: "Result") -> "Result":
        """Results of clients that ran side by side: rates add up."""
        latencies = array("d", self.latencies)
        latencies.extend(other.latencies)
        return Result(self.exchanges + other.exchanges, self.errors + other.errors,
                      self.rate + other.rate, latencies,
                      (self.error_samples + other.error_samples)[:MAX_ERROR_SAMPLES],
                      self.resumed + other.resumed)

    def then(self, other: "Result", self_seconds: float, other_seconds: float) -> "Result":
        """Results of two runs one after the other: the rate is time-weighted."""
        merged = self.merge(other)
        total = self_seconds + other_seconds
        merged.rate = (self.rate * self_seconds + other.rate * other_seconds) / total
        return merged

    def percentile_ms(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        rank = max(1, math.ceil(q / 100 * len(ordered)))  # nearest rank
        return ordered[rank - 1] * 1000

    @property
    def p50_ms(self) -> float:
        return self.percentile_ms(50)

    @property
    def p99_ms(self) -> float:
        return self.percentile_ms(99)


class ExchangeError(Exception):
    pass


def client_context() -> ssl.SSLContext:
    """A client that never resumes a session and does not verify (the server's work is what
    is measured; the client keeps its own share of the CPU small)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.options |= ssl.OP_NO_TICKET
    return ctx


def _read_response(sock: socket.socket, buffer: bytearray) -> tuple[int, bytes]:
    """One response from ``sock``; bytes past it stay in ``buffer``."""
    while b"\r\n\r\n" not in buffer:
        if len(buffer) > MAX_HEAD_BYTES:
            raise ExchangeError("response head too long")
        chunk = sock.recv(65536)
        if not chunk:
            raise ExchangeError("connection closed before the response head")
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    try:
        status = int(lines[0].split(b" ", 2)[1])
    except (IndexError, ValueError):
        raise ExchangeError(f"bad status line {lines[0][:80]!r}") from None
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    body = bytearray(rest)
    if length is None:  # no length: the body runs to the end of the connection
        while chunk := sock.recv(65536):
            body += chunk
        length = len(body)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ExchangeError("connection closed inside the body")
        body += chunk
    buffer[:] = body[length:]
    return status, bytes(body[:length])


def exchange(load: Load, tls: ssl.SSLContext | None = None) -> tuple[list[tuple[int, bytes]], bool]:
    """One new connection carrying every request of ``load``: the (status, body) of each and
    whether the TLS session was resumed."""
    sock = socket.create_connection((LOOPBACK, load.port), timeout=IO_TIMEOUT)
    try:
        if load.tls:
            sock = (tls or client_context()).wrap_socket(sock, server_hostname="localhost")
        buffer = bytearray()
        answers = []
        for request in load.requests:
            sock.sendall(request.encode(load.port))
            answers.append(_read_response(sock, buffer))
        return answers, bool(load.tls and sock.session_reused)
    finally:
        sock.close()


def _client_thread(load: Load, deadline: float, interval: float, result: Result,
                   lock: threading.Lock) -> None:
    """Exchanges until ``deadline``, each starting ``interval`` seconds after the previous
    one was due (0: at once)."""
    tls = client_context() if load.tls else None
    latencies = array("d")
    errors, resumed, samples = 0, 0, []
    due = time.monotonic()
    while (now := time.monotonic()) < deadline:
        if interval:
            if due > now:
                time.sleep(min(due, deadline) - now)
                continue
            due += interval
        started = time.perf_counter()
        try:
            answers, was_resumed = exchange(load, tls)
            bad = [status for status, _ in answers if not 200 <= status < 300]
            if bad:
                raise ExchangeError(f"status {bad[0]}")
        except (OSError, ExchangeError, ValueError) as exc:
            errors += 1
            if len(samples) < MAX_ERROR_SAMPLES:
                samples.append(f"{exc.__class__.__name__}: {exc}")
            continue
        latencies.append(time.perf_counter() - started)
        resumed += was_resumed
    with lock:
        result.latencies.extend(latencies)
        result.errors += errors
        result.resumed += resumed
        result.error_samples = (result.error_samples + samples)[:MAX_ERROR_SAMPLES]


def _run_clients(load: Load, seconds: float, threads: int, start_at: float,
                 interval: float) -> Result:
    delay = start_at - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    began = time.monotonic()
    result, lock = Result(), threading.Lock()
    workers = [threading.Thread(target=_client_thread,
                                args=(load, began + seconds, interval, result, lock), daemon=True)
               for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - began
    result.exchanges = len(result.latencies)
    result.rate = result.exchanges / elapsed if elapsed > 0 else 0.0
    return result


def _worker(jobs, results, threads: int) -> None:
    while (job := jobs.get()) is not None:
        load, seconds, start_at, interval = job
        try:
            results.put(_run_clients(load, seconds, threads, start_at, interval))
        except Exception as exc:  # report it rather than leave the parent waiting
            results.put(exc)


class LoadGenerator:
    """``processes`` client processes with ``threads`` threads each, kept for many runs.
    Use as a context manager so the processes always end."""

    def __init__(self, processes: int = 2, threads: int = 4):
        if processes < 1 or threads < 1:
            raise ValueError("processes and threads must be at least 1")
        self.processes = processes
        self.threads = threads
        self._mp = multiprocessing.get_context("spawn")  # safe whatever threads the caller has
        self._jobs = []
        self._results = self._mp.Queue()
        self._procs = []

    def __enter__(self) -> "LoadGenerator":
        for _ in range(self.processes):
            jobs = self._mp.Queue()
            proc = self._mp.Process(target=_worker, args=(jobs, self._results, self.threads),
                                    daemon=True)
            proc.start()
            self._jobs.append(jobs)
            self._procs.append(proc)
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        for jobs in self._jobs:
            jobs.put(None)
        for proc in self._procs:
            proc.join(timeout=IO_TIMEOUT + 2)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=2)
        self._jobs, self._procs = [], []

    def run(self, load: Load, seconds: float, rate: float | None = None) -> Result:
        """Drive ``load`` from every client for ``seconds``, at about ``rate`` exchanges a
        second in all when given (as fast as they can otherwise); exchanges still in flight
        at the end finish (each socket operation is bounded by IO_TIMEOUT)."""
        if not self._procs:
            raise RuntimeError("LoadGenerator is not running: use it in a with block")
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive")
        interval = self.processes * self.threads / rate if rate else 0.0
        start_at = time.monotonic() + START_DELAY
        for jobs in self._jobs:
            jobs.put((load, seconds, start_at, interval))
        total, pending = Result(), len(self._procs)
        deadline = time.monotonic() + START_DELAY + seconds + 2 * IO_TIMEOUT + 10
        while pending:
            try:
                part = self._results.get(timeout=0.5)
            except queue.Empty:
                if not all(proc.is_alive() for proc in self._procs):
                    raise RuntimeError(
                        "a load generator process exited: a script that uses LoadGenerator "
                        "needs an `if __name__ == \"__main__\":` guard (processes are spawned)")
                if time.monotonic() > deadline:
                    raise TimeoutError("load generator processes did not report in time")
                continue
            if isinstance(part, Exception):
                raise part
            total, pending = total.merge(part), pending - 1
        return total
