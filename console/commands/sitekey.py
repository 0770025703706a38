"""``engage-console sitekey generate``: a new site key for a new site."""

from __future__ import annotations

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
    return EXIT_OK


def _is_demo(path: Path, settings) -> bool:
    try:
        return read_key_file(path, settings.hmac_key_form).demo
    except SiteKeyError:
        return False  # unreadable: maybe a real key in a bad format, so never replaced silently
