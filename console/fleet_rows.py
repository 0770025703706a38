"""The fleet as the devices screen lists it: each lock's facts in words (its health state,
anchor trust and listing state, from the server's one function for each), the cells of its
row, the sort keys of the columns, and the ``/`` filter:

``state:overdue`` (or the start of a state: ``state:tls``), ``anchor:other`` (``active``,
``other``, ``unknown``, or the start of the fingerprint the lock trusts), ``listing:expired``;
any other word is looked for in the serial, name, model and address. Every word must match.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable

from rich.text import Text

from server.devices import health, listing
from server.devices.summary import DeviceSummary

from .format import due_in, fingerprint, relative
from .query import FilterError, every_word

SYNTAX = ("state:overdue, anchor:other, listing:expired; other words: serial, name, model or "
          "address")
STATE_STYLES = {health.OK: "green", health.DUE: "yellow", health.OVERDUE: "bold red",
                health.TLS_FAILING: "bold red", health.ANCHOR_STALE: "bold magenta",
                health.NEVER_SEEN: "dim", health.CORRUPT: "bold red reverse"}
TRUST_WORDS = (health.TRUST_ACTIVE, health.TRUST_OTHER, health.TRUST_UNKNOWN)
LISTING_WORDS = (listing.LISTED, listing.PROVISIONED, listing.EXPIRED, listing.UNLISTED)
COLUMNS = (("state", "State"), ("serial", "Serial"), ("name", "Name"), ("model", "Model"),
           ("last_seen", "Seen"), ("next_callin", "Next call-in"), ("anchor", "Anchor"),
           ("tls_failures", "TLS fail"), ("listing", "Listing"))


@dataclass(frozen=True)
class Lock:
    """One lock's summary with its facts in words at one moment."""

    summary: DeviceSummary
    state: str
    trust: str
    listing: str


def listing_of(summary: DeviceSummary, now: dt.datetime, activation_hours: float) -> str:
    """The summary's listing state (:func:`server.devices.listing.listing_state`); '?' for a
    ``listed_at`` that is not a time."""
    if summary.corrupt:
        return "?"
    try:
        return listing.listing_state({"provisioned_at": summary.provisioned_at, "listed":
                                      summary.listed, "listed_at": summary.listed_at},
                                     now, activation_hours)  # what it reads of a record
    except (TypeError, ValueError):
        return "?"


def lock_of(summary: DeviceSummary, now: dt.datetime, settings, active_anchor: str | None,
            state: Callable[[DeviceSummary], str] | None = None) -> Lock:
    """The row of one lock; ``state``: :func:`health.judge` of the same time and anchor, made
    once for many locks."""
    state = state or health.judge(now, settings, active_anchor)
    return Lock(summary, state(summary),
                health.trust(summary, active_anchor),
                listing_of(summary, now, settings.activation_hours))


def state_text(state: str) -> Text:
    """A state in words, coloured too (never by colour alone)."""
    return Text(state, style=STATE_STYLES.get(state, ""))


def summary_text(state_counts: dict[str, int]) -> Text:
    """:func:`health.summary_line`, each state's count in that state's colour."""
    text = Text(health.summary_line(state_counts))
    for state, style in STATE_STYLES.items():
        text.highlight_regex(rf"(?<![\w-])\d+ {state}\b(?!-)", style)
    return text


def anchor_cell(lock: Lock) -> str:
    s = lock.summary
    return f"{fingerprint(s.anchor_trusted, 4)} {lock.trust}" if s.anchor_trusted else lock.trust


def cells(lock: Lock, now: dt.datetime) -> dict[str, str | Text]:
    s = lock.summary
    return {
        "state": state_text(lock.state), "serial": s.serial, "name": s.name or "-",
        "model": s.model or "-", "last_seen": relative(s.last_seen, now),
        "next_callin": due_in(s.next_callin, now) if s.last_seen else "-",
        "anchor": anchor_cell(lock),
        "tls_failures": f"{s.tls_failures} {s.tls_failure}".strip() if s.tls_failures else "0",
        "listing": lock.listing,
    }


# each column's sort key; the serial breaks ties (console.fleet_model keeps the order)
SORT_KEYS = {
    "state": lambda lock: health.STATES.index(lock.state),
    "serial": lambda lock: "",
    "name": lambda lock: lock.summary.name.lower(),
    "model": lambda lock: lock.summary.model.lower(),
    "last_seen": lambda lock: lock.summary.last_seen,
    "next_callin": lambda lock: lock.summary.next_callin,
    "anchor": lambda lock: (TRUST_WORDS.index(lock.trust), lock.summary.anchor_trusted),
    "tls_failures": lambda lock: lock.summary.tls_failures,
    "listing": lambda lock: lock.listing,
}


def _choice(field: str, value: str, words: tuple[str, ...]) -> str:
    chosen = [word for word in words if word.startswith(value)]
    if not chosen:
        raise FilterError(f"{field}:{value} is not a {field}: use one of {', '.join(words)}")
    return chosen[0]


def word_test(word: str):
    """What one word of the query asks (see the module docstring); None for a field with
    nothing typed after it yet."""
    lowered = word.lower()
    field, colon, value = lowered.partition(":")
    if colon and field in ("state", "listing", "anchor") and not value:
        return None
    if colon and field == "state":
        state = _choice(field, value, health.STATES)
        return lambda lock: lock.state == state
    if colon and field == "listing":
        chosen = _choice(field, value, LISTING_WORDS)
        return lambda lock: lock.listing == chosen
    if colon and field == "anchor":
        trust = [word for word in TRUST_WORDS if word.startswith(value)]
        sha = value.replace(":", "")
        if not trust and not all(c in "0123456789abcdef" for c in sha):
            raise FilterError(f"anchor:{value} is neither {', '.join(TRUST_WORDS)} nor the "
                              "start of a fingerprint")
        return lambda lock: lock.trust in trust or (
            not trust and lock.summary.anchor_trusted.startswith(sha))
    return lambda lock: any(lowered in text.lower() for text in (
        lock.summary.serial, lock.summary.name, lock.summary.model, lock.summary.address))


def parse_filter(text: str):
    """The test a lock must pass to be listed; FilterError for a word it cannot read."""
    return every_word(text, word_test)
