"""TLS listener settings: client-certificate verification and old TLS versions."""

from __future__ import annotations

import http.client
import json
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from server import pki
from server.host import Host

from .helpers import anchor_context, http_get, wait_for_event

CURRENT = "/swordfish/lock/certificates/current"


@pytest.fixture
def client_ca(tmp_path):
    ca = pki.issue_root("lock fleet CA")
    key = pki.new_key()
    cert = (pki._builder("lock-1", ca.cert.subject, key.public_key(), 30)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .sign(ca.key, hashes.SHA256()))
    (tmp_path / "client-ca.pem").write_bytes(pki.cert_pem(ca.cert))
    (tmp_path / "client.pem").write_bytes(pki.cert_pem(cert))
    (tmp_path / "client.key").write_bytes(pki.key_pem(key))
    return tmp_path


def _host(settings, **overrides):
    for name, value in overrides.items():
        setattr(settings, name, value)
    host = Host.from_settings(settings, env={})
    assert host.start(("tls",))["tls"].state == "RUNNING"
    return host


def _get(host, ctx):
    conn = http.client.HTTPSConnection("localhost", host.listeners["tls"].bound_port,
                                       timeout=5, context=ctx)
    try:
        conn.request("GET", CURRENT)
        return conn.getresponse().status
    finally:
        conn.close()


def test_client_certificate_required_when_a_client_ca_is_configured(settings, site_key,
                                                                    client_ca):
    host = _host(settings, client_ca_file=str(client_ca / "client-ca.pem"))
    try:
        anchor = host.certificates.current().cert_set.anchor_der
        with pytest.raises((ssl.SSLError, ConnectionResetError, http.client.RemoteDisconnected)):
            _get(host, anchor_context(anchor))
        wait_for_event(host.log, lambda e: e.kind == "handshake")
        with_cert = anchor_context(anchor)
        with_cert.load_cert_chain(client_ca / "client.pem", client_ca / "client.key")
        assert _get(host, with_cert) == 200
    finally:
        host.close()


def test_bad_client_ca_file_keeps_the_tls_listener_down_with_the_reason(settings, site_key,
                                                                        tmp_path):
    (tmp_path / "bad-ca.pem").write_text("not a certificate")
    settings.client_ca_file = str(tmp_path / "bad-ca.pem")
    host = Host.from_settings(settings, env={})
    try:
        assert any("bad-ca.pem" in n and "no certificate or crl found" in n
                   for n in host.notices), host.notices
        status = host.start()["tls"]
        assert status.state == "FAILED"
        assert "client CA file" in status.last_error and "bad-ca.pem" in status.last_error
    finally:
        host.close()


def test_bad_client_ca_file_leaves_certificate_delivery_working(settings, site_key, tmp_path):
    """The client CA is a TLS setting: locks still fetch their anchor over plain HTTP."""
    (tmp_path / "bad-ca.pem").write_text("not a certificate")
    settings.client_ca_file = str(tmp_path / "bad-ca.pem")
    host = Host.from_settings(settings, env={})
    try:
        host.start(("http",))
        status, _, body = http_get(host.listeners["http"].bound_port, CURRENT)
        assert status == 200 and json.loads(body)["hash"] == host.certificates.current().hash
    finally:
        host.close()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
def test_tls_1_1_client_is_served_only_when_the_minimum_allows_it(settings, site_key):
    host = _host(settings, tls_min_version="1.0")
    try:
        assert any("TLS 1.0 is allowed" in n for n in host.notices)
        ctx = anchor_context(host.certificates.current().cert_set.anchor_der)
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        try:
            status = _get(host, ctx)
        except ssl.SSLError as exc:  # this OpenSSL build has no TLS 1.1 at all
            pytest.skip(f"client side cannot speak TLS 1.1 here: {exc}")
        assert status == 200
        assert wait_for_event(host.log, lambda e: e.path == CURRENT)[0].tls_version == "TLSv1.1"
    finally:
        host.close()
