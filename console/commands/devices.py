"""``engage-console devices import | list | show``: device records for scripts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from server.atomic import write_atomic
from server.certstore import CertStore
from server.devices import health
from server.devices.errors import CorruptRecord, DeviceError
from server.devices.store import Devices
from server.fleet import active_anchor

from .common import EXIT_FINDINGS, EXIT_OK, fail, print_json


def register(sub, parent) -> None:
    p = sub.add_parser("devices", help="lock records in Engage_Data/", parents=[parent])
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    imp = verbs.add_parser(
        "import", parents=[parent],
        help="add locks from West Connectivity's identities.csv (ID,TLS Client Certificate,Tags; "
             "a certificate pins its lock) or a CSV of serial,name,tags (tags separated by ';'); "
             "every row is checked against the identity_* settings and a file with any bad row "
             "imports nothing")
    imp.add_argument("csv", help="the CSV file ('-' for standard input)")
    imp.set_defaults(func=import_csv)
    exp = verbs.add_parser("export", parents=[parent],
                           help="write the listed locks as West Connectivity's identities.csv")
    exp.add_argument("csv", nargs="?", default="-", help="the file to write (default: stdout)")
    exp.set_defaults(func=export_csv)
    rel = verbs.add_parser("relist", parents=[parent],
                           help="give listings a new activation window (activation_hours), "
                                "e.g. for locks whose listing expired")
    rel.add_argument("serials", nargs="+", metavar="SERIAL")
    rel.set_defaults(func=relist)
    lst = verbs.add_parser("list", parents=[parent],
                           help="every lock: serial, model, name, last call-in (exit 1 if any "
                                "record is corrupt)")
    lst.add_argument("--json", action="store_true", help="JSON for scripts")
    lst.set_defaults(func=list_devices)
    status = verbs.add_parser(
        "status", parents=[parent],
        help="one line for monitoring scripts: how many locks are in each health state (exit 1 "
             "if any is overdue, tls-failing, anchor-stale or corrupt)")
    status.add_argument("--json", action="store_true", help="the counts as JSON")
    status.set_defaults(func=fleet_status)
    show = verbs.add_parser("show", parents=[parent],
                            help="one lock's whole record and its latest audits and alerts")
    show.add_argument("serial")
    show.add_argument("--audits", type=int, default=20, metavar="N",
                      help="how many recent audits and alerts (default 20)")
    show.add_argument("--json", action="store_true", help="JSON for scripts")
    show.set_defaults(func=show_device)


def _devices(settings) -> Devices:
    return Devices(settings.path("data_dir"), settings)


def import_csv(args, settings) -> int:
    try:
        raw = sys.stdin.buffer.read() if args.csv == "-" else Path(args.csv).read_bytes()
    except OSError as exc:
        return fail(args, f"cannot read {args.csv}: {exc.strerror}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return fail(args, f"{args.csv} is not UTF-8 text (byte {exc.start}); nothing imported")
    devices = _devices(settings)
    try:
        rows = devices.parse_import(text, args.csv)
    except DeviceError as exc:
        return fail(args, str(exc))
    added, updated = devices.import_rows(rows)
    print(f"Imported {len(rows)} lock(s) from {args.csv}: {added} added, {updated} updated "
          f"(records in {devices.root}).")
    return EXIT_OK


def export_csv(args, settings) -> int:
    count, text = _devices(settings).export_identities()
    if args.csv == "-":
        sys.stdout.write(text)
        return EXIT_OK
    try:
        write_atomic(args.csv, text)
    except OSError as exc:
        return fail(args, f"cannot write {args.csv}: {exc.strerror}")
    print(f"Exported {count} listed lock(s) to {args.csv}")
    return EXIT_OK


def relist(args, settings) -> int:
    devices = _devices(settings)
    try:
        missing = devices.relist(args.serials)
    except DeviceError as exc:
        return fail(args, str(exc))
    done = len(args.serials) - len(missing)
    print(f"Relisted {done} lock(s) for {settings.activation_hours:g} hours.")
    if missing:
        return fail(args, f"no record for {', '.join(missing)} (import it first)")
    return EXIT_OK


def list_devices(args, settings) -> int:
    devices = _devices(settings)
    summaries, now = devices.summaries(), devices.clock()
    anchor, audits = active_anchor(CertStore(settings.path("certs_dir"))), devices.audit_counts()
    states = list(map(health.judge(now, settings, anchor), summaries))
    trusts = [health.trust(s, anchor) for s in summaries]
    corrupt = [s for s in summaries if s.corrupt]
    if args.json:
        print_json([{**s._asdict(), "audit_count": audits.get(s.serial, 0), "state": state,
                     "trust": trust}
                    for s, state, trust in zip(summaries, states, trusts)])
    else:
        rows = [("SERIAL", "MODEL", "NAME", "LAST CALL-IN", "ADDRESS", "AUDITS", "ANCHOR",
                 "TLS FAILURES", "STATE")]
        rows += [(s.serial, s.model, s.name, s.last_seen or "never", s.address,
                  str(audits.get(s.serial, 0)),
                  f"{s.anchor_trusted[:12]} ({trust})" if s.anchor_trusted else trust,
                  f"{s.tls_failures} ({s.tls_failure})" if s.tls_failures else "0",
                  f"CORRUPT: {s.error}" if s.corrupt else state)
                 for s, state, trust in zip(summaries, states, trusts)]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
        print(f"{len(summaries)} lock(s), {len(corrupt)} corrupt record(s)")
    return EXIT_FINDINGS if corrupt else EXIT_OK


def fleet_status(args, settings) -> int:
    counts = _devices(settings).fleet_counts(active_anchor(CertStore(settings.path("certs_dir"))))
    if args.json:
        print_json({"locks": sum(counts.values()), "states": counts})
    else:
        print(health.summary_line(counts))
    bad = (health.OVERDUE, health.TLS_FAILING, health.ANCHOR_STALE, health.CORRUPT)
    return EXIT_FINDINGS if any(counts[state] for state in bad) else EXIT_OK


def show_device(args, settings) -> int:
    devices = _devices(settings)
    try:
        record = devices.record(args.serial)
    except CorruptRecord as exc:
        return fail(args, str(exc), EXIT_FINDINGS)
    serial = record.get("serial") or args.serial.upper()
    record["listing_state"] = devices.listing_state(record)
    audits = devices.recent_audits(serial, args.audits)
    alerts = devices.recent_alerts(serial, args.audits)
    if args.json:
        print_json({"record": record, "recent_audits": audits, "recent_alerts": alerts})
        return EXIT_OK
    print(json.dumps(record, indent=2, ensure_ascii=False))
    for title, entries in (("audits", audits), ("alerts", alerts)):
        print(f"\nlatest {len(entries)} {title}:")
        for entry in entries:
            print("  " + json.dumps(entry, separators=(", ", ": ")))
    return EXIT_OK
