"""The Textual console: one App over one Host, with a dashboard, certificates and devices.

The host never knows the console exists. Changes reach the UI one way: request threads and
the host's callbacks only record what changed (the request log subscription, a set of lock
serials, a flag for the active set), and one timer on the UI thread drains them in batches.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import os
import signal
import sys
import threading
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Iterable

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import WorkerState

from server.config import Settings
from server.errors import EngageError
from server.events import Event
from server.host import LISTENERS, Host
from server.listeners import FAILED, RUNNING

from .fleet_model import FleetModel
from .screens.base import MIN_HEIGHT, MIN_WIDTH, ConsoleScreen
from .screens.certificates import CertificatesScreen
from .screens.confirm import ConfirmScreen
from .screens.dashboard import LABELS, DashboardScreen
from .screens.devices import DevicesScreen
from .screens.help import HelpScreen

DRAIN_INTERVAL = 0.1      # seconds between log drains: ten batched updates a second at most
LISTENER_POLL_TICKS = 5   # listener counters refreshed every half second even without events
SCREEN_KEYS = Binding.Group("Screens", compact=True)  # one footer item: 1 2 3 and their name
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)  # stop as `q`, `y` does (as headless does)


@dataclass
class HostChange:
    """What changed in the host since the previous tick."""

    events: list[Event] = field(default_factory=list)
    serials: frozenset[str] = frozenset()
    active_changed: bool = False
    listeners_changed: bool = False


class HostInbox:
    """Collects notifications from host threads until the UI thread takes them in one go."""

    def __init__(self, host: Host):
        self._lock = threading.Lock()
        self._serials: set[str] = set()
        self._active_changed = False
        self.subscription = host.log.subscribe(maxlen=max(1000, host.settings.log_ring_size))

    def device_changed(self, serial: str) -> None:
        with self._lock:
            self._serials.add(serial)

    def active_changed(self, _active) -> None:
        with self._lock:
            self._active_changed = True

    def take(self) -> HostChange:
        with self._lock:
            serials, self._serials = frozenset(self._serials), set()
            active, self._active_changed = self._active_changed, False
        return HostChange(self.subscription.drain(), serials, active)


class EngageConsole(App):
    """The operator console. ``clock`` fixes "now" for relative times (snapshot tests);
    ``freeze_gc`` is for the console's own process (see on_mount), not for tests."""

    CSS_PATH = "app.tcss"
    TITLE = "engage-console"
    MODES = {"dashboard": DashboardScreen, "certificates": CertificatesScreen,
             "devices": DevicesScreen}
    DEFAULT_MODE = "dashboard"
    BINDINGS = [
        Binding("1", "switch_mode('dashboard')", "Dashboard", id="app.dashboard",
                tooltip="Listeners and the live lock log", group=SCREEN_KEYS),
        Binding("2", "switch_mode('certificates')", "Certificates", id="app.certificates",
                tooltip="Certificate sets: validate, activate, roll back, renew, import",
                group=SCREEN_KEYS),
        Binding("3", "switch_mode('devices')", "Devices", id="app.devices",
                tooltip="Lock records, their audits and alerts", group=SCREEN_KEYS),
        Binding("question_mark,f1", "help", "Help", id="app.help",
                tooltip="Every key of this screen"),
        Binding("q", "quit", "Quit", id="app.quit",
                tooltip="Quit (asks first while listeners run) and stop the listeners"),
    ]

    def __init__(self, host: Host, listeners: Iterable[str] = LISTENERS, start: bool = True,
                 clock: Callable[[], dt.datetime] | None = None, freeze_gc: bool = False,
                 driver_class=None) -> None:
        super().__init__(driver_class=driver_class)
        self.host = host
        self.start_listeners = tuple(listeners) if start else ()
        self._clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self.freeze_gc = freeze_gc
        self._views: list[ConsoleScreen] = []
        self._ticks = 0
        self._leaving = False
        self.inbox = HostInbox(host)
        self.fleet = FleetModel(host.settings)  # what the devices screen shows
        host.devices.on_change.append(self.inbox.device_changed)
        host.certificates.on_change.append(self.inbox.active_changed)

    def now(self) -> dt.datetime:
        return self._clock()

    # --- life cycle ----------------------------------------------------------------------------

    def on_mount(self) -> None:
        if self.freeze_gc:
            # What is alive once the console is up (modules, widgets, the host) stays alive:
            # moved out of the collector's way, full collections stay short under heavy traffic
            # (a 100 ms pause became 60 ms with 20,000 events held).
            gc.freeze()
        self.set_interval(DRAIN_INTERVAL, self.drain)
        self.host.watch_active(on_error=lambda exc: self.notify(
            f"Another program changed the active set, but it cannot be loaded: {exc}",
            severity="error", timeout=15), on_notice=lambda level, message: self.notify(
            message, severity="error" if level == "error" else "information", timeout=15))
        if self.start_listeners:
            self.control_listeners(self.start_listeners, start=True, quiet=True)
        self._handle_signals(True)
        self.warm_fleet()

    @work(thread=True, group="fleet-model", exit_on_error=False, name="fleet model")
    def warm_fleet(self) -> None:
        """Work the fleet out once, before anyone asks for the devices screen."""
        active = self.host.certificates.current()
        with self.fleet.lock:
            self.fleet.follow(self.host.devices, self.now(),
                              active.cert_set.anchor_sha256 if active else None)

    def on_unmount(self) -> None:
        self._handle_signals(False)
        self.inbox.subscription.close()
        for callbacks, callback in ((self.host.devices.on_change, self.inbox.device_changed),
                                    (self.host.certificates.on_change, self.inbox.active_changed)):
            if callback in callbacks:
                callbacks.remove(callback)

    def _handle_signals(self, on: bool) -> None:
        """SIGTERM and SIGINT stop the listeners and leave through Textual's own exit (which
        restores the terminal); SIGHUP reloads the active set. Handled on the event loop, so
        only where signals can be (the main thread)."""
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        handlers = {signum: self.leave for signum in STOP_SIGNALS}
        handlers[signal.SIGHUP] = self.hang_up
        for signum, handler in handlers.items():
            if on:
                loop.add_signal_handler(signum, handler)
            else:
                loop.remove_signal_handler(signum)

    def hang_up(self) -> None:
        """SIGHUP: a reload, as headless does; but also what a closing terminal sends, and a
        console whose terminal is gone stops (gracefully) rather than serve on unseen."""
        if terminal_present():
            self.reload_active()
        else:
            self.leave()

    def leave(self) -> None:
        """Stop the listeners and exit, once however often it is asked (a second SIGTERM)."""
        if not self._leaving:
            self._leaving = True
            self.shutdown()

    @work(thread=True, group="reload", exclusive=True, exit_on_error=False, name="reload")
    def reload_active(self) -> None:
        """SIGHUP: serve what active.json names now, without closing the listeners."""
        try:
            active = self.host.certificates.reload()
        except EngageError as exc:
            self.call_from_thread(self.notify, f"SIGHUP: reload failed, still serving the "
                                  f"previous set: {exc}", severity="error", timeout=15)
            return
        name = active.name if active else "none"
        self.call_from_thread(self.notify, f"SIGHUP: reloaded the active set ({name})")

    def register_view(self, view: ConsoleScreen) -> None:
        self._views.append(view)

    def unregister_view(self, view: ConsoleScreen) -> None:
        if view in self._views:
            self._views.remove(view)

    def drain(self) -> None:
        """Hand every view what changed since the last tick, as one batch. Not once the app is
        shutting down: the timer still fires while the screens are taken apart, and a screen
        whose widgets are gone would fail (NoMatches) and turn a clean quit into a crash."""
        if not self.is_running:
            return
        change = self.inbox.take()
        self._ticks += 1
        change.listeners_changed = self._ticks % LISTENER_POLL_TICKS == 0
        if not (change.events or change.serials or change.active_changed
                or change.listeners_changed):
            return
        for view in list(self._views):
            view.host_changed(change)

    # --- listeners -----------------------------------------------------------------------------

    @work(thread=True, group="listeners", exit_on_error=False, name="listener control")
    def control_listeners(self, names: tuple[str, ...], start: bool, quiet: bool = False) -> None:
        """Start or stop listeners off the UI thread; each outcome is a notification (only
        failures when ``quiet``: at start-up the dashboard shows the states)."""
        statuses = self.host.start(names) if start else self.host.stop(names)
        self.call_from_thread(self.report_listeners, statuses, quiet)

    def report_listeners(self, statuses, quiet: bool = False) -> None:
        for view in list(self._views):
            view.host_changed(HostChange(listeners_changed=True))
        for status in statuses.values():
            label = LABELS.get(status.name, status.name)
            if status.state == FAILED:
                self.notify(f"{label} listener FAILED: {status.last_error}",
                            severity="error", timeout=15)
            elif quiet:
                continue
            elif status.state == RUNNING:
                self.notify(f"{label} listener RUNNING on {status.address}:{status.port}",
                            timeout=3)
            else:
                self.notify(f"{label} listener STOPPED", timeout=3)

    def on_worker_state_changed(self, event) -> None:
        if event.state == WorkerState.ERROR:
            self.notify(f"{event.worker.name or 'task'} failed: {event.worker.error}",
                        severity="error", timeout=10)

    def on_resize(self, event) -> None:
        small = event.size.width < MIN_WIDTH or event.size.height < MIN_HEIGHT
        self.set_class(small, "-too-small")

    # --- everywhere ----------------------------------------------------------------------------

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def running_words(self, names: Iterable[str] | None = None) -> str:
        """'The HTTP and TLS listeners are' RUNNING (of ``names``, default all), or ''."""
        running = [name.upper() for name, status in self.host.status().items()
                   if status.state == RUNNING and (names is None or name in names)]
        if not running:
            return ""
        return "The " + " and ".join(running) + (" listeners are" if len(running) > 1
                                                 else " listener is")

    def confirm_stop(self, title: str, names: Iterable[str] | None, then: str, confirm: str,
                     stop: Callable[[], object]) -> None:
        """Run ``stop`` at once when none of these listeners runs, else after asking (focus on
        the safe choice), saying which run and what stopping costs the locks."""
        which = self.running_words(names)
        if not which:
            stop()
        elif not isinstance(self.screen, ConfirmScreen):
            self.push_screen(ConfirmScreen(title, f"{which} RUNNING. {then}", confirm=confirm),
                             lambda yes: yes and stop())

    async def action_quit(self) -> None:
        self.confirm_stop("Quit engage-console", None, "Quitting stops them: locks cannot call "
                          "in until the host runs again.", "Quit", self.leave)

    def stop_listeners(self, names: tuple[str, ...]) -> None:
        """Stop listeners, asking first as quitting does."""
        self.confirm_stop("Stop listeners" if len(names) > 1 else "Stop listener", names,
                          "Locks cannot call in to a stopped listener until it starts again.",
                          "Stop", lambda: self.control_listeners(names, start=False))

    @work(thread=True, group="shutdown", exit_on_error=False, name="shutdown")
    def shutdown(self) -> None:
        """Stop the listeners (requests in flight finish), then leave: after `q`, `y` or a
        SIGTERM."""
        self.host.stop()
        self.call_from_thread(self.exit, 0)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Every key binding of the screen is also a command in the palette (ctrl+p)."""
        yield from super().get_system_commands(screen)
        seen = set()
        for active in screen.active_bindings.values():
            binding = active.binding
            if not binding.id or binding.id in seen or not binding.description:
                continue
            seen.add(binding.id)
            key = self.get_key_display(binding)
            yield SystemCommand(f"{binding.description} ({key})",
                                binding.tooltip or binding.description,
                                partial(self.run_action, binding.action, active.node))


def terminal_present() -> bool:
    """Is there still a controlling terminal (after a hang-up /dev/tty cannot be opened)?"""
    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
    except OSError:
        return False
    return True


def run_console(settings: Settings, listeners, start: bool = True) -> int:
    """``engage-console``: build the host, run the console, stop the listeners on the way out,
    and say in the terminal how the console left them (locks cannot call in now). Exits with
    the app's return code: non-zero when the console crashed."""
    host = Host.from_settings(settings)
    left = {}
    try:
        host.serve_control()  # one host per folder; other consoles and the CLI attach here
        from .terminal import ConsoleDriver

        app = EngageConsole(host, listeners, start=start, freeze_gc=True,
                            driver_class=ConsoleDriver)
        app.run()
        left = host.status()
    finally:
        host.close()
    for status in left.values():
        print(f"engage-console: {exit_words(status)}", file=sys.stderr, flush=True)
    return app.return_code or 0


def exit_words(status) -> str:
    """One listener as the console left it; one still running was not stopped by the console."""
    label = LABELS.get(status.name, status.name)
    if status.state == RUNNING:
        return f"{label} listener was still RUNNING when the console closed: stopped it now"
    served = f" ({status.requests:,} requests served)" if status.requests else ""
    return f"{label} listener {status.state}{served}"
