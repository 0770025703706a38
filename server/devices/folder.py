"""The data folder's mtime as the index last saw it, kept current across this process's own
writes, so that only another process's change to the folder makes the index re-synchronise."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path


class FolderStamp:
    """The mtime last seen, and the lock under which it changes."""

    def __init__(self, root: Path):
        self.root = root
        self.seen: int | None = None  # the folder's mtime at the last re-synchronisation
        self.lock = threading.Lock()

    def current(self) -> int | None:
        try:
            return self.root.stat().st_mtime_ns
        except OSError:
            return None

    @contextlib.contextmanager
    def own_change(self, changes_folder: bool = True):
        """A write of this process that changes the folder's mtime: when nothing else had
        changed it since the last re-synchronisation, the new mtime counts as seen (the index
        is updated directly). A change by another process inside this window waits for the
        periodic full re-synchronisation."""
        if not changes_folder:
            yield
            return
        before = self.current()
        yield
        after = self.current()
        with self.lock:
            if before is not None and self.seen == before:
                self.seen = after
