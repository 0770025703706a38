"""Change notices: the serial of every lock whose record, audits or alerts changed, handed to
the ``on_change`` callbacks on one background thread so a slow subscriber never holds a request
thread; repeated changes coalesce."""

from __future__ import annotations

import collections
import threading
from typing import Callable


class ChangeNotices:
    """The queue of changed serials and the thread that hands them to ``callbacks``."""

    def __init__(self, callbacks: list[Callable[[str], None]]):
        self.callbacks = callbacks
        self._changes: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._changes_cv = threading.Condition()
        self._notifier: threading.Thread | None = None

    def changed(self, serial: str) -> None:
        """Queue ``serial`` for the callbacks (see the module docstring)."""
        if not self.callbacks:
            return
        with self._changes_cv:
            self._changes[serial] = None
            if self._notifier is None:
                self._notifier = threading.Thread(target=self._notify_loop,
                                                  name="device-changes", daemon=True)
                self._notifier.start()
            self._changes_cv.notify()

    def _notify_loop(self) -> None:
        while True:
            with self._changes_cv:
                while not self._changes:
                    self._changes_cv.wait()
                serial, _ = self._changes.popitem(last=False)
            for callback in list(self.callbacks):
                try:
                    callback(serial)
                except Exception:  # a subscriber's bug must not stop notifications
                    pass
