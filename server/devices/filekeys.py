"""The record files' keys: each one's mtime and size, what tells the index whether the summary
of a record still holds (a stat of each file: 100,000 at a new process's first listing), and
the child process that works them out meanwhile for a command."""

from __future__ import annotations

import contextlib
import functools
import itertools
import marshal
import operator
import os
import signal
import threading
from array import array
from pathlib import Path
from typing import NamedTuple


class Keys(NamedTuple):
    """The record files of a folder (``<serial>.json``, not a dotfile) in serial order, and
    each one's key: (mtime_ns, size), what tells whether the summary of its record holds."""

    serials: list[str]
    keys: list[tuple[int, int]]


def record_keys(root: Path) -> Keys:
    """The :class:`Keys` of ``root``: a stat each, looped in C by file name relative to the
    folder (100,000 records: a Python loop over scandir entries cost 0.2 s more than the
    stats)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        serials = sorted(name[:-5] for name in os.listdir(fd)
                         if name.endswith(".json") and not name.startswith("."))
        try:
            keys = list(map(_KEY, map(functools.partial(os.stat, dir_fd=fd),
                                      map(_FILE, serials))))
        except FileNotFoundError:  # one was removed meanwhile: one by one, without it
            found = {}
            for serial in serials:
                try:
                    found[serial] = _KEY(os.stat(_FILE(serial), dir_fd=fd))
                except FileNotFoundError:
                    pass
            serials, keys = list(found), list(found.values())
    finally:
        os.close(fd)
    return Keys(serials, keys)


_FILE = "{}.json".format
_KEY = operator.attrgetter("st_mtime_ns", "st_size")


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
        self._pid, self._pipe = pid, open(read_end, "rb")

    def result(self) -> Keys:
        if self._pid is not None:
            with self._pipe:
                data = self._pipe.read()
            pid, self._pid = self._pid, None  # (interrupted before: reaped at the end)
            if os.waitpid(pid, 0)[1] == 0:
                try:
                    return _decoded(data)
                except (EOFError, ValueError, TypeError):
                    pass
        return record_keys(self.root)  # no child, or it failed (the folder went, say)

    def __enter__(self) -> KeysMeanwhile:
        return self

    def __exit__(self, *exc) -> None:
        pid, self._pid = self._pid, None
        if pid is not None:  # not asked for (an error meanwhile): stopped, reaped
            self._pipe.close()
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def _encoded(keys: Keys) -> bytes:
    """The keys as two flat values, marshalled (between two processes of one program): a
    file name holds no NUL, 64-bit integers hold the mtimes and sizes."""
    return marshal.dumps(("\0".join(keys.serials),
                          array("q", itertools.chain.from_iterable(keys.keys)).tobytes()))


def _decoded(data: bytes) -> Keys:
    names, numbers = marshal.loads(data)
    serials = names.split("\0") if names else []
    numbers = iter(array("q", numbers).tolist())
    keys = list(zip(numbers, numbers))
    if len(serials) != len(keys):
        raise ValueError("as many serials as keys")
    return Keys(serials, keys)


def _child(root: Path, read_end: int, write_end: int) -> None:
    """The child's work: its keys down the pipe; it never returns."""
    failed = 1
    try:
        os.close(read_end)
        with open(write_end, "wb") as pipe:
            pipe.write(_encoded(record_keys(root)))
        failed = 0
    finally:
        os._exit(failed)  # no atexit handler of the parent's run, no buffer of its flushed
