"""``engage-console certs ...``: certificate sets for scripts.

Exit codes: 0 ok; 1 the set has errors (a validation finding of severity error, or an
activation refused because of one); 2 usage or input error (unknown set, unreadable file,
wrong passphrase, no confirmation).
"""

from __future__ import annotations

import getpass
import hashlib
import os
import sys
from pathlib import Path

from cryptography import x509

from server import pki
from server.certcheck.rules import check_set
from server.certcheck.x509util import short_name
from server.certimport import PassphraseRequired, import_set
from server.certstore import CertSet
from server.errors import CertificateError, SiteKeyError

from . import batch, certs_activate, certs_delete, certs_sets as sets, migrate
from .certs_text import format_chain, format_report
from .common import EXIT_FINDINGS, EXIT_OK, fail, print_json

PASSPHRASE_ENV = ("ENGAGE_KEY_PASSPHRASE", "ENGAGE_P12_PASSWORD")
PASSPHRASE_HELP = ("Encrypted keys and PKCS#12 files: the passphrase is asked for on the "
                   "terminal; scripts set ENGAGE_KEY_PASSPHRASE and/or ENGAGE_P12_PASSWORD (each "
                   "is tried on every encrypted file)")
EXIT_HELP = "exit 0 ok, 1 the set has errors, 2 usage or input error"


def register(sub, parent) -> None:
    p = sub.add_parser("certs", help="certificate sets: list, check, import, activate, rollback, "
                                     "migrate, delete",
                       parents=[parent], description=__doc__.split("\n\n", 1)[1])
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    batch.register(verbs, parent)  # certs client-ca ..., certs batch ...

    def verb(name, func, help_, json_=True):
        v = verbs.add_parser(name, parents=[parent], help=help_, description=help_)
        if json_:
            v.add_argument("--json", action="store_true", help="JSON for scripts")
        v.set_defaults(func=func)
        return v

    verb("list", list_sets, "every set: verdict, chain bytes, expiry, anchor (exit 1 if a set "
                            "cannot be read)")
    verb("show", show_set, f"one set: its chain, details and validation report ({EXIT_HELP})") \
        .add_argument("name")
    verb("check", check_sets, "validation report of the named sets, default all; --json gives "
                              f"one report for one NAME, else a list ({EXIT_HELP})") \
        .add_argument("names", nargs="*", metavar="NAME")
    imp = verb("import", import_files,
               "normalise an integrator's files (partner_CA.der, partner_intermediate.der, "
               "partner_server.pem, partner_server.key, PEM bundles, DER, PKCS#12) into a new "
               "set; nothing is written on any error, a validation error included (the report "
               f"says which) unless --force. {PASSPHRASE_HELP}. ({EXIT_HELP})")
    imp.add_argument("name", help="name of the new set")
    imp.add_argument("files", nargs="+", metavar="FILE")
    imp.add_argument("--anchor", metavar="CA",
                     help="the CA the locks trust: a file name or stem (partner_intermediate), "
                          "common name or SHA-256 prefix (default: the top CA found)")
    imp.add_argument("--force", action="store_true",
                     help="write the set even if its report has errors (activating it still "
                          "needs --force)")
    act = verb("activate", certs_activate.activate,
               "serve this set: the host running in this folder swaps at once (control "
               "socket), else active.json is switched and history logged (a host using these "
               "files follows within a second). A set with errors is refused unless --force "
               f"({EXIT_HELP})")
    act.add_argument("name")
    certs_activate.force_flags(act)
    certs_activate.force_flags(verb("rollback", certs_activate.rollback,
                      "activate the set that was active before the current one; a set with "
                      f"errors is refused unless --force ({EXIT_HELP})"))
    ren = verb("renew", renew,
               "new server certificate (new key) under the set's intermediate, as a new set with "
               "the same anchor, so locks need nothing; reports expiry dates. Needs the CA keys "
               f"`certs init` made ({EXIT_HELP})")
    ren.add_argument("name")
    ren.add_argument("--as", dest="new_name", metavar="NEW",
                     help="name of the new set (default NAME-renewed-YYYYMMDD)")
    ren.add_argument("--host", action="append", dest="hosts", metavar="NAME",
                     help="host name or IP address (repeatable; default: host_names setting, "
                          "else the names of the current certificate)")
    ren.add_argument("--days", type=int, default=pki.SERVER_DAYS, metavar="N",
                     help=f"validity of the new server certificate (default {pki.SERVER_DAYS})")
    verb("hash", hash_file, "the hash a lock expects for a certificate file (HMAC-SHA1 of its DER "
                            "with the site key; PEM is converted to DER first)") \
        .add_argument("file")
    certs_delete.register(verb)
    migrate.register(verb, certs_activate.force_flags, certs_activate.switch)
    init = verb("init", init_set, "create a root CA, intermediate and server certificate as a "
                                  "set", json_=False)
    init.add_argument("name", help="name of the new set")
    init.add_argument("--host", action="append", dest="hosts", metavar="NAME",
                      help="host name or IP address locks use (repeatable; default: host_names "
                           "setting, else this machine's names)")


