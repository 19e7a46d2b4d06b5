"""One way for every subcommand to fail on bad input: one line on stderr, exit code 2."""

from __future__ import annotations

import typer
from rich.console import Console

_err = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 2) -> None:
    """Print ``gcs-hook: error: <message>`` as one line and exit with ``code`` (default 2)."""
    _err.print(f"gcs-hook: error: {message}", markup=False)
    raise typer.Exit(code)
