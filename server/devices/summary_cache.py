"""The summaries file ``.summaries.json``: every record's summary with its file's mtime and size,
written after a listing that had to parse many records, so that the next process's first
listing (``certs activate`` with no host running, ``devices list``, a console starting) parses
only the records changed since rather than all of them (100,000 took 8 s on a slow machine).

Only a cache, and never trusted beyond what it can prove: a row counts only while its record
file still has that mtime and size, and audit counts are checked against the logs as for a
parsed record. A file of another shape (another version's fields, a value not of its field's
type) is ignored whole. Without it listings stay correct, only slower. Stored by column, whose
types are checked in one pass each (100,000 rows)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ..atomic import write_atomic
from .summary import DeviceSummary

CACHE_FILE = ".summaries.json"
FIELDS = [f.name for f in dataclasses.fields(DeviceSummary)]
# the file's columns: mtime_ns, size, then FIELDS (serial first), each value of its type
COLUMN_TYPES = (int, int, str, *(type(f.default) for f in dataclasses.fields(DeviceSummary)[1:]))


def load(root: Path) -> dict[str, tuple[DeviceSummary, tuple]]:
    """serial -> (summary, (mtime_ns, size)); nothing from a file of another shape."""
    try:
        data = json.loads((Path(root) / CACHE_FILE).read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("fields") != FIELDS:
        return {}
    columns = data.get("columns")
    if not isinstance(columns, list) or len(columns) != len(COLUMN_TYPES):
        return {}
    for column, kind in zip(columns, COLUMN_TYPES):  # each value's type checked in C, not per row
        if type(column) is not list or len(column) != len(columns[0]) or not set(
                map(type, column)) <= {kind}:
            return {}
    mtimes, sizes, *fields = columns
    return {summary.serial: (summary, key) for summary, key in zip(
        map(DeviceSummary, *fields), zip(mtimes, sizes))}


def save(root: Path, entries: dict[str, tuple[DeviceSummary, tuple]], stamp) -> None:
    """Write every entry whose file key is known; ``stamp``: the folder's FolderStamp."""
    rows = [(*key, *vars(summary).values()) for summary, key in entries.values() if len(key) == 2]
    columns = [list(column) for column in zip(*rows)] if rows else [[] for _ in COLUMN_TYPES]
    try:
        with stamp.own_change():
            write_atomic(Path(root) / CACHE_FILE,
                         json.dumps({"fields": FIELDS, "columns": columns},
                                    separators=(",", ":")))
    except OSError:
        pass  # a cache: listings stay correct, only slower
