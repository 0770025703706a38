"""``engage-console``: the console by default, ``--headless`` for a service manager, and
sub-commands for scripts (``status``, ``sitekey``, ``certs``, ``devices``, ``simulate``)."""

from __future__ import annotations

import argparse
import sys

from server.errors import EngageError

from .commands import certs, devices, simulate, sitekey, status
from .commands.common import fail, settings_from_args, settings_parent

COMMANDS = (status, sitekey, certs, devices, simulate)


def build_parser() -> argparse.ArgumentParser:
    parent = settings_parent()
    parser = argparse.ArgumentParser(
        prog="engage-console", parents=[parent],
        description="Operator console and host server for ENGAGE locks (partner-managed Wi-Fi).")
    parser.add_argument("--headless", action="store_true",
                        help="run the listeners with no UI (for a service manager)")
    parser.add_argument("--no-start", action="store_true",
                        help="open the console with both listeners stopped")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--http-only", action="store_true", help="run only the plain HTTP listener")
    only.add_argument("--tls-only", action="store_true", help="run only the TLS listener")
    parser.add_argument("--log-format", choices=("text", "json"), default="text",
                        help="headless request lines: text or JSON lines")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub, parent)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args)
        if args.command:
            return args.func(args, settings)
        listeners = ("http",) if args.http_only else ("tls",) if args.tls_only else ("http", "tls")
        if args.headless:
            from .headless import run_headless

            return run_headless(settings, listeners, args.log_format)
        from .app import run_console  # textual is imported only for the console itself

        return run_console(settings, listeners, start=not args.no_start)
    except EngageError as exc:
        return fail(args, str(exc))


if __name__ == "__main__":
    sys.exit(main())
