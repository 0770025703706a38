"""The operator console driven through Textual's Pilot against a real host: real listeners on
ephemeral ports, real certificate sets, real requests. Tests wait on the app, never sleep."""

from __future__ import annotations

import asyncio
import functools
import io
import json
import os
import shutil
import signal
import socket
import ssl
import time
from pathlib import Path

import pytest
from rich.console import Console
from textual import events
from textual.command import CommandPalette
from textual.widgets import DataTable, Input, Static
from textual.worker import WorkerCancelled

from console import app as console_app
from console.app import EngageConsole
from console.screens.certificates import CertificatesScreen
from console.screens.confirm import ConfirmScreen
from console.screens.dashboard import DashboardScreen, DetailScreen, EventScreen
from console.screens.devices import DevicesScreen
from console.screens.help import HelpScreen
from console.screens.import_form import ImportScreen
from console.widgets.lock_log import LockLog
from console.widgets.tables import cursor_key
from server import pki
from server.events import Event
from server.host import Host
from server.lockclient import SimulatedLock

from .helpers import http_get, wait_for_event

SIZE = (120, 36)


def sync(test):
    """Run an ``async def`` test on its own event loop (no asyncio plugin is needed)."""

    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))

    return wrapper


async def until(pilot, predicate, timeout: float = 5.0, what: str = "condition",
                workers: bool = True) -> None:
    """Let the app run (timers, workers, messages) until ``predicate()`` holds; with
    ``workers=False`` it does not wait for workers (one of them is held on purpose)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        if workers:
            try:
                await pilot.app.workers.wait_for_complete()
            except WorkerCancelled:  # the app is shutting down
                pass
        await pilot.pause(0.02)


# ``pilot.press`` can return before its key has done anything: it waits for the app to look
# idle by CPU time (which a loaded machine fakes by descheduling the test) and then only for
# the queues of the screen shown at that moment. A key reaches a screen's or the app's binding
# after bubbling up from the focused widget, and ``switch_mode``/``push_screen`` do not wait
# for the new screen to be composed. So after a key, tests wait for what the key does (with
# ``until``) before they look, and keys that move focus or open a screen are pressed on
# their own, not together with the keys meant for the new focus.


def showing(app, screen_type) -> bool:
    """Is a ``screen_type`` on top, composed and mounted (its widgets can be queried)?"""
    screen = app.screen
    return isinstance(screen, screen_type) and screen.is_mounted


async def press_to(pilot, key: str, screen_type, workers: bool = True) -> None:
    """Press ``key`` and wait until it has opened a ``screen_type`` (a mode or a dialog)."""
    await pilot.press(key)
    await until(pilot, lambda: showing(pilot.app, screen_type), workers=workers,
                what=f"{key!r} to show the {screen_type.__name__}")


def shown_text(widget) -> str:
    """The plain text a Static shows, whatever rich renderable it holds."""
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(widget.content)
    return console.export_text()


def screen_text(app) -> str:
    """What the terminal shows now, line by line."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def cell(app, table_id: str, row: str, column: str) -> str:
    return str(app.screen.query_one(table_id, DataTable).get_cell(row, column))


def request(n: int, **fields) -> Event:
    values = dict(listener="http", client=f"10.0.0.{n % 250}", method="GET",
                  path=f"/swordfish/lock/certificates/current/{n}", status=200, bytes=64,
                  duration_ms=1.5, time=f"2026-11-22T08:00:{n % 60:02d}.000+00:00")
    values.update(fields)
    return Event(**values)


class Notes:
    """Records every notification the app shows (also those sent from worker threads)."""

    def __init__(self, app):
        self.messages: list[tuple[str, str]] = []
        original = app.notify

        def notify(message, *args, **kwargs):
            self.messages.append((str(message), kwargs.get("severity", "information")))
            return original(message, *args, **kwargs)

        app.notify = notify

    def text(self) -> str:
        return "\n".join(m for m, _ in self.messages)

    def errors(self) -> list[str]:
        return [m for m, severity in self.messages if severity == "error"]


@pytest.fixture
def make_host(settings, site_key):
    """Hosts from this test's settings (with ``changes``), closed after the test."""
    made = []

    def make(**changes) -> Host:
        for name, value in changes.items():
            setattr(settings, name, value)
        made.append(Host.from_settings(settings, env={}))
        return made[-1]

    yield make
    for h in made:
        h.close()


@pytest.fixture
def stopped_host(make_host):
    """A host with its demo set active and both listeners stopped."""
    return make_host()


def log_of(app) -> LockLog:
    return app.screen.query_one(LockLog)


# --- start-up and listeners ---------------------------------------------------------------


@sync
async def test_start_up_starts_both_listeners_and_shows_them_running(stopped_host):
    app = EngageConsole(stopped_host)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: cell(app, "#listeners", "tls", "state") == "RUNNING",
                    what="TLS RUNNING")
        assert cell(app, "#listeners", "http", "state") == "RUNNING"
        port = stopped_host.listeners["http"].bound_port
        assert cell(app, "#listeners", "http", "port") == str(port)
        assert all(s.state == "RUNNING" for s in stopped_host.status().values())


@sync
async def test_no_start_opens_with_listeners_stopped(stopped_host):
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert cell(app, "#listeners", "http", "state") == "STOPPED"
        assert cell(app, "#listeners", "tls", "state") == "STOPPED"
        assert not any(listener.running for listener in stopped_host.listeners.values())


@pytest.mark.parametrize("flags,state", [(["--no-start"], "STOPPED"), ([], "RUNNING")])
def test_the_command_line_opens_the_console_with_listeners_started_unless_no_start(
        settings, site_key, monkeypatch, flags, state):
    from console.__main__ import main

    seen = {}

    def run(app):  # instead of taking over the terminal: look at the console it opened
        async def look():
            app.freeze_gc = False  # that is for the console's own process, not for pytest
            async with app.run_test(size=SIZE) as pilot:
                await app.workers.wait_for_complete()  # starting them, unless --no-start
                await pilot.pause()
                seen.update({name: cell(app, "#listeners", name, "state")
                             for name in ("http", "tls")})
                seen["running"] = [n for n, lst in app.host.listeners.items() if lst.running]

        asyncio.run(look())

    monkeypatch.setattr(EngageConsole, "run", run)
    folders = [f"--{flag}={settings.path(name)}" for flag, name in (
        ("certs-dir", "certs_dir"), ("data-dir", "data_dir"), ("logs-dir", "logs_dir"),
        ("site-key-file", "site_key_file"))]
    assert main(["--bind", "127.0.0.1", "--http-port", "0", "--tls-port", "0", *folders,
                 *flags]) == 0
    assert seen["http"] == seen["tls"] == state
    assert seen["running"] == ([] if state == "STOPPED" else ["http", "tls"])


@pytest.mark.parametrize("crash", [False, True])
def test_the_console_exits_with_the_apps_return_code(settings, site_key, monkeypatch, crash):
    from console.app import run_console
    from console.screens.dashboard import DashboardScreen

    original = EngageConsole.run

    def run(app):  # headless: no terminal to take over here
        app.freeze_gc = False
        if not crash:
            app.call_later(app.exit)
        return original(app, headless=True, size=SIZE)

    def broken(screen):
        raise RuntimeError("the dashboard broke")

    monkeypatch.setattr(EngageConsole, "run", run)
    if crash:
        monkeypatch.setattr(DashboardScreen, "on_mount", broken)
    assert run_console(settings, ("http", "tls"), start=False) == (1 if crash else 0)


