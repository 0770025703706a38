"""Rotation and rollback over the real listeners: /current and TLS change together, under load
nothing fails, a bad candidate changes nothing, and a failure at any step of an activation
leaves the old or the new set active, never a mix."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import pty
import select
import shutil
import signal
import ssl
import sys
import threading
import time
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from server import certstore, pki
from server.activation import Certificates
from server.certcheck.rules import gate
from server.errors import CertificateError

from . import chains
from .helpers import http_get, lock_hash

CURRENT = "/swordfish/lock/certificates/current"



@pytest.fixture(autouse=True)
def _pooled_keys(monkeypatch):
    chains.reuse_keys(monkeypatch)

@pytest.fixture
def other(host):
    """A second set with its own anchor, for the same host names."""
    pki.init_set(host.store, host.settings.path("ca_dir"), "other",
                 list(host.settings.host_names))
    return host.store.load("other")


def trusting(*anchors: bytes) -> ssl.SSLContext:
    """A client that trusts only these anchors: a handshake succeeds only when the server
    presents a complete chain to one of them."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    for der in anchors:
        ctx.load_verify_locations(cadata=x509.load_der_x509_certificate(der)
                                  .public_bytes(Encoding.PEM).decode())
    return ctx


def tls_leaf(port: int, ctx: ssl.SSLContext, path: str = CURRENT) -> tuple[bytes, int]:
    """One TLS connection with one request: the server certificate presented, and the status."""
    conn = http.client.HTTPSConnection("localhost", port, timeout=10, context=ctx)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return conn.sock.getpeercert(binary_form=True), resp.status
    finally:
        conn.close()


def fetch_current(port: int, key) -> tuple[str, bytes]:
    """What a lock does on plain HTTP; checks the hash against the DER its URL names."""
    status, _, body = http_get(port, CURRENT)
    assert status == 200, body
    answer = json.loads(body)
    path = urlsplit(answer["cert_url"]).path
    status, _, der = http_get(port, path)
    assert status == 200, der
    assert path.endswith(f"/{hashlib.sha256(der).hexdigest()}.der")
    assert answer["hash"] == lock_hash(key._raw, der)
    return answer["hash"], der


def leaf_der(cert_set) -> bytes:
    return pki.cert_der(cert_set.chain[0])


def serving(site) -> tuple[str, bytes]:
    """(hash on /current, server certificate on TLS) right now."""
    hash_, der = fetch_current(site.http_port, site.site_key)
    leaf, _ = tls_leaf(site.tls_port, trusting(der))
    return hash_, leaf


class Load:
    """Threads acting as locks: /current then the DER, and TLS connections, until stopped."""

    def __init__(self, site, sets, threads: int = 3):
        self.site, self.sets = site, {leaf_der(s): s.name for s in sets}
        self.ctx = trusting(*{s.anchor_der for s in sets})
        self.stop = threading.Event()
        self.seen = threading.Condition()
        self.last_leaf: str | None = None
        self.failures: list[str] = []
        self.counts = {"current": 0, "tls": 0}
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]

    def run(self):
        while not self.stop.is_set():
            try:
                fetch_current(self.site.http_port, self.site.site_key)
                leaf, status = tls_leaf(self.site.tls_port, self.ctx)
                assert status == 200
                name = self.sets[leaf]  # a KeyError: a server certificate of neither set
                with self.seen:
                    self.counts["current"] += 1
                    self.counts["tls"] += 1
                    self.last_leaf = name
                    self.seen.notify_all()
            except Exception as exc:  # every failure is recorded, none ends the load
                self.failures.append(f"{type(exc).__name__}: {exc}")

    def wait_for(self, name: str, timeout: float = 10.0) -> bool:
        with self.seen:
            return self.seen.wait_for(lambda: self.last_leaf == name, timeout)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=15)


def test_rotating_back_and_forth_under_load_fails_no_request(host, site, other):
    demo = host.store.load("demo")
    with Load(site, [demo, other]) as load:
        for i in range(12):
            name = ("other", "demo")[i % 2]
            host.certificates.activate(name, by="test")
            assert load.wait_for(name), f"no handshake presented {name} after rotation {i}"
    assert load.failures == []
    assert load.counts["tls"] >= 12
    history = host.store.history()
    assert [e["set"] for e in history[-12:]] == [("other", "demo")[i % 2] for i in range(12)]


def test_current_and_tls_change_together(host, site, other):
    before_hash, before_leaf = serving(site)
    host.certificates.activate("other")
    after_hash, after_leaf = serving(site)
    assert after_hash == host.certificates.current().hash != before_hash
    assert after_leaf == leaf_der(other) != before_leaf


