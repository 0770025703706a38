"""The data folder: its record files' stat keys (:func:`record_keys`), and its mtime as the
index last saw it, kept current across this process's own writes, so that only another
process's change to the folder makes the index re-synchronise."""

from __future__ import annotations

import contextlib
import functools
import marshal
import operator
import os
import signal
import threading
from pathlib import Path

_KEY = operator.attrgetter("st_mtime_ns", "st_size")


def record_keys(root: Path) -> dict[str, tuple[int, int]]:
    """serial -> (mtime_ns, size) of each record file in ``root`` (``<serial>.json``, not a
    dotfile): a stat each, looped in C by file name relative to the folder (100,000 records: a
    Python loop over scandir entries cost 0.2 s more than the stats)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        names = [name for name in os.listdir(fd)
                 if name.endswith(".json") and not name.startswith(".")]
        try:
            keys = list(map(_KEY, map(functools.partial(os.stat, dir_fd=fd), names)))
        except FileNotFoundError:  # one was removed meanwhile: one by one, without it
            found = {}
            for name in names:
                try:
                    found[name] = _KEY(os.stat(name, dir_fd=fd))
                except FileNotFoundError:
                    pass
            names, keys = list(found), list(found.values())
    finally:
        os.close(fd)
    return dict(zip([name[:-5] for name in names], keys))


class KeysMeanwhile:
    """:func:`record_keys` of ``root``, worked out meanwhile by a child process when this
    process runs one thread (a command: ``certs activate`` with no host), so that the stats (a
    third of a second at 100,000 records) overlap, on another core, what this one does
    meanwhile (reading the summaries file). Otherwise, or if the child fails, worked out here
    when asked. A context manager: a child not asked for is stopped at its end."""

    def __init__(self, root: Path):
        self.root = root
        self._pid: int | None = None
        if threading.active_count() > 1 or not hasattr(os, "fork"):
            return  # forking a process with threads is not safe
        read_end, write_end = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(read_end)
            os.close(write_end)
            return
        if pid == 0:
            _child(root, read_end, write_end)
        os.close(write_end)
        self._pid, self._pipe = pid, read_end

    def result(self) -> dict[str, tuple[int, int]]:
        pid, self._pid = self._pid, None
        if pid is not None:
            with open(self._pipe, "rb") as pipe:
                data = pipe.read()
            if os.waitpid(pid, 0)[1] == 0:
                try:
                    return marshal.loads(data)
                except (EOFError, ValueError, TypeError):
                    pass
        return record_keys(self.root)  # no child, or it failed (the folder went, say)

    def __enter__(self) -> KeysMeanwhile:
        return self

    def __exit__(self, *exc) -> None:
        pid, self._pid = self._pid, None
        if pid is not None:  # not asked for (an error meanwhile): stopped, reaped
            os.close(self._pipe)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def _child(root: Path, read_end: int, write_end: int) -> None:
    """The child's work: its keys down the pipe, marshalled (str, int, tuple and dict only,
    between two processes of one program); it never returns."""
    failed = 1
    try:
        os.close(read_end)
        with open(write_end, "wb") as pipe:
            pipe.write(marshal.dumps(record_keys(root)))
        failed = 0
    finally:
        os._exit(failed)  # no atexit handler of the parent's run, no buffer of its flushed


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
