"""Device records in ``Engage_Data/`` (DESIGN.md "Device records").

One JSON record per lock, ``<serial>.json``, written atomically and serialised per lock (a
thread lock, and an ``flock`` of ``.locks/<serial>.lock`` so that another process, such as
``engage-console devices import``, waits too; a lock file only for a serial with a record); its
audits and alerts are appended to ``<serial>.audit.jsonl`` / ``<serial>.alerts.jsonl``, one line
per event: ``{"received", "seq", "event"}`` with the event exactly as the lock sent it and
``seq`` counting the log's events, so the last line gives the count and an audit post appends
without rewriting the record. A record that does not parse is reported (``CorruptRecord``,
``DeviceSummary.corrupt``) and never overwritten.

Listing: an in-memory index (serial -> summary and the file's size and mtime) filled from disk
on the first listing, updated by every write of this process, and re-synchronised when the
folder's mtime shows another process added, replaced or removed a file (at most once a second;
this process's own writes update the index directly and do not count), and every 30 seconds
anyway (a file edited in place leaves the folder's mtime alone). A re-synchronisation
stats every file and parses only those whose size or mtime differ; a listing between them is a
dictionary copy. A record parsed there gets its audit count without reading its log when this
process, or the counts file ``.audit-counts.json`` (serial -> count, log size and mtime; written
a few seconds after audits arrive, and after a listing that had to read logs), knows the count
for the log's current size and mtime; else from the log's last line.

A record holds the lock's identity (``serial``, ``name``, ``tags``, ``listed`` on the allowlist,
``model``, ``firmware``, ``battery``, ``network``), its call-ins (``first_seen``, ``last_seen``,
``next_callin``, ``address``, ``listener``, ``authorization`` present/absent, ``last_config``: the
whole last PUT Config body), and what the host sends in ``host``:
``db`` (the database a lock that is behind receives), ``config`` (commanded settings) and
``nxtDbVerTS`` (that database's version; a new one only when :meth:`Devices.set_db` is given a
different database). Audit and alert counts are derived from the logs, never stored here.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import dataclasses
import datetime as dt
import fcntl
import io
import json
import os
import re
import threading
import time
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .atomic import append_line, write_atomic
from .errors import ConfigError, EngageError

AUDIT, ALERT = "audit", "alert"
_LOG_SUFFIX = {AUDIT: ".audit.jsonl", ALERT: ".alerts.jsonl"}
_COUNT_KEY = {AUDIT: "audits", ALERT: "alerts"}
MAX_REMEMBERED_IDS = 2048  # auditIds per log kept for skipping repeats (locks resend recent ones)
# Safe as a file name and plausible as a serial; checked after upper-casing.
_SAFE_SERIAL = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,63}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # line breaks, tabs, NUL...
_VERSION = re.compile(r"^(?:0|0[xX][0-9A-Fa-f]{1,16})$")
# Where a PUT Config body names the lock, in order (PROTOCOL.md "Lock identity fields").
CONFIG_SERIAL_FIELDS = (("lckPrmtrs", "lckSn"), ("lckPrmtrs", "mnSn"), ("lckSn",), ("mnSn",))
# Sections of a Config body that must be JSON objects when present.
CONFIG_OBJECTS = ("lckPrmtrs", "dvcProfile", "battV", "fwVer", "wifiStngs", "rdrPrmtrs")
DOTNET_EPOCH_TICKS = 621355968000000000  # 0001-01-01 to 1970-01-01 in 100 ns ticks
RESCAN_SECONDS = 1.0
FULL_RESCAN_SECONDS = 30.0
MAX_NAME = 100
READ_BYTES = 256 * 1024  # per read() of a record
LOCKS_FOLDER = ".locks"
COUNTS_FILE = ".audit-counts.json"
COUNTS_SAVE_SECONDS = 2.0
COUNTS_FILE_WORTH = 100  # records to parse before the counts file is worth reading


class DeviceError(EngageError):
    """A record is missing, corrupt, or a request about a lock is not acceptable."""


class BadRequest(DeviceError):
    """What a lock (or a file) sent has the wrong shape: nothing was written."""


class UnknownLock(DeviceError):
    """No record for this serial (or, with the allowlist on, the serial is not listed)."""


class NotListed(UnknownLock):
    """The allowlist is on and this serial is not on it."""


class CorruptRecord(DeviceError):
    """The record file does not parse; it is left untouched for a person to repair."""


class ImportRejected(DeviceError):
    """A device list has bad rows; ``problems`` holds one message per bad row."""

    def __init__(self, source: str, problems: list[str]):
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} bad row(s), nothing imported:\n  "
                         + "\n  ".join(problems))


@dataclass
class DeviceSummary:
    """One row of the device list; ``corrupt`` records carry the parse error in ``error``."""

    serial: str
    model: str = ""
    name: str = ""
    last_seen: str = ""      # ISO-8601 UTC of the last call-in, "" if never
    address: str = ""        # last client address
    firmware: str = ""
    battery: str = ""
    audit_count: int = 0
    corrupt: bool = False
    error: str = ""


@dataclass
class ImportRow:
    line: int
    serial: str
    name: str = ""
    tags: list = field(default_factory=list)


@dataclass
class EventsAdded:
    """Outcome of an audit or alert post: ``first`` when this created the lock's log."""

    first: bool
    added: int
    duplicates: int


