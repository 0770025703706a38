"""``engage-console``: the console by default, ``--headless`` for a service manager, and
sub-commands for scripts (``status``, ``sitekey``, ``certs``, ``devices``, ``simulate``)."""

from __future__ import annotations

import argparse
import os
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from server.control.client import NoHost
from server.errors import EngageError

from .commands import certs, devices, simulate, sitekey, status
from .commands.common import EXIT_NO_HOST, fail, settings_from_args, settings_parent

COMMANDS = (status, sitekey, certs, devices, simulate)


def build_parser() -> argparse.ArgumentParser:
    parent = settings_parent()
    parser = argparse.ArgumentParser(
        prog="engage-console", parents=[parent],
        description="Operator console and host server for ENGAGE locks (partner-managed Wi-Fi).")
    parser.add_argument("--version", action="version", version=f"engage-console {_version()}")
    parser.add_argument("--headless", action="store_true",
                        help="run the listeners with no UI (for a service manager)")
    parser.add_argument("--no-start", action="store_true",
                        help="open the console with both listeners stopped")
    attach = parser.add_mutually_exclusive_group()
    attach.add_argument("--attach", metavar="SOCKET",
                        help="attach to the host answering on this control socket")
    attach.add_argument("--no-attach", action="store_true",
                        help="run an embedded host even if one runs in this folder (which then "
                             "refuses: one host per folder)")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--http-only", action="store_true", help="run only the plain HTTP listener")
    only.add_argument("--tls-only", action="store_true", help="run only the TLS listener")
    parser.add_argument("--log-format", choices=("text", "json"), default="text",
                        help="headless request lines and notices: text or JSON lines")
    parser.add_argument("--demo", action="store_true",
                        help="headless: create a demo site key and certificate set when none "
                             "exist (the console does so by default)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub, parent)
    return parser


def _version() -> str:
    try:
        return version("engage-console")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed)"


def main(argv: list[str] | None = None) -> int:
    try:
        code = _run(argv)
        sys.stdout.flush()  # a reader that has gone shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        # `engage-console ... | head`: the reader has what it wanted. Stop quietly, as a
        # program stopped by SIGPIPE does; the rest of the output goes nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _run(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args)
        if args.command:
            return args.func(args, settings)
        listeners = ("http",) if args.http_only else ("tls",) if args.tls_only else ("http", "tls")
        if args.headless:
            from .headless import run_headless

            return run_headless(settings, listeners, args.log_format, demo=args.demo)
        if not args.no_attach:  # by default, attach to the host running in this folder
            from server.control.client import socket_path

            from .attached import run_attached  # textual is imported only for the console

            code = run_attached(settings, Path(args.attach) if args.attach
                                else socket_path(settings), required=bool(args.attach))
            if code is not None:
                return code
        from .app import run_console

        return run_console(settings, listeners, start=not args.no_start)
    except NoHost as exc:
        return fail(args, str(exc), EXIT_NO_HOST)
    except EngageError as exc:
        return fail(args, str(exc))


if __name__ == "__main__":
    sys.exit(main())
