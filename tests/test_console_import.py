"""The console's import form, driven through Pilot against a real certificate store: keys
typed fast land where the focus is when they are typed, a problem keeps the form open with
every value and focuses the field at fault, and the passphrase is never shown."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from textual import events
from textual.keys import _character_to_key
from textual.widgets import DataTable, Input

from console.app import EngageConsole
from console.screens.certificates import CertificatesScreen
from console.screens.import_form import ImportScreen

from .test_console import (Notes, cursor_key, open_certificates, press_to, screen_text,
                           showing, sync, until)
from .test_console import make_host, stopped_host  # noqa: F401  (fixtures)

SIZE = (120, 36)
PASSPHRASE = "horse-battery-staple"


SPECIAL_KEYS = {"enter", "tab", "escape"}


def type_fast(app, *keys: str) -> None:
    """Send keys as a fast typist does: all at once, none waiting for the app to handle the
    one before (``pilot.press`` waits between keys and hides the race). A text other than a
    key name is typed character by character."""
    for text in keys:
        for key in [text] if text in SPECIAL_KEYS else text:
            if key in SPECIAL_KEYS:
                app._driver.send_message(events.Key(key, "\r" if key == "enter" else None))
            else:
                app._driver.send_message(events.Key(
                    key if key.isalnum() else _character_to_key(key), key))


def fields(app) -> dict[str, str]:
    return {name: app.screen.query_one(f"#import-{name}", Input).value
            for name in ("paths", "name", "passphrase")}


def problem(app) -> str:
    return str(app.screen.query_one("#import-problem").render())


def set_files(host, tmp_path, encrypted: bool = False) -> str:
    """The demo set's files as an integrator has them, the key encrypted if asked."""
    source = host.store.set_path("demo")
    key = source / "server.key"
    if encrypted:
        loaded = serialization.load_pem_private_key(key.read_bytes(), None)
        key = tmp_path / "server-encrypted.key"
        key.write_bytes(loaded.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(PASSPHRASE.encode())))
    return f"{source / 'anchor.der'}, {source / 'chain.pem'}, {key}"


async def open_form(pilot) -> None:
    await open_certificates(pilot)
    await press_to(pilot, "i", ImportScreen)
    focused = lambda: pilot.app.screen.focused  # noqa: E731
    await until(pilot, lambda: focused() is not None and focused().id == "import-paths",
                what="the files box focused")


async def typed(pilot, expected: dict[str, str]) -> None:
    await until(pilot, lambda: fields(pilot.app) == expected,
                what=f"the fields to hold {expected}, not {fields(pilot.app)}")


@sync
async def test_keys_typed_fast_after_enter_land_in_the_next_field(stopped_host):
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_form(pilot)
        type_fast(app, "a.pem", "enter", "site-b", "enter", "pw")
        await until(pilot, lambda: sum(map(len, fields(app).values())) == 13,
                    what="every key typed")
        assert fields(app) == {"paths": "a.pem", "name": "site-b", "passphrase": "pw"}
        assert app.screen.focused.id == "import-passphrase"


@sync
async def test_a_wrong_passphrase_keeps_the_form_values_and_focus_and_is_never_shown(
        stopped_host, tmp_path):
    app = EngageConsole(stopped_host, start=False)
    notes = Notes(app)
    files = set_files(stopped_host, tmp_path, encrypted=True)
    async with app.run_test(size=SIZE) as pilot:
        await open_form(pilot)
        type_fast(app, files, "enter", "new-set", "enter", "wrong-" + PASSPHRASE, "enter")
        await until(pilot, lambda: "wrong passphrase" in problem(app), what="the problem")
        assert showing(app, ImportScreen)
        assert fields(app) == {"paths": files, "name": "new-set",
                               "passphrase": "wrong-" + PASSPHRASE}
        assert app.screen.focused.id == "import-passphrase"
        assert PASSPHRASE not in screen_text(app) and PASSPHRASE not in notes.text()
        assert stopped_host.store.names() == ["demo"]

        app.screen.query_one("#import-passphrase", Input).value = ""
        type_fast(app, PASSPHRASE, "enter")
        await until(pilot, lambda: showing(app, CertificatesScreen), what="the form closed")
        await until(pilot, lambda: cursor_key(app.screen.query_one("#sets", DataTable))
                    == "new-set", what="the cursor on the new set")
        assert "Imported set new-set" in notes.text() and PASSPHRASE not in notes.text()


@sync
async def test_a_malformed_certificate_file_keeps_the_form_and_focuses_the_files(
        stopped_host, tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")
    app = EngageConsole(stopped_host, start=False)
    notes = Notes(app)
    async with app.run_test(size=SIZE) as pilot:
        await open_form(pilot)
        type_fast(app, str(junk), "enter", "junk", "enter", "secret-words", "enter")
        await until(pilot, lambda: "junk.pem" in problem(app), what="the problem")
        assert showing(app, ImportScreen)
        assert fields(app) == {"paths": str(junk), "name": "junk", "passphrase": "secret-words"}
        assert app.screen.focused.id == "import-paths"
        assert "secret-words" not in screen_text(app) and not notes.errors()
        assert stopped_host.store.names() == ["demo"]


@pytest.mark.parametrize("paths,name,message,at_fault", [
    ("", "x", "name the certificate and key files", "paths"),
    ("{tmp}/nope.pem", "x", "no such file", "paths"),
    ("{tmp}", "x", "is a folder: name the files in it", "paths"),
    ("{files}", "", "give the new set a name", "name"),
    ("{files}", "bad name!", "is not allowed", "name"),
    ("{files}", "demo", "already exists", "name"),
])
@sync
async def test_a_problem_focuses_the_field_at_fault_and_the_next_keys_go_there(
        stopped_host, tmp_path, paths, name, message, at_fault):
    app = EngageConsole(stopped_host, start=False)
    paths = paths.format(tmp=tmp_path, files=set_files(stopped_host, tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await open_form(pilot)
        type_fast(app, *[paths] if paths else [], "enter", *[name] if name else [], "enter",
                  "pw", "enter")
        await until(pilot, lambda: message in problem(app), what=f"the problem {message!r}")
        assert fields(app) == {"paths": paths, "name": name, "passphrase": "pw"}
        assert app.screen.focused.id == f"import-{at_fault}"
        type_fast(app, "zz")
        await typed(pilot, {"paths": paths + "zz" * (at_fault == "paths"),
                            "name": name + "zz" * (at_fault == "name"), "passphrase": "pw"})
        assert stopped_host.store.names() == ["demo"]


@sync
async def test_the_form_says_files_not_folders(stopped_host):
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_form(pilot)
        text = screen_text(app)
        assert "not a folder" in text and "Files or a folder" not in text
        assert app.screen.query_one("#import-passphrase", Input).password
