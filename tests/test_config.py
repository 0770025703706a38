"""Settings layers and their error messages."""

from __future__ import annotations

import pytest

from server.config import load_settings
from server.errors import ConfigError


def test_layers_defaults_then_file_then_environment_then_flags(tmp_path):
    cfg = tmp_path / "engage.toml"
    cfg.write_text('http_port = 8080\ntls_port = 8443\nbind = "10.0.0.5"\n')
    s = load_settings(cfg, env={"ENGAGE_TLS_PORT": "9443", "ENGAGE_BIND": "10.0.0.6"},
                      flags={"bind": "127.0.0.1"})
    assert (s.http_port, s.tls_port, s.bind) == (8080, 9443, "127.0.0.1")
    assert s.hmac_key_form == "raw" and s.tls_min_version == "1.2"
    assert {"http_port", "tls_port", "bind"} <= s.explicit


def test_default_file_is_optional_but_a_named_one_must_exist(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_settings(env={}).http_port == 80
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml", env={})


def test_default_file_in_working_directory_is_read(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "engage-console.toml").write_text("http_port = 8081\n")
    assert load_settings(env={}).http_port == 8081


@pytest.mark.parametrize("toml, words", [
    ("htp_port = 1\n", "unknown setting 'htp_port'"),
    ('http_port = "eighty"\n', "expected int"),
    ("http_port = 70000\n", "allowed range is 0 to 65535"),
    ('tls_min_version = "1.5"\n', "allowed values are 1.0, 1.1, 1.2, 1.3"),
    ('hmac_key_form = "hex"\n', "allowed values are raw, ascii"),
    ("host_names = [1, 2]\n", "expected a list of strings"),
    ("http_port = [\n", "not valid TOML"),
])
def test_bad_file_values_name_the_file_key_and_what_is_allowed(tmp_path, toml, words):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, env={})
    assert words in str(err.value)
    assert "bad.toml" in str(err.value)


def test_bad_environment_value_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="ENGAGE_HTTP_PORT"):
        load_settings(env={"ENGAGE_HTTP_PORT": "x"})


def test_list_settings_accept_comma_separated_environment_values(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load_settings(env={"ENGAGE_HOST_NAMES": "engage.example, 10.44.68.128"})
    assert s.host_names == ["engage.example", "10.44.68.128"]


def test_old_tls_versions_are_allowed_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_settings(env={}).tls_version_warning is None
    assert "TLS 1.0" in load_settings(env={"ENGAGE_TLS_MIN_VERSION": "1.0"}).tls_version_warning
