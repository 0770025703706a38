"""The real ``engage-console`` in a real terminal (tmux): tests/tmux_console.sh types at it and
checks the captured screen. CI installs tmux; without it the test is skipped."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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
