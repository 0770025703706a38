"""The console's small filter queries (``/``): every word must match. Each filter (the lock
log's, the fleet's) says what one word asks; this says how the words combine."""

from __future__ import annotations

from typing import Callable, TypeVar

from server.errors import EngageError

Item = TypeVar("Item")


class FilterError(EngageError):
    """A filter word that cannot mean anything (e.g. ``status:abc``)."""


def every_word(text: str, word_test: Callable[[str], Callable[[Item], bool] | None]
               ) -> Callable[[Item], bool]:
    """The test an item must pass: each word's ``word_test`` (None: nothing typed after a
    field yet, so no test); ``word_test`` raises FilterError for a word it cannot read."""
    tests = [test for test in map(word_test, text.split()) if test is not None]
    return lambda item: all(test(item) for test in tests)
