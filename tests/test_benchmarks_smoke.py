"""The benchmark tools work: the load generator against real listeners, and the delivery
benchmark end to end (its table, not its machine-dependent figures)."""

from __future__ import annotations

import contextlib
import json
import math
import re
import subprocess
import sys
from array import array
from pathlib import Path

import pytest

from benchmarks.bench_delivery import Server, check_delivery, free_ports, prepare_site, spawn
from benchmarks.loadgen import Load, LoadGenerator, Request, Result, exchange

CURRENT = "/swordfish/lock/certificates/current"
REPO = Path(__file__).resolve().parents[1]


def test_exchange_reads_a_response_over_plain_http(site):
    [(status, body)], resumed = exchange(Load(site.http_port, (Request(CURRENT),)))
    assert status == 200
    assert list(json.loads(body)) == ["cert_url", "hash"]
    assert resumed is False


def test_exchange_sends_several_requests_on_one_tls_connection(site):
    load = Load(site.tls_port, (Request(CURRENT), Request("/no/such/path")), tls=True)
    [(first, body), (second, _)], resumed = exchange(load)
    assert (first, second) == (200, 404)
    assert json.loads(body)["cert_url"].startswith("http://")
    assert resumed is False


def test_load_generator_drives_a_real_listener_with_full_handshakes(site):
    before = site.host.listeners["tls"].status().requests
    with LoadGenerator(processes=1, threads=2) as gen:
        result = gen.run(Load(site.tls_port, (Request(CURRENT),), tls=True), seconds=0.5)
    assert result.errors == 0, result.error_samples
    assert result.exchanges > 0 and result.rate > 0
    assert result.resumed == 0
    assert 0 < result.p50_ms <= result.p99_ms
    assert site.host.listeners["tls"].status().requests - before >= result.exchanges


def test_load_generator_keeps_to_the_rate_it_is_given(site):
    with LoadGenerator(processes=1, threads=2) as gen:
        result = gen.run(Load(site.http_port, (Request(CURRENT),)), seconds=1.0, rate=40)
    assert result.errors == 0, result.error_samples
    assert 30 <= result.exchanges <= 42  # 40 due in the second, 2 threads starting at once


def test_load_generator_refuses_a_rate_that_is_not_positive():
    with LoadGenerator(processes=1, threads=1) as gen, pytest.raises(ValueError, match="rate"):
        gen.run(Load(1, (Request("/"),)), seconds=0.1, rate=0)


def test_load_generator_counts_refused_connections_as_errors():
    [port] = free_ports(1)  # nothing listens there
    with LoadGenerator(processes=1, threads=1) as gen:
        result = gen.run(Load(port, (Request("/"),)), seconds=0.2)
    assert result.exchanges == 0 and result.rate == 0
    assert result.errors > 0
    assert "ConnectionRefusedError" in result.error_samples[0]


def test_percentiles_are_nearest_rank():
    result = Result(latencies=array("d", [ms / 1000 for ms in range(1, 101)]))
    assert result.p50_ms == pytest.approx(50.0)
    assert result.p99_ms == pytest.approx(99.0)
    assert math.isnan(Result().p99_ms)


def test_results_run_one_after_the_other_weight_their_rates_by_time():
    first, second = Result(exchanges=100, rate=100.0), Result(exchanges=600, rate=200.0)
    assert first.then(second, 1.0, 3.0).rate == pytest.approx(175.0)
    assert first.merge(second).rate == pytest.approx(300.0)  # side by side: rates add


def test_load_generator_needs_at_least_one_client():
    with pytest.raises(ValueError, match="at least 1"):
        LoadGenerator(processes=0)


def test_load_generator_refuses_to_run_outside_its_with_block():
    with pytest.raises(RuntimeError, match="with block"):
        LoadGenerator().run(Load(1, (Request("/"),)), seconds=0.1)


