"""The first certificate set (`certs init` and the first-run demo) is one the locks accept."""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import stat

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store

from server import pki
from server.certstore import CertStore
from server.errors import CertificateError
from server.host import Host

from .helpers import lock_hash


def test_init_set_is_rsa2048_sha256_under_the_chain_limit_and_verifies(tmp_path):
    store = CertStore(tmp_path / "certs")
    pki.init_set(store, tmp_path / "ca", "site", ["engage.example", "10.44.68.128"])
    cert_set = store.load("site")
    server, intermediate = cert_set.chain
    anchor = cert_set.anchor
    total = len(cert_set.anchor_der) + sum(len(pki.cert_der(c)) for c in cert_set.chain)
    assert total < 3000  # well under the locks' 4096 bytes
    for cert in (server, intermediate, anchor):
        assert cert.public_key().key_size == 2048
        assert cert.signature_hash_algorithm.name == "sha256"
    now = dt.datetime.now(dt.timezone.utc)
    policy = PolicyBuilder().store(Store([anchor])).time(now)
    for name in (x509.DNSName("engage.example"),
                 x509.IPAddress(ipaddress.ip_address("10.44.68.128"))):
        verifier = policy.build_server_verifier(name)
        chain = verifier.verify(server, [intermediate])
        assert chain[-1] == anchor


def test_ca_keys_are_kept_apart_from_the_set_with_mode_0600(tmp_path):
    store = CertStore(tmp_path / "certs")
    pki.init_set(store, tmp_path / "ca", "site", ["localhost"])
    assert sorted(p.name for p in (tmp_path / "certs" / "site").iterdir()) == [
        "anchor.der", "chain.pem", "server.key", "set.json"]
    for key in ("root.key", "intermediate.key"):
        assert stat.S_IMODE((tmp_path / "ca" / "site" / key).stat().st_mode) == 0o600
    assert b"PRIVATE KEY" not in (tmp_path / "certs" / "site" / "chain.pem").read_bytes()


def test_demo_set_is_labelled_and_its_hash_is_what_current_serves(site):
    answer, der = site.fetch_anchor()
    cert_set = site.host.store.load("demo")
    assert cert_set.demo and "DEMO" in cert_set.anchor.subject.rfc4514_string()
    assert answer["hash"] == lock_hash(site.site_key._raw, cert_set.anchor_der) and der == cert_set.anchor_der
    assert any("DEMO certificate set" in n for n in site.host.notices)


def test_init_never_overwrites_the_ca_keys_of_an_earlier_set_of_that_name(tmp_path):
    """A deleted set folder leaves its CA behind, which sets renewed from it still need."""
    store = CertStore(tmp_path / "certs")
    pki.init_set(store, tmp_path / "ca", "site", ["localhost"])
    renewed = pki.renew_set(store, tmp_path / "ca", "site", new_name="site-renewed")
    ca_files = {p.name: p.read_bytes() for p in (tmp_path / "ca" / "site").iterdir()}
    shutil.rmtree(store.set_path("site"))
    with pytest.raises(CertificateError, match=r"ca/site already holds the CA keys.*move"):
        pki.init_set(store, tmp_path / "ca", "site", ["localhost"])
    assert {p.name: p.read_bytes() for p in (tmp_path / "ca" / "site").iterdir()} == ca_files
    assert store.names() == ["site-renewed"]
    assert pki.renew_set(store, tmp_path / "ca", renewed.name).anchor_der == renewed.anchor_der


def test_first_run_keeps_a_leftover_demo_ca_and_says_why_no_demo_set(settings, site_key):
    (settings.path("ca_dir") / "demo").mkdir(parents=True)
    host = Host.from_settings(settings, env={})
    assert host.store.names() == []
    assert any("'demo' not created" in n and "already holds the CA keys" in n
               for n in host.notices)


def test_a_long_or_non_ascii_host_name_makes_a_server_certificate(tmp_path):
    long_name = "h" * 40 + "." + "i" * 40 + ".example"  # over the 64 a common name holds
    store = CertStore(tmp_path / "certs")
    pki.init_set(store, tmp_path / "ca", "site", [long_name, "bücher.example", "10.0.0.1"])
    names = store.load("site").chain[0].extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert names == [long_name, "xn--bcher-kva.example"]


def test_a_host_name_no_certificate_can_hold_is_a_clear_error(tmp_path):
    store = CertStore(tmp_path / "certs")
    with pytest.raises(CertificateError, match="cannot go in a certificate"):
        pki.init_set(store, tmp_path / "ca", "site", ["a" * 64 + ".example"])  # label over 63
    assert store.names() == []


def test_first_run_leaves_out_machine_names_no_certificate_can_hold(monkeypatch):
    monkeypatch.setattr(pki.socket, "gethostname", lambda: "x" * 64 + ".lan")
    assert pki.default_hosts() == ["localhost", "127.0.0.1"]
