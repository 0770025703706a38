"""Shared fixtures: a throwaway site (settings, site key, certificate set) and a running host
whose real listeners are bound to ephemeral ports on 127.0.0.1."""

from __future__ import annotations

import pytest

from server.config import load_settings
from server.host import Host
from server.sitekey import SiteKey, write_key_file

from .helpers import Site


@pytest.fixture
def settings(tmp_path, monkeypatch):
    """Settings for a site in tmp_path: ports 0, loopback only, every folder under tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ENGAGE_SITE_KEY", raising=False)
    return load_settings(env={}, flags={
        "bind": "127.0.0.1", "http_port": 0, "tls_port": 0,
        "host_names": ["localhost", "127.0.0.1"],
        "certs_dir": str(tmp_path / "certs"), "ca_dir": str(tmp_path / "ca"),
        "data_dir": str(tmp_path / "Engage_Data"), "logs_dir": str(tmp_path / "logs"),
        "site_key_file": str(tmp_path / "site.key"), "connection_timeout": 3.0,
    })


@pytest.fixture
def site_key(settings):
    key = SiteKey.generate()
    write_key_file(settings.site_key_file, key)
    return key


@pytest.fixture
def host(settings, site_key):
    """A host with a (demo-labelled, generated) active set and both listeners running."""
    h = Host.from_settings(settings, env={})
    statuses = h.start()
    assert all(s.state == "RUNNING" for s in statuses.values()), statuses
    yield h
    h.close()


@pytest.fixture
def site(host, site_key):
    return Site(host, site_key)


@pytest.fixture
def served(host):
    """The host above, answering on its control socket (issue 14)."""
    host.serve_control()
    return host
