"""The lock log's filter (``/``): a small query, every word of which an event must match.

``fail`` (status 400 or more, an error, or a failed TLS handshake), ``ok``, ``tls``/``http``
(the listener), ``status:4xx`` / ``status:404`` / ``status:5`` (x or a shorter pattern matches
any digit), ``method:PUT`` (or the start of one); any other word is looked for in the path,
client address, lock serial, status and error.
"""

from __future__ import annotations

import re
from typing import Callable

from server.events import Event

from .query import FilterError, every_word

SYNTAX = ("fail, ok, tls, http, status:4xx, status:404, method:PUT; other words: path, "
          "address, lock serial, status or error")
STATUS_PATTERN = re.compile(r"[0-9x]{1,3}")

Test = Callable[[Event], bool]


def contains(event: Event, word: str) -> bool:
    """Does the event's path, client address, lock serial, status or error contain ``word``?"""
    word = word.lower()
    return (word in event.path.lower() or word in event.client
            or word in event.serial.lower() or (bool(event.status) and word in str(event.status))
            or word in event.error.lower())


def status_test(pattern: str) -> Test:
    if not STATUS_PATTERN.fullmatch(pattern):
        raise FilterError(f"status:{pattern} is not a status: use digits and x, e.g. status:4xx "
                          "or status:404")
    digits = pattern.lower()
    return lambda event: bool(event.status) and all(
        want in ("x", got) for want, got in zip(digits, f"{event.status:03d}"))


WORDS: dict[str, Test] = {
    "fail": lambda event: event.failed,
    "ok": lambda event: not event.failed,
    "tls": lambda event: event.listener == "tls",
    "http": lambda event: event.listener == "http",
}


def word_test(word: str) -> Test | None:
    """What one word of the query asks; None for a field with nothing typed after it yet."""
    lowered = word.lower()
    if lowered in WORDS:
        return WORDS[lowered]
    field, colon, value = lowered.partition(":")
    if colon and field == "status":
        return status_test(value) if value else None
    if colon and field == "method":
        return (lambda event: event.method.lower().startswith(value)) if value else None
    return lambda event: contains(event, word)


def parse_filter(text: str) -> Test:
    """The test an event must pass to be shown; raises FilterError for a word it cannot read."""
    return every_word(text, word_test)
