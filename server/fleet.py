"""The activation preflight (issue 13): before a set becomes active, which known locks it cuts
off. It reads the records from disk (``Devices.summaries``), so it works with the host stopped.

A lock holds one anchor, the one it downloaded at commissioning or at a start from the ENGAGE
app (PROTOCOL.md "Certificate delivery"). A candidate under the active anchor cuts nobody off.
Under another anchor, a lock keeps working only if its last handshake proved that anchor or it
was seen downloading it (inferred from its address, never when shared by several locks).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .certstore import CertSet, CertStore
from .devices.health import judge
from .devices.summary import DeviceSummary
from .devices.store import Devices
from .errors import CertificateError

CUT_OFF_EFFECT = ("their TLS call-ins will fail with unknown CA until each is re-commissioned "
                  "from the ENGAGE app")


def keeps_working(summary: DeviceSummary, anchor_sha256: str) -> bool:
    """Whether a lock is known to hold anchor ``anchor_sha256``."""
    return anchor_sha256 in (summary.anchor_trusted, summary.anchor_fetched)


@dataclass
class Preflight:
    """What activating ``candidate`` does to the known locks."""

    candidate: str
    anchor_sha256: str
    active: str | None
    same_anchor: bool
    locks: int                      # known locks, corrupt records included
    cut_off: list[DeviceSummary] = field(default_factory=list)
    states: dict[str, str] = field(default_factory=dict)  # serial -> health, of those cut off

    @property
    def blocking(self) -> bool:
        """Whether activating needs a deliberate confirmation (``--cut-off-ok``)."""
        return bool(self.cut_off)

    def text(self) -> str:
        short = self.anchor_sha256[:16]
        if not self.locks:
            return (f"No known locks in the device records: nothing recorded to check against "
                    f"anchor {short}… (locks that call in later are not covered).")
        if self.same_anchor:
            return (f"Same anchor as the active set ({short}…): all {self.locks} locks keep "
                    "trusting this anchor.")
        if not self.cut_off:
            return (f"New anchor {short}…: all {self.locks} known locks hold it already "
                    "(proved by a handshake or seen downloading it).")
        lines = [f"New anchor {short}…: {len(self.cut_off)} of {self.locks} known locks do not "
                 f"trust and have not fetched it; {CUT_OFF_EFFECT}:"]
        for s in self.cut_off:
            why = ("record corrupt: cannot tell" if s.corrupt
                   else "trust unknown (no handshake recorded)" if not s.anchor_trusted
                   else f"trusts {s.anchor_trusted[:16]}…")
            lines.append(f"  {s.serial}  last seen {s.last_seen or 'never'}  "
                         f"{self.states.get(s.serial, '')}  {why}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"candidate": self.candidate, "anchor_sha256": self.anchor_sha256,
                "active": self.active, "same_anchor": self.same_anchor, "locks": self.locks,
                "cut_off_count": len(self.cut_off),
                "cut_off": [{"serial": s.serial, "last_seen": s.last_seen,
                             "anchor_trusted": s.anchor_trusted,
                             "anchor_fetched": s.anchor_fetched,
                             "state": self.states.get(s.serial, "")}
                            for s in self.cut_off],
                "effect": CUT_OFF_EFFECT if self.cut_off else "", "message": self.text()}


def active_anchor(store: CertStore) -> str | None:
    """SHA-256 of the anchor of the set active.json names, None if none (or it cannot load)."""
    try:
        name = store.active_name()
        return store.load(name).anchor_sha256 if name else None
    except CertificateError:
        return None


def preflight(devices: Devices, candidate: CertSet, active: CertSet | None) -> Preflight:
    """The report for activating ``candidate`` while ``active`` (or nothing) is active."""
    summaries = devices.summaries()
    sha = candidate.anchor_sha256
    same = active is not None and active.anchor_sha256 == sha
    cut_off = [] if same else [s for s in summaries if s.corrupt or not keeps_working(s, sha)]
    state = judge(devices.clock(), devices.settings, active.anchor_sha256 if active else None)
    states = dict(zip((s.serial for s in cut_off), map(state, cut_off)))
    return Preflight(candidate.name, sha, active.name if active else None, same,
                     len(summaries), cut_off, states)
