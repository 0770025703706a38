"""What every console screen shares: header, body, the too-small message, the status bar of
the active certificate set, the footer, and worker errors shown as notifications."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Container
from textual.geometry import Size
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Header, Static

from ..format import days_to_expiry, expiry_words, fingerprint

MIN_WIDTH, MIN_HEIGHT = 80, 24
CLOCK_SECONDS = 60.0  # days to expiry are recomputed this often while the console stays open
NO_ACTIVE_SET = ("Active set: NONE - the TLS listener cannot start until a set is activated "
                 "(Certificates, key a)")


@dataclass(frozen=True)
class ActiveLine:
    """What the status bar says about the active set."""

    name: str
    demo: bool
    anchor_sha256: str
    hash: str
    days: int | None

    def text(self, width: int) -> str:
        """One line of at most ``width`` when it can be: the fingerprint shortens first, then
        the set name; the hash and the days to expiry are always whole. Too narrow for that
        (under ~100 columns), the whole line, to be wrapped."""
        demo = " (DEMO)" if self.demo else ""
        lines = []
        for groups in (6, 4):
            tail = (f" | anchor {fingerprint(self.anchor_sha256, groups)} | hash {self.hash} | "
                    f"expires in {expiry_words(self.days)}")
            lines.append(f"Active: {self.name}{demo}{tail}")
            if len(lines[-1]) <= width:
                return lines[-1]
        room = width - len(f"Active: …{demo}{tail}")
        if room >= 12:
            return f"Active: {self.name[:room]}…{demo}{tail}"
        return lines[0]


class StatusBar(Widget):
    """Active set, anchor fingerprint, the hash the locks receive, days to expiry: on one line
    at 120 columns whatever the set's name."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.active: ActiveLine | None = None

    def show_active(self, active, now) -> None:
        if active is None:
            self.active = None
        else:
            cert_set = active.cert_set
            self.active = ActiveLine(cert_set.name, cert_set.demo, cert_set.anchor_sha256,
                                     active.hash,
                                     days_to_expiry([*cert_set.chain, cert_set.anchor], now))
        self.refresh(layout=True)

    def line(self, width: int) -> str:
        return NO_ACTIVE_SET if self.active is None else self.active.text(width)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(Text(self.line(width)).wrap(self.app.console, max(width, 1)))

    def render(self) -> Text:
        return Text(self.line(self.content_size.width))


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
