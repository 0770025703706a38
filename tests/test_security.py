"""Nothing secret is ever served: traversal and key-file URLs get a JSON 404."""

from __future__ import annotations

import pytest

from server.certstore import check_set_name
from server.errors import CertificateError

from .helpers import http_get, raw_exchange, wait_for_event

SECRET_MARKERS = (b"PRIVATE KEY", b"DEMO site key")

PROBES = [
    "/static/Device_Certificates/../demo/server.key",
    "/static/Device_Certificates/%2e%2e/%2e%2e/site.key",
    "/static/Device_Certificates/%2e%2e%2fdemo%2fserver.key",
    "/static/Device_Certificates/..%5c..%5csite.key",
    "/static/Device_Certificates/server.key",
    "/static/Device_Certificates/%2Fetc%2Fpasswd.der",
    "/static/Device_Certificates/demo%00.der",
    "/static/Device_Certificates/" + "a" * 5000 + ".der",
    "/swordfish/lock/certificates/anchors/../../demo/server.key",
    "/swordfish/lock/certificates/anchors/%2e%2e%2fserver.key",
    "/swordfish/lock/certificates/anchors/" + "0" * 63 + ".der",
    "/swordfish/lock/certificates/anchors/" + "0" * 64 + ".der",
    "/certs/demo/server.key",
    "/site.key",
    "/ca/demo/root.key",
    "//etc/passwd",
]


@pytest.mark.parametrize("path", PROBES)
def test_probe_gets_nothing_secret(site, path):
    raw = raw_exchange(site.http_port, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    status_line = raw.split(b"\r\n", 1)[0]
    assert status_line.split(b" ")[1] in (b"400", b"404", b"414"), status_line
    for marker in SECRET_MARKERS:
        assert marker not in raw


def test_absolute_form_and_backslash_request_targets_get_nothing_secret(site):
    for target in ("http://127.0.0.1/site.key", "\\..\\site.key", "/static/Device_Certificates/..\\..\\site.key"):
        raw = raw_exchange(site.http_port, f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert raw.startswith(b"HTTP/1.1 4"), raw[:80]
        assert b"PRIVATE KEY" not in raw


def test_key_files_are_mode_0600(host, settings):
    import stat

    for path in (settings.path("site_key_file"), host.store.set_path("demo") / "server.key",
                 settings.path("ca_dir") / "demo" / "root.key",
                 settings.path("ca_dir") / "demo" / "intermediate.key"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_request_log_never_holds_the_authorization_value_or_the_site_key(host, site, site_key):
    secret = "Device c2VjcmV0LXRva2VuLXZhbHVl"
    http_get(site.http_port, "/swordfish/lock/certificates/current",
             headers={"Authorization": secret, "Cookie": "sid=topsecret"})
    wait_for_event(host.log, lambda e: e.auth_present)  # recorded just after the response
    host.log.flush()
    text = (host.settings.path("logs_dir") / "requests.jsonl").read_text()
    assert '"auth_present":true' in text
    assert secret not in text and "topsecret" not in text and site_key.base64() not in text


def test_names_and_fingerprints_with_a_trailing_newline_are_refused(host):
    """``$`` in a regular expression also matches before a final newline."""
    with pytest.raises(CertificateError, match="is not allowed"):
        check_set_name("abc\n")
    active = host.certificates.current().cert_set
    assert host.store.anchor_by_sha256(active.anchor_sha256) == active.anchor_der
    assert host.store.anchor_by_sha256(active.anchor_sha256 + "\n") is None


def test_request_log_keeps_content_headers_and_only_the_presence_of_secret_ones(host, site):
    secrets = {"X-Api-Key": "apikey-value-1", "X-Auth-Token": "authtoken-value-2",
               "X-Device-Token": "devtoken-value-3", "X-Session-Secret": "secret-value-4",
               "X-Signing-Key": "signkey-value-5", "X-Authenticated-As": "authas-value-6"}
    http_get(site.http_port, "/swordfish/lock/audit", method="POST", body=b'{"a":1}',
             headers={"Content-Type": "application/json", "X-Lock-Model": "nde", **secrets})
    event = wait_for_event(host.log, lambda e: e.path == "/swordfish/lock/audit")[0]
    assert event.headers["Content-Type"] == "application/json"
    assert event.headers["Content-Length"] == "7"
    assert event.headers["X-Lock-Model"] == "nde"
    for name in secrets:
        assert event.headers[name] == "(present)"
    host.log.flush()
    text = (host.settings.path("logs_dir") / "requests.jsonl").read_text()
    assert not [value for value in secrets.values() if value in text]


def test_no_committed_file_holds_a_private_key():
    """Keys are generated at run time (fixtures, demo set, benchmarks), never committed; a
    benchmark or scratch run that left its temporary folder in the checkout would be caught
    here before it lands."""
    import shutil
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True,
                             check=True).stdout.decode().split("\0")
    marker = b"PRIVATE KEY" + b"-----"  # as a PEM key has it (split: not in this file)
    holding = [name for name in tracked if name and (root / name).is_file()
               and marker in (root / name).read_bytes()]
    assert holding == []
