"""The control socket's listener, run by a Host (``Host.serve_control``).

The socket is created in a folder only its owner can enter (mode 0700), the socket itself
mode 0600, and every peer is checked with ``SO_PEERCRED``: same user or root, else refused.
One thread per client (at most ``MAX_CLIENTS``): a client that says nothing is closed after
``idle_timeout`` and delays nobody. A ``follow`` stream reads a bounded subscription of the
request log, so recording never waits for a reader; a reader whose queue overflows, or whose
socket stays full for ``write_timeout``, is dropped (told ``"dropped": "fell behind"`` when it
can still be told).
"""

from __future__ import annotations

import os
import selectors
import socket
import stat
import struct
import threading
import time
from pathlib import Path

from ..errors import EngageError
from . import commands, protocol
from .lock import FolderLock

MAX_CLIENTS = 16
STREAM_QUEUE = 5000  # events a follow stream may lag behind before it is dropped
IDLE_TIMEOUT = 300.0  # seconds a client may stay silent between requests
WRITE_TIMEOUT = 10.0  # seconds a reply or stream write may wait for a client that reads nothing
HEARTBEAT = 1.0  # seconds between checks that a quiet stream's client is still there
GATHER = 0.05  # seconds a stream lets events gather before a write (a console draws 10/s)


class ControlError(EngageError):
    """The control socket cannot be set up (folder owned by another user, path too long)."""


def peer_allowed(uid: int, own_uid: int) -> bool:
    """Whether a peer with ``uid`` may use the socket of a host running as ``own_uid``."""
    return uid == own_uid or uid == 0


