"""Device records in ``Engage_Data/`` (DESIGN.md "Device records").

INTERFACE STUB - the call-in issue fills in the behaviour; the console codes against these
names, so keep them (add, do not rename).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import EngageError


class DeviceError(EngageError):
    """A record is missing, corrupt, or a request about a lock is not acceptable."""


@dataclass
class DeviceSummary:
    """One row of the device list; ``corrupt`` records carry the parse error in ``error``."""

    serial: str
    model: str = ""
    name: str = ""
    last_seen: str = ""      # ISO-8601 UTC of the last call-in, "" if never
    address: str = ""        # last client address
    firmware: str = ""
    battery: str = ""
    audit_count: int = 0
    corrupt: bool = False
    error: str = ""


class Devices:
    def __init__(self, root: Path):
        self.root = Path(root)
        # Called with the serial after any record, audit or alert of that lock changed.
        self.on_change: list[Callable[[str], None]] = []

    def summaries(self) -> list[DeviceSummary]:
        """Every record, quickly (10,000 records), corrupt ones included and marked."""
        return []

    def record(self, serial: str) -> dict:
        """The whole record; DeviceError if missing or corrupt."""
        raise DeviceError(f"no record for lock {serial}")

    def recent_audits(self, serial: str, n: int = 20) -> list[dict]:
        return []

    def recent_alerts(self, serial: str, n: int = 20) -> list[dict]:
        return []
