"""``gcs-hook replay``: run a read trace through real TensorFlow or the model, or compare both.

    gcs-hook replay TRACE.json... [--engine tf|model] [--transport memory|gcsfs] [--json]
                                  [--backend SPEC]
    gcs-hook replay --compare TRACE.json... [--transport memory|gcsfs] [--json] [--backend SPEC]

A directory stands for the ``*.json`` traces in it. Exit codes: 0 = ran (for ``--compare``:
the engines agree on every trace), 1 = ``--compare`` found a difference, 2 = bad input or an
engine could not run (one line on stderr; with bad input nothing has run).
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


def _expand(paths: list[Path]) -> list[Path]:
    """Files as given (JSON or columnar ``.npz``); a directory stands for its ``*.json`` files
    (sorted)."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.glob("*.json"))
            if not found:
                fail(f"no *.json traces in directory {path}")
            out.extend(found)
        elif path.is_file():
            out.append(path)
        else:
            fail(f"trace file not found: {path}")
    return out


_MAX_RANDOM = 10_000


def replay(
    trace_paths: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="TRACE.json...",
            help="Trace files (trace-format.md) or fault cases, or directories of them.",
        ),
    ] = None,
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
        typer.Option(
            "--backend",
            help="Fake GCS for the tf engine and --transport gcsfs: embedded | container | URL.",
        ),
    ] = "embedded",
    transport: Annotated[
        str,
        typer.Option(
            "--transport",
            help="Model engine's I/O: memory (in-process objects) or gcsfs (through the fake "
            "GCS front; requests are then what the front saw).",
        ),
    ] = "memory",
    random_count: Annotated[
        int | None,
        typer.Option(
            "--random",
            metavar="N",
            help="Instead of files: N random traces (emulator.replay.random_trace), seeds "
            "from --seed.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="First seed for --random.")] = 0,
    timed: Annotated[
        bool, typer.Option("--timed", help="--random: staleness, short stat ages, sleeps.")
    ] = False,
    with_faults: Annotated[
        bool, typer.Option("--faults", help="--random: inject random HTTP errors.")
    ] = False,
) -> None:
    """Replay read traces through real TensorFlow or the Python model, or compare the two.

    Several traces share one fake GCS and as few TensorFlow processes as their settings allow.
    Every trace is validated before anything runs.
    """
    from emulator.replay import replay as rp

    if compare_engines and engine is not None:
        fail("use either --engine or --compare, not both")
    if engine is not None and engine not in _ENGINES:
        fail(f"--engine must be one of {', '.join(_ENGINES)}, got {engine!r}")
    if transport not in rp.MODEL_TRANSPORTS:
        fail(f"--transport must be one of {', '.join(rp.MODEL_TRANSPORTS)}, got {transport!r}")
    if transport != "memory" and engine == "tf":
        fail("--transport applies to the model engine only")
    if random_count is None and (timed or with_faults or seed != 0):
        fail("--seed, --timed and --faults go with --random N")
    if random_count is not None:
        if trace_paths:
            fail("give either trace files or --random N, not both")
        if not 1 <= random_count <= _MAX_RANDOM:
            fail(f"--random must be between 1 and {_MAX_RANDOM}, got {random_count}")
        if seed < 0:
            fail(f"--seed must be >= 0, got {seed}")
        if with_faults and transport != "memory":
            fail("--faults needs the memory transport")
        seeds = range(seed, seed + random_count)
        names = [
            f"random_trace({s}{', timed' if timed else ''}{', faults' if with_faults else ''})"
            for s in seeds
        ]
        traces = [rp.random_trace(s, timed=timed, faults=with_faults) for s in seeds]
    else:
        if not trace_paths:
            fail("give trace files (or a directory), or --random N")
        names = [str(p) for p in _expand(trace_paths)]
        traces = []
        for name in names:
            try:
                traces.append(rp.load_replay_trace(name))
            except rp.ReplayError as exc:
                fail(f"invalid trace {name}: {exc}")
        if transport != "memory":
            for name, trace in zip(names, traces, strict=True):
                if trace.get("faults"):
                    fail(f"{name} injects faults: that needs the memory transport")

    if compare_engines or engine == "tf" or transport != "memory":
        for name, trace in zip(names, traces, strict=True):  # objects go to the fake GCS
            try:
                rp.check_uploadable(trace)
            except rp.ReplayError as exc:
                fail(f"{name}: {exc}")

    emulator: Any = None  # one fake GCS + front for every engine that needs one

    def run(which: str) -> list[dict[str, Any]]:
        nonlocal emulator
        try:
            if which == "model" and transport == "memory":
                return [rp.run_model(t) for t in traces]
            if emulator is None:
                from emulator.fakegcs.session import GcsEmulator

                emulator = GcsEmulator(backend)
            if which == "model":
                return [rp.run_model(t, transport=transport, emulator=emulator) for t in traces]
            with rp.TfReplayer(emulator) as replayer:
                return replayer.run_many(traces)
        except Exception as exc:  # noqa: BLE001 — one line, whatever the engine raised
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            fail(f"{which} engine failed: {type(exc).__name__}: {first}")
            raise  # unreachable: fail() exits

    try:
        _report(names, traces, run, engine, compare_engines, as_json)
    finally:
        if emulator is not None:
            emulator.close()


def _report(
    paths: list[str],
    traces: list[dict[str, Any]],
    run: Any,
    engine: str | None,
    compare_engines: bool,
    as_json: bool,
) -> None:
    from emulator.replay import replay as rp

    single = len(paths) == 1
    if not compare_engines:
        results = run(engine or "model")
        if as_json:
            docs = [rp.public_result(r) for r in results]
            if not single:
                docs = [{"trace": str(p), **d} for p, d in zip(paths, docs, strict=True)]
            typer.echo(json.dumps(docs[0] if single else docs, indent=1))
        else:
            for path, result in zip(paths, results, strict=True):
                if not single:
                    typer.echo(f"{path}:")
                _print_result(result)
        return

    tf_results = run("tf")
    model_results = run("model")
    docs = []
    differ = 0
    for path, trace, tf_result, model_result in zip(
        paths, traces, tf_results, model_results, strict=True
    ):
        diff = rp.compare(tf_result, model_result)
        differ += diff is not None
        docs.append(
            {
                "trace": str(path),
                "equal": diff is None,
                "difference": None if diff is None else diff.as_dict(),
                "tf": rp.public_result(tf_result),
                "model": rp.public_result(model_result),
            }
        )
        if as_json:
            continue
        prefix = "" if single else f"{path}: "
        if diff is None:
            n_req, n_read = len(tf_result["requests"]), len(tf_result["reads"])
            typer.echo(f"{prefix}equal: {n_req} requests, {n_read} reads")
        else:
            typer.echo(prefix + diff.describe(trace))
    if as_json:
        if single:
            docs[0].pop("trace")
        typer.echo(json.dumps(docs[0] if single else docs, indent=1))
    elif not single:
        typer.echo(f"{len(paths) - differ} of {len(paths)} traces equal")
    if differ:
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
