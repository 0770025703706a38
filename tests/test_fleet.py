"""The fleet (issue 13): which lock trusts which anchor, recorded by the real host from real
handshakes; lock health in words; and the activation preflight that names exactly the locks a
new anchor cuts off, through the command line, with the host running or stopped."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from console.__main__ import main
from server import pki
from server.certstore import CertStore
from server.devices import health
from server.devices.summary import DeviceSummary
from server.devices.store import Devices
from server.devices import trust as trust_module
from server.devices.trust import Trust
from server.simfleet import assign_sources, make_fleet, refetch

from . import chains
from .helpers import until

UNKNOWN_CA = "client does not trust our chain (unknown CA)"


@pytest.fixture(autouse=True)
def _pooled_keys(monkeypatch):
    chains.reuse_keys(monkeypatch)


def run(capsys, *argv) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def fleet(site, count: int, same: bool = False, seed: int = 13):
    locks = make_fleet(count, "127.0.0.1", site.http_port, site.tls_port,
                       site.site_key.hmac_key(), seed=seed)
    assign_sources(locks, same=same)
    return locks


def call_in(locks) -> dict[str, bool]:
    return {lock.serial: lock.call_in().ok for lock in locks}


def record(host, serial: str) -> dict:
    return host.devices.record(serial)


def activate(host, capsys, *argv) -> tuple[int, dict]:
    """``certs ARGV --json`` on the command line, then the running host follows (as its watcher
    would within a second)."""
    code, out = run(capsys, "certs", *argv, "--json")
    host.reload_certificates()
    return code, json.loads(out)


# --- the "Done when" test ------------------------------------------------------------------------

def test_preflight_names_exactly_the_locks_a_new_anchor_cuts_off(host, site, capsys):
    pki.init_set(host.store, host.settings.path("ca_dir"), "other",
                 list(host.settings.host_names))
    locks = fleet(site, 6)
    assert all(call_in(locks).values())  # every lock commissions under the demo anchor
    demo = host.store.load("demo").anchor_sha256
    assert {record(host, l.serial)["anchor_trusted"]["sha256"] for l in locks} == {demo}

    code, report = activate(host, capsys, "activate", "other")
    assert code == 1 and report["activated"] is False
    assert report["preflight"]["cut_off_count"] == 6  # none holds the new anchor yet
    code, report = activate(host, capsys, "activate", "other", "--cut-off-ok")
    assert code == 0 and host.certificates.current().name == "other"

    refetched = refetch(locks, 0.5, seed=1)  # these start from the ENGAGE app: fetch again
    outcome = call_in(locks)
    assert {s for s, ok in outcome.items() if ok} == set(refetched)
    kept = sorted(set(outcome) - set(refetched))
    for serial in kept:  # the host saw each one's unknown-CA alert, from its own address
        assert until(lambda: record(host, serial).get("tls_failures", {}).get("count"))
        assert record(host, serial)["tls_failures"]["last"][-1]["reason"] == UNKNOWN_CA

    code, report = activate(host, capsys, "rollback")  # back to the demo anchor
    assert code == 1
    named = [lock["serial"] for lock in report["preflight"]["cut_off"]]
    assert named == refetched  # they hold the other anchor now; the rest still hold demo's
    code, _ = activate(host, capsys, "rollback", "--cut-off-ok")
    assert code == 0 and host.certificates.current().name == "demo"
    outcome = call_in(locks)
    assert sorted(s for s, ok in outcome.items() if not ok) == named

    pki.renew_set(host.store, host.settings.path("ca_dir"), "demo", "demo-renewed")
    code, report = activate(host, capsys, "activate", "demo-renewed")
    assert code == 0 and report["preflight"]["same_anchor"] is True
    assert report["preflight"]["cut_off"] == []
    assert "all 6 locks keep trusting this anchor" in report["preflight"]["message"]
    assert {s for s, ok in call_in(locks).items() if ok} == set(kept)


# --- attribution by address ------------------------------------------------------------------------

def test_anchor_fetched_is_inferred_from_the_address_and_ambiguous_behind_nat(host, site):
    own, shared = fleet(site, 2), fleet(site, 2, same=True, seed=14)
    for lock in own:
        assert lock.call_in().ok
        fetched = record(host, lock.serial)["anchor_fetched"]
        assert fetched["inferred"] == "from address" and fetched["address"] == lock.source
        assert fetched["sha256"] == host.certificates.current().cert_set.anchor_sha256
    for lock in shared:
        lock.source = "127.0.0.200"  # both behind one address, that of no other lock
        assert lock.call_in().ok
    second = record(host, shared[1].serial)["anchor_fetched"]
    assert second["inferred"] == "ambiguous" and second["sha256"] == ""
    assert (second["shared_with"], second["shared_count"]) == ([shared[0].serial], 1)


def test_a_record_names_a_few_of_the_locks_behind_one_address_and_counts_them_all():
    """Hundreds of locks behind one NAT: each record would otherwise list all the others."""
    trust = Trust(3600)
    trust.fetched("10.9.9.9", "a" * 64, "2026-12-03T00:00:00+00:00")
    serials = [f"{i:04X}" for i in range(trust_module.SHARED_NAMED + 5)]
    for serial in serials:
        record: dict = {}
        trust.fold(record, serial, "10.9.9.9", "a" * 64, "2026-12-03T00:00:00+00:00")
    fetched = record["anchor_fetched"]
    assert fetched["shared_with"] == serials[:trust_module.SHARED_NAMED]
    assert fetched["shared_count"] == len(serials) - 1


def test_handshake_failures_follow_a_lock_that_changed_address():
    trust = Trust(attribution_seconds=60, clock=lambda: 0.0)
    trust.fold({}, "A1", "10.0.0.5", "aa", "t0")
    trust.fold({}, "A1", "10.0.0.6", "aa", "t1")  # the lock moved
    assert trust.failed("10.0.0.5", "unknown CA", "t2") is None
    serial, failures = trust.failed("10.0.0.6", "unknown CA", "t3")
    assert serial == "A1" and [f["address"] for f in failures] == ["10.0.0.6"]


def test_failures_from_an_address_two_locks_share_are_attributed_to_neither():
    trust = Trust(attribution_seconds=60, clock=lambda: 0.0)
    trust.fold({}, "A1", "10.0.0.5", "aa", "t0")
    trust.fold({}, "B2", "10.0.0.5", "aa", "t0")
    assert trust.failed("10.0.0.5", "unknown CA", "t1") is None


def test_attribution_window_runs_on_the_monotonic_clock_not_the_wall_clock():
    now = [0.0]
    trust = Trust(attribution_seconds=3600, clock=lambda: now[0])
    trust.fetched("10.0.0.5", "bb", "2031-01-01T00:00:00+00:00")  # wall clock jumped ahead
    now[0] = 10.0
    late = {}
    trust.fold(late, "A1", "10.0.0.5", "bb", "2020-01-01T00:00:00+00:00")  # and back
    assert late["anchor_fetched"]["sha256"] == "bb"
    now[0] = 3611.0
    stale = {}
    trust.fold(stale, "A1", "10.0.0.5", "bb", "t")
    assert "anchor_fetched" not in stale  # an hour later: no longer attributed


# --- health ----------------------------------------------------------------------------------------

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.timezone.utc)


def seen(seconds_ago: float, **fields) -> DeviceSummary:
    when = (NOW - dt.timedelta(seconds=seconds_ago)).isoformat()
    return DeviceSummary(serial="00A1", last_seen=when, anchor_trusted="aa", **fields)


@pytest.mark.parametrize("summary, state", [
    (seen(100), "ok"),
    (seen(700), "due"),
    (seen(1200), "overdue"),
    (seen(100, tls_failures=1), "tls-failing"),
    (seen(100)._replace(anchor_trusted="bb"), "anchor-stale"),
    (DeviceSummary(serial="00A1"), "never-seen"),
    (DeviceSummary(serial="00A1", corrupt=True), "corrupt"),
    (seen(-86400), "ok"),  # the clock was set back: last seen "tomorrow" is just seen
])
def test_lock_health_in_words(settings, summary, state):
    assert health.health(summary, NOW, settings, "aa") == state


def test_overdue_factor_is_a_setting(settings):
    settings.overdue_factor = 3.0
    assert health.health(seen(1200), NOW, settings, "aa") == "due"


# --- the command line with the host stopped --------------------------------------------------------

@pytest.fixture
def stopped_site(settings, site_key):
    """Two sets with their own anchors, 'first' active, and no host running."""
    store = CertStore(settings.path("certs_dir"))
    for name in ("first", "second"):
        pki.init_set(store, settings.path("ca_dir"), name, list(settings.host_names))
    store.commit_activation(store.load("first"))
    return store


def write_records(settings, anchor: str, serials=("00A1", "00B2")) -> Devices:
    devices = Devices(settings.path("data_dir"), settings)
    for serial in serials:
        devices.config_callin({"lckPrmtrs": {"lckSn": serial}}, "10.0.0.9", "tls",
                              anchor_sha256=anchor)
    return devices


def test_activation_with_the_host_stopped_reads_the_records(stopped_site, settings, capsys):
    write_records(settings, stopped_site.load("first").anchor_sha256)
    code, out = run(capsys, "certs", "activate", "second")
    assert code == 1 and "2 of 2 known locks" in out and "00A1" in out and "00B2" in out
    assert "unknown CA until each is re-commissioned" in out
    assert stopped_site.active_name() == "first"


def test_a_corrupt_record_beside_good_ones(stopped_site, settings, capsys):
    write_records(settings, stopped_site.load("second").anchor_sha256)
    (settings.path("data_dir") / "0BAD.json").write_text("{")
    code, report = run(capsys, "certs", "activate", "second", "--json")
    assert code == 1
    assert [(l["serial"], l["state"]) for l in json.loads(report)["preflight"]["cut_off"]] == \
        [("0BAD", "corrupt")]  # the two that hold the anchor are fine; the corrupt one unknown
    code, out = run(capsys, "devices", "status")
    assert code == 1 and out.startswith("3 lock(s): ") and "1 corrupt" in out


def test_zero_known_locks_is_said_as_such(stopped_site, settings, capsys):
    code, out = run(capsys, "certs", "activate", "second")
    assert code == 0 and "No known locks" in out


def test_records_from_before_trust_was_kept_show_unknown(stopped_site, settings, capsys):
    data = settings.path("data_dir")
    data.mkdir()
    last = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    (data / "00C3.json").write_text(json.dumps({"serial": "00C3", "last_seen": last}))
    code, out = run(capsys, "devices", "list", "--json")
    assert code == 0
    [lock] = json.loads(out)
    assert (lock["trust"], lock["state"]) == ("unknown", "ok")
    code, out = run(capsys, "certs", "activate", "second")
    assert code == 1 and "trust unknown" in out


def test_simulate_keeps_installed_anchors_and_refetches_a_fraction(host, site, capsys, tmp_path):
    pki.init_set(host.store, host.settings.path("ca_dir"), "other",
                 list(host.settings.host_names))
    argv = ["simulate", "--locks", "4", "--interval", "100", "--duration", "1", "--seed", "5",
            "--fleet-file", str(tmp_path / "fleet.json"), "--http-port", str(site.http_port),
            "--tls-port", str(site.tls_port), "--json"]
    code, out = run(capsys, *argv)
    assert code == 0 and json.loads(out)["ok"] == 4
    addresses = {s.address for s in host.devices.summaries()}
    assert addresses == {"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"}
    host.certificates.activate("other")
    code, out = run(capsys, *argv, "--refetch-fraction", "0.5")
    summary = json.loads(out)
    assert code == 1 and summary["ok"] == 2 and len(summary["refetched"]) == 2
    assert summary["failed"] == {"TLS connection error: certificate not trusted": 2}
