"""Shared by the command-line tests: run a command as a user would, in a fresh process."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

__all__ = ["REPO", "run_module"]


def run_module(module, *args, cwd=REPO, env=None, timeout=900):
    """``python -m module args...`` (paths as strings), its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=None if env is None else {**os.environ, **env},
    )
