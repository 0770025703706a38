"""Audit and alert logs: a lock's audits and alerts are appended to ``<serial>.audit.jsonl`` /
``<serial>.alerts.jsonl``, one line per event: ``{"received", "seq", "event"}`` with the event
exactly as the lock sent it and ``seq`` counting the log's events, so the last line gives the
count and an audit post appends without rewriting the record."""

from __future__ import annotations

import collections
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import BadRequest
from .records import as_dict, as_text

AUDIT, ALERT = "audit", "alert"
LOG_SUFFIX = {AUDIT: ".audit.jsonl", ALERT: ".alerts.jsonl"}
COUNT_KEY = {AUDIT: "audits", ALERT: "alerts"}
MAX_REMEMBERED_IDS = 2048  # auditIds per log kept for skipping repeats (locks resend recent ones)


@dataclass
class EventsAdded:
    """Outcome of an audit or alert post: ``first`` when this created the lock's log."""

    first: bool
    added: int
    duplicates: int


def check_events(body) -> list[dict]:
    """The events of an audit or alert post (``{"asyncEvents": [{"event", "time"}, ...]}``)."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object with an asyncEvents list")
    events = body.get("asyncEvents")
    if not isinstance(events, list):
        raise BadRequest("asyncEvents is missing or not a list")
    for i, event in enumerate(events):
        if not isinstance(event, dict):
            raise BadRequest(f"asyncEvents[{i}] is not an object")
        for key in ("event", "time"):
            value = event.get(key)
            if isinstance(value, bool) or not (
                    isinstance(value, int) or isinstance(value, str) and value.isdigit()):
                raise BadRequest(f"asyncEvents[{i}].{key} is missing or not a number")
        if "auditId" in event and (isinstance(event["auditId"], (bool, dict, list))
                                   or event["auditId"] is None):
            raise BadRequest(f"asyncEvents[{i}].auditId is not a number or text")
    return events


def _seq(entry: dict, previous: int) -> int:
    seq = entry.get("seq")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else previous + 1


@dataclass
class LogState:
    """What this process knows of one event log: recent auditIds, event count, last time."""

    ids: collections.OrderedDict
    count: int
    last: str

    def remember(self, audit_id: str) -> None:
        self.ids[audit_id] = None
        if len(self.ids) > MAX_REMEMBERED_IDS:
            self.ids.popitem(last=False)


class EventLogs:
    """The logs in ``root`` and what this process knows of each (:class:`LogState`)."""

    def __init__(self, root: Path):
        self.root = root
        self._logs: dict[tuple[str, str], LogState] = {}

    def path(self, serial: str, kind: str) -> Path:
        return self.root / f"{serial}{LOG_SUFFIX[kind]}"

    def known(self, serial: str, kind: str) -> LogState | None:
        """What this process knows of the log, without reading it."""
        return self._logs.get((serial, kind))

    def state(self, serial: str, kind: str, path: Path) -> LogState:
        """The log's recent auditIds and count, read once per process (lock held)."""
        key = (serial, kind)
        state = self._logs.get(key)
        if state is None:
            state = LogState(collections.OrderedDict(), 0, "")
            for entry in read_lines(path):
                event = as_dict(entry.get("event"))
                if "auditId" in event:
                    state.remember(as_text(event["auditId"]))
                state.count = _seq(entry, state.count)
                state.last = as_text(entry.get("received")) or state.last
            self._logs[key] = state
        return state

    def count(self, serial: str, kind: str) -> tuple[int, str]:
        """(events, time of the last) in a log: from memory, else from its last line."""
        state = self._logs.get((serial, kind))
        if state is not None:
            return state.count, state.last
        last = tail(self.path(serial, kind), 1)
        return (_seq(last[0], 0), as_text(last[0].get("received"))) if last else (0, "")


def read_lines(path: Path) -> list[dict]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            out.append(entry)
    return out


def tail(path: Path, n: int) -> list[dict]:
    """The last ``n`` entries, reading only the end of a long file."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            chunk, data = 64 * 1024, b""
            while size > 0 and data.count(b"\n") <= n:
                step = min(chunk, size)
                size -= step
                f.seek(size)
                data = f.read(step) + data
    except FileNotFoundError:
        return []
    out = []
    for line in data.splitlines()[-n:] if n > 0 else []:
        try:
            entry = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(entry, dict):
            out.append(entry)
    return out
