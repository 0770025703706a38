"""The certificates screen: every set with its verdict, the selected set's validation report,
and activation, rollback, renewal and import."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import DataTable, Static, Tree
from textual.worker import get_current_worker

from server.certcheck.report import Report
from server.certimport import import_set
from server.certstore import CertSet
from server.errors import EngageError
from server.fleet import Preflight, preflight
from server.migration import service
from server.migration.state import FINISH

from ..set_rows import SetRow, report_for, report_text, row_cells, scan_rows
from ..widgets.meter import meters
from ..widgets.migration import MigrationPane
from ..widgets.status_bar import active_errors
from ..widgets.tables import cursor_key, sync_rows
from .base import ConsoleScreen
from .certificates_migration import MigrationActions
from .confirm import ConfirmScreen
from .import_form import ImportRequest, ImportScreen
from .switch import switch_body, switch_warning

SET_COLUMNS = (("name", "Set"), ("active", "Active"), ("verdict", "Verdict"),
               ("chain", "Chain bytes"), ("key", "Largest key"), ("expiry", "Expires in"))
def chain_tree(tree: Tree, report: Report | None) -> None:
    """The chain, anchor at the root, each certificate with subject, issuer and size. Labels
    are ``Text``: a subject is shown as written, never read as markup."""
    tree.clear()
    tree.root.expand()
    if report is None or not report.chain:
        tree.root.set_label(Text("Chain: no certificate details"))
        return
    tree.root.set_label(Text(f"Chain: {len(report.chain)} certificates, "
                             f"{report.chain_bytes:,} of {report.chain_limit:,} bytes"))
    node = tree.root
    for info in reversed(report.chain):
        node = node.add(Text(f"{info.role} (depth {info.depth}): {info.subject}"), expand=True)
        node.add_leaf(Text(f"issuer: {info.issuer}"))
        node.add_leaf(Text(f"{info.bytes:,} bytes, {info.key}, expires {info.not_after}"))


class CertificatesScreen(MigrationActions, ConsoleScreen):
    TITLE = "Certificates"
    BINDINGS = [
        Binding("a", "activate", "Activate", id="certs.activate",
                tooltip="Serve the selected set (asks first)"),
        Binding("A", "activate(True)", "Force activate", show=False, id="certs.force_activate",
                tooltip="Activate the selected set even though it has errors (asks first)"),
        Binding("r", "rollback", "Roll back", id="certs.rollback",
                tooltip="Activate the set that was active before (asks first)"),
        Binding("n", "renew", "Renew", id="certs.renew",
                tooltip="Issue a new server certificate for the selected set, as a new set"),
        Binding("i", "import_set", "Import", id="certs.import",
                tooltip="Import a set from certificate and key files"),
        Binding("m", "migrate", "Migrate", show=False, id="certs.migrate",
                tooltip="Start a migration to the selected set (another anchor; asks first)"),
        Binding("f", "finish_migration", "Finish migration", show=False, id="certs.finish",
                tooltip="Make the migration's new set the only one (asks, with the preflight)"),
        Binding("x", "abort_migration", "Abort migration", show=False, id="certs.abort",
                tooltip="Back to the old anchor alone (asks, naming who fetched the new one)"),
        Binding("y", "copy_hash", "Copy hash", id="certs.copy_hash",
                tooltip="Copy the selected set's hash to the clipboard (works over SSH)"),
        Binding("escape", "app.switch_mode('dashboard')", "Back", id="certs.back", show=False,
                tooltip="Back to the dashboard"),
    ]

    def compose_body(self) -> ComposeResult:
        # The report below the list, at full width: subjects, issuers and findings are long.
        with Vertical():
            yield MigrationPane(id="migration")
            table = DataTable(id="sets", cursor_type="row", zebra_stripes=True)
            table.border_title = "Certificate sets"
            yield table
            with VerticalScroll(id="report") as report:
                report.border_title = "Validation report"
                yield Static("", id="meters")
                yield Static("Select a set.", id="report-text")
                yield Tree(Text("Chain"), id="chain")

    def on_mount(self) -> None:
        table = self.query_one("#sets", DataTable)
        for key, label in SET_COLUMNS:
            table.add_column(label, key=key)
        self.rows: dict[str, SetRow] = {}
        self._cells: dict[str, dict[str, str]] = {}
        self._store_stamp = self._store_stamp_now()
        self._select: str | None = None  # a new set the cursor goes to once it is listed
        self.refresh_status()
        self.set_interval(1.0, self._watch_store)
        self.rescan()
        table.focus()

    def on_screen_resume(self) -> None:
        self._watch_store()

    # --- the list ----------------------------------------------------------------------------

    def _watch_store(self) -> None:
        """Rescan when a set folder appears, goes or changes (no restart needed)."""
        stamp = self._store_stamp_now()
        if stamp != self._store_stamp:
            self._store_stamp = stamp
            self.rescan()

    def _store_stamp_now(self) -> tuple:
        root = self.app.host.store.root
        try:
            entries = sorted((p.name, p.stat().st_mtime_ns) for p in root.iterdir())
        except OSError:
            entries = []
        return tuple(entries)

    def host_changed(self, change) -> None:
        super().host_changed(change)
        if change.active_changed:
            self.rescan()

    def clock_tick(self) -> None:
        """Days to expiry (and verdicts that depend on them) follow the clock."""
        super().clock_tick()
        self.rescan()

    @work(thread=True, exclusive=True, group="scan", exit_on_error=False, name="set scan")
    def rescan(self) -> None:
        rows = scan_rows(self.app.host, self.app.now())
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show_rows, rows)

    def select_new(self, name: str) -> None:
        """Put the cursor on set ``name`` (just made) once a listing shows it."""
        self._select = name
        self.rescan()

    def _show_rows(self, rows: list[SetRow]) -> None:
        table = self.query_one("#sets", DataTable)
        active = self.app.host.certificates.current()
        active_name = active.name if active else None
        first = not self._cells
        before = self.rows.get(self.selected_name() or "")
        self.rows = {row.name: row for row in rows}
        flawed = bool(active_errors(self.app.host))
        sync_rows(table, {row.name: row_cells(row, active_name, flawed) for row in rows},
                  self._cells)
        if self._select in self.rows:
            select, self._select = self._select, None
        else:
            select = active_name if first else None
        if select in self.rows:
            table.move_cursor(row=table.get_row_index(select))
        after = self.rows.get(self.selected_name() or "")
        if before is None or after is None or (before.report, before.error) != (after.report,
                                                                                after.error):
            self._load_selected()  # the report pane stays as it is (tree, scroll) otherwise

    def selected_name(self) -> str | None:
        return cursor_key(self.query_one("#sets", DataTable))

    # --- the report --------------------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#sets")
    def _highlighted(self) -> None:
        self._load_selected()

    def _load_selected(self) -> None:
        name = self.selected_name()
        if name is not None:
            self.load_report(name)

    @work(thread=True, exclusive=True, group="report", exit_on_error=False, name="report")
    def load_report(self, name: str) -> None:
        """Validate the set under the cursor; a newer cursor position wins."""
        row = self.rows.get(name)
        if row is not None and row.cert_set is not None:
            row = SetRow(name, row.cert_set, report_for(self.app.host, row.cert_set,
                                                        self.app.now()))
        if not get_current_worker().is_cancelled and row is not None:
            self.app.call_from_thread(self._show_report, row)

    def _show_report(self, row: SetRow) -> None:
        if row.name != self.selected_name():
            return
        self.rows[row.name] = row
        self.query_one("#meters", Static).update(meters(row.report))
        self.query_one("#report-text", Static).update(report_text(row))
        chain_tree(self.query_one("#chain", Tree), row.report)

    # --- actions -----------------------------------------------------------------------------

    def _selected_row(self) -> SetRow | None:
        name = self.selected_name()
        if name is None:
            self.app.notify("No certificate set is selected.", severity="warning")
            return None
        return self.rows.get(name)

    def action_copy_hash(self) -> None:
        row = self._selected_row()
        if row is None or row.report is None or not row.report.hash:
            if row is not None:
                self.app.notify("This set has no hash: it cannot be read.", severity="warning")
            return
        self.app.copy_to_clipboard(row.report.hash)
        self.app.notify(f"Copied the hash of {row.name}: {row.report.hash}")

    def action_activate(self, force: bool = False) -> None:
        row = self._selected_row()
        if row is None:
            return
        if row.report is None:
            self.app.notify(f"Set {row.name} cannot be activated: {row.error}", severity="error")
            return
        if row.report.errors and not force:
            reasons = "; ".join(f"{f.id}: {f.message}" for f in row.report.errors)
            self.app.notify(f"Set {row.name} has errors and cannot be activated: {reasons}. "
                            "Fix them, or force it with A.", severity="error", timeout=20)
            return
        self._confirm_switch(row, "activate")

    def action_rollback(self) -> None:
        self.find_rollback()

    @work(thread=True, exclusive=True, group="rollback", exit_on_error=False, name="rollback")
    def find_rollback(self) -> None:
        """Read the activation history off the UI thread; one that cannot be read is a
        notification, not a crash."""
        try:
            target = self.app.host.store.rollback_target()
        except (OSError, ValueError) as exc:
            self.app.notify(f"Cannot roll back: the activation history cannot be read: {exc}",
                            severity="error", timeout=15)
            return
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._confirm_rollback, target)

    def _confirm_rollback(self, target: str | None) -> None:
        active = self.app.host.certificates.current()
        if target is None or (active is not None and target == active.name):
            self.app.notify("Nothing to roll back to: no earlier activation in the history"
                            + (f" other than {target}, which is active" if target else "") + ".",
                            severity="warning")
            return
        row = self.rows.get(target)
        if row is None or row.report is None:
            self.app.notify(f"Cannot roll back to {target}: the set is missing or unreadable.",
                            severity="error")
            return
        self._confirm_switch(row, "rollback")

    def _confirm_switch(self, row: SetRow, action: str) -> None:
        self.ask_switch(row, action)

    @work(thread=True, exclusive=True, group="ask", exit_on_error=False, name="fleet preflight")
    def ask_switch(self, row: SetRow, action: str) -> None:
        """The fleet preflight reads every record from disk: off the UI thread."""
        active = self.app.host.certificates.current()
        fleet = preflight(self.app.host.devices, row.cert_set, active.cert_set if active else None)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._ask_switch, row, action, active, fleet)

    def _ask_switch(self, row: SetRow, action: str, active, fleet: Preflight) -> None:
        """Ask, showing what changes and whom it cuts off; a set with errors, or one whose new
        anchor known locks do not hold, is served only once its name is typed (deliberately
        harder than ``y``; the focus starts on Cancel)."""
        verb = {"rollback": "Roll back to", FINISH: "Finish the migration to"}.get(action,
                                                                                 "Activate")
        force = bool(row.report.errors)
        title = f"{verb} certificate set" + (" WITH ERRORS" if force else "")
        if fleet.blocking:
            title += f", CUTTING OFF {len(fleet.cut_off)} LOCKS"
        screen = ConfirmScreen(title, switch_body(verb, row.cert_set, row.report, active, fleet),
                               confirm=verb.split()[0],
                               warning=switch_warning(row.cert_set, row.report, active, fleet),
                               typed=row.name if force or fleet.blocking else "")
        self.app.push_screen(screen, lambda yes: yes and self.switch_set(row.name, action, force))

    @work(thread=True, group="activate", exit_on_error=False, name="activation")
    def switch_set(self, name: str, action: str, force: bool) -> None:
        certificates = self.app.host.certificates
        try:
            if action == "rollback":
                active = certificates.rollback(force=force, by="console")
            elif action == FINISH:
                active = service.finish(certificates, force=force, by="console")
            else:
                active = certificates.activate(name, force=force, by="console")
        except EngageError as exc:
            self.app.notify(f"Not activated: {exc}", severity="error", timeout=15)
            return
        self.app.notify(f"Active set is now {active.name}; locks receive hash {active.hash}")

    def action_renew(self) -> None:
        row = self._selected_row()
        if row is not None:
            self.renew(row.name)

    @work(thread=True, group="renew", exit_on_error=False, name="renewal")
    def renew(self, name: str) -> None:
        def renewed():
            from server.pki import renew_set

            host = self.app.host
            return renew_set(host.store, host.settings.path("ca_dir"), name)

        self._new_set(renewed, "Not renewed", f"Renewed {name} as new set {{}}: press a to "
                      "activate it.")

    def action_import_set(self) -> None:
        store = self.app.host.store

        def imported(request: ImportRequest) -> CertSet:
            return import_set(store, request.name, request.paths,
                              passphrase=request.passphrase or None)

        self.app.push_screen(ImportScreen(imported, lambda name: store.set_path(name).exists()),
                             self._imported)

    def _imported(self, new: CertSet | None) -> None:
        if new is not None:
            self.app.notify(f"Imported set {new.name}: check its report, then press a to "
                            "activate it.")
            self.select_new(new.name)

    def _new_set(self, make, failed: str, done: str) -> None:
        """Run ``make`` (in a worker thread); its outcome is a notification, never a crash."""
        try:
            new = make()
        except ImportError:
            self.app.notify(f"{failed}: this version cannot do that yet.", severity="error")
            return
        except EngageError as exc:
            self.app.notify(f"{failed}: {exc}", severity="error", timeout=15)
            return
        self.app.notify(done.format(new.name))
        self.app.call_from_thread(self.select_new, new.name)
