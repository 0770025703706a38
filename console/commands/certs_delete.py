"""``engage-console certs delete NAME``: remove a set that is no longer wanted."""

from __future__ import annotations

from server.certstore import CertStore
from server.migration.state import read_state

from .common import EXIT_OK, fail, print_json


def register(verb) -> None:
    """Add the verb through the certs parser's ``verb(name, func, help)``."""
    p = verb("delete", delete_set,
             "remove a set's folder (its CA keys in ca/ stay); refused for the active set, and "
             "for a set in the activation history (a rollback may return to it) unless --force "
             "(exit 0 deleted, 2 refused or unknown set)")
    p.add_argument("name")
    p.add_argument("--force", action="store_true",
                   help="delete a set that is in the activation history (never the active set)")


def delete_set(args, settings) -> int:
    store = CertStore(settings.path("certs_dir"))
    migration = read_state(store.root)
    if migration and args.name in (migration.from_set, migration.to_set):
        return fail(args, f"set {args.name} is in the migration under way "
                    f"({migration.from_set} -> {migration.to_set}): finish or abort it first")
    path = store.delete(args.name, force=args.force)
    ca = settings.path("ca_dir") / args.name
    kept = ca if ca.is_dir() else None
    if args.json:
        print_json({"deleted": args.name, "path": path, "ca_kept": kept})
    else:
        print(f"Deleted set {args.name} ({path})."
              + (f" Its CA keys stay in {kept}." if kept else ""))
    return EXIT_OK
