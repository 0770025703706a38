"""``engage-console --headless``: the same host with no UI, for a service manager.

Request lines go to stdout (text, or JSON lines with ``--log-format json``); notices and state
changes go to stderr. SIGTERM/SIGINT stop gracefully (requests in flight finish, exit 0); SIGHUP
reloads the active set without closing the listeners; an activation by another process is
noticed within a second. Either one starts a requested listener that had failed (the TLS
listener cannot start while no set is active). The control socket (server/control/) claims the
folder first: a second host there exits 2 naming the first. Under systemd (``Type=notify``)
``READY=1`` is sent once the listeners are up.
"""

from __future__ import annotations

import json
import signal
import sys
import threading

from server import sdnotify
from server.config import Settings
from server.control.lock import HostRunning
from server.errors import EngageError
from server.host import Host


def _say(message: str) -> None:
    print(f"engage-console: {message}", file=sys.stderr, flush=True)


def run_headless(settings: Settings, listeners: tuple[str, ...], log_format: str = "text") -> int:
    try:
        host = Host.from_settings(settings)
    except EngageError as exc:
        _say(f"cannot start: {exc}")
        return 1
    for notice in host.notices:
        _say(f"NOTICE: {notice}")
    try:
        host.serve_control()  # one host per folder; the console and the CLI attach here
    except EngageError as exc:
        _say(f"cannot start: {exc}")
        host.close()
        return 2 if isinstance(exc, HostRunning) else 1
    stop = threading.Event()
    reload_requested = threading.Event()
    retry_requested = threading.Event()  # a set became active: start what failed for want of one

    def active_changed(active) -> None:
        _say(f"active certificate set: {active.name if active else 'none'}"
             + (f" (hash {active.hash})" if active else ""))
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

    if not _start(host, listeners):
        _say("nothing could start; exiting")
        host.close()
        return 1

    host.watch_active(on_error=lambda exc: _say(f"active set changed on disk but not loaded: {exc}"))
    sdnotify.notify("READY=1")
    while not stop.wait(0.2):
        if reload_requested.is_set():
            reload_requested.clear()
            _say("SIGHUP: reloading the active certificate set")
            try:
                host.certificates.reload()
            except EngageError as exc:
                _say(f"reload failed, still serving the previous set: {exc}")
            retry_requested.set()
        if retry_requested.is_set():
            retry_requested.clear()
            _start(host, [n for n in listeners if host.listeners[n].status().state == "FAILED"])

    _say("stopping: letting requests in flight finish")
    sdnotify.notify("STOPPING=1")
    host.close()
    subscription.ready.set()
    printer.join(timeout=2)
    _write_events(subscription.drain(), log_format)
    _say("stopped")
    return 0


def _start(host: Host, names) -> int:
    """Start these listeners, saying how each went; how many are running."""
    started = 0
    for name, status in host.start(names).items():
        if status.state == "RUNNING":
            started += 1
            _say(f"{name} listener RUNNING on {status.address}:{status.port}")
        else:
            _say(f"{name} listener FAILED: {status.last_error}")
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
