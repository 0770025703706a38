"""The devices screen: the records in ``Engage_Data/``, live, with the selected record as
highlighted JSON and its latest audits and alerts."""

from __future__ import annotations

import json

from pathlib import Path

from rich.console import Group, RenderableType
from rich.highlighter import JSONHighlighter
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Input, Static
from textual.worker import get_current_worker

from server.devices.index import DeviceSummary
from server.errors import EngageError

from ..format import relative
from ..widgets.tables import cursor_key, sync_rows
from .base import ConsoleScreen

MAX_ROWS = 1000
LIST_ITEMS_SHOWN = 5          # a long list in a record (3,000 users) shows its first items...
RECORD_CHARS_SHOWN = 20_000   # ...and the record view stops here: the file holds the rest
RELATIVE_TIMES_SECONDS = 5.0  # "last seen 12s ago" is redrawn this often without a call-in
FOLDER_POLL_SECONDS = 1.0     # records another process added or replaced show within ~2 s
DEVICE_COLUMNS = (("serial", "Serial"), ("state", "State"), ("model", "Model"),
                  ("last_seen", "Seen"), ("address", "Address"), ("firmware", "Firmware"),
                  ("battery", "Battery"), ("audits", "Audits"))


def device_cells(device: DeviceSummary, now) -> dict[str, str]:
    return {
        "serial": device.serial, "state": "CORRUPT" if device.corrupt else "ok",
        "model": device.model or "-", "last_seen": relative(device.last_seen, now),
        "address": device.address or "-", "firmware": device.firmware or "-",
        "battery": device.battery or "-", "audits": f"{device.audit_count:,}",
    }


def device_matches(device: DeviceSummary, term: str) -> bool:
    term = term.lower()
    return any(term in value.lower() for value in (
        device.serial, device.model, device.name, device.address, device.firmware))


def entries_text(title: str, entries: list[dict]) -> Text:
    text = Text(f"\n{title} ({len(entries)} latest)\n", style="bold")
    for entry in entries:
        text.append(json.dumps(entry, separators=(", ", ": ")) + "\n")
    if not entries:
        text.append("none\n", style="dim")
    return text


def summarised(value, shortened: list[int]):
    """``value`` with each list longer than LIST_ITEMS_SHOWN cut to its first items and a line
    saying how many more there are; the length of each list cut is added to ``shortened``."""
    if isinstance(value, dict):
        return {key: summarised(item, shortened) for key, item in value.items()}
    if isinstance(value, list):
        shown = [summarised(item, shortened) for item in value[:LIST_ITEMS_SHOWN]]
        if len(value) > LIST_ITEMS_SHOWN:
            shortened.append(len(value))
            shown.append(f"... {len(value) - LIST_ITEMS_SHOWN:,} more of {len(value):,}")
        return shown
    return value


def record_parts(record: dict, where: str) -> list[Text]:
    """The record as highlighted JSON, bounded, with notes (wrapped, so a narrow pane shows
    them whole) on what was left out and where it is: a record of thousands of users would
    freeze the screen (highlighting and layout of megabytes) and tell the operator no more."""
    shortened: list[int] = []
    shown = json.dumps(summarised(record, shortened), indent=2, default=str, ensure_ascii=False)
    parts = []
    if shortened:
        parts.append(Text(f"Shortened: {len(shortened):,} long list(s) show their first "
                          f"{LIST_ITEMS_SHOWN} items. The whole record: {where}", style="bold"))
    rest = 0
    if len(shown) > RECORD_CHARS_SHOWN:
        cut = shown.rfind("\n", 0, RECORD_CHARS_SHOWN)
        cut = cut if cut > 0 else RECORD_CHARS_SHOWN
        shown, rest = shown[:cut], len(shown[cut:].encode())
    text = JSONHighlighter()(shown)
    text.no_wrap, text.overflow = True, None
    parts.append(text)
    if rest:
        parts.append(Text(f"truncated: {rest:,} more bytes - see {where}", style="bold"))
    return parts


