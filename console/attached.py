"""The console attached to a host running in another process (issue 14): the same screens and
keys over a RemoteHost. Its header says which host; quitting detaches and leaves the host
running; when the host goes away it says so and offers to start an embedded host here."""

from __future__ import annotations

import sys
from pathlib import Path

from server.control.client import NoHost

from .app import EngageConsole
from .format import duration
from .remote import RemoteHost
from .screens.confirm import ConfirmScreen
from .terminal import ConsoleDriver

HEADER_INTERVAL = 1.0  # seconds between uptime updates in the header


class AttachedConsole(EngageConsole):
    def __init__(self, host: RemoteHost, **kwargs) -> None:
        super().__init__(host, start=False, **kwargs)
        self.embed_requested = False  # the host went away and the operator asked for one here

    def on_mount(self) -> None:
        super().on_mount()
        self.show_host()
        self.set_interval(HEADER_INTERVAL, self.show_host)
        self.host.on_lost.append(self._lost_from_thread)
        if self.host.lost:
            self.host_lost(self.host.lost)

    def show_host(self) -> None:
        if not self.host.lost:
            self.sub_title = f"attached to pid {self.host.pid}, up {duration(self.host.uptime())}"

    def _lost_from_thread(self, why: str) -> None:
        if self.is_running:
            self.call_from_thread(self.host_lost, why)

    def host_lost(self, why: str) -> None:
        self.sub_title = f"DETACHED: {why}"
        self.notify(f"{why}: locks cannot call in until a host runs again.", severity="error",
                    timeout=30)
        self.push_screen(
            ConfirmScreen("The host stopped",
                          f"{why}. Start an embedded host in this console? Its listeners stop "
                          "when the console quits.", confirm="Start here", cancel="Not now"),
            self._embed)

    def _embed(self, yes: bool) -> None:
        if yes:
            self.embed_requested = True
            self.exit(0)

    async def action_quit(self) -> None:
        if self.host.lost:
            self.exit(0)
            return
        if isinstance(self.screen, ConfirmScreen):
            return
        self.push_screen(
            ConfirmScreen("Detach from the host",
                          f"The host (pid {self.host.pid}) keeps running and serving the locks: "
                          "quitting only closes this console.", confirm="Detach"),
            lambda yes: yes and self.exit(0))

    def shutdown(self) -> None:
        """Leave without stopping anything: the host is not ours."""
        self.exit(0)


def run_attached(settings, path: Path, required: bool) -> int | None:
    """Attach to the host at ``path`` and run the console; None when no host answers there
    (and ``required`` is false) or when the operator asked for an embedded host instead."""
    try:
        host = RemoteHost(settings, path)
    except NoHost:
        if required:
            raise
        return None
    try:
        app = AttachedConsole(host, freeze_gc=True, driver_class=ConsoleDriver)
        app.run()
    finally:
        host.close()
    if app.embed_requested:
        return None
    print(f"engage-console: detached; the host (pid {host.pid}) "
          + ("is gone" if host.lost else "keeps running"), file=sys.stderr, flush=True)
    return app.return_code or 0
