"""`medix ARGS` in-process for the reliability tests: a traceback fails the case, a MedixError is its answer."""

from __future__ import annotations

from typer.testing import CliRunner

from medix.errors import MedixError


def cli(*args: str):
    """(exit code, output, the MedixError the command ended with or None)."""
    from medix.cli import app

    result = CliRunner().invoke(app, list(args))
    error = result.exception if isinstance(result.exception, MedixError) else None
    if result.exception is not None and error is None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback is a failed case
    return result.exit_code, result.output, error
