"""The console attached to a running host (issue 14): a RemoteHost over the control socket
gives the console the same listeners, log and certificate service; the attached console says
which host in its header, detaches on quit leaving the host running, and says so when the host
goes away."""

from __future__ import annotations

import os
import threading

import pytest

from console.__main__ import main
from console.attached import AttachedConsole, run_attached
from console.remote import UNKNOWN, RemoteHost
from console.screens.confirm import ConfirmScreen
from console.widgets.lock_log import LockLog
from server import pki
from server.control.client import NoHost, socket_path

from . import chains
from .helpers import http_get, until
from .test_console import SIZE, sync
from .test_console import until as ui_until

CURRENT = "/swordfish/lock/certificates/current"


@pytest.fixture(autouse=True)
def _pooled_keys(monkeypatch):
    chains.reuse_keys(monkeypatch)


@pytest.fixture
def remote(served, settings):
    r = RemoteHost(settings, socket_path(settings))
    yield r
    r.close()


def test_remote_host_mirrors_the_listeners_and_controls_them(served, remote):
    assert remote.pid == os.getpid()
    assert remote.status()["http"].port == served.listeners["http"].bound_port
    assert remote.listeners["tls"].running
    assert remote.stop(["tls"])["tls"].state == "STOPPED"
    assert not served.listeners["tls"].running and not remote.listeners["tls"].running
    assert remote.start(["tls"])["tls"].state == "RUNNING" and served.listeners["tls"].running


def test_remote_log_gets_the_ring_first_then_follows(served, settings):
    port = served.listeners["http"].bound_port
    http_get(port, CURRENT + "?before")
    remote = RemoteHost(settings, socket_path(settings))
    sub = remote.log.subscribe()
    seen: list[str] = []
    assert until(lambda: seen.extend(e.query for e in sub.drain()) or "before" in seen)
    http_get(port, CURRENT + "?after")
    assert until(lambda: seen.extend(e.query for e in sub.drain()) or "after" in seen)
    assert seen == ["before", "after"]
    remote.close()


def test_activating_from_an_attached_console_is_the_hosts_own(served, remote, settings):
    pki.init_set(served.store, settings.path("ca_dir"), "other", list(settings.host_names))
    active = remote.certificates.activate("other", by="console")
    assert active.name == "other" == served.certificates.current().name
    assert served.store.history()[-1]["by"] == "console"
    assert remote.certificates.rollback(by="console").name == "demo"
    assert served.certificates.current().name == "demo"


def test_finishing_a_migration_from_an_attached_console_is_the_hosts_own(served, remote,
                                                                         settings):
    """The console's f key runs service.finish on the attached copy: the host finishes it."""
    from server.migration import service

    pki.init_set(served.store, settings.path("ca_dir"), "other", list(settings.host_names))
    service.start(remote.certificates, "other", by="console")
    served.migration.reload()  # what its watcher does within a second
    active = service.finish(remote.certificates, by="console")
    assert active.name == "other" == served.certificates.current().name
    assert served.migration.state is None
    assert served.store.history()[-1]["action"] == "migration-finish"


def test_the_host_going_away_is_noticed(served, remote):
    told = threading.Event()
    remote.on_lost.append(lambda why: told.set())
    remote.log.subscribe()
    assert until(lambda: served.control._streams)  # following
    served.close()
    assert told.wait(5)
    assert remote.lost == f"the host (pid {os.getpid()}) stopped"
    assert {s.state for s in remote.status().values()} == {UNKNOWN}


def test_attach_to_a_path_where_no_host_runs_exits_3(settings, tmp_path, capsys):
    assert run_attached(settings, tmp_path / "none.sock", required=False) is None
    with pytest.raises(NoHost):
        run_attached(settings, tmp_path / "none.sock", required=True)
    assert main(["--attach", str(tmp_path / "none.sock")]) == 3
    assert "no host runs in this folder" in capsys.readouterr().err


def test_an_embedded_console_refuses_a_folder_a_host_holds(served, capsys):
    assert main(["--no-attach"]) == 2
    assert f"another engage-console host (pid {os.getpid()}) already runs in this folder" \
        in capsys.readouterr().err


# --- the attached console ---------------------------------------------------------------------

@sync
async def test_attached_console_says_which_host_and_shows_its_log(served, remote):
    http_get(served.listeners["http"].bound_port, CURRENT)
    app = AttachedConsole(remote)
    async with app.run_test(size=SIZE) as pilot:
        await ui_until(pilot, lambda: app.sub_title.startswith(f"attached to pid {os.getpid()}, "
                                                               "up "), what="header")
        log = app.screen.query_one(LockLog)
        await ui_until(pilot, lambda: len(log.shown) >= 1, what="the host's request in the log")


@sync
async def test_quitting_an_attached_console_detaches_and_leaves_the_host_running(served, remote):
    app = AttachedConsole(remote)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("q")
        await ui_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="dialog")
        assert "keeps running and serving the locks" in str(app.screen.body)
        assert app.screen.confirm_label == "Detach"
        await pilot.press("y")
        await ui_until(pilot, lambda: not app.is_running, what="exit")
    assert all(listener.running for listener in served.listeners.values())


@sync
async def test_attached_console_says_when_the_host_stops_and_offers_an_embedded_one(served,
                                                                                    remote):
    app = AttachedConsole(remote)
    async with app.run_test(size=SIZE) as pilot:
        await ui_until(pilot, lambda: app.sub_title.startswith("attached"), what="header")
        await ui_until(pilot, lambda: served.control._streams, what="following")
        served.close()
        await ui_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="dialog")
        assert app.sub_title == f"DETACHED: the host (pid {os.getpid()}) stopped"
        assert "Start an embedded host in this console?" in str(app.screen.body)
        await pilot.press("y")
        await ui_until(pilot, lambda: not app.is_running, what="exit")
    assert app.embed_requested
