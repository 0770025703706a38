"""``engage-console certs activate | rollback``: switch the set the host serves, after the
validation report (a set with errors needs a confirmed ``--force``) and the fleet preflight
(a new anchor that known locks do not hold needs ``--cut-off-ok``)."""

from __future__ import annotations

import sys

from server.activation import Certificates
from server.certcheck.rules import gate
from server.certstore import CertSet, current_user
from server.control.client import CommandFailed, running_host
from server.control.commands import active_dict
from server.devices.store import Devices
from server.fleet import preflight
from server.migration import service
from server.migration.state import FINISH, refusal

from . import certs_sets as sets
from .certs_text import format_report
from .common import EXIT_FINDINGS, EXIT_OK, fail, print_json


def force_flags(parser) -> None:
    parser.add_argument("--force", action="store_true",
                        help="activate despite errors (asks for confirmation; recorded in history)")
    parser.add_argument("--yes", action="store_true",
                        help="confirm --force without asking (for scripts)")
    parser.add_argument("--cut-off-ok", action="store_true",
                        help="activate a new anchor even though known locks that do not hold it "
                             "will fail their TLS call-ins (the preflight names them; exit 1 "
                             "without this flag)")


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        return False
    return input(f"{question} Type yes to continue: ").strip().lower() == "yes"


def activate(args, settings) -> int:
    if why := refusal(settings.path("certs_dir"), args.name):
        return fail(args, why)
    return switch(args, settings, args.name, "activate")


def rollback(args, settings) -> int:
    if why := refusal(settings.path("certs_dir"), action="rollback"):
        return fail(args, why)
    target = sets.store(settings).rollback_target()
    if target is None:
        return fail(args, "nothing to roll back to: no earlier activation in history")
    return switch(args, settings, target, "rollback")


def switch(args, settings, name: str, action: str) -> int:
    """Check set ``name``, refuse it with errors unless --force is confirmed, then ``action``
    it (activate, rollback or a migration's finish): through the running host's control
    socket when one runs in this folder (its warm index gives the preflight, and it swaps at
    once), else through the files; and report it."""
    store = sets.store(settings)
    site_key = sets.site_key(settings)
    cert_set = store.load(name)
    report = sets.report(store, site_key, settings, cert_set)
    if report.errors:
        if not args.force:
            if not args.json:
                print(format_report(report, store))
                print(f"Not activated: set {cert_set.name} has errors. Fix them, or use --force "
                      "if you accept that locks may fail.")
            else:
                print_json({"activated": False, "set": cert_set.name, "report": report.to_dict()})
            return EXIT_FINDINGS
        if not args.yes and not _confirm(
                f"Set {cert_set.name} has {len(report.errors)} error(s): "
                + "; ".join(f.id for f in report.errors) + ". Locks may fail to connect."):
            return fail(args, "forced activation not confirmed (on a terminal type yes, in a "
                        "script add --yes); nothing changed")
    previous = sets.active_set(store)
    host = running_host(settings)
    try:
        return _switch(args, settings, store, site_key, cert_set, previous, action, host)
    except CommandFailed as exc:
        return fail(args, f"the running host refused: {exc}", EXIT_FINDINGS)
    finally:
        if host is not None:
            host.close()


def _switch(args, settings, store, site_key, cert_set: CertSet, previous: CertSet | None,
            action: str, host) -> int:
    if host is not None:
        fleet = host.call("preflight", name=cert_set.name)["preflight"]
    else:
        report = preflight(Devices(settings.path("data_dir"), settings), cert_set, previous)
        fleet = report.to_dict() if args.json else {  # a dict per lock only for JSON (100,000)
            "cut_off_count": len(report.cut_off), "message": report.text()}
    if fleet["cut_off_count"] and not args.cut_off_ok:
        if args.json:
            print_json({"activated": False, "set": cert_set.name, "preflight": fleet})
        else:
            print(fleet["message"])
            print(f"Not activated: add --cut-off-ok to activate {cert_set.name} anyway.")
        return EXIT_FINDINGS
    if not args.json:
        print(fleet["message"])
    by = f"{current_user()} (command line)"
    if host is None:
        certificates = Certificates(store, site_key, settings, gate=gate(site_key, settings))
        if action == FINISH:
            active = service.finish(certificates, force=args.force, by=by)
        else:
            active = certificates.activate(cert_set.name, force=args.force, by=by, action=action)
        active, host_pid = active_dict(active), None
    else:  # the CLI asked and confirmed above; the host checks the same way again
        if action == FINISH:
            reply = host.call("migrate", action="finish", force=args.force, by=by)
        else:
            named = {"name": cert_set.name} if action == "activate" else {}
            reply = host.call(action, **named, force=args.force, cut_off_ok=True, by=by)
        active, host_pid = reply["active"], host.call("status")["pid"]
    _print_activated(args, store, previous, active, fleet, host_pid)
    return EXIT_OK


def _print_activated(args, store, previous: CertSet | None, active: dict, fleet: dict,
                     host_pid: int | None) -> None:
    anchor_changed = previous is not None and previous.anchor_sha256 != active["anchor_sha256"]
    entry = (store.history() or [{}])[-1]
    if args.json:
        print_json({"activated": True, "set": active["name"],
                    "previous": previous.name if previous else None, "hash": active["hash"],
                    "anchor_sha256": active["anchor_sha256"],
                    "anchor_changed": anchor_changed, "forced": bool(entry.get("forced")),
                    "host_pid": host_pid, "preflight": fleet})
    else:
        print(f"Active set: {active['name']}" + (f" (was {previous.name})" if previous else "")
              + f"; locks receive hash {active['hash']}")
        if anchor_changed:
            print("WARNING: the anchor changed: every lock keeps the old anchor until it fetches "
                  "/current again (commissioning or a manual start from the ENGAGE app).")
        elif previous is not None:
            print("Same anchor as before: locks need nothing.")
        print(f"The host running in this folder (pid {host_pid}) serves it now." if host_pid
              else "No host runs in this folder; a running engage-console using these files "
                   "switches to it within a second.")
