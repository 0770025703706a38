"""The identity format in West Connectivity's terms (prefix, type, length) and the renamed
``serial_*`` settings that still configure it."""

from __future__ import annotations

import pytest

from server.config import load_settings
from server.devices.identity import check_identity
from server.devices.store import Devices
from server.errors import ConfigError


def fmt(tmp_path, **values):
    return load_settings(env={}, flags=values)


@pytest.mark.parametrize("kind, good, bad", [
    ("decimal", "00000001", "0000000A"),
    ("hex", "00A1B2C3", "00G1"),
    ("mac", "001422012345", "00142201234"),
    ("mac-colon", "00:14:22:01:23:45", "00-14-22-01-23-45"),
    ("mac-dash", "00-14-22-01-23-45", "00:14:22:01:23:45"),
    ("uuid4", "651B3B4D-5BF3-446D-9FD0-BACDC7BFBFFF", "651B3B4D-5BF3-146D-9FD0-BACDC7BFBFFF"),
    ("opaque", "ANY-THING_1", ""),
])
def test_each_identity_type_accepts_its_spelling_and_refuses_another(tmp_path, kind, good, bad):
    settings = fmt(tmp_path, identity_type=kind)
    assert check_identity(good, settings) is None
    assert kind in check_identity(bad, settings) or bad == ""


def test_length_does_not_count_the_prefix(tmp_path):
    settings = fmt(tmp_path, identity_prefix="lk-", identity_type="decimal", identity_length=4)
    assert check_identity("LK-0001", settings) is None
    assert "does not start with the prefix 'LK-'" in check_identity("0001", settings)
    assert "has 5 characters after the prefix, expected 4" in check_identity("LK-00001", settings)


def test_a_length_for_a_type_of_fixed_length_is_refused_at_start(tmp_path):
    settings = fmt(tmp_path, identity_type="uuid4", identity_length=36)
    with pytest.raises(ConfigError, match="identity_type uuid4 has a fixed length"):
        Devices(tmp_path, settings)


def test_old_serial_keys_in_a_config_file_configure_the_identity_format(tmp_path):
    cfg = tmp_path / "engage.toml"
    cfg.write_text('serial_prefix = "00"\nserial_digits = "decimal"\nserial_length = 6\n')
    s = load_settings(cfg, env={})
    assert (s.identity_prefix, s.identity_type, s.identity_length) == ("00", "decimal", 6)
    assert {"identity_prefix", "identity_type", "identity_length"} <= s.explicit


def test_old_serial_keys_in_the_environment_configure_the_identity_format(tmp_path):
    s = load_settings(env={"ENGAGE_SERIAL_DIGITS": "decimal", "ENGAGE_SERIAL_LENGTH": "8"})
    assert (s.identity_type, s.identity_length) == ("decimal", 8)
    s = load_settings(env={"ENGAGE_SERIAL_DIGITS": "decimal", "ENGAGE_IDENTITY_TYPE": "mac"})
    assert s.identity_type == "mac"  # the new name wins


def test_an_old_key_beside_its_new_name_is_refused_naming_the_new_one(tmp_path):
    cfg = tmp_path / "engage.toml"
    cfg.write_text('serial_prefix = "00"\nidentity_prefix = "11"\n')
    with pytest.raises(ConfigError, match="serial_prefix is the old name of identity_prefix; "
                                          "give only identity_prefix"):
        load_settings(cfg, env={})


def test_a_bad_value_under_an_old_key_names_the_new_key_and_its_values(tmp_path):
    cfg = tmp_path / "engage.toml"
    cfg.write_text('serial_digits = "base36"\n')
    with pytest.raises(ConfigError, match=r"serial_digits \(now called identity_type\): "
                                          r"identity_type = 'base36': allowed values are "
                                          r"decimal, hex, mac, mac-colon"):
        load_settings(cfg, env={})
