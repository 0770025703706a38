"""The embedded HTTP and TLS listeners (cheroot), each started and stopped from any thread.

Why cheroot (DESIGN.md "Listeners"): it keeps HTTP/1.1 connections open (a lock sends its
call-in on one connection), keeps header spelling, reports a busy port as ``OSError``, and its
selector keeps idle clients off the worker threads. Its stock TLS adapter handshakes on the
accept thread and its workers block reading a request. Here a connection waits in the selector,
not on a worker, until its TLS handshake (run non-blocking, step by step) and its request's
header block are in: a client that stalls anywhere in them delays nobody and expires there.
A stalled request body still holds a worker until ``timeout``.
"""

from __future__ import annotations

import datetime as dt
import errno
import io
import itertools
import re
import selectors
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Callable

from cheroot import errors as cheroot_errors
from cheroot import wsgi
from cheroot.makefile import MakeFile, StreamReader, StreamWriter
from cheroot.server import HTTPConnection, HTTPRequest
from cheroot.ssl import Adapter

from .errors import CertificateError
from .events import Event, RequestLog, safe_headers

STOPPED, RUNNING, FAILED = "STOPPED", "RUNNING", "FAILED"
SERIAL_ENVIRON_KEY = "engage.serial"
CONNECTION_ENVIRON_KEY = "engage.connection"  # an id per connection, never reused
STOP_GRACE_SECONDS = 0.5  # requests in flight get this long to finish when a listener stops
MAX_HEADER_BYTES = 16 * 1024  # a request line and headers longer than this are refused
HEAD_END = re.compile(rb"\n\r?\n")  # the blank line that ends a header block
REQUEST_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n"
                   b"Connection: close\r\n\r\n")


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


class LazyHandshakeAdapter(Adapter):
    """cheroot TLS adapter that wraps each connection with the context current at accept time
    and leaves the handshake to the worker threads, one non-blocking step at a time."""

    def __init__(self, context: Callable[[], ssl.SSLContext],
                 on_failure: Callable[[socket.socket, BaseException], None]):
        super().__init__(None, None)
        self._current = context
        self._on_failure = on_failure

    def handshake(self, tls: ssl.SSLSocket) -> int | None:
        """Advance a non-blocking handshake: the selector event it waits for, or None once
        done. A failure is an event and raises ``FatalSSLAlert``."""
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            return selectors.EVENT_READ
        except ssl.SSLWantWriteError:
            return selectors.EVENT_WRITE
        except (ssl.SSLError, OSError) as exc:
            self._on_failure(tls, exc)
            raise cheroot_errors.FatalSSLAlert(str(exc)) from exc
        tls.engage_env["SSL_PROTOCOL"] = tls.version() or ""
        return None

    def timed_out(self, tls: ssl.SSLSocket) -> None:
        self._on_failure(tls, TimeoutError())

    def bind(self, sock):
        return sock

    def wrap(self, sock):
        """Wrap with the current context; no usable set any more is a handshake failure."""
        try:
            tls = self._current().wrap_socket(sock, server_side=True,
                                              do_handshake_on_connect=False)
        except (CertificateError, OSError) as exc:
            self._on_failure(sock, exc)
            sock.close()
            raise cheroot_errors.FatalSSLAlert(str(exc)) from exc
        tls.engage_env = {"wsgi.url_scheme": "https", "HTTPS": "on", "SSL_PROTOCOL": ""}
        return tls, tls.engage_env

    def get_environ(self, sock=None):
        return getattr(sock, "engage_env", {})

    def makefile(self, sock, mode="r", bufsize=io.DEFAULT_BUFFER_SIZE):
        return MakeFile(sock, mode, bufsize)