def test_earlier_anchors_stay_downloadable_at_their_address(host, site, other):
    """Even after their set folder is gone, and after a restart: the anchor archive serves
    them."""
    old_hash, old_der = fetch_current(site.http_port, site.site_key)
    sha = hashlib.sha256(old_der).hexdigest()
    host.certificates.activate("other")
    shutil.rmtree(host.store.set_path("demo"))
    status, _, der = http_get(site.http_port, f"/swordfish/lock/certificates/anchors/{sha}.der")
    assert (status, der) == (200, old_der)
    assert certstore.CertStore(host.store.root).anchor_by_sha256(sha) == old_der  # restarted


def test_rollback_reactivates_the_previous_set_and_is_recorded(host, site, other):
    demo_hash, _ = serving(site)
    host.certificates.activate("other", by="alice")
    active = host.certificates.rollback(by="bob")
    assert active.name == "demo"
    assert serving(site)[0] == demo_hash
    last = host.store.history()[-1]
    assert (last["action"], last["set"], last["previous"], last["by"]) == \
        ("rollback", "demo", "other", "bob")
    with pytest.raises(CertificateError, match="nothing to roll back to"):
        host.certificates.rollback()


def test_rollback_to_a_set_with_errors_needs_force(host, site):
    chains.write(host.store.root, chains.sized(4200), name="oversize")
    host.certificates.activate("oversize", force=True)
    host.certificates.activate("demo")
    with pytest.raises(CertificateError, match="oversize has errors.*chain.size"):
        host.certificates.rollback()
    assert host.certificates.current().name == host.store.active_name() == "demo"
    assert host.certificates.rollback(force=True).name == "oversize"
    assert host.store.history()[-1]["forced"] is True


def test_renewed_set_keeps_the_anchor_so_locks_need_nothing(host, site):
    old_hash, old_anchor = fetch_current(site.http_port, site.site_key)
    renewed = pki.renew_set(host.store, host.settings.path("ca_dir"), "demo")
    assert renewed.anchor_der == old_anchor
    host.certificates.activate(renewed.name)
    new_hash, _ = fetch_current(site.http_port, site.site_key)
    leaf, status = tls_leaf(site.tls_port, trusting(old_anchor))  # a lock with the old anchor
    assert new_hash == old_hash and status == 200 and leaf == leaf_der(renewed)


def test_hand_dropped_set_is_activated_without_a_restart(host, site):
    chains.write(host.store.root, chains.build(), name="handmade")
    assert "handmade" in host.store.names()
    host.certificates.activate("handmade")
    hash_, leaf = serving(site)
    assert leaf == leaf_der(host.store.load("handmade"))


# --- a bad candidate changes nothing ----------------------------------------------------------

def _unchanged(host, site, before):
    assert serving(site) == before
    assert host.store.active_name() == "demo"
    assert host.certificates.current().name == "demo"


def test_set_with_a_mismatched_key_leaves_the_old_set_serving(host, site):
    before, history = serving(site), host.store.history()
    chain = chains.build()
    chain.server_key = chains.key("stranger")
    chains.write(host.store.root, chain, name="mismatch")
    with pytest.raises(CertificateError, match="key.mismatch"):
        host.certificates.activate("mismatch")
    with pytest.raises(CertificateError, match="does not match"):
        host.certificates.activate("mismatch", force=True)  # TLS cannot load it at all
    _unchanged(host, site, before)
    assert host.store.history() == history


def test_oversize_chain_leaves_the_old_set_serving(host, site):
    before, history = serving(site), host.store.history()
    chains.write(host.store.root, chains.sized(4200), name="oversize")
    with pytest.raises(CertificateError, match="chain.size.*4,200 bytes"):
        host.certificates.activate("oversize")
    _unchanged(host, site, before)
    assert host.store.history() == history


def test_set_with_an_encrypted_key_leaves_the_old_set_serving(host, site):
    before, history = serving(site), host.store.history()
    chain = chains.build()
    chains.write(host.store.root, chain, name="encrypted",
                 key_bytes=chains.pem_key(chain.server_key, b"secret"))
    with pytest.raises(CertificateError, match="key.encrypted"):
        host.certificates.activate("encrypted")
    with pytest.raises(CertificateError, match=r"server\.key is encrypted.*certs import"):
        host.certificates.activate("encrypted", force=True)
    _unchanged(host, site, before)
    assert host.store.history() == history


