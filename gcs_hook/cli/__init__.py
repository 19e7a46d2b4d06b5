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

from gcs_hook.cli.errors import print_error

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
    """Console-script entry point.

    Usage errors that typer detects itself (an unknown option, a missing value, a value of the
    wrong type) get the same one line and exit code 2 as every other bad value, instead of a
    boxed multi-line message.
    """
    import sys

    if len(sys.argv) <= 1:
        app()  # no arguments: the help text, as typer prints it
        return
    try:
        code = typer.main.get_command(app).main(standalone_mode=False)
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        print("Aborted.", file=sys.stderr)
        code = 130
    except typer.TyperException as exc:  # typer's usage errors (BadParameter, NoSuchOption, …)
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        print_error(f"{exc.format_message()}{hint}")
        code = 2
    sys.exit(code if isinstance(code, int) else 0)
