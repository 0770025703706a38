"""One lock's summary: the facts of its record that the device list, lock health and the fleet
view read, so that a listing never parses 10,000 records again. A named tuple: a new process
makes 100,000 of them from the summaries file before a preflight can answer, and a tuple is
made several times faster than a dataclass instance (and is immutable: a change is a new one)."""

from __future__ import annotations

from typing import NamedTuple

from .records import as_dict, as_text


class DeviceSummary(NamedTuple):
    """One row of the device list; ``corrupt`` records carry the parse error in ``error``."""

    serial: str
    model: str = ""
    name: str = ""
    last_seen: str = ""      # ISO-8601 UTC of the last call-in, "" if never
    address: str = ""        # last client address
    firmware: str = ""
    battery: str = ""
    corrupt: bool = False
    error: str = ""
    # what lock health (server.devices.health) and the fleet view need; "" when not recorded
    next_callin: str = ""
    anchor_trusted: str = ""       # SHA-256 proven by a TLS handshake (server.devices.trust)
    anchor_trusted_at: str = ""
    anchor_fetched: str = ""       # SHA-256 inferred from the address, "ambiguous" (NAT)
    trust_recorded: bool = False   # False: a record from before trust was recorded
    tls_failures: int = 0          # handshake failures since its last good call-in
    tls_failure: str = ""          # the reason of the latest
    listed: bool = False           # what server.devices.listing.listing_state reads
    listed_at: str = ""
    provisioned_at: str = ""


def summary_of(serial: str, record: dict) -> DeviceSummary:
    lock = as_dict(as_dict(record.get("last_config")).get("lckPrmtrs"))
    trusted, fetched = as_dict(record.get("anchor_trusted")), as_dict(record.get("anchor_fetched"))
    failures = as_dict(record.get("tls_failures"))
    last_failure = (failures.get("last") or [{}])[-1] if isinstance(failures.get("last"), list) \
        else {}
    return DeviceSummary(
        serial=serial, model=as_text(record.get("model")),
        name=as_text(record.get("name") or lock.get("nm")),
        last_seen=as_text(record.get("last_seen")), address=as_text(record.get("address")),
        firmware=as_text(as_dict(record.get("firmware")).get("main")),
        battery=as_text(as_dict(record.get("battery")).get("main")),
        next_callin=as_text(record.get("next_callin")),
        anchor_trusted=as_text(trusted.get("sha256")), anchor_trusted_at=as_text(trusted.get("at")),
        anchor_fetched="ambiguous" if fetched.get("inferred") == "ambiguous"
        else as_text(fetched.get("sha256")),
        trust_recorded="anchor_trusted" in record or "anchor_fetched" in record,
        tls_failures=failures["count"] if type(failures.get("count")) is int else 0,
        tls_failure=as_text(as_dict(last_failure).get("reason")),
        listed=record.get("listed") is True, listed_at=as_text(record.get("listed_at")),
        provisioned_at=as_text(record.get("provisioned_at")))
