"""What each control command does to a Host (the socket side is server.py): the same services
and checks the console and the command line use, the activation preflight included."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import time

from ..devices import health
from ..errors import CertificateError, EngageError
from ..fleet import preflight
from ..migration import service
from ..migration.progress import progress

PATHS = ("certs_dir", "ca_dir", "data_dir", "logs_dir", "site_key_file")


def active_dict(active) -> dict | None:
    if active is None:
        return None
    return {"name": active.name, "hash": active.hash, "demo": active.cert_set.demo,
            "anchor_sha256": active.cert_set.anchor_sha256, "tls_error": active.tls_error}


def listeners_dict(statuses) -> dict:
    return {name: dataclasses.asdict(status) for name, status in statuses.items()}


def fleet(host) -> dict:
    active = host.certificates.current()
    counts = host.devices.fleet_counts(active.cert_set.anchor_sha256 if active else None)
    return {"counts": counts, "line": health.summary_line(counts)}


def status(host, started: float) -> dict:
    return {"pid": os.getpid(), "started": dt.datetime.fromtimestamp(started, dt.timezone.utc)
            .isoformat(timespec="seconds"), "uptime": round(time.time() - started, 1),
            "folder": os.getcwd(),
            "paths": {name: str(host.settings.path(name).resolve()) for name in PATHS},
            "listeners": listeners_dict(host.status()),
            "log_seq": next((e.seq for e in host.log.recent(1)), 0),
            "active": active_dict(host.certificates.current()), "notices": list(host.notices),
            "fleet": fleet(host)}


def _target(host, name: str | None) -> str:
    """``name``, or for None the set a rollback would activate; CertificateError for none."""
    target = name or host.store.rollback_target()
    if target is None:
        raise CertificateError("nothing to roll back to: no earlier activation in history")
    return target


def preflight_of(host, name: str | None) -> dict:
    """The fleet preflight of activating ``name`` (None: rolling back), from this host's warm
    index: what ``certs activate`` prints when a host runs (a cold read of 100,000 records
    takes seconds)."""
    current = host.certificates.current()
    report = preflight(host.devices, host.store.load(_target(host, name)),
                       current.cert_set if current else None)
    return {"ok": True, "preflight": report.to_dict()}


def migrate(host, action: str, name: str, force: bool, by: str) -> dict:
    """``certs migrate`` on this host: the change is served at once (no wait for the files)."""
    certificates = host.certificates
    if action == "start":
        if not name:
            return {"ok": False, "error": "migrate start: name the set to migrate to"}
        state = service.start(certificates, name, by=by)
        host.migration.reload()
        report = progress(host.devices, host.store.root, state)
        return {"ok": True, "progress": report.to_dict(), "text": report.text()}
    if action == "finish":
        active = service.finish(certificates, force=force, by=by)
        host.migration.reload()
        return {"ok": True, "active": active_dict(active)}
    if action == "abort":
        report = service.abort(certificates, host.devices, by=by)
        host.migration.reload()
        return {"ok": True, "progress": report.to_dict(), "fetched_new": report.fetched_new}
    return {"ok": False, "error": f"migrate: unknown action {action!r}: start, finish or abort"}


def switch(host, name: str | None, force: bool, cut_off_ok: bool, by: str) -> dict:
    """Activate set ``name`` (None: roll back) as ``certs activate``/``rollback`` would: the
    fleet preflight refuses cutting known locks off unless ``cut_off_ok``; the validation gate
    (in Certificates.activate) refuses a set with errors unless ``force``."""
    action = "activate" if name else "rollback"
    name = _target(host, name)
    current = host.certificates.current()
    report = preflight(host.devices, host.store.load(name), current.cert_set if current else None)
    if report.blocking and not cut_off_ok:
        return {"ok": False, "preflight": report.to_dict(),
                "error": f"not activated: {report.text()} (cut_off_ok to activate anyway)"}
    active = host.certificates.activate(name, force=force, by=by, action=action)
    return {"ok": True, "active": active_dict(active), "preflight": report.to_dict()}


def run(host, started: float, cmd: str, args: dict) -> dict:
    """The reply to one command (not ``follow``: the server streams that itself)."""
    try:
        if cmd == "status":
            return {"ok": True, **status(host, started)}
        if cmd == "fleet":
            return {"ok": True, **fleet(host)}
        if cmd in ("start", "stop"):
            unknown = [n for n in args["listeners"] if n not in host.listeners]
            if unknown:
                return {"ok": False, "error": f"unknown listener(s) {', '.join(map(str, unknown))}"
                                              f": known are {', '.join(host.listeners)}"}
            names = tuple(args["listeners"])
            return {"ok": True, "listeners": listeners_dict(
                host.start(names) if cmd == "start" else host.stop(names))}
        if cmd == "reload":
            return {"ok": True, "active": active_dict(host.certificates.reload())}
        if cmd in ("activate", "rollback"):
            return switch(host, args.get("name"), args["force"], args["cut_off_ok"], args["by"])
        if cmd == "preflight":
            return preflight_of(host, args["name"] or None)
        if cmd == "migrate":
            return migrate(host, args["action"], args["name"], args["force"], args["by"])
    except EngageError as exc:
        return {"ok": False, "error": str(exc)}
    raise ValueError(f"no handler for {cmd}")  # protocol.COMMANDS and this disagree: a bug
