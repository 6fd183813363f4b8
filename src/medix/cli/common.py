"""What every `medix` command shares: the stderr console, value formatting, progress bars, given flags."""

from __future__ import annotations

import sys
from typing import Any, Callable

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from medix.safe_text import terminal_safe


class SafeConsole(Console):
    """A Rich console whose every string (printed, a table cell, a log line) has its control characters written
    out (`medix.safe_text.terminal_safe`): a reply, an error body or a data file cannot drive the terminal."""

    def render_str(self, text: str, *args, **kwargs):
        return super().render_str(terminal_safe(text), *args, **kwargs)


class SafeRichHandler(RichHandler):
    """Rich's log handler, its messages made terminal-safe as the console's strings are."""

    def render_message(self, record, message: str):
        return super().render_message(record, terminal_safe(message))


# Diagnostics, progress and notes go to stderr; tables and results to stdout (so `medix ... > file` keeps them).
console = SafeConsole(stderr=True)


def fmt(value) -> str:
    """A table cell: '—' for not applicable, three decimals for a float."""
    return "—" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def stdout_console(width: int) -> Console:
    """A console for a result table: the terminal's width, or `width` when stdout is a file or a pipe."""
    return SafeConsole(width=None if sys.stdout.isatty() else width)


def progress_bar(description: str = "{task.description}", transient: bool = True) -> Progress:
    """A Rich progress bar on stderr: description, bar, done / total, elapsed time."""
    columns = [TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    return Progress(*columns, console=console, transient=transient)


def progress_factory(bar: Progress) -> Callable[[str, str, int], Callable[[int], None]]:
    """The eval runner's progress hook: one bar line per (phase, task), advanced by the records written."""
    def start(phase: str, task: str, total: int):
        handle = bar.add_task(f"{phase} {task}", total=total)
        return lambda n: bar.advance(handle, n)
    return start


def given_flags(ctx: typer.Context, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """The command's parameters given on the command line (not left at their defaults), by parameter name."""
    # Typer carries its own click: compare the source's name, not the enum of the installed click.
    return {name: value for name, value in ctx.params.items()
            if name not in exclude and getattr(ctx.get_parameter_source(name), "name", "DEFAULT") != "DEFAULT"}
