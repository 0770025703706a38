"""The form that asks where to import a certificate set from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


@dataclass
class ImportRequest:
    name: str
    paths: list[Path]
    passphrase: str = ""


def parse_paths(text: str) -> list[Path]:
    """Comma-separated files or folders, ``~`` expanded."""
    return [Path(part.strip()).expanduser() for part in text.split(",") if part.strip()]


class ImportScreen(ModalScreen[ImportRequest | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="import.cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as dialog:
            dialog.border_title = "Import a certificate set"
            yield Label("Files or a folder (comma separated): anchor, server chain, key")
            yield Input(placeholder="/path/partner_CA.der, /path/partner_server.pem, ...",
                        id="import-paths")
            yield Label("Name of the new set")
            yield Input(placeholder="e.g. site-2026", id="import-name")
            yield Label("Key passphrase (if the key is encrypted)")
            yield Input(password=True, id="import-passphrase")
            yield Static("", id="import-problem", markup=False)
            with Horizontal(id="dialog-buttons"):
                yield Button(Text("Cancel [esc]"), id="cancel", variant="primary")
                yield Button("Import", id="import")

    def _problem(self, message: str) -> None:
        self.query_one("#import-problem", Static).update(f"Cannot import yet: {message}")

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted)
    def _next(self, event: Input.Submitted) -> None:
        if event.input.id == "import-passphrase":
            self._submit()
        else:
            self.focus_next()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "import":
            self._submit()
        else:
            self.dismiss(None)

    def _submit(self) -> None:
        paths = parse_paths(self.query_one("#import-paths", Input).value)
        name = self.query_one("#import-name", Input).value.strip()
        if not paths:
            return self._problem("name at least one file or folder.")
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            return self._problem(f"no such file or folder: {', '.join(missing)}")
        if not name:
            return self._problem("give the new set a name.")
        self.dismiss(ImportRequest(name, paths,
                                   self.query_one("#import-passphrase", Input).value))
