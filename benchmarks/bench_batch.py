"""Batch issuance and mutual TLS. A 1,000-identity NUMERIC generator batch with P-256 keys
(target under 10 s) and, reported with its time, one with RSA-2048 keys (key generation
dominates); and the host CPU of an mTLS call-in (a client certificate checked against the
lock's serial and pin) against a plain TLS call-in, same run (target at most +15 %). Each
call-in is a new TLS connection carrying PUT Config, GET db and POST audit, sent by a forked
client process, so this process's CPU time is the host's alone."""

from __future__ import annotations

import http.client
import json
import multiprocessing
import ssl
import tempfile
import time
from pathlib import Path

from cryptography import x509

from benchmarks.run import Row
from server import batches, pki
from server.config import load_settings
from server.devices.store import Devices
from server.host import Host
from server.sitekey import SiteKey, write_key_file

BATCH_TARGET_S = 10.0
MTLS_TARGET = 1.15


def _settings(folder: Path, **extra):
    write_key_file(folder / "site.key", SiteKey.generate())
    return load_settings(env={}, flags={
        "bind": "127.0.0.1", "http_port": 0, "tls_port": 0,
        "host_names": ["localhost", "127.0.0.1"], "certs_dir": str(folder / "certs"),
        "ca_dir": str(folder / "ca"), "data_dir": str(folder / "data"),
        "logs_dir": str(folder / "logs"), "site_key_file": str(folder / "site.key"),
        "identity_type": "decimal", **extra})


def bench_generator(quick: bool) -> list[Row]:
    rows = []
    for profile, size in (("p256", 1000), ("rsa2048", 50 if quick else 1000)):
        with tempfile.TemporaryDirectory() as tmp:
            settings = _settings(Path(tmp))
            batches.init_client_ca(settings.path("ca_dir"))
            started = time.perf_counter()
            names = batches.numeric_identities("1", "1", size, settings)
            batches.create_batch(settings, names=names, profile=profile)
            seconds = time.perf_counter() - started
        if profile == "p256":
            rows.append(Row("batch: 1,000 P-256 identities", round(seconds, 2), "s",
                            target=f"< {BATCH_TARGET_S:g} s", ok=seconds < BATCH_TARGET_S))
        else:
            rows.append(Row(f"batch: {size:,} RSA-2048 identities", round(seconds, 2), "s",
                            note=f"{seconds / size * 1000:.0f} ms per identity (reported)"))
    return rows


def _callins(port: int, anchor: bytes, pair, serial: str, n: int) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=anchor)
    if pair:
        ctx.load_cert_chain(*pair)
    body = json.dumps({"lckPrmtrs": {"lckSn": serial, "mdl": "NDE"}})
    audit = json.dumps({"asyncEvents": [{"event": 11111111, "time": 20250101120000}]})
    for _ in range(n):
        conn = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=10)
        for method, path, data in (("PUT", "/swordfish/lock/Config", body),
                                   ("GET", "/swordfish/lock/db/0", None),
                                   ("POST", "/swordfish/lock/audit", audit)):
            conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            assert response.status < 300, (path, response.status)
        conn.close()


def _host_cpu_per_callin(folder: Path, mutual: bool, n: int) -> float:
    settings = _settings(folder)
    pair = None
    serial = "1"
    if mutual:
        batches.init_client_ca(settings.path("ca_dir"))
        settings.client_ca_file = str(batches.client_ca_file(settings.path("ca_dir")))
        record = batches.create_batch(settings, names=[serial], profile="p256")
        devices = Devices(settings.path("data_dir"), settings)
        devices.import_rows(devices.parse_import(batches.identities_csv(record)))
        item = record["items"][0]
        (folder / "lock.pem").write_text(item["cert"])
        (folder / "lock.key").write_text(item["key"])
        pair = (str(folder / "lock.pem"), str(folder / "lock.key"))
    host = Host.from_settings(settings, env={})
    host.start(("tls",))
    try:
        anchor = pki.cert_pem(x509.load_der_x509_certificate(
            host.certificates.current().cert_set.anchor_der)).decode()
        port = host.listeners["tls"].bound_port
        fork = multiprocessing.get_context("fork")
        _run_client(fork, port, anchor, pair, serial, 5)  # warm up
        started = time.process_time()
        _run_client(fork, port, anchor, pair, serial, n)
        return (time.process_time() - started) / n * 1000
    finally:
        host.close()


def _run_client(fork, *args) -> None:
    client = fork.Process(target=_callins, args=args)
    client.start()
    client.join(120)
    if client.exitcode != 0:
        raise RuntimeError(f"the call-in client failed (exit {client.exitcode})")


def bench_mtls(quick: bool) -> list[Row]:
    n = 100 if quick else 400
    figures = {False: [], True: []}
    for mutual in (False, True, False, True):  # alternated, the best of two: load comes and goes
        with tempfile.TemporaryDirectory() as folder:
            figures[mutual].append(_host_cpu_per_callin(Path(folder), mutual, n))
    plain, mutual = min(figures[False]), min(figures[True])
    return [Row("mTLS call-in host CPU vs plain TLS", round(mutual, 2), "ms", baseline=round(
        plain, 2), target=f"ratio <= {MTLS_TARGET}", ok=mutual <= plain * MTLS_TARGET,
        note=f"{n} call-ins each, full handshake, PUT Config + GET db + POST audit")]


def run(quick: bool) -> list[Row]:
    return [*bench_generator(quick), *bench_mtls(quick)]


if __name__ == "__main__":
    from benchmarks.run import format_table

    print(format_table(run(quick=True)))
