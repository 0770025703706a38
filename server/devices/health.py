"""Lock health in words (issue 13): the one rule the console, ``devices list``, ``devices
status`` and the activation preflight call.

States, the first that applies: ``corrupt`` (the record does not parse, or its ``last_seen`` is
not a time), ``never-seen`` (listed by import, never called in), ``tls-failing`` (handshake
failures since its last good call-in), ``anchor-stale`` (its last handshake proved an anchor
that is not the active set's),
``overdue`` (no call-in for ``overdue_factor`` x ``callin_interval``), ``due`` (no call-in for
one interval), ``ok``. Trust, beside the state: ``active`` (proved the active anchor),
``other`` (proved another), ``unknown`` (no proof recorded: a record from before this was kept,
or a lock that called in over plain HTTP only).

A ``last_seen`` in the future (the clock was set back) counts as just seen: ``ok``.
"""

from __future__ import annotations

import collections
import datetime as dt
import functools
from typing import Callable

from .summary import DeviceSummary

OK, DUE, OVERDUE, TLS_FAILING = "ok", "due", "overdue", "tls-failing"
NEVER_SEEN, CORRUPT, ANCHOR_STALE = "never-seen", "corrupt", "anchor-stale"
STATES = (OK, DUE, OVERDUE, TLS_FAILING, ANCHOR_STALE, NEVER_SEEN, CORRUPT)  # report order
TRUST_ACTIVE, TRUST_OTHER, TRUST_UNKNOWN = "active", "other", "unknown"


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
MICROSECOND = dt.timedelta(microseconds=1)


def seen_us(last_seen: str) -> int | None:
    """``last_seen`` as microseconds since 1970 (UTC when it names no zone); None if it is not
    a time. Integers, so that :mod:`server.devices.tally` draws the lines exactly here."""
    try:
        seen = dt.datetime.fromisoformat(last_seen)
    except ValueError:
        return None
    if seen.tzinfo is None:
        seen = seen.replace(tzinfo=dt.timezone.utc)
    return (seen - EPOCH) // MICROSECOND


def limits(now: dt.datetime, settings) -> tuple[int, int, int]:
    """(``now``, the age past which a lock is ``due``, the age from which it is ``overdue``),
    in microseconds (:func:`seen_us`)."""
    interval = settings.callin_interval * 1_000_000
    return ((now - EPOCH) // MICROSECOND, round(interval),
            round(settings.overdue_factor * interval))


def judge(now: dt.datetime, settings, active_anchor: str | None
          ) -> Callable[[DeviceSummary], str]:
    """The state of any lock at ``now`` (UTC): :func:`health` for many locks, the limits
    worked out once (100,000 locks in a preflight)."""
    now_us, due_age, overdue_age = limits(now, settings)
    # last_seen is written to the second: the locks of one second share a time, parsed once
    seen_of = functools.lru_cache(maxsize=None)(seen_us)

    def state(summary: DeviceSummary) -> str:
        if summary.corrupt:
            return CORRUPT
        if not summary.last_seen:
            return NEVER_SEEN
        if summary.tls_failures:
            return TLS_FAILING
        if active_anchor and summary.anchor_trusted and summary.anchor_trusted != active_anchor:
            return ANCHOR_STALE
        seen = seen_of(summary.last_seen)
        if seen is None:
            return CORRUPT
        age = max(0, now_us - seen)  # a time in the future: just seen
        if age >= overdue_age:
            return OVERDUE
        return DUE if age > due_age else OK
    return state


def health(summary: DeviceSummary, now: dt.datetime, settings,
           active_anchor: str | None) -> str:
    """The state of one lock at ``now`` (UTC); ``active_anchor``: the active set's anchor
    SHA-256, None when no set is active (then no lock is ``anchor-stale``)."""
    return judge(now, settings, active_anchor)(summary)


def trust(summary: DeviceSummary, active_anchor: str | None) -> str:
    """Whether the lock's last handshake proved the active anchor (see the module docstring)."""
    if not summary.anchor_trusted:
        return TRUST_UNKNOWN
    return TRUST_ACTIVE if summary.anchor_trusted == active_anchor else TRUST_OTHER


def counts(summaries: list[DeviceSummary], now: dt.datetime, settings,
           active_anchor: str | None) -> dict[str, int]:
    """How many locks are in each state, every state listed (in STATES order)."""
    found = collections.Counter(map(judge(now, settings, active_anchor), summaries))
    return {state: found[state] for state in STATES}


def summary_line(state_counts: dict[str, int]) -> str:
    """One line for monitoring scripts and the console: '12 locks: 9 ok, 1 due, ...'."""
    total = sum(state_counts.values())
    parts = [f"{n} {state}" for state, n in state_counts.items() if n]
    return f"{total} lock(s)" + (": " + ", ".join(parts) if parts else ": none known")
