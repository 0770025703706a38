"""Batch issuance of lock client certificates (Sectigo IoT Manager's forms), on the command
line: the client CA, CSR uploads and the NUMERIC generator, list/show/download, --list-devices."""

from __future__ import annotations

import json
import os
import stat
import zipfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from console.__main__ import main
from server.devices.store import Devices
from server.pki import new_key

from .clientcerts import lock_ca


def run(capsys, *argv) -> tuple[int, object]:
    code = main(list(argv) + ["--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else None


def csr_pem(cn: str, key=None) -> str:
    key = key or ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def tampered(pem: str) -> str:
    der = bytearray(x509.load_pem_x509_csr(pem.encode()).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # the last byte of the signature
    return x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture
def ca(settings, capsys):
    assert run(capsys, "certs", "client-ca", "init")[0] == 0
    return Path("ca/client")


def batch_dir() -> Path:
    return Path("certs/.batches")


def test_client_ca_init_keeps_its_key_apart_with_mode_0600_and_refuses_a_second(ca, capsys):
    assert stat.S_IMODE(os.stat(ca / "ca.key").st_mode) == 0o600
    assert x509.load_pem_x509_certificate((ca / "ca.pem").read_bytes())
    code, out = run(capsys, "certs", "client-ca", "init")
    assert code == 2 and "already holds a client CA" in out["error"]


def test_numeric_generator_batch_lists_shows_and_downloads(ca, capsys):
    code, made = run(capsys, "certs", "batch", "create", "--generator", "numeric",
                     "--start-value", "1000", "--increment", "5", "--size", "3")
    assert code == 0 and (made["id"], made["size"], made["status"]) == (1, 3, "Ready for Download")
    assert made["generator"] == {"type": "NUMERIC", "startValue": "1000", "increment": "5"}
    assert stat.S_IMODE(os.stat(batch_dir() / "1.json").st_mode) == 0o600
    assert run(capsys, "certs", "batch", "list")[1] == [made]
    code, shown = run(capsys, "certs", "batch", "show", "1")
    assert [i["cn"] for i in shown["identities"]] == ["1000", "1005", "1010"]
    assert "PRIVATE KEY" not in json.dumps(shown)
    code, down = run(capsys, "certs", "batch", "download", "1", "--out", "b1.zip")
    assert code == 0 and stat.S_IMODE(os.stat("b1.zip").st_mode) == 0o600
    with zipfile.ZipFile("b1.zip") as zf:
        modes = {i.filename: stat.S_IMODE(i.external_attr >> 16) for i in zf.infolist()}
        ca_cert = x509.load_pem_x509_certificate(zf.read("batch-1/client-ca.pem"))
        leaf = x509.load_pem_x509_certificate(zf.read("batch-1/certs/1005.pem"))
        key = serialization.load_pem_private_key(zf.read("batch-1/keys/1005.key"), None)
    assert modes["batch-1/keys/1000.key"] == 0o600 and modes["batch-1/certs/1000.pem"] == 0o644
    assert len(modes) == 7 and isinstance(key.curve, ec.SECP256R1)
    leaf.verify_directly_issued_by(ca_cert)
    assert leaf.public_key() == key.public_key()


def test_rsa2048_profile_makes_rsa_keys(ca, capsys):
    code, made = run(capsys, "certs", "batch", "create", "--generator", "numeric",
                     "--start-value", "0", "--size", "1", "--profile", "rsa2048")
    record = json.loads((batch_dir() / "1.json").read_text())
    key = serialization.load_pem_private_key(record["items"][0]["key"].encode(), None)
    assert code == 0 and made["profile"] == "rsa2048" and key.key_size == 2048


@pytest.mark.parametrize("start, increment, size, why", [
    ("01", "1", 1, "fails ^(0|[1-9][0-9]{0,63})$"),
    ("-1", "1", 1, "fails ^(0|[1-9][0-9]{0,63})$"),
    ("1" * 65, "1", 1, "fails ^(0|[1-9][0-9]{0,63})$"),
    ("1", "0", 1, "fails ^[1-9][0-9]*$"),
    ("1", "01", 1, "fails ^[1-9][0-9]*$"),
    ("1", "1", 0, "batch size 0: allowed 1 to 5 (max_batch_size)"),
    ("1", "1", 6, "batch size 6: allowed 1 to 5 (max_batch_size)"),
])
def test_generator_values_failing_sectigos_validators_make_no_batch(ca, capsys, monkeypatch,
                                                                    start, increment, size, why):
    monkeypatch.setenv("ENGAGE_MAX_BATCH_SIZE", "5")
    code, out = run(capsys, "certs", "batch", "create", "--generator", "numeric",
                    "--start-value", start, "--increment", increment, "--size", str(size))
    assert code == 2 and why in out["error"] and not batch_dir().exists()


def test_a_csr_upload_makes_a_batch_without_keys(ca, capsys, tmp_path):
    (tmp_path / "csrs.pem").write_text(",".join(csr_pem(cn) for cn in ("00A1", "00A2")))
    code, made = run(capsys, "certs", "batch", "create", "--csr-file", str(tmp_path / "csrs.pem"))
    assert code == 0 and (made["size"], made["profile"], made["source"]) == (2, "csr", "csr")
    run(capsys, "certs", "batch", "download", "1", "--out", "b.zip")
    with zipfile.ZipFile("b.zip") as zf:
        assert sorted(zf.namelist()) == ["batch-1/certs/00A1.pem", "batch-1/certs/00A2.pem",
                                         "batch-1/client-ca.pem"]


def test_bad_csrs_are_each_named_and_no_batch_is_made(ca, capsys, tmp_path):
    good = csr_pem("00A1")
    corrupt = good.replace(good.splitlines()[2], "A" * 64)
    parts = [good, corrupt, tampered(csr_pem("00A3")), csr_pem("00A4", new_key(4096)),
             csr_pem("00G5"), csr_pem("00A1")]
    (tmp_path / "csrs.pem").write_text(",".join(parts))
    code, out = run(capsys, "certs", "batch", "create", "--csr-file", str(tmp_path / "csrs.pem"))
    assert code == 2 and not batch_dir().exists()
    assert "5 bad CSR(s) of 6; no batch made" in out["error"]
    assert [p.split(":")[0] for p in out["problems"]] == ["CSR 2", "CSR 3", "CSR 4", "CSR 5",
                                                          "CSR 6"]
    assert "not a PEM certificate request" in out["problems"][0]
    assert "signature does not verify" in out["problems"][1]
    assert "RSA key of 4096 bits" in out["problems"][2]
    assert "is not hex digits" in out["problems"][3]
    assert "CN 00A1 repeats CSR 1" in out["problems"][4]


def test_a_csr_file_with_crlf_line_endings_is_refused(ca, capsys, tmp_path):
    (tmp_path / "csrs.pem").write_bytes(csr_pem("00A1").replace("\n", "\r\n").encode())
    code, out = run(capsys, "certs", "batch", "create", "--csr-file", str(tmp_path / "csrs.pem"))
    assert code == 2 and "Unix line endings" in out["error"] and not batch_dir().exists()


def test_without_a_client_ca_no_batch_is_made(settings, capsys):
    code, out = run(capsys, "certs", "batch", "create", "--generator", "numeric",
                    "--start-value", "1", "--size", "1")
    assert code == 2 and "certs client-ca init" in out["error"] and not batch_dir().exists()


def test_list_devices_lists_the_identities_pinned_to_their_certificates(ca, capsys, settings):
    code, made = run(capsys, "certs", "batch", "create", "--generator", "numeric",
                     "--start-value", "7", "--size", "2", "--list-devices")
    assert code == 0 and made["listed"]
    record = json.loads((batch_dir() / "1.json").read_text())
    devices = Devices(settings.path("data_dir"), settings)
    for item in record["items"]:
        lock = devices.record(item["cn"])
        assert lock["listed"] and lock["pinned_cert"]["fingerprint"] == item["fingerprint"]


def test_two_batches_made_at_once_never_share_an_id(ca, capsys, monkeypatch):
    """A second process that listed the folder before the first wrote its batch computes the
    same next id: the second must take the next free one and leave the first intact."""
    from server import batches

    first = run(capsys, "certs", "batch", "create", "--generator", "numeric", "--start-value",
                "1", "--increment", "1", "--size", "1")[1]
    monkeypatch.setattr(batches, "_records", lambda folder: [])  # the stale view of a racer
    second = run(capsys, "certs", "batch", "create", "--generator", "numeric", "--start-value",
                 "7", "--increment", "1", "--size", "1")[1]
    assert (first["id"], second["id"]) == (1, 2)
    on_disk = {p.name: json.loads(p.read_text())["items"][0]["cn"]
               for p in batch_dir().glob("*.json")}
    assert on_disk == {"1.json": "1", "2.json": "7"}
    assert not list(batch_dir().glob(".new-*"))