# --- small pure helpers ------------------------------------------------------------------------

def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def site_zone(name: str) -> dt.tzinfo | None:
    """The site's time zone (``None``: this machine's local zone)."""
    if name == "local":
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"time_zone = {name!r}: not a known time zone; use an IANA name such "
                          "as America/Chicago, or local") from None


def lock_time(when: dt.datetime) -> str:
    """YYYYMMDDHHMMSS, as locks write times."""
    return when.strftime("%Y%m%d%H%M%S")


def normalise_serial(value, what: str = "serial") -> str:
    """Upper-cased serial, safe as a file name, or BadRequest saying why not."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"missing lock {what}")
    serial = value.strip().upper()
    if not _SAFE_SERIAL.match(serial):
        raise BadRequest(f"lock {what} {value!r} is not 1-64 letters, digits, '-' or '_'")
    return serial


def parse_version(text: str) -> int:
    """``nxtDbVerTS``: ``0`` or ``0x`` and up to 16 hex digits (examples show 15 and 16)."""
    if not isinstance(text, str) or not _VERSION.match(text):
        raise BadRequest(f"database version {text!r} is not 0 or 0x followed by hex digits")
    return int(text, 16) if len(text) > 1 else 0


def format_version(value: int) -> str:
    return f"0x{value:016x}"


def new_version(previous: int = 0) -> int:
    """A database version in .NET ticks (what the documented examples look like), increasing."""
    return max(DOTNET_EPOCH_TICKS + time.time_ns() // 100, previous + 1)


def serial_from_config(body: dict) -> str:
    """The first serial field present, a blank one counting as absent."""
    for path in CONFIG_SERIAL_FIELDS:
        value = body
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None and not (isinstance(value, str) and not value.strip()):
            return normalise_serial(value, ".".join(path))
    raise BadRequest("missing lock serial: the Config body has no lckPrmtrs.lckSn or "
                     "lckPrmtrs.mnSn")


def check_events(body) -> list[dict]:
    """The events of an audit or alert post (``{"asyncEvents": [{"event", "time"}, ...]}``)."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object with an asyncEvents list")
    events = body.get("asyncEvents")
    if not isinstance(events, list):
        raise BadRequest("asyncEvents is missing or not a list")
    for i, event in enumerate(events):
        if not isinstance(event, dict):
            raise BadRequest(f"asyncEvents[{i}] is not an object")
        for key in ("event", "time"):
            value = event.get(key)
            if isinstance(value, bool) or not (
                    isinstance(value, int) or isinstance(value, str) and value.isdigit()):
                raise BadRequest(f"asyncEvents[{i}].{key} is missing or not a number")
        if "auditId" in event and (isinstance(event["auditId"], (bool, dict, list))
                                   or event["auditId"] is None):
            raise BadRequest(f"asyncEvents[{i}].auditId is not a number or text")
    return events


def _seq(entry: dict, previous: int) -> int:
    seq = entry.get("seq")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else previous + 1


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _text(value) -> str:
    return "" if value is None else str(value)


