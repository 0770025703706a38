"""The command line through the control socket (issue 14): ``status`` asks the running host,
``certs activate``/``rollback`` tell it directly (and still work through the files without
one); headless hosts claim their folder, and tell systemd when they are ready."""

from __future__ import annotations

import json
import os
import signal
import socket

import pytest

from console.__main__ import main
from server import pki, sdnotify
from server.control.client import ControlClient

from . import chains
from .test_headless import run_headless  # noqa: F401 (a fixture)


@pytest.fixture(autouse=True)
def _pooled_keys(monkeypatch):
    chains.reuse_keys(monkeypatch)


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_status_says_no_host_runs_and_exits_3(settings, capsys):
    code, out, err = run(capsys, "status")
    assert code == 3
    assert "no host runs in this folder" in err
    code, out, _ = run(capsys, "status", "--json")
    assert code == 3 and "no host runs in this folder" in json.loads(out)["error"]


def test_status_prints_the_running_hosts_state(served, capsys):
    code, out, _ = run(capsys, "status")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"host pid {os.getpid()}, up ")
    http = served.listeners["http"].status()
    assert f"  http RUNNING  127.0.0.1:{http.port}  0 requests, 0 errors" in lines
    active = served.certificates.current()
    assert f"active set: {active.name} (DEMO), hash {active.hash}, anchor " \
           f"{active.cert_set.anchor_sha256[:16]}…" in lines
    assert "fleet: 0 lock(s): none known" in lines


def test_status_json_for_monitoring_and_exit_1_when_a_listener_failed(served, capsys):
    served.stop(["tls"])
    served.listeners["tls"]._fail("port 443 busy")
    code, out, _ = run(capsys, "status", "--json")
    state = json.loads(out)
    assert code == 1
    assert state["pid"] == os.getpid()
    assert state["listeners"]["tls"] == {**state["listeners"]["tls"], "state": "FAILED",
                                         "last_error": "port 443 busy"}
    assert state["fleet"]["counts"]["ok"] == 0


def test_certs_activate_tells_the_running_host_which_swaps_at_once(served, settings, capsys):
    pki.init_set(served.store, settings.path("ca_dir"), "other", list(settings.host_names))
    served.certificates.on_change.append(lambda active: seen.append(active.name))
    seen: list[str] = []
    code, out, _ = run(capsys, "certs", "activate", "other")
    assert code == 0, out
    assert seen == ["other"]  # swapped by the host itself, not by its file watcher
    assert served.certificates.current().name == "other"
    assert f"The host running in this folder (pid {os.getpid()}) serves it now." in out
    code, out, _ = run(capsys, "certs", "rollback", "--json")
    assert code == 0 and json.loads(out)["host_pid"] == os.getpid()
    assert served.certificates.current().name == "demo" and seen == ["other", "demo"]
    assert [e["action"] for e in served.store.history()][-2:] == ["activate", "rollback"]


def test_certs_activate_without_a_host_goes_through_the_files(host, settings, capsys):
    pki.init_set(host.store, settings.path("ca_dir"), "other", list(settings.host_names))
    code, out, _ = run(capsys, "certs", "activate", "other")
    assert code == 0
    assert "No host runs in this folder" in out
    assert host.store.active_name() == "other"


def test_sd_notify_sends_one_datagram_to_notify_socket(tmp_path):
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(str(path))
        assert sdnotify.notify("READY=1", {"NOTIFY_SOCKET": str(path)})
        assert manager.recv(100) == b"READY=1"
    assert not sdnotify.notify("READY=1", {})


# --- headless hosts, real processes -----------------------------------------------------------

def test_a_second_headless_host_in_the_folder_names_the_first_and_exits_2(run_headless):  # noqa: F811
    first = run_headless("--demo")
    first.port("http")
    second = run_headless("--demo")
    assert second.proc.wait(timeout=20) == 2
    second.expect(rf"another engage-console host \(pid {first.proc.pid}\) already runs")
    assert first.proc.poll() is None
    assert first.stop() == 0


def test_a_killed_headless_hosts_stale_socket_is_replaced(run_headless, tmp_path):  # noqa: F811
    first = run_headless("--demo")
    first.port("http")
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(timeout=10)
    assert (tmp_path / "run" / "engage-console.sock").exists()  # left behind
    second = run_headless("--demo")
    second.port("http")
    client = ControlClient(tmp_path / "run" / "engage-console.sock")
    assert client.call("status")["pid"] == second.proc.pid
    client.close()
    assert second.stop() == 0


def test_headless_tells_systemd_it_is_ready(run_headless, tmp_path, monkeypatch):  # noqa: F811
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(str(path))
        manager.settimeout(20)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        h = run_headless("--demo")
        assert manager.recv(100) == b"READY=1"
        h.port("http")
        assert h.stop() == 0
        assert manager.recv(100) == b"STOPPING=1"


def test_certs_migrate_tells_the_running_host_which_serves_each_step_at_once(served, settings,
                                                                              capsys):
    """start, finish and abort through the socket: the host's migration changes before the
    command returns (no wait for its file watcher)."""
    pki.init_set(served.store, settings.path("ca_dir"), "other", list(settings.host_names))
    code, out, _ = run(capsys, "certs", "migrate", "other", "--json")
    assert code == 0, out
    assert json.loads(out)["to_set"] == "other"
    assert served.migration.state is not None and served.migration.state.to_set == "other"
    code, out, _ = run(capsys, "certs", "migrate", "--abort")
    assert code == 0 and "aborted" in out, out
    assert served.migration.state is None
    run(capsys, "certs", "migrate", "other")
    code, out, _ = run(capsys, "certs", "migrate", "--finish", "--json")
    assert code == 0, out
    assert json.loads(out)["host_pid"] == os.getpid()
    assert served.certificates.current().name == "other" and served.migration.state is None
    assert [e["action"] for e in served.store.history()][-4:] == [
        "migration-start", "migration-abort", "migration-start", "migration-finish"]


def test_certs_activate_takes_the_preflight_from_the_running_hosts_index(served, settings,
                                                                         capsys, monkeypatch):
    """With a host running, the CLI does not read every record itself: the host's warm index
    answers (100,000 records take seconds to read cold)."""
    import server.fleet

    pki.init_set(served.store, settings.path("ca_dir"), "other", list(settings.host_names))
    served.devices.config_callin({"lckPrmtrs": {"lckSn": "00A1"}}, "10.0.0.1", "tls",
                                 anchor_sha256=served.certificates.current().cert_set.anchor_sha256)
    cli_devices = []
    original = server.fleet.preflight
    monkeypatch.setattr("console.commands.certs_activate.preflight", lambda devices, *a: (
        cli_devices.append(devices), original(devices, *a))[1])
    code, out, _ = run(capsys, "certs", "activate", "other", "--json")
    assert code == 1
    report = json.loads(out)["preflight"]
    assert [lock["serial"] for lock in report["cut_off"]] == ["00A1"]
    assert cli_devices == []  # the host's own preflight, not one over the files
