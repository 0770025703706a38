"""The control socket (issue 14): a running host answers on a Unix socket in its folder, to
its user only, one host per folder; JSON lines, one reply per request, a follow stream that a
slow reader can never slow down; bad input gets an error and changes nothing."""

from __future__ import annotations

import json
import os
import socket
import stat
import time

import pytest

from server import pki
from server.control import protocol
from server.control import server as control_server
from server.control.client import CommandFailed, ControlClient, NoHost
from server.control.lock import HostRunning
from server.events import Event
from server.host import Host

from . import chains
from .helpers import http_get, until
from .test_fleet import write_records


@pytest.fixture(autouse=True)
def _pooled_keys(monkeypatch):
    chains.reuse_keys(monkeypatch)


@pytest.fixture
def served(host):
    host.serve_control(idle_timeout=2.0, write_timeout=10.0, stream_queue=100)
    return host


def raw(host) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(host.control.path))
    return sock


def reply_of(sock: socket.socket, line: bytes) -> dict:
    sock.sendall(line)
    return protocol.decode(sock.makefile("rb").readline())


def status_of(host) -> dict:
    client = ControlClient(host.control.path)
    try:
        return client.call("status")
    finally:
        client.close()


# --- the socket and the folder ---------------------------------------------------------------

def test_status_carries_pid_listeners_active_set_and_fleet(served, settings):
    http_get(served.listeners["http"].bound_port, "/swordfish/lock/certificates/current")
    reply = status_of(served)
    assert reply["pid"] == os.getpid()
    assert reply["uptime"] >= 0
    assert reply["listeners"]["http"]["state"] == "RUNNING"
    assert reply["listeners"]["http"]["port"] == served.listeners["http"].bound_port
    assert reply["listeners"]["http"]["requests"] == 1
    assert reply["active"]["name"] == served.certificates.current().name
    assert reply["active"]["hash"] == served.certificates.current().hash
    assert reply["fleet"]["line"] == "0 lock(s): none known"
    assert reply["paths"]["data_dir"] == str(settings.path("data_dir").resolve())


def test_socket_is_mode_0600_in_a_folder_only_its_owner_can_enter(served):
    path = served.control.path
    assert stat.S_ISSOCK(path.stat().st_mode)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path == served.settings.path("control_socket")


def test_an_existing_open_socket_folder_is_closed_to_others(host, settings):
    folder = settings.path("control_socket").parent
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    host.serve_control()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_a_second_host_in_the_folder_is_refused_naming_the_first_pid(served, settings):
    second = Host.from_settings(settings, env={})
    with pytest.raises(HostRunning) as caught:
        second.serve_control()
    assert caught.value.pid == os.getpid()
    assert f"pid {os.getpid()}" in str(caught.value)
    assert status_of(served)["pid"] == os.getpid()  # the first still answers
    second.close()


def test_a_stale_socket_file_left_by_a_killed_host_is_replaced(host, settings):
    path = settings.path("control_socket")
    path.parent.mkdir(mode=0o700)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))  # a socket file nobody listens on, as a SIGKILLed host leaves it
    dead.close()
    path.with_suffix(".pid").write_text("999999\n")
    with pytest.raises(NoHost):
        ControlClient(path)
    host.serve_control()
    assert status_of(host)["pid"] == os.getpid()
    assert path.with_suffix(".pid").read_text() == f"{os.getpid()}\n"


def test_closing_the_host_removes_the_socket_and_frees_the_folder(served, settings):
    path = served.control.path
    served.close()
    assert not path.exists()
    again = Host.from_settings(settings, env={})
    again.serve_control()
    assert status_of(again)["pid"] == os.getpid()
    again.close()


