"""The composition root: one Host wires settings, site key, certificates, devices, the request
log, the Flask app and both listeners. The console and headless mode both drive a Host."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable, Mapping

from . import pki
from .activation import Certificates
from .atomic import file_stamp
from .certcheck.rules import gate
from .certstore import CertStore
from .config import Settings
from .devices.store import Devices
from .errors import CertificateError, SiteKeyError
from .events import RequestLog
from .listeners import Listener, ListenerStatus
from .migration.service import Migration
from .sitekey import SiteKey, read_key_file, write_key_file

LISTENERS = ("http", "tls")
DEMO_SET = "demo"


def load_site_key(settings: Settings, env: Mapping[str, str] | None = None,
                  create_demo: bool = False) -> tuple[SiteKey, list[str]]:
    """The site key from ``ENGAGE_SITE_KEY`` or the key file. When neither exists and the key
    file was not named explicitly, a demo key is created (first run) if ``create_demo``."""
    env = os.environ if env is None else env
    path = settings.path("site_key_file")
    if env.get("ENGAGE_SITE_KEY"):
        try:
            key = SiteKey.parse(env["ENGAGE_SITE_KEY"], settings.hmac_key_form)
        except SiteKeyError as exc:
            raise SiteKeyError(f"ENGAGE_SITE_KEY: {exc}") from None
        return key, [f"site key from ENGAGE_SITE_KEY: {path} is not followed (a running host "
                     "changes its key only when restarted with another value)"]
    if not path.exists() and create_demo and "site_key_file" not in settings.explicit:
        write_key_file(path, SiteKey.generate(), demo=True)
        return read_key_file(path, settings.hmac_key_form), [
            f"DEMO site key created in {path}: it is not registered with Allegion, so real locks "
            "will reject the certificate hash. Put your site's key there before going live."]
    key = read_key_file(path, settings.hmac_key_form)
    return key, ([f"DEMO site key in use ({path}): not for real locks"] if key.demo else [])


class Host:
    def __init__(self, settings: Settings, site_key: SiteKey, notices: list[str] | None = None,
                 site_key_file: Path | None = None):
        """``site_key_file``: the file ``site_key`` came from, followed while the host runs
        (None: not followed, as for ``ENGAGE_SITE_KEY``)."""
        self.settings = settings
        self.site_key_file = site_key_file
        self._site_key_stamp = file_stamp(site_key_file) if site_key_file else None
        self._site_key_lock = threading.Lock()
        self.notices: list[str] = list(notices or [])
        if settings.tls_version_warning:
            self.notices.append(settings.tls_version_warning)
        self.log = RequestLog(settings.log_ring_size, settings.path("logs_dir") / "requests.jsonl",
                              settings.log_max_bytes, settings.log_backups)
        self.store = CertStore(settings.path("certs_dir"))
        self.certificates = Certificates(self.store, site_key, settings, gate=self._gate)
        self.devices = Devices(settings.path("data_dir"), settings)
        self.migration = Migration(self.certificates, self.devices, self.log)
        from .web.app import create_app  # lazily: Flask loads only where a host serves

        self.app = create_app(self)
        common = dict(log=self.log, bind=settings.bind, timeout=settings.connection_timeout,
                      threads=settings.threads, body_wait=settings.max_body_bytes)
        self.listeners = {
            "http": Listener("http", self.app, port=settings.http_port,
                             port_flag="--http-port", **common),
            "tls": Listener("tls", self.app, port=settings.tls_port, port_flag="--tls-port",
                            tls_context=self.migration.tls_context,
                            on_handshake_failure=self.migration.handshake_failed, **common),
        }
        self._watch_stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.control = None  # the control socket's server, once serve_control ran

    @classmethod
    def from_settings(cls, settings: Settings, env: Mapping[str, str] | None = None,
                      first_run: bool = True) -> "Host":
        """Load (or on a fresh machine create demo) site key and set, and load the active set."""
        env = os.environ if env is None else env
        site_key, notices = load_site_key(settings, env, create_demo=first_run)
        followed = None if env.get("ENGAGE_SITE_KEY") else settings.path("site_key_file")
        host = cls(settings, site_key, notices, site_key_file=followed)
        if first_run:
            host.ensure_demo_set()
        host.reload_certificates()
        return host

    @property
    def site_key(self) -> SiteKey:
        """The key the host hashes with now (it changes when the followed file does)."""
        return self.certificates.site_key

    def _gate(self, cert_set) -> list[str]:
        return gate(self.site_key, self.settings)(cert_set)  # the current key, not the first

    def ensure_demo_set(self) -> None:
        """On a fresh machine (no sets at all) create and activate a clearly labelled demo set."""
        if self.store.names():
            return
        hosts = self.settings.host_names or pki.default_hosts(self.settings.bind)
        try:
            pki.init_set(self.store, self.settings.path("ca_dir"), DEMO_SET, hosts, demo=True)
        except CertificateError as exc:
            self.notices.append(f"DEMO certificate set '{DEMO_SET}' not created: {exc}")
            return
        try:
            self.certificates.activate(DEMO_SET, by="first run")
        except CertificateError as exc:
            self.notices.append(f"DEMO certificate set '{DEMO_SET}' created but not activated: {exc}")
            return
        self.notices.append(
            f"DEMO certificate set '{DEMO_SET}' created in {self.store.root} for "
            f"{', '.join(hosts)}: for trying the console, not for real locks.")

    def reload_certificates(self) -> None:
        """Serve what active.json names; a broken set is a notice, not a crash."""
        try:
            active = self.certificates.reload()
        except CertificateError as exc:
            self.notices.append(f"active certificate set not loaded: {exc}")
            return
        try:
            self.migration.reload()
        except CertificateError as exc:
            self.notices.append(f"the migration under way is not served: {exc}")
        if active is None:
            self.notices.append("no certificate set is active: the TLS listener cannot start "
                                "until one is (engage-console certs activate NAME)")
        elif active.tls_error:
            self.notices.append(f"the TLS listener cannot start: {active.tls_error}")
        elif active.cert_set.demo and not any("DEMO certificate set" in n for n in self.notices):
            self.notices.append(f"DEMO certificate set '{active.name}' is active: not for real locks")

    # --- listeners -----------------------------------------------------------------------

    def start(self, names=LISTENERS) -> dict[str, ListenerStatus]:
        return {name: self.listeners[name].start() for name in names}

    def stop(self, names=LISTENERS) -> dict[str, ListenerStatus]:
        return {name: self.listeners[name].stop() for name in names}

    def status(self) -> dict[str, ListenerStatus]:
        return {name: listener.status() for name, listener in self.listeners.items()}

    def http_port(self) -> int:
        http = self.listeners["http"]
        return http.bound_port if http.running else self.settings.http_port

    # --- noticing another process's activation or site key -------------------------------

    def reload_site_key(self, force: bool = False) -> str | None:
        """Follow a change of the site key file (``force``: read it even when it looks unchanged,
        as SIGHUP does). The new key is checked first: a bad file raises SiteKeyError and the
        previous key keeps serving. Says what changed, never the key; None when nothing did."""
        path = self.site_key_file
        if path is None:
            return None
        with self._site_key_lock:
            stamp = file_stamp(path)
            if stamp == self._site_key_stamp and not force:
                return None
            self._site_key_stamp = stamp  # a bad file is reported once, not at every poll
            try:
                key = read_key_file(path, self.settings.hmac_key_form)
            except SiteKeyError as exc:
                raise SiteKeyError(f"the site key file changed but cannot be used, so the "
                                   f"previous key keeps serving: {exc}") from None
            if key == self.site_key and key.demo == self.site_key.demo:
                return None
            active = self.certificates.use_site_key(key)
        serving = (f"/current now answers hash {active.hash} for set '{active.name}'"
                   if active else "no certificate set is active")
        return f"site key changed in {path}{' (a DEMO key)' if key.demo else ''}: {serving}"

    def watch_active(self, interval: float = 0.5, on_error=None,
                     on_notice: Callable[[str, str], None] | None = None) -> None:
        """Poll active.json and the site key file, and follow another process's activation or
        a changed site key (well within 2 s). ``on_error(exc)``: the active set changed but
        could not be loaded; ``on_notice(level, message)``: what happened to the site key
        (level ``info`` or ``error``)."""
        if self._watcher:
            return
        notice = on_notice or (lambda level, message: None)

        def loop():
            while not self._watch_stop.wait(interval):
                try:
                    if message := self.reload_site_key():
                        notice("info", message)
                except SiteKeyError as exc:
                    notice("error", str(exc))
                if self.certificates.changed_on_disk() or self.migration.changed_on_disk():
                    try:
                        self.certificates.reload()
                        self.migration.reload()
                    except CertificateError as exc:
                        if on_error:
                            on_error(exc)

        self._watcher = threading.Thread(target=loop, name="active-set-watch", daemon=True)
        self._watcher.start()

    # --- the control socket ---------------------------------------------------------------

    def serve_control(self, **options) -> None:
        """Claim this folder (HostRunning when another host holds it) and answer on the control
        socket (server/control/) until ``close``."""
        from .control.server import ControlServer

        server = ControlServer(self, self.settings.path("control_socket"), **options)
        server.start()
        self.control = server

    def close(self) -> None:
        if self.control:
            self.control.stop()
            self.control = None
        self._watch_stop.set()
        self.stop()
        self.log.flush()
