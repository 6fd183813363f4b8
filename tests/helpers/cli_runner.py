"""`medix ARGS` for the tests: in-process (`cli`: a traceback fails the case, a MedixError is its answer) or as
a subprocess (`medix`: `python -m medix ARGS` from the repository root, its output captured)."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from helpers import REPO
from medix.errors import MedixError


def cli(*args: str):
    """(exit code, output, the MedixError the command ended with or None)."""
    from medix.cli import app

    result = CliRunner().invoke(app, list(args))
    error = result.exception if isinstance(result.exception, MedixError) else None
    if result.exception is not None and error is None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback is a failed case
    return result.exit_code, result.output, error


def medix(*args: str, cwd=REPO, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """`python -m medix ARGS` in `cwd` with `env` (None: this process's), stdout and stderr captured as text."""
    return subprocess.run([sys.executable, "-m", "medix", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, env=env)
