"""The embedded listeners: HTTP/1.1 keep-alive, restart, busy and privileged ports, silent
clients, TLS context swaps and handshake failures as events."""

from __future__ import annotations

import errno
import http.client
import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from server import pki
from server.listeners import FAILED, RUNNING, STOPPED, Listener, bind_error_message

from .helpers import anchor_context, http_get, raw_exchange, until, wait_for_event

CURRENT = "/swordfish/lock/certificates/current"
REPO = Path(__file__).resolve().parents[1]


def test_call_in_reuses_one_tls_connection_for_several_requests(site):
    _, der = site.fetch_anchor()
    conn = http.client.HTTPSConnection("localhost", site.tls_port, timeout=5,
                                       context=anchor_context(der))
    peers = set()
    for _ in range(3):
        conn.request("GET", CURRENT)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200 and resp.version == 11
        peers.add(conn.sock.getsockname())
    conn.close()
    assert len(peers) == 1  # the same socket carried all three requests


def test_connections_stay_open_with_many_locks_connected(site):
    """Servers often close keep-alive connections past a limit (cheroot: the 10th); a fleet
    must not hit one."""
    conns = [http.client.HTTPConnection("127.0.0.1", site.http_port, timeout=5)
             for _ in range(25)]
    try:
        for _ in range(2):
            for conn in conns:
                conn.request("GET", CURRENT)
                resp = conn.getresponse()
                resp.read()
                assert resp.status == 200 and resp.getheader("Connection") != "close"
        assert len({conn.sock.getsockname() for conn in conns}) == 25
    finally:
        for conn in conns:
            conn.close()


def test_every_response_has_content_length_spelled_exactly(site):
    for request in (f"GET {CURRENT} HTTP/1.1\r\nHost: x\r\n\r\n",
                    "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n",
                    f"POST {CURRENT} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
                    f"HEAD {CURRENT} HTTP/1.1\r\nHost: x\r\n\r\n"):
        head = raw_exchange(site.http_port, request.encode()).split(b"\r\n\r\n")[0]
        assert head.startswith(b"HTTP/1.1 "), head
        assert any(line.startswith(b"Content-Length: ") for line in head.split(b"\r\n")), head
        assert b"Transfer-Encoding" not in head


def test_stop_and_start_again_on_the_same_port(host, site):
    http_listener = host.listeners["http"]
    port = http_listener.bound_port
    http_listener.port = port
    for _ in range(3):
        assert http_listener.stop().state == STOPPED
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        status = http_listener.start()
        assert (status.state, status.port) == (RUNNING, port)
        assert http_get(port, CURRENT)[0] == 200


def test_stop_is_quick_with_idle_and_silent_connections_open(host, site):
    _, der = site.fetch_anchor()
    idle = http.client.HTTPSConnection("localhost", site.tls_port, context=anchor_context(der))
    idle.request("GET", CURRENT)
    idle.getresponse().read()  # keep-alive connection left open
    silent = [socket.create_connection(("127.0.0.1", p)) for p in (site.http_port, site.tls_port)]
    half = socket.create_connection(("127.0.0.1", site.tls_port))
    half.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a ClientHello cut short
    started = time.monotonic()
    host.stop()
    elapsed = time.monotonic() - started
    for s in silent + [half]:
        s.close()
    idle.close()
    assert elapsed < 1.0, f"stop took {elapsed:.2f} s"


def test_silent_and_half_handshake_clients_do_not_delay_others(site):
    _, der = site.fetch_anchor()
    silent = socket.create_connection(("127.0.0.1", site.tls_port))
    halves = []
    for _ in range(4):
        half = socket.create_connection(("127.0.0.1", site.tls_port))
        half.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        halves.append(half)
    try:
        # The server keeps the stalled clients for connection_timeout (3 s here); a client
        # whose own timeout is shorter than that still gets served straight away.
        conn = http.client.HTTPSConnection("localhost", site.tls_port, timeout=1.5,
                                           context=anchor_context(der))
        conn.request("GET", CURRENT)
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        for s in [silent] + halves:
            s.close()


