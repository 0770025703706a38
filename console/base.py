"""What every console screen shares: header, body, the too-small message, the status bar of
the active certificate set, the footer, and worker errors shown as notifications."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Container
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from .format import days_to_expiry, expiry_words, fingerprint

MIN_WIDTH, MIN_HEIGHT = 80, 24


class StatusBar(Static):
    """Active set, anchor fingerprint, the hash the locks receive, days to expiry."""

    def __init__(self, **kwargs) -> None:
        super().__init__(markup=False, **kwargs)

    def show_active(self, active, now) -> None:
        if active is None:
            self.update("Active set: NONE - the TLS listener cannot start until a set is "
                        "activated (Certificates, key a)")
            return
        cert_set = active.cert_set
        days = days_to_expiry([*cert_set.chain, cert_set.anchor], now)
        demo = " (DEMO)" if cert_set.demo else ""
        self.update(f"Active: {cert_set.name}{demo} | anchor "
                    f"{fingerprint(cert_set.anchor_sha256, 6)} | hash {active.hash} | "
                    f"expires in {expiry_words(days)}")


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

    def on_unmount(self) -> None:
        self.app.unregister_view(self)

    def refresh_status(self) -> None:
        self.query_one(StatusBar).show_active(self.app.host.certificates.current(), self.app.now())

    def host_changed(self, change) -> None:
        """Called by the app's drain timer with what changed since the last tick."""
        if change.active_changed:
            self.refresh_status()

    def on_worker_state_changed(self, event) -> None:
        self.app.on_worker_state_changed(event)  # a failed worker is a notification, not a crash
