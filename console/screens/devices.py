"""The devices screen: the fleet. A summary line of the locks per health state, one row per
lock (state, serial, name, model, last seen, next call-in, anchor trust, TLS failures, listing
state), live, filtered with ``/`` and sorted by any column; the selected record in a
structured view or as raw JSON (``j``), with its latest audits and alerts."""

from __future__ import annotations

from rich.console import RenderableType
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Input, Static
from textual.worker import get_current_worker

from server.errors import EngageError

from .. import fleet_rows
from ..fleet_rows import COLUMNS, FilterError, Lock
from ..record_view import record_view, shown_path
from ..widgets.tables import cursor_key, sync_rows
from .base import ConsoleScreen

MAX_ROWS = 1000
FIRST_ROWS = 100  # drawn first when the screen opens (a screenful and more); the rest just after
RELATIVE_TIMES_SECONDS = 5.0  # "last seen 12s ago" is redrawn this often without a call-in
FOLDER_POLL_SECONDS = 1.0     # records another process added or replaced show within ~2 s
SORTABLE = [key for key, _ in COLUMNS]


class DevicesScreen(ConsoleScreen):
    TITLE = "Devices"
    BINDINGS = [
        Binding("slash", "filter", "Filter", id="devices.filter",
                tooltip=f"Filter the locks: {fleet_rows.SYNTAX}"),
        Binding("s", "sort", "Sort", id="devices.sort",
                tooltip="Sort by the next column (or click a column's header)"),
        Binding("S", "reverse", "Reverse", id="devices.reverse", tooltip="Reverse the sort"),
        Binding("j", "raw", "JSON", id="devices.raw",
                tooltip="The record as raw JSON, or back to the structured view"),
        Binding("r,ctrl+r", "refresh", "Refresh", id="devices.refresh", show=False,
                tooltip="Re-read Engage_Data/ now (records edited in place by hand)"),
        Binding("escape", "back", "Back", id="devices.back",
                tooltip="Clear the filter, or go back to the dashboard"),
    ]

    def compose_body(self) -> ComposeResult:
        yield Input(placeholder=f"filter: {fleet_rows.SYNTAX}", id="device-filter",
                    classes="hidden")
        yield Static("Reading the device records…", id="fleet-summary")  # until the first draw
        with Horizontal():
            table = DataTable(id="devices", cursor_type="row", zebra_stripes=True)
            table.border_title = "Locks"
            yield table
            with VerticalScroll(id="record") as record:
                record.border_title = "Record"
                yield Static("Select a lock.", id="record-text")

    def on_mount(self) -> None:
        table = self.query_one("#devices", DataTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        self.model = self.app.fleet
        self._drawn = False
        self._filter = ("", fleet_rows.parse_filter(""))  # the words, and the test they make
        self.sort_column, self.sort_reverse = "serial", False
        self.raw_json = False
        self._cells: dict[str, dict] = {}
        self._cell_cache: dict[str, tuple[Lock, dict]] = {}  # serial -> (lock, its cells)
        self._shown_serial: str | None = None
        self._changed: set[str] = set()  # locks that called in since the list was last shown
        self.refresh_status()
        self.reload()
        self.set_interval(RELATIVE_TIMES_SECONDS, lambda: self.reload(redraw=True))
        # The index re-reads the folder when another process changed it (devices import, a
        # file copied in): asking for the list is how that is noticed.
        self.set_interval(FOLDER_POLL_SECONDS, self.reload)
        table.focus()

    @property
    def filter_text(self) -> str:
        return self._filter[0]

    @property
    def locks(self) -> dict[str, Lock]:
        """Every lock in words, by serial."""
        return self.model.locks

    def host_changed(self, change) -> None:
        super().host_changed(change)
        if change.serials or change.active_changed:
            self._changed |= change.serials
            self.reload()

    def active_anchor(self) -> str | None:
        active = self.app.host.certificates.current()
        return active.cert_set.anchor_sha256 if active else None

    # --- the list ----------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="devices", exit_on_error=False, name="device list")
    def reload(self, redraw: bool = False) -> None:
        """Bring the fleet model up to date with the listing and the view chosen, and draw
        what changed. Drawn from under the model's lock, so that draws come in order; the
        screen's own thread never takes that lock."""
        model = self.model
        with model.lock:
            now = self.app.now()
            changed = model.follow(self.app.host.devices, now, self.active_anchor())
            new_view = model.set_view(self.sort_column, self.sort_reverse, *self._filter)
            if not (changed or new_view or redraw or self._changed) and self._drawn:
                return  # the poll found nothing new
            locks, matching = model.shown(MAX_ROWS if self._drawn else FIRST_ROWS)
            wanted = self._cells_of(locks, now, redraw)
            self.app.call_from_thread(self._draw, wanted, matching, model.counts(), changed)

    def _cells_of(self, locks: list[Lock], now, redraw: bool) -> dict[str, dict]:
        """Each row's cells, worked out again for a lock that changed or, at a ``redraw`` (the
        relative times), for all; else the ones drawn before."""
        cache, wanted = self._cell_cache, {}
        for lock in locks:
            serial = lock.summary.serial
            known = cache.get(serial)
            if redraw or known is None or known[0] is not lock:
                known = cache[serial] = (lock, fleet_rows.cells(lock, now))
            wanted[serial] = known[1]
        for serial in [serial for serial in cache if serial not in wanted]:
            del cache[serial]
        return wanted

    def action_refresh(self) -> None:
        self.app.host.devices.resync()
        self._changed.add(self.selected_serial() or "")  # the record pane is read again too
        self.reload()

    def _draw(self, wanted: dict[str, dict], matching: int, counts: dict[str, int],
              changed: set[str]) -> None:
        """The summary line, and the rows updated in place by serial in one batch; only
        changed cells are touched. At most MAX_ROWS rows are drawn (a table of 10,000 takes
        seconds to build): the filter finds the rest."""
        table = self.query_one("#devices", DataTable)
        self.query_one("#fleet-summary", Static).update(fleet_rows.summary_text(counts))
        with self.app.batch_update():
            sync_rows(table, wanted, self._cells, key_column="serial", narrow=False)
        shown = f"{len(wanted):,} of {matching:,}" if matching > MAX_ROWS else f"{matching:,}"
        label = f"Locks: {shown}" + (f" matching '{self.filter_text}'" if self.filter_text else "")
        order = dict(COLUMNS)[self.sort_column] + (" ↓" if self.sort_reverse else " ↑")
        table.border_title = label + (" (/ to filter)" if matching > MAX_ROWS else "")
        table.border_subtitle = f"sorted by {order} · s S sort · ← → scroll"
        if not self._drawn:
            self._drawn = True
            self.call_after_refresh(self.reload, redraw=True)  # once painted: the rest
        changed, self._changed = changed | self._changed, set()
        selected = self.selected_serial()
        if selected is not None and (selected in changed or selected != self._shown_serial):
            self.load_record(selected)

    def selected_serial(self) -> str | None:
        return cursor_key(self.query_one("#devices", DataTable))

    # --- sort ------------------------------------------------------------------------------

    def action_sort(self) -> None:
        self.sort_column = SORTABLE[(SORTABLE.index(self.sort_column) + 1) % len(SORTABLE)]
        self.reload()

    def action_reverse(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self.reload()

    @on(DataTable.HeaderSelected, "#devices")
    def _header_selected(self, event: DataTable.HeaderSelected) -> None:
        """A click on a header sorts by it; on the sorted column's header, reverses."""
        column = event.column_key.value
        if column == self.sort_column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = column, False
        self.reload()

    # --- filter ----------------------------------------------------------------------------

    def action_filter(self) -> None:
        box = self.query_one("#device-filter", Input)
        box.remove_class("hidden")
        box.focus()

    def action_back(self) -> None:
        box = self.query_one("#device-filter", Input)
        if box.has_class("hidden") and not self.filter_text:
            self.app.switch_mode("dashboard")
            return
        box.value = ""
        box.add_class("hidden")
        self._set_filter("")
        self.query_one("#devices", DataTable).focus()

    def _set_filter(self, text: str) -> None:
        """Filter by ``text``; a word it cannot read is said in the box's title, and the list
        stays as it was."""
        box = self.query_one("#device-filter", Input)
        try:
            passes = fleet_rows.parse_filter(text)
        except FilterError as exc:
            box.border_title = str(exc)
            return
        box.border_title = None
        self._filter = (text, passes)
        self.reload()

    @on(Input.Changed, "#device-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self._set_filter(event.value.strip())

    @on(Input.Submitted, "#device-filter")
    def _filter_submitted(self) -> None:
        self.query_one("#devices", DataTable).focus()

    # --- the record --------------------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#devices")
    def _highlighted(self) -> None:
        serial = self.selected_serial()
        if serial is not None and serial != self._shown_serial:
            self.load_record(serial)

    def action_raw(self) -> None:
        self.raw_json = not self.raw_json
        serial = self.selected_serial()
        if serial is not None:
            self.load_record(serial)

    @work(thread=True, exclusive=True, group="record", exit_on_error=False, name="device record")
    def load_record(self, serial: str) -> None:
        devices = self.app.host.devices
        try:
            record = devices.record(serial)
            error = ""
        except EngageError as exc:
            record, error = None, str(exc)
        audits = devices.recent_audits(serial, 10)
        alerts = devices.recent_alerts(serial, 10)
        view = record_view(self.locks.get(serial), serial, record, error,
                           shown_path(devices.path(serial)), audits, alerts, self.app.now(),
                           self.raw_json)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show_record, serial, view)

    def _show_record(self, serial: str, view: RenderableType) -> None:
        if serial != self.selected_serial():
            return
        self.query_one("#record-text", Static).update(view)
        pane = self.query_one("#record")
        pane.border_title = f"Record {serial}" + (" JSON" if self.raw_json else "")
        pane.border_subtitle = "j structured" if self.raw_json else "j raw JSON"
        self._shown_serial = serial
