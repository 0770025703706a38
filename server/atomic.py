"""Atomic writes of state files (temp file in the same folder, fsync, rename), and noticing
that another process replaced one."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_atomic(path: str | os.PathLike, data: bytes | str, mode: int = 0o644,
                 make_folder: bool = True) -> None:
    """Replace ``path`` with ``data`` so a reader sees the old or the new content, never a mix.

    The file gets ``mode`` before any byte is written, so a key is never readable by others.
    Records are written at every call-in: the system calls are kept to the needed ones (each
    lets another thread take the GIL), so the folder is made only when it is missing.
    """
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = _create(tmp, make_folder)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def _create(path: Path, make_folder: bool = True) -> int:
    """A new file only this process can read yet, its folder made if missing (unless not
    ``make_folder``: then FileNotFoundError)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        return os.open(path, flags, 0o600)
    except FileNotFoundError:
        if not make_folder:
            raise
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, flags, 0o600)


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line to a JSON-lines file and fsync it (history and audit files). A file
    whose last line was cut short (a crash mid-write) gets its newline first, so the new line
    stays whole."""
    path = Path(path)
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    try:
        f = open(path, "a+b")
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path, "a+b")
    with f:
        if f.seek(0, os.SEEK_END) > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                data = b"\n" + data
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def file_stamp(path: str | os.PathLike) -> tuple | None:
    """Changes whenever the file is replaced or written (by us or another process); None
    while it does not exist."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)
