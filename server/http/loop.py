"""The HTTP/1.1 server's event loops (:class:`EventLoop`): a few threads, each serving the
connections it accepted from start to end; :class:`server.http.server.Server` runs them and
says what a connection's next step is.

Each loop has its own epoll with the listening socket in it; the kernel wakes one idle loop per
new connection (``EPOLLEXCLUSIVE``), and that loop does everything for it without blocking: the
TLS handshake's steps (the crypto runs outside the GIL, so loops handshake side by side on all
cores), the header block, the whole body, the application call and the reply. A connection
waiting for its client costs a loop nothing; one that waited longer than the server's
``timeout`` is closed. Only the application call holds a loop, and only its own connections
wait meanwhile: an idle loop takes the new ones.

Why loops and not one selector thread with a pool of workers, as here before: that handed
each connection from thread to thread four times per TLS request, two context switches each.
In the same runs on the 2-core benchmark machine a TLS request cost 1.6 ms of host CPU there
and 1.35 ms here, and a lock's call-in 5 to 8 ms there and 3.6 ms here.
"""

from __future__ import annotations

import select
import time

from .connection import HANDSHAKE, HEAD, IN, Connection

WAKE_INTERVAL = 0.25     # how often a loop looks for connections that waited too long
EXCLUSIVE = getattr(select, "EPOLLEXCLUSIVE", 0)  # Linux >= 4.5: one idle loop is woken


class EventLoop:
    """One event-loop thread: its own epoll, the listening socket, and the connections it
    accepted, which it serves to the end; ``server`` (a Server) says what each step is."""

    def __init__(self, server):
        self.server = server
        self.epoll = select.epoll()
        self.conns: dict[int, Connection] = {}
        self.accepting = True

    def run(self) -> None:
        server = self.server
        listen_fd, wake_fd = server.socket.fileno(), server.wake_fd
        self.epoll.register(listen_fd, IN | EXCLUSIVE)
        self.epoll.register(wake_fd, IN)
        next_expiry = time.monotonic() + WAKE_INTERVAL
        try:
            while not server.stopping:
                idle = not self.conns and self.accepting  # nothing can expire: sleep
                for fd, _ in self.epoll.poll(-1 if idle else WAKE_INTERVAL):
                    if server.stopping:
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
            # the context for this client (a migration serves each lock the chain it trusts)
            tls = server.tls_context(address).wrap_socket(sock, server_side=True,
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
            events = self.server.advance(conn)
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
                    self.server.expired(conn)
                except Exception:  # a report that failed must not end the loop
                    conn.close()

    def close_all(self) -> None:
        for conn in list(self.conns.values()):
            conn.close()
        self.conns.clear()
        self.epoll.close()
