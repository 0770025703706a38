"""The Textual console: filled in by the console issue."""

from __future__ import annotations


def run_console(settings, listeners, start: bool = True) -> int:
    from .headless import run_headless

    return run_headless(settings, listeners)