def _output_on_a_terminal(argv: list[str], timeout: float = 20.0) -> bytes:
    """What ``argv`` writes when run with a pseudo-terminal as its controlling terminal;
    killed after ``timeout`` (a process waiting at a prompt never ends by itself)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(argv[0], argv)
    out, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # EIO: the process ended and closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)
    return out


def test_an_encrypted_key_never_prompts_on_the_terminal(tmp_path):
    """OpenSSL asks for a key's passphrase on the terminal unless told otherwise: an
    activation run from a terminal would hang there, holding the activation lock."""
    chain = chains.build()
    cert_set = chains.write(tmp_path, chain, key_bytes=chains.pem_key(chain.server_key, b"pw"))
    code = ("import sys; from pathlib import Path; from server.tlscontext import "
            "build_server_context\n"
            "try: build_server_context(Path(sys.argv[1]), Path(sys.argv[2]))\n"
            "except Exception as exc: print('refused:', exc)")
    out = _output_on_a_terminal([sys.executable, "-c", code, str(cert_set.chain_path),
                                 str(cert_set.key_path)]).decode(errors="replace")
    assert "pass phrase" not in out.lower()
    assert "refused:" in out and "is encrypted" in out, out


def test_forced_activation_is_recorded(host, site):
    chains.write(host.store.root, chains.sized(4200), name="oversize")
    host.certificates.activate("oversize", force=True, by="carol")
    last = host.store.history()[-1]
    assert (last["set"], last["forced"], last["by"]) == ("oversize", True, "carol")


# --- a failure at any step ------------------------------------------------------------------

def _fail(exc=OSError(5, "simulated crash")):
    def raiser(*args, **kwargs):
        raise exc
    return raiser


def _fail_for(file_name: str):
    """write_atomic that fails for one file, as a crash before its rename would."""
    real = certstore.write_atomic

    def write(path, data, mode=0o644):
        if os.path.basename(path) == file_name:
            raise OSError(28, "simulated crash before rename")
        return real(path, data, mode)
    return write


STEPS = {  # step -> (what to patch, the set active afterwards)
    "load": (lambda h, m: m.setattr(h.store, "load", _fail()), "demo"),
    "check": (lambda h, m: m.setattr(h.certificates, "gate", _fail(RuntimeError("x"))), "demo"),
    "tls context": (lambda h, m: m.setattr(h.certificates, "prepare", _fail()), "demo"),
    "archive anchor": (lambda h, m: m.setattr(h.store, "archive_anchor", _fail()), "demo"),
    "replace active.json": (lambda h, m: m.setattr(certstore, "write_atomic",
                                                   _fail_for("active.json")), "demo"),
    "append history": (lambda h, m: m.setattr(h.store, "append_history", _fail()), "other"),
    "notify": (lambda h, m: h.certificates.on_change.append(_fail(RuntimeError("x"))), "other"),
}


@pytest.mark.parametrize("step", list(STEPS))
def test_a_failure_at_any_step_leaves_old_or_new_active_never_a_mix(host, site, other,
                                                                    monkeypatch, step):
    patch, expected = STEPS[step]
    with monkeypatch.context() as m:
        patch(host, m)
        with pytest.raises(Exception):
            host.certificates.activate("other")
    host.certificates.on_change.clear()
    active = host.store.load(expected)
    assert host.certificates.current().name == expected
    assert host.store.active_name() == expected  # what a restart would serve
    hash_, leaf = serving(site)
    assert hash_ == host.site_key.hash(active.anchor_der) and leaf == leaf_der(active)
    restarted = Certificates(host.store, host.site_key, host.settings,
                             gate=gate(host.site_key, host.settings))
    assert restarted.reload().name == expected
    assert not [p for p in host.store.root.iterdir() if p.name.endswith(".tmp")]


def test_after_a_lost_history_line_rollback_still_returns_to_the_old_set(host, site, other,
                                                                          monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(host.store, "append_history", _fail())
        with pytest.raises(CertificateError, match="is active, but the history"):
            host.certificates.activate("other")
    assert host.certificates.rollback().name == "demo"


def test_process_crash_after_commit_is_served_by_the_next_start(host, other):
    """A process that dies right after replacing active.json: the next start serves the new
    set, with /current and TLS from the same set."""
    cert_set = host.store.load("other")
    host.store.commit_activation(cert_set)
    restarted = Certificates(host.store, host.site_key, host.settings)
    active = restarted.reload()
    assert active.name == "other" and active.hash == host.site_key.hash(other.anchor_der)
    assert os.path.exists(host.store.root / ".anchors" / f"{other.anchor_sha256}.der")


def test_imported_set_serves_its_anchor_under_the_legacy_file_name(host, site, tmp_path):
    from server.certimport import import_set

    chain = chains.build()
    import_set(host.store, "partner", sorted(chains.loose_files(tmp_path / "in", chain).iterdir()))
    host.certificates.activate("partner")
    status, _, der = http_get(site.http_port, "/static/Device_Certificates/partner_CA.der")
    assert (status, der) == (200, pki.cert_der(chain.root))
    leaf, status = tls_leaf(site.tls_port, trusting(der))
    assert status == 200 and leaf == pki.cert_der(chain.server)
