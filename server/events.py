"""The request log: one event per request or failed TLS handshake.

Events go to a bounded in-memory ring (for the console), to ``logs/requests.jsonl`` (rotated by
size, written by a background thread) and to subscribers. Recording never blocks a request
thread: subscribers are bounded queues that drop their oldest event and count the drop.
Neither the ``Authorization`` value nor the site key ever reaches an event.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import itertools
import json
import os
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path

WRITE_INTERVAL = 0.1  # seconds the file writer lets events gather before a write
MAX_TARGET = 1000  # characters of path and of query string kept per event


def _cut(text: str) -> str:
    """``text`` up to ``MAX_TARGET`` characters, saying how much was cut."""
    if len(text) <= MAX_TARGET:
        return text
    return f"{text[:MAX_TARGET]}...[{len(text) - MAX_TARGET} more characters cut]"


@dataclass
class Event:
    listener: str
    client: str
    method: str = ""
    path: str = ""
    query: str = ""
    status: int = 0
    bytes: int = 0
    duration_ms: float = 0.0
    serial: str = ""
    tls_version: str = ""
    auth_present: bool = False
    error: str = ""
    kind: str = "request"  # "request", "handshake" (failed) or "chain" (a migration's choice)
    provision: str = ""  # a provision event (West's term): "provisioned: ..." or "refused: ..."
    client_cert: str = ""  # the TLS client certificate's subject and SHA-256 fingerprint
    note: str = ""  # why a migration served a connection the chain it did (kind "chain")
    headers: dict = field(default_factory=dict)
    time: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc)
                      .isoformat(timespec="milliseconds"))
    seq: int = 0

    def __post_init__(self):
        self.path = _cut(self.path)
        self.query = _cut(self.query)

    @property
    def failed(self) -> bool:
        return bool(self.error) or self.status >= 400 or self.kind == "handshake"

    def to_dict(self) -> dict:
        # Not dataclasses.asdict: its deep copy cost a tenth of the host's CPU per call-in.
        out = {f.name: getattr(self, f.name) for f in _FIELDS}
        out["headers"] = dict(self.headers)
        return out

    def json_line(self) -> str:
        """The event as one compact JSON line, encoded once: the log file and every control
        socket follower share it (encoding was most of what a follower cost the host)."""
        line = self.__dict__.get("_json")
        if line is None:
            line = self.__dict__["_json"] = json.dumps(self.to_dict(), separators=(",", ":"))
        return line

    def line(self) -> str:
        """One human line, as headless mode prints it; what the client sent cannot break it
        into two lines or steer a terminal."""
        where = f"{self.listener:<4} {self.client:<15}"
        if self.kind == "handshake":
            return _printable(f"{self.time} {where} TLS handshake failed: {self.error}")
        if self.kind == "chain":
            return _printable(f"{self.time} {where} TLS chain: {self.note}")
        serial = f" lock={self.serial}" if self.serial else ""
        target = self.path + (f"?{self.query}" if self.query else "")
        err = f" error={self.error}" if self.error else ""
        return _printable(f"{self.time} {where} {self.method} {target} {self.status} "
                          f"{self.bytes}B {self.duration_ms:.1f}ms{serial}{err}")


def _printable(text: str) -> str:
    """``text`` with non-printable characters as backslash escapes (``\\n``, ``\\x1b``)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


_FIELDS = dataclasses.fields(Event)

# Headers whose values may carry secrets: recorded as present/absent only. So is any header
# whose name contains one of SECRET_WORDS.
SECRET_HEADERS = {"authorization", "cookie", "proxy-authorization", "x-api-key", "x-auth-token"}
SECRET_WORDS = ("token", "secret", "key", "auth")
MAX_HEADER_VALUE = 200


def is_secret_header(name: str) -> bool:
    name = name.lower()
    return name in SECRET_HEADERS or any(word in name for word in SECRET_WORDS)


