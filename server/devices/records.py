"""Record files: one JSON record per lock, ``Engage_Data/<serial>.json``, written atomically
and serialised per lock (a thread lock, and an ``flock`` of ``.locks/<serial>.lock`` so that
another process, such as ``engage-console devices import``, waits too; a lock file only for a
serial with a record). A record that does not parse is reported (``CorruptRecord``,
``DeviceSummary.corrupt``) and never overwritten.

A record holds the lock's identity (``serial``, ``name``, ``tags``, ``listed`` on the allowlist,
``model``, ``firmware``, ``battery``, ``network``), its call-ins (``first_seen``, ``last_seen``,
``next_callin``, ``address``, ``listener``, ``authorization`` present/absent, ``last_config``: the
whole last PUT Config body), and what the host sends in ``host``:
``db`` (the database a lock that is behind receives), ``config`` (commanded settings) and
``nxtDbVerTS`` (that database's version; a new one only when
:meth:`server.devices.store.Devices.set_db` is given a different database). Audit and alert
counts are derived from the logs, never stored here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import threading
from pathlib import Path

from ..atomic import write_atomic
from .dbversion import VERSION
from .errors import CorruptRecord
from .folder import FolderStamp

READ_BYTES = 256 * 1024  # per read() of a record
LOCKS_FOLDER = ".locks"


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def as_dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def as_text(value) -> str:
    return "" if value is None else str(value)


def record_path(root: Path, serial: str) -> Path:
    return root / f"{serial}.json"


def read_bytes(path: Path) -> bytes:
    """A file's bytes in four system calls (``Path.read_bytes`` makes nine, each a chance for
    another thread to take the GIL; a record is read at every request of a call-in)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        chunks = [os.read(fd, READ_BYTES)]
        while chunks[-1]:
            chunks.append(os.read(fd, READ_BYTES))
    finally:
        os.close(fd)
    return b"".join(chunks)


def record_from_bytes(data: bytes) -> dict:
    """A record file's content; ValueError saying what is wrong with it (not JSON, or a shape
    the host cannot use: ``host`` and its ``db`` and ``config`` objects, a valid version)."""
    try:
        record = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    host = record.get("host", {})
    if not isinstance(host, dict):
        raise ValueError("host is not a JSON object")
    for key in ("db", "config"):
        if host.get(key) is not None and not isinstance(host[key], dict):
            raise ValueError(f"host.{key} is not a JSON object")
    version = host.get("nxtDbVerTS")
    if version is not None and not (isinstance(version, str) and VERSION.match(version)):
        raise ValueError(f"host.nxtDbVerTS {version!r} is not a database version")
    return record


def new_record(serial: str, by: str) -> dict:
    return {"serial": serial, "name": "", "tags": [], "listed": by == "import",
            "registered_by": by, "registered": now_iso(), "model": "",
            "host": {"db": None, "config": {}, "nxtDbVerTS": None}}


class RecordFiles:
    """Reads and writes the record files, one lock at a time; each write, and each read that
    finds a record corrupt, is told to ``index`` (the :class:`server.devices.index.Index`)."""

    def __init__(self, root: Path, stamp: FolderStamp, index):
        self.root = root
        self._stamp = stamp
        self._index = index
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def path(self, serial: str) -> Path:
        return record_path(self.root, serial)

    @contextlib.contextmanager
    def locked(self, serial: str):
        """Hold ``serial``'s record against this process's threads and other processes."""
        with self._lock_for(serial):
            folder = self.root / LOCKS_FOLDER
            path = folder / f"{serial}.lock"
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:
                with self._stamp.own_change():
                    folder.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the flock

    def _lock_for(self, serial: str) -> threading.Lock:
        with self._guard:
            lock = self._locks.get(serial)
            if lock is None:
                lock = self._locks[serial] = threading.Lock()
            return lock

    def read(self, serial: str) -> dict | None:
        path = self.path(serial)
        try:
            data = read_bytes(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CorruptRecord(f"record {path} cannot be read: {exc.strerror}") from None
        try:
            return record_from_bytes(data)
        except ValueError as exc:
            self._index.mark_corrupt(serial, path, str(exc))
            raise CorruptRecord(f"record {path} is corrupt ({exc}); it is left untouched: "
                                "repair or remove it") from None

    def write(self, serial: str, record: dict) -> None:
        path = self.path(serial)
        with self._stamp.own_change():
            write_atomic(path, json.dumps(record, ensure_ascii=False))  # C encoder: no indent
        self._index.written(serial, record, path)
