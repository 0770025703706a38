"""The device list (allowlist): a ``serial,name,tags`` CSV, every row checked before any is
imported, and the import that adds or updates the listed locks' records."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

from .errors import BadRequest, CorruptRecord, DeviceError
from .records import new_record
from .identity import check_identity
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
    tags: list = field(default_factory=list)


def parse_import(devices, text: str, source: str = "device list") -> list[ImportRow]:
    """Rows of a ``serial,name,tags`` CSV (tags separated by ';', optional header row);
    ImportRejected naming every bad row by line number (a quote never closed included)."""
    rows, problems, lines_of = [], [], {}
    reader = csv.reader(io.StringIO(text), strict=True)
    start, first = 1, True
    try:
        for raw in reader:
            line, start = start, reader.line_num + 1
            cells = [c.strip() for c in raw]
            if not any(cells):
                continue
            header, first = first and cells[0].lower() == "serial", False
            if header:
                continue
            problem = None
            if len(cells) > 3:
                problem = f"{len(cells)} columns; expected serial, name, tags"
            else:
                try:
                    serial = normalise_serial(cells[0])
                    problem = check_identity(serial, devices.settings)
                except BadRequest as exc:
                    problem = str(exc)
            if problem is None and serial in lines_of:
                problem = f"serial {serial} repeats line {lines_of[serial]}"
            name = cells[1] if len(cells) > 1 else ""
            if problem is None and len(name) > MAX_NAME:
                problem = f"name longer than {MAX_NAME} characters"
            if problem is None and any(_CONTROL.search(c) for c in cells[1:]):
                problem = "a name or tag holds a line break or other control character"
            if problem is None:
                try:
                    devices.files.read(serial)
                except CorruptRecord as exc:
                    problem = str(exc)
            if problem:
                problems.append(f"line {line}: {problem}")
                continue
            lines_of[serial] = line
            tags = [t.strip() for t in (cells[2] if len(cells) > 2 else "").split(";")
                    if t.strip()]
            rows.append(ImportRow(line, serial, name, tags))
    except csv.Error as exc:
        why = "a quote opened here is never closed" if "end of data" in str(exc) else exc
        problems.append(f"line {start}: not valid CSV: {why}")
    if problems:
        raise ImportRejected(source, problems)
    if not rows:
        raise ImportRejected(source, ["no rows: expected lines of serial,name,tags"])
    return rows


def import_rows(devices, rows: list[ImportRow]) -> tuple[int, int]:
    """Add or update listed locks; (added, updated). Call-in data is kept."""
    added = updated = 0
    files = devices.files
    for row in rows:
        with files.locked(row.serial):
            existing = files.read(row.serial)
            record = existing if existing is not None else new_record(row.serial, "import")
            if row.name:
                record["name"] = row.name
            if row.tags:
                record["tags"] = row.tags
            record["listed"] = True
            files.write(row.serial, record)
        added += existing is None
        updated += existing is not None
        devices.notices.changed(row.serial)
    return added, updated