def handshake_reason(exc: BaseException) -> str:
    """Why a handshake failed, in words an operator can act on."""
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "handshake timed out (client went silent)"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError)):
        return "client closed the connection during the handshake"
    if isinstance(exc, ssl.SSLError):
        reason = getattr(exc, "reason", None) or exc.__class__.__name__
        hints = {
            "TLSV1_ALERT_UNKNOWN_CA": "client does not trust our chain (unknown CA)",
            "SSLV3_ALERT_BAD_CERTIFICATE": "client rejected our certificate",
            "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "client rejected our certificate",
            "UNSUPPORTED_PROTOCOL": "client's TLS version is below the configured minimum",
            "HTTP_REQUEST": "client spoke plain HTTP to the TLS port",
            "NO_SHARED_CIPHER": "no cipher suite in common with the client",
        }
        return hints.get(reason.upper(), reason)
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
        server.expiration_interval = 0.1  # the selector notices a stop within 0.1 s
        # cheroot answers "Connection: close" once 10 connections are open; a lock sends its
        # whole call-in on one connection, so every connection stays open until the client
        # closes it or it idles past ``timeout`` (which bounds how many can pile up).
        server.keep_alive_conn_limit = None
        server.max_request_header_size = MAX_HEADER_BYTES
        server.on_refused = self._refused
        server.gateway = _Gateway
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

    def _handshake_failed(self, sock: socket.socket, exc: BaseException) -> None:
        try:
            client = sock.getpeername()[0]
        except OSError:
            client = "?"
        event = Event(listener=self.name, client=client, kind="handshake",
                      error=handshake_reason(exc))
        self._count(event)
        self.log.record(event)

    def _refused(self, req: "_Request", status: str, message: str) -> None:
        event = Event(listener=self.name, client=req.conn.remote_addr or "",
                      method=getattr(req, "method", b"").decode("latin-1"),
                      path=getattr(req, "uri", b"").decode("latin-1"),
                      status=int(status[:3]), bytes=len(message), error=message or status[4:])
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
            headers=safe_headers(_request_headers(environ)),
        )
        self._count(event)
        self.log.record(event)


def _request_headers(environ) -> list[tuple[str, str]]:
    """The request's headers as WSGI keeps them (their spelling is lost: ``.title()``)."""
    headers = [(k[5:].replace("_", "-").title(), v) for k, v in environ.items()
               if k.startswith("HTTP_")]
    headers += [(name, environ[key]) for key, name in (("CONTENT_TYPE", "Content-Type"),
                                                       ("CONTENT_LENGTH", "Content-Length"))
                if environ.get(key)]
    return headers


class _HeadIO(socket.SocketIO):
    """Raw socket reader that first returns the bytes ``_Reader.gather`` took in."""

    def __init__(self, sock: socket.socket):
        super().__init__(sock, "rb")
        self.head = bytearray()

    def readinto(self, b):
        if not self.head:
            return super().readinto(b)
        n = min(len(b), len(self.head))
        b[:n] = self.head[:n]
        del self.head[:n]
        return n


class _Reader(StreamReader):
    """cheroot's reader, which can also take in what has arrived without blocking."""

    def __init__(self, sock: socket.socket, bufsize: int):
        super(StreamReader, self).__init__(_HeadIO(sock), bufsize)
        self.bytes_read = 0

    def gather(self, sock: socket.socket) -> int | None:
        """Read what the (non-blocking) socket holds: None once a whole header block, the end
        of the stream or more than ``MAX_HEADER_BYTES`` is in, else the event to wait for."""
        head = self.raw.head
        if self.has_data():  # what is buffered came before what is in ``head``
            head[:0] = self.read1(len(self._read_buf) - self._read_pos)
        while not HEAD_END.search(head) and len(head) <= MAX_HEADER_BYTES:
            try:
                data = sock.recv(65536)
            except (BlockingIOError, ssl.SSLWantReadError):
                return selectors.EVENT_READ
            except ssl.SSLWantWriteError:
                return selectors.EVENT_WRITE
            if not data:
                return None
            head += data
        return None


class _Request(HTTPRequest):
    """cheroot's request parser; its own short answers (a malformed or too large request, a
    body that times out) are HTTP/1.1 with ``Content-Length``, close the connection and are
    request events."""

    def read_request_headers(self):
        try:
            return super().read_request_headers()
        except cheroot_errors.MaxSizeExceeded:
            self.simple_response("431 Request Header Fields Too Large",
                                 f"The request line and headers exceed {MAX_HEADER_BYTES} bytes.")
            return False

    def simple_response(self, status, msg=""):
        status = str(status)
        body = msg.encode("latin-1") if isinstance(msg, str) else msg
        self.close_connection = True
        head = (f"{self.server.protocol} {status}\r\nContent-Length: {len(body)}\r\n"
                "Content-Type: text/plain\r\nConnection: close\r\n\r\n")
        try:
            self.conn.wfile.write(head.encode("latin-1") + body)
        except OSError:
            pass
        self.server.on_refused(self, status, body.decode("latin-1"))


