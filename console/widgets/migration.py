"""The migration under way (issue 16), on the certificates screen: moved / fetched / not
fetched counts (``server.migration.progress``) and a Sparkline of "moved" sampled every few
seconds while the screen is open. Hidden while no migration is under way."""

from __future__ import annotations

import collections

from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Sparkline, Static
from textual.worker import get_current_worker

from server.errors import CertificateError
from server.migration.progress import Progress, progress
from server.migration.state import read_state

SAMPLE_SECONDS, SAMPLES = 3.0, 100  # the picture covers the last 5 minutes the screen was open
KEYS = "f finish, x abort"


def counts_line(report: Progress) -> str:
    s = report.state
    return (f"MIGRATION {s.from_set} -> {s.to_set}: {len(report.moved)} of {report.locks} "
            f"locks moved, {len(report.fetched)} fetched, not called in; "
            f"{len(report.not_fetched)} not fetched ({KEYS})")


def read_progress(host) -> Progress | str | None:
    """The migration's progress now, None when none is under way, the reason it cannot be
    read as a sentence."""
    try:
        state = read_state(host.store.root)
        return progress(host.devices, host.store.root, state) if state else None
    except (CertificateError, OSError) as exc:
        return f"MIGRATION state cannot be read: {exc}"


class MigrationPane(Vertical):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.moved: collections.deque[int] = collections.deque(maxlen=SAMPLES)
        self.report: Progress | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="migration-counts", markup=False)
        yield Sparkline([], summary_function=max, id="migration-moved")

    def on_mount(self) -> None:
        self.add_class("hidden")
        self.set_interval(SAMPLE_SECONDS, self.sample)
        self.sample()

    @work(thread=True, exclusive=True, group="migration", exit_on_error=False,
          name="migration progress")
    def sample(self) -> None:
        """Read the progress off the UI thread (it reads every record)."""
        report = read_progress(self.app.host)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show, report)

    def _show(self, report: Progress | str | None) -> None:
        self.set_class(report is None, "hidden")
        self.report = report if isinstance(report, Progress) else None
        if report is None:
            self.moved.clear()
            return
        if isinstance(report, str):
            self.query_one("#migration-counts", Static).update(report)
            return
        self.moved.append(len(report.moved))
        self.query_one("#migration-counts", Static).update(counts_line(report))
        spark = self.query_one("#migration-moved", Sparkline)
        spark.data = list(self.moved)
        spark.set_class(not any(self.moved), "hidden")  # a flat zero line says nothing
