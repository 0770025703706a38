"""The devices screen as the fleet (issue 13 item 4), driven through Pilot against a real host
whose records are files in Engage_Data/: the summary per state, state words, the filter
words, sorting, the structured record pane and its raw JSON, live refresh."""

from __future__ import annotations

import datetime as dt
import json
import os

from textual.widgets import DataTable, Input, Static

from console.app import EngageConsole
from console.screens.devices import DevicesScreen

from .test_console import SIZE, cell, press_to, shown_text, sync, until
from .test_console import make_host, stopped_host  # noqa: F401  (fixtures)


def ago(seconds: float) -> str:
    return (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds)).isoformat(
        timespec="seconds")


def put_record(host, serial: str, **fields) -> None:
    """A record as another process leaves it: written beside and renamed into place."""
    folder = host.devices.root
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{serial}.tmp"
    tmp.write_text(json.dumps({"serial": serial, "model": "NDE80", **fields}))
    os.replace(tmp, folder / f"{serial}.json")


def active_sha(host) -> str:
    return host.certificates.current().cert_set.anchor_sha256


def a_fleet(host) -> None:
    """One lock in each of five states, and a corrupt record."""
    trusted = {"sha256": active_sha(host), "at": ago(60), "proof": "tls-handshake"}
    put_record(host, "OK000001", name="Front door", last_seen=ago(30), address="10.0.0.1",
               anchor_trusted=trusted, provisioned_at=ago(86400))
    put_record(host, "LATE0001", name="Back office", last_seen=ago(86400), address="10.0.0.2",
               provisioned_at=ago(90000))
    put_record(host, "FAIL0001", name="Server room", last_seen=ago(30), address="10.0.0.3",
               anchor_trusted={"sha256": "c" * 64, "at": ago(60), "proof": "tls-handshake"},
               tls_failures={"count": 2, "last": [{"at": ago(10), "reason": "unknown CA",
                                                   "address": "10.0.0.3"}]})
    put_record(host, "NEW00001", name="Loading bay", listed=True, listed_at=ago(10 * 86400))
    put_record(host, "STALE001", name="Lab", last_seen=ago(30), address="10.0.0.5",
               anchor_trusted={"sha256": "d" * 64, "at": ago(60), "proof": "tls-handshake"},
               anchor_fetched={"sha256": "d" * 64, "at": ago(600), "address": "10.0.0.5",
                               "inferred": "from address"})
    (host.devices.root / "BROKEN01.json").write_text("{not json")


def table_of(app) -> DataTable:
    return app.screen.query_one("#devices", DataTable)


def rows(app) -> list[str]:
    return [row.key.value for row in table_of(app).ordered_rows]


def summary(app) -> str:
    return shown_text(app.screen.query_one("#fleet-summary", Static)).strip()


def pane(app) -> str:
    return shown_text(app.screen.query_one("#record-text", Static))


async def open_fleet(pilot, count: int) -> None:
    await press_to(pilot, "3", DevicesScreen)
    await until(pilot, lambda: table_of(pilot.app).row_count == count, what="the fleet listed")


@sync
async def test_the_summary_line_counts_the_locks_per_state(stopped_host):
    a_fleet(stopped_host)
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_fleet(pilot, 6)
        assert summary(app) == ("6 lock(s): 1 ok, 1 overdue, 1 tls-failing, 1 anchor-stale, "
                                "1 never-seen, 1 corrupt")


@sync
async def test_each_lock_shows_its_state_anchor_failures_and_listing_in_words(stopped_host):
    a_fleet(stopped_host)
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_fleet(pilot, 6)
        states = {serial: cell(app, "#devices", serial, "state") for serial in rows(app)}
        assert states == {"OK000001": "ok", "LATE0001": "overdue", "FAIL0001": "tls-failing",
                          "STALE001": "anchor-stale", "NEW00001": "never-seen",
                          "BROKEN01": "corrupt"}
        assert table_of(app).get_cell("LATE0001", "state").style  # coloured as well
        sha = active_sha(stopped_host).upper()
        assert cell(app, "#devices", "OK000001", "anchor") == \
            ":".join(sha[i:i + 2] for i in (0, 2, 4, 6)) + "… active"
        assert cell(app, "#devices", "STALE001", "anchor") == "DD:DD:DD:DD… other"
        assert cell(app, "#devices", "LATE0001", "anchor") == "unknown"
        assert cell(app, "#devices", "FAIL0001", "tls_failures") == "2 unknown CA"
        assert cell(app, "#devices", "OK000001", "listing") == "provisioned"
        assert cell(app, "#devices", "NEW00001", "listing") == "expired"
        assert cell(app, "#devices", "NEW00001", "last_seen") == "never"