def test_a_server_process_that_exits_at_once_is_reported_with_its_stderr(tmp_path):
    [port] = free_ports(1)
    with contextlib.ExitStack() as stack, pytest.raises(RuntimeError) as failure:
        spawn(stack, "broken", [sys.executable, "-c",
                                "import sys; sys.stderr.write('no site key'); sys.exit(3)"],
              tmp_path, [port])
    assert "broken server did not start (exited with 3): no site key" in str(failure.value)


def test_server_processes_are_stopped_when_the_benchmark_ends(tmp_path):
    [port] = free_ports(1)
    serve = ("import socket, time; s = socket.socket(); "
             f"s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(60)")
    with contextlib.ExitStack() as stack:
        proc = spawn(stack, "idle", [sys.executable, "-c", serve], tmp_path, [port])
        assert proc.poll() is None  # it is listening
    assert proc.poll() is not None


def test_a_server_answering_another_hash_is_not_compared(site, tmp_path):
    other = tmp_path / "other-site"
    other.mkdir()
    _, certificates = prepare_site(other)  # another site key and set than the host serves
    server = Server(site.http_port, site.tls_port, {})
    with pytest.raises(RuntimeError, match="ours /current over http answered 200"):
        check_delivery(server, "ours", certificates)


def quick_table(name: str, timeout: float) -> str:
    """``python -m benchmarks.run --quick NAME``'s table; it ran to the end."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", name], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode in (0, 1), proc.stderr  # 1: a target missed on this machine
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_delivery_benchmark_prints_a_row_per_endpoint_and_transport():
    stdout = quick_table("bench_delivery", timeout=200)
    lines = stdout.splitlines()
    assert lines[0].split() == ["benchmark", "figure", "baseline", "ratio", "target", "met"]
    row = re.compile(r"^delivery (/current|DER) (http|tls) +([\d,.]+) req/s +([\d,.]+) req/s +"
                     r"(\d+\.\d\d) +ratio >= (\d\.\d) +(yes|NO)$")
    rows = {(m[1], m[2]): m for m in map(row.match, lines) if m}
    assert set(rows) == {("/current", "http"), ("DER", "http"), ("/current", "tls"),
                         ("DER", "tls")}, stdout
    assert {transport: m[6] for (_, transport), m in rows.items()} == {"http": "1.0", "tls": "2.0"}
    notes = [line for line in lines if line.startswith("  delivery ")]
    assert len(notes) == 4
    note = re.compile(r"p99 ours [\d.]+ ms, sample [\d.]+ ms; server CPU per request "
                      r"ours ([\d.]+|\?) ms, sample ([\d.]+|\?) ms; \d+ vs \d+ requests")
    assert all(note.search(line) for line in notes), notes
    bare = re.compile(r"a bare TLS server \(handshake and a fixed reply, nothing else\) "
                      r"[\d,.]+ req/s, ratio \d+\.\d\d")
    assert [bool(bare.search(line)) for line in notes] == [" tls: " in line for line in notes]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_attach_benchmark_measures_the_host_cpu_and_the_attached_console_under_load():
    stdout = quick_table("bench_attach", timeout=100)
    figures = re.findall(r"^(attach: host CPU per request, console following|console attached "
                         r"\(2,000 requests/s\): (?:key -> screen p99|memory growth)) +[\d,.]+ "
                         r"(us|ms|MB)", stdout, re.M)
    assert [unit for _, unit in figures] == ["us", "ms", "MB"], stdout
    served = re.search(r"the host served ([\d,]+) requests/s \((\d+) failed\); ([\d,]+) of its "
                       r"([\d,]+) events \([\d,]+/s\) reached the attached log view", stdout)
    assert served, stdout
    rate, failed, shown, events = (int(g.replace(",", "")) for g in served.groups())
    assert 0 < rate <= 2100 and failed == 0  # paced (unpaced it serves about 6,000/s)
    assert 0 < shown <= events
