"""``engage-console certs migrate``: move the fleet to a new anchor without cutting anyone off
(issue 16). ``NEW`` starts it, ``--status`` shows who moved, ``--finish`` makes the new set the
only one (the normal activation, its fleet preflight naming whoever has not moved), ``--abort``
returns to the old anchor alone. A running engage-console follows within a second."""

from __future__ import annotations

from server.activation import Certificates
from server.certcheck.rules import gate
from server.certstore import CertStore, current_user
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
        return switch(args, settings, state.to_set, FINISH,
                      lambda c, by: service.finish(c, force=args.force, by=by))
    site_key = load_site_key(settings, create_demo=False)[0]
    certificates = Certificates(store, site_key, settings, gate=gate(site_key, settings))
    if args.abort:
        report = service.abort(certificates, devices, by=BY)
        fetched = report.fetched_new
        if args.json:
            print_json({"aborted": True, "active": report.state.from_set,
                        "fetched_new_count": len(fetched), "fetched_new": fetched})
        else:
            print(f"Migration to {report.state.to_set} aborted: /current and TLS serve the "
                  f"anchor of {report.state.from_set} alone again.")
            print(f"{len(fetched)} locks fetched the new anchor meanwhile and need the old one "
                  "again (re-commission each from the ENGAGE app)" + (":" if fetched else "."))
            for serial in fetched:
                print(f"  {serial}")
        return EXIT_OK
    state = service.start(certificates, args.name, by=BY)
    report = progress(devices, store.root, state)
    if args.json:
        print_json({"started": True, **report.to_dict()})
    else:
        print(report.text())
        print(f"Started: /current now delivers the anchor of {state.to_set}; each lock keeps "
              f"the chain it trusts. When the locks have moved: certs migrate --finish "
              f"(or --abort). A running engage-console follows within a second.")
    return EXIT_OK


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
