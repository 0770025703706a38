"""The cyclic garbage collector paused while a bulk of objects that hold no cycles is made.

Making 100,000 summaries (a new process filling its index from the summaries file) set off
collections that traversed everything alive each time: a quarter of a second of the preflight.
Pauses may overlap (threads); the collector runs again when the last ends, if it ran before
the first began."""

from __future__ import annotations

import contextlib
import gc
import threading

_lock = threading.Lock()
_depth = 0        # pauses under way
_enabled = False  # whether the collector ran before the first of them


@contextlib.contextmanager
def paused():
    global _depth, _enabled
    with _lock:
        if not _depth:
            _enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if not _depth and _enabled:
                gc.enable()
