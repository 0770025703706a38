"""The device list (allowlist): a ``serial,name,tags`` CSV or West's ``identities.csv``, every
row checked before any is imported, and the import that adds or updates the listed locks'
records (and pins the client certificates ``identities.csv`` names)."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

from . import identities
from .errors import BadRequest, CorruptRecord, DeviceError
from .records import new_record
from .identity import check_identity
from .listing import EXPIRED, listing_state, relist
from .serials import normalise_serial

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # line breaks, tabs, NUL...
MAX_NAME = 100


class ImportRejected(DeviceError):
    """A device list has bad rows; ``problems`` holds one message per bad row."""

    def __init__(self, source: str, problems: list[str]):
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} bad row(s), nothing imported:\n  "
                         + "\n  ".join(problems))


@dataclass
class ImportRow:
    line: int
    serial: str
    name: str = ""
    tags: list = field(default_factory=list)  # text, or West's {"name", "value"} objects
    pin: dict | None = None  # the client certificate that alone is accepted for the lock


def _rows(text: str) -> tuple[list[tuple[int, list[str]]], list[str]]:
    """(line, cells) of every non-blank CSV row, and the CSV error, if any, by line."""
    rows, problems = [], []
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")), strict=True)  # Excel's BOM
    start = 1
    try:
        for raw in reader:
            line, start = start, reader.line_num + 1
            if any(c.strip() for c in raw):
                rows.append((line, raw))
    except csv.Error as exc:
        why = "a quote opened here is never closed" if "end of data" in str(exc) else exc
        problems.append(f"line {start}: not valid CSV: {why}")
    return rows, problems


def _simple_row(cells: list[str]) -> tuple[str, list, dict | None]:
    """(name, tags, pin) of a ``serial,name,tags`` row; ValueError saying what is wrong."""
    if len(cells) > 3:
        raise ValueError(f"{len(cells)} columns; expected serial, name, tags")
    name = cells[1] if len(cells) > 1 else ""
    if len(name) > MAX_NAME:
        raise ValueError(f"name longer than {MAX_NAME} characters")
    if any(_CONTROL.search(c) for c in cells[1:]):
        raise ValueError("a name or tag holds a line break or other control character")
    tags = [t.strip() for t in (cells[2] if len(cells) > 2 else "").split(";") if t.strip()]
    return name, tags, None


def _west_row(cells: list[str], serial: str) -> tuple[str, list, dict | None]:
    """("", tags, pin) of an ``identities.csv`` row; ValueError saying what is wrong."""
    if len(cells) != len(identities.HEADER):
        raise ValueError(f"{len(cells)} columns; expected ID, TLS Client Certificate, Tags")
    tags = identities.parse_tags(cells[2])
    pin = identities.pin_of(cells[1], serial) if cells[1].strip() else None
    return "", tags, pin


def parse_import(devices, text: str, source: str = "device list") -> list[ImportRow]:
    """Rows of a ``serial,name,tags`` CSV (tags separated by ';', optional header row) or of
    West's ``identities.csv`` (told by its header); ImportRejected naming every bad row by
    line number (a quote never closed included)."""
    rows, problems, lines_of = [], [], {}
    found, csv_problems = _rows(text)
    west = bool(found) and identities.is_header(found[0][1])
    if found and (west or found[0][1][0].strip().lower() == "serial"):
        found = found[1:]
    for line, raw in found:
        cells = [c.strip() for c in raw]
        try:
            serial = normalise_serial(cells[0], "ID" if west else "serial")
            problem = check_identity(serial, devices.settings)
        except BadRequest as exc:
            problem = str(exc)
        if problem is None and serial in lines_of:
            problem = f"{'ID' if west else 'serial'} {serial} repeats line {lines_of[serial]}"
        if problem is None:
            try:
                name, tags, pin = _west_row(cells, serial) if west else _simple_row(cells)
                devices.files.read(serial)
            except (ValueError, CorruptRecord) as exc:
                problem = str(exc)
        if problem:
            problems.append(f"line {line}: {problem}")
            continue
        lines_of[serial] = line
        rows.append(ImportRow(line, serial, name, tags, pin))
    problems += csv_problems
    if problems:
        raise ImportRejected(source, problems)
    if not rows:
        expected = "ID,TLS Client Certificate,Tags" if west else "serial,name,tags"
        raise ImportRejected(source, [f"no rows: expected lines of {expected}"])
    return rows


def import_rows(devices, rows: list[ImportRow]) -> tuple[int, int]:
    """Add or update listed locks; (added, updated). Call-in data is kept."""
    added = updated = 0
    files = devices.files
    hours = devices.settings.activation_hours if devices.settings is not None else 48.0
    for row in rows:
        with files.locked(row.serial):
            existing = files.read(row.serial)
            record = existing if existing is not None else new_record(row.serial, "import")
            if row.name:
                record["name"] = row.name
            if row.tags:
                record["tags"] = row.tags
            if row.pin:
                record["pinned_cert"] = row.pin
            if not (record.get("listed") and record.get("listed_at")) \
                    or listing_state(record, devices.clock(), hours) == EXPIRED:
                relist(record, devices.clock())  # a new listing, or an expired one: a window
            files.write(row.serial, record)
        added += existing is None
        updated += existing is not None
        devices.notices.changed(row.serial)
    return added, updated
