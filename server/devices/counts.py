"""Audit counts, for ``devices list``: how many audits each lock's log holds. They are not part
of the summaries the index keeps (knowing them costs a stat of every log, which a preflight of
100,000 locks should not pay). The counts file ``.audit-counts.json`` (serial -> audit count,
log size and mtime) is written a few seconds after audits arrive, and after a count that had
to read logs: a log's count comes from this process's memory, else from the counts file when it
knows the log's current size and mtime, else from the log's last line. Only a cache: without it
the counts stay right, only slower to get."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from ..atomic import write_atomic
from .folder import FolderStamp
from .logs import AUDIT, LOG_SUFFIX, EventLogs

COUNTS_FILE = ".audit-counts.json"
COUNTS_SAVE_SECONDS = 2.0
COUNTS_FILE_WORTH = 100  # logs to count before the counts file is worth reading


class AuditCounts:
    """The audit counts this process learnt, and the counts file they are merged into."""

    def __init__(self, root: Path, stamp: FolderStamp, logs: EventLogs):
        self.root = root
        self._stamp = stamp
        self._logs = logs
        self._counts: dict[str, list] = {}  # serial -> [audits, log size, log mtime_ns]
        self._dirty = False
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def all(self) -> dict[str, int]:
        """serial -> audit count, for every audit log in the folder; what it had to read from
        the logs is saved in the counts file for the next process."""
        suffix = LOG_SUFFIX[AUDIT]
        try:
            with os.scandir(self.root) as entries:
                logs = {e.name[:-len(suffix)]: e for e in entries if e.name.endswith(suffix)}
        except FileNotFoundError:
            return {}
        # the counts file costs what reading the end of a few hundred logs does: only for many
        saved = self.saved() if len(logs) > COUNTS_FILE_WORTH else {}
        counts = {serial: self._count(serial, log, saved) for serial, log in logs.items()}
        self.save()
        return counts

    def _count(self, serial: str, log: os.DirEntry, saved: dict) -> int:
        """A log's audit count, from memory or ``saved`` when they know it for the log's size
        and mtime, else from its last line (and then remembered)."""
        state = self._logs.known(serial, AUDIT)
        if state is not None:
            return state.count
        try:
            st = log.stat()
        except OSError:
            return 0
        stamp = [st.st_size, st.st_mtime_ns]
        for known in (self._counts.get(serial), saved.get(serial)):
            if known is not None and known[1:] == stamp:
                return known[0]
        count = self._logs.count(serial, AUDIT)[0]
        with self._lock:
            self._counts[serial] = [count, *stamp]
            self._dirty = True
        return count

    def note(self, serial: str, count: int, path: Path) -> None:
        """After an audit post: remember the count for the counts file, saved shortly."""
        try:
            st = path.stat()
        except OSError:
            return
        with self._lock:
            self._counts[serial] = [count, st.st_size, st.st_mtime_ns]
            self._dirty = True
            if self._timer is None:
                self._timer = threading.Timer(COUNTS_SAVE_SECONDS, self.save)
                self._timer.daemon = True
                self._timer.start()

    def saved(self) -> dict[str, list]:
        """The counts file's entries that have the right shape (it is only a cache)."""
        try:
            data = json.loads((self.root / COUNTS_FILE).read_bytes())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {serial: v for serial, v in data.items() if isinstance(v, list) and len(v) == 3
                and all(type(x) is int for x in v)}

    def save(self) -> None:
        """Merge the audit counts this process learnt into the counts file, if any."""
        with self._lock:
            self._timer = None
            if not self._dirty or not self.root.is_dir():
                return
            self._dirty = False
            mine = dict(self._counts)
        data = json.dumps({**self.saved(), **mine}, separators=(",", ":"))
        try:
            with self._stamp.own_change():
                write_atomic(self.root / COUNTS_FILE, data, make_folder=False)
        except OSError:
            pass  # a cache: listings stay correct, only slower
