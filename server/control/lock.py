"""One host per folder: an ``flock`` on a pid file beside the control socket.

The kernel releases the lock when its process dies, however it dies, so a killed host leaves a
free lock (and a stale socket file, which the next host replaces). The file itself stays; the
pid in it is what a second host reports.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..errors import EngageError


class HostRunning(EngageError):
    """Another process holds this folder's lock."""

    def __init__(self, pid: int | None, path: Path):
        self.pid = pid
        who = f"pid {pid}" if pid else "another process"
        super().__init__(f"another engage-console host ({who}) already runs in this folder "
                         f"(it holds {path}); attach to it with `engage-console`, or stop it first")


class FolderLock:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock and write our pid, or raise HostRunning naming the holder."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise HostRunning(holder(self.path), self.path) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None


def holder(path: Path) -> int | None:
    """The pid written in a lock file, None if there is none."""
    try:
        return int(Path(path).read_text().strip() or 0) or None
    except (OSError, ValueError):
        return None
