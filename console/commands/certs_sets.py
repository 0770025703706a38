"""What the ``certs`` verbs share: the store, the site key (required only where the hash is),
the active set and a set's validation report."""

from __future__ import annotations

from server.certcheck.rules import check_set
from server.certstore import CertSet, CertStore
from server.errors import CertificateError, SiteKeyError
from server.host import load_site_key


def store(settings) -> CertStore:
    return CertStore(settings.path("certs_dir"))


def site_key(settings, required: bool = True):
    """The site key. Only what needs the hash requires it (activation, ``certs hash``); for
    the others a missing or bad key is returned as its SiteKeyError, which the report shows."""
    try:
        return load_site_key(settings, create_demo=False)[0]
    except SiteKeyError as exc:
        if required:
            raise
        return exc


def active_set(store: CertStore) -> CertSet | None:
    try:
        name = store.active_name()
        return store.load(name) if name else None
    except CertificateError:
        return None


def report(store, site_key, settings, cert_set: CertSet):
    active = active_set(store)
    return check_set(cert_set, site_key, settings, active=active)
