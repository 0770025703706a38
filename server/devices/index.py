"""The listing index: an in-memory index (serial -> summary and the file's size and mtime)
filled from disk on the first listing, updated by every write of this process, and
re-synchronised when the folder's mtime shows another process added, replaced or removed a file
(at most once a second; this process's own writes update the index directly and do not count),
and every 30 seconds anyway (a file edited in place leaves the folder's mtime alone). A
re-synchronisation stats every file and parses only those whose size or mtime differ; a listing
between them is a dictionary copy. Audit counts of the records parsed there come from
:mod:`server.devices.counts`."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .counts import AuditCounts
from .folder import FolderStamp
from .logs import AUDIT, LOG_SUFFIX, EventLogs
from .records import as_dict, as_text, record_from_bytes, record_path

RESCAN_SECONDS = 1.0
FULL_RESCAN_SECONDS = 30.0
COUNTS_FILE_WORTH = 100  # records to parse before the counts file is worth reading


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
    # what lock health (server.devices.health) and the fleet view need; "" when not recorded
    next_callin: str = ""
    anchor_trusted: str = ""       # SHA-256 proven by a TLS handshake (server.devices.trust)
    anchor_trusted_at: str = ""
    anchor_fetched: str = ""       # SHA-256 inferred from the address, "ambiguous" (NAT)
    trust_recorded: bool = False   # False: a record from before trust was recorded
    tls_failures: int = 0          # handshake failures since its last good call-in
    tls_failure: str = ""          # the reason of the latest
    listed: bool = False           # what server.devices.listing.listing_state reads
    listed_at: str = ""
    provisioned_at: str = ""


def summary_of(serial: str, record: dict, audit_count: int = 0) -> DeviceSummary:
    lock = as_dict(as_dict(record.get("last_config")).get("lckPrmtrs"))
    trusted, fetched = as_dict(record.get("anchor_trusted")), as_dict(record.get("anchor_fetched"))
    failures = as_dict(record.get("tls_failures"))
    last_failure = (failures.get("last") or [{}])[-1] if isinstance(failures.get("last"), list) \
        else {}
    return DeviceSummary(
        serial=serial, model=as_text(record.get("model")),
        name=as_text(record.get("name") or lock.get("nm")),
        last_seen=as_text(record.get("last_seen")), address=as_text(record.get("address")),
        firmware=as_text(as_dict(record.get("firmware")).get("main")),
        battery=as_text(as_dict(record.get("battery")).get("main")),
        audit_count=audit_count, next_callin=as_text(record.get("next_callin")),
        anchor_trusted=as_text(trusted.get("sha256")), anchor_trusted_at=as_text(trusted.get("at")),
        anchor_fetched="ambiguous" if fetched.get("inferred") == "ambiguous"
        else as_text(fetched.get("sha256")),
        trust_recorded="anchor_trusted" in record or "anchor_fetched" in record,
        tls_failures=failures["count"] if type(failures.get("count")) is int else 0,
        tls_failure=as_text(as_dict(last_failure).get("reason")),
        listed=record.get("listed") is True, listed_at=as_text(record.get("listed_at")),
        provisioned_at=as_text(record.get("provisioned_at")))


class Index:
    """Summaries of every record, kept current as the module docstring says."""

    def __init__(self, root: Path, stamp: FolderStamp, logs: EventLogs, counts: AuditCounts):
        self.root = root
        self._stamp = stamp
        self._logs = logs
        self._counts = counts
        self._index: dict[str, tuple[DeviceSummary, tuple]] = {}
        self._lock = threading.Lock()
        self._scanned_at = 0.0
        self.rescan_seconds = RESCAN_SECONDS

    def summaries(self) -> list[DeviceSummary]:
        """Every record, quickly (10,000 records), corrupt ones included and marked."""
        self._sync()
        with self._lock:
            return [entry[0] for _, entry in sorted(self._index.items())]

    def resync(self) -> None:
        """Re-read the folder at the next listing, whatever its mtime says (a record edited
        in place by hand leaves the folder's mtime alone): the console's refresh key."""
        with self._stamp.lock:
            self._stamp.seen = None

    def put(self, serial: str, summary: DeviceSummary, path: Path) -> None:
        try:
            st = path.stat()
            key = (st.st_mtime_ns, st.st_size)
        except OSError:
            key = ()
        with self._lock:
            self._index[serial] = (summary, key)

    def written(self, serial: str, record: dict, path: Path) -> None:
        """This process wrote ``record`` to ``path``."""
        self.put(serial, summary_of(serial, record, self._logs.count(serial, AUDIT)[0]), path)

    def mark_corrupt(self, serial: str, path: Path, error: str) -> None:
        self.put(serial, DeviceSummary(serial=serial, corrupt=True, error=error), path)

    def set_count(self, serial: str, count: int) -> None:
        with self._lock:
            entry = self._index.get(serial)
            if entry is not None:
                self._index[serial] = (dataclasses.replace(entry[0], audit_count=count), entry[1])

    def _sync(self) -> None:
        """Bring the index up to date with the folder (see the module docstring)."""
        try:
            mtime = self.root.stat().st_mtime_ns
        except FileNotFoundError:
            with self._lock:
                self._index.clear()
            return
        now = time.monotonic()
        age = now - self._scanned_at
        if self._stamp.seen is not None and age < FULL_RESCAN_SECONDS and (
                self._stamp.seen == mtime or age < self.rescan_seconds):
            return
        with self._stamp.lock:
            self._stamp.seen, self._scanned_at = mtime, now
        with self._lock:
            known = dict(self._index)
        found: dict[str, tuple[DeviceSummary, tuple]] = {}
        records, logs, stale = [], {}, []
        audit_suffix = LOG_SUFFIX[AUDIT]
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
        saved = self._counts.saved() if len(stale) > COUNTS_FILE_WORTH else {}
        for serial, path, key in stale:
            audits = self._counts.cold_count(serial, logs.get(serial), saved)
            found[serial] = (self._summary_from_disk(serial, path, audits), key)
        with self._lock:
            # keep what this process wrote meanwhile
            for serial, entry in self._index.items():
                if serial not in known or known[serial] is not entry:
                    if record_path(self.root, serial).exists():
                        found[serial] = entry
            self._index = found
        self._counts.save()  # what this listing read, the next one elsewhere need not

    def _summary_from_disk(self, serial: str, path: str, audits: int) -> DeviceSummary:
        try:
            with open(path, "rb") as f:
                record = record_from_bytes(f.read())
        except OSError as exc:
            return DeviceSummary(serial=serial, corrupt=True, error=f"cannot be read: {exc}")
        except ValueError as exc:
            return DeviceSummary(serial=serial, corrupt=True, error=str(exc))
        return summary_of(serial, record, audits)
