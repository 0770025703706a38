"""``engage-console certs ...``: certificate sets for scripts."""

from __future__ import annotations

from server import pki
from server.certstore import CertStore

from .cli import EXIT_OK


def register(sub, parent) -> None:
    p = sub.add_parser("certs", help="certificate sets", parents=[parent])
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    init = verbs.add_parser("init", parents=[parent],
                            help="create a root CA, intermediate and server certificate as a set")
    init.add_argument("name", help="name of the new set")
    init.add_argument("--host", action="append", dest="hosts", metavar="NAME",
                      help="host name or IP address locks use (repeatable; default: host_names "
                           "setting, else this machine's names)")
    init.set_defaults(func=init_set)


def init_set(args, settings) -> int:
    store = CertStore(settings.path("certs_dir"))
    hosts = args.hosts or settings.host_names or pki.default_hosts(settings.bind)
    pki.init_set(store, settings.path("ca_dir"), args.name, hosts)
    print(f"Created set {args.name} in {store.set_path(args.name)} for {', '.join(hosts)}")
    print(f"CA keys are in {settings.path('ca_dir') / args.name} (keep them offline).")
    print(f"Activate it with: engage-console certs activate {args.name}")
    return EXIT_OK
