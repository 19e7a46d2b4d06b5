"""The ``gcs-hook`` command line.

Each subcommand group lives in its own module and registers itself on :data:`app`
through a ``register(app)`` function, so the modules stay independent:

- :mod:`gcs_hook.cli.serve_cmd`  — ``serve``, ``env``, ``doctor``
- :mod:`gcs_hook.cli.replay_cmd` — ``replay``
- :mod:`gcs_hook.cli.tune_cmd`   — ``tune``
- :mod:`gcs_hook.cli.record_cmd` — ``record``

Bad arguments exit with code 2 and one clear line on stderr.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="gcs-hook",
    help="TensorFlow GCS hook, fake GCS emulator, cache model and cache-tuning benchmarks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_SUBCOMMAND_MODULES = ("serve_cmd", "replay_cmd", "tune_cmd", "record_cmd")


def _register_all() -> None:
    for name in _SUBCOMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(app)


_register_all()


def main() -> None:
    """Console-script entry point."""
    app()
