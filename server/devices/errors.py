"""What can be wrong with a device record or with a request about a lock."""

from __future__ import annotations

from ..errors import EngageError


class DeviceError(EngageError):
    """A record is missing, corrupt, or a request about a lock is not acceptable."""


class BadRequest(DeviceError):
    """What a lock (or a file) sent has the wrong shape: nothing was written."""


class UnknownLock(DeviceError):
    """No record for this serial (or, with the allowlist on, the serial is not listed)."""


class NotListed(UnknownLock):
    """The allowlist is on and this serial is not on it."""


class CorruptRecord(DeviceError):
    """The record file does not parse; it is left untouched for a person to repair."""


class IdentityMismatch(DeviceError):
    """The client certificate does not speak for the lock it names: nothing was written."""
