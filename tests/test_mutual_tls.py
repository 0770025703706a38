"""Mutual TLS bound to identity, with real TLS clients presenting real client certificates:
the certificate must chain to client_ca_file (the handshake), name the lock it speaks for
(CN or a subjectAltName) and, when identities.csv pinned one, be that very certificate."""

from __future__ import annotations

import json
import socket
import ssl

import pytest

from server.devices.identities import fingerprint
from server.host import Host
from server.pki import cert_der, cert_pem

from .clientcerts import lock_ca, lock_cert, write_pair
from .helpers import anchor_context, http_get, wait_for_event
from .test_callins import CONFIG, OTHER, SERIAL, RawConnection, config_body, data_files, status


class ClientCertConnection(RawConnection):
    """A lock's TLS connection presenting ``pair`` (certificate and key files) or nothing."""

    def __init__(self, host, pair):
        ctx = anchor_context(host.certificates.current().cert_set.anchor_der)
        if pair:
            ctx.load_cert_chain(*pair)
        sock = socket.create_connection(("127.0.0.1", host.listeners["tls"].bound_port),
                                        timeout=5)
        self.sock = ctx.wrap_socket(sock, server_hostname="localhost")
        self.buffer = b""


@pytest.fixture
def ca():
    return lock_ca()


@pytest.fixture
def mtls(settings, site_key, tmp_path, ca):
    (tmp_path / "lock-ca.pem").write_bytes(cert_pem(ca.cert))
    settings.client_ca_file = str(tmp_path / "lock-ca.pem")
    host = Host.from_settings(settings, env={})
    assert host.start()["tls"].state == "RUNNING"
    yield host
    host.close()


def call(host, pair, serial=SERIAL, path=CONFIG, method="PUT"):
    conn = ClientCertConnection(host, pair)
    try:
        return conn.send(method, path, config_body(serial) if method == "PUT" else None)
    finally:
        conn.close()


def test_a_certificate_naming_the_lock_is_served_and_shown_in_record_and_log(mtls, ca, tmp_path):
    issued = lock_cert(ca, SERIAL)
    head, _ = call(mtls, write_pair(tmp_path, "good", issued))
    assert status(head) == 200
    shown = {"subject": f"CN={SERIAL}", "fingerprint": fingerprint(cert_der(issued.cert))}
    assert mtls.devices.record(SERIAL)["client_cert"] == shown
    [event] = wait_for_event(mtls.log, lambda e: e.path == CONFIG)
    assert event.client_cert == f"CN={SERIAL} (sha256 {shown['fingerprint']})"


def test_a_subject_alt_name_may_name_the_lock(mtls, ca, tmp_path):
    pair = write_pair(tmp_path, "san", lock_cert(ca, "door controller", san=[SERIAL.lower()]))
    assert status(call(mtls, pair)[0]) == 200


def test_a_certificate_naming_another_lock_is_403_and_writes_nothing(mtls, ca, tmp_path):
    head, reply = call(mtls, write_pair(tmp_path, "other", lock_cert(ca, OTHER)))
    message = json.loads(reply)["error"]
    assert status(head) == 403 and data_files(mtls) == {}
    assert f"client certificate CN={OTHER} names {OTHER}, not lock {SERIAL}" == message
    [event] = wait_for_event(mtls.log, lambda e: e.path == CONFIG)
    assert event.error == message and event.provision == f"refused: {message}"
    assert event.client_cert.startswith(f"CN={OTHER} (sha256 ")


@pytest.mark.parametrize("which", ["another CA", "expired", "none"])
def test_a_certificate_from_another_ca_an_expired_one_or_none_fails_the_handshake(
        mtls, ca, tmp_path, which):
    pair = {"another CA": lambda: write_pair(tmp_path, "x", lock_cert(lock_ca("rogue"), SERIAL)),
            "expired": lambda: write_pair(tmp_path, "x", lock_cert(ca, SERIAL, days=(-30, -1))),
            "none": lambda: None}[which]()
    with pytest.raises((ssl.SSLError, ConnectionError, AssertionError, OSError)):
        call(mtls, pair)  # TLS 1.3: the refusal may arrive at the first read
    [event] = wait_for_event(mtls.log, lambda e: e.kind == "handshake")
    assert event.failed and data_files(mtls) == {}


def test_a_pinned_lock_is_served_only_with_its_very_certificate(mtls, ca, tmp_path):
    pinned, twin = lock_cert(ca, SERIAL), lock_cert(ca, SERIAL)  # same CN, same CA
    csv = f'ID,TLS Client Certificate,Tags\n{SERIAL},"{cert_pem(pinned.cert).decode()}",\n'
    mtls.devices.import_rows(mtls.devices.parse_import(csv))
    before = data_files(mtls)
    head, reply = call(mtls, write_pair(tmp_path, "twin", twin))
    assert status(head) == 403 and data_files(mtls) == before
    message = json.loads(reply)["error"]
    assert fingerprint(cert_der(twin.cert)) in message
    assert fingerprint(cert_der(pinned.cert)) in message
    assert status(call(mtls, write_pair(tmp_path, "pinned", pinned))[0]) == 200


def test_a_lock_named_in_the_query_must_be_the_certificates(mtls, ca, tmp_path):
    assert status(call(mtls, write_pair(tmp_path, "good", lock_cert(ca, SERIAL)))[0]) == 200
    pair = write_pair(tmp_path, "other", lock_cert(ca, OTHER))
    head, reply = call(mtls, pair, path=f"/swordfish/lock/db/0?lckSn={SERIAL}", method="GET")
    assert status(head) == 403 and f"not lock {SERIAL}" in json.loads(reply)["error"]


def test_call_ins_over_plain_http_are_refused_when_client_certificates_are_required(mtls):
    code, _, body = http_get(mtls.listeners["http"].bound_port, CONFIG, method="PUT",
                             body=json.dumps(config_body()).encode())
    assert code == 403 and "presented no client certificate" in json.loads(body)["error"]
