"""``?`` / F1: every key of the screen underneath, read from its live bindings."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static


# Textual's own bindings, in this console's words.
WORDS = {"command_palette": ("Command palette", "Every action of this screen, by name")}


def key_table(screen: Screen) -> Table:
    """One row per action (keys merged, e.g. q and Textual's ctrl+q for quit): the console's
    own actions first."""
    app = screen.app
    shown = sorted(((key, active.binding) for key, active in screen.active_bindings.items()
                    if active.binding.description and not active.binding.system),
                   key=lambda item: item[1].id is None)
    ours = {}  # action -> id of this console's binding for it
    for _, binding in shown:
        if binding.id:
            ours.setdefault(binding.action.removeprefix("app."), binding.id)
    rows: dict[str, list] = {}
    for key, binding in shown:
        action = binding.action.removeprefix("app.")
        name = binding.id or ours.get(action, action)
        keys, _ = rows.setdefault(name, [[], binding])
        keys.append(app.get_key_display(binding.with_key(key)))
    table = Table(box=None, show_header=True, header_style="bold", expand=True)
    table.add_column("Key", no_wrap=True)
    table.add_column("Action", no_wrap=True)
    table.add_column("What it does")
    # This console's own actions first, then the keys its widgets bring (scrolling, focus).
    for name, (keys, binding) in rows.items():
        description, tooltip = WORDS.get(name, (binding.description, binding.tooltip))
        table.add_row(" ".join(dict.fromkeys(keys)), description, tooltip)
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
