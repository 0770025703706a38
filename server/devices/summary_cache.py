"""The summaries file ``.summaries.json``: every record's summary with its file's mtime and size,
written after a listing that had to parse many records, so that the next process's first
listing (``certs activate`` with no host running, ``devices list``, a console starting) parses
only the records changed since rather than all of them (100,000 took 8 s on a slow machine).

Only a cache, and never trusted beyond what it can prove: a row counts only while its record
file still has that mtime and size, and only when every field has the type it should; audit
counts are checked against the logs as for a parsed record. A file of another shape (another
version's fields) is ignored. Without it listings stay correct, only slower."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ..atomic import write_atomic
from .summary import DeviceSummary

CACHE_FILE = ".summaries.json"
FIELDS = [f.name for f in dataclasses.fields(DeviceSummary)]
# a row: [mtime_ns, size, serial, the other fields in FIELDS order], each of its type
ROW_TYPES = (int, int, str, *(type(f.default) for f in dataclasses.fields(DeviceSummary)[1:]))


def load(root: Path) -> dict[str, tuple[DeviceSummary, tuple]]:
    """serial -> (summary, (mtime_ns, size)) of the rows that have the right shape."""
    try:
        data = json.loads((Path(root) / CACHE_FILE).read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("fields") != FIELDS or not isinstance(
            data.get("rows"), list):
        return {}
    return {row[2]: (DeviceSummary(*row[2:]), (row[0], row[1])) for row in data["rows"]
            if type(row) is list and tuple(map(type, row)) == ROW_TYPES}


def save(root: Path, entries: dict[str, tuple[DeviceSummary, tuple]], stamp) -> None:
    """Write every entry whose file key is known; ``stamp``: the folder's FolderStamp."""
    rows = [[*key, *vars(summary).values()] for summary, key in entries.values() if len(key) == 2]
    try:
        with stamp.own_change():
            write_atomic(Path(root) / CACHE_FILE,
                         json.dumps({"fields": FIELDS, "rows": rows}, separators=(",", ":")))
    except OSError:
        pass  # a cache: listings stay correct, only slower
