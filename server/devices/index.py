"""The listing index: an in-memory index (serial -> summary and the file's size and mtime)
filled from disk on the first listing, updated by every write of this process, and
re-synchronised when the folder's mtime shows another process added, replaced or removed a file
(at most once a second; this process's own writes update the index directly and do not count),
and every 30 seconds anyway (a file edited in place leaves the folder's mtime alone; and while
this process's own writes follow one another without a pause, as on a busy host, the mtime
cannot tell another process's change from them: re-reading 100,000 files every second instead
would cost a busy host a third of its time). A re-synchronisation stats every file and parses
only those whose size or mtime differ; a listing between them is a list of the summaries in
serial order, kept sorted (sorting 100,000 on every listing cost more than the listing). A new
process starts from the summaries file (:mod:`server.devices.summary_cache`), which the index
asks to be written once many summaries changed; a command (one thread) has the stats worked out
meanwhile by a child process (:class:`server.devices.filekeys.KeysMeanwhile`), the collector
paused while it makes 100,000 summaries. The counts per health state come from
:mod:`server.devices.tally`, made at the first count and kept current with every change. Audit
counts are not summaries (they would cost a stat of every log): :mod:`server.devices.counts`.
Each change gets a version number, so that a view can ask for only what changed since the
version it last saw (:meth:`Index.changes`)."""

from __future__ import annotations

import bisect
import collections
import datetime as dt
import itertools
import threading
import time
from operator import itemgetter, ne
from pathlib import Path
from typing import Iterable

from .. import gcpause
from .filekeys import Keys, KeysMeanwhile, record_keys
from .folder import FolderStamp
from .records import record_from_bytes, record_path
from . import summary_cache
from .summary import DeviceSummary, summary_of
from .tally import Tally

RESCAN_SECONDS = 1.0
FULL_RESCAN_SECONDS = 30.0
SUMMARIES_FILE_WORTH = 100  # changed summaries that make the summaries file worth writing
NOT_KNOWN = (None, None)  # the entry of a serial the index does not know: its file is new
CHANGES_KEPT = 4096      # the latest changes Index.changes can name; older: the whole list


def changed_files(known: dict[str, tuple[DeviceSummary, tuple]], keys: Keys
                  ) -> tuple[list[tuple[str, tuple]], Iterable[str]]:
    """(each file whose record is new or not as ``known`` says: serial and key, in serial
    order; the serials known whose file is gone). Compared in C (100,000 records), and in
    sequence when ``known`` holds the same files in the same order (from the summaries file,
    written in serial order): 0.1 s less than looking each one up."""
    serials, disk = keys
    if list(known) == serials:
        old, gone = map(itemgetter(1), known.values()), ()
    else:
        old = map(itemgetter(1), map(known.get, serials, itertools.repeat(NOT_KNOWN)))
        gone = known.keys() - set(serials)
    return list(itertools.compress(zip(serials, disk), map(ne, old, disk))), gone


