"""The certificates screen's migration keys (issue 16): ``m`` starts one to the selected set
(asking first with what ``certs migrate NEW`` reports), ``f`` finishes it through the
activation's confirmation and fleet preflight, ``x`` aborts it naming the locks that fetched
the new anchor. The same ``server.migration.service`` calls as the command line."""

from __future__ import annotations

from textual import work

from server.certstore import CertSet
from server.errors import EngageError
from server.migration import service
from server.migration.progress import progress
from server.migration.state import FINISH, MigrationState, now_iso

from ..widgets.migration import MigrationPane, read_progress
from .confirm import ConfirmScreen


class MigrationActions:
    """Mixed into CertificatesScreen (``rows``, ``_selected_row``, ``_confirm_switch``)."""

    def action_migrate(self) -> None:
        row = self._selected_row()
        active = self.app.host.certificates.current()
        if row is not None and row.cert_set is not None and active is not None:
            self.ask_migration(row.cert_set, active.cert_set)

    @work(thread=True, exclusive=True, group="ask", exit_on_error=False, name="migration ask")
    def ask_migration(self, new: CertSet, old: CertSet) -> None:
        """What ``certs migrate NEW`` reports, as it would stand at the start."""
        state = MigrationState(old.name, old.anchor_sha256, new.name, new.anchor_sha256,
                               now_iso(), "console")
        body = (progress(self.app.host.devices, self.app.host.store.root, state).text()
                + f"\n\n/current will deliver the anchor of {new.name} at once; each lock gets "
                "the chain of the anchor it holds, so none is cut off. When the locks have "
                "moved: f finishes (or x aborts).")
        screen = ConfirmScreen(f"Migrate to {new.name}", body, confirm="Migrate")
        self.app.call_from_thread(self.app.push_screen, screen,
                                  lambda yes: yes and self.start_migration(new.name))

    @work(thread=True, group="migrate", exit_on_error=False, name="migration start")
    def start_migration(self, name: str) -> None:
        try:
            state = service.start(self.app.host.certificates, name, by="console")
        except EngageError as exc:
            self.app.notify(f"Migration not started: {exc}", severity="error", timeout=15)
            return
        self.app.notify(f"Migration to {state.to_set} started: /current delivers its anchor.")
        self.app.call_from_thread(self.query_one(MigrationPane).sample)

    def action_finish_migration(self) -> None:
        report = self.query_one(MigrationPane).report
        row = self.rows.get(report.state.to_set) if report else None
        if row is None or row.report is None:
            self.app.notify("No migration is under way to finish (or its set cannot be read).",
                            severity="warning")
            return
        self._confirm_switch(row, FINISH)

    def action_abort_migration(self) -> None:
        self.ask_abort()

    @work(thread=True, exclusive=True, group="ask", exit_on_error=False, name="abort ask")
    def ask_abort(self) -> None:
        report = read_progress(self.app.host)
        if report is None or isinstance(report, str):
            self.app.notify(report or "No migration is under way to abort.", severity="warning")
            return
        fetched = report.fetched_new
        body = (f"Back to the anchor of {report.state.from_set} alone: /current and TLS stop "
                f"offering {report.state.to_set}.\n\n{len(fetched)} locks fetched the new "
                "anchor meanwhile and will need the old one again (re-commission each from the "
                "ENGAGE app)" + (":\n" + "\n".join(f"  {s}" for s in fetched) if fetched else "."))
        screen = ConfirmScreen(f"Abort the migration to {report.state.to_set}", body,
                               confirm="Abort", warning=f"{len(fetched)} locks need the old "
                               "anchor again" if fetched else "")
        self.app.call_from_thread(self.app.push_screen, screen,
                                  lambda yes: yes and self.abort_migration())

    @work(thread=True, group="migrate", exit_on_error=False, name="migration abort")
    def abort_migration(self) -> None:
        try:
            report = service.abort(self.app.host.certificates, self.app.host.devices,
                                   by="console")
        except EngageError as exc:
            self.app.notify(f"Migration not aborted: {exc}", severity="error", timeout=15)
            return
        fetched = report.fetched_new
        self.app.notify(f"Migration to {report.state.to_set} aborted; {len(fetched)} locks "
                        "need the old anchor again" + (": " + ", ".join(fetched) if fetched
                                                        else "."), timeout=20)
        self.app.call_from_thread(self.query_one(MigrationPane).sample)