class _Gateway(wsgi.Gateway_10):
    """WSGI environ with the connection's id, and SERVER_NAME and SERVER_PORT set to the
    address the connection arrived on (cheroot gives the server's name and the configured
    port, 0 for an ephemeral one)."""

    def get_environ(self):
        env = super().get_environ()
        env[CONNECTION_ENVIRON_KEY] = self.req.conn.engage_id
        try:
            address, port = self.req.conn.socket.getsockname()[:2]
        except OSError:
            return env
        env["SERVER_NAME"], env["SERVER_PORT"] = address, str(port)
        return env


def _makefile(sock, mode="r", bufsize=io.DEFAULT_BUFFER_SIZE):
    return _Reader(sock, bufsize) if "r" in mode else StreamWriter(sock, mode, bufsize)


class _Connection(HTTPConnection):
    """A connection that goes back to the selector, not onto a worker's blocking read, until its
    TLS handshake and its request's header block are in; the selector expires it when that takes
    longer than ``timeout`` (a handshake counts from accept)."""

    RequestHandlerClass = _Request

    _ids = itertools.count(1)

    def __init__(self, server, sock, makefile=None):
        super().__init__(server, sock, _makefile)
        self.engage_id = next(self._ids)  # never reused, unlike the address and port
        self.handshaking = isinstance(sock, ssl.SSLSocket)
        # "handshake" or "request" while it waits in the selector; a new one waits there first
        self.waiting_for = "handshake" if self.handshaking else "request"
        self.wait_event = selectors.EVENT_READ
        self.new = True
        self._started: float | None = time.time()  # of the unfinished handshake or header block
        self._last_used: float | None = None

    @property
    def last_used(self):
        """What the selector's expiry compares with ``timeout``."""
        return self._started or self._last_used

    @last_used.setter
    def last_used(self, value):
        self._last_used = value

    def communicate(self):
        self.waiting_for = ""
        try:
            event = self._gather()
        except (OSError, cheroot_errors.FatalSSLAlert):
            return False
        if event is not None:
            self.wait_event = event
            self.waiting_for = "handshake" if self.handshaking else "request"
            return True  # the worker hands it back to the selector
        self._started = None
        return super().communicate()

    def _gather(self) -> int | None:
        self.socket.setblocking(False)
        try:
            if self.handshaking:
                event = self.server.ssl_adapter.handshake(self.socket)
                if event is not None:
                    return event
                self.handshaking = False
            event = self.rfile.gather(self.socket)
            if event is not None and self._started is None and self.rfile.raw.head:
                self._started = time.time()
            return event
        finally:
            self.socket.settimeout(self.server.timeout)

    def close(self):
        """Close; one the selector expired in its handshake is a handshake timeout event, one
        expired in its request headers gets a 408."""
        if self.waiting_for and self.server.ready:
            if self.waiting_for == "handshake":
                self.server.ssl_adapter.timed_out(self.socket)
            else:
                self.socket.setblocking(False)
                try:
                    self.socket.send(REQUEST_TIMEOUT)
                except OSError:
                    pass
        self.waiting_for = ""
        super().close()


class _Server(wsgi.Server):
    """cheroot's server with connections that wait in the selector (see ``_Connection``)."""

    ConnectionClass = _Connection
    on_refused = staticmethod(lambda req, status, message: None)

    def process_conn(self, conn):
        if conn.new:  # a worker takes it once it has sent something
            conn.new = False
            self._connections.put(conn)
        else:
            super().process_conn(conn)

    def put_conn(self, conn):
        """Back to the selector; a handshake that must write first waits until it can."""
        if conn.wait_event == selectors.EVENT_WRITE and self.ready:
            conn.wait_event = selectors.EVENT_READ
            conn.last_used = time.time()
            self._connections._selector.register(conn.socket.fileno(), selectors.EVENT_WRITE,
                                                 data=conn)
            return
        super().put_conn(conn)


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
