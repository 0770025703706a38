"""The summaries file ``.summaries.json``: every record's summary with its file's mtime and size,
so that the next process's first listing (``certs activate`` with no host running, ``devices
list``, a console starting) parses only the records changed since rather than all of them
(100,000 took 8 s on a slow machine).

Only a cache, and never trusted beyond what it can prove: a row counts only while its record
file still has that mtime and size. A file of another shape (another version's fields, a value
not of its field's type) is ignored whole. Without it listings stay correct, only slower.
Stored by column, whose types are checked in one pass each (100,000 rows).

It is written a while after many summaries changed (a listing that parsed many records, a
host's call-ins), and when the process exits normally (:class:`Saver`; not after a kill -9):
encoding 100,000 rows holds the interpreter for a third of a second, which a preflight or a
call-in meanwhile would wait for, so a running host writes it at most once every
:data:`SAVE_DELAY` seconds, and when it stops, so that a command run while it is stopped finds
it current."""

from __future__ import annotations

import atexit
import json
import threading
import weakref
from pathlib import Path
from typing import Callable

from ..atomic import write_atomic
from .summary import DeviceSummary

CACHE_FILE = ".summaries.json"
SAVE_DELAY = 120.0  # seconds between asking for the file and its writing
FIELDS = list(DeviceSummary._fields)
# the file's columns: mtime_ns, size, then FIELDS (serial first), each value of its type
COLUMN_TYPES = (int, int, str, *(type(DeviceSummary._field_defaults[f]) for f in FIELDS[1:]))


def load(root: Path) -> dict[str, tuple[DeviceSummary, tuple]]:
    """serial -> (summary, (mtime_ns, size)); nothing from a file of another shape."""
    try:
        data = json.loads((Path(root) / CACHE_FILE).read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("fields") != FIELDS:
        return {}
    columns = data.get("columns")
    if not isinstance(columns, list) or len(columns) != len(COLUMN_TYPES):
        return {}
    if not all(map(_of_type, columns, COLUMN_TYPES)) or len(set(map(len, columns))) != 1:
        return {}
    mtimes, sizes, *fields = columns
    return dict(zip(fields[0], zip(map(DeviceSummary._make, zip(*fields)), zip(mtimes, sizes))))


def _of_type(column, kind: type) -> bool:
    """Whether ``column`` is a list of values of type ``kind``, checked in C, not per row."""
    if type(column) is not list:
        return False
    if kind is str:  # the most columns: a join refuses anything else, and is the fastest check
        try:
            "".join(column)
            return True
        except TypeError:
            return False
    return set(map(type, column)) <= {kind}


def save(root: Path, entries: dict[str, tuple[DeviceSummary, tuple]], stamp) -> bool:
    """Write every entry whose file key is known; ``stamp``: the folder's FolderStamp. Never
    into a folder that is gone (it would be made again); whether it was written."""
    rows = [(*key, *summary) for summary, key in map(entries.get, sorted(entries))
            if len(key) == 2]  # in serial order: the next process's index sorts it in no time
    columns = [list(column) for column in zip(*rows)] if rows else [[] for _ in COLUMN_TYPES]
    data = json.dumps({"fields": FIELDS, "columns": columns}, separators=(",", ":"))
    try:  # encoded first: the window of this own change stays short
        with stamp.own_change():
            write_atomic(Path(root) / CACHE_FILE, data, make_folder=False)
        return True
    except OSError:
        return False  # a cache: listings stay correct, only slower


class Saver:
    """Writes an index's summaries file :data:`SAVE_DELAY` seconds after :meth:`ask`, in a
    daemon thread, or at :meth:`flush` (the process exiting, a test) if that comes first."""

    def __init__(self, root: Path, stamp, entries: Callable[[], dict]):
        self._root, self._stamp, self._entries = root, stamp, entries  # entries: a snapshot
        self._lock = threading.Lock()
        self._writing = threading.Lock()  # one write at a time
        self._timer: threading.Timer | None = None  # set while a write is due

    def ask(self) -> None:
        with self._lock:
            if self._timer is not None:
                return  # one is due: it writes what the index holds then
            timer = threading.Timer(SAVE_DELAY, self.flush)
            timer.daemon = True
            try:
                timer.start()
            except RuntimeError:  # the interpreter is shutting down: the exit's flush is done
                return
            self._timer = timer
        _DUE.add(self)

    def flush(self) -> None:
        """Write now if a write is due."""
        with self._writing:
            with self._lock:
                timer, self._timer = self._timer, None
            if timer is None:
                return
            timer.cancel()
            written = save(self._root, self._entries(), self._stamp)
        if not written and self._root.is_dir():
            self.ask()  # another try later (a full disk, say); a folder gone is left gone


_DUE: weakref.WeakSet[Saver] = weakref.WeakSet()
atexit.register(lambda: [saver.flush() for saver in list(_DUE)])  # a command's process too
