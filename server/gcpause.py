"""The cyclic garbage collector paused while a bulk of objects that hold no cycles is made.

Making 100,000 summaries (a new process filling its index from the summaries file) set off
collections that traversed everything alive each time: a quarter of a second of the preflight.
Pauses may overlap (threads); the collector runs again when the last ends, if it ran before the
first began. More than :data:`BULK` objects made meanwhile (100,000 summaries, living as long
as the index) are then moved to the oldest generation, which a collection reaches only after
many more have been made: left young, the next allocation traversed them all (60 ms)."""

from __future__ import annotations

import contextlib
import gc
import threading

BULK = 10_000  # more objects made during a pause than this: moved to the oldest generation
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
                # what was made goes to the oldest generation at once (unless some objects
                # are frozen, by the console: unfreezing would thaw them too)
                if gc.get_count()[0] > BULK and not gc.get_freeze_count():
                    gc.freeze()
                    gc.unfreeze()
                gc.enable()
