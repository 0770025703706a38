"""A migration's state on disk, in the certs folder, so it survives a restart of the host and
any process (the host, ``certs migrate``, the console) sees the same one.

- ``certs/migration.json`` (replaced atomically): from which set and anchor to which, since
  when, by whom. Present only while a migration is under way.
- ``certs/migration-fetches.jsonl``: every anchor download from an address whose anchor changed
  during the migration ({time, address, sha256}), appended by the host: how a lock that fetched
  the new anchor is still known after a restart, and what ``--status`` and ``--abort`` read.
- ``certs/history.jsonl`` gets ``migration-start`` and ``migration-abort`` entries; they carry
  no ``set`` key, so a rollback's replay of activations skips them. The finish is an activation
  (``migration-finish``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from ..atomic import append_line, file_stamp, write_atomic
from ..errors import CertificateError

STATE, FETCHES = "migration.json", "migration-fetches.jsonl"
START, ABORT, FINISH = "migration-start", "migration-abort", "migration-finish"


@dataclass(frozen=True)
class MigrationState:
    from_set: str
    from_anchor: str
    to_set: str
    to_anchor: str
    started_at: str
    by: str

    def describe(self) -> str:
        return (f"a migration from set {self.from_set} to set {self.to_set} is under way "
                f"(started {self.started_at} by {self.by})")


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def read_state(root: Path) -> MigrationState | None:
    """The migration under way in certs folder ``root``, None when there is none."""
    path = Path(root) / STATE
    try:
        return MigrationState(**json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        raise CertificateError(f"{path} is unreadable ({exc}): abort the migration "
                               "(certs migrate --abort) to remove it") from None


def state_stamp(root: Path) -> tuple | None:
    return file_stamp(Path(root) / STATE)


def write_state(root: Path, state: MigrationState) -> None:
    (Path(root) / FETCHES).unlink(missing_ok=True)  # downloads of an earlier migration
    write_atomic(Path(root) / STATE, json.dumps(asdict(state), indent=2) + "\n")


def clear_state(root: Path) -> None:
    """End the migration: the state file goes first (the commit point), then the downloads."""
    for name in (STATE, FETCHES):
        try:
            os.unlink(Path(root) / name)
        except FileNotFoundError:
            pass


def note_fetch(root: Path, address: str, sha256: str, at: str) -> None:
    append_line(Path(root) / FETCHES, json.dumps({"time": at, "address": address,
                                                  "sha256": sha256}))


def fetches(root: Path) -> dict[str, tuple[str, str]]:
    """address -> (sha256, time) of the newest anchor download from it in this migration."""
    try:
        lines = (Path(root) / FETCHES).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return {}
    out: dict[str, tuple[str, str]] = {}
    for line in lines:
        try:
            entry = json.loads(line)
            out[str(entry["address"])] = (str(entry["sha256"]), str(entry["time"]))
        except (ValueError, KeyError, TypeError):
            continue  # a torn last line after a crash
    return out


def refusal(root: Path, name: str | None = None, action: str = "activate") -> str | None:
    """Why activating ``name`` (or rolling back) is refused now: during a migration only its
    finish activates, and only its new set."""
    state = read_state(root)
    if state is None or (action == FINISH and name == state.to_set):
        return None
    what = "rollback" if action == "rollback" else f"activating set {name}"
    return (f"{what} is refused: {state.describe()}; finish it (certs migrate --finish) or "
            "abort it (certs migrate --abort) first")
