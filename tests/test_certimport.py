"""Importing what integrators have: every accepted form gives the same normalised set, and
every bad input is a clear error that writes nothing."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from cryptography import x509

from server import pki
from server.certcheck.report import WARNING
from server.certcheck.rules import check_set
from server.certcheck.x509util import spki
from server.certimport import PassphraseRequired, import_set
from server.certstore import CertStore
from server.config import load_settings
from server.errors import CertificateError
from server.sitekey import SiteKey

from . import chains


@pytest.fixture(scope="module")
def chain():
    return chains.build()


@pytest.fixture
def store(tmp_path):
    return CertStore(tmp_path / "certs")


@pytest.fixture
def files(tmp_path, chain):
    return chains.loose_files(tmp_path / "incoming", chain)


def assert_normalised(cert_set, chain, anchor=None, chain_certs=None, verdict="OK"):
    assert cert_set.anchor_der == pki.cert_der(anchor or chain.root)
    assert list(cert_set.chain) == (chain_certs or chain.certs[:2])
    key = serialization.load_pem_private_key(cert_set.key_path.read_bytes(), None)
    assert spki(key.public_key()) == spki(chain.server_key.public_key())
    assert os.stat(cert_set.key_path).st_mode & 0o777 == 0o600
    report = check_set(cert_set, SiteKey.generate(),
                       load_settings(env={}, flags={"host_names": list(chains.HOSTS)}))
    assert report.verdict == verdict, report.findings
    return report


def assert_nothing_written(store):
    assert not store.root.exists() or list(store.root.iterdir()) == []


# --- accepted forms ---------------------------------------------------------------------------

def test_engage_loose_files_become_a_set_with_the_ca_file_as_legacy_name(store, files, chain):
    cert_set = import_set(store, "site", sorted(files.iterdir()))
    assert_normalised(cert_set, chain)
    assert cert_set.meta["legacy_name"] == "partner_CA"
    assert "partner_CA" in cert_set.legacy_names
    assert cert_set.meta["source"] == "import"


def test_pem_bundle_in_any_order_with_the_key_inside(store, tmp_path, chain):
    server, inter, root = chain.certs
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(pki.cert_pem(root) + chains.pem_key(chain.server_key)
                       + pki.cert_pem(server) + pki.cert_pem(inter))
    assert_normalised(import_set(store, "bundle", [bundle]), chain)


def test_der_certificates_and_der_key(store, tmp_path, chain):
    paths = []
    for i, cert in enumerate(chain.certs):
        paths.append(tmp_path / f"c{i}.cer")
        paths[-1].write_bytes(pki.cert_der(cert))
    paths.append(tmp_path / "server.der")
    paths[-1].write_bytes(chain.server_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    assert_normalised(import_set(store, "der", paths), chain)


def test_pkcs12_with_password(store, tmp_path, chain):
    p12 = tmp_path / "partner.p12"
    p12.write_bytes(pkcs12.serialize_key_and_certificates(
        b"server", chain.server_key, chain.server, chain.certs[1:],
        serialization.BestAvailableEncryption(b"p12 pass")))
    assert_normalised(import_set(store, "p12", [p12], passphrase="p12 pass"), chain)


@pytest.mark.parametrize("traditional", [False, True], ids=["pkcs8", "openssl-traditional"])
def test_encrypted_pem_key_with_passphrase(store, files, chain, traditional):
    (files / "partner_server.key").write_bytes(
        chains.pem_key(chain.server_key, b"key pass", traditional=traditional))
    cert_set = import_set(store, "enc", sorted(files.iterdir()),
                          passphrase=["p12 pass", "key pass"])
    assert_normalised(cert_set, chain)
    assert b"ENCRYPTED" not in cert_set.key_path.read_bytes()


def test_explicit_anchor_at_the_intermediate(store, files, chain):
    cert_set = import_set(store, "inter", sorted(files.iterdir()),
                          anchor="partner_intermediate")
    report = assert_normalised(cert_set, chain, anchor=chain.certs[1],
                               chain_certs=chain.certs[:1], verdict="WARNING")
    assert report.ids(WARNING) == {"anchor.intermediate"}
    assert cert_set.meta["legacy_name"] == "partner_intermediate"
    assert cert_set.meta["dropped"] == ["CN=Root"]


def test_without_the_root_the_intermediate_is_the_anchor_and_the_report_says_so(store, files,
                                                                                chain):
    (files / "partner_CA.der").unlink()
    cert_set = import_set(store, "noroot", sorted(files.iterdir()))
    report = assert_normalised(cert_set, chain, anchor=chain.certs[1],
                               chain_certs=chain.certs[:1], verdict="WARNING")
    finding = next(f for f in report.findings if f.id == "anchor.intermediate")
    assert finding.severity == WARNING and finding.depth == 1
    assert "the anchor is an intermediate CA (Inter 1" in finding.message
    assert "add the root CN=Root (key identifier " in finding.message


def test_anchor_by_common_name_or_fingerprint(store, files, chain):
    import hashlib

    by_cn = import_set(store, "cn", sorted(files.iterdir()), anchor="Inter 1")
    assert by_cn.anchor_der == pki.cert_der(chain.certs[1])
    sha = hashlib.sha256(pki.cert_der(chain.root)).hexdigest()[:12]
    assert import_set(store, "fp", sorted(files.iterdir()), anchor=sha).anchor_der == \
        pki.cert_der(chain.root)


def test_unrelated_certificates_are_dropped_and_noted(store, files, chain):
    stranger = chains.make_cert("Stranger", chains.key("stranger").public_key(), "Stranger",
                                chains.key("stranger"), ca=True, serial=5)
    (files / "stranger.pem").write_bytes(pki.cert_pem(stranger))
    cert_set = import_set(store, "drop", sorted(files.iterdir()))
    assert_normalised(cert_set, chain)
    assert cert_set.meta["dropped"] == ["CN=Stranger"]


def test_imported_set_is_picked_up_by_a_running_store_listing(store, files):
    assert store.names() == []
    import_set(store, "live", sorted(files.iterdir()))
    assert store.names() == ["live"]


# --- bad input writes nothing ----------------------------------------------------------------

def _bad(store, paths, match, **kwargs):
    with pytest.raises(CertificateError, match=match):
        import_set(store, kwargs.pop("name", "bad"), paths, **kwargs)
    assert_nothing_written(store)


def test_a_text_file_is_not_a_certificate(store, files, tmp_path):
    (tmp_path / "notes.txt").write_text("hello, these are not certificates\n")
    _bad(store, [*files.iterdir(), tmp_path / "notes.txt"],
         "notes.txt is not a certificate, private key or PKCS#12 file")


def test_an_empty_file(store, tmp_path):
    (tmp_path / "empty.pem").write_bytes(b"")
    _bad(store, [tmp_path / "empty.pem"], "empty.pem is empty")


def test_a_missing_file(store, tmp_path):
    _bad(store, [tmp_path / "absent.der"], "absent.der does not exist")


def test_a_folder_instead_of_files(store, files):
    _bad(store, [files], "is a folder")


def test_a_damaged_pem_block(store, tmp_path, chain):
    text = pki.cert_pem(chain.server).replace(b"-----END CERTIFICATE-----", b"")
    (tmp_path / "cut.pem").write_bytes(text)
    _bad(store, [tmp_path / "cut.pem"], "damaged PEM block")


def test_a_truncated_block_among_complete_ones_is_not_dropped(store, tmp_path, chain):
    server, inter, root = chain.certs
    cut_root = pki.cert_pem(root).replace(b"-----END CERTIFICATE-----", b"")
    (tmp_path / "bundle.pem").write_bytes(pki.cert_pem(server) + pki.cert_pem(inter)
                                          + chains.pem_key(chain.server_key) + cut_root)
    _bad(store, [tmp_path / "bundle.pem"], "damaged PEM block .4 BEGIN and 3 END lines")


@pytest.mark.parametrize("junk, match", [
    (b"trailing words", "data after its last PEM block"),
    (b"\x00\xffgarbage", "data after its last PEM block"),
])
def test_data_after_the_last_block_is_refused(store, tmp_path, chain, junk, match):
    (tmp_path / "bundle.pem").write_bytes(b"".join(pki.cert_pem(c) for c in chain.certs)
                                          + chains.pem_key(chain.server_key) + junk)
    _bad(store, [tmp_path / "bundle.pem"], match)


def test_binary_data_before_a_block_is_refused(store, tmp_path, chain):
    """For example a DER anchor appended to a PEM file, which would otherwise be lost."""
    (tmp_path / "bundle.pem").write_bytes(pki.cert_pem(chain.server) + pki.cert_der(chain.root)
                                          + pki.cert_pem(chain.certs[1])
                                          + chains.pem_key(chain.server_key))
    _bad(store, [tmp_path / "bundle.pem"], "binary data outside its PEM blocks")


def test_explanatory_text_before_blocks_is_allowed(store, tmp_path, chain):
    """RFC 7468 permits text before a block, as openssl pkcs12 writes it."""
    bundle = b"".join(b"Bag Attributes\n    friendlyName: partner\nsubject=CN = x\n\n"
                      + pki.cert_pem(c) for c in chain.certs)
    (tmp_path / "bundle.pem").write_bytes(bundle + chains.pem_key(chain.server_key))
    assert_normalised(import_set(store, "openssl", [tmp_path / "bundle.pem"]), chain)


def test_damaged_certificate_inside_pem(store, tmp_path, chain):
    lines = pki.cert_pem(chain.server).splitlines()
    lines[3] = b"A" * len(lines[3])
    (tmp_path / "bent.pem").write_bytes(b"\n".join(lines) + b"\n")
    _bad(store, [tmp_path / "bent.pem"], "certificate 1 is damaged")


def test_a_certificate_request_is_neither(store, tmp_path, chain):
    (tmp_path / "req.pem").write_bytes(b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
                                       b"-----END CERTIFICATE REQUEST-----\n")
    _bad(store, [tmp_path / "req.pem"], "CERTIFICATE REQUEST, which is neither")


def test_wrong_pkcs12_password(store, tmp_path, chain):
    p12 = tmp_path / "partner.pfx"
    p12.write_bytes(pkcs12.serialize_key_and_certificates(
        b"server", chain.server_key, chain.server, chain.certs[1:],
        serialization.BestAvailableEncryption(b"right")))
    _bad(store, [p12], "wrong passphrase for partner.pfx", passphrase="wrong")
    with pytest.raises(PassphraseRequired) as info:
        import_set(store, "bad", [p12])
    assert info.value.path == p12
    assert_nothing_written(store)


def test_wrong_key_passphrase_and_missing_passphrase(store, files, chain):
    (files / "partner_server.key").write_bytes(chains.pem_key(chain.server_key, b"right"))
    _bad(store, sorted(files.iterdir()), "wrong passphrase for partner_server.key",
         passphrase="wrong")
    with pytest.raises(PassphraseRequired, match="partner_server.key is encrypted"):
        import_set(store, "bad", sorted(files.iterdir()))
    assert_nothing_written(store)


def test_key_not_matching_any_certificate(store, files):
    (files / "partner_server.key").write_bytes(chains.pem_key(chains.key("stranger")))
    _bad(store, sorted(files.iterdir()), "matches none of the certificates")


@pytest.mark.parametrize("slot, owner", [("depth1", "Inter 1"), ("depth2", "Root")])
def test_a_key_of_a_ca_certificate_is_refused_naming_it(store, files, slot, owner):
    (files / "partner_server.key").write_bytes(chains.pem_key(chains.key(slot)))
    _bad(store, sorted(files.iterdir()), f"partner_server.key belongs to {owner}, a CA "
         "certificate.*add the server certificate's key")


def test_a_ca_key_next_to_the_server_key_is_passed_over(store, files, chain):
    (files / "intermediate.key").write_bytes(chains.pem_key(chains.key("depth1")))
    assert_normalised(import_set(store, "site", sorted(files.iterdir())), chain)


def test_no_key_at_all(store, files):
    (files / "partner_server.key").unlink()
    _bad(store, sorted(files.iterdir()), "no private key among the files")


def test_no_certificate_at_all(store, files):
    _bad(store, [files / "partner_server.key"], "no certificate among the files")


def test_no_ca_above_the_server_certificate(store, files):
    _bad(store, [files / "partner_server.pem", files / "partner_server.key"],
         "no CA certificate among the files issued server")


def test_a_missing_intermediate_is_named_not_the_root_that_was_given(store, files, chain):
    (files / "partner_intermediate.der").unlink()
    with pytest.raises(CertificateError) as info:
        import_set(store, "nointer", sorted(files.iterdir()))
    message = str(info.value)
    aki = chain.server.extensions.get_extension_for_class(
        x509.AuthorityKeyIdentifier).value.key_identifier.hex(":").upper()
    assert f"its issuer CN=Inter 1 (key identifier {aki}) is missing" in message
    assert "Root (partner_CA.der)" in message and "add partner_CA" not in message
    assert_nothing_written(store)


def test_an_anchor_choice_that_is_not_above_the_server(store, files):
    _bad(store, sorted(files.iterdir()), "anchor 'partner_server' is none of the CA",
         anchor="partner_server")


def test_keys_for_two_server_certificates(store, files):
    other_key = chains.key("second-server")
    second = chains.make_cert("second", other_key.public_key(), "Inter 1", chains.key("depth1"),
                              ca=False, serial=300, leaf_usage=True)
    (files / "other.pem").write_bytes(pki.cert_pem(second) + chains.pem_key(other_key))
    _bad(store, sorted(files.iterdir()), "keys for several certificates")


def test_existing_set_name_and_bad_set_name(store, files):
    import_set(store, "taken", sorted(files.iterdir()))
    with pytest.raises(CertificateError, match="set taken already exists"):
        import_set(store, "taken", sorted(files.iterdir()))
    with pytest.raises(CertificateError, match="is not allowed"):
        import_set(store, "../escape", sorted(files.iterdir()))
    assert store.names() == ["taken"]


def test_no_files(store):
    _bad(store, [], "no files to import")


def test_a_failure_while_writing_leaves_no_folder(store, files, monkeypatch):
    from server import certstore

    def broken(path, data, mode=0o644):
        if str(path).endswith("server.key"):
            raise OSError(28, "No space left on device")
        return real(path, data, mode)

    real = certstore.write_atomic
    monkeypatch.setattr(certstore, "write_atomic", broken)
    with pytest.raises(OSError):
        import_set(store, "full", sorted(files.iterdir()))
    assert_nothing_written(store)
