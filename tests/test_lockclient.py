"""The lock simulator against the real listeners: what a lock refuses, and `simulate`."""

from __future__ import annotations

import json
import random
import time

import pytest

from console.__main__ import main
from server.lockclient import CallIn, SimulatedLock
from server.simfleet import FleetSummary, make_fleet, run_fleet
from server.sitekey import SiteKey

from . import chains
from .helpers import wait_for_event

SERIAL = "00A1B2C3D4E5F607"
USER = {"usrID": "148", "fnctn": "norm", "primeCr": "0" * 32, "prCrTyp": "card"}


def lock(site, key=None, serial=SERIAL) -> SimulatedLock:
    return SimulatedLock(serial, "localhost", site.http_port, site.tls_port,
                         (key or site.site_key).hmac_key())


def serve(host, chain, name: str) -> None:
    """Make ``chain`` the active set, whatever its validation report says."""
    chains.write(host.store.root, chain, name)
    host.certificates.activate(name, force=True)


def test_lock_refuses_a_certificate_whose_hash_does_not_match_its_site_key(site, host):
    sim = lock(site, key=SiteKey.generate())
    result = sim.call_in()
    assert (result.ok, result.reason) == (False, "certificate hash mismatch")
    assert sim.anchor is None and result.statuses == {}
    assert not host.devices.root.exists()


def test_lock_checks_the_hash_and_keeps_the_anchor(site):
    sim = lock(site)
    der = sim.fetch_anchor()
    assert der == host_anchor(site) and sim.anchor == der


def host_anchor(site) -> bytes:
    return site.host.certificates.current().cert_set.anchor_der


def test_chain_of_exactly_4096_bytes_is_accepted(site, host):
    serve(host, chains.sized(4096), "limit")
    assert lock(site).call_in().ok


def test_chain_over_4096_bytes_is_a_tls_connection_error(site, host):
    serve(host, chains.sized(4097), "toolong")
    result = lock(site).call_in()
    assert (result.ok, result.reason) == (False, "TLS connection error: chain too long")
    assert "4097 bytes" in result.error and result.statuses == {}
    assert not host.devices.root.exists()
    # The host sees the lock go right after the handshake, and says so.
    wait_for_event(host.log, lambda e: e.kind == "handshake" and "after handshake" in e.error)


def test_key_over_2048_bits_is_a_tls_connection_error(site, host):
    serve(host, chains.build(bits=(2048, 2048, 3072)), "bigkey")
    result = lock(site).call_in()
    assert (result.ok, result.reason) == (False, "TLS connection error: key too large")
    assert "3072-bit" in result.error


def test_lock_whose_anchor_was_replaced_cannot_connect(site, host):
    sim = lock(site)
    sim.fetch_anchor()
    serve(host, chains.build(), "other")
    result = sim.call_in()
    assert (result.ok, result.reason) == (False, "TLS connection error: certificate not trusted")


def test_simulated_lock_applies_the_database_it_is_sent(site, host):
    sim = lock(site)
    assert sim.call_in().ok
    version = host.devices.set_db(SERIAL, {"usrRcrd": {"add": [USER]}})
    assert sim.call_in().ok
    assert sim.users == [USER] and sim.db_version == version
    assert sim.call_in().ok and sim.last_db["db"]["usrRcrd"]["add"] == []  # now current
    assert host.devices.record(SERIAL)["lock_db_version"] == version


def test_unreachable_host_is_a_connection_error(site, host):
    sim = lock(site)
    sim.fetch_anchor()
    port = site.tls_port
    host.stop(["tls"])
    result = sim.call_in()
    assert (result.ok, result.reason) == (False, f"connection error to localhost:{port}")


def test_fleet_calls_in_on_schedule_and_summarises(site, host):
    fleet = make_fleet(4, "127.0.0.1", site.http_port, site.tls_port, site.site_key.hmac_key(),
                       seed=3)
    summary = run_fleet(fleet, interval=0.4, duration=1.0, workers=4)
    assert not summary.failed and summary.ok == summary.total
    per_lock = {s: sum(r.serial == s for r in summary.results) for s in (f.serial for f in fleet)}
    assert all(1 <= n <= 3 for n in per_lock.values()), per_lock
    assert {s.serial for s in host.devices.summaries()} == set(per_lock)


class FakeConnection:
    def close(self):
        pass


def lock_answered(db_reply) -> SimulatedLock:
    """A lock whose host answers GET db with ``db_reply`` (and the other requests with 200)."""
    sim = SimulatedLock(SERIAL, "127.0.0.1", 1, 1, b"k")
    sim.anchor = b"anchor"
    sim._connect = FakeConnection
    sim._exchange = lambda conn, method, path, body, expect: \
        db_reply if "/db/" in path else None
    return sim