async def filter_by(pilot, text: str) -> None:
    box = pilot.app.screen.query_one("#device-filter", Input)
    if not box.has_focus:
        await pilot.press("slash")
        await until(pilot, lambda: box.has_focus, what="the filter box focused")
    box.value = text
    await until(pilot, lambda: pilot.app.screen.filter_text == text.strip()
                or box.border_title, what=f"the filter {text!r} applied")


@sync
async def test_the_filter_reads_state_anchor_listing_and_free_words(stopped_host):
    a_fleet(stopped_host)
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_fleet(pilot, 6)
        await filter_by(pilot, "state:overdue")
        assert rows(app) == ["LATE0001"]
        await filter_by(pilot, "state:tls")
        assert rows(app) == ["FAIL0001"]
        await filter_by(pilot, "anchor:other")
        assert rows(app) == ["FAIL0001", "STALE001"]
        await filter_by(pilot, "anchor:dddd")
        assert rows(app) == ["STALE001"]
        await filter_by(pilot, "listing:expired")
        assert rows(app) == ["NEW00001"]
        await filter_by(pilot, "door")  # the name
        assert rows(app) == ["OK000001"]
        await filter_by(pilot, "10.0.0.5 anchor:other")  # every word must match
        assert rows(app) == ["STALE001"]
        await filter_by(pilot, "state:broken")
        box = app.screen.query_one("#device-filter", Input)
        assert "state:broken is not a state" in str(box.border_title)
        assert rows(app) == ["STALE001"]  # what it showed before


@sync
async def test_s_cycles_the_sort_column_shift_s_reverses_and_a_header_click_sorts(
        stopped_host):
    a_fleet(stopped_host)
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_fleet(pilot, 6)
        assert rows(app) == sorted(rows(app))  # by serial at first
        await pilot.press("s")  # the next column: name
        await until(pilot, lambda: rows(app)[0] == "BROKEN01" and rows(app)[1] == "LATE0001",
                    what="sorted by name")
        assert rows(app) == ["BROKEN01", "LATE0001", "OK000001", "STALE001", "NEW00001",
                             "FAIL0001"]
        await pilot.press("S")
        await until(pilot, lambda: rows(app)[0] == "FAIL0001", what="reversed")
        await pilot.click("#devices", offset=(3, 1))  # the State header
        await until(pilot, lambda: rows(app)[0] == "OK000001", what="sorted by state")
        assert rows(app) == ["OK000001", "LATE0001", "FAIL0001", "STALE001", "NEW00001",
                             "BROKEN01"]
        assert "sorted by State ↑" in table_of(app).border_subtitle
        await pilot.click("#devices", offset=(3, 1))  # again: reversed
        await until(pilot, lambda: rows(app)[0] == "BROKEN01", what="state reversed")


@sync
async def test_the_record_pane_is_structured_and_j_shows_the_raw_json(stopped_host):
    a_fleet(stopped_host)
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_fleet(pilot, 6)
        table_of(app).move_cursor(row=table_of(app).get_row_index("STALE001"))
        await until(pilot, lambda: "serial  STALE001" in pane(app), what="structured view")
        shown = pane(app)
        for heading in ("Identity", "Health", "Network", "Firmware, battery", "Anchor trust",
                        "TLS failures", "Audits (", "Alerts ("):
            assert heading in shown, heading
        assert "DD:DD:DD:DD:DD:DD:DD:DD… (other)" in shown
        assert "proof: tls-handshake" in shown and "inferred from address 10.0.0.5" in shown
        assert "anchor-stale" in shown
        await pilot.press("j")
        await until(pilot, lambda: '"serial": "STALE001"' in pane(app), what="the raw JSON")
        assert "Identity" not in pane(app)
        assert "JSON" in str(app.screen.query_one("#record").border_title)
        await pilot.press("j")
        await until(pilot, lambda: "Identity" in pane(app), what="structured again")


@sync
async def test_a_record_changed_on_disk_updates_its_row_and_the_summary(stopped_host):
    put_record(stopped_host, "LATE0001", last_seen=ago(86400), provisioned_at=ago(90000))
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_fleet(pilot, 1)
        assert cell(app, "#devices", "LATE0001", "state") == "overdue"
        put_record(stopped_host, "LATE0001", last_seen=ago(0), provisioned_at=ago(90000))
        await until(pilot, lambda: cell(app, "#devices", "LATE0001", "state") == "ok",
                    timeout=3.0, what="the new call-in shown within ~2 s")
        assert summary(app) == "1 lock(s): 1 ok"


@sync
async def test_a_call_in_updates_the_fleet_within_a_second(stopped_host):
    put_record(stopped_host, "LATE0001", last_seen=ago(86400), provisioned_at=ago(90000))
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_fleet(pilot, 1)
        stopped_host.devices.config_callin({"lckSn": "LATE0001"}, address="10.1.1.1")
        await until(pilot, lambda: cell(app, "#devices", "LATE0001", "state") == "ok",
                    timeout=1.5, what="the call-in shown")
        assert summary(app) == "1 lock(s): 1 ok"
