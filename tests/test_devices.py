"""Device records on disk: the listing index, corrupt records, CSV import and the CLI."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from console.__main__ import main
from server.devices import logs
from server.devices.allowlist import ImportRejected
from server.devices.errors import CorruptRecord, UnknownLock
from server.devices import index as index_module
from server.devices.index import Index
from server.devices.store import Devices

from .helpers import until

SERIAL = "00A1B2C3D4E5F607"


def config(serial: str, model: str = "NDE") -> dict:
    return {"lckPrmtrs": {"lckSn": serial, "mdl": model, "nm": f"Door {serial[-2:]}"},
            "fwVer": {"main": "01.52.14"}, "battV": {"main": "5.90"}}


@pytest.fixture
def devices(settings):
    d = Devices(settings.path("data_dir"), settings)
    d.index.rescan_seconds = 0
    return d


def files(devices) -> dict:
    return {p.name: p.read_bytes() for p in devices.root.glob("*")
            if p.is_file()} if devices.root.exists() else {}


# --- records and the index ---------------------------------------------------------------------

def test_summaries_list_what_call_ins_wrote(devices):
    devices.config_callin(config(SERIAL), address="10.0.0.7")
    [s] = devices.summaries()
    assert (s.serial, s.model, s.name, s.address, s.firmware, s.battery, s.corrupt) == \
        (SERIAL, "NDE", "Door 07", "10.0.0.7", "01.52.14", "5.90", False)
    assert s.last_seen


def test_index_notices_records_written_by_another_process(devices, settings):
    devices.config_callin(config(SERIAL))
    devices.summaries()
    other = Devices(settings.path("data_dir"), settings)
    other.config_callin(config("00FF", model="LE"))
    other.config_callin(config(SERIAL, model="MT20W"))
    listed = {s.serial: s.model for s in devices.summaries()}
    assert listed == {SERIAL: "MT20W", "00FF": "LE"}
    other.path("00FF").unlink()
    assert [s.serial for s in devices.summaries()] == [SERIAL]


def test_corrupt_record_is_listed_as_corrupt_and_never_overwritten(devices):
    devices.root.mkdir(parents=True)
    devices.path(SERIAL).write_text("[1, 2")
    [s] = devices.summaries()
    assert s.corrupt and "not valid JSON" in s.error
    with pytest.raises(CorruptRecord, match="left untouched"):
        devices.config_callin(config(SERIAL))
    with pytest.raises(CorruptRecord):
        devices.record(SERIAL)
    assert devices.path(SERIAL).read_text() == "[1, 2"


def test_record_repaired_in_place_is_noticed_by_the_periodic_rescan(devices, monkeypatch):
    devices.root.mkdir(parents=True)
    path = devices.path(SERIAL)
    path.write_text("{")
    assert devices.summaries()[0].corrupt
    devices.index.rescan_seconds = 3600  # the folder's mtime alone would not trigger a rescan
    with open(path, "r+") as f:  # edited in place: the folder's mtime does not change
        f.write(json.dumps({"serial": SERIAL, "model": "LE"}))
    assert devices.summaries()[0].corrupt
    monkeypatch.setattr("server.devices.index.FULL_RESCAN_SECONDS", 0)
    [summary] = devices.summaries()
    assert (summary.corrupt, summary.model) == (False, "LE")


def test_record_that_is_json_but_not_an_object_is_corrupt(devices):
    devices.root.mkdir(parents=True)
    devices.path(SERIAL).write_text("[]")
    with pytest.raises(CorruptRecord, match="not a JSON object"):
        devices.record(SERIAL)
    assert devices.summaries()[0].corrupt


def test_next_call_in_across_the_start_of_daylight_saving_time(devices, settings):
    settings.time_zone, settings.callin_interval = "America/New_York", 600
    devices.clock = lambda: dt.datetime(2025, 3, 9, 6, 55, tzinfo=dt.timezone.utc)  # 01:55 EST
    devices.config_callin(config(SERIAL))
    reply = devices.db_reply(SERIAL, "0")
    assert (reply["config"]["rtcTime"], reply["dbDwnLdTm"]) == ("20250309015500", "20250309030500")


WRONG_SHAPES = {
    "host null": {"serial": SERIAL, "host": None},
    "host a list": {"serial": SERIAL, "host": []},
    "version garbage": {"serial": SERIAL, "host": {"db": {}, "nxtDbVerTS": "garbage"}},
    "version a number": {"serial": SERIAL, "host": {"db": None, "nxtDbVerTS": 12}},
    "db a list": {"serial": SERIAL, "host": {"db": [1], "nxtDbVerTS": "0x1"}},
    "config text": {"serial": SERIAL, "host": {"config": "relock=3"}},
    "top level a number": 5,
}


@pytest.mark.parametrize("shape", WRONG_SHAPES)
def test_record_of_the_wrong_shape_is_corrupt_and_left_untouched(devices, shape):
    devices.root.mkdir(parents=True)
    data = json.dumps(WRONG_SHAPES[shape]).encode()
    devices.path(SERIAL).write_bytes(data)
    [summary] = devices.summaries()
    assert summary.corrupt and summary.error
    for call in (lambda: devices.config_callin(config(SERIAL)),
                 lambda: devices.db_reply(SERIAL, "0"),
                 lambda: devices.set_db(SERIAL, {}),
                 lambda: devices.record(SERIAL)):
        with pytest.raises(CorruptRecord, match="left untouched"):
            call()
    assert devices.path(SERIAL).read_bytes() == data


USER = {"usrID": "148", "fnctn": "norm", "primeCr": "0" * 32, "prCrTyp": "card"}


def test_set_db_gives_a_new_version_only_when_the_database_changes(devices):
    devices.config_callin(config(SERIAL))
    first = devices.set_db(SERIAL, {"usrRcrd": {"add": [USER]}})
    written = devices.path(SERIAL).read_bytes()
    assert devices.set_db(SERIAL, {"usrRcrd": {"add": [USER]}}) == first
    assert devices.path(SERIAL).read_bytes() == written
    assert devices.set_db(SERIAL, {"usrRcrd": {"add": [USER]}}, {"relock": 5}) == first
    assert devices.record(SERIAL)["host"]["config"] == {"relock": 5}
    assert devices.set_db(SERIAL, {"usrRcrd": {"add": []}}) > first


def test_set_db_keeps_derived_counts_out_of_the_record_file(devices):
    devices.config_callin(config(SERIAL))
    devices.append_events(SERIAL, "audit", {"asyncEvents": [{"event": 1, "time": 2}]})
    devices.set_db(SERIAL, {"usrRcrd": {"add": [USER]}})
    on_disk = json.loads(devices.path(SERIAL).read_bytes())
    assert "audits" not in on_disk and "alerts" not in on_disk
    assert devices.record(SERIAL)["audits"]["count"] == 1


def test_missing_record_is_an_unknown_lock(devices):
    with pytest.raises(UnknownLock):
        devices.record(SERIAL)


def test_concurrent_updates_of_one_lock_lose_no_audit(devices):
    devices.config_callin(config(SERIAL))
    start = threading.Barrier(8)

    def post(n):
        start.wait()
        for i in range(10):
            devices.append_events(SERIAL, "audit", {"asyncEvents": [
                {"event": 11111111, "time": 20250101000000, "auditId": n * 100 + i}]})

    threads = [threading.Thread(target=post, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert devices.record(SERIAL)["audits"]["count"] == 80
    assert len(devices.recent_audits(SERIAL, 1000)) == 80


def test_import_in_another_process_racing_call_ins_loses_no_update(devices, settings):
    """A second Devices over the same folder stands for ``devices import`` in another process:
    it shares no thread lock with the host, only the folder."""
    serials = [f"00A1{i:04X}" for i in range(200)]
    for serial in serials:
        devices.config_callin(config(serial), address="10.0.0.1")
    other = Devices(settings.path("data_dir"), settings)
    rows = other.parse_import("\n".join(f"{serial},Door {i},lobby"
                                         for i, serial in enumerate(serials)))

    def call_ins():
        for serial in serials:
            devices.config_callin(config(serial), address="10.0.0.2")

    thread = threading.Thread(target=call_ins)
    thread.start()
    other.import_rows(rows)
    thread.join()
    records = [json.loads(devices.path(serial).read_bytes()) for serial in serials]
    assert [r["serial"] for r in records if not r["listed"]] == []
    assert [r["serial"] for r in records if r["address"] != "10.0.0.2"] == []


def test_unknown_and_unlisted_locks_leave_no_lock_file(devices, settings):
    settings.allowlist = True
    with pytest.raises(UnknownLock):
        devices.config_callin(config(SERIAL))
    with pytest.raises(UnknownLock):
        devices.db_reply("00FF", "0")
    with pytest.raises(UnknownLock):
        devices.append_events("00FF", "audit", {"asyncEvents": []})
    assert not devices.root.exists()


def test_duplicate_audit_ids_are_skipped_across_restarts(devices, settings):
    devices.config_callin(config(SERIAL))
    event = {"event": 11111111, "time": 20250101000000, "auditId": "7"}
    assert devices.append_events(SERIAL, "audit", {"asyncEvents": [event]}).first
    restarted = Devices(settings.path("data_dir"), settings)
    again = restarted.append_events(SERIAL, "audit", {"asyncEvents": [event]})
    assert (again.first, again.added, again.duplicates) == (False, 0, 1)


def test_audit_post_appends_without_rewriting_the_record_and_counts_survive_a_restart(
        devices, settings):
    devices.config_callin(config(SERIAL))
    record_bytes = devices.path(SERIAL).read_bytes()
    events = [{"event": 11111111, "time": 20250101000000 + i} for i in range(3)]
    devices.append_events(SERIAL, "audit", {"asyncEvents": events})
    devices.append_events(SERIAL, "alert", {"asyncEvents": events[:1]})
    assert devices.path(SERIAL).read_bytes() == record_bytes
    assert devices.audit_counts() == {SERIAL: 3}
    restarted = Devices(settings.path("data_dir"), settings)
    assert restarted.audit_counts() == {SERIAL: 3}
    record = restarted.record(SERIAL)
    assert (record["audits"]["count"], record["alerts"]["count"]) == (3, 1)
    restarted.append_events(SERIAL, "audit", {"asyncEvents": events[:2]})
    assert [a["seq"] for a in restarted.recent_audits(SERIAL)] == [1, 2, 3, 4, 5]


def test_audit_after_a_line_cut_short_by_a_crash_is_kept_whole(devices, settings):
    devices.config_callin(config(SERIAL))
    event = {"event": 11111111, "time": 20250101000000}
    devices.append_events(SERIAL, "audit", {"asyncEvents": [{**event, "auditId": 1}]})
    with open(devices.log_path(SERIAL, "audit"), "a") as f:
        f.write('{"received":"2025-01-01T00:00:00+00:00","seq":2,"ev')
    restarted = Devices(settings.path("data_dir"), settings)
    restarted.append_events(SERIAL, "audit", {"asyncEvents": [{**event, "auditId": 2}]})
    assert [a["event"]["auditId"] for a in restarted.recent_audits(SERIAL)] == [1, 2]
    again = restarted.append_events(SERIAL, "audit", {"asyncEvents": [{**event, "auditId": 2}]})
    assert again.duplicates == 1


def test_recent_audits_reads_the_end_of_a_long_log(devices):
    devices.config_callin(config(SERIAL))
    for i in range(300):
        devices.append_events(SERIAL, "audit", {"asyncEvents": [
            {"event": 11111111, "time": 20250101000000, "auditId": i, "pad": "x" * 300}]})
    assert [a["event"]["auditId"] for a in devices.recent_audits(SERIAL, 5)] == \
        [295, 296, 297, 298, 299]


def test_listing_ten_thousand_records_is_served_from_the_index(devices, monkeypatch):
    devices.root.mkdir(parents=True)
    for i in range(10_000):
        (devices.root / f"{i:016X}.json").write_text(
            json.dumps({"serial": f"{i:016X}", "model": "NDE", "last_seen": "x"}))
    assert len(devices.summaries()) == 10_000
    reads = []
    original = Index._summary_from_disk
    monkeypatch.setattr(Index, "_summary_from_disk",
                        lambda self, *a: reads.append(a) or original(self, *a))
    scans = folder_reads_recorded(monkeypatch)
    devices.config_callin(config(SERIAL))
    assert len(devices.summaries()) == 10_001
    assert reads == [] and scans == []  # this process's own write: no re-synchronisation


def folder_reads_recorded(monkeypatch) -> list:
    """The index's re-readings of the folder (a stat of each record) from now on."""
    scans = []
    real = index_module.record_keys
    monkeypatch.setattr(index_module, "record_keys", lambda root: scans.append(root) or real(root))
    return scans


