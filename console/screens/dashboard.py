"""The dashboard: listener panel, notices (demo material), the rates of the last 10 minutes and
the fleet summary (pictures), and the live lock log."""

from __future__ import annotations

import json

from rich.json import JSON
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import DataTable, Input, Static

from server.control.commands import fleet
from server.events import Event
from server.listeners import FAILED

from ..format import clock_time
from ..log_filter import SYNTAX, FilterError
from ..widgets.lock_log import LockLog, copy_event, copy_serial, marker
from ..widgets.notices import Notices
from ..widgets.rates import BUCKET_SECONDS, Rates, Words
from ..widgets.tables import sync_rows
from .base import ConsoleScreen

LISTENER_COLUMNS = (("name", "Listener"), ("state", "State"), ("address", "Address"),
                    ("port", "Port"), ("since", "Since"), ("requests", "Requests"),
                    ("errors", "Errors"), ("last_error", "Last error"))
LABELS = {"http": "HTTP", "tls": "TLS"}
FLEET_SECONDS = 5.0  # the fleet summary line is redrawn this often (the counts are kept current)


def listener_cells(status) -> dict[str, str]:
    return {
        "name": LABELS.get(status.name, status.name), "state": status.state,
        "address": status.address, "port": str(status.port), "since": clock_time(status.since),
        "requests": f"{status.requests:,}", "errors": f"{status.errors:,}",
        "last_error": status.last_error or "-",
    }


def listener_errors(statuses) -> str:
    """Each listener's last error, whole (the table's column cuts it): why a listener FAILED,
    with its fix, or what last went wrong on one that runs."""
    return "\n".join(
        f"{LABELS.get(s.name, s.name)} {'FAILED' if s.state == FAILED else 'last error'}: "
        f"{s.last_error}" for s in statuses.values() if s.last_error)


class LogState(Widget):
    """One line under the log: following or paused (with the new lines waiting), the filter,
    the count; the hints last, left out when the line is too narrow for them. Updated every
    batch, so it repaints without a layout pass."""

    parts: reactive[tuple[tuple[str, ...], tuple[str, ...]]] = reactive(((), ()), layout=False)

    @property
    def text(self) -> str:
        return self.line(10_000)

    def line(self, width: int) -> str:
        needed, hints = self.parts
        whole = " | ".join(needed + hints)
        return whole if len(whole) <= width else " | ".join(needed)

    def render(self) -> Text:
        return Text(self.line(self.content_size.width), no_wrap=True, overflow="ellipsis")


class DetailScreen(ModalScreen[None]):
    """A whole text a key away: one event, or every notice."""

    BINDINGS = [Binding("escape,enter,q", "app.pop_screen", "Close", id="detail.close")]
    HINT = "esc closes"

    def __init__(self, title: str, body) -> None:
        super().__init__()
        self.title_text, self.body = title, body

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="event-detail") as box:
            box.border_title = self.title_text
            box.border_subtitle = self.HINT
            yield Static(self.body, markup=False)


class EventScreen(DetailScreen):
    """The whole event behind one log line; its lock serial or all of it can be copied."""

    BINDINGS = [
        Binding("y", "copy_serial", "Copy serial", id="event.copy_serial",
                tooltip="Copy the lock serial of this event (OSC 52)"),
        Binding("Y", "copy_event", "Copy event", id="event.copy_event",
                tooltip="Copy the whole event as JSON (OSC 52)"),
    ]
    HINT = "y copies the serial, Y the event, esc closes"

    def __init__(self, event: Event) -> None:
        super().__init__(f"Event #{event.seq}: {marker(event)}", JSON(json.dumps(event.to_dict())))
        self.event = event

    def action_copy_serial(self) -> None:
        copy_serial(self.app, self.event)

    def action_copy_event(self) -> None:
        copy_event(self.app, self.event)


