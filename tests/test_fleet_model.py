"""The devices screen's fleet model (console/fleet_model.py) against the fleet worked out from
scratch: random fleets changing call-in by call-in while the clock runs past due lines and
listing windows, under every sort and a filter."""

from __future__ import annotations

import datetime as dt
import random
from types import SimpleNamespace

import pytest

from console import fleet_rows
from console.fleet_model import FleetModel
from server.devices import health
from server.devices.summary import DeviceSummary

START = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.timezone.utc)
SETTINGS = SimpleNamespace(callin_interval=600, overdue_factor=2.0, activation_hours=1.0)
ANCHOR = "a" * 64


def a_lock(rng: random.Random, serial: str, now: dt.datetime) -> DeviceSummary:
    if rng.random() < 0.1:
        return DeviceSummary(serial=serial, listed=True,
                             listed_at=(now - dt.timedelta(minutes=rng.uniform(0, 90)))
                             .isoformat())
    seen = now - dt.timedelta(seconds=rng.uniform(0, 1500))
    return DeviceSummary(serial=serial, name=rng.choice(["Front", "Back", "Lab"]),
                         last_seen=seen.isoformat(), anchor_trusted=rng.choice(["", ANCHOR,
                                                                                 "b" * 64]),
                         tls_failures=int(rng.random() < 0.05))


def from_scratch(summaries, now, column, reverse, passes):
    locks = [fleet_rows.lock_of(s, now, SETTINGS, ANCHOR) for s in summaries]
    key = fleet_rows.SORT_KEYS[column]
    shown = sorted((lock for lock in locks if passes(lock)),
                   key=lambda lock: (key(lock), lock.summary.serial), reverse=reverse)
    return {lock.summary.serial: lock for lock in locks}, [lock.summary.serial for lock in shown]


@pytest.mark.parametrize("column", [key for key, _ in fleet_rows.COLUMNS])
@pytest.mark.parametrize("text", ["", "state:due", "front"])
def test_the_model_follows_call_ins_the_clock_and_removals(column, text):
    rng = random.Random(f"{column}{text}")
    now = START
    fleet = {f"{i:04X}": a_lock(rng, f"{i:04X}", now) for i in range(120)}
    model = FleetModel(SETTINGS)
    passes = fleet_rows.parse_filter(text)
    changes = None  # the first update takes the whole listing
    for step in range(60):
        reverse = step % 7 == 3
        if changes is None or step % 4 == 0:  # the whole listing, or what the index says changed
            model.update(now, ANCHOR, listing=list(fleet.values()))
        else:
            model.update(now, ANCHOR, changes=changes)
        changes = {}
        model.set_view(column, reverse, text, passes)
        locks, order = from_scratch(fleet.values(), now, column, reverse, passes)
        assert model.locks == locks, step
        assert [lock.summary.serial for lock in model.shown(50)[0]] == order[:50], step
        assert model.shown(50)[1] == len(order)
        assert model.counts() == health.counts(list(fleet.values()), now, SETTINGS, ANCHOR)
        now += dt.timedelta(seconds=rng.uniform(0, 120))  # lines are crossed with no call-in
        for serial in rng.sample(sorted(fleet), 3 if step % 9 else 40):  # a few call in
            fleet[serial] = changes[serial] = fleet[serial]._replace(
                last_seen=now.isoformat(), tls_failures=0)
        if step % 10 == 9:
            gone = rng.choice(sorted(fleet))
            del fleet[gone]
            changes[gone] = None


def test_a_changed_anchor_works_every_lock_out_again():
    now = START
    fleet = [DeviceSummary(serial=f"{i}", last_seen=now.isoformat(), anchor_trusted=ANCHOR)
             for i in range(5)]
    model = FleetModel(SETTINGS)
    model.update(now, ANCHOR, listing=fleet)
    assert model.counts()[health.OK] == 5
    assert model.update(now, ANCHOR, listing=fleet) == set()  # nothing new: nothing worked out
    model.update(now, "c" * 64, changes={})
    assert model.counts()[health.ANCHOR_STALE] == 5
