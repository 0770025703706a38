"""Shared pieces of the command line: settings flags, loading the host, exit codes."""

from __future__ import annotations

import argparse
import json
import sys

from server.config import Settings, load_settings

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_NO_HOST = 0, 1, 2, 3

# Flags that map onto settings (the last layer: defaults < file < environment < flags).
SETTING_FLAGS = (
    ("--bind", "bind", str, "ADDR", "address both listeners bind to (default 0.0.0.0)"),
    ("--http-port", "http_port", int, "N", "plain HTTP port (default 80)"),
    ("--tls-port", "tls_port", int, "N", "TLS port (default 443)"),
    ("--site-key-file", "site_key_file", str, "FILE", "site key file (default site.key)"),
    ("--certs-dir", "certs_dir", str, "DIR", "certificate sets (default certs/)"),
    ("--data-dir", "data_dir", str, "DIR", "device records (default Engage_Data/)"),
    ("--logs-dir", "logs_dir", str, "DIR", "request log folder (default logs/)"),
)


def settings_parent() -> argparse.ArgumentParser:
    """Settings flags accepted before or after any sub-command."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("settings")
    group.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                       help="settings file (default engage-console.toml if present)")
    for flag, dest, kind, metavar, help_ in SETTING_FLAGS:
        group.add_argument(flag, dest=dest, type=kind, metavar=metavar, help=help_,
                           default=argparse.SUPPRESS)
    return parent


def settings_from_args(args: argparse.Namespace) -> Settings:
    flags = {dest: getattr(args, dest) for _, dest, *_ in SETTING_FLAGS if hasattr(args, dest)}
    return load_settings(getattr(args, "config", None), flags=flags)


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def fail(args: argparse.Namespace, message: str, code: int = EXIT_USAGE, **details) -> int:
    """Report an error a person can act on and return its exit code: under ``--json`` as
    ``{"error": ..., **details}`` on stdout (a script reads one stream, one format), else a
    line on stderr."""
    if getattr(args, "json", False):
        print_json({"error": message, **details})
    else:
        print(f"engage-console: error: {message}", file=sys.stderr)
    return code
