"""``engage-console certs client-ca init`` and ``certs batch create | list | show |
download``: lock client certificates in Sectigo-style batches (server/batches.py).

Registered under ``certs`` (beside the sets): a batch is certificates, kept in the certs
folder and signed by a CA kept in ``ca/`` like the sets' CAs.
"""

from __future__ import annotations

from pathlib import Path

from server import batches
from server.atomic import write_atomic
from server.devices.errors import DeviceError
from server.devices.store import Devices
from server.errors import CertificateError

from .common import EXIT_OK, fail, print_json


def register(verbs, parent) -> None:
    ca = verbs.add_parser("client-ca", parents=[parent], help="the site's lock client CA")
    ca_verbs = ca.add_subparsers(dest="ca_verb", required=True, metavar="VERB")
    init = ca_verbs.add_parser("init", parents=[parent],
                               help="create it (key in ca/client/, mode 0600); point "
                                    "client_ca_file at the ca.pem it prints")
    init.add_argument("--json", action="store_true", help="JSON for scripts")
    init.set_defaults(func=client_ca_init)

    p = verbs.add_parser("batch", parents=[parent],
                         help="lock client certificates in batches (Sectigo IoT Manager style)")
    bverbs = p.add_subparsers(dest="batch_verb", required=True, metavar="VERB")
    create = bverbs.add_parser("create", parents=[parent],
                               help="from --csr-file (comma-separated PEM CSRs, Unix line "
                                    "endings) or --generator numeric (keys made here)")
    source = create.add_mutually_exclusive_group(required=True)
    source.add_argument("--csr-file", metavar="FILE")
    source.add_argument("--generator", choices=["numeric"])
    create.add_argument("--start-value", metavar="N", help="first common name (generator)")
    create.add_argument("--increment", metavar="K", default="1", help="step (default 1)")
    create.add_argument("--size", type=int, metavar="S", help="how many (generator)")
    create.add_argument("--profile", choices=batches.PROFILES, default="p256",
                        help="keys of a generated batch (default p256)")
    create.add_argument("--list-devices", action="store_true",
                        help="add the identities to the allowlist, pinned to their certificates")
    create.add_argument("--json", action="store_true", help="JSON for scripts")
    create.set_defaults(func=batch_create)
    lst = bverbs.add_parser("list", parents=[parent], help="every batch")
    lst.add_argument("--json", action="store_true", help="JSON for scripts")
    lst.set_defaults(func=batch_list)
    show = bverbs.add_parser("show", parents=[parent], help="one batch and its identities")
    show.add_argument("id", type=int)
    show.add_argument("--json", action="store_true", help="JSON for scripts")
    show.set_defaults(func=batch_show)
    down = bverbs.add_parser("download", parents=[parent],
                             help="write the batch as a zip (mode 0600)")
    down.add_argument("id", type=int)
    down.add_argument("--out", metavar="FILE", help="default batch-ID.zip")
    down.add_argument("--json", action="store_true", help="JSON for scripts")
    down.set_defaults(func=batch_download)


def _fail(args, exc: Exception) -> int:
    return fail(args, str(exc), problems=getattr(exc, "problems", []))


def client_ca_init(args, settings) -> int:
    try:
        cert = batches.init_client_ca(settings.path("ca_dir"))
    except CertificateError as exc:
        return _fail(args, exc)
    path = batches.client_ca_file(settings.path("ca_dir"))
    if args.json:
        print_json({"client_ca_file": str(path), "subject": cert.subject.rfc4514_string()})
    else:
        print(f"Client CA created: {path} (set client_ca_file to it)")
    return EXIT_OK


def batch_create(args, settings) -> int:
    try:
        if args.csr_file:
            try:
                text = Path(args.csr_file).read_bytes().decode("ascii")  # keep any CR
            except (OSError, UnicodeDecodeError) as exc:
                raise batches.BatchError(f"cannot read {args.csr_file}: {exc}") from None
            record = batches.create_batch(settings, csrs=batches.parse_csr_file(text, settings))
        else:
            if args.start_value is None or args.size is None:
                raise batches.BatchError("--generator numeric needs --start-value and --size")
            names = batches.numeric_identities(args.start_value, args.increment, args.size,
                                               settings)
            record = batches.create_batch(
                settings, names=names, profile=args.profile,
                generator={"type": "NUMERIC", "startValue": args.start_value,
                           "increment": args.increment})
        if args.list_devices:
            devices = Devices(settings.path("data_dir"), settings)
            devices.import_rows(devices.parse_import(batches.identities_csv(record),
                                                     f"batch {record['id']}"))
            batches.mark_listed(settings, record)
    except (CertificateError, DeviceError) as exc:
        return _fail(args, exc)
    if args.json:
        print_json(batches.summary(record))
    else:
        print(f"Batch {record['id']}: {record['size']} certificate(s), {record['status']}"
              + (", listed" if record["listed"] else ""))
    return EXIT_OK


def batch_list(args, settings) -> int:
    found = batches.list_batches(settings)
    if args.json:
        print_json(found)
        return EXIT_OK
    for b in found:
        print(f"{b['id']:>5}  {b['created']}  {b['profile']:<8} {b['size']:>6}  {b['status']}")
    print(f"{len(found)} batch(es)")
    return EXIT_OK


def batch_show(args, settings) -> int:
    try:
        record = batches.load_batch(settings, args.id)
    except CertificateError as exc:
        return _fail(args, exc)
    shown = {**batches.summary(record), "identities": [
        {"cn": i["cn"], "fingerprint": i["fingerprint"], "key": "key" in i}
        for i in record["items"]]}
    if args.json:
        print_json(shown)
        return EXIT_OK
    for key, value in batches.summary(record).items():
        print(f"{key}: {value}")
    for item in shown["identities"]:
        print(f"  {item['cn']}  sha256 {item['fingerprint']}")
    return EXIT_OK


def batch_download(args, settings) -> int:
    out = args.out or f"batch-{args.id}.zip"
    try:
        data = batches.zip_bytes(settings, batches.load_batch(settings, args.id))
        write_atomic(out, data, mode=0o600)
    except (CertificateError, OSError) as exc:
        return _fail(args, exc)
    if args.json:
        print_json({"id": args.id, "zip": out, "bytes": len(data)})
    else:
        print(f"Batch {args.id} written to {out} (mode 0600)")
    return EXIT_OK