@pytest.mark.parametrize("reply", [
    [], {"db": {}, "dbDwnLdTm": "20250101000000", "nxtDbVerTS": 5},
    {"db": [1], "dbDwnLdTm": "20250101000000", "nxtDbVerTS": "0x1"},
    {"db": {"usrRcrd": [USER]}, "dbDwnLdTm": "20250101000000", "nxtDbVerTS": "0x1"},
    {"db": {"usrRcrd": {"add": 5}}, "dbDwnLdTm": "20250101000000", "nxtDbVerTS": "0x1"},
    {"db": {"usrRcrd": {"delete": "148"}}, "dbDwnLdTm": "20250101000000", "nxtDbVerTS": "0x1"},
])
def test_malformed_db_reply_is_a_failed_call_in_with_a_reason(reply):
    result = lock_answered(reply).call_in()
    assert (result.ok, result.reason) == (False, "db answer not understood")


def test_fleet_keeps_going_when_a_call_in_fails_unexpectedly():
    sim = lock_answered({"db": {}, "dbDwnLdTm": "20250101000000", "nxtDbVerTS": "0x1"})
    sim.audit_body = lambda: 1 / 0
    summary = run_fleet([sim], interval=0, duration=0.2, workers=1)
    assert summary.total > 1 and summary.failed == {"unexpected error": summary.total}


def test_hash_that_is_not_ascii_is_a_mismatch(site, host):
    sim = lock(site)
    answers = iter([(200, json.dumps({"cert_url": "http://127.0.0.1/a.der",
                                      "hash": "\u00e9t\u00e9"}).encode()),
                    (200, host_anchor(site))])
    sim._plain_get = lambda *a: next(answers)
    result = sim.call_in()
    assert (result.ok, result.reason) == (False, "certificate hash mismatch")


class SlowLock:
    """Stands in for a lock whose call-in takes ``seconds``; records when each one started."""

    def __init__(self, serial: str, seconds: float, starts: list):
        self.serial, self.seconds, self.starts = serial, seconds, starts
        self.rng = random.Random(0)

    def call_in(self, alert: bool = False) -> CallIn:
        self.starts.append(time.monotonic())
        time.sleep(self.seconds)  # the call-in's work
        return CallIn(self.serial, True, latency=self.seconds)


def test_fleet_starts_no_call_in_after_its_duration():
    starts: list[float] = []
    fleet = [SlowLock(f"00{i:02X}", 0.2, starts) for i in range(4)]
    began = time.monotonic()
    summary = run_fleet(fleet, interval=0, duration=0.3, workers=1)
    assert all(start - began < 0.3 for start in starts), [s - began for s in starts]
    assert summary.total == len(starts) >= 1


def test_summary_reports_failures_by_reason_and_latency_percentiles():
    summary = FleetSummary(locks=2, duration=2.0, ok=99)
    summary.latencies = [i / 1000 for i in range(1, 101)]
    summary.failed["TLS connection error"] = 1
    d = summary.to_dict()
    assert (d["call_ins"], d["per_second"], d["p50_ms"], d["p99_ms"]) == (100, 50.0, 50.5, 99.0)
    assert "failed: TLS connection error: 1" in summary.text()


def test_simulate_command_runs_a_fleet_against_the_host(site, host, capsys):
    code = main(["simulate", "--locks", "3", "--interval", "0", "--duration", "0.5",
                 "--http-port", str(site.http_port), "--tls-port", str(site.tls_port),
                 "--seed", "1", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["ok"] == out["call_ins"] > 0 and out["failed"] == {}
    assert out["p99_ms"] >= out["p50_ms"] > 0
    assert len(host.devices.summaries()) == 3


def test_simulate_shorter_than_the_interval_still_calls_in_every_lock(site, host, capsys):
    """`simulate --locks 5 --duration 4` (interval 10 s by default) made no call-in at all:
    every first call-in fell after the end of the run."""
    code = main(["simulate", "--locks", "5", "--interval", "10", "--duration", "1",
                 "--http-port", str(site.http_port), "--tls-port", str(site.tls_port), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["ok"] == out["call_ins"] == 5
    assert len(host.devices.summaries()) == 5


def test_simulate_against_nothing_exits_1_with_the_reason(settings, site_key, capsys):
    code = main(["simulate", "--locks", "1", "--interval", "0", "--duration", "0.2",
                 "--http-port", "1", "--tls-port", "1"])
    out = capsys.readouterr().out
    assert code == 1 and "failed: connection error to 127.0.0.1:1: " in out
    assert "against http://127.0.0.1:1 (TLS port 1)" in out


@pytest.mark.parametrize("argv", [["--locks", "0"], ["--duration", "0"],
                                  ["--url", "https://example.invalid"]])
def test_simulate_rejects_bad_arguments_with_exit_2(settings, site_key, capsys, argv):
    assert main(["simulate", *argv]) == 2
    assert "error" in capsys.readouterr().err
