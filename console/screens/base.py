"""What every console screen shares: header, body, the too-small message, the status bar of
the active certificate set, the footer, and worker errors shown as notifications."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Container
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from ..widgets.status_bar import StatusBar

MIN_WIDTH, MIN_HEIGHT = 80, 24
CLOCK_SECONDS = 60.0  # days to expiry are recomputed this often while the console stays open


class ConsoleScreen(Screen):
    """Base of the dashboard, certificates and devices screens."""

    def compose(self) -> ComposeResult:
        yield Header()
        with Container(id="body"):
            yield from self.compose_body()
        yield Static(f"The terminal is too small: make it at least {MIN_WIDTH} columns by "
                     f"{MIN_HEIGHT} lines.", id="too-small")
        yield StatusBar(id="status-bar")
        yield Footer(compact=True, show_command_palette=False)  # ctrl+p is listed in help

    def compose_body(self) -> ComposeResult:
        yield from ()

    def on_mount(self) -> None:
        self.app.register_view(self)
        self.set_interval(CLOCK_SECONDS, self.clock_tick)

    def on_unmount(self) -> None:
        self.app.unregister_view(self)

    def refresh_status(self) -> None:
        self.query_one(StatusBar).show_active(self.app.host.certificates.current(), self.app.now())

    def clock_tick(self) -> None:
        """Time passed: what counts days (to expiry) is recomputed."""
        self.refresh_status()

    def host_changed(self, change) -> None:
        """Called by the app's drain timer with what changed since the last tick."""
        if change.active_changed:
            self.refresh_status()

    def on_worker_state_changed(self, event) -> None:
        self.app.on_worker_state_changed(event)  # a failed worker is a notification, not a crash
