"""One way for every subcommand to fail on bad input (one line on stderr, exit code 2) and one
way to warn (one line on stderr, the command goes on)."""

from __future__ import annotations

import typer
from rich.console import Console

_err = Console(stderr=True, highlight=False, soft_wrap=True)


def print_error(message: str) -> None:
    """Print ``gcs-hook: error: <message>`` as one line on stderr (white space folded)."""
    _err.print(f"gcs-hook: error: {' '.join(message.split())}", markup=False)


def fail(message: str, code: int = 2) -> None:
    """Inside a command: print the one error line and exit with ``code`` (default 2)."""
    print_error(message)
    raise typer.Exit(code)


def warn(message: str) -> None:
    """Print ``gcs-hook: warning: <message>`` as one line on stderr."""
    _err.print(f"gcs-hook: warning: {' '.join(message.split())}", markup=False)
