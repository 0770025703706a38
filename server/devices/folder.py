"""The data folder's mtime as the index last saw it, kept current across this process's own
writes, so that only another process's change to the folder makes the index re-synchronise."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path


class FolderStamp:
    """The mtime last seen, kept under a lock of its own."""

    def __init__(self, root: Path):
        self.root = root
        self.seen: int | None = None  # the folder's mtime at the last re-synchronisation
        self._lock = threading.Lock()
        self._writing = 0     # own changes under way (call-ins overlap, and the summaries file)
        self._clean = False   # no other process's change was seen when they began

    def current(self) -> int | None:
        try:
            return self.root.stat().st_mtime_ns
        except OSError:
            return None

    def as_seen(self, mtime: int) -> bool:
        """Whether the folder at ``mtime`` is as last seen, or changed since only by own writes
        (one may be under way: its mtime counts as seen when it ends)."""
        with self._lock:
            return self.seen is not None and (self.seen == mtime or bool(
                self._writing and self._clean))

    def scanned(self, mtime: int) -> None:
        """A re-synchronisation read the folder as of ``mtime``."""
        with self._lock:
            self.seen, self._clean = mtime, True

    def forget(self) -> None:
        """The next listing re-synchronises, whatever the mtime says."""
        with self._lock:
            self.seen = None

    @contextlib.contextmanager
    def own_change(self, changes_folder: bool = True):
        """A write of this process that changes the folder's mtime. Overlapping ones (call-ins
        on several threads) count as one window: when the folder was as last seen as it
        began, the mtime each leaves counts as seen (the index is updated directly). A change
        by another process inside the window waits for the periodic full re-synchronisation."""
        if not changes_folder:
            yield
            return
        with self._lock:
            if not self._writing:
                self._clean = self.seen is not None and self.seen == self.current()
            self._writing += 1
        done = False
        try:
            yield
            done = True
        finally:
            with self._lock:
                self._writing -= 1
                if done and self._clean and self.seen is not None:
                    self.seen = self.current()
