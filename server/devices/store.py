"""The device store the host composes (DESIGN.md "Device records"): one :class:`Devices` over
``Engage_Data/`` holding the record files, the event logs and their counts, the listing index
and the change notices, with the call-ins and the allowlist import working on them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Callable

from . import allowlist, callin, clientcert, identities, listing
from .allowlist import ImportRow
from .counts import AuditCounts
from .errors import UnknownLock
from .folder import FolderStamp
from .index import Index
from .summary import DeviceSummary
from .logs import ALERT, AUDIT, COUNT_KEY, EventLogs, EventsAdded, tail
from .notices import ChangeNotices
from .records import RecordFiles
from .identity import check_identity, identity_format
from .serials import normalise_serial
from .trust import Trust


class Devices:
    """Every lock's record and logs; the methods the routes, console and CLI call."""

    def __init__(self, root: Path, settings=None):
        self.root = Path(root)
        self.settings = settings
        if settings is not None:
            callin.site_zone(settings.time_zone)  # a bad name fails at start-up, not at a call-in
            identity_format(settings)  # so does a length the identity type cannot have
            listing.networks(settings)  # and a provision network that is not one
        self.clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)
        # Called with the serial after any record, audit or alert of that lock changed.
        self.on_change: list[Callable[[str], None]] = []
        self.notices = ChangeNotices(self.on_change)
        self.stamp = FolderStamp(self.root)
        self.logs = EventLogs(self.root)
        self.counts = AuditCounts(self.root, self.stamp, self.logs)
        self.index = Index(self.root, self.stamp)
        self.files = RecordFiles(self.root, self.stamp, self.index)
        self.trust = Trust(settings.fetch_attribution_seconds if settings is not None else 3600)
        self._trust_seeded = False

    @property
    def zone(self) -> dt.tzinfo | None:
        return callin.site_zone(self.settings.time_zone) if self.settings is not None else None

    @property
    def allowlist(self) -> bool:
        return bool(self.settings is not None and self.settings.allowlist)

    @property
    def mutual_tls(self) -> bool:
        """Whether a lock's client certificate must speak for it (``client_ca_file`` set)."""
        return bool(self.settings is not None and self.settings.client_ca_file)

    @property
    def interval(self) -> int:
        return self.settings.callin_interval if self.settings is not None else 600

    # --- reading -----------------------------------------------------------------------------

    def path(self, serial: str) -> Path:
        return self.files.path(serial)

    def log_path(self, serial: str, kind: str) -> Path:
        return self.logs.path(serial, kind)

    def summaries(self) -> list[DeviceSummary]:
        """Every record, quickly (10,000 records), corrupt ones included and marked."""
        return self.index.summaries()

    def changes(self, since: int) -> tuple[int, dict[str, DeviceSummary | None] | None]:
        """What changed since version ``since`` (see Index.changes): how a view of 100,000
        locks follows a call-in without taking the whole list again."""
        return self.index.changes(since)

    def fleet_counts(self, active_anchor: str | None) -> dict[str, int]:
        """Locks per health state now (:func:`server.devices.health.counts`), kept current
        with every change rather than recounted (100,000 records)."""
        return self.index.counts(self.clock(), self.settings, active_anchor)

    def resync(self) -> None:
        """The next listing re-reads every changed record file (see Index.resync)."""
        self.index.resync()

    def record(self, serial: str) -> dict:
        """The whole record; DeviceError if missing or corrupt."""
        serial = normalise_serial(serial)
        record = self.files.read(serial)
        if record is None:
            raise UnknownLock(f"no record for lock {serial}")
        for kind, key in COUNT_KEY.items():
            count, last = self.logs.count(serial, kind)
            record[key] = {"count": count, "last": last}
        return record

    def recent_audits(self, serial: str, n: int = 20) -> list[dict]:
        return tail(self.log_path(normalise_serial(serial), AUDIT), n)

    def recent_alerts(self, serial: str, n: int = 20) -> list[dict]:
        return tail(self.log_path(normalise_serial(serial), ALERT), n)

    def served(self, serial: str) -> dict:
        """The record of a lock that may call in, or UnknownLock / NotListed / CorruptRecord."""
        return callin.served(self, serial)

    def audit_counts(self) -> dict[str, int]:
        """serial -> how many audits its log holds, for every lock with a log (a stat of each
        log: not part of the summaries, which the preflight reads at 100,000 locks)."""
        return self.counts.all()

    def save_counts(self) -> None:
        """Merge the audit counts this process learnt into the counts file, if any."""
        self.counts.save()

    # --- call-ins (server.devices.callin) ----------------------------------------------------

    def config_callin(self, body, address: str = "", listener: str = "",
                      auth_present: bool = False, client_cert: bytes | None = None,
                      notes: dict | None = None,
                      anchor_sha256: str | None = None) -> tuple[str, bool]:
        """Create or update the record from a ``PUT Config`` body; (serial, created)."""
        return callin.config_callin(self, body, address, listener, auth_present, client_cert,
                                    notes, anchor_sha256)

    def check_client(self, serial: str, client_cert: bytes | None) -> None:
        """IdentityMismatch unless the client certificate may speak for lock ``serial``."""
        clientcert.check_client(serial, client_cert, self.files.read(serial))

    def relist(self, serials: list[str]) -> list[str]:
        """Give listings a new activation window; the serials that have no record."""
        missing = []
        for serial in map(normalise_serial, serials):
            with self.files.locked(serial):
                record = self.files.read(serial)
                if record is None:
                    missing.append(serial)
                    continue
                listing.relist(record, self.clock())
                self.files.write(serial, record)
            self.notices.changed(serial)
        return missing

    def listing_state(self, record: dict) -> str:
        """listed, provisioned, expired or unlisted (:func:`listing.listing_state`)."""
        hours = self.settings.activation_hours if self.settings is not None else 48.0
        return listing.listing_state(record, self.clock(), hours)

    def db_reply(self, serial: str, lock_version: str, record_it: bool = True,
                 anchor_sha256: str | None = None) -> dict:
        """The ``GET db`` reply (see :func:`server.devices.callin.db_reply`)."""
        return callin.db_reply(self, serial, lock_version, record_it, anchor_sha256)

    def anchor_fetched(self, address: str, sha256: str) -> bool:
        """The anchor ``sha256`` was downloaded from ``address`` (in memory until a call-in);
        whether the address fetched another anchor before."""
        return self.trust.fetched(address, sha256, callin.now_iso())

    def seed_trust(self) -> None:
        """A host that just started knows addresses and proven anchors from the records."""
        if not self._trust_seeded:
            self._trust_seeded = True
            for s in self.summaries():
                self.trust.seed(s.serial, s.address, s.anchor_trusted, s.anchor_trusted_at)

    def handshake_failed(self, address: str, reason: str) -> None:
        """A TLS handshake from ``address`` failed (``reason`` in words)."""
        self.seed_trust()
        callin.handshake_failed(self, address, reason)

    def append_events(self, serial: str, kind: str, body) -> EventsAdded:
        """Append every new event of an audit or alert post; skip repeated ``auditId``s."""
        return callin.append_events(self, serial, kind, body)

    def set_db(self, serial: str, db: dict, config: dict | None = None) -> str:
        """Give a lock a credential database (and commanded settings); a new version only when
        the database differs from the one it has. Returns the version."""
        return callin.set_db(self, serial, db, config)

    # --- the device list (server.devices.allowlist) ------------------------------------------

    def check_format(self, serial: str) -> str | None:
        """Why ``serial`` does not fit the configured identity format, or None."""
        return check_identity(serial, self.settings)

    def parse_import(self, text: str, source: str = "device list") -> list[ImportRow]:
        """Rows of ``identities.csv`` or a ``serial,name,tags`` CSV; ImportRejected naming every
        bad row."""
        return allowlist.parse_import(self, text, source)

    def export_identities(self) -> tuple[int, str]:
        """(count, ``identities.csv`` text) of the listed locks, in serial order."""
        records = [self.files.read(s.serial) for s in self.summaries() if not s.corrupt]
        listed = [r for r in records if r and r.get("listed")]
        return len(listed), identities.export_text(listed)

    def import_rows(self, rows: list[ImportRow]) -> tuple[int, int]:
        """Add or update listed locks; (added, updated). Call-in data is kept."""
        return allowlist.import_rows(self, rows)
