"""Tables updated in place by row key (as dolphie does), never rebuilt every tick.

Cells are plain ``Text`` (or a ``Text`` given, for a coloured state word): what a lock or a
file says is shown as written, never read as markup (a device name with ``[`` in it stays as it
is), and no markup is parsed per cell.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey


def sync_rows(table: DataTable, wanted: dict[str, dict[str, str | Text]],
              shown: dict[str, dict[str, str | Text]], remove_missing: bool = True,
              key_column: str | None = None, narrow: bool = True) -> None:
    """Make ``table`` show ``wanted`` (row key -> column key -> text). ``shown`` is what the
    table holds now and is updated; only rows and cells whose text changed are touched (a row
    given the very dict it was drawn from is skipped: never change a drawn dict in place).
    Columns widen to fit; with ``narrow=False`` they never narrow (DataTable re-measures the
    whole column when a cell narrows: 50 ms for 1,000 rows).
    Rows stay in the order of their first column (serial, set name), or with ``key_column``
    (the column that shows the row key) in the order of ``wanted``."""
    if remove_missing:
        for key in [k for k in shown if k not in wanted]:
            table.remove_row(key)
            del shown[key]
    added = False
    for key, cells in wanted.items():
        old = shown.get(key)
        if old is cells:
            continue  # the very cells drawn before
        if old is None:
            widen_columns(table, cells)
            table.add_row(*map(as_text, cells.values()), key=key)
            added = True
        else:
            changed = {column: value for column, value in cells.items() if old[column] != value}
            widen_columns(table, changed)
            for column, value in changed.items():
                table.update_cell(key, column, as_text(value), update_width=narrow)
        shown[key] = cells
    if key_column is not None:
        order_rows(table, list(wanted), key_column)
    elif added:
        keep_in_order(table)


def as_text(value: str | Text) -> Text:
    return value if isinstance(value, Text) else Text(value)


def order_rows(table: DataTable, keys: list[str], key_column: str) -> None:
    """Put the rows in the order of ``keys`` (a sort column chosen); nothing moves when they
    are in it already, and the cursor stays on its row."""
    if [row.key.value for row in table.ordered_rows] == keys:
        return
    position = {key: index for index, key in enumerate(keys)}
    selected = cursor_key(table)
    table.sort(key_column, key=lambda cell: position[str(cell)])
    if selected is not None:
        table.move_cursor(row=table.get_row_index(selected))


def keep_in_order(table: DataTable) -> None:
    """Move rows that arrived late (a lock calling in for the first time, a new set) to their
    place by first column instead of the bottom; the cursor stays on its row. Only when rows
    were added, and nothing moves when they came in order."""
    first = next(iter(table.columns), None)
    texts = [str(table.get_row_at(index)[0]) for index in range(table.row_count)]
    if first is None or texts == sorted(texts):
        return
    selected = cursor_key(table)
    table.sort(first, key=str)
    if selected is not None:
        table.move_cursor(row=table.get_row_index(selected))


def widen_columns(table: DataTable, cells: dict[str, str]) -> None:
    """Widen the columns these texts do not fit, before the row is drawn. DataTable widens
    them only once idle, and a row drawn in between stays cut at the old width until it
    changes again (textual#3533): a 5-digit port showed as 4 digits."""
    for column, value in cells.items():
        info = table.columns.get(ColumnKey(column))
        width = max(map(cell_len, str(value).splitlines() or [""]))
        if info is not None and info.auto_width and width > info.content_width:
            info.content_width = width


def cursor_key(table: DataTable) -> str | None:
    """The key of the row under the cursor, or None for an empty table."""
    if not table.row_count:
        return None
    key, _ = table.coordinate_to_cell_key((table.cursor_row, 0))
    return key.value
