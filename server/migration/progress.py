"""Who has moved in a migration, from the records and the downloads kept in the certs folder
(so ``certs migrate --status`` works with the host running or stopped):

- ``moved``: the lock's last handshake proved the new anchor (it called in on the new chain);
- ``fetched``: the new anchor was downloaded from the lock's last address, and the lock has not
  called in on the new chain since;
- ``not_fetched``: the others (corrupt records among them: nothing can be told of them).
Downloads of the new anchor from an address no known lock called in from are listed apart
(a lock being commissioned, or one that moved address).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..devices.summary import DeviceSummary
from ..devices.store import Devices
from .state import MigrationState, fetches


@dataclass
class Progress:
    state: MigrationState
    moved: list[DeviceSummary] = field(default_factory=list)
    fetched: list[DeviceSummary] = field(default_factory=list)
    not_fetched: list[DeviceSummary] = field(default_factory=list)
    unknown_addresses: list[str] = field(default_factory=list)

    @property
    def locks(self) -> int:
        return len(self.moved) + len(self.fetched) + len(self.not_fetched)

    @property
    def fetched_new(self) -> list[str]:
        """Serials that hold the new anchor by now, as far as the host can tell."""
        return sorted(s.serial for s in self.moved + self.fetched)

    def text(self) -> str:
        s = self.state
        lines = [f"Migration from {s.from_set} ({s.from_anchor[:16]}…) to {s.to_set} "
                 f"({s.to_anchor[:16]}…), started {s.started_at} by {s.by}:",
                 f"  {len(self.moved)} of {self.locks} locks moved (called in on the new chain), "
                 f"{len(self.fetched)} fetched the new anchor but not yet called in, "
                 f"{len(self.not_fetched)} not fetched"]
        for title, group in (("fetched, not yet called in", self.fetched),
                             ("not fetched", self.not_fetched)):
            if group:
                lines.append(f"  {title}:")
                lines += [f"    {x.serial}  last seen {x.last_seen or 'never'}" for x in group]
        if self.unknown_addresses:
            lines.append("  new anchor fetched from addresses no known lock called in from: "
                         + ", ".join(self.unknown_addresses))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        def rows(group):
            return [{"serial": x.serial, "last_seen": x.last_seen, "address": x.address}
                    for x in group]
        return {"from_set": self.state.from_set, "from_anchor": self.state.from_anchor,
                "to_set": self.state.to_set, "to_anchor": self.state.to_anchor,
                "started_at": self.state.started_at, "by": self.state.by, "locks": self.locks,
                "moved_count": len(self.moved), "fetched_count": len(self.fetched),
                "not_fetched_count": len(self.not_fetched), "moved": rows(self.moved),
                "fetched": rows(self.fetched), "not_fetched": rows(self.not_fetched),
                "unknown_addresses": self.unknown_addresses}


def progress(devices: Devices, certs_root, state: MigrationState) -> Progress:
    new = state.to_anchor
    fetched_new = {address for address, (sha, _) in fetches(certs_root).items() if sha == new}
    out = Progress(state)
    for summary in devices.summaries():
        if not summary.corrupt and summary.anchor_trusted == new:
            out.moved.append(summary)
        elif not summary.corrupt and summary.address in fetched_new:
            out.fetched.append(summary)
        else:
            out.not_fetched.append(summary)
    known = {s.address for s in out.moved + out.fetched + out.not_fetched}
    out.unknown_addresses = sorted(fetched_new - known)
    return out
