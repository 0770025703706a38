"""``engage-console sitekey generate``: a new site key for a new site."""

from __future__ import annotations

import socket
from pathlib import Path

from server.errors import SiteKeyError
from server.sitekey import SiteKey, read_key_file, write_key_file

from .common import EXIT_OK


def register(sub, parent) -> None:
    p = sub.add_parser("sitekey", help="create a site key", parents=[parent])
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    gen = verbs.add_parser("generate", parents=[parent],
                           help="create a new site key file (mode 0600) and show it once")
    gen.add_argument("--force", action="store_true", help="replace an existing key file")
    gen.set_defaults(func=generate)


def generate(args, settings) -> int:
    """A demo key (the first run's) is replaced without ``--force``: it was never registered."""
    path = settings.path("site_key_file")
    demo = path.exists() and _is_demo(path, settings)
    if path.exists() and not (args.force or demo):
        raise SiteKeyError(f"{path} already exists: a site key never changes once registered "
                           "with Allegion; use --force only if it was never registered")
    key = SiteKey.generate()
    write_key_file(Path(path), key)
    if demo:
        print(f"The DEMO site key in {path} was replaced.")
    print(f"Site key written to {path} (mode 0600).")
    print("Register this value with Allegion for the site. It is shown only this once:")
    print(f"  {key.base64()}")
    if running := _listening(settings):
        print(f"A host seems to be running here (something answers on {', '.join(running)}): "
              "it will pick the new key up within a second (a host whose key comes from "
              "ENGAGE_SITE_KEY keeps its key until restarted).")
    return EXIT_OK


def _listening(settings) -> list[str]:
    """The configured ports on which something accepts a connection: a cheap sign that a host
    runs in this folder."""
    address = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(settings.bind,
                                                                          settings.bind)
    found = []
    for port in (settings.http_port, settings.tls_port):
        try:
            with socket.create_connection((address, port), timeout=0.2):
                found.append(f"{address}:{port}")
        except OSError:
            pass
    return found


def _is_demo(path: Path, settings) -> bool:
    try:
        return read_key_file(path, settings.hmac_key_form).demo
    except SiteKeyError:
        return False  # unreadable: maybe a real key in a bad format, so never replaced silently
