"""A small HTTP/1.1 WSGI server: a few event-loop threads, each serving the connections it
accepted from start to end.

What the locks and the listeners need from it (DESIGN.md "Listeners"): HTTP/1.1 with persistent
connections, ``Content-Length:`` on every response, a client that stalls delays nobody, a TLS
context taken afresh for each new connection, and a quick stop. Each loop (``threads`` of them)
has its own epoll with the listening socket in it; the kernel wakes one idle loop per new
connection (``EPOLLEXCLUSIVE``), and that loop does everything for it without blocking: the TLS
handshake's steps (the crypto runs outside the GIL, so loops handshake side by side on all
cores), the header block, the whole body (up to ``body_wait`` bytes), the application call and
the reply. A connection waiting for its client costs a loop nothing; one that waited longer than
``timeout`` is closed. Only the application call holds a loop, and only its own connections
wait meanwhile: an idle loop takes the new ones.

Why loops and not one selector thread with a pool of workers, as here before: that handed
each connection from thread to thread four times per TLS request, two context switches each.
In the same runs on the 2-core benchmark machine a TLS request cost 1.6 ms of host CPU there
and 1.35 ms here, and a lock's call-in 5 to 8 ms there and 3.6 ms here.

Why not cheroot, which served here before: its pure-Python buffered I/O and parsing cost more CPU
per request than the whole Flask request, and keeping stalled clients off its workers needed
subclasses of most of its classes.
"""

from __future__ import annotations

import contextlib
import email.utils
import itertools
import re
import select
import socket
import ssl
import sys
import threading
import time
from typing import Callable
from urllib.parse import unquote_to_bytes

from werkzeug.exceptions import BadRequest, RequestTimeout

MAX_HEADER_BYTES = 16 * 1024  # a request line and headers longer than this are refused
HEAD_END = re.compile(rb"\r?\n\r?\n")  # the blank line that ends a header block
TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,8})[ \t]*(?:;[^\r\n]*)?\r?\n")
QUOTED_SLASH = re.compile(r"(?i)%2f")
NOT_IN_TARGET = re.compile(r"[\x00-\x20\x7f]")
NOT_IN_VALUE = re.compile(rb"[\x00\r]")
TRAILER_LINE = re.compile(rb"[^\r\n]*\r?\n")
RECV_BYTES = 65536
LOOPS = 2  # event loops per server; why so few: see Server
BODY_WAIT = 1 << 20     # bytes of a body awaited before the application is called
WAKE_INTERVAL = 0.25     # how often a loop looks for connections that waited too long
REQUEST_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n"
                   b"Connection: close\r\n\r\n")
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
PLAIN_TO_TLS = b"The client sent a plain HTTP request, but this port only speaks HTTPS.\n"
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding"})

HANDSHAKE, HEAD, BODY, SEND = "handshake", "head", "body", "send"  # what a connection waits for
FAILED_ENVIRON_KEY = "engage.failed"  # set when the app's response could not be sent
IN, OUT = select.EPOLLIN, select.EPOLLOUT
EXCLUSIVE = getattr(select, "EPOLLEXCLUSIVE", 0)  # Linux >= 4.5: one idle loop is woken


class Refused(Exception):
    """A request the server answers itself, without the application."""

    def __init__(self, status: str, message: str, method: str = "", target: str = ""):
        super().__init__(message)
        self.status, self.message, self.method, self.target = status, message, method, target