def test_the_index_records_a_re_reading_of_the_folder(devices, monkeypatch):
    """What the tests that count re-readings rely on: one is counted."""
    devices.config_callin(config(SERIAL))
    devices.summaries()
    scans = folder_reads_recorded(monkeypatch)
    devices.index.resync()
    devices.summaries()
    assert scans == [devices.root]


def test_call_ins_on_many_threads_do_not_make_the_index_re_read_the_folder(devices,
                                                                            monkeypatch):
    """Their writes overlap: each is this process's own, so the next listing reads no file
    (at 100,000 records, re-reading the folder costs a stat of each)."""
    devices.config_callin(config("00FF"))
    assert len(devices.summaries()) == 1
    scans = folder_reads_recorded(monkeypatch)
    monkeypatch.setattr(devices.index, "rescan_seconds", 0.0)  # a listing looks at once

    def call_ins(first: int) -> None:
        for i in range(first, first + 25):
            devices.config_callin(config(f"{i:04X}"))
    threads = [threading.Thread(target=call_ins, args=(n * 25,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(devices.summaries()) == 201
    assert scans == []


def post_audits(devices, serial: str, n: int) -> None:
    devices.append_events(serial, "audit", {"asyncEvents": [
        {"event": 11111111, "time": 20250101000000 + i} for i in range(n)]})


def test_cold_counts_read_no_audit_log_whose_count_is_saved(devices, settings, monkeypatch):
    monkeypatch.setattr("server.devices.counts.COUNTS_FILE_WORTH", 0)  # even for a few logs
    for i in range(5):
        devices.config_callin(config(f"00A{i}"))
        post_audits(devices, f"00A{i}", i + 1)
    devices.save_counts()
    tails = []
    original = logs.tail
    monkeypatch.setattr(logs, "tail",
                        lambda path, n: tails.append(path) or original(path, n))
    cold = Devices(settings.path("data_dir"), settings)  # another process: `devices list`
    assert cold.audit_counts() == {f"00A{i}": i + 1 for i in range(5)}
    assert tails == []


def test_cold_counts_read_a_log_that_grew_after_its_count_was_saved(devices, settings):
    devices.config_callin(config(SERIAL))
    post_audits(devices, SERIAL, 2)
    devices.save_counts()
    post_audits(devices, SERIAL, 3)  # not saved yet
    assert Devices(settings.path("data_dir"), settings).audit_counts() == {SERIAL: 5}


def test_audit_counts_are_saved_shortly_after_audits_arrive(devices, settings, monkeypatch):
    monkeypatch.setattr("server.devices.counts.COUNTS_SAVE_SECONDS", 0)
    devices.config_callin(config(SERIAL))
    post_audits(devices, SERIAL, 3)
    counts_file = devices.root / ".audit-counts.json"  # written atomically by a timer thread
    assert until(lambda: counts_file.exists()
                 and json.loads(counts_file.read_bytes()).get(SERIAL, [0])[0] == 3)


def test_cold_counts_save_what_they_read_for_the_next_process(devices, settings, monkeypatch):
    monkeypatch.setattr("server.devices.counts.COUNTS_FILE_WORTH", 0)
    devices.config_callin(config(SERIAL))
    post_audits(devices, SERIAL, 4)
    assert Devices(settings.path("data_dir"), settings).audit_counts() == {SERIAL: 4}
    monkeypatch.setattr(logs, "tail", lambda path, n: pytest.fail("read"))
    assert Devices(settings.path("data_dir"), settings).audit_counts() == {SERIAL: 4}


def test_a_listing_stats_no_audit_log(devices, settings, monkeypatch):
    """Audit counts are not summaries: a cold listing (a preflight) costs a stat per record,
    not two (100,000 locks)."""
    for i in range(3):
        devices.config_callin(config(f"00A{i}"))
        post_audits(devices, f"00A{i}", 2)
    stats = []
    monkeypatch.setattr(logs, "tail", lambda path, n: pytest.fail("read"))

    def no_fork():
        raise OSError("no fork here: every stat in this process, where it is counted")
    monkeypatch.setattr(os, "fork", no_fork)
    real_stat = os.stat

    def stat(path, *a, **kw):
        stats.append(os.fsdecode(path))
        return real_stat(path, *a, **kw)
    monkeypatch.setattr(os, "stat", stat)
    real_scandir = os.scandir

    class Entries:
        def __init__(self, *a):
            self.inner = real_scandir(*a)

        def __enter__(self):
            self.inner.__enter__()
            return self

        def __exit__(self, *exc):
            return self.inner.__exit__(*exc)

        def __iter__(self):
            for entry in self.inner:
                yield Entry(entry)

    class Entry:  # a DirEntry whose stat calls are recorded
        def __init__(self, entry):
            self.entry, self.name, self.path = entry, entry.name, entry.path

        def stat(self):
            stats.append(self.name)
            return self.entry.stat()
    monkeypatch.setattr(os, "scandir", Entries)
    assert len(Devices(settings.path("data_dir"), settings).summaries()) == 3
    assert sorted(Path(path).name for path in stats if path.endswith(".json")) == [
        f"00A{i}.json" for i in range(3)]
    assert not [path for path in stats if path.endswith(".jsonl")]


def parses_recorded(monkeypatch) -> list[str]:
    """The serials of the records parsed from now on, in order."""
    parsed = []
    original = Index._summary_from_disk
    monkeypatch.setattr(Index, "_summary_from_disk",
                        lambda index, serial, *a: parsed.append(serial) or original(index,
                                                                                  serial, *a))
    return parsed


def test_the_next_process_parses_only_the_records_changed_since_the_summaries_file(
        devices, settings, monkeypatch):
    """A cold listing that parsed many records leaves .summaries.json; the next process starts
    from it and parses only the record changed since."""
    monkeypatch.setattr("server.devices.index.SUMMARIES_FILE_WORTH", 2)
    for i in range(5):
        devices.config_callin(config(f"00A{i}"))
    first = Devices(settings.path("data_dir"), settings)  # another process: it parses all 5
    assert len(first.summaries()) == 5
    first.index.saver.flush()
    assert (devices.root / ".summaries.json").exists()
    devices.config_callin({**config("00A3"), "fwVer": {"main": "09.09.09"}})  # changed since
    post_audits(devices, "00A1", 2)  # audits only: the record file is as it was
    parsed = parses_recorded(monkeypatch)
    cold = Devices(settings.path("data_dir"), settings).summaries()
    assert parsed == ["00A3"]
    assert [s.serial for s in cold] == ["00A0", "00A1", "00A2", "00A3", "00A4"]
    assert cold[3].firmware == "09.09.09"
    assert cold == devices.summaries()  # what the writer itself lists


def test_a_listing_does_not_wait_for_the_summaries_file(devices, settings, monkeypatch):
    """The file is written in a thread of its own: the listing (a preflight) answers first."""
    from server.devices import summary_cache

    monkeypatch.setattr("server.devices.index.SUMMARIES_FILE_WORTH", 0)
    for i in range(3):
        devices.config_callin(config(f"00A{i}"))
    release, original = threading.Event(), summary_cache.save
    monkeypatch.setattr(summary_cache, "save",
                        lambda *a: release.wait(10) and original(*a))
    cold = Devices(settings.path("data_dir"), settings)
    assert len(cold.summaries()) == 3  # while the file waits
    assert not (devices.root / summary_cache.CACHE_FILE).exists()
    release.set()
    cold.index.saver.flush()
    assert (devices.root / summary_cache.CACHE_FILE).exists()


def test_the_summaries_file_never_makes_a_deleted_folder_again(devices, settings, monkeypatch):
    """A folder removed while its summaries file is being encoded (a third of a second at
    100,000 records) stays removed: the write used to make it again, holding only that file."""
    from server.devices import summary_cache

    monkeypatch.setattr("server.devices.index.SUMMARIES_FILE_WORTH", 0)
    for i in range(3):
        devices.config_callin(config(f"00A{i}"))
    cold = Devices(settings.path("data_dir"), settings)
    assert len(cold.summaries()) == 3  # the file is due now

    def removed_meanwhile(*args, **kwargs):
        shutil.rmtree(devices.root)
        return json.dumps(*args, **kwargs)
    monkeypatch.setattr(summary_cache, "json", SimpleNamespace(dumps=removed_meanwhile))
    cold.index.saver.flush()
    assert not devices.root.exists()


def test_a_process_leaves_the_summaries_file_current_when_it_exits(settings, monkeypatch):
    """A host's own call-ins change the summaries: when it stops, the file says so, and a
    command run while it is stopped (certs activate at 100,000 locks) parses none of them."""
    folder = settings.path("data_dir")
    host = ("import sys\n"
            "from server.devices.store import Devices\n"
            "devices = Devices(sys.argv[1])\n"
            "devices.summaries()  # a host reads the fleet at start\n"
            "for i in range(150):\n"
            "    devices.config_callin({'lckPrmtrs': {'lckSn': f'{i:04X}'}}, '10.0.0.1', 'tls')\n")
    subprocess.run([sys.executable, "-c", host, str(folder)], check=True, timeout=120,
                   cwd=Path(__file__).parent.parent)
    parsed = parses_recorded(monkeypatch)
    assert len(Devices(folder, settings).summaries()) == 150
    assert parsed == []


@pytest.mark.parametrize("damage", [
    b"{not json", b"[]", b'{"fields": ["serial"], "columns": []}', "a value of the wrong type",
    "a count of the wrong type", "columns of different lengths"])
def test_a_damaged_summaries_file_is_read_around(devices, settings, monkeypatch, damage):
    from server.devices import summary_cache

    monkeypatch.setattr("server.devices.index.SUMMARIES_FILE_WORTH", 0)
    for i in range(3):
        devices.config_callin(config(f"00A{i}"))
    first = Devices(settings.path("data_dir"), settings)
    assert len(first.summaries()) == 3
    first.index.saver.flush()
    path = devices.root / summary_cache.CACHE_FILE
    if isinstance(damage, bytes):
        path.write_bytes(damage)
    else:
        data = json.loads(path.read_bytes())
        model = data["columns"][summary_cache.FIELDS.index("model") + 2]
        if damage == "a value of the wrong type":
            model[1] = 7
        elif damage == "a count of the wrong type":
            data["columns"][summary_cache.FIELDS.index("tls_failures") + 2][1] = "7"
        else:
            model.pop()
        path.write_text(json.dumps(data))
    parsed = parses_recorded(monkeypatch)
    cold = Devices(settings.path("data_dir"), settings).summaries()
    assert [(s.serial, s.model) for s in cold] == [(f"00A{i}", "NDE") for i in range(3)]
    assert len(parsed) == 3  # the file was ignored whole: every record parsed


# --- CSV import ----------------------------------------------------------------------------------

def test_import_adds_listed_locks_with_names_and_tags(devices):
    rows = devices.parse_import("serial,name,tags\n00a1,Front door,lobby;ground\n00B2,,\n")
    assert devices.import_rows(rows) == (2, 0)
    record = devices.record("00A1")
    assert (record["name"], record["tags"], record["listed"]) == ("Front door", ["lobby", "ground"],
                                                                  True)
    assert devices.record("00B2")["listed"]


def test_import_keeps_call_in_data_of_a_known_lock(devices):
    devices.config_callin(config(SERIAL), address="10.0.0.7")
    devices.import_rows(devices.parse_import(f"{SERIAL},Back door"))
    record = devices.record(SERIAL)
    assert record["address"] == "10.0.0.7" and record["name"] == "Back door" and record["listed"]


def test_import_reports_every_bad_row_by_line_and_imports_nothing(devices, settings):
    settings.identity_prefix, settings.identity_length = "00", 4
    text = ("serial,name,tags\n"
            "00A1B2,Front door,lobby\n"    # 2: ok
            "11A1B2,Wrong prefix,\n"       # 3
            "00A1,Too short,\n"            # 4
            "00G1B2,Not hex,\n"            # 5
            "\n"
            "00A1B2,Again,\n"              # 7: repeats line 2
            "00C1C2,a,b,c\n"               # 8: four columns
            ",No serial,\n")               # 9
    with pytest.raises(ImportRejected) as caught:
        devices.parse_import(text, "locks.csv")
    assert [p.split(":")[0] for p in caught.value.problems] == \
        ["line 3", "line 4", "line 5", "line 7", "line 8", "line 9"]
    assert "repeats line 2" in caught.value.problems[3]
    assert files(devices) == {}


def test_import_with_a_quote_never_closed_names_its_line_and_imports_nothing(devices):
    text = '00A1,ok\n00B2,"Front door\n00B3,Back\nnot a serial!,x\n00B4,Side\n'
    with pytest.raises(ImportRejected) as caught:
        devices.parse_import(text)
    assert caught.value.problems == ["line 2: not valid CSV: a quote opened here is never closed"]
    assert files(devices) == {}


@pytest.mark.parametrize("row", ['00B2,"Front\ndoor"', "00B2,Front\x00door", "00B2,ok,lob\tby",
                                 "00B2,ok,\x1b[31m"])
def test_import_rejects_names_and_tags_with_line_breaks_or_control_characters(devices, row):
    with pytest.raises(ImportRejected, match="line 2: .*control character"):
        devices.parse_import(f"00A1,ok\n{row}\n")


def test_import_checks_decimal_serials(devices, settings):
    settings.identity_type = "decimal"
    assert [r.serial for r in devices.parse_import("1234\n5678\n")] == ["1234", "5678"]
    with pytest.raises(ImportRejected, match="line 2: .*decimal"):
        devices.parse_import("1234\n12AB\n")


def test_import_row_whose_record_is_corrupt_is_a_bad_row(devices):
    devices.root.mkdir(parents=True)
    devices.path("00B2").write_text("{")
    with pytest.raises(ImportRejected, match="line 2: .*corrupt"):
        devices.parse_import("00A1\n00B2\n")
    assert files(devices) == {"00B2.json": b"{"}


def test_import_of_an_empty_file_is_rejected(devices):
    with pytest.raises(ImportRejected, match="no rows"):
        devices.parse_import("serial,name,tags\n\n")


# --- command line --------------------------------------------------------------------------------

def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_import_then_list_and_show(settings, tmp_path, capsys):
    (tmp_path / "locks.csv").write_text("serial,name,tags\n00A1,Front door,lobby\n00B2,Back,\n")
    code, out, _ = run(capsys, "devices", "import", "locks.csv")
    assert code == 0 and "2 added" in out
    code, out, _ = run(capsys, "devices", "list", "--json")
    assert code == 0
    assert [(d["serial"], d["name"]) for d in json.loads(out)] == [("00A1", "Front door"),
                                                                  ("00B2", "Back")]
    code, out, _ = run(capsys, "devices", "show", "00a1", "--json")
    shown = json.loads(out)
    assert code == 0 and shown["record"]["tags"] == ["lobby"] and shown["recent_audits"] == []


def test_cli_list_shows_each_locks_audit_count(devices, capsys):
    """Audit counts are not in the summaries: `devices list` asks for them (text and JSON)."""
    devices.config_callin(config("00A1"))
    devices.config_callin(config("00A2"))
    post_audits(devices, "00A1", 3)
    code, out, _ = run(capsys, "devices", "list", "--json")
    assert code == 0
    assert [(d["serial"], d["audit_count"]) for d in json.loads(out)] == [("00A1", 3), ("00A2", 0)]
    code, out, _ = run(capsys, "devices", "list")
    header, *rows = out.splitlines()
    at = header.index("AUDITS")  # columns are padded: the name column is empty here
    assert [(row.split()[0], row[at:].split()[0]) for row in rows[:2]] == [("00A1", "3"),
                                                                          ("00A2", "0")]


def test_cli_import_with_bad_rows_exits_2_and_names_the_lines(settings, tmp_path, capsys):
    (tmp_path / "locks.csv").write_text("00A1,ok\nnot a serial!,x\n00B2,ok\n00B2,again\n")
    code, out, err = run(capsys, "devices", "import", "locks.csv")
    assert code == 2 and "line 2:" in err and "line 4:" in err and "nothing imported" in err
    assert not settings.path("data_dir").exists()


def test_cli_import_of_a_missing_or_binary_file_exits_2(settings, tmp_path, capsys):
    assert run(capsys, "devices", "import", "nope.csv")[0] == 2
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00")
    code, _, err = run(capsys, "devices", "import", "bin.csv")
    assert code == 2 and "not UTF-8" in err


def test_cli_list_exits_1_when_a_record_is_corrupt(settings, capsys):
    settings.path("data_dir").mkdir()
    (settings.path("data_dir") / f"{SERIAL}.json").write_text("{")
    code, out, _ = run(capsys, "devices", "list")
    assert code == 1 and "CORRUPT" in out
    code, _, err = run(capsys, "devices", "show", SERIAL)
    assert code == 1 and "corrupt" in err


def test_cli_show_of_an_unknown_lock_exits_2(settings, capsys):
    code, _, err = run(capsys, "devices", "show", SERIAL)
    assert code == 2 and "no record" in err


@pytest.mark.parametrize("argv, code, says", [
    (("devices", "show", SERIAL), 2, "no record"),
    (("devices", "list", "--config", "absent.toml"), 2, "absent.toml does not exist"),
])
def test_cli_errors_under_json_are_json_on_stdout(settings, capsys, argv, code, says):
    got, out, err = run(capsys, *argv, "--json")
    assert (got, err) == (code, "") and says in json.loads(out)["error"]


def test_cli_show_of_a_corrupt_record_under_json_is_json(settings, capsys):
    settings.path("data_dir").mkdir()
    (settings.path("data_dir") / f"{SERIAL}.json").write_text("{")
    code, out, err = run(capsys, "devices", "show", SERIAL, "--json")
    assert (code, err) == (1, "") and "corrupt" in json.loads(out)["error"]