class Index:
    """Summaries of every record, kept current as the module docstring says."""

    def __init__(self, root: Path, stamp: FolderStamp):
        self.root = root
        self._stamp = stamp
        self._index: dict[str, tuple[DeviceSummary, tuple]] = {}
        self._order: list[str] = []  # the serials of _index, sorted
        self._tally: Tally | None = None  # made at the first count
        self.version = 0  # one more at each change
        self._log: collections.deque[tuple[int, str]] = collections.deque(maxlen=CHANGES_KEPT)
        self._lock = threading.Lock()
        self._scanning = threading.Lock()  # held by the thread re-reading the folder
        self._filled = threading.Event()   # the first reading is over
        self._scanned_at = 0.0
        self.rescan_seconds = RESCAN_SECONDS
        self.saver = summary_cache.Saver(root, stamp, self._entries)
        self._unsaved = 0  # summaries changed since the summaries file was last written

    def summaries(self) -> list[DeviceSummary]:
        """Every record, quickly (100,000 records), corrupt ones included and marked."""
        self._sync()
        with self._lock:
            index = self._index
            return [index[serial][0] for serial in self._order]

    def counts(self, now: dt.datetime, settings, active_anchor: str | None) -> dict[str, int]:
        """Locks per health state (:func:`server.devices.health.counts` of :meth:`summaries`)."""
        self._sync()
        with self._lock:
            if self._tally is None:
                self._tally = Tally(entry[0] for entry in self._index.values())
            return self._tally.counts(now, settings, active_anchor)

    def changes(self, since: int) -> tuple[int, dict[str, DeviceSummary | None] | None]:
        """(the version now, each serial changed since version ``since`` -> its summary, None
        when gone); None instead of the serials when they are no longer all known (ask for
        :meth:`summaries`)."""
        self._sync()
        with self._lock:
            if since == self.version:
                return since, {}
            if not self._log or self._log[0][0] > since + 1 or since > self.version:
                return self.version, None
            index = self._index
            return self.version, {serial: index[serial][0] if serial in index else None
                                  for version, serial in self._log if version > since}

    def resync(self) -> None:
        """Re-read the folder at the next listing, whatever its mtime says (a record edited
        in place by hand leaves the folder's mtime alone): the console's refresh key."""
        self._stamp.forget()

    def put(self, serial: str, summary: DeviceSummary, path: Path) -> None:
        try:
            st = path.stat()
            key = (st.st_mtime_ns, st.st_size)
        except OSError:
            key = ()
        with self._lock:
            self._set(serial, (summary, key))
            self._unsaved_by(1)  # a host's call-ins, for the next process

    def _set(self, serial: str, entry: tuple[DeviceSummary, tuple]) -> None:
        """Put one entry, keeping the order and the tally (under ``_lock``)."""
        old, tally = self._index.get(serial), self._tally
        if old is None:
            bisect.insort(self._order, serial)
        elif tally is not None:
            tally.remove(old[0])
        self._index[serial] = entry
        if tally is not None:
            tally.add(entry[0])
        self._logged(serial)

    def _unsaved_by(self, changes: int) -> None:
        """``changes`` more summaries than the summaries file holds (under ``_lock``): it is
        asked for once they are many, and never from a partial index."""
        self._unsaved += changes
        if self._unsaved > SUMMARIES_FILE_WORTH and self._filled.is_set():
            self.saver.ask()

    def _logged(self, serial: str | None) -> None:
        """One more version; None: a change too wide to name serial by serial."""
        self.version += 1
        if serial is None:
            self._log.clear()
        else:
            self._log.append((self.version, serial))

    def written(self, serial: str, record: dict, path: Path) -> None:
        """This process wrote ``record`` to ``path``."""
        self.put(serial, summary_of(serial, record), path)

    def mark_corrupt(self, serial: str, path: Path, error: str) -> None:
        self.put(serial, DeviceSummary(serial=serial, corrupt=True, error=error), path)

    def _sync(self) -> None:
        """Bring the index up to date with the folder, one thread at a time. While another
        thread re-reads the folder, what the index holds is whole and is used as it is; before
        the first reading ends there is nothing whole, and the caller waits for it (else a
        preflight asked meanwhile would see no locks and warn of none)."""
        if not self._scanning.acquire(blocking=not self._filled.is_set()):
            return
        try:
            parsed = self._scan()
        finally:
            self._filled.set()
            self._scanning.release()
        if parsed:
            with self._lock:
                self._unsaved_by(parsed)  # the next process need not parse them again

    def _entries(self) -> dict[str, tuple[DeviceSummary, tuple]]:
        """What the summaries file is to hold (the saver's snapshot)."""
        with self._lock:
            self._unsaved = 0
            return dict(self._index)

    def _scan(self) -> int:
        """Re-read what changed in the folder, if it is time (see the module docstring); how
        many records it parsed. The first reading starts from the summaries file
        (:mod:`server.devices.summary_cache`)."""
        try:
            mtime = self.root.stat().st_mtime_ns
        except FileNotFoundError:
            with self._lock:
                self._replace({})
            return 0
        now = time.monotonic()
        age = now - self._scanned_at
        if self._stamp.seen is not None and age < FULL_RESCAN_SECONDS and (
                self._stamp.as_seen(mtime) or age < self.rescan_seconds):
            return 0
        self._stamp.scanned(mtime)
        self._scanned_at = now
        with gcpause.paused():  # 100,000 summaries made from the summaries file
            return self._read()

    def _read(self) -> int:
        """Re-read the folder: a stat of each record, a parse of each changed one (see
        :meth:`_scan`)."""
        with self._lock:
            known = dict(self._index)
        try:
            if known:
                keys = record_keys(self.root)  # a stat per record (100,000)
            else:  # the first reading: the stats meanwhile, in a child on another core if it can
                with KeysMeanwhile(self.root) as meanwhile:
                    known = summary_cache.load(self.root)
                    keys = meanwhile.result()
        except FileNotFoundError:  # the folder went meanwhile
            keys = Keys([], [])
        stale, gone = changed_files(known, keys)
        found = dict(known)  # in the order of known (serial order, from the file): sorted fast
        for serial in gone:
            del found[serial]
        for serial, key in stale:
            found[serial] = (self._summary_from_disk(serial, record_path(self.root, serial)),
                             key)
        with self._lock:
            # keep what this process wrote meanwhile
            for serial, entry in self._index.items():
                if serial not in known or known[serial] is not entry:
                    if record_path(self.root, serial).exists():
                        found[serial] = entry
            self._replace(found)
        return len(stale)

    def _replace(self, found: dict[str, tuple[DeviceSummary, tuple]]) -> None:
        """The index becomes ``found`` (under ``_lock``): the order and the tally follow, by
        the entries that changed when few did, else from scratch."""
        old = self._index
        changed = [serial for serial, entry in found.items() if old.get(serial) is not entry]
        gone = [serial for serial in old if serial not in found]
        if len(changed) + len(gone) > max(64, len(found) // 8):
            self._index, self._order, self._tally = found, sorted(found), None
            self._logged(None)
            return
        for serial in gone:
            summary = old.pop(serial)[0]
            if self._tally is not None:
                self._tally.remove(summary)
            del self._order[bisect.bisect_left(self._order, serial)]
            self._logged(serial)
        for serial in changed:
            self._set(serial, found[serial])

    def _summary_from_disk(self, serial: str, path: Path) -> DeviceSummary:
        try:
            with open(path, "rb") as f:
                record = record_from_bytes(f.read())
        except OSError as exc:
            return DeviceSummary(serial=serial, corrupt=True, error=f"cannot be read: {exc}")
        except ValueError as exc:
            return DeviceSummary(serial=serial, corrupt=True, error=str(exc))
        return summary_of(serial, record)