class Connection:
    """One client connection, owned by the event loop that accepted it."""

    __slots__ = ("sock", "fd", "address", "id", "buf", "state", "deadline", "served",
                 "tls_version", "local", "environ", "keep", "out", "events")
    _ids = itertools.count(1)

    def __init__(self, sock: socket.socket, address, state: str, deadline: float):
        self.sock = sock
        self.fd = sock.fileno()
        self.address = address
        self.id = next(self._ids)  # never reused, unlike the address and port
        self.buf = bytearray()
        self.state = state
        self.deadline = deadline
        self.served = 0
        self.tls_version = ""
        self.local: tuple | None = None
        self.environ: dict | None = None  # the request whose body is awaited
        self.keep = False  # whether the connection goes on once ``out`` is sent
        self.out = b""  # the part of a reply the socket could not take yet
        self.events = IN

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class _Loop:
    """One event-loop thread: its own epoll, the listening socket, and the connections it
    accepted, which it serves to the end."""

    def __init__(self, server: "Server"):
        self.server = server
        self.epoll = select.epoll()
        self.conns: dict[int, Connection] = {}
        self.accepting = True

    def run(self) -> None:
        server = self.server
        listen_fd, wake_fd = server.socket.fileno(), server._wake_r.fileno()
        self.epoll.register(listen_fd, IN | EXCLUSIVE)
        self.epoll.register(wake_fd, IN)
        next_expiry = time.monotonic() + WAKE_INTERVAL
        try:
            while not server._stopping:
                idle = not self.conns and self.accepting  # nothing can expire: sleep
                for fd, _ in self.epoll.poll(-1 if idle else WAKE_INTERVAL):
                    if server._stopping:
                        break
                    if fd == listen_fd:
                        self.accept()
                    elif (conn := self.conns.get(fd)) is not None:
                        self.step(conn)
                now = time.monotonic()
                if now >= next_expiry:
                    if not self.accepting:
                        self.accepting = True
                        self.epoll.register(listen_fd, IN | EXCLUSIVE)
                    self.expire(now)
                    next_expiry = now + WAKE_INTERVAL
        finally:
            self.close_all()

    def accept(self) -> None:
        """Take one new connection: the other idle loops take the next ones."""
        server = self.server
        try:
            sock, address = server.socket.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # out of file descriptors, say: retry at the next tick, not at once
            self.epoll.unregister(server.socket.fileno())
            self.accepting = False
            return
        sock.setblocking(False)
        deadline = time.monotonic() + server.timeout
        if server.tls_context is None:
            self.add(Connection(sock, address, HEAD, deadline))
            return
        try:
            tls = server.tls_context().wrap_socket(sock, server_side=True,
                                                   do_handshake_on_connect=False)
        except Exception as exc:  # no usable certificate set any more
            server.on_handshake_failure(address, exc)
            sock.close()
            return
        self.add(Connection(tls, address, HANDSHAKE, deadline))

    def add(self, conn: Connection) -> None:
        try:
            self.epoll.register(conn.fd, conn.events)
        except OSError:  # the kernel's limit of watched descriptors: drop this one, go on
            conn.close()
            return
        self.conns[conn.fd] = conn

    def step(self, conn: Connection) -> None:
        try:
            events = self.server._advance(conn)
        except Exception:  # a broken connection: nothing more to say to it
            events = None
        if events is None:
            self.drop(conn)
        elif events != conn.events:
            conn.events = events
            self.epoll.modify(conn.fd, events)

    def forget(self, conn: Connection) -> None:
        """Take ``conn`` out of this loop (before it is closed: its fd may be reused then)."""
        if self.conns.pop(conn.fd, None) is not None:
            try:
                self.epoll.unregister(conn.fd)
            except (OSError, ValueError):
                pass

    def drop(self, conn: Connection) -> None:
        self.forget(conn)
        conn.close()

    def expire(self, now: float) -> None:
        for conn in list(self.conns.values()):
            if conn.deadline <= now:
                self.forget(conn)
                try:
                    self.server._expired(conn)
                except Exception:  # a report that failed must not end the loop
                    conn.close()

    def close_all(self) -> None:
        for conn in list(self.conns.values()):
            conn.close()
        self.conns.clear()
        self.epoll.close()