@dataclass
class _LogState:
    """What this process knows of one event log: recent auditIds, event count, last time."""

    ids: collections.OrderedDict
    count: int
    last: str

    def remember(self, audit_id: str) -> None:
        self.ids[audit_id] = None
        if len(self.ids) > MAX_REMEMBERED_IDS:
            self.ids.popitem(last=False)


def record_from_bytes(data: bytes) -> dict:
    """A record file's content; ValueError saying what is wrong with it (not JSON, or a shape
    the host cannot use: ``host`` and its ``db`` and ``config`` objects, a valid version)."""
    try:
        record = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    host = record.get("host", {})
    if not isinstance(host, dict):
        raise ValueError("host is not a JSON object")
    for key in ("db", "config"):
        if host.get(key) is not None and not isinstance(host[key], dict):
            raise ValueError(f"host.{key} is not a JSON object")
    version = host.get("nxtDbVerTS")
    if version is not None and not (isinstance(version, str) and _VERSION.match(version)):
        raise ValueError(f"host.nxtDbVerTS {version!r} is not a database version")
    return record


def summary_of(serial: str, record: dict, audit_count: int = 0) -> DeviceSummary:
    lock = _dict(_dict(record.get("last_config")).get("lckPrmtrs"))
    return DeviceSummary(
        serial=serial, model=_text(record.get("model")),
        name=_text(record.get("name") or lock.get("nm")),
        last_seen=_text(record.get("last_seen")), address=_text(record.get("address")),
        firmware=_text(_dict(record.get("firmware")).get("main")),
        battery=_text(_dict(record.get("battery")).get("main")),
        audit_count=audit_count)


def _unknown(serial: str) -> UnknownLock:
    return UnknownLock(f"unknown lock {serial}: it has not sent PUT Config yet")


def _empty_usr() -> dict:
    return {"deleteAll": 0, "delete": [], "update": [], "add": []}


def db_changes(host_db: dict) -> dict:
    """The ``db`` object to send a lock that is behind: ``usrRcrd`` keys in the documented
    order, and ``deleteAll`` is 1 only when the record says exactly that."""
    usr = _dict(host_db.get("usrRcrd"))
    out = {"usrRcrd": {
        "deleteAll": 1 if type(usr.get("deleteAll")) is int and usr["deleteAll"] == 1 else 0,
        "delete": list(usr.get("delete") or []), "update": list(usr.get("update") or []),
        "add": list(usr.get("add") or [])}}
    for key in ("schedules", "holidays", "autoUnlock"):
        if key in host_db:
            out[key] = host_db[key]
    out.update((k, v) for k, v in host_db.items() if k not in out)
    return out


