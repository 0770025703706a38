"""The fleet tally (server/devices/tally.py) against the health rule it counts for
(server.devices.health.counts): random fleets, every state's boundary, changes one by one."""

from __future__ import annotations

import datetime as dt
import random
from types import SimpleNamespace

import pytest

from server.devices import health
from server.devices.summary import DeviceSummary
from server.devices.tally import Tally

NOW = dt.datetime(2026, 12, 3, 12, 0, 0, 250_000, tzinfo=dt.timezone.utc)
SETTINGS = SimpleNamespace(callin_interval=600, overdue_factor=2.0)
ANCHORS = ("", "a" * 64, "b" * 64)


def random_summary(rng: random.Random, serial: str) -> DeviceSummary:
    kind = rng.random()
    if kind < 0.05:
        return DeviceSummary(serial=serial, corrupt=True, error="not JSON")
    if kind < 0.1:
        return DeviceSummary(serial=serial, listed=True)  # never seen
    # ages on and around every line: 0, the interval, twice the interval, the future
    age = rng.choice([0, 599.999999, 600, 600.000001, 1199.999999, 1200, 1200.000001,
                      -30, rng.uniform(0, 5000)])
    seen = NOW - dt.timedelta(seconds=age)
    last_seen = rng.choice([seen.isoformat(), seen.replace(tzinfo=None).isoformat(),
                            seen.isoformat(timespec="seconds")]) if kind > 0.12 else "yesterday"
    return DeviceSummary(serial=serial, last_seen=last_seen, anchor_trusted=rng.choice(ANCHORS),
                         tls_failures=int(rng.random() < 0.1))


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("active", [None, "a" * 64, "c" * 64])
def test_the_tally_counts_what_the_health_rule_says(seed, active):
    rng = random.Random(seed)
    fleet = [random_summary(rng, f"{i:016X}") for i in range(300)]
    assert Tally(fleet).counts(NOW, SETTINGS, active) == health.counts(fleet, NOW, SETTINGS,
                                                                       active)


def test_the_tally_follows_each_change_and_removal():
    rng = random.Random(7)
    fleet = {f"{i:04X}": random_summary(rng, f"{i:04X}") for i in range(200)}
    tally = Tally()
    for s in fleet.values():
        tally.add(s)
    for step in range(400):
        serial = rng.choice(sorted(fleet))
        tally.remove(fleet[serial])
        if step % 5 == 0:
            del fleet[serial]
        else:
            fleet[serial] = random_summary(rng, serial)
            tally.add(fleet[serial])
        for active in (None, "b" * 64):
            assert tally.counts(NOW, SETTINGS, active) == health.counts(
                list(fleet.values()), NOW, SETTINGS, active), step


def test_the_lines_move_with_the_clock_and_the_settings():
    s = DeviceSummary(serial="1", last_seen=(NOW - dt.timedelta(seconds=600)).isoformat())
    tally = Tally([s])
    assert tally.counts(NOW, SETTINGS, None)[health.OK] == 1  # exactly one interval: still ok
    later = NOW + dt.timedelta(microseconds=1)
    assert tally.counts(later, SETTINGS, None)[health.DUE] == 1
    assert tally.counts(NOW + dt.timedelta(seconds=600), SETTINGS, None)[health.OVERDUE] == 1
    slow = SimpleNamespace(callin_interval=600, overdue_factor=3.0)
    assert tally.counts(NOW + dt.timedelta(seconds=600), slow, None)[health.DUE] == 1


def test_the_devices_counts_follow_call_ins_failures_and_other_processes(settings):
    """Devices.fleet_counts (the index's tally) against health.counts of its listing, after
    each kind of change: a call-in, a handshake failure, a record another process replaced,
    removed or corrupted."""
    from server.devices.store import Devices

    devices = Devices(settings.path("data_dir"), settings)
    devices.index.rescan_seconds = 0  # see another process's change at the next listing

    def agree():
        now = devices.clock()
        for active in (None, "a" * 64):
            assert devices.fleet_counts(active) == health.counts(
                devices.summaries(), now, settings, active)
        return devices.fleet_counts(None)

    for i in range(40):
        devices.config_callin({"lckPrmtrs": {"lckSn": f"{i:016X}"}}, f"10.0.0.{i}", "tls",
                              anchor_sha256=ANCHORS[1 + i % 2])
    assert agree()[health.OK] == 40
    devices.handshake_failed("10.0.0.3", "unknown CA")
    assert agree()[health.TLS_FAILING] == 1
    folder = settings.path("data_dir")
    (folder / f"{5:016X}.json").write_text("{not json")
    (folder / f"{6:016X}.json").unlink()
    devices.resync()
    counts = agree()
    assert (counts[health.CORRUPT], sum(counts.values())) == (1, 39)


def test_the_index_names_what_changed_since_a_version(settings):
    """Devices.changes: the serials changed since a version, None once too many to name."""
    from server.devices import index
    from server.devices.store import Devices

    devices = Devices(settings.path("data_dir"), settings)
    version, changes = devices.changes(-1)
    assert changes is None  # nothing seen yet: take the whole list
    for i in range(3):
        devices.config_callin({"lckPrmtrs": {"lckSn": f"{i:016X}"}}, "10.0.0.1", "tls")
    version, changes = devices.changes(version)
    assert sorted(changes) == [f"{i:016X}" for i in range(3)]
    assert devices.changes(version) == (version, {})
    (settings.path("data_dir") / f"{1:016X}.json").unlink()
    devices.resync()
    version2, changes = devices.changes(version)
    assert changes == {f"{1:016X}": None}
    path = settings.path("data_dir") / f"{0:016X}.json"
    for i in range(index.CHANGES_KEPT + 1):
        devices.index.put(f"{0:016X}", DeviceSummary(f"{0:016X}", name=f"Door {i}"), path)
    assert devices.changes(version2)[1] is None  # more than are kept: the whole list


def test_a_listing_asked_during_the_first_reading_waits_for_it(settings, monkeypatch):
    """Two threads list at once while the folder is read for the first time: both get every
    record (the second used to get an empty list, and a preflight asked then saw no locks)."""
    import threading

    from server.devices.index import Index
    from server.devices.store import Devices

    writer = Devices(settings.path("data_dir"), settings)
    for i in range(5):
        writer.config_callin({"lckPrmtrs": {"lckSn": f"{i:016X}"}}, "10.0.0.1", "tls")
    devices = Devices(settings.path("data_dir"), settings)
    other: list = []
    read = Index._summary_from_disk

    def slow_first_read(index, *args):
        if not other:  # in the middle of the first reading, someone else asks for the list
            thread = threading.Thread(target=lambda: other.append(devices.summaries()))
            other.append(thread)
            thread.start()
            thread.join(timeout=0.5)  # it must wait for this reading, not answer at once
        return read(index, *args)

    monkeypatch.setattr(Index, "_summary_from_disk", slow_first_read)
    assert len(devices.summaries()) == 5
    other[0].join(timeout=10)
    assert len(other[1]) == 5
