"""The call-in answers: what a lock's ``PUT Config``, ``GET db`` and audit or alert posts change
in its record and logs, and what the lock is answered; and the database the host gives a lock.
Each function works on the pieces a :class:`server.devices.store.Devices` composes."""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo

from ..atomic import append_line
from ..errors import ConfigError
from .dbversion import format_version, new_version, parse_version
from . import clientcert, listing
from .errors import BadRequest, DeviceError, NotListed, UnknownLock
from .logs import AUDIT, EventsAdded, check_events
from .records import as_dict, as_text, new_record, now_iso
from .serials import normalise_serial, serial_from_config
from .trust import add_failures, note_trusted

# Sections of a Config body that must be JSON objects when present.
CONFIG_OBJECTS = ("lckPrmtrs", "dvcProfile", "battV", "fwVer", "wifiStngs", "rdrPrmtrs")


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


def _unknown(serial: str) -> UnknownLock:
    return UnknownLock(f"unknown lock {serial}: it has not sent PUT Config yet")


def _empty_usr() -> dict:
    return {"deleteAll": 0, "delete": [], "update": [], "add": []}


def db_changes(host_db: dict) -> dict:
    """The ``db`` object to send a lock that is behind: ``usrRcrd`` keys in the documented
    order, and ``deleteAll`` is 1 only when the record says exactly that."""
    usr = as_dict(host_db.get("usrRcrd"))
    out = {"usrRcrd": {
        "deleteAll": 1 if type(usr.get("deleteAll")) is int and usr["deleteAll"] == 1 else 0,
        "delete": list(usr.get("delete") or []), "update": list(usr.get("update") or []),
        "add": list(usr.get("add") or [])}}
    for key in ("schedules", "holidays", "autoUnlock"):
        if key in host_db:
            out[key] = host_db[key]
    out.update((k, v) for k, v in host_db.items() if k not in out)
    return out


def served(devices, serial: str) -> dict:
    """The record of a lock that may call in, or UnknownLock / NotListed / CorruptRecord."""
    record = devices.files.read(serial)
    if record is None:
        raise _unknown(serial)
    if devices.allowlist:
        listing.admit(devices, serial, record, "", devices.clock())
    return record


def config_callin(devices, body, address: str = "", listener: str = "",
                  auth_present: bool = False, client_cert: bytes | None = None,
                  notes: dict | None = None,
                  anchor_sha256: str | None = None) -> tuple[str, bool]:
    """Create or update the record from a ``PUT Config`` body; (serial, created). With
    ``client_ca_file`` set, ``client_cert`` (DER) must speak for the lock. ``notes`` gets
    what the request log shows: ``provision`` (a first call-in) and ``client_cert``. Over TLS
    the anchor trust learnt (``server.devices.trust``) goes into the same write."""
    notes = {} if notes is None else notes
    if not isinstance(body, dict):
        raise BadRequest("the Config body must be a JSON object")
    serial = serial_from_config(body)
    for key in CONFIG_OBJECTS:
        if key in body and not isinstance(body[key], dict):
            raise BadRequest(f"{key} must be a JSON object")
    files = devices.files
    if devices.allowlist and not files.path(serial).exists():  # no lock file for it
        raise NotListed(f"lock {serial} is refused: it is not on the allowlist")
    with files.locked(serial):
        existing = files.read(serial)
        if client_cert:
            notes["client_cert"] = clientcert.client_cert(client_cert).label()
        presented = (clientcert.check_client(serial, client_cert, existing)
                     if devices.mutual_tls else None)
        listing.admit(devices, serial, existing, address, devices.clock())
        record = existing if existing is not None else new_record(serial, "call-in")
        if listing.provisioned(record, devices.clock()):
            notes["provision"] = "provisioned: first call-in"
        if presented is not None:
            record["client_cert"] = presented.summary()
        lock = as_dict(body.get("lckPrmtrs"))
        now = now_iso()
        record["model"] = as_text(lock.get("mdl") or as_dict(body.get("dvcProfile")).get("baseType")
                                  or record.get("model"))
        for key, source in (("firmware", "fwVer"), ("battery", "battV"),
                            ("network", "wifiStngs")):
            if source in body:
                record[key] = body[source]
        record["first_seen"] = record.get("first_seen") or now
        record["last_seen"] = now
        record["next_callin"] = (devices.clock() + dt.timedelta(
            seconds=devices.interval)).isoformat(timespec="seconds")
        record["address"] = address
        record["listener"] = listener
        record["authorization"] = "present" if auth_present else "absent"
        record["last_config"] = body
        if listener == "tls":
            devices.trust.fold(record, serial, address, anchor_sha256, now)
        files.write(serial, record)
    devices.notices.changed(serial)
    return serial, existing is None


