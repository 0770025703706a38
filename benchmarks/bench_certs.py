"""Certificate sets: how fast a set is validated (the console re-checks as the cursor moves;
target median under 20 ms per set, reading the set from disk included) and how a rotation
behaves under load: the time from ``activate()`` until a new TLS handshake presents the new
chain, and the requests that fail while sets are rotated back and forth (target 0). The host
runs in this process with its real listeners; lock-like threads fetch ``/current`` and the DER
it names (checking the hash) and open TLS connections trusting only the two anchors.
The rotation target (median under 250 ms) is far below a lock's call-in interval; what a lock
could notice is a failed request, hence the second target of none.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import statistics
import ssl
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from benchmarks.run import Row
from server import pki
from server.certcheck.rules import check_set
from server.config import load_settings
from server.host import Host
from server.sitekey import SiteKey, write_key_file

CHECK_TARGET_MS = 20.0
ROTATION_TARGET_MS = 250.0
HOSTS = ["localhost", "127.0.0.1"]
CURRENT = "/swordfish/lock/certificates/current"


def _site(folder: Path):
    key = SiteKey.generate()
    write_key_file(folder / "site.key", key)
    settings = load_settings(env={}, flags={
        "bind": "127.0.0.1", "http_port": 0, "tls_port": 0, "host_names": HOSTS,
        "certs_dir": str(folder / "certs"), "ca_dir": str(folder / "ca"),
        "logs_dir": str(folder / "logs"), "data_dir": str(folder / "data"),
        "site_key_file": str(folder / "site.key"), "connection_timeout": 5.0})
    return key, settings


def bench_validation(quick: bool) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        key, settings = _site(Path(tmp))
        host = Host.from_settings(settings, env={})
        for name in ("second", "third"):
            pki.init_set(host.store, settings.path("ca_dir"), name, HOSTS)
        pki.renew_set(host.store, settings.path("ca_dir"), "second")
        active = host.store.load("demo")
        names = host.store.names()
        times = []
        for _ in range(30 if quick else 300):
            for name in names:
                start = time.perf_counter()
                check_set(host.store.load(name), key, settings, active=active)
                times.append((time.perf_counter() - start) * 1000)
        host.close()
    median = statistics.median(times)
    p95 = statistics.quantiles(times, n=20)[-1]
    return [Row("cert check: load + validate one set (median)", median, "ms",
                target=f"<= {CHECK_TARGET_MS:g} ms", ok=median <= CHECK_TARGET_MS,
                note=f"{len(times)} checks of {len(names)} sets, p95 {p95:.2f} ms")]


class _Locks:
    """Threads acting as locks during the rotations; every failure is counted."""

    def __init__(self, key: SiteKey, http_port: int, tls_port: int, sets, threads: int):
        self.key, self.http_port, self.tls_port = key, http_port, tls_port
        self.leaves = {pki.cert_der(s.chain[0]): s.name for s in sets}
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        for s in sets:
            self.ctx.load_verify_locations(cadata=x509.load_der_x509_certificate(s.anchor_der)
                                           .public_bytes(Encoding.PEM).decode())
        self.stop = threading.Event()
        self.cond = threading.Condition()
        self.seen: list[tuple[float, str]] = []   # (completed at, set presented)
        self.requests = 0
        self.failures: list[str] = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _get(self, conn, path: str) -> bytes:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{path}: HTTP {resp.status}")
        return body

    def _run(self):
        while not self.stop.is_set():
            try:
                plain = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=10)
                answer = json.loads(self._get(plain, CURRENT))
                der = self._get(plain, urlsplit(answer["cert_url"]).path)
                plain.close()
                if answer["hash"] != self.key.hash(der) or \
                        hashlib.sha256(der).hexdigest() not in answer["cert_url"]:
                    raise RuntimeError("hash does not verify against the DER it names")
                tls = http.client.HTTPSConnection("localhost", self.tls_port, timeout=10,
                                                  context=self.ctx)
                self._get(tls, CURRENT)
                leaf = tls.sock.getpeercert(binary_form=True)
                tls.close()
                name = self.leaves[leaf]
                with self.cond:
                    self.requests += 4
                    self.seen.append((time.perf_counter(), name))
                    self.cond.notify_all()
            except Exception as exc:  # counted: the benchmark's second figure
                self.failures.append(f"{type(exc).__name__}: {exc}")

    def first_after(self, name: str, since: float, timeout: float = 10.0) -> float | None:
        def found():
            return next((t for t, n in reversed(self.seen) if n == name and t >= since), None)
        with self.cond:
            self.cond.wait_for(lambda: found() is not None, timeout)
            return found()


def bench_rotation(quick: bool) -> list[Row]:
    rotations = 8 if quick else 40
    with tempfile.TemporaryDirectory() as tmp:
        key, settings = _site(Path(tmp))
        host = Host.from_settings(settings, env={})
        pki.init_set(host.store, settings.path("ca_dir"), "other", HOSTS)
        host.start()
        sets = [host.store.load("demo"), host.store.load("other")]
        locks = _Locks(key, host.listeners["http"].bound_port, host.listeners["tls"].bound_port,
                       sets, threads=3)
        for t in locks.threads:
            t.start()
        latencies, activations = [], []
        try:
            for i in range(rotations):
                name = ("other", "demo")[i % 2]
                start = time.perf_counter()
                host.certificates.activate(name, by="benchmark")
                activations.append((time.perf_counter() - start) * 1000)
                seen = locks.first_after(name, start)
                if seen is None:
                    locks.failures.append(f"no handshake presented {name} within 10 s")
                else:
                    latencies.append((seen - start) * 1000)
        finally:
            locks.stop.set()
            for t in locks.threads:
                t.join(timeout=15)
            host.close()
    median = statistics.median(latencies) if latencies else float("inf")
    failures = len(locks.failures)
    return [
        Row("rotation: activate() -> new chain on TLS (median)", median, "ms",
            target=f"<= {ROTATION_TARGET_MS:g} ms", ok=median <= ROTATION_TARGET_MS,
            note=f"{rotations} rotations under load, max {max(latencies, default=0):.1f} ms, "
                 f"activate() itself median {statistics.median(activations):.1f} ms"),
        Row("rotation: failed requests under load", failures, "requests", target="= 0",
            ok=failures == 0, note=f"of {locks.requests} requests"
            + (f"; first: {locks.failures[0]}" if locks.failures else "")),
    ]


def run(quick: bool) -> list[Row]:
    return bench_validation(quick) + bench_rotation(quick)
