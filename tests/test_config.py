"""Settings layers and their error messages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from server.config import load_settings, setting_fields
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


@pytest.mark.parametrize("toml, words", [
    ("connection_timeout = nan\n", "connection_timeout = nan: expected a finite number"),
    ("connection_timeout = inf\n", "connection_timeout = inf: expected a finite number"),
    ("log_ring_size = 5\n", "log_ring_size = 5: must be at least 10"),
])
def test_non_finite_numbers_and_minimum_only_settings_are_refused_in_words(tmp_path, toml,
                                                                           words):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, env={})
    assert words in str(err.value) and "None" not in str(err.value)


def test_nan_from_the_environment_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="ENGAGE_CONNECTION_TIMEOUT"):
        load_settings(env={"ENGAGE_CONNECTION_TIMEOUT": "nan"})


def test_unknown_environment_variable_is_refused_naming_the_nearest_setting(tmp_path,
                                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as err:
        load_settings(env={"ENGAGE_HTTP_PROT": "8080"})
    assert "ENGAGE_HTTP_PROT" in str(err.value) and "ENGAGE_HTTP_PORT" in str(err.value)


def test_every_engage_variable_the_code_base_uses_is_accepted(tmp_path, monkeypatch):
    """Not settings, but read by the site-key loader, the CLI or the test scripts."""
    monkeypatch.chdir(tmp_path)
    root = Path(__file__).resolve().parents[1]
    files = [*root.glob("server/**/*.py"), *root.glob("console/**/*.py"),
             *root.glob("benchmarks/*.py"), root / "tests" / "tmux_console.sh"]
    names = {m for f in files for m in re.findall(r"ENGAGE_[A-Z0-9_]+", f.read_text())}
    assert {"ENGAGE_SITE_KEY", "ENGAGE_KEY_PASSPHRASE", "ENGAGE_P12_PASSWORD"} <= names
    settings = {"ENGAGE_" + f.name.upper() for f in setting_fields()}
    (tmp_path / "engage-console.toml").write_text("")
    load_settings(env={name: "engage-console.toml" if name == "ENGAGE_CONFIG" else "x"
                       for name in names - settings})
