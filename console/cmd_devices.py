"""`engage-console devices`: filled in by the call-in issue."""

from __future__ import annotations


def register(sub, parent) -> None:
    pass
