"""Lock serials: upper-cased and safe as a file name, found in a ``PUT Config`` body (the
site's identity format is :mod:`server.devices.identity`)."""

from __future__ import annotations

import re

from .errors import BadRequest

# Safe as a file name and plausible as a serial; checked after upper-casing.
_SAFE_SERIAL = re.compile(r"^[A-Z0-9][A-Z0-9_:-]{0,63}$")  # ':' for a MAC spelling
# Where a PUT Config body names the lock, in order (PROTOCOL.md "Lock identity fields").
CONFIG_SERIAL_FIELDS = (("lckPrmtrs", "lckSn"), ("lckPrmtrs", "mnSn"), ("lckSn",), ("mnSn",))


def normalise_serial(value, what: str = "serial") -> str:
    """Upper-cased serial, safe as a file name, or BadRequest saying why not."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"missing lock {what}")
    serial = value.strip().upper()
    if not _SAFE_SERIAL.match(serial):
        raise BadRequest(f"lock {what} {value!r} is not 1-64 letters, digits, '-', '_' or ':'")
    return serial


def serial_from_config(body: dict) -> str:
    """The first serial field present, a blank one counting as absent."""
    for path in CONFIG_SERIAL_FIELDS:
        value = body
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None and not (isinstance(value, str) and not value.strip()):
            return normalise_serial(value, ".".join(path))
    raise BadRequest("missing lock serial: the Config body has no lckPrmtrs.lckSn or "
                     "lckPrmtrs.mnSn")
