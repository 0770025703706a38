"""The ``engage-console`` entry point itself: what every command shares."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from console.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


def test_version_prints_the_installed_version(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"engage-console {version('engage-console')}"


def test_output_into_a_closed_pipe_stops_quietly_without_a_traceback(tmp_path):
    """What `engage-console devices list | head -1` does once head has exited."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line
    try:
        result = subprocess.run([sys.executable, "-m", "console", "devices", "list"], cwd=tmp_path,
                                stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
    finally:
        os.close(write_end)
    assert "Traceback" not in result.stderr and "BrokenPipeError" not in result.stderr, \
        result.stderr
    assert result.returncode == 141  # as a program stopped by SIGPIPE reports
