"""The validation report: each limit and each defect maps to exactly its finding."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools

import pytest
from cryptography import x509
from hypothesis import HealthCheck, example, given, settings as hsettings, strategies as st

from server import pki
from server.certcheck.report import ERROR, FINDING_IDS, INFO, WARNING
from server.certcheck.rules import check_set, gate
from server.config import load_settings
from server.errors import SiteKeyError
from server.sitekey import SiteKey

from . import chains
from .helpers import lock_hash

PROPERTY = hsettings(max_examples=25, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("sets")


@pytest.fixture(scope="module")
def key():
    return SiteKey.generate()


@pytest.fixture(scope="module")
def conf():
    return load_settings(env={}, flags={"host_names": list(chains.HOSTS)})


def problems(report) -> set[tuple[str, int | None]]:
    """Every error and warning as (id, depth); every id is a catalogued one."""
    assert report.ids() <= set(FINDING_IDS)
    return {(f.id, f.depth) for f in report.findings if f.severity != INFO}


def check(work, key, conf, chain, **write):
    return check_set(chains.write(work, chain, **write), key, conf)


# --- limits -----------------------------------------------------------------------------------

@PROPERTY
@given(size=st.one_of(st.sampled_from([4095, 4096, 4097]), st.integers(2800, 5200)))
@example(size=4095)
@example(size=4096)
@example(size=4097)
def test_chain_size_is_an_error_exactly_over_4096_der_bytes(work, key, conf, size):
    chain = chains.sized(size)
    report = check(work, key, conf, chain)
    assert report.chain_bytes == size == chain.der_bytes()
    finding = next(f for f in report.findings if f.id == "chain.size")
    assert f"{size:,} bytes" in finding.message
    assert f"{abs(size - 4096):,} {'over' if size > 4096 else 'under'}" in finding.message
    assert finding.severity == (ERROR if size > 4096 else INFO)
    assert problems(report) == ({("chain.size", None)} if size > 4096 else set())


@PROPERTY
@given(bits=st.tuples(*[st.sampled_from([2048, 3072, 4096])] * 3))
def test_every_rsa_key_over_2048_bits_is_an_error_at_its_depth(work, key, conf, bits):
    chain = chains.build(bits=bits)
    report = check(work, key, conf, chain)
    expected = {("key.size", depth) for depth, b in enumerate(bits) if b > 2048}
    if chain.der_bytes() > 4096:
        expected.add(("chain.size", None))
    assert problems(report) == expected
    assert report.largest_key_bits == max(bits)


@PROPERTY
@given(order=st.permutations(range(4)), with_root=st.booleans())
def test_every_wrong_presented_order_is_reported_and_never_fixed(work, key, conf, order,
                                                                 with_root):
    chain = chains.build(intermediates=2)
    shown = chain.certs if with_root else chain.certs[:-1]
    order = [i for i in order if i < len(shown)]
    chain.presented = [shown[i] for i in order]
    cert_set = chains.write(work, chain)
    report = check_set(cert_set, key, conf)
    in_order = order == sorted(order)
    assert problems(report) == (set() if in_order else {("chain.order", None)})
    assert list(cert_set.chain) == chain.presented  # the file is left as it was


def _mutate(chain: chains.Chain, name: str) -> None:
    if name == "flipped_signature":
        chain.certs[0] = chains.flip_signature(chain.certs[0])
    elif name == "wrong_key":
        chain.server_key = chains.key("stranger")
    elif name == "missing_intermediate":
        chain.presented = [chain.certs[0]]


SERVER_MUTATIONS = {  # build() keywords for the server certificate -> finding
    "ca_flag_on_leaf": ({"ca": True}, "cert.leaf_ca"),
    "missing_san": ({"hosts": None}, "host.no_san"),
    "expired": ({"days": (-40, -1)}, "cert.expired"),
    "not_yet_valid": ({"days": (1, 40)}, "cert.not_yet_valid"),
}
OTHER_MUTATIONS = {"flipped_signature": "chain.signature", "wrong_key": "key.mismatch",
                   "missing_intermediate": "chain.incomplete"}


@PROPERTY
@given(build_with=st.sampled_from([None] + list(SERVER_MUTATIONS)),
       others=st.sets(st.sampled_from(list(OTHER_MUTATIONS))))
def test_each_mutation_maps_to_exactly_its_finding(work, key, conf, build_with, others):
    if {"flipped_signature", "missing_intermediate"} <= others:
        others = others - {"flipped_signature"}  # no issuer left to check the signature with
    kwargs, expected_id = SERVER_MUTATIONS.get(build_with, ({}, None))
    chain = chains.build(**kwargs)
    for name in sorted(others):
        _mutate(chain, name)
    report = check(work, key, conf, chain)
    expected = {(OTHER_MUTATIONS[n], 0) for n in others}
    if expected_id:
        expected.add((expected_id, 0))
    assert problems(report) == expected
    assert report.verdict == ("ERROR" if expected else "OK")


# --- single findings --------------------------------------------------------------------------

def test_sound_chain_reports_only_hash_fingerprint_and_size(work, key, conf):
    chain = chains.build()
    report = check(work, key, conf, chain)
    assert report.verdict == "OK"
    assert report.ids() == {"hash", "anchor.fingerprint", "chain.size"}
    root = pki.cert_der(chain.root)
    assert report.hash == lock_hash(key._raw, root)
    assert report.anchor_sha256 == hashlib.sha256(root).hexdigest()
    assert report.hash in next(f.message for f in report.findings if f.id == "hash")
    assert [c.role for c in report.chain] == ["server", "intermediate", "anchor"]
    assert [c.depth for c in report.chain] == [0, 1, 2]
    assert report.days_to_expiry in (363, 364, 365)


def test_without_a_site_key_the_report_says_why_the_hash_is_unavailable(work, conf):
    reason = SiteKeyError("site key file site.key does not exist; create one with "
                          "`engage-console sitekey generate`")
    report = check(work, reason, conf, chains.build())
    assert report.hash is None and "hash" not in report.ids()
    finding = next(f for f in report.findings if f.id == "hash.unavailable")
    assert finding.severity == WARNING and str(reason) in finding.message
    assert report.verdict == "WARNING" and not report.errors


def test_anchor_at_an_intermediate_validates_to_it_with_a_warning_naming_the_root(work, key,
                                                                                 conf):
    chain = chains.build()
    chain.anchor, chain.presented = chain.certs[1], [chain.certs[0]]
    report = check(work, key, conf, chain)
    assert problems(report) == {("anchor.intermediate", 1)}
    assert [c.role for c in report.chain] == ["server", "anchor"]
    message = next(f.message for f in report.findings if f.id == "anchor.intermediate")
    assert message.startswith("the anchor is an intermediate CA (Inter 1, issued by CN=Root)")
    assert "the locks will trust it as their anchor" in message


def test_a_missing_intermediate_names_the_missing_issuer_and_its_key_identifier(work, key,
                                                                                 conf):
    chain = chains.build(intermediates=2)
    chain.presented = [chain.certs[0], chain.certs[1]]  # Inter 1 left out
    report = check(work, key, conf, chain)
    aki = chain.certs[1].extensions.get_extension_for_class(
        x509.AuthorityKeyIdentifier).value.key_identifier.hex(":").upper()
    message = next(f.message for f in report.errors if f.id == "chain.incomplete")
    assert f"CN=Inter 1 (key identifier {aki})" in message


def test_chain_from_another_root_is_untrusted(work, key, conf):
    chain = chains.build()
    other = chains.make_cert("Other Root", chains.key("other-root").public_key(), "Other Root",
                             chains.key("other-root"), ca=True, serial=7)
    chain.anchor, chain.presented = other, chain.certs
    assert problems(check(work, key, conf, chain)) == {("chain.untrusted", 2)}


def test_verifier_catches_what_our_checks_do_not(work, key, conf):
    report = check(work, key, conf, chains.build(aki=False))
    assert problems(report) == {("chain.untrusted", 0)}
    assert "2.5.29.35" in report.errors[0].message  # the missing authorityKeyIdentifier


def test_anchor_that_is_not_a_ca(work, key, conf):
    chain = chains.build()
    root_key, inter_key = chains.key("depth2"), chains.key("depth1")
    chain.certs[2] = chains.make_cert("Root", root_key.public_key(), "Root", root_key, ca=False,
                                      serial=102)
    chain.certs[1] = chains.make_cert("Inter 1", inter_key.public_key(), "Root", root_key,
                                      ca=True, serial=101)
    assert problems(check(work, key, conf, chain)) == {("anchor.not_ca", 2)}


def test_host_not_in_san_is_a_mismatch_naming_the_host(work, key):
    conf = load_settings(env={}, flags={"host_names": ["localhost", "10.9.9.9"]})
    report = check(work, key, conf, chains.build())
    assert problems(report) == {("host.mismatch", 0)}
    assert "10.9.9.9" in report.errors[0].message


def test_wildcard_san_covers_one_label(work, key):
    conf = load_settings(env={}, flags={"host_names": ["engage.site.example"]})
    ok = check(work, key, conf, chains.build(hosts=["*.site.example"]))
    assert ok.verdict == "OK", ok.findings
    deep = load_settings(env={}, flags={"host_names": ["a.engage.site.example"]})
    assert problems(check(work, key, deep, chains.build(hosts=["*.site.example"]))) == \
        {("host.mismatch", 0)}


def test_a_wildcard_only_certificate_is_still_path_validated(work, key):
    conf = load_settings(env={}, flags={})
    report = check(work, key, conf, chains.build(hosts=["*.site.example"], aki=False))
    assert problems(report) == {("chain.untrusted", 0)}
    assert "engage-check.site.example" in report.errors[0].message


def test_a_certificate_whose_names_the_verifier_refuses_says_it_was_not_validated(work, key):
    conf = load_settings(env={}, flags={})
    report = check(work, key, conf, chains.build(hosts=["my_host.local"]))
    assert problems(report) == {("chain.unchecked", 0)}
    assert report.verdict == "WARNING"
    assert "my_host.local" in next(f.message for f in report.findings if f.id == "chain.unchecked")


def test_without_host_names_the_names_are_not_compared(work, key):
    conf = load_settings(env={}, flags={})
    report = check(work, key, conf, chains.build(hosts=["elsewhere.example"]))
    assert report.verdict == "OK"
    assert "host.unchecked" in report.ids(INFO)


def test_expiring_within_30_days_is_a_warning(work, key, conf):
    report = check(work, key, conf, chains.build(days=(-1, 10)))
    assert problems(report) == {("cert.expiring", 0)}
    assert report.findings[0].severity == WARNING
    assert report.days_to_expiry in (9, 10)


def test_sha1_signature_is_a_warning(work, key, conf):
    chain = chains.build()
    chain.certs[0] = chains.sha1_signed(chain.certs[0], chains.key("depth1"))
    report = check(work, key, conf, chain)
    assert problems(report) == {("cert.sha1", 0)}
    assert report.verdict == "WARNING"


@pytest.mark.parametrize("depth", [0, 1])
def test_sha1_signature_does_not_hide_a_path_error(work, key, conf, depth):
    chain = chains.build(aki=False)  # the server certificate lacks authorityKeyIdentifier
    chain.certs[depth] = chains.sha1_signed(chain.certs[depth], chains.key(f"depth{depth + 1}"))
    report = check(work, key, conf, chain)
    assert problems(report) == {("cert.sha1", depth), ("chain.untrusted", 0)}
    assert "2.5.29.35" in report.errors[0].message


def test_non_rsa_key_is_a_warning(work, key, conf):
    report = check(work, key, conf, chains.build(bits=(0, 2048, 2048)))
    assert problems(report) == {("key.type", 0)}
    assert "EC secp256r1" in report.chain[0].key
    assert "has an EC secp256r1 key" in next(f for f in report.findings if f.id == "key.type").message


def test_certificate_off_the_path_is_an_extra(work, key, conf):
    chain = chains.build()
    stranger = chains.build(intermediates=2).certs[1]
    chain.presented = chain.certs[:-1] + [stranger]
    report = check(work, key, conf, chain)
    assert {i for i, _ in problems(report)} == {"chain.extra"}
    assert report.chain[-1].role == "extra"


@pytest.mark.parametrize("slot, owner", [("depth1", "Inter 1"), ("depth2", "Root")])
def test_a_key_of_a_ca_certificate_is_a_mismatch_with_the_server_certificate(work, key, conf,
                                                                             slot, owner):
    chain = chains.build()
    chain.server_key = chains.key(slot)
    report = check(work, key, conf, chain)
    assert problems(report) == {("key.mismatch", 0)}
    assert f"server certificate server (it is the key of {owner})" in report.errors[0].message


def test_a_repeated_certificate_counts_every_copy_and_is_reported(work, key, conf):
    chain = chains.build()
    once = chain.der_bytes()
    chain.presented = [chain.certs[0], chain.certs[1], chain.certs[1]]
    report = check(work, key, conf, chain)
    assert report.chain_bytes == once + len(pki.cert_der(chain.certs[1])) == chain.der_bytes()
    assert problems(report) == {("chain.duplicate", 1)}
    assert "2 times" in report.findings[0].message


def test_encrypted_unreadable_and_open_keys(work, key, conf):
    chain = chains.build()
    encrypted = chains.pem_key(chain.server_key, b"secret")
    assert problems(check(work, key, conf, chain, key_bytes=encrypted)) == {("key.encrypted", None)}
    assert problems(check(work, key, conf, chain, key_bytes=b"junk")) == {("key.unreadable", None)}
    assert problems(check(work, key, conf, chain, key_mode=0o644)) == {("key.permissions", None)}


def test_anchor_change_against_the_active_set_is_a_warning(work, key, conf):
    active = chains.write(work, chains.build())
    other = chains.build()
    other_root_key = chains.key("new-root")
    other.certs[2] = chains.make_cert("New Root", other_root_key.public_key(), "New Root",
                                      other_root_key, ca=True, serial=9)
    other.certs[1] = chains.make_cert("Inter 1", chains.key("depth1").public_key(), "New Root",
                                      other_root_key, ca=True, serial=8)
    changed = check_set(chains.write(work, other), key, conf, active=active)
    assert problems(changed) == {("anchor.changes", 2)}
    renewed = chains.build(days=(-1, 300))
    same = check_set(chains.write(work, renewed), key, conf, active=active)
    assert problems(same) == set() and "anchor.same" in same.ids(INFO)


def test_findings_are_sorted_errors_first_and_each_has_a_sentence(work, key, conf):
    chain = chains.build(days=(-1, 10))
    chain.server_key = chains.key("stranger")
    report = check(work, key, conf, chain)
    severities = [f.severity for f in report.findings]
    assert severities == sorted(severities, key=[ERROR, WARNING, INFO].index)
    for finding in report.findings:
        assert finding.id and len(finding.message) > 20
    data = report.to_dict()
    assert data["verdict"] == "ERROR" and data["findings"][0]["id"] == "key.mismatch"


def test_gate_lists_the_errors_that_block_activation(work, key, conf):
    chain = chains.build()
    chain.server_key = chains.key("stranger")
    errors = gate(key, conf)(chains.write(work, chain))
    assert len(errors) == 1 and errors[0].startswith("key.mismatch:")
    assert gate(key, conf)(chains.write(work, chains.build())) == []


def test_check_time_can_be_given(work, key, conf):
    cert_set = chains.write(work, chains.build())
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=400)
    assert "cert.expired" in check_set(cert_set, key, conf, now=later).ids(ERROR)


def test_demo_set_from_pki_is_clean(tmp_path, key, conf):
    from server.certstore import CertStore

    store = CertStore(tmp_path / "certs")
    pki.init_set(store, tmp_path / "ca", "demo", list(chains.HOSTS), demo=True)
    assert check_set(store.load("demo"), key, conf).verdict == "OK"


def test_permutations_cover_every_order_of_a_three_certificate_chain(work, key, conf):
    """Not sampled: all six orders of server, intermediate and root."""
    chain = chains.build()
    for order in itertools.permutations(range(3)):
        chain.presented = [chain.certs[i] for i in order]
        wrong = {("chain.order", None)} if list(order) != [0, 1, 2] else set()
        assert problems(check(work, key, conf, chain)) == wrong


def test_chain_file_holding_only_the_anchor_says_what_belongs_there(work, key, conf):
    chain = chains.build()
    chain.presented = [chain.root]
    report = check(work, key, conf, chain)
    assert "chain.incomplete" in report.ids(ERROR)
    assert "server certificate first" in next(f.message for f in report.findings
                                              if f.id == "chain.incomplete")
    assert [c.role for c in report.chain] == ["anchor"]


def test_a_san_name_the_verifier_refuses_does_not_block_validation(work, key):
    """A machine name with '_' (a first-run demo set) is skipped for the next SAN entry."""
    conf = load_settings(env={}, flags={})
    report = check(work, key, conf, chains.build(hosts=["my_host.local", "127.0.0.1"]))
    assert report.verdict == "OK", report.findings
