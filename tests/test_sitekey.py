"""Site key: accepted forms, clear refusals, HMAC, and never shown."""

from __future__ import annotations

import base64
import hashlib
import hmac
import stat

import pytest

from server.errors import SiteKeyError
from server.sitekey import SiteKey, read_key_file, write_key_file

EXAMPLE_B64 = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="
EXAMPLE_RAW = bytes(range(1, 33))


def test_base64_and_hex_forms_give_the_same_32_bytes():
    assert SiteKey.parse(EXAMPLE_B64) == SiteKey.parse(EXAMPLE_RAW.hex())
    assert SiteKey.parse(EXAMPLE_RAW.hex().upper()).base64() == EXAMPLE_B64


def test_hash_is_base64_hmac_sha1_over_der_with_the_raw_key():
    der = b"\x30\x82\x01\x00" + bytes(100)
    expected = base64.b64encode(hmac.new(EXAMPLE_RAW, der, hashlib.sha1).digest()).decode()
    assert SiteKey.parse(EXAMPLE_B64).hash(der) == expected
    assert len(expected) == 28


def test_ascii_form_keys_the_hmac_with_the_base64_text():
    der = b"certificate"
    expected = base64.b64encode(hmac.new(EXAMPLE_B64.encode(), der, hashlib.sha1).digest())
    assert SiteKey.parse(EXAMPLE_B64, hmac_form="ascii").hash(der) == expected.decode()


@pytest.mark.parametrize("text, words", [
    ("", "empty"),
    ("AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e", "40 Base64 characters"),
    ("0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", "hex digits"),
    ("AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHy!=", "alphabet"),
    ("not a key at all, clearly", "neither"),
    ("a\nb", "one line"),
])
def test_bad_keys_are_refused_with_what_is_wrong(text, words):
    with pytest.raises(SiteKeyError) as err:
        SiteKey.parse(text)
    assert words in str(err.value)


def test_31_byte_base64_key_says_the_byte_count():
    short = base64.b64encode(bytes(31)).decode()  # 44 characters, 31 bytes
    assert len(short) == 44
    with pytest.raises(SiteKeyError, match="31 bytes, expected 32"):
        SiteKey.parse(short)


def test_repr_and_str_never_show_the_key():
    key = SiteKey.parse(EXAMPLE_B64)
    for text in (repr(key), str(key), f"{key}", repr([key])):
        assert EXAMPLE_B64 not in text and EXAMPLE_RAW.hex() not in text


def test_key_file_is_written_0600_and_read_back(tmp_path):
    path = tmp_path / "site.key"
    write_key_file(path, SiteKey.parse(EXAMPLE_B64))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_key_file(path) == SiteKey.parse(EXAMPLE_B64)


def test_missing_key_file_says_how_to_create_one(tmp_path):
    with pytest.raises(SiteKeyError, match="sitekey generate"):
        read_key_file(tmp_path / "absent.key")


def test_demo_key_file_is_labelled_and_recognised(tmp_path):
    path = tmp_path / "site.key"
    write_key_file(path, SiteKey.generate(), demo=True)
    assert "NOT registered with" in path.read_text()
    assert read_key_file(path).demo
