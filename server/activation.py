"""Which certificate set the host serves right now, and changing it safely.

The live state is one immutable :class:`ActiveSet` (set, HMAC hash, TLS context) behind one
reference: ``/current`` and the TLS listener read the same object, so they change together.
A candidate is fully prepared off to the side (its TLS context built, which fails safely on a
bad key) before ``active.json`` is switched and the reference swapped.
"""

from __future__ import annotations

import collections
import dataclasses
import ssl
import threading
from dataclasses import dataclass
from typing import Callable

from .certstore import CertSet, CertStore
from .config import Settings
from .errors import CertificateError
from .migration.state import refusal
from .sitekey import SiteKey
from .tlscontext import build_server_context, require_client_certificates

ANCHOR_URL_PREFIX = "/swordfish/lock/certificates/anchors/"
SERVED_KEPT = 8  # sets whose TLS contexts open connections may still use


@dataclass(frozen=True)
class ActiveSet:
    cert_set: CertSet
    hash: str
    context: ssl.SSLContext
    # Why the TLS listener cannot use the context (a bad client_ca_file): a host setting, so
    # it stops TLS only; certificate delivery over plain HTTP goes on.
    tls_error: str = ""

    @property
    def name(self) -> str:
        return self.cert_set.name

    @property
    def anchor_path(self) -> str:
        """Content-addressed download path of the anchor: a lock that fetched ``/current``
        just before a rotation still gets the certificate its hash was computed for."""
        return f"{ANCHOR_URL_PREFIX}{self.cert_set.anchor_sha256}.der"


class Certificates:
    """The certificate service: prepares, activates, rolls back and reloads sets."""

    def __init__(self, store: CertStore, site_key: SiteKey, settings: Settings,
                 gate: Callable[[CertSet], list[str]] | None = None):
        self.store = store
        self.site_key = site_key
        self.settings = settings
        # gate(set) returns the error sentences that forbid activating it (validation report).
        self.gate = gate or (lambda cert_set: [])
        self._active: ActiveSet | None = None
        self._stamp = None
        self._lock = threading.Lock()
        self._served: collections.deque[ActiveSet] = collections.deque(maxlen=SERVED_KEPT)
        self.on_change: list[Callable[[ActiveSet | None], None]] = []

    def current(self) -> ActiveSet | None:
        return self._active

    def tls_context(self, address=None) -> ssl.SSLContext:
        """The active set's context (for any client ``address``: see server/migration)."""
        active = self._active
        if active is None:
            raise CertificateError(
                "no active certificate set: activate one with `engage-console certs activate NAME`")
        if active.tls_error:
            raise CertificateError(active.tls_error)
        return active.context

    def anchor_of(self, context) -> str | None:
        """SHA-256 of the anchor of the set whose TLS context is ``context`` (a connection's,
        handshaken before or after a rotation), None when it is none of the last few served."""
        for active in reversed(self._served):
            if active.context is context:
                return active.cert_set.anchor_sha256
        return None

    def note_served(self, candidate: ActiveSet) -> None:
        """``candidate``'s context serves connections too (a migration's new set)."""
        self._served.append(candidate)

    def prepare(self, cert_set: CertSet) -> ActiveSet:
        context = build_server_context(cert_set.chain_path, cert_set.key_path,
                                       self.settings.tls_min_version)
        tls_error = ""
        if self.settings.client_ca_file:
            try:
                require_client_certificates(context, self.settings.client_ca_file)
            except CertificateError as exc:
                tls_error = f"{exc} (fix or clear the client_ca_file setting)"
        return ActiveSet(cert_set, self.site_key.hash(cert_set.anchor_der), context, tls_error)

    def activate(self, name: str, force: bool = False, by: str | None = None,
                 action: str = "activate") -> ActiveSet:
        """Switch to set ``name``; on any error before the commit nothing changes and the old
        set keeps serving. Order: check, build the TLS context, switch active.json (the commit
        point), swap the one reference, append history. A failure after the commit leaves the
        new set active on disk and in memory alike."""
        with self._lock:
            if why := refusal(self.store.root, name, action):
                raise CertificateError(why)
            cert_set = self.store.load(name)
            problems = self.gate(cert_set)
            if problems and not force:
                raise CertificateError(f"set {name} has errors and cannot be activated: "
                                       + "; ".join(problems))
            candidate = self.prepare(cert_set)
            entry = self.store.commit_activation(cert_set, action=action,
                                                 forced=bool(problems) and force, by=by)
            self._active = candidate
            self._served.append(candidate)
            try:
                self._stamp = self.store.active_stamp()
                self.store.append_history(entry)
            except OSError as exc:
                raise CertificateError(f"set {name} is active, but the history could not be "
                                       f"written ({exc}); rollback still finds the previous set "
                                       "from the history before it") from None
            finally:
                self._notify(candidate)
            return candidate

    def rollback(self, force: bool = False, by: str | None = None) -> ActiveSet:
        """Activate the set active before the current one; like any activation, a set with
        errors needs ``force``; refused during a migration."""
        if why := refusal(self.store.root, action="rollback"):
            raise CertificateError(why)
        target = self.store.rollback_target()
        if target is None:
            raise CertificateError("nothing to roll back to: no earlier activation in history")
        return self.activate(target, force=force, by=by, action="rollback")

    def reload(self) -> ActiveSet | None:
        """Serve what active.json names now (start-up, SIGHUP, another process activated)."""
        with self._lock:
            self._stamp = self.store.active_stamp()
            name = self.store.active_name()
            if name is None:
                self._swap(None)
                return None
            candidate = self.prepare(self.store.load(name))
            self._swap(candidate)
            return candidate

    def use_site_key(self, site_key: SiteKey) -> ActiveSet | None:
        """Hash with ``site_key`` from now on: the active set stays (its TLS context too) and
        its hash is re-derived, so ``/current`` answers the new hash at once."""
        with self._lock:
            self.site_key = site_key
            active = self._active
            if active is not None:
                active = dataclasses.replace(active, hash=site_key.hash(active.cert_set.anchor_der))
            self._swap(active)
            return active

    def changed_on_disk(self) -> bool:
        return self.store.active_stamp() != self._stamp

    def _swap(self, candidate: ActiveSet | None) -> None:
        self._active = candidate
        if candidate is not None:
            self._served.append(candidate)
        self._notify(candidate)

    def _notify(self, candidate: ActiveSet | None) -> None:
        for callback in list(self.on_change):
            callback(candidate)