@sync
async def test_keys_stop_and_start_each_listener_and_both(host):
    app = EngageConsole(host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await press_to(pilot, "h", ConfirmScreen)  # stopping asks first
        await pilot.press("y")
        await until(pilot, lambda: cell(app, "#listeners", "http", "state") == "STOPPED")
        assert host.listeners["tls"].running and not host.listeners["http"].running
        await press_to(pilot, "t", ConfirmScreen)
        await pilot.press("y")
        await until(pilot, lambda: cell(app, "#listeners", "tls", "state") == "STOPPED")
        await pilot.press("h")
        await until(pilot, lambda: cell(app, "#listeners", "http", "state") == "RUNNING")
        assert http_get(host.listeners["http"].bound_port,
                        "/swordfish/lock/certificates/current")[0] == 200
        await press_to(pilot, "x", ConfirmScreen)
        await pilot.press("y")
        await until(pilot, lambda: not any(s.state == "RUNNING" for s in host.status().values()))
        await pilot.press("s")
        await until(pilot, lambda: cell(app, "#listeners", "tls", "state") == "RUNNING"
                    and cell(app, "#listeners", "http", "state") == "RUNNING")


@sync
async def test_a_listener_that_cannot_start_shows_failed_with_the_fix(make_host):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        app = EngageConsole(make_host(http_port=busy.getsockname()[1]))
        notes = Notes(app)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: cell(app, "#listeners", "http", "state") == "FAILED")
            assert "already in use" in cell(app, "#listeners", "http", "last_error")
            assert "--http-port" in cell(app, "#listeners", "http", "last_error")
            assert cell(app, "#listeners", "tls", "state") == "RUNNING"
            assert any("HTTP listener FAILED" in m for m in notes.errors())


@pytest.mark.parametrize("size", [SIZE, (80, 24)])
@sync
async def test_a_failed_listener_shows_its_whole_error_with_the_fix_on_screen(make_host, size):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        app = EngageConsole(make_host(http_port=port))
        async with app.run_test(size=size) as pilot:
            await until(pilot, lambda: cell(app, "#listeners", "http", "state") == "FAILED")
            app.clear_notifications()  # the notification says it too: the panel must say it
            await pilot.pause()
            shown = " ".join(screen_text(app).split())  # wrapped lines joined
            assert f"HTTP FAILED: port {port} on 127.0.0.1 is already in use" in shown
            assert "choose another port with --http-port" in shown


@sync
async def test_with_no_active_set_tls_fails_with_the_fix_and_the_status_bar_says_so(settings,
                                                                                  site_key):
    h = Host(settings, site_key)  # nothing created, nothing activated
    try:
        app = EngageConsole(h)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: cell(app, "#listeners", "tls", "state") == "FAILED")
            assert "certs activate" in cell(app, "#listeners", "tls", "last_error")
            assert cell(app, "#listeners", "http", "state") == "RUNNING"
            assert "Active set: NONE" in str(app.screen.query_one("#status-bar").render())
    finally:
        h.close()


@sync
async def test_a_cell_that_grows_is_drawn_whole_at_once_and_stays_whole():
    from textual.app import App

    from console.widgets.tables import sync_rows

    class OneTable(App):
        def compose(self):
            yield DataTable()

    app = OneTable()
    async with app.run_test(size=(60, 5)) as pilot:
        table = app.query_one(DataTable)
        table.add_column("Port", key="port")
        table.add_column("Since", key="since")
        shown = {}
        sync_rows(table, {"http": {"port": "0", "since": "-"}}, shown)
        await pilot.pause()
        sync_rows(table, {"http": {"port": "48141", "since": "05:03:12 UTC"}}, shown)
        drawn_at_once = table.render_line(1).text  # before the table has been idle
        await pilot.pause()
        for line in (drawn_at_once, table.render_line(1).text):
            assert "48141" in line and "05:03:12 UTC" in line, line


# --- the live lock log -------------------------------------------------------------------------


