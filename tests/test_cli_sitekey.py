"""`engage-console sitekey generate`."""

from __future__ import annotations

import stat

from console.__main__ import main
from server.sitekey import SiteKey, read_key_file, write_key_file


def test_generate_writes_a_0600_key_and_shows_it_once(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["sitekey", "generate"]) == 0
    out = capsys.readouterr().out
    key = read_key_file(tmp_path / "site.key")
    assert key.base64() in out and not key.demo
    assert stat.S_IMODE((tmp_path / "site.key").stat().st_mode) == 0o600


def test_generate_refuses_to_replace_an_existing_key(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    main(["sitekey", "generate"])
    before = (tmp_path / "site.key").read_text()
    assert main(["sitekey", "generate"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "site.key").read_text() == before


def test_generate_replaces_the_first_runs_demo_key_without_force(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_key_file(tmp_path / "site.key", SiteKey.generate(), demo=True)
    assert main(["sitekey", "generate"]) == 0
    assert "DEMO site key" in capsys.readouterr().out
    assert not read_key_file(tmp_path / "site.key").demo


def test_generate_never_replaces_an_unreadable_key_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "site.key").write_text("not a key\n")
    assert main(["sitekey", "generate"]) == 2
    assert (tmp_path / "site.key").read_text() == "not a key\n"
