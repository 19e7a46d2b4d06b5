"""``gcs-hook tune``: which BlockCacheParams should my training job use, and what does it buy?

    gcs-hook tune [--workload NAME|TRACE.json|TRACE.npz] [--memory-budget 2GiB]
                  [--configs 1MiB/4MiB/0,8MiB/32MiB/0,off [--with-grid]] [--json] [--allow-stale]
                  [--backend embedded|container|URL] [--out DIR] [--quick]
                  [--param KEY=VALUE ...] [--latency-ms MS] [--bandwidth RATE]
                  [--overhead-ms MS] [--timing PROFILE.json] [--prices PRICES.json]
                  [--no-measure] [--workers N] [--scheduler ADDR]
                  [--stat-cache-max-age S] [--exact] [--sample-rate R]

The options are parsed in one step into a :class:`benchmarks.tune.TuneOptions` by
:class:`gcs_hook.cli.tune_options.TuneArgs` (one field per option below: an option added here
needs its field there). Runs :func:`benchmarks.tune.run_tune` (record with real TF → sweep in the model → measured runs →
report) and prints the line to paste. Bad arguments (unknown workload or parameter, negative or
malformed budget, an unusable backend spec or a backend that does not answer) print one line on
stderr and exit with code 2, before anything is started or written.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from gcs_hook.cli.errors import fail


def tune(
    workload: Annotated[
        str | None,
        typer.Option(
            "--workload",
            "-w",
            help="workload name, or a TRACE.json / columnar TRACE.npz to sweep as given",
        ),
    ] = None,
    memory_budget: Annotated[
        str, typer.Option("--memory-budget", help="largest block cache allowed, a size (e.g. 2GiB)")
    ] = "2GiB",
    backend: Annotated[
        str,
        typer.Option("--backend", help="fake GCS: embedded, container or http(s)://host:port"),
    ] = "embedded",
    out: Annotated[str, typer.Option("--out", help="output directory")] = "tune-out",
    quick: Annotated[bool, typer.Option("--quick", help="small grid, 3 measured runs")] = False,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="workload parameter KEY=VALUE (repeatable)"),
    ] = None,
    latency_ms: Annotated[
        str | None,
        typer.Option(
            "--latency-ms", help="GCS first-byte latency for predictions, ms [default 20]"
        ),
    ] = None,
    bandwidth: Annotated[
        str | None,
        typer.Option("--bandwidth", help="per-connection bandwidth, a rate [default 64MiB/s]"),
    ] = None,
    bandwidth_mibps: Annotated[
        float | None,
        typer.Option("--bandwidth-mibps", help="Deprecated: use --bandwidth N MiB/s.", hidden=True),
    ] = None,
    overhead_ms: Annotated[
        str | None,
        typer.Option("--overhead-ms", help="per-request client overhead, ms [default 1]"),
    ] = None,
    timing_file: Annotated[
        str | None,
        typer.Option(
            "--timing",
            help="the bucket's timing profile (JSON: latency median/p99, stream and aggregate "
            "bandwidth) instead of --latency-ms/--bandwidth/--overhead-ms",
        ),
    ] = None,
    prices_file: Annotated[
        str | None,
        typer.Option("--prices", help="a price table (JSON) for the $ column [GCS list prices]"),
    ] = None,
    no_measure: Annotated[
        bool, typer.Option("--no-measure", help="skip measured runs with real TF")
    ] = False,
    workers: Annotated[
        int | None, typer.Option("--workers", help="sweep processes (default: cores)")
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option("--scheduler", help="dask.distributed scheduler address")
    ] = None,
    stat_cache_max_age: Annotated[
        int | None,
        typer.Option("--stat-cache-max-age", help="TF's GCS_STAT_CACHE_MAX_AGE, s [default 5]"),
    ] = None,
    configs: Annotated[
        str | None,
        typer.Option(
            "--configs",
            help="evaluate exactly these: BLOCK/MAX_BYTES/STALENESS_S,…,off (e.g. 8MiB/32MiB/0,off)",
        ),
    ] = None,
    with_grid: Annotated[
        bool, typer.Option("--with-grid", help="with --configs: also sweep the default grid")
    ] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="print only JSON on stdout (one object per config)")
    ] = False,
    allow_stale: Annotated[
        bool,
        typer.Option("--allow-stale", help="let the recommendation read stale or torn data"),
    ] = False,
    exact: Annotated[
        bool, typer.Option("--exact", help="simulate every read (no sampling)")
    ] = False,
    sample_rate: Annotated[
        float | None,
        typer.Option("--sample-rate", help="sampling rate R in (0, 1] [default: chosen by time]"),
    ] = None,
    client: Annotated[
        str,
        typer.Option("--client", help="whose cache to tune: tf (BlockCacheParams) or gcsfs"),
    ] = "tf",
) -> None:
    """Recommend BlockCacheParams for a training workload (sweep + measured runs, plots)."""
    given = dict(locals())  # exactly the options above, one TuneArgs field each
    from rich.console import Console

    from benchmarks.tune import run_tune
    from emulator.fakegcs.backend import BackendError
    from gcs_hook.cli.tune_options import TuneArgs, tune_other_client

    client = given.pop("client")
    if client != "tf" or (workload or "").startswith("gcsfs-"):
        return tune_other_client(client, given)  # tune --client gcsfs: its own pipeline
    opts = TuneArgs(**given).parse()  # every option checked here, before anything runs
    console = Console(stderr=json_out)
    try:
        outcome = run_tune(opts, console)
    except Exception as exc:  # noqa: BLE001 - report as one line, exit 2
        if isinstance(exc, BackendError):
            fail(f"backend {backend} unusable: {str(exc).splitlines()[0]}")
        raise
    _print_outcome(console, outcome, memory_budget, json_out, opts.prices)


def _print_outcome(
    console: Any, outcome: Any, memory_budget: str, json_out: bool, prices: Any
) -> None:
    """The recommendation, the line to paste (or the JSON), the model check and the files."""
    console.print()
    best = outcome.best
    if best is not None:
        console.print(
            f"[bold]recommendation[/bold] (memory budget {memory_budget}): predicted "
            f"{best.epoch_s:.2f} s/epoch, {best.requests_per_epoch:.0f} requests/epoch"
        )
        sampling = outcome.sampling
        if sampling.get("exact") is False:
            console.print(
                f"  sampled at R = {sampling['sample_rate']:g}: error estimate "
                f"~{sampling['max_error_estimate']:.2%} (an estimate, not a bound: "
                "docs/scale.md measured errors above it; --exact for every read)"
            )
    if json_out:
        from benchmarks.tune.advice import results_json

        console.print(outcome.line)
        exact = outcome.sampling.get("exact") is not False
        doc = results_json(outcome.results, best, exact=exact, prices=prices)
        typer.echo(json.dumps(doc, indent=1))
    else:
        typer.echo(outcome.line)  # never wrapped: it is meant to be pasted
    console.print(f"model check: {outcome.model_check}")
    for kind, path in outcome.paths.items():
        console.print(f"  {kind:9s} {path}")
    console.print(f"done in {outcome.seconds:.1f} s")


def register(app: typer.Typer) -> None:
    app.command("tune")(tune)