@sync
async def test_a_real_request_appears_in_the_log_and_in_the_counters(host):
    app = EngageConsole(host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        port = host.listeners["http"].bound_port
        assert http_get(port, "/swordfish/lock/certificates/current")[0] == 200
        wait_for_event(host.log, lambda e: e.path == "/swordfish/lock/certificates/current")
        await until(pilot, lambda: any(e.path == "/swordfish/lock/certificates/current"
                                       for e in log_of(app).shown), what="request in the log")
        await until(pilot, lambda: cell(app, "#listeners", "http", "requests") == "1")


@sync
async def test_a_failed_tls_handshake_stands_out_with_its_reason(host):
    app = EngageConsole(host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        client = ssl.create_default_context()  # trusts public CAs, not our anchor
        with socket.create_connection(("127.0.0.1", host.listeners["tls"].bound_port)) as raw:
            with pytest.raises(ssl.SSLError):
                client.wrap_socket(raw, server_hostname="localhost")
        await until(pilot, lambda: any(e.kind == "handshake" for e in log_of(app).shown))
        line = next(i for i, e in enumerate(log_of(app).shown) if e.kind == "handshake")
        text = log_of(app).render_line(line - int(log_of(app).scroll_y)).text
        assert "TLS FAIL" in text and "TLS handshake failed:" in text
        assert log_of(app).shown[line].error in text


@sync
async def test_events_reach_the_log_in_batches_not_one_update_per_request(stopped_host):
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        log = log_of(app)
        batches = []
        original = log.add_events
        log.add_events = lambda events: (batches.append(len(events)), original(events))
        for n in range(1000):
            stopped_host.log.record(request(n))
        await until(pilot, lambda: sum(batches) == 1000, what="1000 events shown")
        assert len([b for b in batches if b]) <= 3
        assert len(log.shown) == 1000


@sync
async def test_the_log_stays_bounded(make_host):
    h = make_host(log_ring_size=50)
    app = EngageConsole(h, start=False)
    async with app.run_test(size=SIZE) as pilot:
        for n in range(500):
            h.log.record(request(n))
        await until(pilot, lambda: log_of(app).shown and
                    log_of(app).shown[-1].path.endswith("/499"))
        assert len(log_of(app).shown) == 50
        assert log_of(app).shown[0].path.endswith("/450")


@sync
async def test_events_the_console_had_no_time_for_are_counted_not_hidden(make_host):
    h = make_host(log_ring_size=10)  # the console's queue then holds its minimum, 1,000 events
    app = EngageConsole(h, start=False)
    async with app.run_test(size=SIZE) as pilot:
        for n in range(1500):  # no await: the UI gets no turn in between
            h.log.record(request(n))
        await until(pilot, lambda: "500 events missed" in str(
            app.screen.query_one("#log-state").render()))


@sync
async def test_scrolling_up_pauses_following_and_counts_new_lines(stopped_host):
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        log = log_of(app)
        for n in range(100):
            stopped_host.log.record(request(n))
        await until(pilot, lambda: len(log.shown) == 100)
        assert log.follow and log.scroll_y == log.max_scroll_y
        await pilot.press("pageup")
        await until(pilot, lambda: not log.follow, what="page up to pause following")
        assert not log.follow
        top = log.scroll_y
        for n in range(100, 110):
            stopped_host.log.record(request(n))
        await until(pilot, lambda: len(log.shown) == 110)
        assert log.pending == 10 and log.scroll_y == top
        log_state = app.screen.query_one("#log-state")
        await until(pilot, lambda: "110 lines" in str(log_state.render()),  # one message later
                    what="the state line")
        state = str(log_state.render())
        assert "PAUSED" in state and "10 new lines waiting" in state
        await pilot.press("end")
        await until(pilot, lambda: log.follow and "FOLLOWING" in str(log_state.render()),
                    what="End to follow again, on the state line too (one message later)")
        assert log.follow and log.pending == 0 and log.scroll_y == log.max_scroll_y
        assert "FOLLOWING" in str(app.screen.query_one("#log-state").render())


async def scrolled_up(pilot, clicks: int) -> LockLog:
    """A log of 100 lines, scrolled up by ``clicks`` of the mouse wheel."""
    log = log_of(pilot.app)
    for n in range(100):
        pilot.app.host.log.record(request(n))
    await until(pilot, lambda: len(log.shown) == 100)
    await until(pilot, lambda: log.max_scroll_y > 0 and log.scroll_y == log.max_scroll_y,
                what="the log at its newest line")  # a deferred scroll to the end is done
    await pilot.pause()
    for _ in range(clicks):  # what the terminal driver delivers for the wheel
        log.post_message(events.MouseScrollUp(log, 5, 5, 0, -1, 0, False, False, False))
    return log


@sync
async def test_scrolling_with_the_mouse_wheel_pauses_and_reaching_the_bottom_follows(
        stopped_host):
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        log = await scrolled_up(pilot, 3)
        await until(pilot, lambda: not log.follow, what="the wheel to pause")
        assert log.scroll_y < log.max_scroll_y
        stopped_host.log.record(request(100))
        await until(pilot, lambda: log.pending == 1)
        log.scroll_end(animate=False, immediate=True)
        await pilot.pause()
        assert log.follow and log.pending == 0


@sync
async def test_filter_by_path_address_serial_or_status(stopped_host):
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        events = [request(1, duration_ms=1), request(2, client="192.168.7.9", duration_ms=2),
                  request(3, serial="ABC123", duration_ms=3),
                  request(4, status=404, path="/swordfish/lock/db/0", duration_ms=4)]
        for event in events:
            stopped_host.log.record(event)
        log = log_of(app)
        await until(pilot, lambda: len(log.shown) == 4)
        box = app.screen.query_one("#log-filter", Input)
        log_state = app.screen.query_one("#log-state")
        for term, expected in (("192.168.7", 2), ("abc123", 3), ("404", 4), ("/db/", 4)):
            await pilot.press("slash")
            await until(pilot, lambda: box.has_focus, what="the filter box focused")
            assert box.has_focus
            box.value = ""
            await pilot.press(*term)
            await pilot.press("enter")  # the filter follows each key; enter hands focus back
            await until(pilot, lambda: log.has_focus, what=f"enter after {term!r}")
            assert [e.duration_ms for e in log.shown] == [expected], term
            assert log.has_focus
        await pilot.press("slash")
        await until(pilot, lambda: box.has_focus, what="the filter box focused")
        await pilot.press("left_square_bracket", "b", "enter")  # not markup
        await until(pilot, lambda: log.has_focus and "filter '[b'" in str(log_state.render()),
                    what="the filter '[b' on the state line")
        assert log.shown == [] and "filter '[b': 0 of 4" in str(
            app.screen.query_one("#log-state").render())
        await pilot.press("escape")
        await until(pilot, lambda: log.filter_text == "", what="escape to clear the filter")
        assert len(log.shown) == 4 and log.filter_text == ""
        assert app.screen.query_one("#log-filter").has_class("hidden")


async def filter_log(pilot, query: str) -> None:
    """Type ``query`` into the log filter (``/``) and hand focus back to the log (enter)."""
    box = pilot.app.screen.query_one("#log-filter", Input)
    log = log_of(pilot.app)
    await pilot.press("slash")
    await until(pilot, lambda: box.has_focus, what="the filter box focused")
    box.value = ""
    await pilot.press(*query)
    await pilot.press("enter")
    await until(pilot, lambda: log.has_focus, what=f"enter after {query!r}")


@sync
async def test_the_filter_selects_failures_statuses_methods_and_listeners(stopped_host):
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        events = [request(1), request(2, method="PUT", path="/swordfish/lock/config"),
                  request(3, status=404), request(4, listener="tls", status=500),
                  request(5, listener="tls", kind="handshake", method="", path="", status=0,
                          error="client does not trust our chain (unknown CA)"),
                  request(6, listener="tls", method="POST", path="/swordfish/lock/audit")]
        for event in events:
            stopped_host.log.record(event)
        log = log_of(app)
        await until(pilot, lambda: len(log.shown) == 6)
        for query, expected in (("fail", [3, 4, 5]), ("status:4xx", [3]), ("status:5", [4]),
                                ("status:404", [3]), ("method:put", [2]), ("method:P", [2, 6]),
                                ("tls", [4, 5, 6]), ("http", [1, 2, 3]), ("tls fail", [4, 5]),
                                ("ok", [1, 2, 6]), ("unknown ca", [5]), ("http trust", []),
                                ("http /config", [2])):
            await filter_log(pilot, query)
            assert [int(e.client.rsplit(".", 1)[1]) for e in log.shown] == expected, query


@sync
async def test_a_filter_word_that_means_nothing_is_said_and_the_log_keeps_its_lines(
        stopped_host):
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        for n in range(3):
            stopped_host.log.record(request(n, status=404 if n else 200))
        log = log_of(app)
        await until(pilot, lambda: len(log.shown) == 3)
        await filter_log(pilot, "fail")
        assert len(log.shown) == 2
        app.screen.query_one("#log-filter", Input).value = "status:abc"  # at once
        await until(pilot, lambda: "FILTER NOT APPLIED" in str(
            app.screen.query_one("#log-state").render()), what="the filter's problem said")
        state = str(app.screen.query_one("#log-state").render())
        assert "FILTER NOT APPLIED: status:abc is not a status" in state
        assert len(log.shown) == 2 and log.filter_text == "fail"


@sync
async def test_the_help_says_the_filter_words(stopped_host):
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await press_to(pilot, "question_mark", HelpScreen)
        shown = " ".join(screen_text(app).split())
        for word in ("fail", "status:4xx", "method:PUT", "tls, http"):
            assert word in shown, word


@sync
async def test_p_pauses_following_counts_new_lines_and_p_follows_again(stopped_host):
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        log = log_of(app)
        log_state = app.screen.query_one("#log-state")
        for n in range(50):
            stopped_host.log.record(request(n))
        await until(pilot, lambda: len(log.shown) == 50)
        await pilot.press("p")
        await until(pilot, lambda: not log.follow, what="p to pause")
        top = log.scroll_y
        assert log.selected_event() is log.shown[-1]  # the cursor on the newest line shown
        for n in range(50, 57):
            stopped_host.log.record(request(n))
        await until(pilot, lambda: "7 new lines waiting" in str(log_state.render()),
                    what="the new lines counted")
        assert log.pending == 7 and log.scroll_y == top and "PAUSED" in str(log_state.render())
        await pilot.press("p")
        await until(pilot, lambda: log.follow, what="p to follow again")
        assert log.pending == 0 and log.scroll_y == log.max_scroll_y


@sync
async def test_after_a_mouse_scroll_enter_shows_the_event_on_screen_not_the_newest(
        stopped_host):
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        log = await scrolled_up(pilot, 5)
        await until(pilot, lambda: not log.follow, what="the wheel to pause")
        await pilot.pause()
        top = int(log.scroll_y)
        on_screen = log.shown[top:top + log.scrollable_content_region.height]
        assert log.shown[-1] not in on_screen
        await press_to(pilot, "enter", EventScreen)
        assert app.screen.event in on_screen
        assert app.screen.event is log.selected_event()


@sync
async def test_y_copies_the_lock_serial_and_shift_y_the_whole_event(stopped_host):
    app = EngageConsole(stopped_host, start=False)
    notes = Notes(app)
    async with app.run_test(size=SIZE) as pilot:
        stopped_host.log.record(request(1, serial="LOCK77", headers={"User-Agent": "ENGAGE"}))
        stopped_host.log.record(request(2))
        log = log_of(app)
        await until(pilot, lambda: len(log.shown) == 2)
        await pilot.press("y")  # the newest line has no serial: said, nothing copied
        await until(pilot, lambda: "No lock serial" in notes.text(), what="y on no serial")
        assert app.clipboard == ""
        await pilot.press("up", "up", "y")
        await until(pilot, lambda: app.clipboard == "LOCK77", what="y to copy the serial")
        await pilot.press("Y")
        await until(pilot, lambda: app.clipboard.startswith("{"), what="Y to copy the event")
        copied = json.loads(app.clipboard)
        assert copied == log.shown[0].to_dict() and copied["headers"]["User-Agent"] == "ENGAGE"
        await press_to(pilot, "enter", EventScreen)
        app.copy_to_clipboard("")
        await pilot.press("y")
        await until(pilot, lambda: app.clipboard == "LOCK77", what="y in the event detail")
        await pilot.press("Y")
        await until(pilot, lambda: app.clipboard.startswith("{"), what="Y in the event detail")
        assert json.loads(app.clipboard)["serial"] == "LOCK77"


@sync
async def test_enter_on_a_line_shows_the_whole_event(stopped_host):
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        stopped_host.log.record(request(1, serial="LOCK77", headers={"User-Agent": "ENGAGE"}))
        stopped_host.log.record(request(2))
        await until(pilot, lambda: len(log_of(app).shown) == 2)
        await pilot.press("up", "up")  # all for the log: its focus does not move
        await press_to(pilot, "enter", EventScreen)
        assert isinstance(app.screen, EventScreen)
        assert app.screen.event.serial == "LOCK77"
        await pilot.press("escape")
        await until(pilot, lambda: showing(app, DashboardScreen), what="escape to close it")
        assert not isinstance(app.screen, EventScreen)


@sync
async def test_clicking_a_line_shows_that_event_and_clicking_the_border_shows_none(stopped_host):
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        for n in range(5):
            stopped_host.log.record(request(n))
        log = log_of(app)
        await until(pilot, lambda: len(log.shown) == 5)
        await pilot.click(LockLog, offset=(10, 0))  # the top border
        assert not isinstance(app.screen, EventScreen)
        await pilot.click(LockLog, offset=(10, 3))  # border, then lines 0, 1, 2
        await until(pilot, lambda: showing(app, EventScreen), what="the click to show the event")
        assert isinstance(app.screen, EventScreen)
        assert app.screen.event.path.endswith("/2")
        assert log.cursor == 2


@pytest.mark.parametrize("name", ["site-lobby-a-renewed-20261125",
                                  "site-north-building-2026-renewed-20261125"])
@sync
async def test_the_status_bar_says_it_all_on_one_line_at_120_columns(stopped_host, name):
    add_set(stopped_host, name)
    active = stopped_host.certificates.activate(name, force=True, by="test")
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        bar = app.screen.query_one("#status-bar")
        assert bar.size.height == 1
        line = screen_text(app).splitlines()[-2]  # above the footer
        assert line.strip().startswith(f"Active: {name[:20]}")
        assert f"| hash {active.hash} | expires in 729 d" in line or \
            f"| hash {active.hash} | expires in 730 d" in line, line


@sync
async def test_demo_material_is_labelled(stopped_host):
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        notices = str(app.screen.query_one("#notices").render())
        assert "NOTICE: DEMO" in notices
        assert "(DEMO)" in str(app.screen.query_one("#status-bar").render())


# --- certificates ------------------------------------------------------------------------------


async def open_certificates(pilot, select: str | None = None) -> None:
    app = pilot.app
    await press_to(pilot, "2", CertificatesScreen)
    await until(pilot, lambda: app.screen.query_one("#sets", DataTable).row_count > 0
                and "Select a set" not in str(app.screen.query_one("#report-text").render()))
    if select is not None:
        table = app.screen.query_one("#sets", DataTable)
        table.move_cursor(row=table.get_row_index(select))
        await until(pilot, lambda: str(app.screen.query_one("#report-text").render())
                    .startswith(f"{select}:"), what=f"report of {select}")


def add_set(host, name: str) -> None:
    pki.init_set(host.store, host.settings.path("ca_dir"), name, ["localhost", "127.0.0.1"])


@sync
async def test_every_set_is_listed_with_verdict_and_report(stopped_host):
    add_set(stopped_host, "second")
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_certificates(pilot, "second")
        assert cell(app, "#sets", "demo", "active") == "ACTIVE"
        assert cell(app, "#sets", "second", "active") == ""
        assert cell(app, "#sets", "second", "verdict") in ("OK", "WARNING")
        assert "/ 4,096" in cell(app, "#sets", "second", "chain")
        report = str(app.screen.query_one("#report-text").render())
        expected_hash = stopped_host.site_key.hash(stopped_host.store.load("second").anchor_der)
        assert expected_hash in report


@sync
async def test_certificate_names_in_the_chain_are_shown_as_written_not_as_markup(stopped_host):
    from textual.widgets import Tree

    from server.certstore import write_set

    root = pki.issue_root("Lab [bold]Root[/bold] [/x]")
    inter = pki.issue_intermediate(root, "Inter [link=x]")
    server = pki.issue_server(inter, ["localhost"])
    write_set(stopped_host.store.set_path("brackets"), pki.cert_der(root.cert),
              pki.cert_pem(server.cert) + pki.cert_pem(inter.cert), pki.key_pem(server.key))
    app = EngageConsole(stopped_host, start=False)
    notes = Notes(app)
    async with app.run_test(size=SIZE) as pilot:
        await open_certificates(pilot, "brackets")
        tree = app.screen.query_one("#chain", Tree)
        labels = []
        nodes = [tree.root]
        while nodes:
            node = nodes.pop(0)
            labels.append(node.label.plain)
            nodes.extend(node.children)
        assert any("CN=Lab [bold]Root[/bold] [/x]" in label and label.startswith("anchor")
                   for label in labels), labels
        assert "issuer: CN=Lab [bold]Root[/bold] [/x]" in labels
        assert any("CN=Inter [link=x]" in label for label in labels), labels
        assert not notes.errors()


@sync
async def test_the_chain_shows_whole_subjects_issuers_and_dates_at_120_columns(stopped_host):
    add_set(stopped_host, "second")
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_certificates(pilot, "second")
        await pilot.pause()
        shown = screen_text(app)
        chain = app.screen.rows["second"].report.chain
        assert len(chain) == 3
        for info in chain:
            assert f"{info.role} (depth {info.depth}): {info.subject}" in shown, shown
            assert f"issuer: {info.issuer}" in shown
            assert f"{info.bytes:,} bytes, {info.key}, expires {info.not_after}" in shown


@sync
async def test_a_new_set_appears_without_a_restart(stopped_host):
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_certificates(pilot)
        add_set(stopped_host, "dropped-in")
        await until(pilot, lambda: app.screen.query_one("#sets", DataTable).row_count == 2,
                    what="new set listed")
        assert cell(app, "#sets", "dropped-in", "verdict") in ("OK", "WARNING")


@sync
async def test_the_latest_report_wins_and_a_slow_one_never_blocks_the_ui(stopped_host,
                                                                         monkeypatch):
    import threading

    from console import set_rows
    from textual.widgets import Tree

    add_set(stopped_host, "alpha")
    add_set(stopped_host, "beta")
    held, release, returned = threading.Event(), threading.Event(), threading.Event()
    hold_alpha = False
    original = set_rows.check_set

    def check_set(cert_set, *args, **kwargs):
        if hold_alpha and cert_set.name == "alpha":
            held.set()
            release.wait(10)  # on the UI thread this would hold every key for 10 s
            returned.set()
        return original(cert_set, *args, **kwargs)

    monkeypatch.setattr(set_rows, "check_set", check_set)
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_certificates(pilot, "demo")
        table = app.screen.query_one("#sets", DataTable)
        report = app.screen.query_one("#report-text")
        hold_alpha = True
        table.move_cursor(row=table.get_row_index("alpha"))
        await until(pilot, held.is_set, workers=False, what="alpha's report to start")
        table.move_cursor(row=table.get_row_index("beta"))
        await until(pilot, lambda: str(report.render()).startswith("beta:"), workers=False,
                    what="beta's report while alpha's is still being computed")
        await press_to(pilot, "question_mark", HelpScreen, workers=False)
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await until(pilot, lambda: showing(app, CertificatesScreen), workers=False,
                    what="escape to close the help")
        assert not returned.is_set()  # alpha's report is still being computed
        release.set()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert str(report.render()).startswith("beta:")
        assert "Root beta" in str(app.screen.query_one("#chain", Tree).root.children[0].label)
        assert table.get_row_at(table.cursor_row)[0].plain == "beta"


def row_keys(table) -> list[str]:
    return [row.key.value for row in table.ordered_rows]


@sync
async def test_a_new_set_takes_its_place_in_name_order(stopped_host):
    add_set(stopped_host, "zulu")
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_certificates(pilot, "zulu")
        table = app.screen.query_one("#sets", DataTable)
        add_set(stopped_host, "alpha")
        await until(pilot, lambda: table.row_count == 3, what="the new set listed")
        assert row_keys(table) == ["alpha", "demo", "zulu"]
        assert cursor_key(table) == "zulu"


@sync
async def test_days_to_expiry_follow_the_clock_while_the_console_stays_open(stopped_host,
                                                                            monkeypatch):
    import datetime as dt

    from console.screens import base

    monkeypatch.setattr(base, "CLOCK_SECONDS", 0.05)
    now = [dt.datetime.now(dt.timezone.utc)]
    app = EngageConsole(stopped_host, start=False, clock=lambda: now[0])
    async with app.run_test(size=SIZE) as pilot:
        await open_certificates(pilot, "demo")
        days = int(cell(app, "#sets", "demo", "expiry").split()[0])
        status = app.screen.query_one("#status-bar")
        assert f"expires in {days} d" in str(status.render())
        now[0] += dt.timedelta(days=10)
        await until(pilot, lambda: cell(app, "#sets", "demo", "expiry") == f"{days - 10} d"
                    and f"expires in {days - 10} d" in str(status.render()),
                    what="days to expiry ten days on")
        await app.switch_mode("dashboard")
        now[0] += dt.timedelta(days=1)
        await until(pilot, lambda: f"expires in {days - 11} d" in str(
            app.screen.query_one("#status-bar").render()), what="the dashboard's status bar")


@sync
async def test_copy_hash_uses_the_clipboard(stopped_host):
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_certificates(pilot, "demo")
        await pilot.press("y")
        await until(pilot, lambda: app.clipboard, what="y to copy a hash")
        assert app.clipboard == stopped_host.certificates.current().hash


@sync
async def test_activate_asks_with_old_and_new_anchor_and_cancel_keeps_the_set(stopped_host):
    add_set(stopped_host, "second")
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_certificates(pilot, "second")
        await press_to(pilot, "a", ConfirmScreen)
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.focused.id == "cancel"
        body = str(app.screen.query_one("#dialog-body").render())
        second = stopped_host.store.load("second")
        assert "demo" in body and "->" in body
        assert stopped_host.site_key.hash(second.anchor_der) in body
        assert "anchor changes" in str(app.screen.query_one("#dialog-warning").render())
        await pilot.press("enter")  # on "Cancel"
        await until(pilot, lambda: showing(app, CertificatesScreen), what="the dialog closed")
        await app.workers.wait_for_complete()
        assert stopped_host.certificates.current().name == "demo"


@sync
async def test_activate_with_confirm_then_roll_back(host):
    add_set(host, "second")
    app = EngageConsole(host, start=False)
    notes = Notes(app)
    async with app.run_test(size=SIZE) as pilot:
        await open_certificates(pilot, "second")
        await press_to(pilot, "a", ConfirmScreen)  # "y" is copy hash until the dialog is up
        await pilot.press("y")
        await until(pilot, lambda: host.certificates.current().name == "second")
        await until(pilot, lambda: cell(app, "#sets", "second", "active") == "ACTIVE")
        assert "Active set is now second" in notes.text()
        assert "second" in str(app.screen.query_one("#status-bar").render())
        answer = http_get(host.listeners["http"].bound_port,
                          "/swordfish/lock/certificates/current")[2]
        assert host.certificates.current().hash in answer.decode()

        await pilot.press("r")
        await until(pilot, lambda: showing(app, ConfirmScreen), what="the question")
        assert isinstance(app.screen, ConfirmScreen)
        assert "Roll back to set demo" in str(app.screen.query_one("#dialog-body").render())
        await pilot.press("y")
        await until(pilot, lambda: host.certificates.current().name == "demo")
        await until(pilot, lambda: cell(app, "#sets", "demo", "active") == "ACTIVE")


@pytest.mark.parametrize("activations", [0, 2])  # 2: the history ends demo, demo
@sync
async def test_rollback_with_no_history_is_a_notification(stopped_host, activations):
    """Also when the entry before the last is the set already active: never offered."""
    for _ in range(activations):
        stopped_host.certificates.activate("demo", force=True, by="test")
    app = EngageConsole(stopped_host, start=False)
    notes = Notes(app)
    async with app.run_test(size=SIZE) as pilot:
        await open_certificates(pilot)
        await pilot.press("r")
        await until(pilot, lambda: "Nothing to roll back to" in notes.text())
        assert not isinstance(app.screen, ConfirmScreen)
        assert "Nothing to roll back to" in notes.text()


@sync
async def test_rollback_with_an_unreadable_history_is_a_notification(stopped_host):
    (stopped_host.store.root / "history.jsonl").write_bytes(b'{"set": "demo"}\n\xff\xfe\n')
    app = EngageConsole(stopped_host, start=False)
    notes = Notes(app)
    async with app.run_test(size=SIZE) as pilot:
        await open_certificates(pilot)
        await pilot.press("r")
        await until(pilot, lambda: notes.errors(), what="an error notification")
        assert "history" in notes.errors()[0] and "cannot be read" in notes.errors()[0]
        assert app.is_running and not isinstance(app.screen, ConfirmScreen)


@sync
async def test_a_failing_activation_is_a_notification_and_changes_nothing(stopped_host):
    add_set(stopped_host, "second")
    broken = stopped_host.store.set_path("broken")
    shutil.copytree(stopped_host.store.set_path("second"), broken)
    (broken / "server.key").write_bytes(pki.key_pem(pki.new_key()))  # key of another cert
    app = EngageConsole(stopped_host, start=False)
    notes = Notes(app)
    async with app.run_test(size=SIZE) as pilot:
        await open_certificates(pilot, "broken")
        assert cell(app, "#sets", "broken", "verdict") == "ERROR"
        await pilot.press("a")  # refused at once, with the reasons: no question first
        await until(pilot, lambda: any("cannot be activated" in m for m in notes.errors()),
                    what="an error notification")
        assert "key.mismatch" in notes.errors()[0] and not showing(app, ConfirmScreen)
        assert stopped_host.certificates.current().name == "demo"
        assert app.is_running


@sync
async def test_renew_creates_a_new_set_with_the_same_anchor(stopped_host):
    app = EngageConsole(stopped_host, start=False)
    notes = Notes(app)
    async with app.run_test(size=SIZE) as pilot:
        await open_certificates(pilot, "demo")
        await pilot.press("n")
        await until(pilot, lambda: app.screen.query_one("#sets", DataTable).row_count == 2,
                    what="renewed set listed")
        new = next(n for n in stopped_host.store.names() if n != "demo")
        assert stopped_host.store.load(new).anchor_der == stopped_host.store.load("demo").anchor_der
        assert f"new set {new}" in notes.text()
        await until(pilot, lambda: cursor_key(app.screen.query_one("#sets", DataTable)) == new,
                    what="the cursor on the renewed set, which a then activates")
        await until(pilot, lambda: str(app.screen.query_one("#report-text").render())
                    .startswith(f"{new}:"), what="the renewed set's report")
        await press_to(pilot, "a", ConfirmScreen)
        body = str(app.screen.query_one("#dialog-body").render())
        assert "Anchor:      SAME" in body and not app.screen.query("#dialog-warning")


@sync
async def test_import_from_paths_lists_the_new_set(stopped_host, tmp_path):
    source = stopped_host.store.set_path("demo")
    app = EngageConsole(stopped_host, start=False)
    notes = Notes(app)
    async with app.run_test(size=SIZE) as pilot:
        await open_certificates(pilot)
        await press_to(pilot, "i", ImportScreen)
        app.screen.query_one("#import-paths", Input).value = \
            f"{source / 'anchor.der'}, {source / 'chain.pem'}, {source / 'server.key'}"
        app.screen.query_one("#import-name", Input).value = "imported"
        passphrase = app.screen.query_one("#import-passphrase", Input)
        passphrase.focus()  # takes effect a message later
        await until(pilot, lambda: passphrase.has_focus, what="the passphrase box focused")
        await pilot.press("enter")
        await until(pilot, lambda: "imported" in stopped_host.store.names()
                    and app.screen.query_one("#sets", DataTable).row_count == 2,
                    what="imported set listed")
        assert "Imported set imported" in notes.text()


@sync
async def test_import_of_a_missing_file_says_so_and_imports_nothing(stopped_host, tmp_path):
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_certificates(pilot)
        await press_to(pilot, "i", ImportScreen)
        app.screen.query_one("#import-paths", Input).value = str(tmp_path / "nope.pem")
        app.screen.query_one("#import-name", Input).value = "x"
        problem = app.screen.query_one("#import-problem")
        await pilot.click("#import")
        await until(pilot, lambda: str(problem.render()), what="the problem shown")
        assert "no such file" in str(app.screen.query_one("#import-problem").render())
        await pilot.press("escape")
        await until(pilot, lambda: showing(app, CertificatesScreen), what="the form closed")
        assert stopped_host.store.names() == ["demo"]


@sync
async def test_a_report_that_fails_is_a_notification_not_a_crash(stopped_host, monkeypatch):
    from console import set_rows

    def broken_check(*args, **kwargs):
        raise RuntimeError("validator exploded")

    monkeypatch.setattr(set_rows, "check_set", broken_check)
    app = EngageConsole(stopped_host, start=False)
    notes = Notes(app)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await until(pilot, lambda: any("validator exploded" in m for m in notes.errors()))
        assert app.is_running
        await press_to(pilot, "1", DashboardScreen)
        assert app.current_mode == "dashboard"


# --- devices -----------------------------------------------------------------------------------


def call_in(host, serial: str) -> None:
    lock = SimulatedLock(serial, "localhost", host.listeners["http"].bound_port,
                         host.listeners["tls"].bound_port, host.site_key.hmac_key())
    result = lock.call_in()
    assert result.ok, result


@sync
async def test_device_list_updates_live_and_shows_the_record(host):
    call_in(host, "LOCK0001")
    (host.devices.root / "BROKEN01.json").write_text("{not json")
    app = EngageConsole(host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await press_to(pilot, "3", DevicesScreen)
        await until(pilot, lambda: app.screen.query_one("#devices", DataTable).row_count == 2)
        assert cell(app, "#devices", "BROKEN01", "state") == "corrupt"
        assert cell(app, "#devices", "LOCK0001", "state") == "ok"
        call_in(host, "LOCK0002")
        await until(pilot, lambda: app.screen.query_one("#devices", DataTable).row_count == 3,
                    what="the new lock listed live")
        assert cell(app, "#devices", "LOCK0002", "last_seen").endswith("s ago")

        table = app.screen.query_one("#devices", DataTable)
        table.move_cursor(row=table.get_row_index("LOCK0001"))
        await until(pilot, lambda: "serial  LOCK0001" in shown_text(app.screen.query_one(
            "#record-text")), what="record shown")
        shown = shown_text(app.screen.query_one("#record-text"))
        assert "Audits (" in shown and "Alerts (" in shown and "Audits (0" not in shown
        table.move_cursor(row=table.get_row_index("BROKEN01"))
        await until(pilot, lambda: "CORRUPT record" in shown_text(app.screen.query_one(
            "#record-text")))


def write_record(host, serial: str, model: str) -> Path:
    """A record as another process (``devices import``, an editor) leaves it."""
    path = host.devices.root / f"{serial}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"serial": serial, "model": model}))
    return path


@sync
async def test_a_record_another_process_writes_appears_without_a_call_in(stopped_host):
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await press_to(pilot, "3", DevicesScreen)
        table = app.screen.query_one("#devices", DataTable)
        await until(pilot, lambda: table.border_title.startswith("Locks: 0"), what="listed")
        write_record(stopped_host, "OUTSIDE1", "NDE80")
        await until(pilot, lambda: table.row_count == 1, timeout=3.0,
                    what="the new record listed within ~2 s")
        assert cell(app, "#devices", "OUTSIDE1", "model") == "NDE80"


@sync
async def test_the_refresh_key_rereads_a_record_edited_in_place(stopped_host):
    path = write_record(stopped_host, "OUTSIDE1", "NDE80")
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await press_to(pilot, "3", DevicesScreen)
        await until(pilot, lambda: app.screen.query_one("#devices", DataTable).row_count == 1)
        with open(path, "r+") as f:  # in place: the folder's mtime stays as it was
            f.write(json.dumps({"serial": "OUTSIDE1", "model": "LE800"}))
        await pilot.press("r")
        await until(pilot, lambda: cell(app, "#devices", "OUTSIDE1", "model") == "LE800",
                    what="the edit shown after r")
        await until(pilot, lambda: "LE800" in shown_text(app.screen.query_one("#record-text")),
                    what="the record pane read again")


@sync
async def test_a_huge_record_is_shown_summarised_with_where_to_find_the_rest(stopped_host):
    devices = stopped_host.devices
    devices.config_callin({"lckSn": "BIG00001"}, address="10.1.1.1")
    users = [{"usrID": n, "crdNum": f"{n:012d}", "fnm": f"User {n}", "lnm": "Someone",
              "schedules": [1, 2, 3]} for n in range(3000)]
    devices.set_db("BIG00001", {"usrRcrd": {"add": users}})
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await press_to(pilot, "3", DevicesScreen)
        record = app.screen.query_one("#record-text")
        await until(pilot, lambda: "serial  BIG00001" in shown_text(record), what="structured")
        await pilot.press("j")  # the raw JSON
        await until(pilot, lambda: '"BIG00001"' in shown_text(record), what="record shown")
        shown = shown_text(record)
        assert len(shown) < 30_000  # the record file is over 300 KB
        assert "The whole record: Engage_Data/BIG00001.json" in shown
        assert '"... 2,995 more of 3,000"' in shown
        assert '"User 4"' in shown and '"User 5"' not in shown
        assert record.virtual_size.height < 1_000
        await pilot.press("slash")  # keys are handled at once (not after the record is drawn)
        await until(pilot, lambda: app.screen.query_one("#device-filter", Input).has_focus,
                    workers=False, what="the filter box focused")
        assert app.screen.query_one("#device-filter", Input).has_focus


def test_a_record_view_past_its_limit_is_truncated_with_a_note():
    from console.record_view import RECORD_CHARS_SHOWN, record_parts

    parts = record_parts({"serial": "X1", "blobs": ["x" * 1000] * 4, "big": "y" * 50_000},
                         "Engage_Data/X1.json")
    text = "\n".join(part.plain for part in parts)
    assert len(text) < RECORD_CHARS_SHOWN + 200
    assert text.startswith('{\n  "serial": "X1"')
    assert "truncated: " in text and "more bytes - see Engage_Data/X1.json" in text


@sync
async def test_locks_that_call_in_later_take_their_place_in_serial_order(stopped_host):
    devices = stopped_host.devices
    for serial in ("LOCK0000", "LOCK0001", "LOCK0004"):
        devices.config_callin({"lckSn": serial}, address="10.1.1.1")
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await press_to(pilot, "3", DevicesScreen)
        table = app.screen.query_one("#devices", DataTable)
        await until(pilot, lambda: table.row_count == 3)
        table.move_cursor(row=table.get_row_index("LOCK0004"))
        for serial in ("LOCK0002", "LOCK0003"):
            devices.config_callin({"lckSn": serial}, address="10.1.1.2")
        await until(pilot, lambda: table.row_count == 5, what="the new locks listed")
        assert row_keys(table) == [f"LOCK000{n}" for n in range(5)]
        assert cursor_key(table) == "LOCK0004"


@sync
async def test_device_filter(stopped_host):
    for serial in ("AAA111", "BBB222"):
        stopped_host.devices.config_callin({"lckSn": serial}, address="10.1.1.1")
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await press_to(pilot, "3", DevicesScreen)
        table = app.screen.query_one("#devices", DataTable)
        await until(pilot, lambda: table.row_count == 2)
        box = app.screen.query_one("#device-filter", Input)
        await pilot.press("slash")
        await until(pilot, lambda: box.has_focus, what="the filter box focused")
        await pilot.press("b", "b", "enter")
        await until(pilot, lambda: table.has_focus, what="enter to hand focus back")
        assert table.row_count == 1 and cell(app, "#devices", "BBB222", "serial") == "BBB222"
        await pilot.press("escape")
        await until(pilot, lambda: box.has_class("hidden"), what="escape to clear the filter")
        assert table.row_count == 2
        await press_to(pilot, "escape", DashboardScreen)
        assert app.current_mode == "dashboard"


@sync
async def test_a_long_device_list_draws_the_first_rows_and_the_filter_finds_the_rest(
        stopped_host, monkeypatch):
    from console.screens import devices as devices_screen
    from server.devices.summary import DeviceSummary

    monkeypatch.setattr(devices_screen, "MAX_ROWS", 50)
    summaries = [DeviceSummary(serial=f"LOCK{n:04d}", model="NDE80") for n in range(120)]
    monkeypatch.setattr(stopped_host.devices, "summaries", lambda: summaries)
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await press_to(pilot, "3", DevicesScreen)
        table = app.screen.query_one("#devices", DataTable)
        await until(pilot, lambda: table.row_count == 50)
        assert "50 of 120" in table.border_title and "/ to filter" in table.border_title
        box = app.screen.query_one("#device-filter", Input)
        await pilot.press("slash")
        await until(pilot, lambda: box.has_focus, what="the filter box focused")
        await pilot.press(*"lock0119", "enter")
        await until(pilot, lambda: table.has_focus, what="enter to hand focus back")
        assert table.row_count == 1 and cell(app, "#devices", "LOCK0119", "serial") == "LOCK0119"
        assert "1 matching 'lock0119'" in table.border_title


@sync
async def test_device_names_are_shown_as_written_not_as_markup(stopped_host, monkeypatch):
    from server.devices.summary import DeviceSummary

    monkeypatch.setattr(stopped_host.devices, "summaries",
                        lambda: [DeviceSummary(serial="LOCK1", model="[bold]NDE[/bold] [link=x]")])
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await press_to(pilot, "3", DevicesScreen)
        await until(pilot, lambda: app.screen.query_one("#devices", DataTable).row_count == 1)
        table = app.screen.query_one("#devices", DataTable)
        assert "[bold]NDE[/bold] [link=x]" in table.render_line(1).text


# --- everywhere ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode,key,expected", [
    ("dashboard", "question_mark", ["HTTP on/off", "Stop both", "Filter", "Follow newest",
                                    "Pause", "Copy serial", "Copy event", "Notices"]),
    ("certificates", "f1", ["Activate", "Roll back", "Renew", "Import", "Copy hash"]),
    ("devices", "question_mark", ["Filter", "Back"]),
])
@sync
async def test_help_lists_the_keys_of_the_current_screen(stopped_host, mode, key, expected):
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await app.switch_mode(mode)
        await press_to(pilot, key, HelpScreen)
        assert isinstance(app.screen, HelpScreen)
        table = app.screen.table
        actions = list(table.columns[1].cells)
        for description in expected + ["Help", "Quit", "Dashboard", "Certificates", "Devices"]:
            assert description in actions, description
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen),
                    what="escape to close the help")
        assert not isinstance(app.screen, HelpScreen)


