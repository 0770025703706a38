"""The record files' stat keys (server.devices.filekeys): what the index compares with the
summaries file, and the child process that works them out meanwhile for a command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from server.devices import filekeys
from server.devices.filekeys import Keys, KeysMeanwhile, record_keys
from server.devices.index import changed_files
from server.devices.summary import DeviceSummary

REPO = Path(__file__).parent.parent


def make_records(root: Path, n: int = 5) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / f"{i:04X}.json").write_text(json.dumps({"serial": f"{i:04X}"}) + " " * i)


def stat_keys(root: Path) -> Keys:
    """The oracle: os.scandir and a stat of each record file, one by one, in serial order."""
    found = sorted((e.name[:-5], (e.stat().st_mtime_ns, e.stat().st_size))
                   for e in os.scandir(root)
                   if e.name.endswith(".json") and not e.name.startswith("."))
    return Keys([serial for serial, _ in found], [key for _, key in found])


def test_record_keys_are_each_record_files_mtime_and_size(tmp_path):
    root = tmp_path / "Engage_Data"
    make_records(root)
    for other in (".summaries.json", ".0001.json.1a2b.tmp", "0001.audit.jsonl", "notes.txt"):
        (root / other).write_text("{}")
    (root / "0001-x.json").write_text("{}")  # before 0001 by file name, after it by serial
    keys = record_keys(root)
    assert keys == stat_keys(root)
    assert keys.serials == ["0000", "0001", "0001-x", "0002", "0003", "0004"]
    assert len(set(size for _, size in keys.keys)) == 6  # each file its own size


def test_a_record_removed_while_the_folder_is_read_is_left_out(tmp_path, monkeypatch):
    root = tmp_path / "Engage_Data"
    make_records(root)
    real_stat = os.stat

    def stat(path, *a, **kw):
        if path == "0002.json":  # listed, then gone before its stat
            os.unlink(root / path)
        return real_stat(path, *a, **kw)
    monkeypatch.setattr(os, "stat", stat)
    keys = record_keys(root)
    assert keys.serials == ["0000", "0001", "0003", "0004"]
    assert keys == stat_keys(root)


def test_with_threads_running_the_keys_are_worked_out_here_without_a_child(tmp_path,
                                                                         monkeypatch):
    root = tmp_path / "Engage_Data"
    make_records(root)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        monkeypatch.setattr(os, "fork", lambda: pytest.fail("forked a process with threads"))
        with KeysMeanwhile(root) as keys:
            assert keys.result() == stat_keys(root)
    finally:
        stop.set()
        other.join()


def test_a_failed_fork_leaves_the_keys_to_this_process(tmp_path, monkeypatch):
    root = tmp_path / "Engage_Data"
    make_records(root)
    monkeypatch.setattr(filekeys.threading, "active_count", lambda: 1)

    def fork():
        raise OSError(11, "Resource temporarily unavailable")
    monkeypatch.setattr(os, "fork", fork)
    with KeysMeanwhile(root) as keys:
        assert keys.result() == stat_keys(root)


# In a process of one thread, as a command is: the pytest process may hold other threads.
CHILD = """
import json, marshal, os, sys
from pathlib import Path
from server.devices import filekeys
from server.devices.filekeys import KeysMeanwhile
root, mode = Path(sys.argv[1]), sys.argv[2]
pids, real_fork = [], os.fork
def fork():
    pid = real_fork()
    pids.append(pid)
    return pid
os.fork = fork
if mode == "child fails":
    def dumps(value):
        raise MemoryError("no room for the keys")
    marshal.dumps = dumps
elif mode == "folder goes":
    real_keys = filekeys.record_keys
    def record_keys(path):
        if os.getpid() != parent:
            raise FileNotFoundError(path)  # gone while the child read it
        return real_keys(path)
    filekeys.record_keys = record_keys
parent = os.getpid()
with KeysMeanwhile(root) as keys:
    got = keys.result() if mode != "not asked for" else None
