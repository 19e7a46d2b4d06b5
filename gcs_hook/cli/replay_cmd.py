"""``gcs-hook replay``: run a read trace through real TensorFlow or the model, or compare both.

    gcs-hook replay TRACE.json [--engine tf|model] [--json] [--backend SPEC]
    gcs-hook replay --compare TRACE.json [--json] [--backend SPEC]

Exit codes: 0 = ran (for ``--compare``: both engines agree), 1 = ``--compare`` found a
difference, 2 = bad input or an engine could not run (one line on stderr).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from gcs_hook.cli.errors import fail

_ENGINES = ("tf", "model")


def _print_result(result: dict[str, Any]) -> None:
    typer.echo(
        f"engine {result['engine']}: {len(result['requests'])} requests, "
        f"{len(result['reads'])} reads"
    )
    for i, req in enumerate(result["requests"]):
        rng = req.get("range")
        where = f" bytes={rng[0]}-{rng[1]}" if rng else ""
        typer.echo(f"  request {i:3d}: {req.get('kind')} {req.get('object')}{where}")
    for i, rd in enumerate(result["reads"]):
        status = rd["error"] or "OK"
        typer.echo(
            f"  read    {i:3d}: {rd['handle']} @{rd['offset']} n={rd['n']} -> "
            f"{rd['returned']} B {status} sha256={rd['sha256'][:16]}"
        )


def replay(
    trace_path: Annotated[
        Path, typer.Argument(metavar="TRACE.json", help="Trace file (trace-format.md).")
    ],
    engine: Annotated[
        str | None,
        typer.Option("--engine", help="tf (real TensorFlow through the fake GCS front) or model."),
    ] = None,
    compare_engines: Annotated[
        bool, typer.Option("--compare", help="Run both engines and print the first difference.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
    backend: Annotated[
        str,
        typer.Option("--backend", help="Fake GCS for the tf engine: embedded | container | URL."),
    ] = "embedded",
) -> None:
    """Replay a read trace through real TensorFlow or the Python model, or compare the two."""
    from emulator import replay as rp

    if compare_engines and engine is not None:
        fail("use either --engine or --compare, not both")
    if engine is not None and engine not in _ENGINES:
        fail(f"--engine must be one of {', '.join(_ENGINES)}, got {engine!r}")
    if not trace_path.is_file():
        fail(f"trace file not found: {trace_path}")
    try:
        trace = rp.load_trace(trace_path)
    except rp.ReplayError as exc:
        fail(f"invalid trace {trace_path}: {exc}")

    def run(which: str) -> dict[str, Any]:
        try:
            if which == "model":
                return rp.run_model(trace)
            return rp.run_tf(trace, backend=backend)
        except Exception as exc:  # noqa: BLE001 — one line, whatever the engine raised
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            fail(f"{which} engine failed: {type(exc).__name__}: {first}")
            raise  # unreachable: fail() exits

    if not compare_engines:
        result = run(engine or "model")
        if as_json:
            typer.echo(json.dumps(rp.public_result(result), indent=1))
        else:
            _print_result(result)
        return

    tf_result = run("tf")
    model_result = run("model")
    diff = rp.compare(tf_result, model_result)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "equal": diff is None,
                    "difference": None if diff is None else diff.as_dict(),
                    "tf": rp.public_result(tf_result),
                    "model": rp.public_result(model_result),
                },
                indent=1,
            )
        )
    elif diff is None:
        typer.echo(f"equal: {len(tf_result['requests'])} requests, {len(tf_result['reads'])} reads")
    else:
        typer.echo(diff.describe(trace))
    if diff is not None:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``replay`` command to the ``gcs-hook`` app.

    An app with a single command and no callback is collapsed by typer into that command
    (``gcs-hook TRACE.json`` instead of ``gcs-hook replay TRACE.json``); a no-op callback keeps
    ``replay`` a subcommand whatever else is registered. An existing callback is left alone.
    """
    if app.registered_callback is None:
        app.callback()(_group)
    app.command("replay")(replay)


def _group() -> None:
    """TensorFlow GCS hook, fake GCS emulator, cache model and cache-tuning benchmarks."""
