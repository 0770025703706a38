"""``engage-console certs ...`` run in-process: output, --json and exit codes (0 ok, 1 the set
has errors, 2 usage or input error)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import threading

import pytest

from console.__main__ import main
from server import pki
from server.certstore import CertStore
from server.sitekey import read_key_file

from . import chains
from .helpers import lock_hash



@pytest.fixture(autouse=True)
def _pooled_keys(monkeypatch):
    chains.reuse_keys(monkeypatch)

@pytest.fixture
def cli(settings, site_key, monkeypatch, capsys):
    """Run the command line against the test site; returns (exit code, stdout, stderr)."""
    monkeypatch.setenv("ENGAGE_CA_DIR", str(settings.ca_dir))
    monkeypatch.setenv("ENGAGE_HOST_NAMES", ",".join(settings.host_names))
    for name in ("ENGAGE_KEY_PASSPHRASE", "ENGAGE_P12_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)

    def run(*argv):
        capsys.readouterr()
        code = main(["certs", *argv, "--certs-dir", settings.certs_dir,
                     "--site-key-file", settings.site_key_file])
        out, err = capsys.readouterr()
        return code, out, err
    return run


@pytest.fixture
def store(settings):
    return CertStore(settings.path("certs_dir"))


@pytest.fixture
def two_sets(cli):
    assert cli("init", "alpha")[0] == 0
    assert cli("init", "beta")[0] == 0
    assert cli("activate", "alpha")[0] == 0


@pytest.fixture
def loose_files(tmp_path):
    chain = chains.build()
    return chains.loose_files(tmp_path / "incoming", chain), chain


def _mismatched(store, name="broken"):
    chain = chains.build()
    chain.server_key = chains.key("stranger")
    chains.write(store.root, chain, name=name)


# --- list / show / check ----------------------------------------------------------------------

def test_list_marks_the_active_set_and_reports_json(cli, two_sets):
    code, out, _ = cli("list")
    assert code == 0
    assert any(line.startswith("*") and "alpha" in line for line in out.splitlines())
    code, out, _ = cli("list", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["alpha"]["active"] and not rows["beta"]["active"]
    assert rows["alpha"]["verdict"] == "OK" and rows["beta"]["verdict"] == "WARNING"  # anchor


def test_list_shows_hand_dropped_sets_and_exits_1_for_an_unreadable_one(cli, two_sets, store):
    chains.write(store.root, chains.build(), name="handmade")
    (store.root / "half").mkdir()
    (store.root / "half" / "anchor.der").write_bytes(b"nothing")
    code, out, _ = cli("list", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 1
    assert rows["handmade"]["verdict"] in ("OK", "WARNING")
    assert rows["half"]["verdict"] == "UNREADABLE" and "missing chain.pem" in rows["half"]["error"]


def test_check_exit_codes_follow_errors(cli, two_sets, store):
    assert cli("check", "alpha")[0] == 0
    _mismatched(store)
    code, out, _ = cli("check", "broken")
    assert code == 1 and "ERROR    key.mismatch [depth 0: CN=server]" in out
    code, out, _ = cli("check", "--json")
    reports = {r["set_name"]: r for r in json.loads(out)}
    assert code == 1 and set(reports) == {"alpha", "beta", "broken"}
    assert reports["broken"]["verdict"] == "ERROR"
    code, _, err = cli("check", "nosuchset")
    assert code == 2 and "no certificate set named 'nosuchset'" in err


def test_check_json_for_one_set_is_the_report(cli, two_sets, site_key, store):
    code, out, _ = cli("check", "alpha", "--json")
    report = json.loads(out)
    assert report["hash"] == lock_hash(site_key._raw, store.load("alpha").anchor_der)
    assert {f["id"] for f in report["findings"]} >= {"hash", "anchor.fingerprint", "chain.size"}


def test_show_prints_chain_details_and_json(cli, two_sets):
    code, out, _ = cli("show", "alpha")
    assert code == 0 and "Chain (server first):" in out and "0 server" in out
    code, out, _ = cli("show", "alpha", "--json")
    data = json.loads(out)
    assert data["active"] is True and data["meta"]["source"] == "certs init"
    assert [c["role"] for c in data["chain"]] == ["server", "intermediate", "anchor"]


def test_without_a_site_key_list_show_and_check_report_the_hash_unavailable(cli, two_sets,
                                                                             settings):
    settings.path("site_key_file").unlink()
    code, out, _ = cli("list")
    assert code == 0 and "alpha" in out and "beta" in out
    assert "Hashes unavailable: site key file" in out and "sitekey generate" in out
    code, out, _ = cli("list", "--json")
    assert code == 0 and [r["hash"] for r in json.loads(out)] == [None, None]
    code, out, _ = cli("show", "alpha")
    assert code == 0 and "Chain (server first):" in out
    assert "WARNING  hash.unavailable" in out and "sitekey generate" in out
    code, out, _ = cli("check", "alpha", "--json")
    report = json.loads(out)
    assert code == 0 and report["hash"] is None and report["verdict"] == "WARNING"
    assert "hash.unavailable" in {f["id"] for f in report["findings"]}


def test_without_a_site_key_import_and_renew_still_work(cli, two_sets, loose_files, store,
                                                        settings):
    settings.path("site_key_file").unlink()
    folder, _ = loose_files
    code, out, _ = cli("import", "partner", *map(str, folder.iterdir()))
    assert code == 0 and "Imported set partner" in out and "hash.unavailable" in out
    code, out, _ = cli("renew", "alpha", "--json")
    assert code == 0 and json.loads(out)["report"]["hash"] is None
    assert set(store.names()) >= {"partner", json.loads(out)["set"]}


def test_without_a_site_key_activation_and_hash_refuse_saying_how_to_create_it(cli, two_sets,
                                                                                store, settings):
    assert cli("activate", "beta")[0] == 0
    settings.path("site_key_file").unlink()
    for argv in (("activate", "alpha"), ("rollback",), ("hash", str(store.root / "beta" /
                                                                    "anchor.der"))):
        code, out, err = cli(*argv)
        assert code == 2 and "sitekey generate" in err, argv
    assert store.active_name() == "beta"


# --- import -----------------------------------------------------------------------------------

def test_import_loose_files(cli, loose_files, store):
    folder, chain = loose_files
    code, out, _ = cli("import", "partner", *sorted(map(str, folder.iterdir())))
    assert code == 0, out
    assert "Imported set partner" in out and "from partner_CA" in out
    assert store.load("partner").anchor_der == pki.cert_der(chain.root)


def test_import_of_a_bad_file_exits_2_and_writes_nothing(cli, loose_files, store, tmp_path):
    folder, _ = loose_files
    (tmp_path / "readme.txt").write_text("not a certificate")
    code, _, err = cli("import", "partner", *map(str, folder.iterdir()),
                       str(tmp_path / "readme.txt"))
    assert code == 2 and "readme.txt is not a certificate" in err
    assert store.names() == []


def _oversized_bundle(tmp_path):
    chain = chains.sized(4300)
    bundle = tmp_path / "big.pem"
    bundle.write_bytes(b"".join(pki.cert_pem(c) for c in chain.certs)
                       + chains.pem_key(chain.server_key))
    return bundle


def test_import_of_a_set_with_errors_says_them_and_writes_nothing(cli, store, tmp_path):
    bundle = _oversized_bundle(tmp_path)
    code, out, _ = cli("import", "big", str(bundle))
    assert code == 1 and "ERROR    chain.size" in out and "Not imported" in out
    code, out, _ = cli("import", "big", str(bundle), "--json")
    data = json.loads(out)
    assert code == 1 and data["imported"] is False and data["report"]["verdict"] == "ERROR"
    assert store.names() == [] and [p.name for p in store.root.iterdir()] == []


def test_import_of_a_set_with_errors_is_written_with_force(cli, store, tmp_path):
    code, out, _ = cli("import", "big", str(_oversized_bundle(tmp_path)), "--force", "--json")
    data = json.loads(out)
    assert code == 1 and data["imported"] is True and data["report"]["verdict"] == "ERROR"
    assert store.names() == ["big"] and store.load("big").chain


def test_import_encrypted_key_passphrase_from_the_environment(cli, loose_files, monkeypatch,
                                                              store):
    folder, chain = loose_files
    (folder / "partner_server.key").write_bytes(chains.pem_key(chain.server_key, b"s3cret"))
    code, _, err = cli("import", "enc", *map(str, folder.iterdir()))
    assert code == 2 and "ENGAGE_KEY_PASSPHRASE" in err and store.names() == []
    monkeypatch.setenv("ENGAGE_KEY_PASSPHRASE", "wrong")
    code, _, err = cli("import", "enc", *map(str, folder.iterdir()))
    assert code == 2 and "wrong passphrase for partner_server.key" in err
    monkeypatch.setenv("ENGAGE_P12_PASSWORD", "s3cret")
    assert cli("import", "enc", *map(str, folder.iterdir()))[0] == 0


def test_import_asks_for_the_passphrase_on_a_terminal(cli, loose_files, monkeypatch):
    folder, chain = loose_files
    (folder / "partner_server.key").write_bytes(chains.pem_key(chain.server_key, b"s3cret"))
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    asked = []
    monkeypatch.setattr("getpass.getpass", lambda prompt: asked.append(prompt) or "s3cret")
    assert cli("import", "enc", *map(str, folder.iterdir()))[0] == 0
    assert asked == ["Passphrase for partner_server.key: "]


# --- activate / rollback ----------------------------------------------------------------------

def test_activate_switches_and_reports_the_anchor_change(cli, two_sets, store):
    code, out, _ = cli("activate", "beta", "--json")
    data = json.loads(out)
    assert code == 0 and data["set"] == "beta" and data["previous"] == "alpha"
    assert data["anchor_changed"] is True and data["forced"] is False
    assert store.active_name() == "beta"
    assert store.history()[-1]["by"].endswith("(command line)")


def test_activate_refuses_a_set_with_errors(cli, two_sets, store):
    _mismatched(store)
    code, out, _ = cli("activate", "broken")
    assert code == 1 and "Not activated" in out and store.active_name() == "alpha"


def test_forced_activation_needs_confirmation(cli, two_sets, store, monkeypatch):
    chains.write(store.root, chains.sized(4200), name="oversize")
    code, _, err = cli("activate", "oversize", "--force")
    assert code == 2 and "not confirmed" in err and store.active_name() == "alpha"
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: "no")
    assert cli("activate", "oversize", "--force")[0] == 2
    assert store.active_name() == "alpha"
    monkeypatch.setattr("builtins.input", lambda prompt: "yes")
    assert cli("activate", "oversize", "--force")[0] == 0
    assert store.active_name() == "oversize" and store.history()[-1]["forced"] is True


def test_forced_activation_with_yes_for_scripts(cli, two_sets, store):
    chains.write(store.root, chains.sized(4200), name="oversize")
    code, out, _ = cli("activate", "oversize", "--force", "--yes", "--json")
    assert code == 0 and json.loads(out)["forced"] is True


def test_forced_activation_of_an_unusable_key_still_fails_and_changes_nothing(cli, two_sets,
                                                                                store):
    _mismatched(store)
    code, _, err = cli("activate", "broken", "--force", "--yes")
    assert code == 2 and "does not match" in err and store.active_name() == "alpha"


@pytest.mark.parametrize("times", [1, 2], ids=["once", "twice in a row"])
def test_rollback_and_nothing_to_roll_back_never_the_active_set(cli, two_sets, store, times):
    for _ in range(times):
        assert cli("activate", "beta")[0] == 0
    assert store.rollback_target() == "alpha"
    code, out, _ = cli("rollback")
    assert code == 0 and "Active set: alpha (was beta)" in out
    code, _, err = cli("rollback")
    assert code == 2 and "nothing to roll back to" in err


def test_rollback_to_a_set_with_errors_needs_force_like_activate(cli, two_sets, store):
    chains.write(store.root, chains.sized(4200), name="oversize")
    assert cli("activate", "oversize", "--force", "--yes")[0] == 0
    assert cli("activate", "beta")[0] == 0
    history = store.history()
    code, out, _ = cli("rollback")
    assert code == 1 and "chain.size" in out and "Not activated: set oversize" in out
    code, out, _ = cli("rollback", "--json")
    assert code == 1 and json.loads(out)["activated"] is False
    code, _, err = cli("rollback", "--force")
    assert code == 2 and "not confirmed" in err
    assert store.active_name() == "beta" and store.history() == history
    code, out, _ = cli("rollback", "--force", "--yes", "--json")
    assert code == 0 and json.loads(out)["forced"] is True
    last = store.history()[-1]
    assert (last["action"], last["set"], last["forced"]) == ("rollback", "oversize", True)


def test_a_forced_activation_stays_flagged_in_list_show_and_check(cli, two_sets, store):
    chains.write(store.root, chains.sized(4200), name="oversize")
    assert cli("activate", "oversize", "--force", "--yes")[0] == 0
    when = store.history()[-1]["time"][:16].replace("T", " ")
    label = f"active with errors (forced on {when} UTC by {store.history()[-1]['by']})"
    code, out, _ = cli("list")
    assert code == 0 and f"* oversize: {label}" in out
    rows = {r["name"]: r for r in json.loads(cli("list", "--json")[1])}
    assert rows["oversize"]["forced"]["label"] == label and rows["alpha"]["forced"] is None
    assert cli("show", "oversize")[1].startswith(f"Set oversize ({label}): ERROR")
    assert json.loads(cli("show", "oversize", "--json")[1])["forced"]["label"] == label
    assert f"Set oversize ({label}): ERROR" in cli("check")[1]
    assert cli("activate", "beta")[0] == 0
    assert store.forced_activation() is None
    assert cli("show", "beta")[1].startswith("Set beta (active): ")


def test_a_forced_flag_missing_from_an_older_active_json_comes_from_history(cli, two_sets,
                                                                             store):
    chains.write(store.root, chains.sized(4200), name="oversize")
    assert cli("activate", "oversize", "--force", "--yes")[0] == 0
    record = json.loads(store.active_file.read_text())
    del record["forced"]
    store.active_file.write_text(json.dumps(record))
    forced = store.forced_activation()
    assert (forced.set, forced.time, forced.by) == ("oversize", record["activated_at"],
                                                    record["by"])


def test_rollback_after_a_rollback_goes_further_back_never_to_the_active_set(cli, two_sets,
                                                                              store):
    for name in ("beta", "alpha", "beta"):
        assert cli("activate", name)[0] == 0
    assert cli("rollback")[0] == 0 and store.active_name() == "alpha"
    assert store.rollback_target() == "beta"  # alpha, beta, alpha: the one before is beta


# --- delete -----------------------------------------------------------------------------------

def test_delete_removes_a_set_and_keeps_its_ca_keys(cli, two_sets, store, settings):
    assert cli("init", "gamma")[0] == 0
    code, out, _ = cli("delete", "gamma")
    assert code == 0 and "Deleted set gamma" in out and "CA keys stay in" in out
    assert "gamma" not in store.names() and not store.set_path("gamma").exists()
    assert (settings.path("ca_dir") / "gamma" / "intermediate.key").is_file()
    assert sorted(p.name for p in store.root.iterdir() if p.name.startswith(".")) == [".anchors"]


def test_delete_refuses_the_active_set_even_with_force(cli, two_sets, store):
    for argv in (("delete", "alpha"), ("delete", "alpha", "--force")):
        code, _, err = cli(*argv)
        assert code == 2 and "set alpha is active" in err
    assert store.load("alpha") and store.active_name() == "alpha"


def test_delete_of_a_set_in_the_history_needs_force(cli, two_sets, store):
    assert cli("activate", "beta")[0] == 0
    code, out, _ = cli("delete", "alpha", "--json")
    assert code == 2 and "activation history" in json.loads(out)["error"]
    assert store.load("alpha")
    code, out, _ = cli("delete", "alpha", "--force", "--json")
    assert code == 0 and json.loads(out)["deleted"] == "alpha" and "alpha" not in store.names()
    code, _, err = cli("delete", "alpha")
    assert code == 2 and "no certificate set named 'alpha'" in err


def test_a_delete_cut_short_never_leaves_a_set_that_looks_valid(cli, two_sets, store,
                                                               monkeypatch):
    """Renamed to a hidden name first: a crash mid-delete leaves no half set under its name."""
    assert cli("init", "gamma")[0] == 0
    assert cli("init", "delta")[0] == 0

    def crash(path, *args, **kwargs):
        raise OSError("power cut")
    with monkeypatch.context() as patch:
        patch.setattr("server.certstore.shutil.rmtree", crash)
        with pytest.raises(OSError):
            store.delete("gamma")
    assert "gamma" not in store.names() and "gamma" not in store.scan()
    store.delete("delta")  # the next delete clears what the cut one left
    assert sorted(p.name for p in store.root.iterdir() if p.name.startswith(".")) == [".anchors"]


def test_a_running_host_follows_a_command_line_activation(host, cli):
    pki.init_set(host.store, host.settings.path("ca_dir"), "next", list(host.settings.host_names))
    switched = threading.Event()
    host.certificates.on_change.append(
        lambda active: active and active.name == "next" and switched.set())
    host.watch_active(interval=0.05)
    assert cli("activate", "next")[0] == 0
    assert switched.wait(5)
    assert host.certificates.current().name == "next"


def test_init_refuses_a_name_whose_ca_keys_remain_and_writes_nothing(cli, store, settings):
    assert cli("init", "alpha")[0] == 0
    key_before = (settings.path("ca_dir") / "alpha" / "intermediate.key").read_bytes()
    shutil.rmtree(store.set_path("alpha"))
    code, _, err = cli("init", "alpha")
    assert code == 2 and "already holds the CA keys" in err
    assert (settings.path("ca_dir") / "alpha" / "intermediate.key").read_bytes() == key_before
    assert store.names() == []


# --- renew / hash / usage ---------------------------------------------------------------------

def test_renew_keeps_the_anchor_and_reports_expiry(cli, two_sets, store):
    code, out, _ = cli("renew", "alpha", "--json")
    data = json.loads(out)
    today = dt.date.today().strftime("%Y%m%d")
    assert code == 0 and data["set"] == f"alpha-renewed-{today}"
    assert set(data["expires"]) == {"server", "intermediate", "anchor"}
    assert store.load(data["set"]).anchor_der == store.load("alpha").anchor_der
    assert cli("renew", "alpha")[1].startswith(f"Renewed set alpha as alpha-renewed-{today}-2")


def test_renew_of_an_imported_set_explains_it_needs_its_ca(cli, loose_files):
    folder, _ = loose_files
    cli("import", "partner", *map(str, folder.iterdir()))
    code, _, err = cli("renew", "partner")
    assert code == 2 and "no CA keys for set partner" in err


def test_hash_of_der_and_pem_agree_and_match_the_lock_hash(cli, two_sets, store, settings):
    der_path = store.load("alpha").path / "anchor.der"
    pem_path = der_path.with_name("anchor.pem")
    pem_path.write_bytes(pki.cert_pem(store.load("alpha").anchor))
    code, out, _ = cli("hash", str(der_path))
    key = read_key_file(settings.site_key_file)
    assert code == 0 and out.splitlines()[0] == lock_hash(key._raw, der_path.read_bytes())
    code, out, _ = cli("hash", str(pem_path), "--json")
    data = json.loads(out)
    assert data["hash"] == lock_hash(key._raw, der_path.read_bytes())
    assert data["converted_from_pem"] is True


def test_hash_of_something_else_exits_2(cli, tmp_path):
    (tmp_path / "x.der").write_bytes(b"\x30\x03\x02\x01\x01")
    assert cli("hash", str(tmp_path / "x.der"))[0] == 2
    assert cli("hash", str(tmp_path / "missing.der"))[0] == 2


@pytest.mark.parametrize("argv, says", [
    (("list", "--config", "absent.toml"), "absent.toml does not exist"),
    (("show", "nosuch"), "no certificate set named 'nosuch'"),
    (("check", "nosuch"), "no certificate set named 'nosuch'"),
    (("import", "new", "absent.der"), "absent.der does not exist"),
    (("activate", "nosuch"), "no certificate set named 'nosuch'"),
    (("rollback",), "nothing to roll back to"),
    (("renew", "nosuch"), "no certificate set named 'nosuch'"),
    (("hash", "absent.der"), "cannot read absent.der"),
])
def test_input_errors_under_json_are_json_on_stdout(cli, argv, says):
    code, out, err = cli(*argv, "--json")
    assert (code, err) == (2, "") and says in json.loads(out)["error"]


def test_input_errors_without_json_stay_one_line_on_stderr(cli):
    code, out, err = cli("show", "nosuch")
    assert (code, out) == (2, "")
    assert err.startswith("engage-console: error: no certificate set named 'nosuch' in ")
    assert err.count("\n") == 1


def test_usage_errors_exit_2(cli):
    with pytest.raises(SystemExit) as info:
        cli()
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        cli("activate")
    assert info.value.code == 2
