"""A yes/no question before a consequential action; focus starts on the safe choice. For the
most consequential (activating a set with errors) the operator types a word (the set's name)
instead of pressing ``y``."""

from __future__ import annotations

from rich.console import RenderableType
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


class ConfirmScreen(ModalScreen[bool]):
    """Dismissed with True only when the operator chooses the confirm button (or ``y``); with
    ``typed``, only once that word is typed (``y`` does nothing then)."""

    BINDINGS = [
        Binding("y", "choose(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "choose(False)", "No / cancel", id="confirm.no"),
        Binding("left,right,tab", "app.focus_next", "Other button", show=False,
                id="confirm.other"),
        Binding("up", "scroll_body(-1)", "Scroll up", show=False, id="confirm.up"),
        Binding("down", "scroll_body(1)", "Scroll down", show=False, id="confirm.down"),
    ]

    def __init__(self, title: str, body: RenderableType, confirm: str = "Yes",
                 warning: str = "", cancel: str = "Cancel", typed: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.confirm_label = confirm
        self.cancel_label = cancel
        self.warning = warning
        self.typed = typed

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as dialog:
            dialog.border_title = self.title_text
            with VerticalScroll(id="dialog-scroll") as scroll:
                scroll.can_focus = False  # tab goes between the choices; up/down scroll
                yield Static(self.body, id="dialog-body", markup=False)
            if self.warning:  # outside the scroll: always in sight
                yield Static(f"WARNING: {self.warning}", id="dialog-warning", markup=False)
            if self.typed:
                yield Label(Text(f"To go ahead: tab to the box, type {self.typed}, enter"))
                yield Input(placeholder=self.typed, id="dialog-typed", select_on_focus=False)
            with Horizontal(id="dialog-buttons"):
                yield Button(Text(f"{self.cancel_label} [n]"), id="cancel", variant="primary")
                yield Button(Text(self.confirm_label if self.typed else
                                  f"{self.confirm_label} [y]"), id="confirm",
                             variant="warning" if self.warning else "default",
                             disabled=bool(self.typed))

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        return not (self.typed and action == "choose" and parameters == (True,))

    def action_scroll_body(self, lines: int) -> None:
        self.query_one("#dialog-scroll").scroll_relative(y=lines, animate=False)

    def action_choose(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Input.Changed, "#dialog-typed")
    def _typed_changed(self, event: Input.Changed) -> None:
        self.query_one("#confirm", Button).disabled = event.value.strip() != self.typed

    @on(Input.Submitted, "#dialog-typed")
    def _typed_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip() == self.typed:
            self.dismiss(True)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")