def test_unfinished_handshake_times_out_on_its_own_and_is_logged(site):
    half = socket.create_connection(("127.0.0.1", site.tls_port), timeout=10)
    half.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    assert half.recv(100) == b""  # closed by the server after connection_timeout
    half.close()
    event = wait_for_event(site.host.log, lambda e: e.kind == "handshake")[0]
    assert "timed out" in event.error
    assert site.host.listeners["tls"].status().errors >= 1


def test_plain_http_to_tls_port_is_a_logged_handshake_failure(site):
    raw_exchange(site.tls_port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    event = wait_for_event(site.host.log, lambda e: e.kind == "handshake")[0]
    assert "plain HTTP" in event.error


AFTER_HANDSHAKE = "client closed after handshake: rejected our chain?"


def test_client_that_closes_right_after_the_handshake_is_a_logged_event(site):
    _, anchor = site.fetch_anchor()
    with socket.create_connection(("127.0.0.1", site.tls_port), timeout=5) as sock:
        with anchor_context(anchor).wrap_socket(sock, server_hostname="localhost") as tls:
            assert tls.version()  # the handshake completed; then it goes without a request
    [event] = wait_for_event(site.host.log, lambda e: e.error == AFTER_HANDSHAKE)
    assert (event.kind, event.listener, event.client) == ("handshake", "tls", "127.0.0.1")
    assert site.host.listeners["tls"].status().last_error.endswith(AFTER_HANDSHAKE)


def test_client_that_closes_after_its_requests_is_no_handshake_event(site):
    _, anchor = site.fetch_anchor()
    assert site.tls_get(anchor, CURRENT)[0] == 200
    server = site.host.listeners["tls"]._server
    assert until(lambda: server.connections("head") == 0)  # the host has seen it close
    wait_for_event(site.host.log, lambda e: e.listener == "tls" and e.path == CURRENT)
    assert not [e for e in site.host.log.recent() if e.kind == "handshake"]


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
def test_client_below_minimum_tls_version_is_refused_and_logged(site):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    with socket.create_connection(("127.0.0.1", site.tls_port), timeout=5) as sock:
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            ctx.wrap_socket(sock)
    event = wait_for_event(site.host.log, lambda e: e.kind == "handshake")[0]
    assert event.error


def test_busy_port_reports_the_fix_and_the_other_listener_keeps_working(host, site):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        tls = host.listeners["tls"]
        tls.stop()
        tls.port = busy.getsockname()[1]
        status = tls.start()
        assert status.state == FAILED
        assert "already in use" in status.last_error and "--tls-port" in status.last_error
        assert http_get(site.http_port, CURRENT)[0] == 200
    finally:
        busy.close()


def test_permission_denied_message_names_the_capability_and_a_higher_port():
    message = bind_error_message(OSError(errno.EACCES, "Permission denied"), "0.0.0.0", 80,
                                 "--http-port")
    assert "CAP_NET_BIND_SERVICE" in message and "--http-port" in message


def test_privileged_port_as_a_normal_user_fails_with_the_fix_and_no_exit():
    # As root the child imports first, then drops to uid/gid 65534 before binding: nothing it
    # needs is read as that user, so the test does not depend on where the checkout (or its
    # venv) lives - a clone in a mode-0700 folder works too. A normal user binds as itself.
    if Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").exists() and int(Path(
            "/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text()) <= 1:
        pytest.skip("this kernel lets any user bind port 1 (ip_unprivileged_port_start)")
    drop = "os.setgroups([]); os.setgid(65534); os.setuid(65534)\n" if os.geteuid() == 0 else ""
    script = (
        "import os\n"
        "from server.listeners import Listener\n"
        "from server.events import RequestLog\n"
        + drop +
        "l = Listener('http', lambda e, s: [], RequestLog(), '127.0.0.1', 1, '--http-port')\n"
        "s = l.start(); print(os.geteuid()); print(s.state); print(s.last_error)\n")
    out = subprocess.run([sys.executable, "-c", script], cwd="/",
                         env={**os.environ, "PYTHONPATH": str(REPO)},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    uid, state, message = out.stdout.splitlines()[:3]
    assert (uid, state) == ("65534" if os.geteuid() == 0 else str(os.geteuid()), FAILED)
    assert "permission denied" in message and "CAP_NET_BIND_SERVICE" in message


def test_new_handshakes_get_the_new_set_while_open_connections_keep_theirs(host, site):
    _, old_der = site.fetch_anchor()
    old_conn = http.client.HTTPSConnection("localhost", site.tls_port,
                                           context=anchor_context(old_der))
    old_conn.request("GET", CURRENT)
    old_conn.getresponse().read()

    pki.init_set(host.store, host.settings.path("ca_dir"), "second", ["localhost", "127.0.0.1"])
    host.certificates.activate("second")
    _, new_der = site.fetch_anchor()
    assert new_der != old_der
    assert site.tls_get(new_der, CURRENT)[0] == 200
    with socket.create_connection(("127.0.0.1", site.tls_port), timeout=5) as sock:
        with pytest.raises(ssl.SSLCertVerificationError):
            anchor_context(old_der).wrap_socket(sock, server_hostname="localhost")
    old_conn.request("GET", CURRENT)  # the open connection still works on its old context
    assert old_conn.getresponse().status == 200
    old_conn.close()


def test_listener_status_counts_requests_and_errors(host, site):
    http_get(site.http_port, CURRENT)
    http_get(site.http_port, "/missing")
    wait_for_event(host.log, lambda e: e.path == "/missing")  # recorded once the reply is sent
    status = host.listeners["http"].status()
    assert status.requests == 2 and status.errors == 1
    assert "404" in status.last_error and status.since


def test_tls_listener_without_an_active_set_fails_with_the_fix(host):
    host.stop()
    host.certificates._swap(None)
    status = host.listeners["tls"].start()
    assert status.state == FAILED and "certs activate" in status.last_error
    assert host.listeners["http"].start().state == RUNNING


def test_listener_failure_in_the_app_is_a_json_500_not_a_dead_listener(settings):
    from server.events import RequestLog

    def broken(environ, start_response):
        raise RuntimeError("boom")

    listener = Listener("http", broken, RequestLog(), "127.0.0.1", 0, "--http-port")
    listener.start()
    try:
        status, _, _ = http_get(listener.bound_port, "/")
        assert status == 500
        status, _, _ = http_get(listener.bound_port, "/")
        assert status == 500 and listener.running
    finally:
        listener.stop()


PARTIAL_CLIENT_HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"


@pytest.fixture
def small_host(settings, site_key):
    """A host with two worker threads per listener and a 5 s connection timeout."""
    from server.host import Host

    settings.threads = 2
    settings.connection_timeout = 5.0
    h = Host.from_settings(settings, env={})
    assert all(s.state == RUNNING for s in h.start().values())
    yield h
    h.close()


def _stalled_clients(port: int, first_bytes: bytes, count: int) -> list[socket.socket]:
    clients = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(first_bytes)
        clients.append(sock)
    return clients


@pytest.mark.parametrize("listener, first_bytes", [
    ("tls", PARTIAL_CLIENT_HELLO),  # a lock on bad Wi-Fi, stalled in its handshake
    ("http", b"GET / HTTP/1.1\r\n"),  # or in its request line
])
def test_more_stalled_clients_than_threads_delay_nobody(small_host, listener, first_bytes):
    from .helpers import Site

    site = Site(small_host, None)
    _, der = site.fetch_anchor()
    port = small_host.listeners[listener].bound_port
    stalled = _stalled_clients(port, first_bytes, small_host.settings.threads + 3)
    try:
        started = time.monotonic()
        status = (site.tls_get(der, CURRENT) if listener == "tls" else http_get(port, CURRENT))[0]
        elapsed = time.monotonic() - started
        assert status == 200 and elapsed < 1.0, f"served in {elapsed:.2f} s"
    finally:
        for sock in stalled:
            sock.close()


def test_stalled_handshakes_expire_and_are_logged_while_others_are_served(small_host):
    port = small_host.listeners["tls"].bound_port
    stalled = _stalled_clients(port, PARTIAL_CLIENT_HELLO, small_host.settings.threads + 3)
    started = time.monotonic()
    try:
        for sock in stalled:
            sock.settimeout(10)
            assert sock.recv(100) == b""  # closed by the server after connection_timeout
        elapsed = time.monotonic() - started
    finally:
        for sock in stalled:
            sock.close()
    assert 4.0 < elapsed < 6.5, f"closed after {elapsed:.2f} s"
    timeouts = wait_for_event(small_host.log, lambda e: e.kind == "handshake"
                              and "timed out" in e.error)
    assert len(timeouts) >= 1


def test_stop_is_quick_with_more_stalled_clients_than_threads(small_host):
    ports = [small_host.listeners[n].bound_port for n in ("http", "tls")]
    stalled = (_stalled_clients(ports[1], PARTIAL_CLIENT_HELLO, 5)
               + _stalled_clients(ports[0], b"GET / HTTP/1.1\r\n", 5))
    try:
        started = time.monotonic()
        small_host.stop()
        elapsed = time.monotonic() - started
    finally:
        for sock in stalled:
            sock.close()
    assert elapsed < 1.0, f"stop took {elapsed:.2f} s"
    assert not [e for e in small_host.log.recent() if e.kind == "handshake"]


def _head(raw: bytes) -> list[bytes]:
    return raw.split(b"\r\n\r\n")[0].split(b"\r\n")


def test_request_line_over_the_limit_gets_414_with_content_length_and_is_logged(site):
    raw = raw_exchange(site.http_port, f"GET /{'a' * 20_000} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    head = _head(raw)
    assert head[0].startswith(b"HTTP/1.1 414 ")
    assert any(line.startswith(b"Content-Length: ") for line in head)
    event = wait_for_event(site.host.log, lambda e: e.status == 414)[0]
    assert event.failed


def test_headers_over_the_limit_get_431_with_content_length_and_are_logged(site):
    headers = "".join(f"X-Filler-{i}: {'v' * 1000}\r\n" for i in range(20))
    raw = raw_exchange(site.http_port, f"GET {CURRENT} HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
    head = _head(raw)
    assert head[0].startswith(b"HTTP/1.1 431 ")
    assert any(line.startswith(b"Content-Length: ") for line in head)
    event = wait_for_event(site.host.log, lambda e: e.status == 431)[0]
    assert event.path == CURRENT and event.method == "GET"


def test_long_path_within_the_limit_is_served_and_cut_in_the_log(site):
    path = "/" + "a" * 10_000
    assert http_get(site.http_port, path)[0] == 404
    event = wait_for_event(site.host.log, lambda e: e.path.startswith("/aaa"))[0]
    assert len(event.path) < 1100 and "cut" in event.path


def test_handshake_with_no_active_set_any_more_is_a_logged_failure(host, site):
    _, der = site.fetch_anchor()
    host.certificates._swap(None)  # the set went away while the listener runs
    with socket.create_connection(("127.0.0.1", site.tls_port), timeout=5) as sock:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            anchor_context(der).wrap_socket(sock, server_hostname="localhost")
    event = wait_for_event(host.log, lambda e: e.kind == "handshake")[0]
    assert "no active certificate set" in event.error
    assert "no active certificate set" in host.listeners["tls"].status().last_error


def test_client_that_closes_during_the_handshake_is_logged_as_such(site):
    with socket.create_connection(("127.0.0.1", site.tls_port), timeout=5) as half:
        half.sendall(PARTIAL_CLIENT_HELLO)
    event = wait_for_event(site.host.log, lambda e: e.kind == "handshake")[0]
    assert event.error == "client closed the connection during the handshake"


def test_handshake_reason_of_an_eof_is_a_closed_connection():
    """Which of these a close mid-handshake raises depends on when the FIN arrives (a clean
    close after part of a ClientHello was seen as SSLZeroReturnError once in a full run)."""
    from server.listeners import handshake_reason

    for exc in (ssl.SSLEOFError(8, "EOF occurred in violation of protocol"),
                ssl.SSLZeroReturnError(6, "TLS/SSL connection has been closed (EOF)"),
                ConnectionResetError(104, "Connection reset by peer")):
        assert handshake_reason(exc) == "client closed the connection during the handshake"


def test_request_log_keeps_header_names_as_the_client_spelled_them(site):
    raw_exchange(site.http_port, f"GET {CURRENT} HTTP/1.1\r\nHost: x\r\nX-LOCK-fw: 1.2\r\n\r\n"
                 .encode())
    event = wait_for_event(site.host.log, lambda e: "X-LOCK-fw" in e.headers)[0]
    assert event.headers["X-LOCK-fw"] == "1.2"
