"""Starting, serving, finishing and aborting a migration (issue 16).

``start``, ``finish`` and ``abort`` work on the certs folder through a :class:`Certificates`
service, so ``certs migrate`` runs them with or without a host; a running host follows within
a second (``Host.watch_active``). :class:`Migration` is what the host holds: what ``/current``
delivers and which TLS context each new connection gets.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from ..activation import ActiveSet, Certificates
from ..certstore import current_user
from ..devices.store import Devices
from ..devices.trust import monotonic_of
from ..errors import CertificateError
from ..events import Event, RequestLog
from .choice import ChainChoice
from .progress import Progress, progress
from .state import (ABORT, FINISH, START, MigrationState, clear_state, fetches, note_fetch,
                    now_iso, read_state, state_stamp, write_state)


def start(certificates: Certificates, name: str, by: str | None = None) -> MigrationState:
    """Start migrating from the active set to set ``name`` (another anchor, no errors, a key
    that loads); nothing changes on any refusal."""
    store = certificates.store
    if (state := read_state(store.root)) is not None:
        raise CertificateError(f"{state.describe()}: finish or abort it first")
    active_name = store.active_name()
    if active_name is None:
        raise CertificateError("no active set to migrate from: activate one first")
    old, new = store.load(active_name), store.load(name)
    if new.anchor_sha256 == old.anchor_sha256:
        raise CertificateError(f"set {name} has the same anchor as the active set {old.name}: "
                               "that is a renewal, no lock needs anything; activate it with "
                               f"`engage-console certs activate {name}`")
    if problems := certificates.gate(new):
        raise CertificateError(f"set {name} has errors and cannot be migrated to: "
                               + "; ".join(problems))
    certificates.prepare(new)  # a key that does not load fails here
    store.archive_anchor(new.anchor_der)
    state = MigrationState(old.name, old.anchor_sha256, new.name, new.anchor_sha256, now_iso(),
                           by or current_user())
    write_state(store.root, state)
    _history(certificates, START, state, state.by)
    return state


def finish(certificates: Certificates, force: bool = False, by: str | None = None) -> ActiveSet:
    """Make the new set the only one, through the normal activation (history: ``FINISH``)."""
    state = _under_way(certificates)
    active = certificates.activate(state.to_set, force=force, by=by, action=FINISH)
    clear_state(certificates.store.root)
    return active


def abort(certificates: Certificates, devices: Devices, by: str | None = None) -> Progress:
    """Back to the old anchor alone. The progress at that moment names the locks that fetched
    the new anchor meanwhile (they need the old one again); the history entry keeps them."""
    state = _under_way(certificates)
    report = progress(devices, certificates.store.root, state)
    clear_state(certificates.store.root)
    _history(certificates, ABORT, state, by or current_user(), fetched_new=report.fetched_new)
    return report


def _under_way(certificates: Certificates) -> MigrationState:
    state = read_state(certificates.store.root)
    if state is None:
        raise CertificateError("no migration is under way (start one with "
                               "`engage-console certs migrate NEW`)")
    return state


def _history(certificates: Certificates, action: str, state: MigrationState, by: str,
             **extra) -> None:
    certificates.store.append_history(
        {"time": now_iso(), "action": action, "from": state.from_set, "to": state.to_set,
         "from_anchor": state.from_anchor, "to_anchor": state.to_anchor, "by": by, **extra})


@dataclass(frozen=True)
class _Live:
    state: MigrationState
    new: ActiveSet
    choice: ChainChoice


class Migration:
    """The migration the host serves, if any: ``/current`` names the new anchor, and each new
    TLS connection gets the chain of the anchor its lock holds (``choice.rule``)."""

    def __init__(self, certificates: Certificates, devices: Devices, log: RequestLog):
        self.certificates = certificates
        self.devices = devices
        self.log = log
        self._live: _Live | None = None
        self._stamp = None
        self._restored: str | None = None  # started_at of the migration whose fetches were read

    @property
    def state(self) -> MigrationState | None:
        live = self._live
        return live.state if live else None

    def changed_on_disk(self) -> bool:
        return state_stamp(self.certificates.store.root) != self._stamp

    def reload(self) -> MigrationState | None:
        """Serve what migration.json says now (start-up, SIGHUP, ``certs migrate``)."""
        store = self.certificates.store
        self._stamp = state_stamp(store.root)
        state, active = read_state(store.root), self.certificates.current()
        if state is None or active is None:
            self._live = None
            return None
        old = active.cert_set.anchor_sha256
        if old == state.to_anchor:  # finished, but stopped before removing the state file
            clear_state(store.root)
            self._live = None
            return None
        new = self.certificates.prepare(store.load(state.to_set))
        if new.cert_set.anchor_sha256 != state.to_anchor:
            raise CertificateError(f"set {state.to_set} no longer has the anchor the migration "
                                   "started with: abort the migration (certs migrate --abort)")
        self.certificates.note_served(new)
        self.devices.seed_trust()
        if self._restored != state.started_at:  # after a restart: who fetched what meanwhile
            self._restored = state.started_at
            for address, (sha, at) in fetches(store.root).items():
                self.devices.trust.fetched(address, sha, at, when=monotonic_of(at))
        self._live = _Live(state, new, ChainChoice(self.devices.trust, old, state.to_anchor))
        return state

    def delivered(self) -> ActiveSet | None:
        """The set whose anchor ``/current`` and the legacy DER path deliver."""
        live = self._live
        return live.new if live else self.certificates.current()

    def tls_context(self, address=None) -> ssl.SSLContext:
        """The context for a new connection from ``address`` (None: the active set's)."""
        context = self.certificates.tls_context()
        live = self._live
        if live is None or not address:
            return context
        use_new, note = live.choice.choose(address[0])
        if note:
            self.log.record(Event(listener="tls", client=address[0], kind="chain", note=note))
        return live.new.context if use_new else context

    def anchor_fetched(self, address: str, sha256: str) -> None:
        """An anchor download; during a migration a change of an address's anchor is kept."""
        if self.devices.anchor_fetched(address, sha256) and self._live is not None:
            note_fetch(self.certificates.store.root, address, sha256, now_iso())

    def handshake_failed(self, address: str, reason: str) -> None:
        self.devices.handshake_failed(address, reason)
        live = self._live
        if live is not None:
            live.choice.failed(address, reason)
