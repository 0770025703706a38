"""The embedded HTTP and TLS listeners, each started and stopped from any thread.

Each listener is a :class:`server.http.server.Server` (HTTP/1.1, persistent connections, stalled
clients holding no thread) with the request log wired in: one event per request, per request
the server refused itself, and per failed TLS handshake.
"""

from __future__ import annotations

import datetime as dt
import errno
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Callable

from .events import Event, RequestLog, safe_headers
from .http.connection import ClosedAfterHandshake
from .http.server import BODY_WAIT, LOOPS, Server
from .http.wsgi import FAILED_ENVIRON_KEY

STOPPED, RUNNING, FAILED = "STOPPED", "RUNNING", "FAILED"
SERIAL_ENVIRON_KEY = "engage.serial"
CONNECTION_ENVIRON_KEY = "engage.connection"  # an id per connection, never reused
PROVISION_ENVIRON_KEY = "engage.provision"  # a provision event: first call-in, or refused
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


def handshake_reason(exc: BaseException) -> str:
    """Why a handshake failed, in words an operator can act on."""
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "handshake timed out (client went silent)"
    if isinstance(exc, ClosedAfterHandshake):
        return "client closed after handshake: rejected our chain?"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError,
                        ssl.SSLZeroReturnError)):
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
                 port_flag: str, timeout: float = 10.0, threads: int = LOOPS,
                 body_wait: int = BODY_WAIT,
                 tls_context: Callable[[tuple | None], ssl.SSLContext] | None = None,
                 on_handshake_failure: Callable[[str, str], None] | None = None):
        self.name = name
        self.app = app
        self.log = log
        self.bind = bind
        self.port = port
        self.port_flag = port_flag
        self.timeout = timeout
        self.threads = threads
        self.body_wait = body_wait
        self.tls_context = tls_context
        self.on_handshake_failure = on_handshake_failure  # (client address, reason in words)
        self._lock = threading.RLock()
        self._server: Server | None = None
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
                server.bind()
            except OSError as exc:
                return self._fail(bind_error_message(exc, self.bind, self.port, self.port_flag))
            except Exception as exc:  # a bad certificate set, for instance
                return self._fail(str(exc) or exc.__class__.__name__)
            self._server = server
            self._bound_port = server.port
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

    def _make_server(self) -> Server:
        if self.tls_context is not None:
            self.tls_context(None)  # no usable set: fail now, with the store's message
        return Server((self.bind, self.port), self._wsgi, threads=self.threads,
                      timeout=self.timeout, grace=STOP_GRACE_SECONDS, body_wait=self.body_wait,
                      tls_context=self.tls_context, on_handshake_failure=self._handshake_failed,
                      on_refused=self._refused, connection_key=CONNECTION_ENVIRON_KEY)

    def _serve(self, server: Server) -> None:
        try:
            server.serve()
        except Exception as exc:  # pragma: no cover - the server keeps serving on request errors
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

    def _handshake_failed(self, address, exc: BaseException) -> None:
        event = Event(listener=self.name, client=address[0] if address else "?",
                      kind="handshake", error=handshake_reason(exc))
        self._count(event)
        self.log.record(event)
        if self.on_handshake_failure is not None and address:
            self.on_handshake_failure(event.client, event.error)

    def _refused(self, address, status: str, method: str, target: str, message: str) -> None:
        path, _, query = target.partition("?")
        event = Event(listener=self.name, client=address[0] if address else "", method=method,
                      path=path, query=query, status=int(status[:3]),
                      bytes=len(message), error=message or status[4:])
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
        if environ.get(FAILED_ENVIRON_KEY):
            return  # never sent: the server reports the 500 it sent instead
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
            provision=environ.get(PROVISION_ENVIRON_KEY, ""),
            client_cert=environ.get("engage.client_cert_label", ""),
        )
        self._count(event)
        self.log.record(event)


def _request_headers(environ) -> list[tuple[str, str]]:
    """The request's headers as received (spelled as the client spelled them); from another
    server, rebuilt from the environ (``.title()``)."""
    if "engage.headers" in environ:
        return environ["engage.headers"]
    headers = [(k[5:].replace("_", "-").title(), v) for k, v in environ.items()
               if k.startswith("HTTP_")]
    headers += [(name, environ[key]) for key, name in (("CONTENT_TYPE", "Content-Type"),
                                                       ("CONTENT_LENGTH", "Content-Length"))
                if environ.get(key)]
    return headers


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
