"""Listing states, as West Connectivity's provisioning has them: a listed lock must provision
(make its first good call-in) within ``activation_hours`` of being listed, or its listing
expires until ``devices relist``; ``provision_networks`` limits where a first registration
may come from. One function says a record's state; the console, the CLI and the call-ins use
it."""

from __future__ import annotations

import datetime as dt
import ipaddress

from ..errors import ConfigError
from .errors import NotListed

LISTED, PROVISIONED, EXPIRED, UNLISTED = "listed", "provisioned", "expired", "unlisted"


def listing_state(record: dict, now: dt.datetime, activation_hours: float) -> str:
    """``provisioned`` once the lock made a good call-in, else ``listed`` within the window
    after ``listed_at`` (a listing from before listing states has no window), ``expired``
    after it, or ``unlisted``."""
    if record.get("provisioned_at"):
        return PROVISIONED
    if not record.get("listed"):
        return UNLISTED
    listed_at = record.get("listed_at")
    if listed_at and now > dt.datetime.fromisoformat(listed_at) + dt.timedelta(
            hours=activation_hours):
        return EXPIRED
    return LISTED


def networks(settings) -> list:
    """The ``provision_networks`` as networks; ConfigError naming a bad one."""
    out = []
    for text in getattr(settings, "provision_networks", None) or []:
        try:
            out.append(ipaddress.ip_network(text, strict=False))
        except ValueError as exc:
            raise ConfigError(f"provision_networks: {text!r} is not a network ({exc}); use "
                              "CIDR such as 10.44.0.0/16") from None
    return out


def admit(devices, serial: str, record: dict | None, address: str, now: dt.datetime) -> None:
    """NotListed saying why this lock may not call in now: with the allowlist on, it is not
    listed (or was, but its listing expired); a first registration from outside the
    ``provision_networks``."""
    settings = devices.settings
    if devices.allowlist:
        state = listing_state(record, now, settings.activation_hours) if record else UNLISTED
        if state == EXPIRED or not (record and record.get("listed")):
            why = (f"its listing expired: it did not provision within "
                   f"{settings.activation_hours:g} hours (devices relist {serial})"
                   if state == EXPIRED else "it is not on the allowlist")
            raise NotListed(f"lock {serial} is refused: {why}")
    allowed = networks(settings) if settings is not None else []
    if allowed and not (record and record.get("provisioned_at")):
        try:
            ip = ipaddress.ip_address(address.split("%")[0])
            ip = getattr(ip, "ipv4_mapped", None) or ip  # ::ffff:10.0.0.7 is 10.0.0.7
            inside = any(ip in net for net in allowed)
        except ValueError:
            inside = False
        if not inside:
            raise NotListed(f"lock {serial} is refused: its first registration comes from "
                            f"{address or 'an unknown address'}, outside provision_networks")


def provisioned(record: dict, now: dt.datetime) -> bool:
    """Mark a good call-in; whether it was the lock's first (its provision event)."""
    if record.get("provisioned_at"):
        return False
    record["provisioned_at"] = now.isoformat(timespec="seconds")
    return True


def relist(record: dict, now: dt.datetime) -> None:
    """List a lock with a new activation window from ``now``."""
    record["listed"] = True
    record["listed_at"] = now.isoformat(timespec="seconds")
