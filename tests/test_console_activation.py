"""Activation, rollback and listener stops in the console, driven through Pilot against a real
host: what the confirmation shows, what needs a deliberate confirmation, and what is flagged
afterwards."""

from __future__ import annotations

from console.app import EngageConsole
from console.screens.certificates import CertificatesScreen
from console.screens.confirm import ConfirmScreen
from server import pki

from .test_console import add_set, cell, open_certificates, press_to, showing, sync, until
from .test_console import make_host, stopped_host  # noqa: F401  (fixtures)

SIZE = (120, 36)


def dialog(app) -> str:
    screen = app.screen
    parts = [screen.query_one("#dialog-body").render()]
    if screen.query("#dialog-warning"):
        parts.append(screen.query_one("#dialog-warning").render())
    return "\n".join(map(str, parts)) + "\n" + str(screen.query_one("#dialog").border_title)


def add_flawed_set(host, name: str = "flawed") -> None:
    """A set that can be served but has an error: its certificate names another host."""
    pki.init_set(host.store, host.settings.path("ca_dir"), name, ["elsewhere.example"])


@sync
async def test_forced_activation_needs_the_set_name_typed_not_y_and_is_flagged_after(
        stopped_host):
    add_flawed_set(stopped_host)
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_certificates(pilot, "flawed")
        assert cell(app, "#sets", "flawed", "verdict") == "ERROR"
        await press_to(pilot, "A", ConfirmScreen)
        assert app.screen.focused.id == "cancel"
        assert "WITH ERRORS" in dialog(app) and "1 error" in dialog(app)
        await pilot.press("y")  # not enough for a set with errors
        await pilot.press("enter")  # on Cancel
        await until(pilot, lambda: showing(app, CertificatesScreen), what="the dialog closed")
        await app.workers.wait_for_complete()
        assert stopped_host.certificates.current().name == "demo"

        await press_to(pilot, "A", ConfirmScreen)
        await pilot.press("tab")
        await until(pilot, lambda: app.screen.focused.id == "dialog-typed", what="the box")
        await pilot.press(*"flawe", "enter")  # not the name yet
        assert showing(app, ConfirmScreen)
        await pilot.press("d", "enter")
        await until(pilot, lambda: stopped_host.certificates.current().name == "flawed",
                    what="the forced activation")
        await until(pilot, lambda: cell(app, "#sets", "flawed", "active")
                    == "ACTIVE WITH ERRORS", what="the list to flag it")
        await until(pilot, lambda: "flawed WITH 1 ERROR" in str(
            app.screen.query_one("#status-bar").render()), what="the status bar to flag it")


@sync
async def test_the_activation_question_shows_server_certificate_anchor_and_findings(
        stopped_host):
    add_set(stopped_host, "second")
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_certificates(pilot, "second")
        await press_to(pilot, "a", ConfirmScreen)
        text = dialog(app)
        for name in ("demo", "second"):
            leaf = stopped_host.store.load(name).chain[0]
            assert f"{leaf.subject.rfc4514_string()}, expires " \
                   f"{leaf.not_valid_after_utc:%Y-%m-%d}" in text
        assert "Anchor:      CHANGES" in text and "re-commissioned" in text
        assert "Findings:    0 errors" in text


@sync
async def test_stopping_a_listener_asks_first_with_focus_on_keep_running(make_host):
    host = make_host()
    host.start()
    app = EngageConsole(host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        for key, names in (("h", ["http"]), ("t", ["tls"]), ("x", ["http", "tls"])):
            await press_to(pilot, key, ConfirmScreen)
            assert app.screen.focused.id == "cancel"
            assert all(n.upper() in dialog(app) for n in names) and "RUNNING" in dialog(app)
            await pilot.press("enter")
            await until(pilot, lambda: not showing(app, ConfirmScreen), what="the dialog gone")
            await app.workers.wait_for_complete()
            assert all(listener.running for listener in host.listeners.values())