def peer_uid(conn: socket.socket) -> int:
    _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(
        socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    return uid


def private_folder(folder: Path) -> None:
    """Create ``folder`` (mode 0700) or make an existing one ours-only; refuse another user's."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.stat()
    if info.st_uid != os.getuid():
        raise ControlError(f"{folder} belongs to another user (uid {info.st_uid}): the control "
                           "socket needs a folder only this user can enter (setting control_socket)")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(folder, 0o700)


class ControlServer:
    def __init__(self, host, path: Path, idle_timeout: float = IDLE_TIMEOUT,
                 write_timeout: float = WRITE_TIMEOUT, stream_queue: int = STREAM_QUEUE):
        self.host = host
        self.path = Path(path)
        self.lock = FolderLock(self.path.with_suffix(".pid"))
        self.idle_timeout = idle_timeout
        self.write_timeout = write_timeout
        self.stream_queue = stream_queue
        self.started = time.time()
        self._sock: socket.socket | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = threading.Event()
        self._clients: dict[socket.socket, threading.Thread] = {}
        self._streams: set = set()  # subscriptions of follow streams, told of active-set changes
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Take the folder's lock (HostRunning if held), replace a stale socket file, listen."""
        private_folder(self.path.parent)
        self.lock.acquire()
        try:
            self.path.unlink(missing_ok=True)  # the lock was free: whoever made it is gone
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.bind(str(self.path))
            except OSError as exc:
                sock.close()
                raise ControlError(f"cannot create the control socket {self.path}: {exc}") from None
            os.chmod(self.path, 0o600)
            sock.listen(MAX_CLIENTS)
        except BaseException:
            self.lock.release()
            raise
        self._sock = sock
        self.host.certificates.on_change.append(self._active_changed)
        self._thread = threading.Thread(target=self._accept_loop, name="control-accept",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._sock is None:
            return
        self._stopping.set()
        self._wake_w.send(b"x")
        self._thread.join(timeout=5)
        if self._active_changed in self.host.certificates.on_change:
            self.host.certificates.on_change.remove(self._active_changed)
        with self._lock:
            streams, clients = list(self._streams), dict(self._clients)
        for sub in streams:
            sub.ready.set()  # streams say "closing" and end
        for conn in clients:
            _shutdown_read(conn)  # readers waiting for a request see the end
        deadline = time.monotonic() + 1.0
        for thread in clients.values():
            thread.join(max(0.0, deadline - time.monotonic()))
        self._sock.close()
        self._sock = None
        self.path.unlink(missing_ok=True)
        self.lock.release()

    # --- connections -------------------------------------------------------------------

    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self._sock, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping.is_set():
                for key, _ in sel.select():
                    if key.fileobj is self._sock and not self._stopping.is_set():
                        self._accept()

    def _accept(self) -> None:
        try:
            conn, _ = self._sock.accept()
        except OSError:
            return
        conn.settimeout(self.write_timeout)
        try:
            if not peer_allowed(peer_uid(conn), os.getuid()):
                self._refuse(conn, "refused: the control socket serves only its host's user")
                return
            thread = threading.Thread(target=self._serve, args=(conn,), name="control-client",
                                      daemon=True)
            with self._lock:
                full = len(self._clients) >= MAX_CLIENTS
                if not full:
                    self._clients[conn] = thread
            if full:
                self._refuse(conn, f"refused: {MAX_CLIENTS} clients are connected already")
                return
        except OSError:
            conn.close()
            return
        thread.start()

    def _refuse(self, conn: socket.socket, why: str) -> None:
        try:
            conn.sendall(protocol.encode({"ok": False, "error": why}))
        except OSError:
            pass
        conn.close()

    def _serve(self, conn: socket.socket) -> None:
        try:
            reader = conn.makefile("rb")
            while not self._stopping.is_set():
                conn.settimeout(self.idle_timeout)
                line = reader.readline(protocol.MAX_LINE + 1)
                conn.settimeout(self.write_timeout)
                if not line.endswith(b"\n"):  # closed (maybe mid-line: nothing half-done) or too long
                    if len(line) > protocol.MAX_LINE:
                        conn.sendall(protocol.encode({"ok": False, "error": "request longer "
                                                      f"than {protocol.MAX_LINE // 1024} KiB: "
                                                      "refused; closing"}))
                        _hang_up(conn)
                    return
                if not line.strip():
                    continue
                try:
                    cmd, args = protocol.parse_request(line)
                except protocol.ProtocolError as exc:
                    conn.sendall(protocol.encode({"ok": False, "error": str(exc)}))
                    continue
                if cmd == "follow":
                    self._follow(conn, args["from"])
                    return
                conn.sendall(protocol.encode(commands.run(self.host, self.started, cmd, args)))
        except OSError:  # the client went away or stalled: only its own thread notices
            pass
        finally:
            with self._lock:
                self._clients.pop(conn, None)
            conn.close()

    # --- the follow stream -------------------------------------------------------------

    def _follow(self, conn: socket.socket, after: int) -> None:
        log = self.host.log
        sub = log.subscribe(maxlen=self.stream_queue)
        sub.active_changed = False
        with self._lock:
            self._streams.add(sub)
        try:
            backlog = [e for e in log.recent() if e.seq > after]
            conn.sendall(protocol.encode({"ok": True, "following": True,
                                          "backlog": len(backlog)}))
            last = self._send_events(conn, backlog, after)
            while not self._stopping.is_set():
                if not sub.ready.wait(HEARTBEAT) and _closed(conn):
                    return
                self._stopping.wait(GATHER)  # let a busy moment's events gather: one write
                events = sub.drain()
                if sub.dropped:
                    conn.sendall(protocol.encode({"dropped": "fell behind",
                                                  "lost": sub.dropped}))
                    return
                if sub.active_changed:
                    sub.active_changed = False
                    conn.sendall(protocol.encode(
                        {"active": commands.active_dict(self.host.certificates.current())}))
                last = self._send_events(conn, events, last)
            conn.sendall(protocol.encode({"closing": "the host is stopping"}))
        finally:
            sub.close()
            with self._lock:
                self._streams.discard(sub)

    @staticmethod
    def _send_events(conn: socket.socket, events, after: int) -> int:
        """Write the events newer than ``after`` in one go; the newest sequence number sent."""
        fresh = [e for e in events if e.seq > after]
        if fresh:
            conn.sendall("".join(f'{{"event":{e.json_line()}}}\n' for e in fresh).encode())
            after = fresh[-1].seq
        return after

    def _active_changed(self, _active) -> None:
        with self._lock:
            streams = list(self._streams)
        for sub in streams:
            sub.active_changed = True
            sub.ready.set()


def _closed(conn: socket.socket) -> bool:
    """Whether the client hung up (checked without blocking while a stream is quiet)."""
    try:
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _hang_up(conn: socket.socket, seconds: float = 2.0, limit: int = 64 * 1024 * 1024) -> None:
    """End our side and discard what the client is still sending (a bounded amount, for a
    bounded time): closing with unread input would reset the connection and lose our reply."""
    conn.shutdown(socket.SHUT_WR)
    deadline, discarded = time.monotonic() + seconds, 0
    while discarded < limit and (left := deadline - time.monotonic()) > 0:
        conn.settimeout(left)
        chunk = conn.recv(65536)
        if not chunk:
            return
        discarded += len(chunk)


def _shutdown_read(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RD)
    except OSError:
        pass