@pytest.mark.parametrize("mode", ["dashboard", "certificates", "devices"])
@sync
async def test_help_lists_each_action_once(stopped_host, mode):
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await app.switch_mode(mode)
        await press_to(pilot, "question_mark", HelpScreen)
        keys = list(app.screen.table.columns[0].cells)
        actions = list(app.screen.table.columns[1].cells)
        assert len(actions) == len(set(actions)), actions
        assert keys[actions.index("Command palette")] == "^p"
        assert "palette" not in actions  # Textual's own word for it, listed once as ours
        assert keys[actions.index("Quit")] == "q ^q"


@sync
async def test_every_screen_action_is_in_the_command_palette(stopped_host):
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await app.switch_mode("certificates")
        await pilot.pause()
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in ("Activate (a)", "Roll back (r)", "Renew (n)", "Import (i)",
                      "Copy hash (y)", "Force activate (A)", "Help (?)"):
            assert title in titles


@sync
async def test_a_palette_command_runs_its_action(host):
    app = EngageConsole(host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await press_to(pilot, "ctrl+p", CommandPalette)
        await until(pilot, lambda: isinstance(app.screen.focused, Input),
                    what="the palette's search box focused")  # typing goes there
        await pilot.press(*"Stop both")
        await until(pilot, lambda: "Stop both" in str(app.screen.query("CommandList").first()
                                                      .get_option_at_index(0).prompt))
        await press_to(pilot, "enter", ConfirmScreen)  # stopping asks first, as the key does
        await pilot.press("y")
        await until(pilot, lambda: not any(s.state == "RUNNING" for s in host.status().values()))


@sync
async def test_quit_asks_while_listeners_run_and_stops_them(host):
    app = EngageConsole(host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await press_to(pilot, "q", ConfirmScreen)
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.focused.id == "cancel"
        await pilot.press("n")
        await until(pilot, lambda: showing(app, DashboardScreen), what="n to close the dialog")
        assert app.is_running and host.listeners["http"].running
        await press_to(pilot, "q", ConfirmScreen)  # "y" means nothing until the dialog is up
        await pilot.press("y")
        await until(pilot, lambda: not app.is_running, what="the app to exit")
    assert not any(listener.running for listener in host.listeners.values())


@pytest.fixture
def signals_seen():
    """Signals this process gets that the console does not handle (without the console's own
    handlers, SIGTERM or SIGHUP would end pytest itself): recorded instead."""
    seen = []
    previous = {signum: signal.signal(signum, lambda number, _frame: seen.append(number))
                for signum in (signal.SIGTERM, signal.SIGHUP)}
    yield seen
    for signum, handler in previous.items():
        signal.signal(signum, handler)


@sync
async def test_sigterm_stops_the_listeners_and_exits_as_a_quit_does(host, signals_seen):
    app = EngageConsole(host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        os.kill(os.getpid(), signal.SIGTERM)
        await until(pilot, lambda: not app.is_running or signals_seen, what="the app to exit")
    assert signals_seen == [], "the console left SIGTERM unhandled"
    assert app.return_code == 0
    assert not any(listener.running for listener in host.listeners.values())


@sync
async def test_sighup_reloads_the_active_set_and_keeps_serving(stopped_host, signals_seen,
                                                              monkeypatch):
    add_set(stopped_host, "second")
    monkeypatch.setattr(stopped_host, "watch_active", lambda **_: None)  # only SIGHUP reloads
    monkeypatch.setattr(console_app, "terminal_present", lambda: True)
    app = EngageConsole(stopped_host, start=False)
    notes = Notes(app)
    async with app.run_test(size=SIZE) as pilot:
        other = Host.from_settings(stopped_host.settings, env={})  # another process activates
        try:
            other.certificates.activate("second", force=True, by="test")
        finally:
            other.close()
        assert stopped_host.certificates.current().name == "demo"
        os.kill(os.getpid(), signal.SIGHUP)
        await until(pilot, lambda: "SIGHUP: reloaded" in notes.text() or signals_seen,
                    what="the reload")
        assert signals_seen == [], "the console left SIGHUP unhandled"
        assert stopped_host.certificates.current().name == "second"
        assert "SIGHUP: reloaded the active set (second)" in notes.text()
        assert app.is_running


@sync
async def test_sighup_after_the_terminal_is_gone_stops_the_listeners_and_exits(
        host, signals_seen, monkeypatch):
    monkeypatch.setattr(console_app, "terminal_present", lambda: False)  # a closed terminal
    app = EngageConsole(host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        os.kill(os.getpid(), signal.SIGHUP)
        await until(pilot, lambda: not app.is_running or signals_seen, what="the app to exit")
    assert signals_seen == [] and app.return_code == 0
    assert not any(listener.running for listener in host.listeners.values())


@sync
async def test_quit_without_running_listeners_does_not_ask(stopped_host):
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, what="the app to exit")


@sync
async def test_a_tick_while_the_console_shuts_down_hands_nothing_to_its_screens(stopped_host,
                                                                               monkeypatch):
    from console.screens.dashboard import DashboardScreen

    app = EngageConsole(stopped_host, start=False)
    handed = []
    original = DashboardScreen.host_changed

    def host_changed(screen, change):
        handed.append(app.is_running)
        original(screen, change)

    def tick_while_taken_apart(log):  # the drain timer can fire while screens are pruned
        stopped_host.log.record(request(1))
        app.drain()

    monkeypatch.setattr(DashboardScreen, "host_changed", host_changed)
    monkeypatch.setattr(LockLog, "on_unmount", tick_while_taken_apart, raising=False)
    async with app.run_test(size=SIZE) as pilot:
        stopped_host.log.record(request(0))
        await until(pilot, lambda: handed, what="a tick")
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, what="the app to exit")
    assert all(handed), "a screen being taken apart was handed a change"


@sync
async def test_escape_backs_out_to_the_dashboard(stopped_host):
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await press_to(pilot, "2", CertificatesScreen)
        assert app.current_mode == "certificates"
        await press_to(pilot, "escape", DashboardScreen)
        assert app.current_mode == "dashboard"


@sync
async def test_a_too_small_terminal_gets_a_clear_message(stopped_host):
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=(60, 20)) as pilot:
        await pilot.pause()
        message = app.screen.query_one("#too-small")
        assert message.display and "too small" in str(message.render())
        assert not app.screen.query_one("#body").display
        await pilot.resize_terminal(100, 30)
        await until(pilot, lambda: not message.display, what="the message gone at 100x30")
        assert not message.display and app.screen.query_one("#body").display


def colours_on_screen(app) -> set[tuple[int, int, int]]:
    """Every foreground and background colour the terminal is sent for the screen now."""
    found = set()
    for strip in app.screen._compositor.render_strips():
        for segment in strip:
            style = segment.style
            for colour in (style.color, style.bgcolor) if style else ():
                if colour is not None and not colour.is_default:
                    found.add(tuple(colour.get_truecolor()))
    return found


SMALLEST = (80, 24)  # the stated minimum


@pytest.mark.parametrize("mode", ["dashboard", "certificates", "devices"])
@sync
async def test_at_80_columns_the_footer_shows_help_quit_and_the_screens(stopped_host, mode):
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SMALLEST) as pilot:
        await app.switch_mode(mode)
        await until(pilot, lambda: "q Quit" in screen_text(app).splitlines()[-1],
                    what="the footer drawn")
        footer = screen_text(app).splitlines()[-1]
        for item in ("? Help", "q Quit", "1 2 3 Screens"):
            assert item in footer, footer
        if mode == "dashboard":
            assert "p Pause" in footer and "/ Filter" in footer, footer


