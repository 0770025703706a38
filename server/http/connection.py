"""One client connection: what it waits for next, its TLS handshake and what it sends, and its
request body (``wsgi.input``), read from the buffer the event loop fills or, for a long body,
from the socket."""

from __future__ import annotations

import contextlib
import itertools
import select
import socket
import ssl
import time
from typing import Callable

from werkzeug.exceptions import BadRequest, RequestTimeout

from .parse import CHUNK_SIZE, TRAILER_LINE, body_length, checked_line, chunked_end, take_line

RECV_BYTES = 65536
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
PLAIN_TO_TLS = b"The client sent a plain HTTP request, but this port only speaks HTTPS.\n"
HANDSHAKE, HEAD, BODY, SEND = "handshake", "head", "body", "send"  # what a connection waits for
IN, OUT = select.EPOLLIN, select.EPOLLOUT


class ClosedAfterHandshake(ConnectionError):
    """The client completed the TLS handshake, then closed without a request: what a client
    that checks our chain after the handshake (a lock refusing an oversized one) does."""


class Connection:
    """One client connection, owned by the event loop that accepted it."""

    __slots__ = ("sock", "fd", "address", "id", "buf", "state", "deadline", "served",
                 "tls_version", "peer_cert", "local", "environ", "keep", "out", "events")
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
        self.peer_cert: bytes | None = None  # the client's certificate (DER), once per connection
        self.local: tuple | None = None
        self.environ: dict | None = None  # the request whose body is awaited
        self.keep = False  # whether the connection goes on once ``out`` is sent
        self.out = b""  # the part of a reply the socket could not take yet
        self.events = IN

    def handshake_step(self, on_failure: Callable) -> int | None:
        """Take the TLS handshake a step on: the events it waits for, or None when it is done
        (state ``HEAD``) or failed (reported to ``on_failure(address, exc)``)."""
        try:
            self.sock.do_handshake()
        except ssl.SSLWantReadError:
            return IN
        except ssl.SSLWantWriteError:
            return OUT
        except (ssl.SSLError, OSError) as exc:
            on_failure(self.address, exc)
            self.state = ""
            if getattr(exc, "reason", "") == "HTTP_REQUEST":
                _answer_in_plain(self.sock)
            return None
        self.state = HEAD
        self.tls_version = self.sock.version() or ""
        self.peer_cert = self.sock.getpeercert(binary_form=True)
        return None

    def flush(self, timeout: float) -> bool:
        """Send what the socket takes of ``out``; whether all of it went."""
        while self.out:
            try:
                sent = self.sock.send(self.out)
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                return False  # TLS: nothing counts as sent; the same bytes go again
            self.out = self.out[sent:]
            self.deadline = time.monotonic() + timeout  # a client that reads, slowly
        return True

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class Body:
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
           timeout: float) -> "Body":
        coding = environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        size = body_length(coding, environ.get("CONTENT_LENGTH"), method, target)
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
        return not self._left and chunked_end(buf)  # at a chunk's start

    def go_ahead(self) -> None:
        """Send ``100 Continue`` once, if the client waits for it before sending the body."""
        if self._continue:
            self._continue = False
            send(self._conn.sock, CONTINUE, self._timeout)

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
        while (line := take_line(buf, what)) is None:
            self._fill()
        return checked_line(line, pattern, what)

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


def send(sock: socket.socket, data: bytes, timeout: float) -> None:
    """Send all of ``data``: at once when the socket takes it (a reply nearly always fits),
    else waiting up to ``timeout`` for the client to read."""
    try:
        sent = sock.send(data)
    except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
        sent = 0  # TLS: nothing counts as sent; the same bytes are written again below
    if sent < len(data):
        with _blocking(sock, timeout):
            sock.sendall(memoryview(data)[sent:])


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

