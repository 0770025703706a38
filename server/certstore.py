"""Certificate sets on disk, which one is active, its history, and every anchor ever served.

A set is what the locks need at one time (DESIGN.md "Certificate sets")::

    certs/<set>/anchor.der   CA certificate the locks install as trust anchor (served as DER)
    certs/<set>/chain.pem    server chain presented on TLS: leaf first, then intermediates
    certs/<set>/server.key   server key, mode 0600
    certs/<set>/set.json     optional: {"demo": true, "legacy_name": "partner_CA", ...}

``certs/active.json`` names the active set and is replaced atomically, so a crash leaves the
old or the new set active, never a mix. ``certs/history.jsonl`` records every activation and
rollback. ``certs/.anchors/<sha256>.der`` keeps each activated anchor downloadable forever.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import os
import re
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from .atomic import append_line, file_stamp, write_atomic
from .errors import CertificateError

ANCHOR, CHAIN, KEY, META = "anchor.der", "chain.pem", "server.key", "set.json"
ACTIVE, HISTORY, ANCHORS = "active.json", "history.jsonl", ".anchors"
TRASH = ".deleted-"  # a set being deleted: .<name>.deleted-<random>, never a set name
SET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class CertSet:
    """One set as read from disk. Holds public material only; the key stays in its file."""

    name: str
    path: Path
    anchor_der: bytes
    chain: tuple[x509.Certificate, ...]
    meta: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def anchor(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.anchor_der)

    @property
    def anchor_sha256(self) -> str:
        return hashlib.sha256(self.anchor_der).hexdigest()

    @property
    def chain_path(self) -> Path:
        return self.path / CHAIN

    @property
    def key_path(self) -> Path:
        return self.path / KEY

    @property
    def demo(self) -> bool:
        return bool(self.meta.get("demo"))

    @property
    def legacy_names(self) -> set[str]:
        """Names under which ``/static/Device_Certificates/<name>.der`` serves the anchor."""
        names = {self.name, "anchor"}
        if self.meta.get("legacy_name"):
            names.add(str(self.meta["legacy_name"]))
        return names


def check_set_name(name: str) -> str:
    if not SET_NAME.fullmatch(name or ""):
        raise CertificateError(
            f"set name {name!r} is not allowed: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit")
    return name


def load_set(path: Path, name: str | None = None) -> CertSet:
    """Read a set folder (``name`` for one not yet in place: default the folder's name); a
    missing or malformed file is a CertificateError naming it."""
    name = check_set_name(name or path.name)
    try:
        anchor_der = (path / ANCHOR).read_bytes()
        chain_pem = (path / CHAIN).read_bytes()
    except FileNotFoundError as exc:
        raise CertificateError(f"set {name}: missing {Path(exc.filename).name}") from None
    except OSError as exc:
        raise CertificateError(f"set {name}: cannot read: {exc}") from None
    try:
        x509.load_der_x509_certificate(anchor_der)
    except ValueError as exc:
        raise CertificateError(f"set {name}: {ANCHOR} is not a DER certificate ({exc})") from None
    try:
        chain = tuple(x509.load_pem_x509_certificates(chain_pem))
    except ValueError as exc:
        raise CertificateError(f"set {name}: {CHAIN} holds no PEM certificate ({exc})") from None
    if not (path / KEY).is_file():
        raise CertificateError(f"set {name}: missing {KEY}")
    meta = {}
    if (path / META).is_file():
        try:
            meta = json.loads((path / META).read_text(encoding="utf-8"))
            if not isinstance(meta, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            raise CertificateError(f"set {name}: {META} is not valid JSON ({exc})") from None
    return CertSet(name, path, anchor_der, chain, meta)


def write_set(folder: Path, anchor_der: bytes, chain_pem: bytes, key_pem: bytes,
              meta: dict | None = None, accept=None) -> None:
    """Write a complete set into a new folder. Files land in a temp folder that is renamed
    into place, so a half-written set is never picked up. ``accept(cert_set)`` sees the set
    in the temp folder first: an exception it raises writes nothing."""
    check_set_name(folder.name)
    if folder.exists():
        raise CertificateError(f"set {folder.name} already exists")
    tmp = folder.parent / f".{folder.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        write_atomic(tmp / ANCHOR, anchor_der)
        write_atomic(tmp / CHAIN, chain_pem)
        write_atomic(tmp / KEY, key_pem, mode=0o600)
        write_atomic(tmp / META, json.dumps(meta or {}, indent=2) + "\n")
        if accept is not None:
            accept(load_set(tmp, folder.name))
        os.rename(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@dataclass(frozen=True)
class ForcedActivation:
    """The active set was activated despite errors: when (ISO 8601, UTC) and by whom."""

    set: str
    time: str
    by: str

    @property
    def label(self) -> str:
        """How the CLI and the console flag the active set, in the same words."""
        when = self.time[:16].replace("T", " ") + " UTC" if self.time else "an unknown date"
        return f"active with errors (forced on {when} by {self.by})"


class CertStore:
    """The sets under ``certs/``; scanned on every listing so hand-dropped sets appear live."""

    def __init__(self, root: Path):
        self.root = Path(root)
        # Anchors found and verified by their SHA-256. Content-addressed, so never stale.
        self._anchors: dict[str, bytes] = {}

    def set_path(self, name: str) -> Path:
        return self.root / check_set_name(name)

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and SET_NAME.fullmatch(p.name))

    def scan(self) -> dict[str, CertSet | CertificateError]:
        """Every set folder, loaded, or the error that says why it cannot be used."""
        out: dict[str, CertSet | CertificateError] = {}
        for name in self.names():
            try:
                out[name] = load_set(self.root / name)
            except CertificateError as exc:
                out[name] = exc
        return out

    def load(self, name: str) -> CertSet:
        path = self.set_path(name)
        if not path.is_dir():
            raise CertificateError(f"no certificate set named {name!r} in {self.root}")
        return load_set(path)

    def delete(self, name: str, force: bool = False) -> Path:
        """Remove set ``name`` and return where it was. Refused for the active set, and for a
        set in the activation history (a rollback may return to it) unless ``force``. The
        folder is renamed to a hidden name first, so a half-deleted set is never listed or
        loaded; the CA keys (``ca/``) are not the store's and stay."""
        path = self.set_path(name)
        if not path.is_dir():
            raise CertificateError(f"no certificate set named {name!r} in {self.root}")
        if self.active_name() == name:
            raise CertificateError(f"set {name} is active: activate another set first")
        if not force and any(e.get("set") == name for e in self.history()):
            raise CertificateError(f"set {name} is in the activation history, so a rollback may "
                                   "return to it: force the deletion to delete it anyway")
        for stale in self.root.glob(f".*{TRASH}*"):  # left by a crash mid-delete
            shutil.rmtree(stale, ignore_errors=True)
        trash = self.root / f".{name}{TRASH}{secrets.token_hex(4)}"
        os.rename(path, trash)
        shutil.rmtree(trash)
        return path

    # --- the active set and its history -------------------------------------------------

    @property
    def active_file(self) -> Path:
        return self.root / ACTIVE

    def active_name(self) -> str | None:
        """The set named in active.json, or None when no set was ever activated."""
        record = self._active_record()
        return record["set"] if record else None

    def forced_activation(self) -> "ForcedActivation | None":
        """How the active set was activated, when that was forced past its errors (None when
        it was not, or nothing is active): what the CLI and the console flag as
        ``ForcedActivation.label``. Kept in active.json; one written before the flag existed
        falls back to the set's last history entry."""
        record = self._active_record()
        if record is None:
            return None
        if "forced" not in record:
            entry = next((e for e in reversed(self.history()) if e.get("set") == record["set"]),
                         {})
            record = {**entry, **record, "forced": entry.get("forced")}
        if not record["forced"]:
            return None
        return ForcedActivation(record["set"], str(record.get("activated_at") or
                                                   record.get("time") or ""),
                                str(record.get("by") or "unknown"))

    def _active_record(self) -> dict | None:
        try:
            data = json.loads(self.active_file.read_text(encoding="utf-8"))
            check_set_name(data["set"])
            return data
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, CertificateError) as exc:
            raise CertificateError(f"{self.active_file} is unreadable ({exc}); "
                                   "activate a set again to repair it") from None

    def active_stamp(self) -> tuple | None:
        """Changes whenever active.json is replaced (by us or another process)."""
        return file_stamp(self.active_file)

    def history(self) -> list[dict]:
        try:
            lines = (self.root / HISTORY).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a torn last line after a crash: the entry before it still stands
        return out

    def rollback_target(self) -> str | None:
        """The set active before the current one, replaying activations and rollbacks; never
        the active set itself (a set activated twice in a row is one step back).

        A rollback returns to its target, undoing everything activated after it. A crash
        between switching active.json and appending history leaves the newest activation
        unrecorded; the set active.json names then counts as the newest entry."""
        stack: list[str] = []
        for entry in self.history():
            name = entry.get("set")
            if not name:
                continue
            if entry.get("action") == "rollback" and name in stack:
                del stack[len(stack) - stack[::-1].index(name):]
            else:
                stack.append(name)
        active = self._safe_active_name()
        if active and (not stack or stack[-1] != active):
            stack.append(active)
        return next((name for name in reversed(stack[:-1]) if name != active), None)

    def commit_activation(self, cert_set: CertSet, action: str = "activate",
                          forced: bool = False, by: str | None = None) -> dict:
        """Archive the anchor, then switch active.json: the commit point of an activation.
        Returns the history entry, which the caller appends once the swap is done."""
        self.archive_anchor(cert_set.anchor_der)
        entry = {
            "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "action": action,
            "set": cert_set.name,
            "previous": self._safe_active_name(),
            "anchor_sha256": cert_set.anchor_sha256,
            "by": by or current_user(),
            "forced": forced,
        }
        write_atomic(self.active_file, json.dumps(
            {"set": cert_set.name, "anchor_sha256": cert_set.anchor_sha256,
             "activated_at": entry["time"], "by": entry["by"], "forced": forced},
            indent=2) + "\n")
        return entry

    def append_history(self, entry: dict) -> None:
        append_line(self.root / HISTORY, json.dumps(entry))

    def record_activation(self, cert_set: CertSet, action: str = "activate",
                          forced: bool = False, by: str | None = None) -> dict:
        """Commit an activation on disk and log it (another process's host reloads it)."""
        entry = self.commit_activation(cert_set, action, forced, by)
        self.append_history(entry)
        return entry

    def _safe_active_name(self) -> str | None:
        try:
            return self.active_name()
        except CertificateError:
            return None

    # --- anchors served at content-addressed URLs ----------------------------------------

    def archive_anchor(self, der: bytes) -> str:
        sha = hashlib.sha256(der).hexdigest()
        path = self.root / ANCHORS / f"{sha}.der"
        if not path.exists():
            write_atomic(path, der)
        return sha

    def anchor_by_sha256(self, sha: str) -> bytes | None:
        """DER of a known anchor (archived or in any current set); never a path from a URL.

        Found once, then served from memory: a lock fleet fetching its anchor costs no disk
        reads, and a miss reads only the anchor files (no set is parsed)."""
        if not SHA256_HEX.fullmatch(sha):
            return None
        der = self._anchors.get(sha)
        if der is None:
            archived = (self.root / ANCHORS).glob("*.der")
            candidates = [p for p in archived if p.stem == sha]
            candidates += [self.root / name / ANCHOR for name in self.names()]
            der = next((d for d in map(_read_or_none, candidates)
                        if d is not None and hashlib.sha256(d).hexdigest() == sha), None)
            if der is not None:
                self._anchors[sha] = der
        return der


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"