# --- shared -----------------------------------------------------------------------------------

def _forced_json(forced) -> dict | None:
    return {"time": forced.time, "by": forced.by, "label": forced.label} if forced else None


def _exit(*reports) -> int:
    return EXIT_FINDINGS if any(r.errors for r in reports) else EXIT_OK


# --- verbs ------------------------------------------------------------------------------------

def list_sets(args, settings) -> int:
    store = sets.store(settings)
    site_key = sets.site_key(settings, required=False)
    active = sets.active_set(store)
    forced = store.forced_activation()
    rows, broken = [], 0
    for name, item in store.scan().items():
        if isinstance(item, CertificateError):
            broken += 1
            rows.append({"name": name, "active": False, "demo": False, "verdict": "UNREADABLE",
                         "error": str(item)})
            continue
        report = check_set(item, site_key, settings, active=active)
        is_active = bool(active and active.name == name)
        rows.append({"name": name, "active": is_active,
                     "forced": _forced_json(forced) if is_active else None, "demo": item.demo,
                     "verdict": report.verdict, "errors": len(report.errors),
                     "chain_bytes": report.chain_bytes, "largest_key_bits": report.largest_key_bits,
                     "days_to_expiry": report.days_to_expiry, "hash": report.hash,
                     "anchor_sha256": report.anchor_sha256})
    if args.json:
        print_json(rows)
    else:
        table = [("", "SET", "VERDICT", "CHAIN", "KEY", "EXPIRES", "ANCHOR SHA-256")]
        for r in rows:
            if r["verdict"] == "UNREADABLE":
                table.append(("", r["name"], "UNREADABLE", r["error"], "", "", ""))
                continue
            table.append(("*" if r["active"] else "", r["name"] + (" (demo)" if r["demo"] else ""),
                          r["verdict"], f"{r['chain_bytes']:,} B", f"{r['largest_key_bits']}",
                          f"{r['days_to_expiry']} d", r["anchor_sha256"][:16]))
        widths = [max(len(t[i]) for t in table) for i in range(len(table[0]))]
        for t in table:
            print("  ".join(c.ljust(w) for c, w in zip(t, widths)).rstrip())
        print(f"{len(rows)} set(s) in {store.root}; * = active"
              + (f"; {broken} unreadable" if broken else ""))
        if forced and active:
            print(f"* {active.name}: {forced.label}")
        if isinstance(site_key, SiteKeyError):
            print(f"Hashes unavailable: {site_key}")
    return EXIT_FINDINGS if broken else EXIT_OK


def show_set(args, settings) -> int:
    store = sets.store(settings)
    cert_set = store.load(args.name)
    report = sets.report(store, sets.site_key(settings, required=False), settings, cert_set)
    active = store.active_name()
    if args.json:
        is_active = active == cert_set.name
        print_json({**report.to_dict(), "active": is_active,
                    "forced": _forced_json(store.forced_activation()) if is_active else None,
                    "path": cert_set.path, "meta": cert_set.meta,
                    "legacy_names": sorted(cert_set.legacy_names)})
    else:
        print(format_report(report, store))
        print(format_chain(report))
        print(f"Folder: {cert_set.path}")
        if cert_set.meta:
            print("Details: " + ", ".join(f"{k}={v}" for k, v in cert_set.meta.items()))
    return _exit(report)


def check_sets(args, settings) -> int:
    store = sets.store(settings)
    site_key = sets.site_key(settings, required=False)
    names = args.names or store.names()
    if not names:
        return fail(args, f"no certificate sets in {store.root}")
    reports = [sets.report(store, site_key, settings, store.load(n)) for n in names]
    if args.json:
        print_json(reports[0].to_dict() if len(args.names) == 1 else [r.to_dict() for r in reports])
    else:
        print("\n\n".join(format_report(r, store) for r in reports))
    return _exit(*reports)