def safe_headers(items) -> dict:
    """Header names and values worth logging to confirm what real locks send."""
    out = {}
    for name, value in items:
        if is_secret_header(name):
            out[name] = "(present)"
        else:
            out[name] = value[:MAX_HEADER_VALUE]
    return out


class Subscription:
    """A bounded queue of events for one reader that drains it on its own schedule."""

    def __init__(self, log: "RequestLog", maxlen: int):
        self._log = log
        self._events: collections.deque[Event] = collections.deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self.dropped = 0
        self.ready = threading.Event()

    def _put(self, event: Event) -> None:
        with self._lock:
            if len(self._events) == self._events.maxlen:
                self.dropped += 1
            self._events.append(event)
        self.ready.set()

    def drain(self) -> list[Event]:
        with self._lock:
            out = list(self._events)
            self._events.clear()
            self.ready.clear()
        return out

    def close(self) -> None:
        self._log.unsubscribe(self)


class RequestLog:
    def __init__(self, ring_size: int = 10_000, path: Path | None = None,
                 max_bytes: int = 10 * 1024 * 1024, backups: int = 3):
        self._ring: collections.deque[Event] = collections.deque(maxlen=ring_size)
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._subs: list[Subscription] = []
        self.path = Path(path) if path else None
        self.max_bytes = max_bytes
        self.backups = backups
        self.write_errors = 0
        self._file_queue: queue.SimpleQueue = queue.SimpleQueue()
        self._file = None  # the open log file, used by the writer thread only
        self._hurry = threading.Event()  # a flush is waiting: write without gathering more
        self._writer: threading.Thread | None = None
        if self.path:
            self._writer = threading.Thread(target=self._write_loop, name="request-log-writer",
                                            daemon=True)
            self._writer.start()

    def record(self, event: Event) -> Event:
        with self._lock:
            event.seq = next(self._seq)
            self._ring.append(event)
            subs = list(self._subs)
        for sub in subs:
            sub._put(event)
        if self._writer:
            self._file_queue.put(event)
        return event

    def recent(self, n: int | None = None) -> list[Event]:
        with self._lock:
            events = list(self._ring)
        return events if n is None else events[-n:]

    def subscribe(self, maxlen: int = 10_000) -> Subscription:
        sub = Subscription(self, maxlen)
        with self._lock:
            self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every event recorded so far is in the file (tests, shutdown)."""
        if not self._writer:
            return True
        done = threading.Event()
        self._file_queue.put(done)
        self._hurry.set()
        return done.wait(timeout)

    def _write_loop(self) -> None:
        while True:
            item = self._file_queue.get()
            self._hurry.wait(WRITE_INTERVAL)  # let a busy moment's events gather: one write
            self._hurry.clear()
            batch = [item]
            while True:  # write what has piled up in one go
                try:
                    batch.append(self._file_queue.get_nowait())
                except queue.Empty:
                    break
            lines = [e.json_line() for e in batch if isinstance(e, Event)]
            if lines:
                try:
                    self._append(lines)
                except OSError:
                    self.write_errors += 1
                    self._close_file()
            for e in batch:
                if isinstance(e, threading.Event):
                    e.set()

    def _append(self, lines: list[str]) -> None:
        """Append to the log file, kept open between batches; reopened when it was rotated
        here or moved or deleted by someone else."""
        assert self.path
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            found = None
        if self._file and (found is None or found.st_ino != os.fstat(self._file.fileno()).st_ino):
            self._close_file()
        if found is not None and found.st_size and found.st_size >= self.max_bytes:
            self._close_file()
            self._rotate()
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")
        self._file.write("\n".join(lines) + "\n")
        self._file.flush()

    def _close_file(self) -> None:
        if self._file:
            self._file.close()
            self._file = None

    def _rotate(self) -> None:
        assert self.path
        if self.backups == 0:
            os.unlink(self.path)
            return
        for i in range(self.backups - 1, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{i}")
            if src.exists():
                os.replace(src, self.path.with_name(f"{self.path.name}.{i + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