def _read_bytes(path: Path) -> bytes:
    """A file's bytes in four system calls (``Path.read_bytes`` makes nine, each a chance for
    another thread to take the GIL; a record is read at every request of a call-in)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        chunks = [os.read(fd, READ_BYTES)]
        while chunks[-1]:
            chunks.append(os.read(fd, READ_BYTES))
    finally:
        os.close(fd)
    return b"".join(chunks)


# --- the store ---------------------------------------------------------------------------------

class Devices:
    def __init__(self, root: Path, settings=None):
        self.root = Path(root)
        self.settings = settings
        if settings is not None:
            site_zone(settings.time_zone)  # a bad name fails at start-up, not at a call-in
        self.clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)
        # Called with the serial after any record, audit or alert of that lock changed.
        self.on_change: list[Callable[[str], None]] = []
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._logs: dict[tuple[str, str], _LogState] = {}
        self._index: dict[str, tuple[DeviceSummary, tuple]] = {}
        self._index_lock = threading.Lock()
        self._scanned_mtime: int | None = None
        self._scanned_at = 0.0
        self.rescan_seconds = RESCAN_SECONDS
        self._counts: dict[str, list] = {}  # serial -> [audits, log size, log mtime_ns]
        self._counts_dirty = False
        self._counts_lock = threading.Lock()
        self._counts_timer: threading.Timer | None = None
        self._changes: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._changes_cv = threading.Condition()
        self._notifier: threading.Thread | None = None

    @property
    def zone(self) -> dt.tzinfo | None:
        return site_zone(self.settings.time_zone) if self.settings is not None else None

    @property
    def allowlist(self) -> bool:
        return bool(self.settings is not None and self.settings.allowlist)

    # --- reading -----------------------------------------------------------------------------

    def path(self, serial: str) -> Path:
        return self.root / f"{serial}.json"

    def log_path(self, serial: str, kind: str) -> Path:
        return self.root / f"{serial}{_LOG_SUFFIX[kind]}"

    def summaries(self) -> list[DeviceSummary]:
        """Every record, quickly (10,000 records), corrupt ones included and marked."""
        self._sync_index()
        with self._index_lock:
            return [entry[0] for _, entry in sorted(self._index.items())]

    def record(self, serial: str) -> dict:
        """The whole record; DeviceError if missing or corrupt."""
        serial = normalise_serial(serial)
        record = self._read(serial)
        if record is None:
            raise UnknownLock(f"no record for lock {serial}")
        for kind, key in _COUNT_KEY.items():
            count, last = self._log_count(serial, kind)
            record[key] = {"count": count, "last": last}
        return record

    def recent_audits(self, serial: str, n: int = 20) -> list[dict]:
        return self._tail(self.log_path(normalise_serial(serial), AUDIT), n)

    def recent_alerts(self, serial: str, n: int = 20) -> list[dict]:
        return self._tail(self.log_path(normalise_serial(serial), ALERT), n)

    def served(self, serial: str) -> dict:
        """The record of a lock that may call in, or UnknownLock / NotListed / CorruptRecord."""
        record = self._read(serial)
        if record is None:
            raise _unknown(serial)
        if self.allowlist and not record.get("listed"):
            raise NotListed(f"lock {serial} is not on the allowlist")
        return record

    # --- call-ins ----------------------------------------------------------------------------

    def config_callin(self, body, address: str = "", listener: str = "",
                      auth_present: bool = False) -> tuple[str, bool]:
        """Create or update the record from a ``PUT Config`` body; (serial, created)."""
        if not isinstance(body, dict):
            raise BadRequest("the Config body must be a JSON object")
        serial = serial_from_config(body)
        for key in CONFIG_OBJECTS:
            if key in body and not isinstance(body[key], dict):
                raise BadRequest(f"{key} must be a JSON object")
        if self.allowlist and not self.path(serial).exists():  # no lock file for it
            raise NotListed(f"lock {serial} is not on the allowlist")
        with self._locked(serial):
            existing = self._read(serial)
            if self.allowlist and not (existing and existing.get("listed")):
                raise NotListed(f"lock {serial} is not on the allowlist")
            record = existing if existing is not None else self._new_record(serial, "call-in")
            lock = _dict(body.get("lckPrmtrs"))
            now = now_iso()
            record["model"] = _text(lock.get("mdl") or _dict(body.get("dvcProfile")).get("baseType")
                                    or record.get("model"))
            for key, source in (("firmware", "fwVer"), ("battery", "battV"),
                                ("network", "wifiStngs")):
                if source in body:
                    record[key] = body[source]
            record["first_seen"] = record.get("first_seen") or now
            record["last_seen"] = now
            record["next_callin"] = (self.clock() + dt.timedelta(
                seconds=self.interval)).isoformat(timespec="seconds")
            record["address"] = address
            record["listener"] = listener
            record["authorization"] = "present" if auth_present else "absent"
            record["last_config"] = body
            self._write(serial, record)
        self._changed(serial)
        return serial, existing is None

    @property
    def interval(self) -> int:
        return self.settings.callin_interval if self.settings is not None else 600

    def db_reply(self, serial: str, lock_version: str, record_it: bool = True) -> dict:
        """The ``GET db`` reply: changes only when the lock's version differs from the host's,
        a new ``nxtDbVerTS`` only when the host's database changed, the next call-in time.
        The record is written only when this call-in changed something (it usually does not:
        ``PUT Config`` just wrote it), and never without ``record_it`` (a HEAD request)."""
        reported = parse_version(lock_version)
        if not self.path(serial).exists():  # no lock file for it
            raise _unknown(serial)
        with self._locked(serial):
            record = self.served(serial)
            host = record.setdefault("host", {"db": None, "config": {}, "nxtDbVerTS": None})
            adopt = host.get("nxtDbVerTS") is None and host.get("db") is None and reported
            if adopt:
                host["nxtDbVerTS"] = lock_version  # the host holds no database yet
            current = host.get("nxtDbVerTS")
            behind = current is not None and parse_version(current) != reported
            utc = self.clock()
            now = utc.astimezone(self.zone)
            next_call = (utc + dt.timedelta(seconds=self.interval)).astimezone(self.zone)
            reply = {
                "db": db_changes(_dict(host.get("db"))) if behind else {"usrRcrd": _empty_usr()},
                "config": {**_dict(host.get("config")), "rtcTime": lock_time(now)},
                "dbDwnLdTm": lock_time(next_call),
                "nxtDbVerTS": current if current is not None else lock_version,
            }
            if not record_it or not (adopt or behind
                                     or record.get("lock_db_version") != lock_version):
                return reply
            record["lock_db_version"] = lock_version
            if behind:
                record["db_sent"] = {"time": now_iso(), "nxtDbVerTS": current}
            self._write(serial, record)
        self._changed(serial)
        return reply

    def append_events(self, serial: str, kind: str, body) -> EventsAdded:
        """Append every new event of an audit or alert post; skip repeated ``auditId``s."""
        events = check_events(body)
        path = self.log_path(serial, kind)
        received = now_iso()
        if not self.path(serial).exists():  # no lock file for it
            raise _unknown(serial)
        with self._locked(serial):
            self.served(serial)
            first = not path.exists()
            state = self._log_state(serial, kind, path)
            lines, duplicates, batch = [], 0, {}
            for event in events:
                audit_id = _text(event["auditId"]) if "auditId" in event else None
                if audit_id is not None and (audit_id in state.ids or audit_id in batch):
                    duplicates += 1
                    continue
                if audit_id is not None:
                    batch[audit_id] = None
                lines.append(json.dumps({"received": received, "seq": state.count + len(lines) + 1,
                                         "event": event}, separators=(",", ":"),
                                        ensure_ascii=False))
            if lines:
                with self._own_change(first):
                    append_line(path, "\n".join(lines))  # one write and fsync per post
                state.count += len(lines)
                state.last = received
                for audit_id in batch:
                    state.remember(audit_id)
                if kind == AUDIT:
                    self._index_count(serial, state.count)
                    self._note_count(serial, state.count, path)
            elif first:
                with self._own_change():
                    path.touch()  # the log exists from the first report on: 201 once
        self._changed(serial)
        return EventsAdded(first, len(lines), duplicates)

    def set_db(self, serial: str, db: dict, config: dict | None = None) -> str:
        """Give a lock a credential database (and commanded settings); a new version only when
        the database differs from the one it has. Returns the version."""
        if not isinstance(db, dict):
            raise BadRequest("a lock database must be a JSON object")
        serial = normalise_serial(serial)
        with self._locked(serial):
            record = self._read(serial)
            if record is None:
                raise UnknownLock(f"no record for lock {serial}")
            host = record.setdefault("host", {"db": None, "config": {}, "nxtDbVerTS": None})
            new_db = host.get("db") != db or not host.get("nxtDbVerTS")
            if not new_db and (config is None or host.get("config") == config):
                return host["nxtDbVerTS"]
            if new_db:
                previous = parse_version(host["nxtDbVerTS"]) if host.get("nxtDbVerTS") else 0
                host["db"] = db
                host["nxtDbVerTS"] = format_version(new_version(previous))
            if config is not None:
                host["config"] = config
            self._write(serial, record)
        self._changed(serial)
        return host["nxtDbVerTS"]

    # --- the device list (allowlist) ---------------------------------------------------------

    def check_format(self, serial: str) -> str | None:
        """Why ``serial`` does not fit the configured identity format, or None."""
        s = self.settings
        prefix = (s.serial_prefix if s else "").upper()
        if not serial.startswith(prefix):
            return f"serial {serial!r} does not start with {prefix!r}"
        digits = serial[len(prefix):]
        kind = s.serial_digits if s else "hex"
        allowed = "0123456789" if kind == "decimal" else "0123456789ABCDEF"
        if not digits or any(c not in allowed for c in digits):
            return f"serial {serial!r} is not {prefix + ' followed by ' if prefix else ''}" \
                   f"{'decimal' if kind == 'decimal' else 'hex'} digits"
        length = s.serial_length if s else 0
        if length and len(digits) != length:
            return f"serial {serial!r} has {len(digits)} digits after the prefix, expected {length}"
        return None

    def parse_import(self, text: str, source: str = "device list") -> list[ImportRow]:
        """Rows of a ``serial,name,tags`` CSV (tags separated by ';', optional header row);
        ImportRejected naming every bad row by line number (a quote never closed included)."""
        rows, problems, lines_of = [], [], {}
        reader = csv.reader(io.StringIO(text), strict=True)
        start, first = 1, True
        try:
            for raw in reader:
                line, start = start, reader.line_num + 1
                cells = [c.strip() for c in raw]
                if not any(cells):
                    continue
                header, first = first and cells[0].lower() == "serial", False
                if header:
                    continue
                problem = None
                if len(cells) > 3:
                    problem = f"{len(cells)} columns; expected serial, name, tags"
                else:
                    try:
                        serial = normalise_serial(cells[0])
                        problem = self.check_format(serial)
                    except BadRequest as exc:
                        problem = str(exc)
                if problem is None and serial in lines_of:
                    problem = f"serial {serial} repeats line {lines_of[serial]}"
                name = cells[1] if len(cells) > 1 else ""
                if problem is None and len(name) > MAX_NAME:
                    problem = f"name longer than {MAX_NAME} characters"
                if problem is None and any(_CONTROL.search(c) for c in cells[1:]):
                    problem = "a name or tag holds a line break or other control character"
                if problem is None:
                    try:
                        self._read(serial)
                    except CorruptRecord as exc:
                        problem = str(exc)
                if problem:
                    problems.append(f"line {line}: {problem}")
                    continue
                lines_of[serial] = line
                tags = [t.strip() for t in (cells[2] if len(cells) > 2 else "").split(";")
                        if t.strip()]
                rows.append(ImportRow(line, serial, name, tags))
        except csv.Error as exc:
            why = "a quote opened here is never closed" if "end of data" in str(exc) else exc
            problems.append(f"line {start}: not valid CSV: {why}")
        if problems:
            raise ImportRejected(source, problems)
        if not rows:
            raise ImportRejected(source, ["no rows: expected lines of serial,name,tags"])
        return rows

    def import_rows(self, rows: list[ImportRow]) -> tuple[int, int]:
        """Add or update listed locks; (added, updated). Call-in data is kept."""
        added = updated = 0
        for row in rows:
            with self._locked(row.serial):
                existing = self._read(row.serial)
                record = existing if existing is not None else self._new_record(row.serial, "import")
                if row.name:
                    record["name"] = row.name
                if row.tags:
                    record["tags"] = row.tags
                record["listed"] = True
                self._write(row.serial, record)
            added += existing is None
            updated += existing is not None
            self._changed(row.serial)
        return added, updated

    # --- internals ---------------------------------------------------------------------------

    def _new_record(self, serial: str, by: str) -> dict:
        return {"serial": serial, "name": "", "tags": [], "listed": by == "import",
                "registered_by": by, "registered": now_iso(), "model": "",
                "host": {"db": None, "config": {}, "nxtDbVerTS": None}}

    @contextlib.contextmanager
    def _locked(self, serial: str):
        """Hold ``serial``'s record against this process's threads and other processes."""
        with self._lock_for(serial):
            folder = self.root / LOCKS_FOLDER
            path = folder / f"{serial}.lock"
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:
                with self._own_change():
                    folder.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the flock

    def _lock_for(self, serial: str) -> threading.Lock:
        with self._guard:
            lock = self._locks.get(serial)
            if lock is None:
                lock = self._locks[serial] = threading.Lock()
            return lock

    def _read(self, serial: str) -> dict | None:
        path = self.path(serial)
        try:
            data = _read_bytes(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CorruptRecord(f"record {path} cannot be read: {exc.strerror}") from None
        try:
            return record_from_bytes(data)
        except ValueError as exc:
            self._mark_corrupt(serial, path, str(exc))
            raise CorruptRecord(f"record {path} is corrupt ({exc}); it is left untouched: "
                                "repair or remove it") from None

    def _write(self, serial: str, record: dict) -> None:
        path = self.path(serial)
        with self._own_change():
            write_atomic(path, json.dumps(record, ensure_ascii=False))  # C encoder: no indent
        self._index_put(serial, summary_of(serial, record, self._log_count(serial, AUDIT)[0]),
                        path)

    @contextlib.contextmanager
    def _own_change(self, changes_folder: bool = True):
        """A write of this process that changes the folder's mtime: when nothing else had
        changed it since the last re-synchronisation, the new mtime counts as seen (the index
        is updated directly). A change by another process inside this window waits for the
        periodic full re-synchronisation."""
        if not changes_folder:
            yield
            return
        before = self._folder_mtime()
        yield
        after = self._folder_mtime()
        with self._index_lock:
            if before is not None and self._scanned_mtime == before:
                self._scanned_mtime = after

    def _folder_mtime(self) -> int | None:
        try:
            return self.root.stat().st_mtime_ns
        except OSError:
            return None

    def _index_put(self, serial: str, summary: DeviceSummary, path: Path) -> None:
        try:
            st = path.stat()
            key = (st.st_mtime_ns, st.st_size)
        except OSError:
            key = ()
        with self._index_lock:
            self._index[serial] = (summary, key)

    def _mark_corrupt(self, serial: str, path: Path, error: str) -> None:
        self._index_put(serial, DeviceSummary(serial=serial, corrupt=True, error=error), path)

    def _sync_index(self) -> None:
        """Bring the index up to date with the folder (see the module docstring)."""
        try:
            mtime = self.root.stat().st_mtime_ns
        except FileNotFoundError:
            with self._index_lock:
                self._index.clear()
            return
        now = time.monotonic()
        age = now - self._scanned_at
        if self._scanned_mtime is not None and age < FULL_RESCAN_SECONDS and (
                self._scanned_mtime == mtime or age < self.rescan_seconds):
            return
        with self._index_lock:
            self._scanned_mtime, self._scanned_at = mtime, now
        with self._index_lock:
            known = dict(self._index)
        found: dict[str, tuple[DeviceSummary, tuple]] = {}
        records, logs, stale = [], {}, []
        audit_suffix = _LOG_SUFFIX[AUDIT]
        with os.scandir(self.root) as entries:
            for entry in entries:
                name = entry.name
                if name.endswith(audit_suffix):
                    logs[name[:-len(audit_suffix)]] = entry
                elif name.endswith(".json") and not name.startswith("."):
                    records.append(entry)
        for entry in records:
            serial = entry.name[:-5]
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue
            key = (st.st_mtime_ns, st.st_size)
            if serial in known and known[serial][1] == key:
                found[serial] = known[serial]
            else:
                stale.append((serial, entry.path, key))
        # the counts file costs what reading the end of a few hundred logs does: only for many
        saved = self._saved_counts() if len(stale) > COUNTS_FILE_WORTH else {}
        for serial, path, key in stale:
            audits = self._cold_count(serial, logs.get(serial), saved)
            found[serial] = (self._summary_from_disk(serial, path, audits), key)
        with self._index_lock:
            # keep what this process wrote meanwhile
            for serial, entry in self._index.items():
                if serial not in known or known[serial] is not entry:
                    if self.path(serial).exists():
                        found[serial] = entry
            self._index = found
        self.save_counts()  # what this listing read, the next one elsewhere need not

    def _summary_from_disk(self, serial: str, path: str, audits: int) -> DeviceSummary:
        try:
            with open(path, "rb") as f:
                record = record_from_bytes(f.read())
        except OSError as exc:
            return DeviceSummary(serial=serial, corrupt=True, error=f"cannot be read: {exc}")
        except ValueError as exc:
            return DeviceSummary(serial=serial, corrupt=True, error=str(exc))
        return summary_of(serial, record, audits)

    def _cold_count(self, serial: str, log: os.DirEntry | None, saved: dict) -> int:
        """A log's audit count, from memory or ``saved`` when they know it for the log's size
        and mtime, else from its last line (and then remembered)."""
        if log is None:
            return 0
        state = self._logs.get((serial, AUDIT))
        if state is not None:
            return state.count
        try:
            st = log.stat()
        except OSError:
            return 0
        stamp = [st.st_size, st.st_mtime_ns]
        for known in (self._counts.get(serial), saved.get(serial)):
            if known is not None and known[1:] == stamp:
                return known[0]
        count = self._log_count(serial, AUDIT)[0]
        with self._counts_lock:
            self._counts[serial] = [count, *stamp]
            self._counts_dirty = True
        return count

    def _note_count(self, serial: str, count: int, path: Path) -> None:
        """After an audit post: remember the count for the counts file, saved shortly."""
        try:
            st = path.stat()
        except OSError:
            return
        with self._counts_lock:
            self._counts[serial] = [count, st.st_size, st.st_mtime_ns]
            self._counts_dirty = True
            if self._counts_timer is None:
                self._counts_timer = threading.Timer(COUNTS_SAVE_SECONDS, self.save_counts)
                self._counts_timer.daemon = True
                self._counts_timer.start()

    def _saved_counts(self) -> dict[str, list]:
        """The counts file's entries that have the right shape (it is only a cache)."""
        try:
            data = json.loads((self.root / COUNTS_FILE).read_bytes())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {serial: v for serial, v in data.items() if isinstance(v, list) and len(v) == 3
                and all(type(x) is int for x in v)}

    def save_counts(self) -> None:
        """Merge the audit counts this process learnt into the counts file, if any."""
        with self._counts_lock:
            self._counts_timer = None
            if not self._counts_dirty or not self.root.is_dir():
                return
            self._counts_dirty = False
            mine = dict(self._counts)
        try:
            with self._own_change():
                write_atomic(self.root / COUNTS_FILE,
                             json.dumps({**self._saved_counts(), **mine}, separators=(",", ":")))
        except OSError:
            pass  # a cache: listings stay correct, only slower

    def _log_state(self, serial: str, kind: str, path: Path) -> _LogState:
        """The log's recent auditIds and count, read once per process (lock held)."""
        key = (serial, kind)
        state = self._logs.get(key)
        if state is None:
            state = _LogState(collections.OrderedDict(), 0, "")
            for entry in self._read_lines(path):
                event = _dict(entry.get("event"))
                if "auditId" in event:
                    state.remember(_text(event["auditId"]))
                state.count = _seq(entry, state.count)
                state.last = _text(entry.get("received")) or state.last
            self._logs[key] = state
        return state

    def _log_count(self, serial: str, kind: str) -> tuple[int, str]:
        """(events, time of the last) in a log: from memory, else from its last line."""
        state = self._logs.get((serial, kind))
        if state is not None:
            return state.count, state.last
        last = self._tail(self.log_path(serial, kind), 1)
        return (_seq(last[0], 0), _text(last[0].get("received"))) if last else (0, "")

    def _index_count(self, serial: str, count: int) -> None:
        with self._index_lock:
            entry = self._index.get(serial)
            if entry is not None:
                self._index[serial] = (dataclasses.replace(entry[0], audit_count=count), entry[1])

    @staticmethod
    def _read_lines(path: Path) -> list[dict]:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict):
                out.append(entry)
        return out

    @staticmethod
    def _tail(path: Path, n: int) -> list[dict]:
        """The last ``n`` entries, reading only the end of a long file."""
        try:
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                chunk, data = 64 * 1024, b""
                while size > 0 and data.count(b"\n") <= n:
                    step = min(chunk, size)
                    size -= step
                    f.seek(size)
                    data = f.read(step) + data
        except FileNotFoundError:
            return []
        out = []
        for line in data.splitlines()[-n:] if n > 0 else []:
            try:
                entry = json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue
            if isinstance(entry, dict):
                out.append(entry)
        return out

    def _changed(self, serial: str) -> None:
        """Queue ``serial`` for the on_change callbacks, run on one background thread so a
        slow subscriber never holds a request thread; repeated changes coalesce."""
        if not self.on_change:
            return
        with self._changes_cv:
            self._changes[serial] = None
            if self._notifier is None:
                self._notifier = threading.Thread(target=self._notify_loop,
                                                  name="device-changes", daemon=True)
                self._notifier.start()
            self._changes_cv.notify()

    def _notify_loop(self) -> None:
        while True:
            with self._changes_cv:
                while not self._changes:
                    self._changes_cv.wait()
                serial, _ = self._changes.popitem(last=False)
            for callback in list(self.on_change):
                try:
                    callback(serial)
                except Exception:  # a subscriber's bug must not stop notifications
                    pass