def reaped(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False
print(json.dumps({"keys": got and got._asdict(), "forked": len(pids),
                  "reaped": all(map(reaped, pids))}))
"""


@pytest.mark.parametrize("mode", ["child works", "child fails", "folder goes", "not asked for",
                                  "empty folder"])
def test_a_one_thread_process_has_the_keys_worked_out_by_a_child(tmp_path, mode):
    """A child works out the keys; if it fails, this process does; either way the child is
    reaped, and one not asked for (an error meanwhile) is stopped."""
    root = tmp_path / "Engage_Data"
    make_records(root, 0 if mode == "empty folder" else 50)
    if mode != "empty folder":  # names a file system allows: what the child's encoding keeps
        for odd in ("line\nbreak.json", "0001-x.json", "t\u00fcr 7.json"):
            (root / odd).write_text("{}")
    done = subprocess.run([sys.executable, "-c", CHILD, str(root), mode], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["forked"] == 1 and out["reaped"]
    if mode == "not asked for":
        assert out["keys"] is None
    else:
        got = Keys(out["keys"]["serials"], [tuple(key) for key in out["keys"]["keys"]])
        assert got == stat_keys(root)
        assert len(got.serials) == (0 if mode == "empty folder" else 53)


INDEX = """
import json, os, sys
from pathlib import Path
from server.devices.index import Index
from server.devices.store import Devices
root = Path(sys.argv[1])
forks, real_fork = [], os.fork
os.fork = lambda: forks.append(1) or real_fork()
parsed, real_parse = [], Index._summary_from_disk
Index._summary_from_disk = lambda self, serial, path: parsed.append(serial) or real_parse(
    self, serial, path)
print(json.dumps({"names": {s.serial: s.name for s in Devices(root).summaries()},
                  "parsed": sorted(parsed), "forked": len(forks)}))
"""


def test_a_commands_first_listing_reads_what_changed_since_the_summaries_file(tmp_path):
    """The first listing of a command (one thread: the stats in a child) parses exactly the
    records that changed, were added or were replaced since the summaries file was written,
    and drops the removed ones."""
    from server.devices.store import Devices

    root = tmp_path / "Engage_Data"
    make_records(root, 20)
    first = Devices(root)
    assert len(first.summaries()) == 20
    first.index._unsaved_by(1000)  # as after many changes
    first.index.saver.flush()
    (root / "0003.json").write_text(json.dumps({"serial": "0003", "name": "edited in place"}))
    (root / "0004.json").unlink()
    (root / "00FF.json").write_text(json.dumps({"serial": "00FF", "name": "new"}))
    done = subprocess.run([sys.executable, "-c", INDEX, str(root)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["forked"] == 1
    assert out["parsed"] == ["0003", "00FF"]
    assert out["names"]["0003"] == "edited in place" and out["names"]["00FF"] == "new"
    assert "0004" not in out["names"] and len(out["names"]) == 20


def test_a_folder_removed_while_the_index_reads_it_lists_no_lock(tmp_path, monkeypatch):
    from server.devices import index as index_module
    from server.devices.store import Devices

    root = tmp_path / "Engage_Data"
    make_records(root, 3)
    devices = Devices(root)
    assert len(devices.summaries()) == 3
    real = index_module.record_keys

    def gone_meanwhile(path):
        shutil.rmtree(path)  # after the index looked at the folder, before its stats
        return real(path)
    monkeypatch.setattr(index_module, "record_keys", gone_meanwhile)
    devices.index.resync()
    assert devices.summaries() == []


def summary(serial: str) -> DeviceSummary:
    return DeviceSummary(serial=serial)


@pytest.mark.parametrize("order", ["serial order", "another order"])
def test_changed_files_are_the_new_the_changed_and_the_gone(order):
    """In sequence when known is in the files' order, by lookup otherwise: the same answer."""
    known = {serial: (summary(serial), (1, 10)) for serial in ("A", "B", "C", "D")}
    known["C"] = (summary("C"), ())  # a file this process could not stat after writing it
    if order == "another order":
        known = dict(reversed(known.items()))
    keys = Keys(["A", "B", "C", "D"], [(1, 10), (2, 10), (1, 10), (1, 10)])
    stale, gone = changed_files(known, keys)
    assert stale == [("B", (2, 10)), ("C", (1, 10))] and list(gone) == []
    keys = Keys(["A", "C", "E"], [(1, 10), (1, 10), (1, 11)])
    stale, gone = changed_files(known, keys)
    assert stale == [("C", (1, 10)), ("E", (1, 11))] and sorted(gone) == ["B", "D"]