def db_reply(devices, serial: str, lock_version: str, record_it: bool = True,
             anchor_sha256: str | None = None) -> dict:
    """The ``GET db`` reply: changes only when the lock's version differs from the host's,
    a new ``nxtDbVerTS`` only when the host's database changed, the next call-in time.
    The record is written only when this call-in changed something (it usually does not:
    ``PUT Config`` just wrote it), and never without ``record_it`` (a HEAD request).
    ``anchor_sha256``: the handshake's anchor, for a lock named by the query on a TLS
    connection (written only when it differs from the anchor the record names)."""
    reported = parse_version(lock_version)
    files = devices.files
    if not files.path(serial).exists():  # no lock file for it
        raise _unknown(serial)
    with files.locked(serial):
        record = served(devices, serial)
        host = record.setdefault("host", {"db": None, "config": {}, "nxtDbVerTS": None})
        adopt = host.get("nxtDbVerTS") is None and host.get("db") is None and reported
        if adopt:
            host["nxtDbVerTS"] = lock_version  # the host holds no database yet
        current = host.get("nxtDbVerTS")
        behind = current is not None and parse_version(current) != reported
        utc = devices.clock()
        now = utc.astimezone(devices.zone)
        next_call = (utc + dt.timedelta(seconds=devices.interval)).astimezone(devices.zone)
        reply = {
            "db": db_changes(as_dict(host.get("db"))) if behind else {"usrRcrd": _empty_usr()},
            "config": {**as_dict(host.get("config")), "rtcTime": lock_time(now)},
            "dbDwnLdTm": lock_time(next_call),
            "nxtDbVerTS": current if current is not None else lock_version,
        }
        trust_changed = record_it and note_trusted(record, anchor_sha256, now_iso())
        if not record_it or not (adopt or behind or trust_changed
                                 or record.get("lock_db_version") != lock_version):
            return reply
        record["lock_db_version"] = lock_version
        if behind:
            record["db_sent"] = {"time": now_iso(), "nxtDbVerTS": current}
        files.write(serial, record)
    devices.notices.changed(serial)
    return reply


def append_events(devices, serial: str, kind: str, body) -> EventsAdded:
    """Append every new event of an audit or alert post; skip repeated ``auditId``s."""
    events = check_events(body)
    path = devices.logs.path(serial, kind)
    received = now_iso()
    files = devices.files
    if not files.path(serial).exists():  # no lock file for it
        raise _unknown(serial)
    with files.locked(serial):
        served(devices, serial)
        first = not path.exists()
        state = devices.logs.state(serial, kind, path)
        lines, duplicates, batch = [], 0, {}
        for event in events:
            audit_id = as_text(event["auditId"]) if "auditId" in event else None
            if audit_id is not None and (audit_id in state.ids or audit_id in batch):
                duplicates += 1
                continue
            if audit_id is not None:
                batch[audit_id] = None
            lines.append(json.dumps({"received": received, "seq": state.count + len(lines) + 1,
                                     "event": event}, separators=(",", ":"),
                                    ensure_ascii=False))
        if lines:
            with devices.stamp.own_change(first):
                append_line(path, "\n".join(lines))  # one write and fsync per post
            state.count += len(lines)
            state.last = received
            for audit_id in batch:
                state.remember(audit_id)
            if kind == AUDIT:
                devices.counts.note(serial, state.count, path)
        elif first:
            with devices.stamp.own_change():
                path.touch()  # the log exists from the first report on: 201 once
    devices.notices.changed(serial)
    return EventsAdded(first, len(lines), duplicates)


def handshake_failed(devices, address: str, reason: str) -> None:
    """A TLS handshake from ``address`` failed: into the record of the lock last there."""
    found = devices.trust.failed(address, reason, now_iso())
    if found is None:
        return
    serial, failures = found
    files = devices.files
    with files.locked(serial):
        try:
            record = files.read(serial)
        except DeviceError:  # a corrupt record is reported elsewhere and never overwritten
            return
        if record is None:
            return
        add_failures(record, failures)
        files.write(serial, record)
    devices.notices.changed(serial)


def set_db(devices, serial: str, db: dict, config: dict | None = None) -> str:
    """Give a lock a credential database (and commanded settings); a new version only when
    the database differs from the one it has. Returns the version."""
    if not isinstance(db, dict):
        raise BadRequest("a lock database must be a JSON object")
    serial = normalise_serial(serial)
    files = devices.files
    with files.locked(serial):
        record = files.read(serial)
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
        files.write(serial, record)
    devices.notices.changed(serial)
    return host["nxtDbVerTS"]
