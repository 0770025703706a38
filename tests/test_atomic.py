"""Atomic state writes: whole old or whole new content, exact modes, nothing left behind."""

from __future__ import annotations

import os
import stat

import pytest

from server import atomic
from server.atomic import append_line, write_atomic


def test_write_atomic_replaces_the_content_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "record.json"
    path.write_text("old")
    write_atomic(path, "new")
    assert path.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]


def test_write_atomic_gives_the_mode_asked_for_whatever_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        write_atomic(tmp_path / "record.json", b"{}")
        write_atomic(tmp_path / "server.key", b"secret", mode=0o600)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "record.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "server.key").stat().st_mode) == 0o600


def test_write_atomic_makes_a_missing_folder(tmp_path):
    write_atomic(tmp_path / "a" / "b" / "record.json", "{}")
    assert (tmp_path / "a" / "b" / "record.json").read_text() == "{}"


def test_a_failed_write_keeps_the_old_content_and_removes_its_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "record.json"
    path.write_text("old")

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full_disk)
    with pytest.raises(OSError):
        write_atomic(path, "new")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]


def test_append_line_makes_a_missing_folder_and_mends_a_cut_last_line(tmp_path):
    path = tmp_path / "logs" / "audit.jsonl"
    append_line(path, '{"n":1}')
    with open(path, "ab") as f:
        f.write(b'{"n":2')  # a crash in the middle of a line
    append_line(path, '{"n":3}')
    assert path.read_text().splitlines() == ['{"n":1}', '{"n":2', '{"n":3}']