def import_files(args, settings) -> int:
    store = sets.store(settings)
    site_key = sets.site_key(settings, required=False)
    passphrases = [os.environ[v] for v in PASSPHRASE_ENV if os.environ.get(v)]
    reports = []

    def accept(candidate: CertSet) -> None:
        reports.append(sets.report(store, site_key, settings, candidate))
        if reports[-1].errors and not args.force:
            raise _Refused()

    for attempt in range(4):
        try:
            cert_set = import_set(store, args.name, args.files, passphrase=passphrases,
                                  anchor=args.anchor, accept=accept)
            break
        except _Refused:
            return _refused_import(args, store, reports[-1])
        except PassphraseRequired as exc:
            if not sys.stdin.isatty() or attempt == 3:
                return fail(args, f"{exc}: set ENGAGE_KEY_PASSPHRASE or ENGAGE_P12_PASSWORD, "
                            "or run on a terminal to be asked; nothing was imported")
            if exc.tried:
                print(f"{exc}.", file=sys.stderr)
            answer = getpass.getpass(f"Passphrase for {exc.path.name}: ")
            if not answer:
                return fail(args, "no passphrase given; nothing was imported")
            passphrases.append(answer)
    report = reports[-1]
    if args.json:
        print_json({"imported": True, "set": cert_set.name, "path": cert_set.path,
                    "meta": cert_set.meta, "report": report.to_dict()})
    else:
        print(f"Imported set {cert_set.name} into {cert_set.path}: anchor "
              f"{short_name(cert_set.anchor)} (from {cert_set.meta.get('legacy_name')}), "
              f"{len(cert_set.chain)} certificate(s) in the chain, key from "
              f"{cert_set.meta.get('key_from')} (stored decrypted, mode 0600).")
        for subject in cert_set.meta.get("dropped", []):
            print(f"  not used: {subject} (not on the path from the server certificate to the "
                  "anchor)")
        print(format_report(report, store))
        if not report.errors:
            print(f"Activate it with: engage-console certs activate {cert_set.name}")
    return _exit(report)


class _Refused(Exception):
    """The imported set's report has errors and --force was not given: nothing is written."""


def _refused_import(args, store, report) -> int:
    if args.json:
        print_json({"imported": False, "set": args.name, "report": report.to_dict()})
    else:
        print(format_report(report, store))
        print(f"Not imported: set {args.name} has errors, so nothing was written. Fix the "
              "files, or add --force to keep the set anyway (activating it needs --force too).")
    return EXIT_FINDINGS


def renew(args, settings) -> int:
    store = sets.store(settings)
    site_key = sets.site_key(settings, required=False)
    hosts = args.hosts or settings.host_names or None
    new = pki.renew_set(store, settings.path("ca_dir"), args.name, new_name=args.new_name,
                        hosts=hosts, days=args.days)
    report = sets.report(store, site_key, settings, new)
    expiry = {c.role: c.not_after for c in report.chain}
    if args.json:
        print_json({"set": new.name, "renewed_from": args.name, "expires": expiry,
                    "hosts": new.meta.get("hosts"), "report": report.to_dict()})
    else:
        print(f"Renewed set {args.name} as {new.name} (same anchor: locks need nothing).")
        for role in ("server", "intermediate", "anchor"):
            if role in expiry:
                print(f"  {role:<12} valid until {expiry[role][:10]}")
        print(format_report(report, store))
        if not report.errors:
            print(f"Activate it with: engage-console certs activate {new.name}")
    return _exit(report)


def hash_file(args, settings) -> int:
    site_key = sets.site_key(settings)
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        return fail(args, f"cannot read {path}: {exc.strerror}")
    converted = b"-----BEGIN" in data
    try:
        cert = (x509.load_pem_x509_certificate(data) if converted
                else x509.load_der_x509_certificate(data))
    except ValueError:
        return fail(args, f"{path} is not a certificate (PEM or DER)")
    der = pki.cert_der(cert)
    out = {"file": str(path), "subject": cert.subject.rfc4514_string(),
           "hash": site_key.hash(der), "sha256": hashlib.sha256(der).hexdigest(),
           "converted_from_pem": converted}
    if args.json:
        print_json(out)
    else:
        print(out["hash"])
        print(f"  of the DER of {out['subject']} ({len(der):,} bytes"
              + (", converted from PEM" if converted else "") + f"), SHA-256 {out['sha256']}")
    return EXIT_OK


def init_set(args, settings) -> int:
    store = sets.store(settings)
    hosts = args.hosts or settings.host_names or pki.default_hosts(settings.bind)
    pki.init_set(store, settings.path("ca_dir"), args.name, hosts)
    print(f"Created set {args.name} in {store.set_path(args.name)} for {', '.join(hosts)}")
    print(f"CA keys are in {settings.path('ca_dir') / args.name} (keep them offline).")
    print(f"Activate it with: engage-console certs activate {args.name}")
    return EXIT_OK
