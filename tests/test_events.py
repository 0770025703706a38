"""The request log: bounded ring, subscribers that never block, file rotation."""

from __future__ import annotations

import dataclasses
import json
import threading

from server import events
from server.events import MAX_TARGET, Event, RequestLog

from .helpers import until


def _event(i: int) -> Event:
    return Event(listener="http", client="127.0.0.1", method="GET", path=f"/p{i}", status=200)


def test_ring_keeps_only_the_newest_events():
    log = RequestLog(ring_size=10)
    for i in range(25):
        log.record(_event(i))
    recent = log.recent()
    assert len(recent) == 10 and recent[-1].path == "/p24" and recent[0].path == "/p15"
    assert [e.seq for e in recent] == list(range(16, 26))


def test_a_subscriber_that_never_drains_does_not_block_recording():
    log = RequestLog(ring_size=100)
    stuck = log.subscribe(maxlen=5)
    done = threading.Event()

    def produce():
        for i in range(1000):
            log.record(_event(i))
        done.set()

    threading.Thread(target=produce).start()
    assert done.wait(10)
    events = stuck.drain()
    assert [e.path for e in events] == [f"/p{i}" for i in range(995, 1000)]
    assert stuck.dropped == 995


def test_unsubscribed_reader_gets_nothing_more():
    log = RequestLog()
    sub = log.subscribe()
    sub.close()
    log.record(_event(1))
    assert sub.drain() == []


def test_file_log_rotates_by_size_and_keeps_backups(tmp_path):
    path = tmp_path / "logs" / "requests.jsonl"
    log = RequestLog(path=path, max_bytes=2048, backups=2)
    for i in range(200):
        log.record(_event(i))
        if i % 20 == 0:
            assert log.flush()
    assert log.flush()
    assert path.exists() and (tmp_path / "logs" / "requests.jsonl.1").exists()
    assert (tmp_path / "logs" / "requests.jsonl.2").exists()
    assert not (tmp_path / "logs" / "requests.jsonl.3").exists()
    last = json.loads(path.read_text().splitlines()[-1])
    assert last["path"] == "/p199" and last["seq"] == 200


def test_log_file_moved_away_by_another_program_is_started_again(tmp_path):
    path = tmp_path / "logs" / "requests.jsonl"
    log = RequestLog(path=path)
    log.record(_event(1))
    assert log.flush()
    path.rename(tmp_path / "logs" / "requests.jsonl.old")  # as logrotate does
    log.record(_event(2))
    assert log.flush()
    assert [json.loads(line)["path"] for line in path.read_text().splitlines()] == ["/p2"]


def test_unwritable_log_folder_counts_errors_and_keeps_serving(tmp_path):
    blocker = tmp_path / "logs"
    blocker.write_text("a file where the folder should be")
    log = RequestLog(path=blocker / "requests.jsonl")
    log.record(_event(1))
    assert log.flush()
    assert log.write_errors == 1 and log.recent()[-1].path == "/p1"


def test_a_burst_of_events_reaches_the_file_in_one_write(tmp_path, monkeypatch):
    """The writer lets events gather before it writes: a busy second costs a few writes, not a
    wake-up and a write per request; flush() cuts the gathering short. Before, the event
    already taken by the writer went out alone and the rest in a second write."""
    monkeypatch.setattr(events, "WRITE_INTERVAL", 60.0)
    log = RequestLog(path=tmp_path / "requests.jsonl")
    writes = []
    real_append = log._append
    monkeypatch.setattr(log, "_append", lambda lines: (writes.append(len(lines)),
                                                      real_append(lines)))
    log.record(_event(0))
    assert until(log._file_queue.empty)  # the writer has taken the first event
    for i in range(1, 50):
        log.record(_event(i))
    assert log.flush()  # within its 5 s, not after the 60 s gathering
    assert writes == [50]
    assert len((tmp_path / "requests.jsonl").read_text().splitlines()) == 50


def test_an_event_reaches_the_file_without_a_flush(tmp_path):
    """Gathering events delays the file write by WRITE_INTERVAL, it never waits for a flush."""
    path = tmp_path / "requests.jsonl"
    log = RequestLog(path=path)
    log.record(_event(1))
    assert until(lambda: path.exists() and "/p1" in path.read_text(), timeout=2.0)


def test_handshake_event_line_says_why():
    line = Event(listener="tls", client="10.0.0.9", kind="handshake",
                 error="client does not trust our chain (unknown CA)").line()
    assert "TLS handshake failed" in line and "unknown CA" in line


def test_long_path_and_query_are_cut_and_say_so():
    event = Event(listener="http", client="10.0.0.9", method="GET", path="/" + "a" * 5000,
                  query="q=" + "b" * 5000)
    for text in (event.path, event.query):
        assert len(text) < MAX_TARGET + 50
        assert text.endswith("characters cut]")
    assert event.path.startswith("/aaa")


def test_line_escapes_newlines_and_terminal_escapes_from_the_client():
    # what the server hands over for GET /x%0aFAKE%1b[31m (it decodes %xx)
    line = Event(listener="http", client="10.0.0.9", method="GET", path="/x\nFAKE\x1b[31m",
                 query="a=\r\x07", status=404).line()
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\x07" not in line
    assert "/x\\nFAKE\\x1b[31m?a=\\r\\x07 404" in line


def test_event_dict_has_every_field_and_its_own_copy_of_the_headers():
    event = Event(listener="tls", client="10.0.0.7", path="/x", headers={"Host": "h"})
    as_dict = event.to_dict()
    assert as_dict == dataclasses.asdict(event)
    as_dict["headers"]["Host"] = "changed"
    assert event.headers == {"Host": "h"}
