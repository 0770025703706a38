"""The fleet the devices screen shows, kept current one changed lock at a time, so that a call-in
in a fleet of 100,000 costs the screen a few binary searches rather than a pass over every lock.

Each lock's facts in words (:class:`console.fleet_rows.Lock`) are worked out again only when its
summary changed (the index hands out the same object for a record that did not change), when the
moment its state or listing next changes by the clock alone has come (a heap of those moments:
``ok`` becomes ``due`` one interval after its call-in, ``overdue`` at ``overdue_factor``
intervals, a listing expires ``activation_hours`` after ``listed_at``), or when the active anchor
changed. The locks that pass the filter are kept sorted by the chosen column; the screen draws
the first rows of that list. The console makes the model once, as it starts, in a worker thread
(100,000 locks take seconds to work out), so that the devices screen opens on it at once; every
use is in a worker thread, under one lock."""

from __future__ import annotations

import bisect
import collections
import datetime as dt
import heapq
import math
import threading

from server.devices import health, listing
from server.devices.summary import DeviceSummary

from . import fleet_rows
from .fleet_rows import Lock


def _us(moment: dt.datetime) -> int:
    return (moment - health.EPOCH) // health.MICROSECOND


def next_change(lock: Lock, settings) -> float:
    """The moment (microseconds since 1970) the lock's state or listing next changes with no
    call-in; infinity for never."""
    s, at = lock.summary, math.inf
    seen = health.seen_us(s.last_seen) if s.last_seen else None
    if seen is not None and lock.state in (health.OK, health.DUE):
        factor = 1 if lock.state == health.OK else settings.overdue_factor
        at = seen + round(factor * settings.callin_interval * 1_000_000) + 1
    if lock.listing == listing.LISTED and s.listed_at:
        try:
            listed = _us(dt.datetime.fromisoformat(s.listed_at))
        except (TypeError, ValueError):
            return at
        at = min(at, listed + round(settings.activation_hours * 3600 * 1_000_000) + 1)
    return at


class FleetModel:
    """The locks in words, their counts per state, and the sorted list of those shown."""

    def __init__(self, settings):
        self.settings = settings
        self.locks: dict[str, Lock] = {}
        self.states: collections.Counter[str] = collections.Counter()
        self._changes: list[tuple[float, str]] = []  # heap of (next_change, serial)
        self._anchor: str | None = None
        self._view: tuple = ("serial", False, "")
        self._passes = fleet_rows.parse_filter("")
        self._key = fleet_rows.SORT_KEYS["serial"]
        self._shown: list[tuple] = []  # (sort key, serial) of the locks that pass, ascending
        self.version = -1  # of the device index, as last taken
        self.lock = threading.Lock()

    def follow(self, devices, now: dt.datetime, anchor: str | None) -> set[str]:
        """Take what changed in ``devices`` (:class:`server.devices.store.Devices`) since the
        last time, under :attr:`lock`; the serials worked out again or gone."""
        version, changes = devices.changes(self.version)
        listing = devices.summaries() if changes is None else None
        changed = self.update(now, anchor, listing, changes)
        self.version = version
        return changed

    def update(self, now: dt.datetime, anchor: str | None,
               listing: list[DeviceSummary] | None = None,
               changes: dict[str, DeviceSummary | None] | None = None) -> set[str]:
        """Take a whole ``listing`` or the ``changes`` since the last (serial -> its summary,
        None when gone), under :attr:`lock`; the serials worked out again or gone."""
        if listing is not None:
            fresh = {s.serial: s for s in listing}
            changes = {serial: s for serial, s in fresh.items()
                       if (lock := self.locks.get(serial)) is None or lock.summary is not s}
            changes.update((serial, None) for serial in self.locks if serial not in fresh)
        changes = dict(changes or {})
        if anchor != self._anchor:
            self._anchor = anchor
            changes.update((serial, lock.summary) for serial, lock in self.locks.items()
                           if serial not in changes)
        now_us = _us(now)
        while self._changes and self._changes[0][0] <= now_us:
            serial = heapq.heappop(self._changes)[1]  # its time came (or an older entry's)
            if serial not in changes and serial in self.locks:
                changes[serial] = self.locks[serial].summary
        if len(changes) > len(self.locks) // 8:  # many: work the lists out afresh
            state = health.judge(now, self.settings, anchor)
            for serial, summary in changes.items():
                if summary is None:
                    self.locks.pop(serial, None)
                else:
                    self.locks[serial] = fleet_rows.lock_of(summary, now, self.settings, anchor,
                                                            state)
            self._rebuild()
        else:
            for serial, summary in changes.items():
                self._drop(serial)
                if summary is not None:
                    self._put(summary, now)
        return set(changes)

    def set_view(self, column: str, reverse: bool, text: str, passes) -> bool:
        """Sort by ``column`` (``reverse``), show the locks ``passes`` lets through; whether
        that is a change (then the shown list is made again)."""
        view = (column, reverse, text)
        if view == self._view:
            return False
        self._view, self._passes = view, passes
        self._key = fleet_rows.SORT_KEYS[column]
        self._shown = self._sorted()
        return True

    def shown(self, limit: int) -> tuple[list[Lock], int]:
        """The first ``limit`` locks in the chosen order, and how many pass the filter."""
        rows = self._shown[-limit:][::-1] if self._view[1] else self._shown[:limit]
        return [self.locks[serial] for _, serial in rows], len(self._shown)

    def counts(self) -> dict[str, int]:
        return {state: self.states[state] for state in health.STATES}

    def _sorted(self) -> list[tuple]:
        key, passes = self._key, self._passes
        return sorted((key(lock), serial) for serial, lock in self.locks.items() if passes(lock))

    def _rebuild(self) -> None:
        self.states = collections.Counter(lock.state for lock in self.locks.values())
        self._shown = self._sorted()
        self._changes = [(at, serial) for serial, lock in self.locks.items()
                         if (at := next_change(lock, self.settings)) != math.inf]
        heapq.heapify(self._changes)

    def _drop(self, serial: str) -> None:
        lock = self.locks.pop(serial, None)
        if lock is None:
            return
        self.states[lock.state] -= 1
        if self._passes(lock):
            entry = (self._key(lock), serial)
            del self._shown[bisect.bisect_left(self._shown, entry)]

    def _put(self, summary: DeviceSummary, now: dt.datetime) -> None:
        lock = fleet_rows.lock_of(summary, now, self.settings, self._anchor)
        self.locks[summary.serial] = lock
        self.states[lock.state] += 1
        if self._passes(lock):
            bisect.insort(self._shown, (self._key(lock), summary.serial))
        at = next_change(lock, self.settings)
        if at != math.inf:
            heapq.heappush(self._changes, (at, summary.serial))
