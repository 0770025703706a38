"""The dashboard: listener panel, notices (demo material), and the live lock log."""

from __future__ import annotations

import json

from rich.json import JSON
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import DataTable, Input, Static

from server.events import Event
from server.listeners import FAILED

from ..format import clock_time
from ..widgets.lock_log import LockLog, marker
from ..widgets.tables import sync_rows
from .base import ConsoleScreen

LISTENER_COLUMNS = (("name", "Listener"), ("state", "State"), ("address", "Address"),
                    ("port", "Port"), ("since", "Since"), ("requests", "Requests"),
                    ("errors", "Errors"), ("last_error", "Last error"))
LABELS = {"http": "HTTP", "tls": "TLS"}


def listener_cells(status) -> dict[str, str]:
    return {
        "name": LABELS.get(status.name, status.name), "state": status.state,
        "address": status.address, "port": str(status.port), "since": clock_time(status.since),
        "requests": f"{status.requests:,}", "errors": f"{status.errors:,}",
        "last_error": status.last_error or "-",
    }


class LogState(Widget):
    """One line under the log: following or paused (with waiting lines), filter, count.
    Updated every batch, so it repaints without a layout pass."""

    text: reactive[str] = reactive("", layout=False)

    def render(self) -> Text:
        return Text(self.text)


class EventScreen(ModalScreen[None]):
    """The whole event behind one log line."""

    BINDINGS = [Binding("escape,enter,q", "app.pop_screen", "Close", id="event.close")]

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="event-detail") as box:
            box.border_title = f"Event #{self.event.seq}: {marker(self.event)}"
            box.border_subtitle = "esc closes"
            yield Static(JSON(json.dumps(self.event.to_dict())))


class DashboardScreen(ConsoleScreen):
    TITLE = "Dashboard"
    BINDINGS = [
        Binding("h", "toggle('http')", "HTTP on/off", id="dashboard.toggle_http",
                tooltip="Start the HTTP listener, or stop it if it runs (asks first)"),
        Binding("t", "toggle('tls')", "TLS on/off", id="dashboard.toggle_tls",
                tooltip="Start the TLS listener, or stop it if it runs (asks first)"),
        Binding("s", "start_all", "Start both", id="dashboard.start_all",
                tooltip="Start both listeners"),
        Binding("x", "stop_all", "Stop both", id="dashboard.stop_all",
                tooltip="Stop both listeners, asking first (requests in flight finish)"),
        Binding("slash", "filter", "Filter", id="dashboard.filter",
                tooltip="Filter the log by path, address, lock serial or status"),
        Binding("escape", "back", "Clear filter", show=False, id="dashboard.back",
                tooltip="Clear the filter and follow the newest line"),
    ]

    def compose_body(self) -> ComposeResult:
        notices = self.app.host.notices
        yield Static("\n".join(f"NOTICE: {n}" for n in notices), id="notices", markup=False,
                     classes="" if notices else "hidden")
        table = DataTable(id="listeners", cursor_type="none", show_cursor=False)
        table.can_focus = False
        yield table
        yield Static("", id="listener-errors", markup=False, classes="hidden")
        yield Input(placeholder="filter: path, address, lock serial or status (enter keeps it, "
                    "esc clears)", id="log-filter", classes="hidden")
        log = LockLog(max_lines=self.app.host.settings.log_ring_size, id="lock-log")
        log.border_title = "Lock log"
        yield log
        yield LogState(id="log-state")

    def on_mount(self) -> None:
        self.query_one("#log-filter").border_title = "Filter: path, address, lock serial or status"
        table = self.query_one("#listeners", DataTable)
        for key, label in LISTENER_COLUMNS:
            table.add_column(label, key=key)
        self._cells: dict[str, dict[str, str]] = {}
        self._errors = ""
        self.refresh_listeners()
        self.refresh_status()
        self.query_one(LockLog).focus()
        self._update_log_state()

    # --- host changes (from the app's drain timer) ----------------------------------------

    def host_changed(self, change) -> None:
        super().host_changed(change)
        self.query_one(LockLog).add_events(change.events)
        if change.listeners_changed:
            self.refresh_listeners()

    def refresh_listeners(self) -> None:
        """Update the listener rows in place; only cells whose text changed are touched.
        Under the table, each failed listener's whole error, with its fix, wrapped to fit."""
        statuses = self.app.host.status()
        wanted = {name: listener_cells(s) for name, s in statuses.items()}
        sync_rows(self.query_one("#listeners", DataTable), wanted, self._cells)
        errors = "\n".join(f"{LABELS.get(s.name, s.name)} FAILED: {s.last_error}"
                           for s in statuses.values() if s.state == FAILED and s.last_error)
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

    @on(Input.Changed, "#log-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.query_one(LockLog).set_filter(event.value)

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
            state = f"PAUSED - {log.pending:,} new lines waiting (End or f to follow)"
        shown = f"{len(log.shown):,} lines" if not log.filter_text else \
            f"filter '{log.filter_text}': {len(log.shown):,} of {log.total:,} lines"
        dropped = self.app.inbox.subscription.dropped
        missed = f" | {dropped:,} events missed while the console was busy" if dropped else ""
        self.query_one(LogState).text = f"{state} | {shown} | enter: whole event{missed}"
