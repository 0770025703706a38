"""The embedded HTTP and TLS listeners (cheroot), each started and stopped from any thread.

Why cheroot (DESIGN.md "Listeners"): it keeps HTTP/1.1 connections open (a lock sends its
call-in on one connection), keeps header spelling, reports a busy port as ``OSError``, and its
selector keeps silent clients off the worker threads. Its stock TLS adapter handshakes on the
accept thread; ours wraps with ``do_handshake_on_connect=False`` and handshakes on the worker's
first read, so a client that never finishes its handshake delays nobody.
"""

from __future__ import annotations

import datetime as dt
import errno
import io
import itertools
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Callable

from cheroot import errors as cheroot_errors
from cheroot import wsgi
from cheroot.makefile import StreamReader, StreamWriter
from cheroot.ssl import Adapter

from .events import Event, RequestLog, safe_headers

STOPPED, RUNNING, FAILED = "STOPPED", "RUNNING", "FAILED"
SERIAL_ENVIRON_KEY = "engage.serial"
CONNECTION_ENVIRON_KEY = "engage.connection"  # an id per connection, never reused
STOP_GRACE_SECONDS = 0.5  # requests in flight get this long to finish when a listener stops


@dataclass
class ListenerStatus:
    name: str
    state: str
    address: str
    port: int
    since: str = ""
    requests: int = 0
    errors: int = 0
    last_error: str = ""


def bind_error_message(exc: OSError, address: str, port: int, flag: str) -> str:
    """What went wrong binding a port, and how to fix it."""
    code = exc.errno
    if code is None:  # cheroot re-raises bind errors as text: "... [Errno 98] Address ..."
        found = re.search(r"\[Errno (\d+)\]", str(exc))
        code = int(found.group(1)) if found else None
    if code == errno.EADDRINUSE:
        return (f"port {port} on {address} is already in use by another program: stop it, "
                f"or choose another port with {flag}")
    if code == errno.EACCES:
        return (f"permission denied binding port {port}: ports below 1024 need root or the "
                "CAP_NET_BIND_SERVICE capability (sudo setcap cap_net_bind_service=+ep "
                f"<your python>), or use a higher port with {flag} and forward {port} to it")
    if code == errno.EADDRNOTAVAIL:
        return f"address {address} is not an address of this machine: check --bind"
    return f"cannot listen on {address}:{port}: {exc.strerror or exc}"


class _HandshakeIO(socket.SocketIO):
    """Raw reader that completes the TLS handshake on the worker thread's first read."""

    def __init__(self, sock: ssl.SSLSocket, mode: str, adapter: "LazyHandshakeAdapter"):
        super().__init__(sock, mode)
        self._tls = sock
        self._adapter = adapter
        self._handshaken = False

    def readinto(self, b):
        if not self._handshaken:
            self._handshaken = True
            self._adapter.handshake(self._tls)
        return super().readinto(b)


class _HandshakeReader(StreamReader):
    """cheroot's reader over a raw reader that handshakes first."""

    def __init__(self, sock: ssl.SSLSocket, adapter: "LazyHandshakeAdapter", bufsize: int):
        super(StreamReader, self).__init__(_HandshakeIO(sock, "rb", adapter), bufsize)
        self.bytes_read = 0


class LazyHandshakeAdapter(Adapter):
    """cheroot TLS adapter that wraps each connection with the context current at accept time
    and defers the handshake to the worker thread."""

    def __init__(self, context: Callable[[], ssl.SSLContext],
                 on_failure: Callable[[ssl.SSLSocket, BaseException], None]):
        super().__init__(None, None)
        self._current = context
        self._on_failure = on_failure
        self._handshaking: set[ssl.SSLSocket] = set()
        self._lock = threading.Lock()
        self._stopping = False

    def handshake(self, tls: ssl.SSLSocket) -> None:
        """Complete the handshake on this (worker) thread; a failure is an event."""
        with self._lock:
            self._handshaking.add(tls)
        try:
            tls.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            if not self._stopping:
                self._on_failure(tls, exc)
            raise cheroot_errors.FatalSSLAlert(str(exc)) from exc
        finally:
            with self._lock:
                self._handshaking.discard(tls)
        tls.engage_env["SSL_PROTOCOL"] = tls.version() or ""

    def abort_handshakes(self) -> None:
        """On stop: drop clients still in their handshake (no request is in flight there)."""
        with self._lock:
            self._stopping = True
            pending = list(self._handshaking)
        for tls in pending:
            try:
                tls.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def bind(self, sock):
        return sock

    def wrap(self, sock):
        try:
            tls = self._current().wrap_socket(sock, server_side=True,
                                              do_handshake_on_connect=False)
        except (ssl.SSLError, OSError) as exc:
            raise cheroot_errors.FatalSSLAlert(str(exc)) from exc
        tls.engage_env = {"wsgi.url_scheme": "https", "HTTPS": "on", "SSL_PROTOCOL": ""}
        return tls, tls.engage_env

    def get_environ(self, sock=None):
        return getattr(sock, "engage_env", {})

    def makefile(self, sock, mode="r", bufsize=io.DEFAULT_BUFFER_SIZE):
        if "r" in mode:
            return _HandshakeReader(sock, self, bufsize)
        return StreamWriter(sock, mode, bufsize)


