"""Device records in ``Engage_Data/``: filled in by the call-in issue."""

from __future__ import annotations

from pathlib import Path


class Devices:
    def __init__(self, root: Path):
        self.root = Path(root)
