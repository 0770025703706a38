"""A yes/no question before a consequential action; focus starts on the safe choice."""

from __future__ import annotations

from rich.console import RenderableType
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmScreen(ModalScreen[bool]):
    """Dismissed with True only when the operator chooses the confirm button (or ``y``)."""

    BINDINGS = [
        Binding("y", "choose(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "choose(False)", "No / cancel", id="confirm.no"),
        Binding("left,right,tab", "app.focus_next", "Other button", show=False,
                id="confirm.other"),
    ]

    def __init__(self, title: str, body: RenderableType, confirm: str = "Yes",
                 warning: str = "", cancel: str = "Cancel") -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.confirm_label = confirm
        self.cancel_label = cancel
        self.warning = warning

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as dialog:
            dialog.border_title = self.title_text
            yield Static(self.body, id="dialog-body", markup=False)
            if self.warning:
                yield Static(f"WARNING: {self.warning}", id="dialog-warning", markup=False)
            with Horizontal(id="dialog-buttons"):
                yield Button(Text(f"{self.cancel_label} [n]"), id="cancel", variant="primary")
                yield Button(Text(f"{self.confirm_label} [y]"), id="confirm",
                             variant="warning" if self.warning else "default")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def action_choose(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")
