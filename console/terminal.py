"""The console's terminal driver: Textual's Linux driver, with output that survives the
terminal going away.

When the terminal disappears (an SSH session drops, tmux is killed) the next write to it fails
with EIO. Textual's writer thread dies of that, its queue fills, and the console's way out
(restoring the screen on exit) then blocks for ever: the console lived on without its
listeners, holding its folder's control socket, until SIGKILL. Here a failed write is dropped
and every later one too (nobody can read them), so the SIGHUP that follows stops the console
as it should.
"""

from __future__ import annotations

from textual.drivers.linux_driver import LinuxDriver


class LostTerminalProof:
    """A text file that stops writing, silently, after its first failed write or flush."""

    def __init__(self, file):
        self._file = file
        self.lost = False

    def write(self, text: str) -> int:
        if not self.lost:
            try:
                return self._file.write(text)
            except OSError:
                self.lost = True
        return len(text)

    def flush(self) -> None:
        if not self.lost:
            try:
                self._file.flush()
            except OSError:
                self.lost = True

    def __getattr__(self, name):
        return getattr(self._file, name)


class ConsoleDriver(LinuxDriver):
    """Textual's Linux driver writing through :class:`LostTerminalProof`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._file = LostTerminalProof(self._file)
