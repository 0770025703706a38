"""West Connectivity's identities.csv: import (every row checked, nothing imported on a bad
row), pinning by the row's client certificate, and export back to the same format."""

from __future__ import annotations


import pytest

from console.__main__ import main
from server.devices.allowlist import ImportRejected
from server.devices.identities import fingerprint
from server.devices.store import Devices
from server.pki import cert_der, cert_pem

from .clientcerts import lock_ca, lock_cert

HEADER = "ID,TLS Client Certificate,Tags\n"
# West's example row, verbatim.
WEST_ROW = '00000001,,"[{""name"": ""group"", ""value"": ""g1""}]"\n'


@pytest.fixture
def devices(settings):
    d = Devices(settings.path("data_dir"), settings)
    d.index.rescan_seconds = 0
    return d


def data_files(devices) -> list[str]:
    return sorted(p.name for p in devices.root.glob("*")) if devices.root.exists() else []


def pem_cell(cn: str) -> tuple[str, object]:
    issued = lock_cert(lock_ca(), cn)
    return '"' + cert_pem(issued.cert).decode() + '"', issued


def rejected(devices, text: str) -> list[str]:
    with pytest.raises(ImportRejected) as caught:
        devices.parse_import(text, "identities.csv")
    assert data_files(devices) == []
    return caught.value.problems


def test_west_example_row_imports_with_its_tags(devices):
    rows = devices.parse_import(HEADER + WEST_ROW)
    assert devices.import_rows(rows) == (1, 0)
    record = devices.record("00000001")
    assert record["listed"] and record["tags"] == [{"name": "group", "value": "g1"}]
    assert "pinned_cert" not in record


def test_a_row_certificate_pins_the_lock_by_fingerprint(devices):
    cell, issued = pem_cell("00000002")
    devices.import_rows(devices.parse_import(f"{HEADER}00000002,{cell},\n"))
    pin = devices.record("00000002")["pinned_cert"]
    assert pin["fingerprint"] == fingerprint(cert_der(issued.cert))
    assert pin["subject"] == "CN=00000002"


def test_export_writes_identities_csv_that_imports_to_the_same_records(devices, settings):
    cell, _ = pem_cell("00000002")
    text = f'{HEADER}{WEST_ROW}00000002,{cell},"[{{""name"": ""a"", ""value"": ""x,y""}}]"\n'
    devices.import_rows(devices.parse_import(text))
    count, exported = devices.export_identities()
    assert count == 2 and exported == text
    again = Devices(settings.path("data_dir").parent / "other", settings)
    again.import_rows(again.parse_import(exported))
    for serial in ("00000001", "00000002"):
        assert {k: again.record(serial).get(k) for k in ("tags", "pinned_cert", "listed")} == \
            {k: devices.record(serial).get(k) for k in ("tags", "pinned_cert", "listed")}


def test_export_turns_simple_tags_into_name_value_objects(devices):
    devices.import_rows(devices.parse_import("serial,name,tags\n00A1,Front,lobby\n"))
    assert devices.export_identities() == (
        1, HEADER + '00A1,,"[{""name"": ""lobby"", ""value"": """"}]"\n')


def test_a_byte_order_mark_is_not_part_of_the_header(devices):
    rows = devices.parse_import("\ufeff" + HEADER + WEST_ROW)
    assert [(r.serial, r.tags) for r in rows] == [("00000001", [{"name": "group",
                                                                   "value": "g1"}])]


def test_crlf_line_endings_read_as_lf_ones(devices):
    cell, _ = pem_cell("00000002")
    text = (HEADER + WEST_ROW + f"00000002,{cell},\n").replace("\n", "\r\n")
    rows = devices.parse_import(text)
    assert [r.serial for r in rows] == ["00000001", "00000002"]
    assert rows[0].tags == [{"name": "group", "value": "g1"}] and rows[1].pin


def test_a_quoted_comma_inside_tags_stays_in_the_tags(devices):
    text = HEADER + '00000001,,"[{""name"": ""g"", ""value"": ""a,b""}, {""name"": ""h"", ' \
                    '""value"": """"}]"\n'
    [row] = devices.parse_import(text)
    assert row.tags == [{"name": "g", "value": "a,b"}, {"name": "h", "value": ""}]


@pytest.mark.parametrize("tags, why", [
    ('"[{""name"": ""g"""', "Tags is not JSON"),
    ('group', "Tags is not JSON"),
    ('"{""name"": ""g"", ""value"": ""1""}"', "not a JSON array"),
    ('"[""g1""]"', 'tag 1 is not an object of exactly "name" and "value"'),
    ('"[{""name"": ""g""}]"', 'tag 1 is not an object of exactly "name" and "value"'),
    ('"[{""name"": ""g"", ""value"": 1}]"', 'tag 1 is not an object of exactly'),
    ('"[{""name"": ""g"", ""value"": ""a\\nb""}]"', "control character"),
])
def test_bad_tags_are_refused_naming_the_line(devices, tags, why):
    problems = rejected(devices, f"{HEADER}{WEST_ROW}00000002,,{tags}\n")
    assert len(problems) == 1 and problems[0].startswith("line 3: ") and why in problems[0]


def test_every_bad_row_is_named_with_its_reason_and_nothing_is_imported(devices, settings):
    settings.identity_type, settings.identity_length = "decimal", 8
    other_cn, _ = pem_cell("00000009")
    text = (HEADER + WEST_ROW                      # 2: ok
            + "0000000A,,\n"                       # 3: not decimal
            + "000001,,\n"                         # 4: too short
            + WEST_ROW                             # 5: repeats line 2
            + f"00000004,{other_cn},\n"            # 6-...: CN is another lock's
            + '00000005,"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----",\n'
            + "00000006,,,extra\n")
    problems = rejected(devices, text)
    assert [p.split(":")[0] for p in problems] == \
        ["line 3", "line 4", "line 5", "line 6", f"line {7 + other_cn.count(chr(10))}",
         f"line {10 + other_cn.count(chr(10))}"]
    assert "is not decimal digits" in problems[0]
    assert "has 6 characters after the prefix, expected 8" in problems[1]
    assert "ID 00000001 repeats line 2" in problems[2]
    assert "the certificate's CN '00000009' is not the ID 00000004" in problems[3]
    assert "not a PEM certificate" in problems[4]
    assert "4 columns; expected ID, TLS Client Certificate, Tags" in problems[5]


def test_cli_import_and_export_round_trip(settings, tmp_path, capsys, monkeypatch):
    source = tmp_path / "identities.csv"
    source.write_bytes(("\ufeff" + HEADER + WEST_ROW).replace("\n", "\r\n").encode())
    assert main(["devices", "import", str(source)]) == 0
    assert "Imported 1 lock(s)" in capsys.readouterr().out
    assert main(["devices", "export", str(tmp_path / "out.csv")]) == 0
    assert "Exported 1 listed lock(s)" in capsys.readouterr().out
    assert (tmp_path / "out.csv").read_text() == HEADER + WEST_ROW
    assert main(["devices", "export"]) == 0
    assert capsys.readouterr().out == HEADER + WEST_ROW


def test_cli_import_of_a_bad_file_names_lines_and_writes_nothing(settings, tmp_path, capsys):
    source = tmp_path / "identities.csv"
    source.write_text(HEADER + WEST_ROW + "00000002,,not json\n")
    assert main(["devices", "import", str(source)]) == 2
    err = capsys.readouterr().err
    assert "1 bad row(s), nothing imported" in err and "line 3: Tags is not JSON" in err
    assert not settings.path("data_dir").exists() or \
        not list(settings.path("data_dir").glob("*.json"))
