"""The garbage collector paused while the index fills (server.gcpause)."""

from __future__ import annotations

import gc
import threading

from server import gcpause
from server.devices import summary_cache
from server.devices.store import Devices


def test_overlapping_pauses_end_with_the_last_and_leave_a_disabled_collector_disabled():
    assert gc.isenabled()
    with gcpause.paused():
        assert not gc.isenabled()
        with gcpause.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer one is still under way
    assert gc.isenabled()
    gc.disable()
    try:
        with gcpause.paused():
            pass
        assert not gc.isenabled()  # disabled before: left so
    finally:
        gc.enable()


def test_pauses_on_two_threads_end_when_both_have(tmp_path):
    first_in, second_out = threading.Event(), threading.Event()
    seen = []

    def first():
        with gcpause.paused():
            first_in.set()
            second_out.wait(10)
            seen.append(gc.isenabled())  # the other ended: still paused for this one
    thread = threading.Thread(target=first)
    thread.start()
    first_in.wait(10)
    with gcpause.paused():
        pass
    second_out.set()
    thread.join()
    assert seen == [False] and gc.isenabled()


def test_the_index_fills_from_the_summaries_file_with_the_collector_paused(tmp_path,
                                                                        monkeypatch):
    root = tmp_path / "Engage_Data"
    root.mkdir()
    (root / "00A1.json").write_text('{"serial": "00A1"}')
    during = []
    real_load = summary_cache.load
    monkeypatch.setattr(summary_cache, "load",
                        lambda folder: during.append(gc.isenabled()) or real_load(folder))
    assert [s.serial for s in Devices(root).summaries()] == ["00A1"]
    assert during == [False] and gc.isenabled()


def test_a_bulk_made_during_a_pause_goes_to_the_oldest_generation_at_its_end():
    """Not left young for the next allocation to traverse whole; still collectable."""
    gc.collect()
    with gcpause.paused():
        bulk = [[i] for i in range(gcpause.BULK * 2)]  # lists: tracked by the collector
    assert gc.get_count()[0] < gcpause.BULK
    assert any(o is bulk for o in gc.get_objects(generation=2))
    assert gc.get_freeze_count() == 0  # nothing left frozen


def test_a_few_made_during_a_pause_stay_young():
    gc.collect()
    with gcpause.paused():
        few = [[i] for i in range(100)]
    assert not any(o is few for o in gc.get_objects(generation=2))


def test_objects_frozen_before_a_pause_stay_frozen():
    """The console freezes what is alive once it is up: a pause does not thaw it."""
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with gcpause.paused():
            bulk = [[i] for i in range(gcpause.BULK * 2)]
        assert gc.get_freeze_count() == frozen and len(bulk) == gcpause.BULK * 2
    finally:
        gc.unfreeze()
