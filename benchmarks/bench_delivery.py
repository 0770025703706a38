"""Certificate delivery under load: requests/s and p99 latency of ``/current`` and of the DER
download, a new connection per request (TLS: full handshakes), plain and TLS, for our
listeners (``engage-console --headless``) and for a baseline that behaves like the Allegion
sample (``benchmarks/sample_baseline.py``), each server in its own process, all driven by the
same load generator in the same run. Targets, ours/baseline: plain >= 1.0, TLS >= 2.0.
Each row's note gives both p99 latencies and each server's CPU per request: on a small shared
machine the ratio is noisy, the CPU cost much less so. The TLS rows' notes also give the rate of
a bare TLS server (``benchmarks/bare_tls.py``: handshake and a fixed reply, nothing else)
measured in the same run: the most any server could reach here with this load generator.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from benchmarks.loadgen import LOOPBACK, Load, LoadGenerator, Request, Result, exchange
from benchmarks.run import Row
from benchmarks.sample_baseline import CURRENT_PATH, DER_PATH
from server import pki
from server.activation import Certificates
from server.certstore import CertStore
from server.config import Settings
from server.sitekey import SiteKey, write_key_file

REPO = Path(__file__).resolve().parents[1]
TARGETS = {"http": 1.0, "tls": 2.0}
CASES = (("/current", "http"), ("DER", "http"), ("/current", "tls"), ("DER", "tls"))
READY_TIMEOUT = 30.0   # seconds a server process gets to open its ports
STOP_TIMEOUT = 5.0
SET_NAME = "bench"


@dataclass
class Server:
    """One server (ours, or the sample) as the benchmark sees it: ports, and the process
    behind each port."""

    http_port: int
    tls_port: int
    pids: dict[str, int]
    der_path: str = ""

    def load(self, endpoint: str, transport: str) -> Load:
        path = CURRENT_PATH if endpoint == "/current" else self.der_path
        port = self.tls_port if transport == "tls" else self.http_port
        return Load(port, (Request(path),), tls=transport == "tls")


@dataclass
class Measured:
    """One server's figures for one case, summed over the slices it was measured in."""

    result: Result | None = None
    seconds: float = 0.0
    cpu_seconds: float | None = 0.0   # server process CPU; None where /proc is missing

    def add(self, part: Result, seconds: float, cpu_seconds: float | None) -> None:
        self.result = part if self.result is None else self.result.then(part, self.seconds,
                                                                        seconds)
        self.seconds += seconds
        self.cpu_seconds = None if self.cpu_seconds is None or cpu_seconds is None \
            else self.cpu_seconds + cpu_seconds

    @property
    def cpu_ms_per_request(self) -> float | None:
        if self.cpu_seconds is None or not self.result.exchanges:
            return None
        return self.cpu_seconds / self.result.exchanges * 1000


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU a process has used so far (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_ports(count: int) -> list[int]:
    """Distinct ports free right now (bound to port 0, then released for the servers)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((LOOPBACK, 0))
        return [sock.getsockname()[1] for sock in socks]


def prepare_site(folder: Path) -> tuple[SiteKey, Certificates]:
    """A generated site key and an active set in ``folder``, as `sitekey generate` and
    `certs init` + `certs activate` leave them."""
    key = SiteKey.generate()
    write_key_file(folder / "site.key", key)
    store = CertStore(folder / "certs")
    pki.init_set(store, folder / "ca", SET_NAME, ["localhost", LOOPBACK])
    certificates = Certificates(store, key, Settings())
    certificates.activate(SET_NAME, by="benchmark")
    return key, certificates


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def spawn(stack: contextlib.ExitStack, name: str, cmd: list[str], cwd: Path,
          ports: list[int]) -> subprocess.Popen:
    """Start a server process that is always stopped when ``stack`` closes, and wait (bounded)
    until it accepts connections on every port."""
    err_path = cwd / f"{name}.stderr"
    err = stack.enter_context(open(err_path, "wb"))
    proc = subprocess.Popen(cmd, cwd=cwd, env=_clean_env(), stdout=subprocess.DEVNULL,
                            stderr=err, stdin=subprocess.DEVNULL)
    stack.callback(_stop, proc)
    deadline = time.monotonic() + READY_TIMEOUT
    waiting = list(ports)
    while waiting:
        if proc.poll() is not None or time.monotonic() > deadline:
            why = f"exited with {proc.returncode}" if proc.poll() is not None else "timed out"
            raise RuntimeError(f"{name} server did not start ({why}): "
                               + err_path.read_text(errors="replace")[-2000:])
        try:
            socket.create_connection((LOOPBACK, waiting[0]), timeout=0.5).close()
            waiting.pop(0)
        except OSError:
            time.sleep(0.05)
    return proc


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)


def start_ours(stack, folder: Path, http_port: int, tls_port: int) -> Server:
    proc = spawn(stack, "ours", [sys.executable, "-m", "console", "--headless", "--bind", LOOPBACK,
                                 "--http-port", str(http_port), "--tls-port", str(tls_port)],
                 folder, [http_port, tls_port])
    return Server(http_port, tls_port, {"http": proc.pid, "tls": proc.pid})


def start_bare(stack, folder: Path, port: int, certificates: Certificates) -> Server:
    cert_set = certificates.current().cert_set
    proc = spawn(stack, "bare-tls", [sys.executable, "-m", "benchmarks.bare_tls", "--port",
                                     str(port), "--chain", str(cert_set.chain_path),
                                     "--key", str(cert_set.key_path)], folder, [port])
    return Server(0, port, {"tls": proc.pid}, der_path=DER_PATH)


def start_sample(stack, folder: Path, http_port: int, tls_port: int,
                 certificates: Certificates) -> Server:
    """The sample ran two scripts: port 80 plain, 443 with ``ssl_context``; both answer the
    same fixed JSON, whose cert_url is the plain one."""
    active = certificates.current()
    der_file = folder / "partner_CA.der"
    der_file.write_bytes(active.cert_set.anchor_der)
    script = str(Path(__file__).with_name("sample_baseline.py"))
    common = ["--der", str(der_file), "--hash", active.hash,
              "--cert-url", f"http://{LOOPBACK}:{http_port}{DER_PATH}"]
    plain = spawn(stack, "sample-http", [sys.executable, script, "--port", str(http_port),
                                         *common], folder, [http_port])
    tls = spawn(stack, "sample-tls", [sys.executable, script, "--port", str(tls_port), *common,
                                      "--tls", str(active.cert_set.chain_path),
                                      str(active.cert_set.key_path)],
                folder, [tls_port])
    return Server(http_port, tls_port, {"http": plain.pid, "tls": tls.pid})


def check_delivery(server: Server, name: str, certificates: Certificates) -> None:
    """Both servers must answer the same hash and the same DER before they are compared; this
    also learns the DER path from ``cert_url`` and warms each server up."""
    active = certificates.current()
    for transport in ("http", "tls"):
        [(status, body)], _ = exchange(server.load("/current", transport))
        try:
            answer = json.loads(body)
        except ValueError:
            answer = {}
        if status != 200 or answer.get("hash") != active.hash or "cert_url" not in answer:
            raise RuntimeError(f"{name} /current over {transport} answered {status} {body[:200]!r}")
        server.der_path = urlsplit(answer["cert_url"]).path
        [(status, der)], _ = exchange(server.load("DER", transport))
        if status != 200 or der != active.cert_set.anchor_der:
            raise RuntimeError(f"{name} DER download over {transport} answered {status}")


def measure(gen: LoadGenerator, endpoint: str, transport: str, servers: dict[str, Server],
            seconds: float, rounds: int) -> dict[str, Measured]:
    """Alternate the servers in ``rounds`` slices, so a burst of load from elsewhere on the
    machine hits all alike."""
    slice_seconds = seconds / rounds
    measured = {name: Measured() for name in servers}
    for i in range(rounds):
        order = list(servers.items())
        for name, server in (order if i % 2 == 0 else order[::-1]):
            pid = server.pids[transport]
            before = process_cpu_seconds(pid)
            part = gen.run(server.load(endpoint, transport), slice_seconds)
            after = process_cpu_seconds(pid)
            measured[name].add(part, slice_seconds,
                               None if before is None or after is None else after - before)
    return measured


def _ms(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f}"


def make_row(endpoint: str, transport: str, measured: dict[str, Measured]) -> Row:
    ours_m, sample_m = measured["ours"], measured["sample"]
    ours, sample = ours_m.result, sample_m.result
    target = TARGETS[transport]
    ratio = ours.rate / sample.rate if sample.rate else 0.0
    problems = [f"{who} {r.errors} errors ({'; '.join(r.error_samples[:2])})"
                for who, r in (("ours", ours), ("sample", sample)) if r.errors]
    problems += [f"{who} resumed {r.resumed} TLS sessions"
                 for who, r in (("ours", ours), ("sample", sample)) if r.resumed]
    note = (f"p99 ours {ours.p99_ms:.1f} ms, sample {sample.p99_ms:.1f} ms; server CPU per "
            f"request ours {_ms(ours_m.cpu_ms_per_request)} ms, "
            f"sample {_ms(sample_m.cpu_ms_per_request)} ms; "
            f"{ours.exchanges} vs {sample.exchanges} requests"
            + ("; " + "; ".join(problems) if problems else ""))
    if "bare" in measured and sample.rate:
        bare = measured["bare"].result
        note += (f"; a bare TLS server (handshake and a fixed reply, nothing else) "
                 f"{bare.rate:,.1f} req/s, ratio {bare.rate / sample.rate:.2f}"
                 + (f" ({bare.errors} errors)" if bare.errors else ""))
    return Row(benchmark=f"delivery {endpoint} {transport}", figure=ours.rate, unit="req/s",
               baseline=sample.rate, target=f"ratio >= {target:.1f}",
               ok=ratio >= target and not ours.errors and not ours.resumed and sample.rate > 0,
               note=note)


def run(quick: bool) -> list[Row]:
    seconds, rounds = (2.0, 1) if quick else (10.0, 5)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-delivery-") as tmp, \
            contextlib.ExitStack() as stack:
        folder = Path(tmp)
        _, certificates = prepare_site(folder)
        ports = free_ports(5)
        ours = start_ours(stack, folder, ports[0], ports[1])
        sample = start_sample(stack, folder, ports[2], ports[3], certificates)
        bare = start_bare(stack, folder, ports[4], certificates)
        check_delivery(ours, "ours", certificates)
        check_delivery(sample, "sample", certificates)
        gen = stack.enter_context(LoadGenerator(processes=2, threads=4))
        for endpoint, transport in CASES:
            servers = {"ours": ours, "sample": sample}
            if transport == "tls":
                servers["bare"] = bare
            rows.append(make_row(endpoint, transport, measure(
                gen, endpoint, transport, servers, seconds, rounds)))
    return rows
