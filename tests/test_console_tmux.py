"""The real ``engage-console`` in a real terminal (tmux): tests/tmux_console.sh types at it and
checks the captured screen. CI installs tmux; without it the test is skipped."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import until

SCRIPT = Path(__file__).with_name("tmux_console.sh")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_engage_console_in_tmux_starts_serves_switches_screens_and_quits():
    console = Path(sys.executable).with_name("engage-console")
    assert console.exists(), "engage-console is not installed next to this Python"
    result = subprocess.run(["bash", str(SCRIPT), str(console)], capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all tmux checks passed" in result.stdout


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_a_console_whose_terminal_disappears_stops_and_exits(tmp_path):
    """tmux killed under a running console (an SSH session dropped): the console stops its
    listeners and exits. It used to hang for ever writing to the dead terminal (Textual's
    writer thread died of EIO), holding its folder's control socket."""
    console = Path(sys.executable).with_name("engage-console")
    server = f"engage-test-{tmp_path.name}"
    port = 20000 + int(tmp_path.stat().st_ino) % 20000
    command = (f"cd {tmp_path} && {console} --bind 127.0.0.1 --http-port {port} --tls-port 0; "
               "sleep 30")  # the shell stays, as a login shell would: not the session leader

    def tmux(*args):
        return subprocess.run(["tmux", "-L", server, "-f", "/dev/null", *args],
                              capture_output=True, text=True, timeout=10).stdout

    def running() -> list[str]:
        return subprocess.run(["pgrep", "-f", f"http-port {port} "], capture_output=True,
                              text=True).stdout.split()

    tmux("new-session", "-d", "-x", "100", "-y", "30", command)
    try:
        assert until(lambda: "q Quit" in (shown := tmux("capture-pane", "-p"))
                     and "RUNNING" in shown, 30), tmux("capture-pane", "-p")
        assert running(), "the console did not start"
    finally:
        tmux("kill-server")
    try:
        assert until(lambda: not running(), 20), "the console lives on without its terminal"
    finally:
        for pid in running():
            subprocess.run(["kill", "-9", pid])
