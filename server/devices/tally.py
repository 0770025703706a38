"""The fleet's counts per health state, kept current one changed summary at a time, so that the
summary line after a call-in costs a few binary searches, not a pass over 100,000 locks.

Each summary is placed by what does not change with the clock: ``corrupt``, ``never-seen`` and
``tls-failing`` are counted as such; the others are kept by the anchor they proved, as sorted
``last_seen`` times. :meth:`Tally.counts` then applies :func:`server.devices.health.health`'s
rule to each group at once (the tests hold the two to the same answers)."""

from __future__ import annotations

import bisect
import collections
import datetime as dt

from . import health
from .summary import DeviceSummary

BAD_TIME = None  # the place of a last_seen that is not a time


class Tally:
    """Counts of a set of summaries; :meth:`add` and :meth:`remove` each one as it changes."""

    def __init__(self, summaries=()):
        self._fixed: collections.Counter[str] = collections.Counter()
        self._seen: dict[str, list] = collections.defaultdict(list)  # anchor -> sorted times
        self._bad_time: collections.Counter[str] = collections.Counter()  # anchor -> locks
        for s in summaries:
            place = self._place(s)
            if isinstance(place, tuple):
                self._seen[place[0]].append(place[1])
            else:
                self.add(s)
        for times in self._seen.values():
            times.sort()

    @staticmethod
    def _place(s: DeviceSummary):
        if s.corrupt:
            return health.CORRUPT
        if not s.last_seen:
            return health.NEVER_SEEN
        if s.tls_failures:
            return health.TLS_FAILING
        seen = health.seen_us(s.last_seen)
        return BAD_TIME if seen is None else (s.anchor_trusted, seen)

    def add(self, s: DeviceSummary) -> None:
        place = self._place(s)
        if isinstance(place, tuple):
            bisect.insort(self._seen[place[0]], place[1])
        elif place is BAD_TIME:
            self._bad_time[s.anchor_trusted] += 1
        else:
            self._fixed[place] += 1

    def remove(self, s: DeviceSummary) -> None:
        place = self._place(s)
        if isinstance(place, tuple):
            times = self._seen[place[0]]
            del times[bisect.bisect_left(times, place[1])]
        elif place is BAD_TIME:
            self._bad_time[s.anchor_trusted] -= 1
        else:
            self._fixed[place] -= 1

    def counts(self, now: dt.datetime, settings, active_anchor: str | None) -> dict[str, int]:
        """What :func:`server.devices.health.counts` says of the same summaries."""
        found = collections.Counter(self._fixed)
        now_us, due_age, overdue_age = health.limits(now, settings)
        due_line, overdue_line = now_us - due_age, now_us - overdue_age

        def stale(anchor: str) -> bool:
            return bool(active_anchor and anchor and anchor != active_anchor)

        for anchor, n in self._bad_time.items():
            found[health.ANCHOR_STALE if stale(anchor) else health.CORRUPT] += n
        for anchor, times in self._seen.items():
            if stale(anchor):
                found[health.ANCHOR_STALE] += len(times)
                continue
            late = bisect.bisect_left(times, due_line)          # seen before the due line
            overdue = min(late, bisect.bisect_right(times, overdue_line))
            found[health.OVERDUE] += overdue
            found[health.DUE] += late - overdue
            found[health.OK] += len(times) - late
        return {state: found[state] for state in health.STATES}
