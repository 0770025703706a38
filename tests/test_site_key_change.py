"""A running host follows a change of its site key file (``sitekey generate --force``, an edit),
as it follows an activation: the new key is checked first, ``/current`` answers the new hash."""

from __future__ import annotations

import json
import queue

import pytest

from console.__main__ import main
from server.certcheck.rules import check_set
from server.host import Host
from server.sitekey import SiteKey, write_key_file

from .helpers import http_get, lock_hash, until

CURRENT = "/swordfish/lock/certificates/current"


def current_hash(site) -> str:
    status, _, body = http_get(site.http_port, CURRENT)
    assert status == 200, body
    return json.loads(body)["hash"]


@pytest.fixture
def notices(host):
    """What the watching host says about the site key, as (level, message)."""
    said: queue.Queue = queue.Queue()
    host.watch_active(interval=0.05, on_notice=lambda level, message: said.put((level, message)))
    return said


def anchor_der(host) -> bytes:
    return host.certificates.current().cert_set.anchor_der


def test_a_new_key_in_the_file_is_served_within_a_second_and_logged_without_the_key(
        host, site, settings, notices):
    new = SiteKey.generate()
    write_key_file(settings.site_key_file, new)
    expected = lock_hash(new.hmac_key(), anchor_der(host))
    assert until(lambda: current_hash(site) == expected, timeout=1.0)
    level, message = notices.get(timeout=5)
    assert level == "info" and "site key changed" in message and expected in message
    assert new.base64() not in message
    assert host.site_key == new
    report = check_set(host.certificates.current().cert_set, host.site_key, host.settings)
    assert report.hash == expected  # the validation report (and gate) use the new key too


def test_a_bad_key_file_keeps_the_old_key_serving_and_says_why(host, site, settings, notices):
    before = current_hash(site)
    settings.path("site_key_file").write_text("not a key\n")
    level, message = notices.get(timeout=5)
    assert level == "error" and "previous key keeps serving" in message
    assert "expected 44 for 32 bytes" in message
    assert current_hash(site) == before
    fixed = SiteKey.generate()  # once repaired, the file is followed again
    write_key_file(settings.site_key_file, fixed)
    assert until(lambda: current_hash(site) == lock_hash(fixed.hmac_key(), anchor_der(host)))


def test_the_same_key_rewritten_changes_nothing_and_says_nothing(host, site_key, settings):
    write_key_file(settings.site_key_file, site_key)
    assert host.reload_site_key() is None and host.site_key == site_key


def test_a_key_from_the_environment_is_not_followed_and_says_so(settings, site_key):
    value = SiteKey.generate()
    host = Host.from_settings(settings, env={"ENGAGE_SITE_KEY": value.base64()})
    try:
        assert any("ENGAGE_SITE_KEY" in n and "not followed" in n for n in host.notices)
        write_key_file(settings.site_key_file, SiteKey.generate())
        assert host.reload_site_key(force=True) is None and host.site_key == value
    finally:
        host.close()


def test_sitekey_generate_says_a_running_host_will_pick_the_new_key_up(host, site, capsys):
    before = current_hash(site)
    host.watch_active(interval=0.05)
    code = main(["sitekey", "generate", "--force", "--http-port", str(site.http_port),
                 "--tls-port", str(site.tls_port), "--bind", "127.0.0.1"])
    out = capsys.readouterr().out
    assert code == 0
    assert f"127.0.0.1:{site.http_port}" in out and "will pick the new key up" in out
    assert until(lambda: current_hash(site) != before, timeout=1.0)


def test_sitekey_generate_without_a_running_host_says_nothing_of_one(settings, capsys):
    assert main(["sitekey", "generate", "--http-port", "1", "--tls-port", "1",
                 "--bind", "127.0.0.1"]) == 0
    assert "running" not in capsys.readouterr().out
