"""Certificate rotation in the console (issues 13 and 16), driven through Pilot against the
real host with simulated locks: the activation dialog's preflight names exactly the locks a new
anchor cuts off (they then fail their next TLS call-in with unknown CA), asks for the set's
name typed before it cuts anyone off, names nobody for a renewal under the same anchor; a
migration started from the console moves locks without a failed call-in."""

from __future__ import annotations

import asyncio
import re

import pytest

from console.app import EngageConsole
from console.screens.certificates import CertificatesScreen
from console.screens.confirm import ConfirmScreen
from server import pki
from server.fleet import CUT_OFF_EFFECT
from server.simfleet import refetch

from . import chains
from .helpers import until as wait
from .test_console import open_certificates, press_to, showing, sync, until
from .test_console import make_host, stopped_host  # noqa: F401  (fixtures)
from .test_console_activation import dialog
from .test_fleet import UNKNOWN_CA, call_in, fleet, record

SIZE = (120, 36)


@pytest.fixture(autouse=True)
def _pooled_keys(monkeypatch):
    chains.reuse_keys(monkeypatch)


def named(text: str) -> list[str]:
    """The serials the dialog lists as cut off (one line each: serial, last seen, ...)."""
    return re.findall(r"^\s+([0-9A-F]{16})\s+last seen", text, re.MULTILINE)


def commissioned(host, site) -> list:
    """Set "other" (another anchor) beside the demo set, and 6 locks commissioned under the
    demo anchor (each from its own address)."""
    pki.init_set(host.store, host.settings.path("ca_dir"), "other",
                 list(host.settings.host_names))
    locks = fleet(site, 6)
    assert all(call_in(locks).values())
    return locks


async def confirm_typed(pilot, name: str) -> None:
    """``y`` does nothing in a dialog that cuts locks off; the set's name typed does."""
    app = pilot.app
    assert app.screen.focused.id == "cancel"
    await pilot.press("y")
    assert showing(app, ConfirmScreen)
    await pilot.press("tab")
    await until(pilot, lambda: app.screen.focused.id == "dialog-typed", what="the name box")
    await pilot.press(*name, "enter")
    await until(pilot, lambda: app.host.certificates.current().name == name,
                what=f"{name} active")


async def failures(host, locks) -> list[str]:
    """Each lock calls in once (off the event loop); the serials that failed, each of which
    the host saw fail its handshake with unknown CA."""
    outcome = await asyncio.to_thread(call_in, locks)
    failed = sorted(serial for serial, ok in outcome.items() if not ok)
    for serial in failed:  # the host records the alert as the connection ends
        assert await asyncio.to_thread(
            wait, lambda: record(host, serial).get("tls_failures", {}).get("count"))
        assert record(host, serial)["tls_failures"]["last"][-1]["reason"] == UNKNOWN_CA
    return failed


@sync
async def test_the_activation_dialog_names_exactly_the_locks_a_new_anchor_cuts_off(host, site):
    locks = commissioned(host, site)
    app = EngageConsole(host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_certificates(pilot, "other")
        await press_to(pilot, "a", ConfirmScreen)
        text = dialog(app)
        assert sorted(named(text)) == sorted(lock.serial for lock in locks)
        assert "6 of 6 known locks" in text and CUT_OFF_EFFECT in text
        assert "CUTTING OFF 6 LOCKS" in text
        await confirm_typed(pilot, "other")

        refetched = refetch(locks, 0.5, seed=1)  # these start from the ENGAGE app
        kept = await failures(host, locks)
        assert kept == sorted(set(l.serial for l in locks) - set(refetched))

        await until(pilot, lambda: showing(app, CertificatesScreen), what="the list")
        await press_to(pilot, "r", ConfirmScreen)  # back to the demo anchor
        cut = sorted(named(dialog(app)))
        assert cut == refetched  # they hold the other anchor now; the rest still hold demo's
        await confirm_typed(pilot, "demo")
        assert await failures(host, locks) == cut

        pki.renew_set(host.store, host.settings.path("ca_dir"), "demo", "demo-renewed")
        await until(pilot, lambda: "demo-renewed" in app.screen.rows, what="the renewed set")
        await open_certificates(pilot, "demo-renewed")
        await press_to(pilot, "a", ConfirmScreen)
        text = dialog(app)
        assert named(text) == [] and "all 6 locks keep trusting this anchor" in text
        assert not app.screen.query("#dialog-typed")  # nobody is cut off: y is enough
        await pilot.press("y")
        await until(pilot, lambda: host.certificates.current().name == "demo-renewed",
                    what="the renewal active")
    assert await failures(host, locks) == cut  # the renewal cut no one more off


@sync
async def test_zero_known_locks_is_said_as_such_not_as_safe(stopped_host):
    pki.init_set(stopped_host.store, stopped_host.settings.path("ca_dir"), "other",
                 list(stopped_host.settings.host_names))
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_certificates(pilot, "other")
        await press_to(pilot, "a", ConfirmScreen)
        text = dialog(app)
        assert "No known locks" in text and "keep trusting" not in text


def pane_text(app) -> str:
    return str(app.screen.query_one("#migration-counts").render())


async def start_migration(pilot, host, locks) -> list[str]:
    """m on set "other", answered y; then half the locks re-fetch and call in: moved."""
    app = pilot.app
    await open_certificates(pilot, "other")
    await press_to(pilot, "m", ConfirmScreen)
    assert "Migration from demo" in dialog(app) and "0 of 6 locks moved" in dialog(app)
    await pilot.press("y")
    await until(pilot, lambda: "0 of 6 locks moved" in pane_text(app), what="the progress")
    await until(pilot, lambda: host.migration.state is not None, what="the host to follow")
    moved = refetch(locks, 0.5, seed=1)
    assert await failures(host, locks) == []  # a migration cuts nobody off
    await until(pilot, lambda: "3 of 6 locks moved" in pane_text(app), what="3 moved",
                timeout=10)
    await until(pilot, lambda: showing(app, CertificatesScreen), what="the list")
    return moved


@sync
async def test_a_migration_from_the_console_shows_progress_and_finishes_through_the_preflight(
        host, site):
    locks = commissioned(host, site)
    app = EngageConsole(host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        moved = await start_migration(pilot, host, locks)
        assert app.screen.query_one("#migration-moved").data[-1] == 3
        await press_to(pilot, "f", ConfirmScreen)
        text = dialog(app)
        stayed = sorted(set(l.serial for l in locks) - set(moved))
        assert sorted(named(text)) == stayed and "Finish the migration to" in text
        await confirm_typed(pilot, "other")
        await until(pilot, lambda: app.screen.query_one("#migration").has_class("hidden"),
                    what="the progress gone")
    assert await failures(host, locks) == stayed


@sync
async def test_aborting_a_migration_from_the_console_names_the_locks_that_fetched_the_new_anchor(
        host, site):
    locks = commissioned(host, site)
    app = EngageConsole(host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        moved = await start_migration(pilot, host, locks)
        await press_to(pilot, "x", ConfirmScreen)
        assert sorted(named_plain(dialog(app))) == moved
        await pilot.press("y")
        await until(pilot, lambda: app.screen.query_one("#migration").has_class("hidden"),
                    what="the progress gone")
    assert host.store.active_name() == "demo"


def named_plain(text: str) -> list[str]:
    return re.findall(r"^\s+([0-9A-F]{16})$", text, re.MULTILINE)