@sync
async def test_at_80_columns_log_lines_keep_their_status_and_lock_serial(stopped_host):
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SMALLEST) as pilot:
        stopped_host.log.record(request(1, method="PUT", serial="LOCK0001", status=404,
                                        path="/swordfish/lock/config/" + "x" * 60))
        await until(pilot, lambda: len(log_of(app).shown) == 1)
        await pilot.pause()
        line = next(line for line in screen_text(app).splitlines() if "PUT" in line)
        assert " 404 " in line and "lock=LOCK0001" in line, line


@sync
async def test_at_80_columns_each_notice_is_one_line_and_n_shows_them_whole(stopped_host):
    long = ("DEMO site key created in site.key: it is not registered with Allegion, so real "
            "locks will reject the certificate hash. Put your site's key there before going live.")
    stopped_host.notices[:] = [long, "a second notice"]
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SMALLEST) as pilot:
        await pilot.pause()
        lines = screen_text(app).splitlines()
        assert lines[1].strip().startswith("NOTICE: DEMO site key created")
        assert lines[1].rstrip().endswith("(n: whole notice)")
        assert lines[2].strip() == "NOTICE: a second notice"
        await press_to(pilot, "n", DetailScreen)
        shown = " ".join(shown_text(app.screen.query_one(Static)).split())
        assert long in shown and "a second notice" in shown


