"""A lock's first contact: /current over plain HTTP, the DER at cert_url, then TLS trusting it."""

from __future__ import annotations

import json
import re

from .helpers import anchor_context, http_get, lock_hash, raw_exchange, wait_for_event

CURRENT = "/swordfish/lock/certificates/current"


def test_lock_fetches_anchor_verifies_hash_and_then_trusts_tls(site):
    answer, der = site.fetch_anchor()
    assert list(answer) == ["cert_url", "hash"]
    assert len(answer["hash"]) == 28
    assert answer["hash"] == lock_hash(site.site_key._raw, der)
    status, _, body = site.tls_get(der, "/no/such/path")
    assert status == 404 and json.loads(body)["status"] == 404


def test_current_raw_bytes_are_http11_with_exact_content_length_and_compact_json(site):
    raw = raw_exchange(site.http_port, f"GET {CURRENT} HTTP/1.1\r\nHost: 10.44.68.128\r\n\r\n"
                       .encode())
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 200 OK"
    assert f"Content-Length: {len(body)}".encode() in lines
    assert b"Content-Type: application/json" in lines
    assert re.fullmatch(rb'\{"cert_url":"http://10\.44\.68\.128/swordfish/lock/certificates/'
                        rb'anchors/[0-9a-f]{64}\.der","hash":"[A-Za-z0-9+/]{27}="\}', body)


def test_cert_url_is_content_addressed_by_the_anchor_sha256(site):
    import hashlib

    answer, der = site.fetch_anchor()
    assert answer["cert_url"].endswith(f"/{hashlib.sha256(der).hexdigest()}.der")


def test_der_download_has_certificate_content_type(site):
    answer, _ = site.fetch_anchor()
    path = answer["cert_url"].split(str(site.http_port), 1)[1]
    status, headers, der = http_get(site.http_port, path)
    assert status == 200
    assert headers["Content-Type"] == "application/x-x509-ca-cert"
    assert headers["Content-Length"] == str(len(der))


def test_legacy_sample_path_serves_the_active_anchor(site):
    _, der = site.fetch_anchor()
    for name in ("partner_CA", "demo", "anchor"):
        status, _, body = http_get(site.http_port, f"/static/Device_Certificates/{name}.der")
        assert (status, body) == (200, der)
    status, _, _ = http_get(site.http_port, "/static/Device_Certificates/other.der")
    assert status == 404


def test_public_base_url_setting_overrides_the_host_header(host, site):
    host.settings.public_base_url = "http://10.44.68.128/"
    _, _, body = http_get(site.http_port, CURRENT)
    assert json.loads(body)["cert_url"].startswith("http://10.44.68.128/swordfish/")


def test_current_over_tls_points_cert_url_at_the_http_port(site):
    _, der = site.fetch_anchor()
    status, _, body = site.tls_get(der, CURRENT)
    assert status == 200
    assert json.loads(body)["cert_url"].startswith(f"http://localhost:{site.http_port}/")


def test_unknown_path_is_json_404_and_wrong_method_is_json_405(site):
    status, headers, body = http_get(site.http_port, "/nothing/here")
    assert status == 404 and headers["Content-Type"] == "application/json"
    status, headers, body = http_get(site.http_port, CURRENT, method="DELETE")
    assert status == 405 and json.loads(body)["status"] == 405
    assert "GET" in headers["Allow"]


def test_no_active_set_answers_503_with_a_reason(host, site):
    host.certificates._swap(None)
    status, _, body = http_get(site.http_port, CURRENT)
    assert status == 503 and "no active certificate set" in json.loads(body)["error"]


def test_tls_client_trusting_another_anchor_fails_and_the_failure_is_logged(site, tmp_path):
    from server import pki

    other = pki.issue_root("someone else")
    import socket
    import ssl

    with socket.create_connection(("127.0.0.1", site.tls_port), timeout=5) as sock:
        try:
            anchor_context(pki.cert_der(other.cert)).wrap_socket(sock, server_hostname="localhost")
            raise AssertionError("handshake should fail")
        except ssl.SSLCertVerificationError:
            pass
    events = wait_for_event(site.host.log, lambda e: e.kind == "handshake")
    assert "unknown CA" in events[0].error or "certificate" in events[0].error



def _cert_url(port: int, head: str) -> str:
    raw = raw_exchange(port, f"GET {CURRENT} {head}\r\n\r\n".encode())
    assert raw.startswith(b"HTTP/1.1 200 "), raw[:80]
    return json.loads(raw.partition(b"\r\n\r\n")[2])["cert_url"]


def test_http10_request_without_host_gets_the_first_host_name_and_the_http_port(site):
    url = _cert_url(site.http_port, "HTTP/1.0")
    assert url.startswith(f"http://localhost:{site.http_port}/swordfish/")


def test_without_host_names_the_address_the_connection_arrived_on_is_used(host, site):
    host.settings.host_names = []
    url = _cert_url(site.http_port, "HTTP/1.0")
    assert url.startswith(f"http://127.0.0.1:{site.http_port}/swordfish/")


def test_malformed_host_header_is_not_used_and_the_port_is_kept(site):
    for bad in ("evil.example/path?x=", "a b", "x:99999", "user@evil.example", "x:80:80"):
        url = _cert_url(site.http_port, f"HTTP/1.1\r\nHost: {bad}")
        assert url.startswith(f"http://localhost:{site.http_port}/swordfish/"), (bad, url)


def test_valid_host_header_with_a_port_is_used_as_given(site):
    for given in ("10.44.68.128:8080", "engage.example", "[fd00::5]:8080"):
        url = _cert_url(site.http_port, f"HTTP/1.1\r\nHost: {given}")
        assert url.startswith(f"http://{given}/swordfish/"), (given, url)


def test_head_answers_as_get_does_without_the_body(host, site):
    """GETs of delivery paths are answered before Flask, HEADs by the Flask routes: both from
    routes_certs.answer, so they must agree (status, type, length) - found and not found."""
    answer, _ = site.fetch_anchor()
    der_path = answer["cert_url"].split(str(site.http_port), 1)[1]
    for path in (CURRENT, der_path, "/static/Device_Certificates/other.der",
                 der_path.replace(der_path[-68:-4], "0" * 64)):
        status, headers, body = http_get(site.http_port, path)
        head_status, head_headers, head_body = http_get(site.http_port, path, method="HEAD")
        assert (head_status, head_body) == (status, b"")
        assert head_headers["Content-Type"] == headers["Content-Type"]
        assert head_headers["Content-Length"] == headers["Content-Length"] == str(len(body))


def test_a_delivery_error_reaches_the_request_log_with_its_reason(host, site):
    status, _, _ = http_get(site.http_port, "/static/Device_Certificates/other.der")
    [event] = wait_for_event(host.log, lambda e: e.path.endswith("/other.der"))
    assert (status, event.status, event.error) == (404, 404, "no such certificate")