def test_a_peer_of_another_user_is_refused_by_its_credentials(served, monkeypatch):
    assert control_server.peer_allowed(os.getuid(), os.getuid())
    assert control_server.peer_allowed(0, 1000)
    assert not control_server.peer_allowed(65534, 1000)
    monkeypatch.setattr(control_server, "peer_uid", lambda conn: 65534)
    monkeypatch.setattr(control_server.os, "getuid", lambda: 1000)
    with raw(served) as sock:
        answer = protocol.decode(sock.makefile("rb").readline())
    assert answer == {"ok": False,
                      "error": "refused: the control socket serves only its host's user"}


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to become another user")
def test_another_user_cannot_even_reach_the_socket(served):
    path = str(served.control.path.resolve())
    pid = os.fork()
    if pid == 0:  # the child becomes nobody and tries to connect
        code = 1
        try:
            os.setgid(65534)
            os.setuid(65534)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(path)
                code = 0
            except PermissionError:
                code = 13
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 13


# --- commands ---------------------------------------------------------------------------------

def test_stop_and_start_a_listener_through_the_socket(served):
    client = ControlClient(served.control.path)
    stopped = client.call("stop", listeners=["http"])["listeners"]
    assert stopped["http"]["state"] == "STOPPED"
    assert not served.listeners["http"].running and served.listeners["tls"].running
    assert client.call("start", listeners=["http"])["listeners"]["http"]["state"] == "RUNNING"
    with pytest.raises(CommandFailed, match="unknown listener"):
        client.call("stop", listeners=["ftp"])
    client.close()


def test_activate_through_the_socket_runs_the_fleet_preflight(served, settings):
    store = served.store
    pki.init_set(store, settings.path("ca_dir"), "other", list(settings.host_names))
    old = served.certificates.current()
    write_records(settings, old.cert_set.anchor_sha256)
    client = ControlClient(served.control.path)
    with pytest.raises(CommandFailed) as caught:
        client.call("activate", name="other")
    assert caught.value.reply["preflight"]["cut_off_count"] == 2
    assert served.certificates.current().name == old.name  # nothing changed
    done = client.call("activate", name="other", cut_off_ok=True, by="test")
    assert done["active"]["name"] == "other" == served.certificates.current().name
    assert store.active_name() == "other"
    back = client.call("rollback", cut_off_ok=True)
    assert back["active"]["name"] == old.name == served.certificates.current().name
    client.close()


def test_a_set_with_errors_is_refused_through_the_socket_unless_forced(served):
    client = ControlClient(served.control.path)
    with pytest.raises(CommandFailed, match="no certificate set"):
        client.call("activate", name="missing")
    client.close()


def test_rollback_and_its_preflight_with_nothing_to_roll_back_to_say_so(served):
    client = ControlClient(served.control.path)
    for cmd in ("rollback", "preflight"):  # preflight with no name: the rollback target's
        with pytest.raises(CommandFailed, match="nothing to roll back to"):
            client.call(cmd)
    assert client.call("preflight", name=served.certificates.current().name)["preflight"][
        "same_anchor"]
    client.close()


# --- bad input and faults ---------------------------------------------------------------------

def test_garbage_gets_an_error_and_the_connection_keeps_working(served):
    with raw(served) as sock:
        reader = sock.makefile("rb")
        for junk in (b"hello\n", b"[1,2]\n", b'{"cmd": "format c:"}\n', b'{"cmd": "stop", '
                     b'"listeners": "http"}\n', b'{"cmd": "status", "x": 1}\n', b"\xff\xfe\n"):
            sock.sendall(junk)
            answer = protocol.decode(reader.readline())
            assert answer["ok"] is False and answer["error"], junk
        sock.sendall(protocol.request("status"))
        assert protocol.decode(reader.readline())["pid"] == os.getpid()
    assert all(listener.running for listener in served.listeners.values())


def test_a_10_mb_line_is_refused_after_64_kib_and_the_host_keeps_serving(served):
    with raw(served) as sock:
        reader = sock.makefile("rb")
        try:
            sock.sendall(b'{"cmd": "status", "pad": "' + b"x" * (10 * 1024 * 1024))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the host stopped reading after 64 KiB and hung up: the point
        answer = protocol.decode(reader.readline())
        assert answer == {"ok": False, "error": "request longer than 64 KiB: refused; closing"}
        assert reader.readline() == b""
    assert status_of(served)["pid"] == os.getpid()


