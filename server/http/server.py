"""The HTTP/1.1 server: :class:`Server` binds, runs its event loops
(:mod:`server.http.loop`) and takes each connection through its request: header block, body,
the application call, the reply.

What the locks and the listeners need from it (DESIGN.md "Listeners"): HTTP/1.1 with persistent
connections, ``Content-Length:`` on every response, a client that stalls delays nobody, a TLS
context taken afresh for each new connection, and a quick stop.
"""

from __future__ import annotations

import itertools
import socket
import ssl
import threading
import time
from typing import Callable

from .connection import (BODY, HANDSHAKE, HEAD, IN, OUT, RECV_BYTES, SEND, ClosedAfterHandshake,
                         Connection, send)
from .loop import WAKE_INTERVAL, EventLoop
from .parse import HEAD_END, MAX_HEADER_BYTES, Refused
from .wsgi import FAILED_ENVIRON_KEY, Response, close_result, request_environ

LOOPS = 2  # event loops per server; why so few: see Server
BODY_WAIT = 1 << 20     # bytes of a body awaited before the application is called
REQUEST_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n"
                   b"Connection: close\r\n\r\n")


class Server:
    """Serve ``app`` on ``address``. ``bind`` raises ``OSError``; ``serve`` runs the event
    loops until ``stop``, which gives requests in flight ``grace`` seconds to finish.

    ``threads`` event loops: two suit most hosts. Python code runs one thread at a time, while
    handshake crypto and disk writes overlap across loops; a loop with several connections
    rarely sleeps, whereas many loops with one connection each sleep and wake (two context
    switches) at every step. On the benchmark machine (2 cores) 32 loops cost 17 context
    switches per TLS request and 2 loops 3: 1.6 vs 1.4 ms of CPU. More loops help when
    application calls wait long (records on slow storage): a call holds its own loop only.

    ``on_handshake_failure(address, exc)`` (a TLS client that closes after its handshake
    without a request too: ``ClosedAfterHandshake``) and ``on_refused(address, status, method,
    target, message)`` report what never reaches the application."""

    def __init__(self, address: tuple[str, int], app, *, threads: int = LOOPS,
                 timeout: float = 10.0, grace: float = 0.5, body_wait: int = BODY_WAIT,
                 tls_context: Callable[[tuple], ssl.SSLContext] | None = None,
                 on_handshake_failure: Callable = lambda address, exc: None,
                 on_refused: Callable = lambda address, status, method, target, message: None,
                 connection_key: str = "engage.connection"):
        self.address = address
        self.app = app
        self.threads = threads
        self.timeout = timeout
        self.grace = grace
        self.body_wait = body_wait
        self.tls_context = tls_context
        self.on_handshake_failure = on_handshake_failure
        self.on_refused = on_refused
        self.connection_key = connection_key
        self.socket: socket.socket | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self.wake_fd = self._wake_r.fileno()  # a loop's poll returns once ``stop`` writes to it
        self._busy: set[Connection] = set()
        self._idle = threading.Condition()
        self.stopping = False
        self._stop_requested = threading.Event()
        self._loops: list[EventLoop] = []

    # --- control ---------------------------------------------------------------------------

    def bind(self) -> None:
        family = socket.AF_INET6 if ":" in self.address[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # accepted ones inherit
            sock.bind(self.address)
            sock.listen(1024)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.socket = sock

    @property
    def port(self) -> int:
        return self.socket.getsockname()[1]

    def serve(self) -> None:
        """Run the event loops until ``stop``; then close the listening socket and every
        connection (one cut by ``stop`` may still be in its application call)."""
        self._loops = [EventLoop(self) for _ in range(self.threads)]
        threads = [threading.Thread(target=loop.run, name=f"http-loop-{n}", daemon=True)
                   for n, loop in enumerate(self._loops)]
        for thread in threads:
            thread.start()
        self._stop_requested.wait()
        deadline = time.monotonic() + WAKE_INTERVAL
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0))
        for loop, thread in zip(self._loops, threads):
            if thread.is_alive():  # in an application call past the grace: close its waiting
                for conn in list(loop.conns.values()):  # clients now (``stop`` cut the busy one)
                    if conn not in self._busy:
                        conn.close()
        for sock in (self.socket, self._wake_r, self._wake_w):
            sock.close()

    def stop(self) -> None:
        """Stop accepting, close waiting clients, give busy requests ``grace`` seconds, then cut
        their connections. The caller joins the thread that runs ``serve``."""
        self.stopping = True
        try:
            self._wake_w.send(b"\0")  # never read: every loop's poll returns from now on
        except OSError:
            pass
        try:
            self.socket.shutdown(socket.SHUT_RDWR)  # not listening: new clients are refused
        except OSError:
            pass
        deadline = time.monotonic() + self.grace
        with self._idle:
            while self._busy and (left := deadline - time.monotonic()) > 0:
                self._idle.wait(left)
            for conn in list(self._busy):
                try:
                    conn.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._stop_requested.set()

    def connections(self, state: str) -> int:
        """How many connections wait for ``state`` (for tests)."""
        return sum(conn.state == state for loop in self._loops
                   for conn in list(loop.conns.values()))

    # --- in the event loops ----------------------------------------------------------------

    def advance(self, conn: Connection) -> int | None:
        """Do what the connection is ready for: the events to wait for next, or None to close."""
        if conn.state == HANDSHAKE:
            events = conn.handshake_step(self.on_handshake_failure)
            if conn.state != HEAD:
                return events  # under way, or failed
            conn.deadline = time.monotonic() + self.timeout
        if conn.state == SEND:
            if not conn.flush(self.timeout):
                return OUT
            if not conn.keep:
                return None
            self._next_request(conn)
        elif not self._receive(conn):
            return None
        return self._process(conn)

    def _receive(self, conn: Connection) -> bool:
        """Take in what the client sent; False when it closed (or broke) the connection."""
        try:
            data = conn.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return True
        except OSError:
            data = b""
        if not data:
            if conn.state == HEAD and conn.tls_version and not conn.served and not conn.buf:
                self.on_handshake_failure(conn.address, ClosedAfterHandshake())
            elif conn.state == BODY:
                environ = conn.environ
                self._refuse(conn, Refused("400 Bad Request", "The client closed the connection "
                                           "before the end of the body.",
                                           environ["REQUEST_METHOD"], environ["PATH_INFO"]))
            return False
        if conn.state == HEAD and not conn.buf:
            conn.deadline = time.monotonic() + self.timeout  # a slow header block counts from here
        conn.buf += data
        return True

    def _process(self, conn: Connection) -> int | None:
        """Answer every request the buffer holds in full; the events to wait for next."""
        while True:
            if conn.state == HEAD:
                if not (HEAD_END.search(conn.buf) or len(conn.buf) > MAX_HEADER_BYTES):
                    return IN
                if self.stopping:
                    return None
                try:
                    conn.environ, conn.keep = request_environ(conn, self.connection_key,
                                                              self.timeout)
                except Refused as refused:
                    return self._refuse(conn, refused)
                except Exception:  # a parse this server should have refused more precisely
                    return self._refuse(conn, Refused("400 Bad Request", "Malformed request."))
                conn.state = BODY
                conn.deadline = time.monotonic() + self.timeout  # for the whole body
            body = conn.environ["wsgi.input"]
            if not body.arrived(self.body_wait):
                body.go_ahead()
                return IN
            if self.stopping:
                return None
            with self._idle:
                self._busy.add(conn)
            try:
                keep = self._respond(conn)
            finally:
                with self._idle:
                    self._busy.discard(conn)
                    self._idle.notify_all()
            conn.environ = None
            if conn.out:
                conn.state, conn.keep = SEND, keep
                conn.deadline = time.monotonic() + self.timeout
                return OUT
            if not keep or self.stopping:
                return None
            self._next_request(conn)

    def _next_request(self, conn: Connection) -> None:
        """After an answer: wait for the next request (idle for ``timeout`` at most)."""
        conn.state = HEAD
        if not conn.buf:
            conn.deadline = time.monotonic() + self.timeout

    def expired(self, conn: Connection) -> None:
        """Close a connection that waited too long: a handshake timeout is an event; a request
        that never came, or whose header block or body never finished, gets a 408."""
        if conn.state == HANDSHAKE:
            self.on_handshake_failure(conn.address, TimeoutError())
        elif conn.state == BODY:
            self.on_refused(conn.address, "408 Request Timeout", conn.environ["REQUEST_METHOD"],
                            conn.environ["PATH_INFO"],
                            f"The request body did not arrive within {self.timeout:g} s.")
        if conn.state == BODY or conn.state == HEAD and (conn.buf or not conn.served):
            try:
                conn.sock.send(REQUEST_TIMEOUT)
            except OSError:
                pass
        conn.close()

    def _respond(self, conn: Connection) -> bool:
        """Answer the request whose head was parsed into ``conn.environ`` and whose body has
        arrived; whether to keep the connection. What the socket cannot take at once stays in
        ``conn.out``."""
        environ = conn.environ
        conn.served += 1
        method = environ["REQUEST_METHOD"]
        response = Response()
        try:
            result = self.app(environ, response.start)
        except Exception:  # the application's own error handling failed
            self._refuse(conn, Refused("500 Internal Server Error", "Internal error.",
                                       method, environ["PATH_INFO"]))
            return False
        try:
            body = b"".join(itertools.chain(response.written, result)) \
                if response.written else b"".join(result)
            if not response.status:
                raise RuntimeError("the application never called start_response")
        except Exception:  # nothing is sent yet: a 500, reported here and not as the app's
            environ[FAILED_ENVIRON_KEY] = True
            close_result(result)
            self._refuse(conn, Refused("500 Internal Server Error", "Internal error.",
                                       method, environ["PATH_INFO"]))
            return False
        try:
            keep = conn.keep and environ["wsgi.input"].finish()
            head = response.head(len(body), keep)
            conn.out = memoryview(head if method == "HEAD" else head + body)
            conn.flush(self.timeout)
        finally:
            close_result(result)
        return keep and not response.closes

    def _refuse(self, conn: Connection, refused: Refused) -> None:
        """Answer a request the application never saw, and close (returns None: close)."""
        self.on_refused(conn.address, refused.status, refused.method, refused.target,
                        refused.message)
        body = refused.message.encode("latin-1", "replace")
        send(conn.sock, (f"HTTP/1.1 {refused.status}\r\nContent-Length: {len(body)}\r\n"
                         "Content-Type: text/plain\r\nConnection: close\r\n\r\n")
             .encode("latin-1") + body, self.timeout)
        return None
