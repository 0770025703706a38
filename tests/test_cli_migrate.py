"""``engage-console certs migrate`` (issue 16): start, --status, --finish, --abort, with --json,
against the real host (which follows the certs folder as its watcher would)."""

from __future__ import annotations

import json

import pytest

from console.__main__ import main
from server import pki
from server.simfleet import assign_sources, make_fleet

from . import chains


@pytest.fixture(autouse=True)
def _pooled_keys(monkeypatch):
    chains.reuse_keys(monkeypatch)


def certs(host, capsys, *argv) -> tuple[int, dict]:
    code = main(["certs", *argv, "--json"])
    host.reload_certificates()  # what the host's watcher does within a second
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture
def locks(host, site):
    """Four locks commissioned under the active (demo) anchor; a set 'other' to migrate to."""
    pki.init_set(host.store, host.settings.path("ca_dir"), "other", list(host.settings.host_names))
    fleet = make_fleet(4, "127.0.0.1", site.http_port, site.tls_port, site.site_key.hmac_key(),
                       seed=5)
    assign_sources(fleet)
    assert all(lock.call_in().ok for lock in fleet)
    return fleet


def serials(rows) -> list[str]:
    return sorted(row["serial"] for row in rows)


def test_status_counts_moved_fetched_and_not_fetched_locks(host, locks, capsys):
    code, started = certs(host, capsys, "migrate", "other")
    assert code == 0 and started["started"] and started["not_fetched_count"] == 4
    moved, fetched = locks[0], locks[1]
    moved.anchor = fetched.anchor = None
    assert moved.call_in().ok
    fetched.fetch_anchor()  # started from the app, has not called in since
    code, status = certs(host, capsys, "migrate", "--status")
    assert code == 0 and status["migrating"] is True
    assert serials(status["moved"]) == [moved.serial]
    assert serials(status["fetched"]) == [fetched.serial]
    assert serials(status["not_fetched"]) == sorted(l.serial for l in locks[2:])


def test_finish_is_refused_by_the_preflight_naming_who_has_not_moved(host, locks, capsys):
    certs(host, capsys, "migrate", "other")
    locks[0].anchor = None
    assert all(lock.call_in().ok for lock in locks)  # nobody cut off during the migration
    code, report = certs(host, capsys, "migrate", "--finish")
    assert code == 1 and report["activated"] is False
    assert serials(report["preflight"]["cut_off"]) == sorted(l.serial for l in locks[1:])
    code, report = certs(host, capsys, "migrate", "--finish", "--cut-off-ok")
    assert code == 0 and report["activated"] and host.certificates.current().name == "other"
    assert host.migration.state is None
    assert [lock.call_in().ok for lock in locks] == [True, False, False, False]


def test_abort_returns_to_the_old_anchor_and_names_the_locks_that_fetched_the_new(
        host, locks, capsys):
    certs(host, capsys, "migrate", "other")
    locks[2].anchor = None
    locks[2].fetch_anchor()
    code, report = certs(host, capsys, "migrate", "--abort")
    assert code == 0 and report["fetched_new"] == [locks[2].serial]
    assert host.migration.state is None
    assert [lock.call_in().ok for lock in locks] == [True, True, False, True]


@pytest.mark.parametrize("argv, message", [
    (("rollback",), "rollback is refused: a migration from set demo to set other is under way"),
    (("activate", "demo"), "activating set demo is refused: a migration"),
    (("migrate", "other"), "a migration from set demo to set other is under way"),
    (("delete", "other", "--force"), "set other is in the migration under way (demo -> other)"),
])
def test_activation_rollback_and_a_second_start_are_refused_during_a_migration(
        host, locks, capsys, argv, message):
    certs(host, capsys, "migrate", "other")
    code, report = certs(host, capsys, *argv)
    assert code == 2 and message in report["error"]


def test_a_migration_to_the_same_anchor_is_refused_on_the_command_line(host, capsys):
    pki.renew_set(host.store, host.settings.path("ca_dir"), "demo", "demo-renewed")
    code, report = certs(host, capsys, "migrate", "demo-renewed")
    assert code == 2 and "that is a renewal" in report["error"]
    code, report = certs(host, capsys, "migrate", "--status")
    assert code == 0 and report == {"migrating": False}


def test_simulate_runs_a_fleet_through_a_migration_counting_handshakes_by_chain(
        host, site, capsys, tmp_path):
    pki.init_set(host.store, host.settings.path("ca_dir"), "other", list(host.settings.host_names))
    argv = ["simulate", "--locks", "6", "--interval", "0.3", "--duration", "1.5", "--seed", "5",
            "--fleet-file", str(tmp_path / "fleet.json"), "--http-port", str(site.http_port),
            "--tls-port", str(site.tls_port), "--json"]
    assert main(argv) == 0  # commissioned under the demo anchor
    capsys.readouterr()
    certs(host, capsys, "migrate", "other")
    code = main([*argv, "--refetch-during", "0.5"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["failed"] == {} and summary["refetch_failed"] == {}
    assert len(summary["refetched_during"]) == 3
    chains_ = summary["handshakes_by_chain"]
    assert chains_["old"] > 0 and chains_["new"] > 0
    assert chains_["old"] + chains_["new"] == summary["call_ins"]
