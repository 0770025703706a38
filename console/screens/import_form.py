"""The form that imports a certificate set from files. It stays open until the import
succeeded: any problem is shown under the fields, every value is kept and the field at fault
is focused, its cursor at the end (nothing selected that a key would replace). The
passphrase box is a password box: what is typed there is never shown."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from server.certimport import PassphraseRequired
from server.certstore import CertSet, check_set_name
from server.errors import EngageError

PATHS, NAME, PASSPHRASE = "import-paths", "import-name", "import-passphrase"


@dataclass
class ImportRequest:
    name: str
    paths: list[Path]
    passphrase: str = ""


class ImportProblem(Exception):
    """Why the form cannot import, and the field (its id) to fix."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def parse_paths(text: str) -> list[Path]:
    """Comma-separated files, ``~`` expanded."""
    return [Path(part.strip()).expanduser() for part in text.split(",") if part.strip()]


def checked_request(paths_text: str, name: str, passphrase: str,
                    exists: Callable[[str], bool]) -> ImportRequest:
    """The request the fields make, or ImportProblem naming the first field at fault. Files
    only, as `certs import` takes them: a folder is refused with what to name instead."""
    paths = parse_paths(paths_text)
    if not paths:
        raise ImportProblem(PATHS, "name the certificate and key files.")
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise ImportProblem(PATHS, f"no such file: {', '.join(missing)}")
    folders = [str(p) for p in paths if p.is_dir()]
    if folders:
        raise ImportProblem(PATHS, f"{', '.join(folders)} is a folder: name the files in it.")
    if not name:
        raise ImportProblem(NAME, "give the new set a name.")
    try:
        check_set_name(name)
    except EngageError as exc:
        raise ImportProblem(NAME, str(exc)) from None
    if exists(name):
        raise ImportProblem(NAME, f"set {name} already exists: choose another name.")
    return ImportRequest(name, paths, passphrase)


def problem_of(exc: Exception) -> ImportProblem:
    """The field an import failure is about: the passphrase, else the files."""
    field = PASSPHRASE if isinstance(exc, PassphraseRequired) else PATHS
    return ImportProblem(field, str(exc))


class ImportScreen(ModalScreen[CertSet | None]):
    """Dismissed with the new set once ``importer`` made it, or None when cancelled."""

    # Enter and tab move focus as the key arrives, before the keys typed after them are handed
    # to a field (a priority binding runs in the app's queue, in key order): fast typing never
    # lands in the field just left.
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="import.cancel"),
        Binding("enter", "enter", "Next / import", priority=True, show=False,
                id="import.enter"),
        Binding("tab", "move(1)", "Next field", priority=True, show=False, id="import.next"),
        Binding("shift+tab", "move(-1)", "Previous field", priority=True, show=False,
                id="import.previous"),
    ]

    def __init__(self, importer: Callable[[ImportRequest], CertSet],
                 exists: Callable[[str], bool]) -> None:
        super().__init__()
        self.importer = importer
        self.exists = exists
        self.busy = False

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as dialog:
            dialog.border_title = "Import a certificate set"
            yield Label("Files, comma separated (not a folder): anchor, server chain, key")
            yield Input(placeholder="/path/partner_CA.der, /path/partner_server.pem, ...",
                        id=PATHS, select_on_focus=False)
            yield Label("Name of the new set")
            yield Input(placeholder="e.g. site-2026", id=NAME, select_on_focus=False)
            yield Label("Key passphrase (if the key is encrypted; never shown)")
            yield Input(password=True, id=PASSPHRASE, select_on_focus=False)
            yield Static("", id="import-problem", markup=False)
            with Horizontal(id="dialog-buttons"):
                yield Button(Text("Cancel [esc]"), id="cancel", variant="primary")
                yield Button("Import", id="import")

    def field(self, field_id: str) -> Input:
        return self.query_one(f"#{field_id}", Input)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_move(self, step: int) -> None:
        self._move_focus(step)

    def action_enter(self) -> None:
        focused = self.focused
        if isinstance(focused, Button):
            focused.press()
        elif isinstance(focused, Input) and focused.id == PASSPHRASE:
            self.submit()
        else:
            self.focus_next()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "import":
            self.submit()
        else:
            self.dismiss(None)

    def submit(self, fields: tuple[str, ...] = (PATHS, NAME, PASSPHRASE)) -> None:
        """Check and import once every field has taken the keys typed before: each field
        in turn runs the next step after the keys waiting in its queue."""
        if fields:
            self.field(fields[0]).call_later(self.submit, fields[1:])
        else:
            self._submit()

    def _submit(self) -> None:
        if self.busy:
            return
        try:
            request = checked_request(self.field(PATHS).value, self.field(NAME).value.strip(),
                                      self.field(PASSPHRASE).value, self.exists)
        except ImportProblem as problem:
            self._show_problem(problem)
            return
        self.busy = True
        self.query_one("#import-problem", Static).update("Importing...")
        self.run_import(request)

    @work(thread=True, exclusive=True, group="import", exit_on_error=False, name="import")
    def run_import(self, request: ImportRequest) -> None:
        try:
            new = self.importer(request)
        except Exception as exc:  # any failure keeps the form and its values
            self.app.call_from_thread(self._failed, problem_of(exc))
            return
        self.app.call_from_thread(self.dismiss, new)

    def _failed(self, problem: ImportProblem) -> None:
        self.busy = False
        self._show_problem(problem)

    def _show_problem(self, problem: ImportProblem) -> None:
        self.query_one("#import-problem", Static).update(f"Cannot import: {problem}")
        self.set_focus(self.field(problem.field))
