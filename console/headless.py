"""``engage-console --headless``: the same host with no UI, for a service manager.

Request lines go to stdout (text, or JSON lines with ``--log-format json``); notices and state
changes go to stderr (JSON objects with a level too with ``--log-format json``). SIGTERM/SIGINT
stop gracefully (requests in flight finish, exit 0); SIGHUP rereads the site key and reloads the
active set without closing the listeners; an activation by another process or a changed site
key file is noticed within a second. A listener that failed is retried every few seconds
(backing off to a minute), and at once after SIGHUP or an activation. Demo material is created
only with ``--demo``: a folder with no site key is refused (exit 2). The control socket
(server/control/) claims the folder first: a second host there exits 2 naming the first. Under
systemd (``Type=notify``) ``READY=1`` is sent once the listeners are up.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sys
import threading
import time

from server import sdnotify
from server.config import Settings
from server.control.lock import HostRunning
from server.errors import EngageError
from server.host import Host

from .commands.common import EXIT_USAGE

RETRY_FIRST, RETRY_MAX = 2.0, 60.0  # seconds before a failed listener is tried again


class Notices:
    """Notices on stderr: ``engage-console: message`` lines, or JSON objects with a level."""

    def __init__(self, log_format: str):
        self.json = log_format == "json"

    def __call__(self, message: str, level: str = "info") -> None:
        if self.json:
            line = json.dumps({"time": dt.datetime.now(dt.timezone.utc)
                               .isoformat(timespec="milliseconds"), "level": level,
                               "message": message}, separators=(",", ":"))
        else:
            line = f"engage-console: {message}"
        print(line, file=sys.stderr, flush=True)


def missing_site_key(settings: Settings) -> str | None:
    """Why headless mode will not start without ``--demo``: no site key anywhere."""
    path = settings.path("site_key_file")
    if os.environ.get("ENGAGE_SITE_KEY") or path.exists():
        return None
    return (f"site key file {path} does not exist: create the site's key with `engage-console "
            "sitekey generate` (or put your key there, or in ENGAGE_SITE_KEY), or add --demo "
            "to try the host on demo material that real locks reject")


def describe(active) -> str:
    return f"active certificate set: {active.name} (hash {active.hash})" if active \
        else "active certificate set: none"


def run_headless(settings: Settings, listeners: tuple[str, ...], log_format: str = "text",
                 demo: bool = False) -> int:
    say = Notices(log_format)
    if not demo and (problem := missing_site_key(settings)):
        say(f"cannot start: {problem}", "error")
        return EXIT_USAGE
    try:
        host = Host.from_settings(settings, first_run=demo)
    except EngageError as exc:
        say(f"cannot start: {exc}", "error")
        return 1
    for notice in host.notices:
        say(f"NOTICE: {notice}", "warning")
    try:
        host.serve_control()  # one host per folder; the console and the CLI attach here
    except EngageError as exc:
        say(f"cannot start: {exc}", "error")
        host.close()
        return 2 if isinstance(exc, HostRunning) else 1
    say(describe(host.certificates.current()))
    stop = threading.Event()
    reload_requested = threading.Event()
    retry_requested = threading.Event()  # a set became active: start what failed for want of one

    def active_changed(active) -> None:
        say(describe(active))
        if active:
            retry_requested.set()

    host.certificates.on_change.append(active_changed)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: reload_requested.set())

    subscription = host.log.subscribe()
    printer = threading.Thread(target=_print_events, args=(subscription, log_format, stop),
                               name="headless-printer", daemon=True)
    printer.start()

    retries = Retries(host, listeners, say)
    if not retries.start(listeners):
        say("nothing could start; exiting", "error")
        host.close()
        return 1

    threading.Thread(target=_warm_fleet, args=(host, say), name="fleet warm-up",
                     daemon=True).start()
    host.watch_active(
        on_error=lambda exc: say(f"active set changed on disk but not loaded: {exc}", "error"),
        on_notice=lambda level, message: say(message, level))
    sdnotify.notify("READY=1")
    while not stop.wait(0.2):
        if reload_requested.is_set():
            reload_requested.clear()
            _reload(host, say)
            retry_requested.set()
        if retry_requested.is_set():
            retry_requested.clear()
            retries.start(retries.failed())
        retries.start(retries.due())

    say("stopping: letting requests in flight finish")
    sdnotify.notify("STOPPING=1")
    host.close()
    subscription.ready.set()
    printer.join(timeout=2)
    _write_events(subscription.drain(), log_format)
    say("stopped")
    return 0


def _warm_fleet(host: Host, say: Notices) -> None:
    """Read the fleet once, in the background: a preflight or status through the socket then
    answers from a warm index, and the summaries file written at the stop is whole."""
    try:
        host.devices.summaries()
    except OSError as exc:  # the next listing tries again
        say(f"cannot read the device records in {host.devices.root}: {exc}", "error")


def _reload(host: Host, say: Notices) -> None:
    say("SIGHUP: reloading the site key and the active certificate set")
    try:
        if message := host.reload_site_key(force=True):
            say(message)
    except EngageError as exc:
        say(str(exc), "error")
    try:
        host.certificates.reload()
        host.migration.reload()
    except EngageError as exc:
        say(f"reload failed, still serving the previous set: {exc}", "error")


class Retries:
    """Starts listeners and tries a failed one again later, each wait twice the last."""

    def __init__(self, host: Host, names, say: Notices):
        self.host, self.names, self.say = host, tuple(names), say
        self.waits: dict[str, tuple[float, float]] = {}  # name: (when, how long it waited)

    def failed(self) -> list[str]:
        return [n for n in self.names if self.host.listeners[n].status().state == "FAILED"]

    def due(self) -> list[str]:
        now = time.monotonic()
        return [n for n, (when, _) in self.waits.items() if when <= now]

    def start(self, names) -> int:
        """Start these listeners, saying how each went; how many of them are running. A failed
        one is tried again later while the process stays up (another listener runs)."""
        statuses = self.host.start(names)
        staying = any(listener.running for listener in self.host.listeners.values())
        started = 0
        for name, status in statuses.items():
            if status.state == "RUNNING":
                started += 1
                self.waits.pop(name, None)
                self.say(f"{name} listener RUNNING on {status.address}:{status.port}")
                continue
            wait = min(self.waits[name][1] * 2, RETRY_MAX) if name in self.waits else RETRY_FIRST
            if staying:
                self.waits[name] = (time.monotonic() + wait, wait)
            self.say(f"{name} listener FAILED: {status.last_error}"
                     + (f"; retrying in {wait:g} s" if staying else ""), "error")
        return started


PRINT_INTERVAL = 0.05  # seconds: lines are printed in batches, not one wake-up per request


def _print_events(subscription, log_format: str, stop: threading.Event) -> None:
    while not stop.is_set():
        subscription.ready.wait()
        stop.wait(PRINT_INTERVAL)  # let a busy second's requests gather
        _write_events(subscription.drain(), log_format)


def _write_events(events, log_format: str) -> None:
    if not events:
        return
    if log_format == "json":
        lines = [json.dumps(e.to_dict(), separators=(",", ":")) for e in events]
    else:
        lines = [e.line() for e in events]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
