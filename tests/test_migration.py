"""Staged anchor migration (issue 16): its state in the certs folder, and the real host serving
each lock, per connection, the chain of the anchor it holds while ``/current`` names the new one."""

from __future__ import annotations


import pytest

from server import pki
from server.devices.trust import Evidence
from server.errors import CertificateError
from server.host import Host
from server.migration import service
from server.migration.choice import rule
from server.migration.state import read_state
from server.simfleet import assign_sources, make_fleet

from . import chains
from .helpers import http_get, until, wait_for_event

OLD, NEW = "a" * 64, "b" * 64


@pytest.fixture(autouse=True)
def _pooled_keys(monkeypatch):
    chains.reuse_keys(monkeypatch)


@pytest.fixture
def other(host):
    """A set under another anchor than the active (demo) one."""
    pki.init_set(host.store, host.settings.path("ca_dir"), "other", list(host.settings.host_names))
    return host.store.load("other")


def migrate(host, name="other"):
    state = service.start(host.certificates, name, by="test")
    host.migration.reload()  # what the host's watcher does within a second
    return state


def fleet(site, count, same=False, seed=21):
    locks = make_fleet(count, "127.0.0.1", site.http_port, site.tls_port,
                       site.site_key.hmac_key(), seed=seed)
    assign_sources(locks, same=same)
    return locks


def trusted(host, lock) -> str:
    return host.devices.record(lock.serial)["anchor_trusted"]["sha256"]


# --- state -----------------------------------------------------------------------------------

def test_a_migration_to_the_same_anchor_is_refused_as_a_renewal(host):
    pki.renew_set(host.store, host.settings.path("ca_dir"), "demo", "demo-renewed")
    with pytest.raises(CertificateError, match="same anchor.*renewal"):
        service.start(host.certificates, "demo-renewed")
    assert read_state(host.store.root) is None


def test_the_migration_survives_a_restart_of_the_host(host, settings, site, other):
    migrate(host)
    lock = fleet(site, 1)[0]
    lock.fetch_anchor()  # fetches the new anchor, then the host restarts before it calls in
    host.close()
    again = Host.from_settings(settings, env={})
    try:
        again.start()
        assert again.migration.state.to_set == "other"
        lock.http_port, lock.tls_port = (again.listeners[n].bound_port for n in ("http", "tls"))
        assert lock.call_in().ok  # the download was kept: the new chain, first time
        assert again.devices.record(lock.serial)["anchor_trusted"]["sha256"] == \
            other.anchor_sha256
    finally:
        again.close()


def test_start_and_abort_are_in_the_history_and_a_rollback_is_refused_meanwhile(host, other):
    migrate(host)
    with pytest.raises(CertificateError, match="rollback is refused: a migration from set demo "
                                               "to set other is under way"):
        host.certificates.rollback()
    with pytest.raises(CertificateError, match="activating set other is refused"):
        host.certificates.activate("other")
    with pytest.raises(CertificateError, match="under way"):
        service.start(host.certificates, "other")
    service.abort(host.certificates, host.devices, by="test")
    actions = [e["action"] for e in host.store.history()]
    assert actions[-2:] == ["migration-start", "migration-abort"]
    assert host.store.rollback_target() is None  # not activations: nothing to roll back to
    assert read_state(host.store.root) is None


def test_finish_is_an_activation_and_ends_the_migration(host, other):
    migrate(host)
    active = service.finish(host.certificates, by="test")
    assert active.name == "other" and read_state(host.store.root) is None
    assert host.store.history()[-1]["action"] == "migration-finish"
    assert host.store.rollback_target() == "demo"


# --- serving ---------------------------------------------------------------------------------

def test_current_and_the_legacy_path_name_the_new_anchor_during_a_migration(host, site, other):
    migrate(host)
    answer, der = site.fetch_anchor()
    assert der == other.anchor_der and answer["hash"] == site.site_key.hash(other.anchor_der)
    status, _, legacy = http_get(site.http_port, "/static/Device_Certificates/anchor.der")
    assert status == 200 and legacy == other.anchor_der
    service.abort(host.certificates, host.devices)
    host.migration.reload()
    assert site.fetch_anchor()[1] == host.certificates.current().cert_set.anchor_der


def test_each_lock_gets_the_chain_of_the_anchor_it_holds(host, site, other):
    locks = fleet(site, 4)
    assert all(lock.call_in().ok for lock in locks)  # all commissioned on the old anchor
    old = host.certificates.current().cert_set.anchor_sha256
    migrate(host)
    for lock in locks[:2]:
        lock.anchor = None  # started from the ENGAGE app: re-fetches
    assert all(lock.call_in().ok for lock in locks)
    assert [trusted(host, lock) for lock in locks] == [other.anchor_sha256] * 2 + [old] * 2
    assert all(lock.call_in().ok for lock in locks)  # and again, from the proofs


def test_behind_a_shared_address_the_old_chain_and_a_failure_retries_the_new_one_once(
        host, site, other):
    locks = fleet(site, 2, same=True)
    assert all(lock.call_in().ok for lock in locks)
    migrate(host)
    locks[0].anchor = None
    first = locks[0].call_in()
    assert not first.ok  # a wrong guess: the old chain, by the rule for a shared address
    wait_for_event(host.log, lambda e: e.kind == "chain"
                   and e.note == "served old chain: address shared by 2 locks")
    assert until(lambda: host.migration._live.choice._retry)  # the failure was seen
    assert locks[0].call_in().ok  # the other chain, once
    wait_for_event(host.log, lambda e: e.kind == "chain" and e.note.startswith(
        "served new chain once: the last handshake from this address failed with the old one"))
    assert trusted(host, locks[0]) == other.anchor_sha256
    assert locks[1].call_in().ok  # the other lock there still gets the old chain


@pytest.mark.parametrize("facts, expected", [
    # (serials, fetch (sha, when, before), proofs) -> (new chain, note)
    (((), None, {}), (False, "")),
    ((("S1",), None, {"S1": (OLD, 1.0)}), (False, "")),
    ((("S1",), (NEW, 2.0, ""), {"S1": (OLD, 1.0)}), (True, "")),
    ((("S1",), (NEW, 1.0, ""), {"S1": (OLD, 2.0)}), (False, "")),  # proved old after fetching
    ((("S1",), (OLD, 3.0, NEW), {"S1": (NEW, 2.0)}),
     (False, "served old chain: address fetched both anchors, the old one last")),
    (((), (NEW, 3.0, OLD), {}),
     (True, "served new chain: address fetched both anchors, the new one last")),
    ((("S1", "S2"), (NEW, 3.0, ""), {"S1": (NEW, 2.0)}),
     (False, "served old chain: address shared by 2 locks")),
    ((("S1", "S2"), None, {"S1": (NEW, 2.0), "S2": (NEW, 1.0)}), (True, "")),
])
def test_the_chain_rule(facts, expected):
    serials, fetch, proofs = facts
    assert rule(Evidence(serials, fetch, proofs), OLD, NEW) == expected
