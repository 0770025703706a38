"""A small HTTP/1.1 WSGI server: one selector thread and a pool of worker threads.

What the locks and the listeners need from it (DESIGN.md "Listeners"): HTTP/1.1 with persistent
connections, ``Content-Length:`` on every response, a client that stalls delays nobody, a TLS
context taken afresh for each new connection, and a quick stop. The selector thread accepts and
keeps every connection that is waiting - for its TLS handshake's next flight, for the rest of a
request's header block, or idle between requests - and closes it once it has waited longer than
``timeout``. A worker takes a connection only when it has something to do: a handshake step (the
crypto runs outside the GIL, so handshakes use both cores) or a whole header block, whose
request it parses, hands to the application, and answers in one write. A request body is read
by the worker, and must all arrive within ``timeout``.

Why not cheroot, which served here before: its pure-Python buffered I/O and parsing cost more CPU
per request than the whole Flask request, and keeping stalled clients off its workers needed
subclasses of most of its classes.
"""

from __future__ import annotations

import collections
import contextlib
import email.utils
import itertools
import re
import selectors
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
DRAIN_BYTES = 64 * 1024  # an unread body up to this size is skipped to keep the connection
WAKE_INTERVAL = 0.25     # how often the selector looks for connections that waited too long
REQUEST_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n"
                   b"Connection: close\r\n\r\n")
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
PLAIN_TO_TLS = b"The client sent a plain HTTP request, but this port only speaks HTTPS.\n"
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding"})

HANDSHAKE, HEAD = "handshake", "head"
FAILED_ENVIRON_KEY = "engage.failed"  # set when the app's response could not be sent  # what a connection in the selector waits for


class Refused(Exception):
    """A request the server answers itself, without the application."""

    def __init__(self, status: str, message: str, method: str = "", target: str = ""):
        super().__init__(message)
        self.status, self.message, self.method, self.target = status, message, method, target


class Connection:
    """One client connection; owned by the selector or by one worker at a time."""

    __slots__ = ("sock", "address", "id", "buf", "state", "deadline", "served", "tls_version",
                 "local")
    _ids = itertools.count(1)

    def __init__(self, sock: socket.socket, address, state: str, deadline: float):
        self.sock = sock
        self.address = address
        self.id = next(self._ids)  # never reused, unlike the address and port
        self.buf = bytearray()
        self.state = state
        self.deadline = deadline
        self.served = 0
        self.tls_version = ""
        self.local: tuple | None = None

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class _Jobs:
    """Hands connections to the worker threads. The worker that went idle last takes the next
    one: a few warm threads serve a steady load instead of every thread in turn (which cost a
    context switch and a cold cache per request), and a connection that finds every worker busy
    waits in order."""

    def __init__(self):
        self._lock = threading.Lock()
        self._idle: list[list] = []  # the slots of idle workers, most recently idle last
        self._waiting: collections.deque = collections.deque()

    @staticmethod
    def slot() -> list:
        """A worker's slot: [a lock held until a job is handed over, the job]."""
        wake = threading.Lock()
        wake.acquire()
        return [wake, None]

    def put(self, conn: Connection | None) -> None:
        with self._lock:
            if not self._idle:
                self._waiting.append(conn)
                return
            slot = self._idle.pop()
        slot[1] = conn
        slot[0].release()

    def get(self, slot: list) -> Connection | None:
        with self._lock:
            if self._waiting:
                return self._waiting.popleft()
            self._idle.append(slot)
        slot[0].acquire()
        return slot[1]

    def qsize(self) -> int:
        return len(self._waiting)


