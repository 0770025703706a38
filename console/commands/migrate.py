"""``engage-console certs migrate``: move the fleet to a new anchor without cutting anyone off
(issue 16). ``NEW`` starts it, ``--status`` shows who moved, ``--finish`` makes the new set the
only one (the normal activation, its fleet preflight naming whoever has not moved), ``--abort``
returns to the old anchor alone. A host running in this folder is told through its control
socket and serves the change at once; with none, the files change (a host started later, or one
that lost its socket, follows them within a second)."""

from __future__ import annotations

from server.activation import Certificates
from server.certcheck.rules import gate
from server.certstore import CertStore, current_user
from server.control.client import CommandFailed, running_host
from server.devices.store import Devices
from server.host import load_site_key
from server.migration import service
from server.migration.progress import progress
from server.migration.state import FINISH, read_state

from .common import EXIT_OK, fail, print_json

BY = f"{current_user()} (command line)"


def register(verb, force_flags, switch) -> None:
    """Add the verb through the certs parser's ``verb``; ``force_flags`` and ``switch`` are
    the activation's flags and path (console/commands/certs.py), which ``--finish`` takes."""
    p = verb("migrate", lambda args, settings: migrate(args, settings, switch),
             "migrate to set NEW (another anchor): /current delivers NEW's anchor at once and "
             "each lock gets, per connection, the chain of the anchor it holds, so none is cut "
             "off; --status shows who moved, --finish makes NEW the only set, --abort returns "
             "to the old anchor alone (exit 0 done, 1 --finish refused by its preflight, 2 "
             "refused or usage)")
    p.add_argument("name", nargs="?", metavar="NEW", help="the set to migrate to")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--status", action="store_true",
                      help="locks moved (called in on the new chain), fetched the new anchor but "
                           "not yet called in, not fetched")
    what.add_argument("--finish", action="store_true",
                      help="make NEW the only set (as certs activate NEW, with its preflight)")
    what.add_argument("--abort", action="store_true",
                      help="back to the old anchor alone; names the locks that fetched NEW")
    force_flags(p)


def migrate(args, settings, switch) -> int:
    if sum((args.status, args.finish, args.abort, bool(args.name))) != 1:
        return fail(args, "give NEW to start a migration, or one of --status, --finish, --abort")
    store = CertStore(settings.path("certs_dir"))
    devices = Devices(settings.path("data_dir"), settings)
    if args.status:
        return _status(args, store, devices)
    if args.finish:
        state = read_state(store.root)
        if state is None:
            return fail(args, "no migration is under way: nothing to finish")
        return switch(args, settings, state.to_set, FINISH)
    result = _start_or_abort(args, settings, store, devices)
    if isinstance(result, int):
        return result
    report = result["progress"]
    if args.abort:
        fetched = result["fetched_new"]
        if args.json:
            print_json({"aborted": True, "active": report["from_set"],
                        "fetched_new_count": len(fetched), "fetched_new": fetched})
        else:
            print(f"Migration to {report['to_set']} aborted: /current and TLS serve the "
                  f"anchor of {report['from_set']} alone again.")
            print(f"{len(fetched)} locks fetched the new anchor meanwhile and need the old one "
                  "again (re-commission each from the ENGAGE app)" + (":" if fetched else "."))
            for serial in fetched:
                print(f"  {serial}")
        return EXIT_OK
    if args.json:
        print_json({"started": True, **report})
    else:
        print(result["text"])
        print(f"Started: /current now delivers the anchor of {report['to_set']}; each lock "
              "keeps the chain it trusts. When the locks have moved: certs migrate --finish "
              "(or --abort).")
    return EXIT_OK


def _start_or_abort(args, settings, store: CertStore, devices: Devices) -> dict | int:
    """The control socket's ``migrate`` reply, from the running host (it serves the change at
    once) or, with none, from the files (a host started later serves them); or an exit."""
    action = "abort" if args.abort else "start"
    host = running_host(settings)
    if host is not None:
        try:
            return host.call("migrate", action=action, name=args.name or "", by=BY)
        except CommandFailed as exc:
            return fail(args, f"the running host refused: {exc}")
        finally:
            host.close()
    site_key = load_site_key(settings, create_demo=False)[0]
    certificates = Certificates(store, site_key, settings, gate=gate(site_key, settings))
    if args.abort:
        report = service.abort(certificates, devices, by=BY)
        return {"progress": report.to_dict(), "fetched_new": report.fetched_new}
    report = progress(devices, store.root, service.start(certificates, args.name, by=BY))
    return {"progress": report.to_dict(), "text": report.text()}


def _status(args, store: CertStore, devices: Devices) -> int:
    state = read_state(store.root)
    if state is None:
        if args.json:
            print_json({"migrating": False})
        else:
            print("No migration is under way.")
        return EXIT_OK
    report = progress(devices, store.root, state)
    if args.json:
        print_json({"migrating": True, **report.to_dict()})
    else:
        print(report.text())
    return EXIT_OK
