"""The "Done when" of issue 16: the real host, 50 simulated locks each from its own loopback
address, 40 % of which re-fetch the anchor at random moments. Through a migration none of them
fails a TLS call-in from its start to ``--finish``, and the finish names exactly the locks that
never re-fetched; through a plain activation of the same set the same locks fail."""

from __future__ import annotations

import pytest

from server import pki
from server.simfleet import Refetches, assign_sources, by_chain, make_fleet, run_fleet

from .test_cli_migrate import _pooled_keys, certs  # noqa: F401 (an autouse fixture)

LOCKS, SHARE, SEED = 50, 0.4, 16


@pytest.mark.slow
@pytest.mark.parametrize("how", ["migrate", "activate"])
def test_refetching_locks_never_fail_through_a_migration_and_do_through_an_activation(
        host, site, capsys, how):
    pki.init_set(host.store, host.settings.path("ca_dir"), "other", list(host.settings.host_names))
    new = host.store.load("other").anchor_sha256
    locks = make_fleet(LOCKS, "127.0.0.1", site.http_port, site.tls_port,
                       site.site_key.hmac_key(), seed=SEED)
    assign_sources(locks)
    assert all(lock.call_in().ok for lock in locks)  # commissioned under the demo anchor

    argv = ("migrate", "other") if how == "migrate" else ("activate", "other", "--cut-off-ok")
    assert certs(host, capsys, *argv)[0] == 0
    results = [lock.call_in() for lock in locks]  # every lock calls in once straight after
    during = Refetches(locks, SHARE, within=1.5, seed=SEED).start()
    try:
        summary = run_fleet(locks, interval=0.5, duration=2.5, workers=8)
    finally:
        during.stop()
    assert sorted(during.done) == during.serials and len(during.serials) == LOCKS * SHARE
    results += summary.results + [lock.call_in() for lock in locks]  # each after its re-fetch
    refetched = set(during.serials)
    failed = {r.serial for r in results if not r.ok}
    never = sorted(lock.serial for lock in locks if lock.serial not in refetched)

    if how == "activate":  # the cliff: every lock fails until it re-fetches, the rest for good
        assert failed == {lock.serial for lock in locks}
        assert {r.reason for r in results if not r.ok} == {
            "TLS connection error: certificate not trusted"}
        return
    assert failed == set()  # re-fetched or not, no lock failed a call-in during the migration
    handshakes = by_chain(summary.chains, new)
    assert handshakes["new"] and handshakes["old"]
    code, report = certs(host, capsys, "migrate", "--finish")
    assert code == 1
    assert sorted(s["serial"] for s in report["preflight"]["cut_off"]) == never
    code, report = certs(host, capsys, "migrate", "--finish", "--cut-off-ok")
    assert code == 0 and host.certificates.current().name == "other"
    after = {lock.serial: lock.call_in().ok for lock in locks}
    assert sorted(s for s, ok in after.items() if not ok) == never