class DashboardScreen(ConsoleScreen):
    TITLE = "Dashboard"
    BINDINGS = [
        Binding("h", "toggle('http')", "HTTP on/off", id="dashboard.toggle_http",
                tooltip="Start the HTTP listener, or stop it if it runs (asks first)"),
        Binding("t", "toggle('tls')", "TLS on/off", id="dashboard.toggle_tls",
                tooltip="Start the TLS listener, or stop it if it runs (asks first)"),
        Binding("s", "start_all", "Start both", id="dashboard.start_all", show=False,
                tooltip="Start both listeners"),
        Binding("x", "stop_all", "Stop both", id="dashboard.stop_all", show=False,
                tooltip="Stop both listeners, asking first (requests in flight finish)"),
        Binding("slash", "filter", "Filter", id="dashboard.filter",
                tooltip=f"Filter the log: {SYNTAX}; every word must match"),
        Binding("n", "notices", "Notices", id="dashboard.notices", show=False,
                tooltip="Every notice, whole (the panel shows one line of each)"),
        Binding("escape", "back", "Clear filter", show=False, id="dashboard.back",
                tooltip="Clear the filter and follow the newest line"),
    ]

    def compose_body(self) -> ComposeResult:
        notices = self.app.host.notices
        yield Notices(notices, id="notices", classes="" if notices else "hidden")
        table = DataTable(id="listeners", cursor_type="none", show_cursor=False)
        table.can_focus = False
        yield table
        yield Static("", id="listener-errors", markup=False, classes="hidden")
        yield Rates(id="rates")
        yield Words(id="fleet-line")
        yield Input(placeholder=f"{SYNTAX} (enter keeps it, esc clears)", id="log-filter",
                    classes="hidden")
        log = LockLog(max_lines=self.app.host.settings.log_ring_size, id="lock-log")
        log.border_title = "Lock log"
        yield log
        yield LogState(id="log-state")

    def on_mount(self) -> None:
        self.query_one("#log-filter").border_title = "Filter (? lists the words)"
        self._filter_problem = ""
        table = self.query_one("#listeners", DataTable)
        for key, label in LISTENER_COLUMNS:
            table.add_column(label, key=key)
        self._cells: dict[str, dict[str, str]] = {}
        self._errors = ""
        self.refresh_listeners()
        self.refresh_status()
        self.query_one(LockLog).focus()
        self._update_log_state()
        self.set_interval(BUCKET_SECONDS, lambda: self.query_one(Rates).show(self.app.now()))
        self.set_interval(FLEET_SECONDS, self.refresh_fleet)
        self.refresh_fleet()

    # --- host changes (from the app's drain timer) ----------------------------------------

    def host_changed(self, change) -> None:
        super().host_changed(change)
        self.query_one(LockLog).add_events(change.events)
        self.query_one(Rates).add(change.events, self.app.now())
        if change.listeners_changed:
            self.refresh_listeners()

    @work(thread=True, exclusive=True, group="fleet", exit_on_error=False, name="fleet summary")
    def refresh_fleet(self) -> None:
        """Counts per lock state (``server.devices.health``), off the UI thread."""
        line = "Fleet: " + fleet(self.app.host)["line"]
        self.app.call_from_thread(setattr, self.query_one("#fleet-line", Words), "text", line)

    def refresh_listeners(self) -> None:
        """Update the listener rows in place; only cells whose text changed are touched.
        Under the table, each listener's whole last error (a failure with its fix), wrapped."""
        statuses = self.app.host.status()
        wanted = {name: listener_cells(s) for name, s in statuses.items()}
        sync_rows(self.query_one("#listeners", DataTable), wanted, self._cells)
        errors = listener_errors(statuses)
        if errors != self._errors:
            self._errors = errors
            box = self.query_one("#listener-errors", Static)
            box.update(errors)
            box.set_class(not errors, "hidden")

    # --- listeners ---------------------------------------------------------------------------

    def action_toggle(self, name: str) -> None:
        if self.app.host.listeners[name].running:
            self.app.stop_listeners((name,))
        else:
            self.app.control_listeners((name,), start=True)

    def action_start_all(self) -> None:
        self.app.control_listeners(tuple(self.app.host.listeners), start=True)

    def action_stop_all(self) -> None:
        self.app.stop_listeners(tuple(self.app.host.listeners))

    # --- log ---------------------------------------------------------------------------------

    def action_filter(self) -> None:
        box = self.query_one("#log-filter", Input)
        box.remove_class("hidden")
        box.focus()

    def action_back(self) -> None:
        box = self.query_one("#log-filter", Input)
        box.value = ""
        box.add_class("hidden")
        log = self.query_one(LockLog)
        log.set_filter("")
        log.action_follow()
        log.focus()

    def action_notices(self) -> None:
        notices = self.app.host.notices
        if notices:
            self.app.push_screen(DetailScreen("Notices", "\n\n".join(notices)))

    @on(Input.Changed, "#log-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        """The log follows each key; a word it cannot read is said on the state line, and the
        log keeps what it showed."""
        try:
            self.query_one(LockLog).set_filter(event.value)
            self._filter_problem = ""
        except FilterError as exc:
            self._filter_problem = str(exc)
        self._update_log_state()

    @on(Input.Submitted, "#log-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            event.input.add_class("hidden")
        self.query_one(LockLog).focus()

    @on(LockLog.Selected)
    def _show_event(self, message: LockLog.Selected) -> None:
        self.app.push_screen(EventScreen(message.event))

    @on(LockLog.Changed)
    def _log_changed(self) -> None:
        self._update_log_state()

    def _update_log_state(self) -> None:
        log = self.query_one(LockLog)
        if log.follow:
            state = "FOLLOWING newest"
        else:
            state = f"PAUSED - {log.pending:,} new lines waiting (p or End follows)"
        shown = f"{len(log.shown):,} lines" if not log.filter_text else \
            f"filter '{log.filter_text}': {len(log.shown):,} of {log.total:,} lines"
        needed = [state, shown]
        if self._filter_problem:
            needed.insert(0, f"FILTER NOT APPLIED: {self._filter_problem}")
        dropped = self.app.inbox.subscription.dropped
        if dropped:
            needed.append(f"{dropped:,} events missed while the console was busy")
        self.query_one(LogState).parts = (tuple(needed), ("enter: whole event", "? keys"))