class Server:
    """Serve ``app`` on ``address``. ``bind`` raises ``OSError``; ``serve`` runs the selector
    until ``stop``, which gives requests in flight ``grace`` seconds to finish.

    ``on_handshake_failure(address, exc)`` and ``on_refused(address, status, method, target,
    message)`` report what never reaches the application."""

    def __init__(self, address: tuple[str, int], app, *, threads: int = 32,
                 timeout: float = 10.0, grace: float = 0.5,
                 tls_context: Callable[[], ssl.SSLContext] | None = None,
                 on_handshake_failure: Callable = lambda address, exc: None,
                 on_refused: Callable = lambda address, status, method, target, message: None,
                 connection_key: str = "engage.connection"):
        self.address = address
        self.app = app
        self.threads = threads
        self.timeout = timeout
        self.grace = grace
        self.tls_context = tls_context
        self.on_handshake_failure = on_handshake_failure
        self.on_refused = on_refused
        self.connection_key = connection_key
        self.socket: socket.socket | None = None
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._woken = False
        self._jobs = _Jobs()
        self._returned: collections.deque[Connection] = collections.deque()
        self._busy: set[Connection] = set()
        self._idle = threading.Condition()
        self._stopping = False
        self._accept_paused = False
        self._workers: list[threading.Thread] = []

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
        self._selector.register(sock, selectors.EVENT_READ, None)
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, self._wake_r)
        for n in range(self.threads):
            worker = threading.Thread(target=self._work, name=f"http-worker-{n}", daemon=True)
            worker.start()
            self._workers.append(worker)

    @property
    def port(self) -> int:
        return self.socket.getsockname()[1]

    def serve(self) -> None:
        """Run the selector until ``stop``; closes the listening socket and waiting clients."""
        next_expiry = time.monotonic() + WAKE_INTERVAL
        try:
            while not self._stopping:
                for key, _ in self._selector.select(WAKE_INTERVAL):
                    if key.data is None:
                        self._accept()
                    elif key.data is self._wake_r:
                        self._take_returned()
                    else:
                        self._readable(key.data)
                now = time.monotonic()
                if now >= next_expiry:
                    if self._accept_paused:
                        self._accept_paused = False
                        self._selector.register(self.socket, selectors.EVENT_READ, None)
                    self._expire(now)
                    next_expiry = now + WAKE_INTERVAL
        finally:
            self._close_waiting()

    def stop(self) -> None:
        """Stop accepting, close waiting clients, give busy workers ``grace`` seconds, then cut
        their connections. The caller joins the thread that runs ``serve``."""
        self._stopping = True
        self._wake()
        deadline = time.monotonic() + self.grace
        with self._idle:
            while self._busy and (left := deadline - time.monotonic()) > 0:
                self._idle.wait(left)
            for conn in list(self._busy):
                try:
                    conn.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    # --- selector thread -------------------------------------------------------------------

    def _accept(self) -> None:
        for _ in range(64):
            try:
                sock, address = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # out of file descriptors, say: retry at the next tick, not at once
                self._selector.unregister(self.socket)
                self._accept_paused = True
                return
            sock.setblocking(False)
            deadline = time.monotonic() + self.timeout
            if self.tls_context is None:
                self._register(Connection(sock, address, HEAD, deadline))
                continue
            try:
                tls = self.tls_context().wrap_socket(sock, server_side=True,
                                                     do_handshake_on_connect=False)
            except Exception as exc:  # no usable certificate set any more
                self.on_handshake_failure(address, exc)
                sock.close()
                continue
            self._register(Connection(tls, address, HANDSHAKE, deadline))

    def _register(self, conn: Connection, event: int = selectors.EVENT_READ) -> None:
        try:
            self._selector.register(conn.sock, event, conn)
        except (OSError, ValueError):  # closed meanwhile
            conn.close()

    def _readable(self, conn: Connection) -> None:
        """Take in what a waiting connection sent; a whole header block goes to a worker."""
        if conn.state == HANDSHAKE:
            self._selector.unregister(conn.sock)
            self._jobs.put(conn)
            return
        try:
            data = conn.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        except OSError:
            data = b""
        if not data:
            self._selector.unregister(conn.sock)
            conn.close()
            return
        start = max(len(conn.buf) - 3, 0)
        if not conn.buf:
            conn.deadline = time.monotonic() + self.timeout  # a slow header block counts from here
        conn.buf += data
        if HEAD_END.search(conn.buf, start) or len(conn.buf) > MAX_HEADER_BYTES:
            self._selector.unregister(conn.sock)
            self._jobs.put(conn)

    def _take_returned(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass
        self._woken = False
        while self._returned:
            conn, event = self._returned.popleft()
            self._register(conn, event)

    def _expire(self, now: float) -> None:
        for key in list(self._selector.get_map().values()):
            conn = key.data
            if isinstance(conn, Connection) and conn.deadline <= now:
                self._selector.unregister(conn.sock)
                self._expired(conn)

    def _expired(self, conn: Connection) -> None:
        """Close a connection that waited too long: a handshake timeout is an event; a request
        that never came, or whose header block never finished, gets a 408."""
        if conn.state == HANDSHAKE:
            self.on_handshake_failure(conn.address, TimeoutError())
        elif conn.buf or not conn.served:
            try:
                conn.sock.send(REQUEST_TIMEOUT)
            except OSError:
                pass
        conn.close()

    def _close_waiting(self) -> None:
        for key in list(self._selector.get_map().values()):
            if isinstance(key.data, Connection):
                key.data.close()
        while self._returned:
            self._returned.popleft()[0].close()
        for _ in self._workers:  # behind every job the selector queued: nothing comes after
            self._jobs.put(None)
        self._selector.close()
        self.socket.close()
        self._wake_r.close()
        self._wake_w.close()

    def _wake(self) -> None:
        if not self._woken:
            self._woken = True
            try:
                self._wake_w.send(b"\0")
            except OSError:
                pass

    # --- worker threads --------------------------------------------------------------------

    def _work(self) -> None:
        slot = _Jobs.slot()
        while (conn := self._jobs.get(slot)) is not None:
            if self._stopping:  # queued, not started: no request is taken in after a stop
                conn.close()
                continue
            with self._idle:
                self._busy.add(conn)
            event = None
            try:
                event = self._advance(conn)
            except Exception:  # a broken connection: nothing more to say to it
                event = None
            finally:
                with self._idle:
                    self._busy.discard(conn)
                    self._idle.notify_all()
            if event is None or self._stopping:
                conn.close()
                continue
            self._returned.append((conn, event))
            self._wake()
            while self._stopping and self._returned:  # the selector may have closed already
                self._returned.popleft()[0].close()

    def _advance(self, conn: Connection) -> int | None:
        """Do what the connection is ready for: the event to wait for next, or None to close."""
        if conn.state == HANDSHAKE:
            event = self._handshake_step(conn)
            if event is not None or conn.state == HANDSHAKE:
                return event
            conn.deadline = time.monotonic() + self.timeout
            try:  # the request often comes with the handshake's last flight
                data = conn.sock.recv(RECV_BYTES)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                return selectors.EVENT_READ
            if not data:
                return None
            conn.buf += data
        while HEAD_END.search(conn.buf) or len(conn.buf) > MAX_HEADER_BYTES:
            if not self._serve_one(conn) or self._stopping:
                return None
        if not conn.buf:
            conn.deadline = time.monotonic() + self.timeout
        return selectors.EVENT_READ

    def _handshake_step(self, conn: Connection) -> int | None:
        try:
            conn.sock.do_handshake()
        except ssl.SSLWantReadError:
            return selectors.EVENT_READ
        except ssl.SSLWantWriteError:
            return selectors.EVENT_WRITE
        except (ssl.SSLError, OSError) as exc:
            self.on_handshake_failure(conn.address, exc)
            conn.state = ""
            if getattr(exc, "reason", "") == "HTTP_REQUEST":
                _answer_in_plain(conn.sock)
            return None
        conn.state = HEAD
        conn.tls_version = conn.sock.version() or ""
        return None

    def _serve_one(self, conn: Connection) -> bool:
        """Answer the request at the start of ``conn.buf``; whether to keep the connection."""
        try:
            environ, keep = self._environ(conn)
        except Refused as refused:
            return self._refuse(conn, refused)
        except Exception:  # a parse this server should have refused more precisely
            return self._refuse(conn, Refused("400 Bad Request", "Malformed request."))
        conn.served += 1
        method = environ["REQUEST_METHOD"]
        response = _Response()
        try:
            result = self.app(environ, response.start)
        except Exception:  # the application's own error handling failed
            return self._refuse(conn, Refused("500 Internal Server Error", "Internal error.",
                                              method, environ["PATH_INFO"]))
        try:
            body = b"".join(itertools.chain(response.written, result)) \
                if response.written else b"".join(result)
            if not response.status:
                raise RuntimeError("the application never called start_response")
        except Exception:  # nothing is sent yet: a 500, reported here and not as the app's
            environ[FAILED_ENVIRON_KEY] = True
            _close(result)
            return self._refuse(conn, Refused("500 Internal Server Error", "Internal error.",
                                              method, environ["PATH_INFO"]))
        try:
            keep = keep and not environ["wsgi.input"].failed
            head = response.head(len(body), keep)
            keep = keep and not response.closes
            _send(conn.sock, head if method == "HEAD" else head + body, self.timeout)
        finally:
            _close(result)
        return keep and environ["wsgi.input"].finish()

    def _refuse(self, conn: Connection, refused: Refused) -> bool:
        """Answer a request the application never saw, and close."""
        self.on_refused(conn.address, refused.status, refused.method, refused.target,
                        refused.message)
        body = refused.message.encode("latin-1", "replace")
        _send(conn.sock, (f"HTTP/1.1 {refused.status}\r\nContent-Length: {len(body)}\r\n"
                          "Content-Type: text/plain\r\nConnection: close\r\n\r\n")
              .encode("latin-1") + body, self.timeout)
        return False

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
    """``wsgi.input``: the request body, first from what came with the head, then from the
    socket; all of it within ``timeout`` of its head, so that a client trickling bytes cannot
    hold a worker. Ends at ``Content-Length`` or the last chunk; a body that stalls is a 408
    and one cut short a 400, raised to the application."""

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
        """Skip what the application left unread, if small: whether the connection can go on."""
        if self._failed or (self._continue and not self._done):
            return False  # a broken body, or one the client waits for leave to send
        try:
            while not self._done:
                if len(self.read(DRAIN_BYTES)) >= DRAIN_BYTES:
                    return False
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
        if self._continue:
            self._continue = False
            _send(self._conn.sock, CONTINUE, self._timeout)
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
