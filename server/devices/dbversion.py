"""Database versions (``nxtDbVerTS``): ``0``, or ``0x`` and hex digits in .NET ticks."""

from __future__ import annotations

import re
import time

from .errors import BadRequest

VERSION = re.compile(r"^(?:0|0[xX][0-9A-Fa-f]{1,16})$")
DOTNET_EPOCH_TICKS = 621355968000000000  # 0001-01-01 to 1970-01-01 in 100 ns ticks


def parse_version(text: str) -> int:
    """``nxtDbVerTS``: ``0`` or ``0x`` and up to 16 hex digits (examples show 15 and 16)."""
    if not isinstance(text, str) or not VERSION.match(text):
        raise BadRequest(f"database version {text!r} is not 0 or 0x followed by hex digits")
    return int(text, 16) if len(text) > 1 else 0


def format_version(value: int) -> str:
    return f"0x{value:016x}"


def new_version(previous: int = 0) -> int:
    """A database version in .NET ticks (what the documented examples look like), increasing."""
    return max(DOTNET_EPOCH_TICKS + time.time_ns() // 100, previous + 1)