@sync
async def test_at_80_columns_the_status_bar_keeps_the_hash_and_the_expiry_whole(stopped_host):
    name = "site-north-building-2026-renewed-20261125"
    add_set(stopped_host, name)
    active = stopped_host.certificates.activate(name, force=True, by="test")
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SMALLEST) as pilot:
        await pilot.pause()
        lines = screen_text(app).splitlines()[-3:-1]  # above the footer
        assert lines[0].strip().startswith("Active: site-north")
        assert "| expires in 729 d" in lines[0] or "| expires in 730 d" in lines[0], lines
        assert f"hash {active.hash}" in lines[1], lines


@sync
async def test_no_color_is_respected(stopped_host, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        stopped_host.log.record(request(1, status=404))  # FAIL, in red with colour
        stopped_host.log.record(request(2, listener="tls", kind="handshake", status=0,
                                        error="unknown CA"))
        await until(pilot, lambda: len(log_of(app).shown) == 2)
        await pilot.pause()
        assert app.no_color
        assert cell(app, "#listeners", "http", "state") == "STOPPED"
        colours = colours_on_screen(app)
        assert colours and all(r == g == b for r, g, b in colours), sorted(colours)
        shown = screen_text(app)
        assert "FAIL" in shown and "TLS FAIL" in shown  # state in words, not colour


def test_server_never_imports_textual():
    import subprocess
    import sys

    code = ("import sys, importlib, pkgutil, server\n"
            "for m in pkgutil.walk_packages(server.__path__, 'server.'):\n"
            "    importlib.import_module(m.name)\n"
            "print(any(m == 'textual' or m.startswith('textual.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_under_110_columns_every_log_line_has_the_same_columns():
    """Compact columns for all lines or none: a long line and a short one stay aligned."""
    from console.widgets.lock_log import event_text

    short = request(1, path="/a")
    long = request(2, path="/swordfish/lock/certificates/anchors/" + "f" * 64 + ".der")
    for width in (80, 100):
        lines = [event_text(e, width).plain for e in (short, long)]
        assert [line.index(" ok ") for line in lines] == [lines[0].index(" ok ")] * 2, lines
        assert all(len(line) <= width for line in lines)