def shown_path(path: Path) -> str:
    """A record's file as the operator would type it: relative to here when it is below."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (OSError, ValueError):
        return str(path)


def record_view(serial: str, summary: DeviceSummary | None, record: dict | None, error: str,
                where: str, audits: list[dict], alerts: list[dict]) -> RenderableType:
    """Everything the record pane shows for one lock (built off the UI thread)."""
    if record is None:
        state = "CORRUPT record" if summary is not None and summary.corrupt else "No record"
        detail = summary.error if summary is not None and summary.error else error
        parts = [Text(f"{state} for lock {serial}: {detail}\n"
                      "The file is left untouched; fix or remove it by hand.", style="bold red")]
    else:
        parts = record_parts(record, where)
    return Group(*parts, entries_text("Audits", audits), entries_text("Alerts", alerts))


class DevicesScreen(ConsoleScreen):
    TITLE = "Devices"
    BINDINGS = [
        Binding("slash", "filter", "Filter", id="devices.filter",
                tooltip="Filter locks by serial, model, name, address or firmware"),
        Binding("r,ctrl+r", "refresh", "Refresh", id="devices.refresh",
                tooltip="Re-read Engage_Data/ now (records edited in place by hand)"),
        Binding("escape", "back", "Back", id="devices.back",
                tooltip="Clear the filter, or go back to the dashboard"),
    ]

    def compose_body(self) -> ComposeResult:
        yield Input(placeholder="filter: serial, model, name, address or firmware",
                    id="device-filter", classes="hidden")
        with Horizontal():
            table = DataTable(id="devices", cursor_type="row", zebra_stripes=True)
            table.border_title = "Locks"
            yield table
            with VerticalScroll(id="record") as record:
                record.border_title = "Record"
                yield Static("Select a lock.", id="record-text")

    def on_mount(self) -> None:
        table = self.query_one("#devices", DataTable)
        for key, label in DEVICE_COLUMNS:
            table.add_column(label, key=key)
        self.devices: dict[str, DeviceSummary] = {}
        self._listed = False
        self.filter_text = ""
        self._cells: dict[str, dict[str, str]] = {}
        self._shown_serial: str | None = None
        self._changed: set[str] = set()  # locks that called in since the list was last shown
        self.refresh_status()
        self.reload()
        self.set_interval(RELATIVE_TIMES_SECONDS, self._sync_rows)
        # The index re-reads the folder when another process changed it (devices import, a
        # file copied in): asking for the list is how that is noticed.
        self.set_interval(FOLDER_POLL_SECONDS, self.reload)
        table.focus()

    def host_changed(self, change) -> None:
        super().host_changed(change)
        if change.serials:
            self._changed |= change.serials
            self.reload()

    # --- the list ----------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="devices", exit_on_error=False, name="device list")
    def reload(self) -> None:
        summaries = self.app.host.devices.summaries()
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show_devices, summaries)

    def action_refresh(self) -> None:
        self.app.host.devices.resync()
        self._changed.add(self.selected_serial() or "")  # the record pane is read again too
        self.reload()

    def _show_devices(self, summaries: list[DeviceSummary]) -> None:
        devices = {d.serial: d for d in summaries}
        if self._listed and devices == self.devices and not self._changed:
            return  # the poll found nothing new
        changed = self._changed | {serial for serial, d in devices.items()
                                   if self.devices.get(serial) != d}
        self.devices, self._changed, self._listed = devices, set(), True
        self._sync_rows()
        selected = self.selected_serial()
        if selected is not None and (selected in changed or selected != self._shown_serial):
            self.load_record(selected)

    def _sync_rows(self) -> None:
        """Rows updated in place by serial; only changed cells are touched. At most MAX_ROWS
        rows are drawn (a table of 10,000 takes seconds to build): the filter finds the rest."""
        table = self.query_one("#devices", DataTable)
        now = self.app.now()
        matching = [d for _, d in sorted(self.devices.items())
                    if not self.filter_text or device_matches(d, self.filter_text)]
        wanted = {d.serial: device_cells(d, now) for d in matching[:MAX_ROWS]}
        sync_rows(table, wanted, self._cells)
        shown = f"{len(wanted):,} of {len(matching):,}" if len(matching) > MAX_ROWS \
            else f"{len(matching):,}"
        label = f"Locks: {shown}" + (f" matching '{self.filter_text}'" if self.filter_text else "")
        table.border_title = label + (" (/ to filter)" if len(matching) > MAX_ROWS else "")

    def selected_serial(self) -> str | None:
        return cursor_key(self.query_one("#devices", DataTable))

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
        self.filter_text = ""
        self._sync_rows()
        self.query_one("#devices", DataTable).focus()

    @on(Input.Changed, "#device-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self._sync_rows()

    @on(Input.Submitted, "#device-filter")
    def _filter_submitted(self) -> None:
        self.query_one("#devices", DataTable).focus()

    # --- the record --------------------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#devices")
    def _highlighted(self) -> None:
        self._load_selected()

    def _load_selected(self) -> None:
        serial = self.selected_serial()
        if serial is not None:
            self.load_record(serial)

    @work(thread=True, exclusive=True, group="record", exit_on_error=False, name="device record")
    def load_record(self, serial: str) -> None:
        devices = self.app.host.devices
        summary = self.devices.get(serial)
        try:
            record = devices.record(serial)
            error = ""
        except EngageError as exc:
            record, error = None, str(exc)
        audits = devices.recent_audits(serial, 10)
        alerts = devices.recent_alerts(serial, 10)
        view = record_view(serial, summary, record, error, shown_path(devices.path(serial)),
                           audits, alerts)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show_record, serial, view)

    def _show_record(self, serial: str, view: RenderableType) -> None:
        if serial != self.selected_serial():
            return
        self.query_one("#record-text", Static).update(view)
        self.query_one("#record").border_title = f"Record {serial}"
        self._shown_serial = serial
