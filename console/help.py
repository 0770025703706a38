"""``?`` / F1: every key of the screen underneath, read from its live bindings."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static


def key_table(screen: Screen) -> Table:
    """One row per action (keys merged): the console's own actions first."""
    app = screen.app
    rows: dict[str, list] = {}
    for key, active in screen.active_bindings.items():
        binding = active.binding
        if not binding.description or binding.system:
            continue
        name = binding.id or binding.action
        keys, _ = rows.setdefault(name, [[], binding])
        keys.append(app.get_key_display(binding.with_key(key)))
    table = Table(box=None, show_header=True, header_style="bold", expand=True)
    table.add_column("Key", no_wrap=True)
    table.add_column("Action", no_wrap=True)
    table.add_column("What it does")
    # This console's own actions first, then the keys its widgets bring (scrolling, focus).
    for keys, binding in sorted(rows.values(), key=lambda row: row[1].id is None):
        table.add_row(" ".join(dict.fromkeys(keys)), binding.description, binding.tooltip)
    table.add_row("ctrl+p", "Command palette", "Every action of this screen, by name")
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,question_mark,f1,q", "app.pop_screen", "Close help", id="help.close"),
    ]

    def __init__(self, screen: Screen) -> None:
        super().__init__()
        self.table = key_table(screen)
        self.screen_title = screen.title or screen.__class__.__name__

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help") as box:
            box.border_title = f"Keys: {self.screen_title}"
            box.border_subtitle = "esc closes"
            yield Static(self.table)