class Server:
    """Serve ``app`` on ``address``. ``bind`` raises ``OSError``; ``serve`` runs the event
    loops until ``stop``, which gives requests in flight ``grace`` seconds to finish.

    ``threads`` event loops: two suit most hosts. Python code runs one thread at a time, while
    handshake crypto and disk writes overlap across loops; a loop with several connections
    rarely sleeps, whereas many loops with one connection each sleep and wake (two context
    switches) at every step. On the benchmark machine (2 cores) 32 loops cost 17 context
    switches per TLS request and 2 loops 3: 1.6 vs 1.4 ms of CPU. More loops help when
    application calls wait long (records on slow storage): a call holds its own loop only.

    ``on_handshake_failure(address, exc)`` and ``on_refused(address, status, method, target,
    message)`` report what never reaches the application."""

    def __init__(self, address: tuple[str, int], app, *, threads: int = LOOPS,
                 timeout: float = 10.0, grace: float = 0.5, body_wait: int = BODY_WAIT,
                 tls_context: Callable[[], ssl.SSLContext] | None = None,
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
        self._busy: set[Connection] = set()
        self._idle = threading.Condition()
        self._stopping = False
        self._stop_requested = threading.Event()
        self._loops: list[_Loop] = []

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
        self._loops = [_Loop(self) for _ in range(self.threads)]
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
        self._stopping = True
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

    def _advance(self, conn: Connection) -> int | None:
        """Do what the connection is ready for: the events to wait for next, or None to close."""
        if conn.state == HANDSHAKE:
            events = self._handshake_step(conn)
            if conn.state != HEAD:
                return events  # under way, or failed
            conn.deadline = time.monotonic() + self.timeout
        if conn.state == SEND:
            if not self._flush(conn):
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
            if conn.state == BODY:
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
                if self._stopping:
                    return None
                try:
                    conn.environ, conn.keep = self._environ(conn)
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
            if self._stopping:
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
            if not keep or self._stopping:
                return None
            self._next_request(conn)

    def _next_request(self, conn: Connection) -> None:
        """After an answer: wait for the next request (idle for ``timeout`` at most)."""
        conn.state = HEAD
        if not conn.buf:
            conn.deadline = time.monotonic() + self.timeout

    def _expired(self, conn: Connection) -> None:
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

    def _handshake_step(self, conn: Connection) -> int | None:
        try:
            conn.sock.do_handshake()
        except ssl.SSLWantReadError:
            return IN
        except ssl.SSLWantWriteError:
            return OUT
        except (ssl.SSLError, OSError) as exc:
            self.on_handshake_failure(conn.address, exc)
            conn.state = ""
            if getattr(exc, "reason", "") == "HTTP_REQUEST":
                _answer_in_plain(conn.sock)
            return None
        conn.state = HEAD
        conn.tls_version = conn.sock.version() or ""
        return None

    def _respond(self, conn: Connection) -> bool:
        """Answer the request whose head was parsed into ``conn.environ`` and whose body has
        arrived; whether to keep the connection. What the socket cannot take at once stays in
        ``conn.out``."""
        environ = conn.environ
        conn.served += 1
        method = environ["REQUEST_METHOD"]
        response = _Response()
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
            _close(result)
            self._refuse(conn, Refused("500 Internal Server Error", "Internal error.",
                                       method, environ["PATH_INFO"]))
            return False
        try:
            keep = conn.keep and environ["wsgi.input"].finish()
            head = response.head(len(body), keep)
            conn.out = memoryview(head if method == "HEAD" else head + body)
            self._flush(conn)
        finally:
            _close(result)
        return keep and not response.closes

    def _flush(self, conn: Connection) -> bool:
        """Send what the socket takes of ``conn.out``; whether all of it went."""
        while conn.out:
            try:
                sent = conn.sock.send(conn.out)
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                return False  # TLS: nothing counts as sent; the same bytes go again
            conn.out = conn.out[sent:]
            conn.deadline = time.monotonic() + self.timeout  # a client that reads, slowly
        return True

    def _refuse(self, conn: Connection, refused: Refused) -> None:
        """Answer a request the application never saw, and close (returns None: close)."""
        self.on_refused(conn.address, refused.status, refused.method, refused.target,
                        refused.message)
        body = refused.message.encode("latin-1", "replace")
        _send(conn.sock, (f"HTTP/1.1 {refused.status}\r\nContent-Length: {len(body)}\r\n"
                          "Content-Type: text/plain\r\nConnection: close\r\n\r\n")
              .encode("latin-1") + body, self.timeout)
        return None

    def _environ(self, conn: Connection) -> tuple[dict, bool]:
        """Parse the head at the start of ``conn.buf`` (and take it off): the WSGI environ and
        whether the connection may stay open."""
        buf = conn.buf
        found = HEAD_END.search(buf)
        line_end = buf.find(b"\n")
        if line_end < 0 or line_end > MAX_HEADER_BYTES:
            method, _, rest = bytes(buf[:MAX_HEADER_BYTES]).partition(b" ")
            raise Refused("414 Request-URI Too Long",
                          f"The request line exceeds {MAX_HEADER_BYTES} bytes.",
                          method[:20].decode("latin-1"), rest.decode("latin-1"))
        method, target, version = _request_line(bytes(buf[:line_end]).rstrip(b"\r"))
        if found is None or found.start() > MAX_HEADER_BYTES:
            raise Refused("431 Request Header Fields Too Large",
                          f"The request line and headers exceed {MAX_HEADER_BYTES} bytes.",
                          method, target)
        head = bytes(buf[line_end + 1:found.start()])
        del buf[:found.end()]
        environ = {
            "REQUEST_METHOD": method, "SCRIPT_NAME": "", "SERVER_PROTOCOL": version,
            "REMOTE_ADDR": conn.address[0], "REMOTE_PORT": str(conn.address[1]),
            "wsgi.version": (1, 0), "wsgi.errors": sys.stderr, "wsgi.multithread": True,
            "wsgi.multiprocess": False, "wsgi.run_once": False, "wsgi.input_terminated": True,
            self.connection_key: conn.id,
        }
        environ["PATH_INFO"], environ["QUERY_STRING"] = _path_and_query(target, method)
        if conn.local is None:
            conn.local = conn.sock.getsockname()[:2]
        environ["SERVER_NAME"], environ["SERVER_PORT"] = conn.local[0], str(conn.local[1])
        if conn.tls_version:
            environ.update({"wsgi.url_scheme": "https", "HTTPS": "on",
                            "SSL_PROTOCOL": conn.tls_version})
        else:
            environ["wsgi.url_scheme"] = "http"
        headers = _headers(head, method, target)
        environ["engage.headers"] = headers
        for name, value in headers:
            if "_" in name:  # would pass for a header with '-' in its place: dropped
                continue
            key = name.upper().replace("-", "_")
            if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                if key in environ and environ[key] != value:
                    raise Refused("400 Bad Request", f"Conflicting {name} headers.", method, target)
            else:
                key = "HTTP_" + key
                if key in environ:
                    value = environ[key] + ", " + value
            environ[key] = value
        environ["wsgi.input"] = _Body.of(conn, environ, method, target, self.timeout)
        tokens = environ.get("HTTP_CONNECTION", "").lower()
        keep = version == "HTTP/1.1" and "close" not in tokens
        return environ, keep


@contextlib.contextmanager
def _blocking(sock: socket.socket, timeout: float):
    """Let ``sock`` wait up to ``timeout`` for its client, then make it non-blocking again.
    Sockets stay non-blocking otherwise: each switch of mode, and a blocking TLS write's poll
    before it, is a system call, and each system call lets another thread take the GIL."""
    sock.settimeout(timeout)
    try:
        yield
    finally:
        sock.setblocking(False)


def _send(sock: socket.socket, data: bytes, timeout: float) -> None:
    """Send all of ``data``: at once when the socket takes it (a reply nearly always fits),
    else waiting up to ``timeout`` for the client to read."""
    try:
        sent = sock.send(data)
    except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
        sent = 0  # TLS: nothing counts as sent; the same bytes are written again below
    if sent < len(data):
        with _blocking(sock, timeout):
            sock.sendall(memoryview(data)[sent:])


def _close(result) -> None:
    if hasattr(result, "close"):
        result.close()


def _answer_in_plain(sock: ssl.SSLSocket) -> None:
    """Tell a plain-HTTP client on the TLS port, in plain HTTP, and take in what it sent so that
    closing does not reset the connection before it has read the answer."""
    raw = socket.socket  # the methods beneath TLS
    try:
        raw.sendall(sock, b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\nContent-Type: "
                    b"text/plain\r\nConnection: close\r\n\r\n%s" % (len(PLAIN_TO_TLS),
                                                                  PLAIN_TO_TLS))
        raw.shutdown(sock, socket.SHUT_WR)
        while raw.recv(sock, RECV_BYTES):
            pass
    except OSError:
        pass


def _request_line(line: bytes) -> tuple[str, str, str]:
    parts = line.split(b" ")
    if len(parts) != 3 or not TOKEN.fullmatch(parts[0]) or not parts[1]:
        raise Refused("400 Bad Request", "Malformed request line.",
                      target=line[:200].decode("latin-1"))
    method, target, version = (part.decode("latin-1") for part in parts)
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        if re.fullmatch(r"HTTP/\d\.\d", version):
            raise Refused("505 HTTP Version Not Supported", "Only HTTP/1.1 and HTTP/1.0.",
                          method, target)
        raise Refused("400 Bad Request", "Malformed request line.", method, target)
    return method, target, version


def _path_and_query(target: str, method: str) -> tuple[str, str]:
    """PATH_INFO (percent-decoded, but an encoded '/' stays encoded) and QUERY_STRING."""
    if target.startswith(("http://", "https://")):  # absolute form: the path part only
        target = "/" + target.split("://", 1)[1].partition("/")[2]
    if not target.startswith("/") or NOT_IN_TARGET.search(target):
        raise Refused("400 Bad Request", "Malformed request target.", method, target)
    path, _, query = target.partition("?")
    path = "%2F".join(unquote_to_bytes(part).decode("latin-1")
                      for part in QUOTED_SLASH.split(path))
    return path, query


def _headers(head: bytes, method: str, target: str) -> list[tuple[str, str]]:
    headers = []
    for line in head.split(b"\n") if head else ():
        line = line[:-1] if line.endswith(b"\r") else line
        name, colon, value = line.partition(b":")
        if not colon or not TOKEN.fullmatch(name) or NOT_IN_VALUE.search(value):
            raise Refused("400 Bad Request", "Malformed header line.", method, target)
        headers.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
    return headers


class _Response:
    """What the application gave ``start_response``."""

    __slots__ = ("status", "headers", "written", "closes")

    def __init__(self):
        self.status = ""
        self.headers: list[tuple[str, str]] = []
        self.written: list[bytes] = []
        self.closes = False

    def start(self, status: str, headers: list, exc_info=None):
        if exc_info and self.status:
            raise exc_info[1].with_traceback(exc_info[2])
        self.status, self.headers = status, headers
        return self.written.append

    def head(self, length: int, keep: bool) -> bytes:
        lines = [f"HTTP/1.1 {self.status}\r\n"]
        has_length = has_date = False
        for name, value in self.headers:
            lower = name.lower()
            if lower in HOP_BY_HOP:
                self.closes = self.closes or (lower == "connection" and "close" in value.lower())
                continue
            has_length = has_length or lower == "content-length"
            has_date = has_date or lower == "date"
            lines.append(f"{name}: {value}\r\n")
        if not has_length:
            lines.append(f"Content-Length: {length}\r\n")
        if not has_date:
            lines.append(f"Date: {_http_date()}\r\n")
        if not keep or self.closes:
            lines.append("Connection: close\r\n")
        lines.append("\r\n")
        return "".join(lines).encode("latin-1")


_date_cache = [0, ""]


def _http_date() -> str:
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[:] = [now, email.utils.formatdate(now, usegmt=True)]
    return _date_cache[1]


class _Body:
    """``wsgi.input``: the request body. The event loop waits (``arrived``) until the whole body
    is in the buffer, so the application never waits for the client; only a body larger than
    the server's ``body_wait`` is read from the socket, all of it within ``timeout`` of its
    head. Ends at ``Content-Length`` or the last chunk; a body that stalls is a 408 and one cut
    short or malformed a 400, raised to the application."""

    def __init__(self, conn: Connection, length: int | None, expect_continue: bool,
                 timeout: float):
        self._conn = conn
        self._timeout = timeout
        self._deadline = time.monotonic() + timeout  # for the whole body, not per read
        self._left = length  # bytes left in the body, or in the current chunk when chunked
        self._chunked = length is None
        self._done = length == 0
        self._continue = expect_continue
        self._failed = False

    @classmethod
    def of(cls, conn: Connection, environ: dict, method: str, target: str,
           timeout: float) -> "_Body":
        coding = environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        length = environ.get("CONTENT_LENGTH", "")
        if coding:
            if coding != "chunked" or length:
                raise Refused("400 Bad Request" if length else "501 Not Implemented",
                              "Transfer-Encoding must be chunked, without Content-Length.",
                              method, target)
            size = None
        elif length:
            if not (length.isascii() and length.isdigit()) or len(length) > 18:
                raise Refused("400 Bad Request", "Malformed Content-Length.", method, target)
            size = int(length)
        else:
            size = 0
        expect = environ.get("HTTP_EXPECT", "").lower() == "100-continue"
        return cls(conn, size, expect and size != 0, timeout)

    def arrived(self, wait_limit: int) -> bool:
        """Whether the application can be called without waiting for the client: the whole
        body is in the buffer (or is malformed there, for the application's read to report),
        or it is longer than ``wait_limit`` bytes and is read from the socket."""
        return (self._buffered() or len(self._conn.buf) > wait_limit
                or not self._chunked and self._left > wait_limit)

    def _buffered(self) -> bool:
        """Whether the rest of the body is in the buffer (or is malformed there)."""
        buf = self._conn.buf
        if self._done:
            return True
        if not self._chunked:
            return len(buf) >= self._left
        return not self._left and _chunked_end(buf)  # at a chunk's start

    def go_ahead(self) -> None:
        """Send ``100 Continue`` once, if the client waits for it before sending the body."""
        if self._continue:
            self._continue = False
            _send(self._conn.sock, CONTINUE, self._timeout)

    def read(self, size: int | None = -1) -> bytes:
        out = bytearray()
        while not self._done and (size is None or size < 0 or len(out) < size):
            out += self._read_some(-1 if size is None or size < 0 else size - len(out))
        return bytes(out)

    def readline(self, size: int | None = -1) -> bytes:
        out = bytearray()
        while not self._done and not out.endswith(b"\n") and (
                size is None or size < 0 or len(out) < size):
            out += self._read_some(1)
        return bytes(out)

    def readlines(self, hint=-1) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self):
        return iter(self.readline, b"")

    @property
    def failed(self) -> bool:
        """Whether reading the body failed (it stalled, or was cut short or malformed)."""
        return self._failed

    def finish(self) -> bool:
        """Skip what the application left unread, when it is all in the buffer (so never
        waiting for the client): whether the connection can go on."""
        if self._failed or not self._buffered():
            return False  # a broken body, a long one, or one the client waits to send
        try:
            self.read()
        except Exception:
            return False
        return True

    def _read_some(self, want: int) -> bytes:
        """Up to ``want`` (-1: any number of) body bytes; a failure ends the body."""
        try:
            return self._take(want)
        except Exception:
            self._done = self._failed = True
            raise

    def _take(self, want: int) -> bytes:
        if self._chunked and not self._left:
            self._next_chunk()
            if self._done:
                return b""
        buf = self._conn.buf
        if not buf:
            self._fill()
        n = min(len(buf), self._left) if want < 0 else min(len(buf), self._left, want)
        data = bytes(buf[:n])
        del buf[:n]
        self._left -= n
        if self._chunked and not self._left:
            self._expect_line(b"", "chunk")
        elif not self._chunked and not self._left:
            self._done = True
        return data

    def _next_chunk(self) -> None:
        size = int(self._expect_line(CHUNK_SIZE, "chunk size").group(1), 16)
        if size:
            self._left = size
            return
        while self._expect_line(TRAILER_LINE, "trailer").group(0).strip():
            pass  # trailers are skipped
        self._done = True

    def _expect_line(self, pattern, what: str):
        buf = self._conn.buf
        while True:
            end = buf.find(b"\n")
            if end >= 0:
                line = bytes(buf[:end + 1])
                del buf[:end + 1]
                if pattern == b"":
                    if line.strip():
                        raise BadRequest(f"malformed chunked body: data after a {what}")
                    return None
                found = pattern.fullmatch(line)
                if not found:
                    raise BadRequest(f"malformed chunked body: bad {what} line")
                return found
            if len(buf) > 4096:
                raise BadRequest(f"malformed chunked body: {what} line too long")
            self._fill()

    def _fill(self) -> None:
        self.go_ahead()
        sock = self._conn.sock
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise RequestTimeout()
        try:
            data = sock.recv(RECV_BYTES)  # what has arrived: no wait, no mode switch
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            try:
                with _blocking(sock, min(left, self._timeout)):
                    data = sock.recv(RECV_BYTES)
            except (TimeoutError, socket.timeout):
                raise RequestTimeout() from None
        if not data:
            raise BadRequest("the client closed the connection before the end of the body")
        self._conn.buf += data


def _chunked_end(buf: bytearray) -> bool:
    """Whether ``buf`` holds a whole chunked body (with its trailers), or one malformed so far
    that reading it will fail; False while more is to come."""
    pos = 0
    while True:
        end = buf.find(b"\n", pos)
        if end < 0:
            return len(buf) - pos > 4096  # a size line this long is refused by the read
        found = CHUNK_SIZE.fullmatch(buf, pos, end + 1)
        if not found:
            return True
        size, pos = int(found.group(1), 16), end + 1
        if not size:
            break
        end = buf.find(b"\n", pos + size)
        if end < 0:
            return len(buf) - pos - size > 4096
        if buf[pos + size:end + 1].strip():
            return True  # data after the chunk
        pos = end + 1
    while True:  # trailers, up to the blank line
        end = buf.find(b"\n", pos)
        if end < 0:
            return len(buf) - pos > 4096
        if not buf[pos:end + 1].strip():
            return True
        pos = end + 1
