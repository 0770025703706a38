"""Listing states over the real listeners: listed -> provisioned (first good call-in) ->
expired (not provisioned within activation_hours); relist; provision_networks."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from console.__main__ import main
from server.devices.listing import listing_state
from server.devices.store import Devices

from .helpers import wait_for_event
from .test_callins import CONFIG, SERIAL, RawConnection, config_body, data_files, status

NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def conn(site):
    c = RawConnection(site, site.fetch_anchor()[1])
    yield c
    c.close()


@pytest.fixture
def listed(host):
    """SERIAL listed at NOW, with the allowlist on and the host's clock at NOW."""
    host.settings.allowlist = True
    host.devices.clock = lambda: NOW
    host.devices.import_rows(host.devices.parse_import(f"{SERIAL},Front door"))
    return host


def later(host, hours: float) -> None:
    host.devices.clock = lambda: NOW + dt.timedelta(hours=hours)


def config_event(host, after: int = 0):
    """The latest PUT Config event with a sequence number past ``after``."""
    return wait_for_event(host.log, lambda e: e.path == CONFIG and e.seq > after)[-1]


def test_first_good_call_in_provisions_a_listed_lock_and_is_a_provision_event(listed, conn):
    assert listed.devices.listing_state(listed.devices.record(SERIAL)) == "listed"
    later(listed, 47)
    head, _ = conn.send("PUT", CONFIG, config_body())
    assert status(head) == 200
    record = listed.devices.record(SERIAL)
    assert listed.devices.listing_state(record) == "provisioned"
    assert record["provisioned_at"] == (NOW + dt.timedelta(hours=47)).isoformat()
    first = config_event(listed)
    assert first.provision == "provisioned: first call-in"
    head, _ = conn.send("PUT", CONFIG, config_body())
    assert status(head) == 200 and config_event(listed, first.seq).provision == ""


def test_a_listing_not_provisioned_in_time_expires_and_is_refused_with_403(listed, conn):
    later(listed, 48.01)
    before = data_files(listed)
    head, reply = conn.send("PUT", CONFIG, config_body())
    assert status(head) == 403 and head.count(b"application/json")
    assert "listing expired: it did not provision within 48 hours" in json.loads(reply)["error"]
    assert data_files(listed) == before
    event = config_event(listed)
    assert event.failed and event.provision.startswith("refused: lock 00A1B2C3D4E5F607 is "
                                                       "refused: its listing expired")
    assert listed.devices.listing_state(listed.devices.record(SERIAL)) == "expired"


def test_activation_hours_sets_the_window(listed, conn):
    listed.settings.activation_hours = 2
    later(listed, 3)
    head, _ = conn.send("PUT", CONFIG, config_body())
    assert status(head) == 403


def test_relist_gives_an_expired_listing_a_new_window(listed, conn, capsys):
    later(listed, 50)
    assert status(conn.send("PUT", CONFIG, config_body())[0]) == 403
    listed.devices.relist([SERIAL])
    assert listed.devices.listing_state(listed.devices.record(SERIAL)) == "listed"
    later(listed, 97)
    assert status(conn.send("PUT", CONFIG, config_body())[0]) == 200


def test_an_unlisted_lock_is_refused_with_403_and_a_flagged_provision_event(host, conn):
    host.settings.allowlist = True
    head, reply = conn.send("PUT", CONFIG, config_body())
    assert status(head) == 403 and "not on the allowlist" in json.loads(reply)["error"]
    event = config_event(host)
    assert event.failed and "not on the allowlist" in event.provision
    assert event.to_dict()["provision"] == event.provision


def test_first_registration_from_outside_the_provision_networks_is_refused(host, conn):
    host.settings.provision_networks = ["10.0.0.0/8", "fd00::/8"]
    head, reply = conn.send("PUT", CONFIG, config_body())
    assert status(head) == 403
    assert "first registration comes from 127.0.0.1, outside provision_networks" in \
        json.loads(reply)["error"]
    assert data_files(host) == {}
    host.settings.provision_networks = ["127.0.0.0/8"]
    assert status(conn.send("PUT", CONFIG, config_body())[0]) == 200
    host.settings.provision_networks = ["10.0.0.0/8"]  # provisioned: no longer a first one
    assert status(conn.send("PUT", CONFIG, config_body())[0]) == 200


def test_a_listing_from_before_listing_states_does_not_expire():
    record = {"listed": True}
    assert listing_state(record, NOW + dt.timedelta(days=999), 48) == "listed"
    assert listing_state({"listed": False}, NOW, 48) == "unlisted"


def test_cli_relist_names_locks_without_a_record(settings, capsys):
    devices = Devices(settings.path("data_dir"), settings)
    devices.import_rows(devices.parse_import("00A1\n"))
    assert main(["devices", "relist", "00a1", "00B2"]) == 2
    out = capsys.readouterr()
    assert "Relisted 1 lock(s) for 48 hours." in out.out and "no record for 00B2" in out.err
    assert main(["devices", "show", "00A1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["record"]["listing_state"] == "listed"