def handshake_reason(exc: BaseException) -> str:
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "handshake timed out (client went silent)"
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or exc.__class__.__name__
        hints = {
            "TLSV1_ALERT_UNKNOWN_CA": "client does not trust our chain (unknown CA)",
            "SSLV3_ALERT_BAD_CERTIFICATE": "client rejected our certificate",
            "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "client rejected our certificate",
            "UNSUPPORTED_PROTOCOL": "client's TLS version is below the configured minimum",
            "HTTP_REQUEST": "client spoke plain HTTP to the TLS port",
            "NO_SHARED_CIPHER": "no cipher suite in common with the client",
        }
        return hints.get(reason.upper(), reason)
    if isinstance(exc, (ConnectionResetError, BrokenPipeError)) or \
            isinstance(exc, ssl.SSLEOFError):
        return "client closed the connection during the handshake"
    return str(exc) or exc.__class__.__name__


class Listener:
    """One embedded server. ``start`` binds synchronously (errors are returned in the status,
    never raised to the caller's death) and serves on a thread; ``stop`` is quick and
    idempotent; both may be called again any number of times."""

    def __init__(self, name: str, app, log: RequestLog, bind: str, port: int,
                 port_flag: str, timeout: float = 10.0, threads: int = 32,
                 tls_context: Callable[[], ssl.SSLContext] | None = None):
        self.name = name
        self.app = app
        self.log = log
        self.bind = bind
        self.port = port
        self.port_flag = port_flag
        self.timeout = timeout
        self.threads = threads
        self.tls_context = tls_context
        self._lock = threading.RLock()
        self._server: wsgi.Server | None = None
        self._thread: threading.Thread | None = None
        self._state = STOPPED
        self._since = ""
        self._bound_port = 0
        self._requests = 0
        self._errors = 0
        self._last_error = ""
        self._count_lock = threading.Lock()

    # --- control -------------------------------------------------------------------------

    def start(self) -> ListenerStatus:
        with self._lock:
            if self._state == RUNNING:
                return self.status()
            try:
                server = self._make_server()
                server.prepare()
            except OSError as exc:
                return self._fail(bind_error_message(exc, self.bind, self.port, self.port_flag))
            except Exception as exc:  # a bad certificate set, for instance
                return self._fail(str(exc) or exc.__class__.__name__)
            self._server = server
            self._bound_port = server.socket.getsockname()[1]
            self._thread = threading.Thread(target=self._serve, args=(server,),
                                            name=f"listener-{self.name}", daemon=True)
            self._state = RUNNING
            self._since = _now()
            self._last_error = ""
            self._thread.start()
            return self.status()

    def stop(self) -> ListenerStatus:
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
            if server is not None:
                if isinstance(server.ssl_adapter, LazyHandshakeAdapter):
                    server.ssl_adapter.abort_handshakes()
                server.stop()
            if thread is not None:
                thread.join(timeout=5)
            if self._state == RUNNING:
                self._state = STOPPED
                self._since = _now()
            return self.status()

    def status(self) -> ListenerStatus:
        return ListenerStatus(
            name=self.name, state=self._state, address=self.bind,
            port=self._bound_port if self._state == RUNNING else self.port,
            since=self._since, requests=self._requests, errors=self._errors,
            last_error=self._last_error)

    @property
    def running(self) -> bool:
        return self._state == RUNNING

    @property
    def bound_port(self) -> int:
        return self._bound_port

    # --- internals -----------------------------------------------------------------------

    def _make_server(self) -> wsgi.Server:
        server = _Server((self.bind, self.port), self._wsgi, numthreads=self.threads,
                             server_name="engage-console", timeout=self.timeout,
                             request_queue_size=1024)
        server.gateway = _ConnectionGateway
        server.expiration_interval = 0.1  # the selector notices a stop within 0.1 s
        # cheroot answers "Connection: close" once 10 connections are open; a lock sends its
        # whole call-in on one connection, so every connection stays open until the client
        # closes it or it idles past ``timeout`` (which bounds how many can pile up).
        server.keep_alive_conn_limit = None
        server.shutdown_timeout = STOP_GRACE_SECONDS
        server.error_log = lambda *a, **k: None  # failures reach the request log instead
        if self.tls_context is not None:
            self.tls_context()  # no usable set: fail now, with the store's message
            server.ssl_adapter = LazyHandshakeAdapter(self.tls_context, self._handshake_failed)
        return server

    def _serve(self, server: wsgi.Server) -> None:
        try:
            server.serve()
        except Exception as exc:  # pragma: no cover - cheroot keeps serving on request errors
            with self._lock:
                if self._server is server:
                    self._fail(f"listener stopped: {exc}")

    def _fail(self, message: str) -> ListenerStatus:
        self._state = FAILED
        self._since = _now()
        self._last_error = message
        return self.status()

    def _count(self, event: Event) -> None:
        with self._count_lock:
            if event.kind == "request":
                self._requests += 1
            if event.failed:
                self._errors += 1
                self._last_error = (
                    f"TLS handshake from {event.client}: {event.error}" if event.kind == "handshake"
                    else f"{event.status} {event.method} {event.path}"
                    + (f": {event.error}" if event.error else ""))

    def _handshake_failed(self, sock: ssl.SSLSocket, exc: BaseException) -> None:
        try:
            client = sock.getpeername()[0]
        except OSError:
            client = "?"
        event = Event(listener=self.name, client=client, kind="handshake",
                      error=handshake_reason(exc))
        self._count(event)
        self.log.record(event)

    def _wsgi(self, environ, start_response):
        started = time.perf_counter()
        seen: dict = {}

        def recording_start_response(status, headers, exc_info=None):
            seen["status"] = int(status[:3])
            seen["bytes"] = next((int(v) for k, v in headers if k.lower() == "content-length"), 0)
            return start_response(status, headers, exc_info)

        body = self.app(environ, recording_start_response)
        return _Closing(body, lambda: self._record(environ, seen, started))

    def _record(self, environ, seen: dict, started: float) -> None:
        headers = ((k[5:].replace("_", "-").title(), v) for k, v in environ.items()
                   if k.startswith("HTTP_"))
        event = Event(
            listener=self.name,
            client=environ.get("REMOTE_ADDR", ""),
            method=environ.get("REQUEST_METHOD", ""),
            path=environ.get("PATH_INFO", ""),
            query=environ.get("QUERY_STRING", ""),
            status=seen.get("status", 0),
            bytes=seen.get("bytes", 0),
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            serial=environ.get(SERIAL_ENVIRON_KEY, ""),
            tls_version=environ.get("SSL_PROTOCOL", ""),
            auth_present="HTTP_AUTHORIZATION" in environ,
            error=environ.get("engage.error", ""),
            headers=safe_headers(headers),
        )
        self._count(event)
        self.log.record(event)


class _Server(wsgi.Server):
    """cheroot hands a new connection straight to a worker, where a client that connects and
    says nothing would hold the worker until its timeout. Here a new connection waits in the
    selector until it sends its first byte; silent clients cost no thread and expire there."""

    def process_conn(self, conn):
        if getattr(conn, "engage_waited", False):
            return super().process_conn(conn)
        conn.engage_waited = True
        self._connections.put(conn)


class _ConnectionGateway(wsgi.Gateway_10):
    """WSGI 1.0 gateway that puts the connection's id in the environ: a number given once per
    connection and never reused, unlike its address and port."""

    _ids = itertools.count(1)

    def get_environ(self):
        env = super().get_environ()
        conn = self.req.conn
        if not hasattr(conn, "engage_id"):
            conn.engage_id = next(self._ids)
        env[CONNECTION_ENVIRON_KEY] = conn.engage_id
        return env


class _Closing:
    """A WSGI body that runs ``on_close`` once the server has sent it."""

    def __init__(self, body, on_close):
        self._body = body
        self._on_close = on_close

    def __iter__(self):
        return iter(self._body)

    def close(self):
        try:
            if hasattr(self._body, "close"):
                self._body.close()
        finally:
            self._on_close()


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
