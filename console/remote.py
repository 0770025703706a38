"""An attached console's view of a host running in another process (issue 14): the part of
the Host interface the console uses, over the control socket. Listener states and commands
go to the host; the request log arrives on a follow stream; certificate sets and device
records are read from the host's folders (the paths its status names), as an embedded console
reads them; activations go to the host, which swaps at once. No textual here."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import Callable

from server.activation import Certificates
from server.certcheck.rules import gate
from server.certstore import CertStore
from server.control.client import ControlClient
from server.devices.store import Devices
from server.errors import EngageError
from server.events import Event, Subscription
from server.host import load_site_key
from server.listeners import RUNNING, ListenerStatus
from server.migration.state import FINISH

UI_TIMEOUT = 3.0  # seconds a status or listener call may take: the console's thread waits
UNKNOWN = "UNKNOWN"  # a listener's state once the host is gone


class RemoteLog:
    """Subscriptions like RequestLog's, fed by the follow stream, which starts with the first
    subscription (so it gets the host's recent ring first)."""

    def __init__(self, on_subscribe: Callable[[], None]):
        self._on_subscribe = on_subscribe
        self._subs: list[Subscription] = []
        self._lock = threading.Lock()
        self.last_seq = 0

    def subscribe(self, maxlen: int = 10_000) -> Subscription:
        sub = Subscription(self, maxlen)
        with self._lock:
            self._subs.append(sub)
        self._on_subscribe()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def deliver(self, event: Event) -> None:
        self.last_seq = event.seq
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            sub._put(event)


class RemoteListener:
    def __init__(self, remote: "RemoteHost", name: str):
        self._remote, self.name = remote, name

    @property
    def running(self) -> bool:
        return self._remote.statuses[self.name].state == RUNNING


class RemoteCertificates(Certificates):
    """The host's certificate service seen from here: read from the files; an activation,
    rollback or migration finish is the host's own (control socket), after which this copy
    reloads. A migration's start and abort change the files, which the host follows."""

    def __init__(self, remote: "RemoteHost", *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._remote = remote

    def activate(self, name: str, force: bool = False, by: str | None = None,
                 action: str = "activate"):
        by = by or "attached console"
        if action == FINISH:  # a migration's finish (server.migration.service.finish)
            self._remote.client.call("migrate", action="finish", force=force, by=by)
        else:
            named = {"name": name} if action == "activate" else {}
            self._remote.client.call(action, **named, force=force, cut_off_ok=True, by=by)
        return self.reload()

    def rollback(self, force: bool = False, by: str | None = None):
        return self.activate("", force=force, by=by, action="rollback")


class RemoteHost:
    """Attach to the host answering at ``path``; NoHost when none does."""

    def __init__(self, settings, path: Path):
        self.path = Path(path)
        self.client = ControlClient(self.path, timeout=UI_TIMEOUT)
        state = self.client.call("status")
        self.pid = state["pid"]
        self._started = time.monotonic() - state["uptime"]
        self.settings = dataclasses.replace(settings, **state["paths"])
        self.notices = list(state["notices"])
        self.statuses = _statuses(state["listeners"])
        self.listeners = {name: RemoteListener(self, name) for name in self.statuses}
        self.site_key = load_site_key(self.settings, create_demo=False)[0]
        self.store = CertStore(self.settings.path("certs_dir"))
        self.certificates = RemoteCertificates(self, self.store, self.site_key, self.settings,
                                               gate=gate(self.site_key, self.settings))
        self.certificates.reload()
        self.devices = Devices(self.settings.path("data_dir"), self.settings)
        self.log = RemoteLog(self._start_following)
        self.lost = ""  # why the host is gone, once it is
        self.on_lost: list[Callable[[str], None]] = []
        self._on_error: Callable[[Exception], None] | None = None
        self._stream: ControlClient | None = None
        self._closing = False
        self._follower: threading.Thread | None = None

    def uptime(self) -> float:
        return time.monotonic() - self._started

    # --- what the console calls --------------------------------------------------------

    def status(self) -> dict[str, ListenerStatus]:
        if not self.lost:
            try:
                self.statuses = _statuses(self.client.call("status")["listeners"])
            except EngageError as exc:
                self._gone(f"lost the host (pid {self.pid}): {exc}")
        return self.statuses

    def start(self, names) -> dict[str, ListenerStatus]:
        return self._control("start", names)

    def stop(self, names=None) -> dict[str, ListenerStatus]:
        return self._control("stop", names or list(self.listeners))

    def _control(self, cmd: str, names) -> dict[str, ListenerStatus]:
        changed = _statuses(self.client.call(cmd, listeners=list(names))["listeners"])
        self.statuses = {**self.statuses, **changed}
        return changed

    def http_port(self) -> int:
        return self.statuses["http"].port

    def watch_active(self, interval: float = 0.5, on_error=None, on_notice=None) -> None:
        """The host pushes its activations on the stream; ``on_error`` hears of one this
        console cannot load. The host follows its own site key file (``on_notice`` has
        nothing to hear here: the host logs the change)."""
        self._on_error = on_error

    def close(self) -> None:
        self._closing = True
        for client in (self._stream, self.client):
            if client:
                client.close()

    # --- the follow stream -------------------------------------------------------------

    def _start_following(self) -> None:
        if self._follower is None:
            self._follower = threading.Thread(target=self._follow, name="attached-follow",
                                              daemon=True)
            self._follower.start()

    def _follow(self) -> None:
        why = f"the host (pid {self.pid}) stopped"
        try:
            while not self._closing:
                self._stream = ControlClient(self.path)
                for message in self._stream.follow(self.log.last_seq):
                    if "event" in message:
                        self._event(Event(**message["event"]))
                    elif "active" in message:
                        self._reload()
                    elif "dropped" in message:
                        break  # fell behind: follow again from the last event seen
                    elif "closing" in message:
                        return self._gone(why)
                else:
                    return self._gone(why)
                self._stream.close()
        except (EngageError, OSError, ValueError) as exc:
            self._gone(f"{why} ({exc})")

    def _event(self, event: Event) -> None:
        self.log.deliver(event)
        if event.serial:
            self.devices.notices.changed(event.serial)

    def _reload(self) -> None:
        try:
            self.certificates.reload()
        except EngageError as exc:
            if self._on_error:
                self._on_error(exc)

    def _gone(self, why: str) -> None:
        if self.lost or self._closing:
            return
        self.lost = why
        self.statuses = {name: dataclasses.replace(s, state=UNKNOWN)
                         for name, s in self.statuses.items()}
        for callback in list(self.on_lost):
            callback(why)


def _statuses(listeners: dict) -> dict[str, ListenerStatus]:
    return {name: ListenerStatus(**fields) for name, fields in listeners.items()}