def test_a_silent_client_delays_nobody_and_is_closed_after_the_idle_timeout(served):
    with raw(served) as silent:
        started = time.monotonic()
        assert status_of(served)["pid"] == os.getpid()
        assert time.monotonic() - started < 1.0
        assert silent.makefile("rb").readline() == b""  # closed after idle_timeout (2 s)
        assert time.monotonic() - started < 5.0


def test_a_client_killed_mid_command_leaves_nothing_half_done(served):
    with raw(served) as sock:
        sock.sendall(b'{"cmd": "stop", "listeners": ["http"]')  # dies before the newline
    with raw(served) as sock:
        sock.sendall(protocol.request("stop", listeners=["tls"]))  # dies before the reply
    assert until(lambda: not served.listeners["tls"].running)
    assert served.listeners["http"].running
    assert status_of(served)["listeners"]["tls"]["state"] == "STOPPED"


def test_unknown_commands_and_bad_arguments_are_named():
    with pytest.raises(protocol.ProtocolError, match="unknown command 'nope': known are status"):
        protocol.parse_request(b'{"cmd": "nope"}')
    with pytest.raises(protocol.ProtocolError, match="activate: argument name is required"):
        protocol.parse_request(b'{"cmd": "activate"}')
    with pytest.raises(protocol.ProtocolError, match="follow: from must be a int"):
        protocol.parse_request(b'{"cmd": "follow", "from": true}')
    assert protocol.parse_request(b'{"cmd": "follow"}\n') == ("follow", {"from": 0})


# --- the follow stream ------------------------------------------------------------------------

def record(host, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        host.log.record(Event("http", "127.0.0.1", "GET", f"/e{i}", status=200))


def test_follow_sends_the_ring_after_a_position_then_new_events(served):
    record(served, 5)
    position = served.log.recent()[-3].seq  # /e2: the two after it come first
    client = ControlClient(served.control.path)
    stream = client.follow(position)
    first = [next(stream)["event"]["path"] for _ in range(2)]
    assert first == ["/e3", "/e4"]
    record(served, 1, start=5)
    assert next(stream)["event"]["path"] == "/e5"
    client.close()


def test_two_clients_follow_at_once_and_each_gets_every_event(served):
    clients = [ControlClient(served.control.path) for _ in range(2)]
    streams = [c.follow(served.log.recent()[-1].seq if served.log.recent() else 0)
               for c in clients]
    record(served, 20)
    for stream in streams:
        assert [next(stream)["event"]["path"] for _ in range(20)] == [f"/e{i}" for i in range(20)]
    assert status_of(served)["pid"] == os.getpid()  # and a third one is answered meanwhile
    for c in clients:
        c.close()


def test_a_stalled_follower_is_dropped_and_never_slows_recording(served):
    with raw(served) as sock:
        sock.sendall(protocol.request("follow"))
        started = time.monotonic()
        record(served, 20_000)  # the follower reads nothing meanwhile
        assert time.monotonic() - started < 5.0
        lines = sock.makefile("rb").read().splitlines()  # now it reads: until the host hangs up
    messages = [json.loads(line) for line in lines]
    assert messages[0]["ok"] is True
    assert messages[-1]["dropped"] == "fell behind" and messages[-1]["lost"] > 0
    assert len(messages) < 20_000
    assert until(lambda: not served.log._subs)
    assert status_of(served)["pid"] == os.getpid()


def test_an_activation_is_pushed_to_followers(served, settings):
    pki.init_set(served.store, settings.path("ca_dir"), "other", list(settings.host_names))
    client = ControlClient(served.control.path)
    stream = client.follow()
    served.certificates.activate("other", by="test")
    message = next(m for m in stream if "active" in m)
    assert message["active"]["name"] == "other"
    client.close()


def test_followers_are_told_when_the_host_stops(served):
    client = ControlClient(served.control.path)
    stream = client.follow()
    served.close()
    assert list(stream) == [{"closing": "the host is stopping"}]
    client.close()
