"""``gcs-hook tune``: which BlockCacheParams should my training job use, and what does it buy?

    gcs-hook tune [--workload NAME|TRACE.json|TRACE.npz] [--memory-budget 2GiB]
                  [--configs 1MiB/4MiB/0,8MiB/32MiB/0,off [--with-grid]] [--json] [--allow-stale]
                  [--backend embedded|container|URL] [--out DIR] [--quick]
                  [--param KEY=VALUE ...] [--latency-ms MS] [--bandwidth RATE]
                  [--overhead-ms MS] [--no-measure] [--workers N] [--scheduler ADDR]
                  [--stat-cache-max-age S] [--exact] [--sample-rate R]

Runs :func:`benchmarks.tune.run_tune` (record with real TF → sweep in the model → measured runs →
report) and prints the line to paste. Bad arguments (unknown workload or parameter, negative or
malformed budget, an unusable backend spec or a backend that does not answer) print one line on
stderr and exit with code 2, before anything is started or written.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from gcs_hook.cli.errors import fail
from gcs_hook.cli.values import (
    deprecated_rate_mbps,
    option,
    parse_backend_spec,
    parse_cache_size,
    parse_duration,
    parse_rate,
    parse_size,
)

#: The smallest memory budget tune accepts: one block of the smallest size the grid considers.
MIN_MEMORY_BUDGET = 1 << 20


def parse_configs(text: str) -> list[Any]:
    """``'1MiB/4MiB/0,8MiB/32MiB/0,off'`` → CacheConfigs (block_size/max_bytes[/max_staleness];
    sizes and durations as :mod:`gcs_hook.cli.values` reads them, e.g. ``8MiB/32MiB/30s``;
    ``off`` = cache off). ValueError naming the bad item."""
    from benchmarks.sweep import CacheConfig

    out = []
    items = [item.strip() for item in (text or "").split(",")]
    if not any(items):
        raise ValueError("--configs is empty (example: 1MiB/4MiB/0,8MiB/32MiB/0,off)")
    for item in items:
        if item.lower() == "off":
            out.append(CacheConfig(0, 0, 0))
            continue
        parts = item.split("/")
        if len(parts) not in (2, 3):
            raise ValueError(
                f"--configs item {item!r} is not BLOCK/MAX_BYTES[/STALENESS_S] or off "
                "(example: 8MiB/32MiB/0)"
            )
        try:
            block, max_bytes = parse_cache_size(parts[0]), parse_cache_size(parts[1])
            stale_s = parse_duration(parts[2], unit="s") if len(parts) == 3 else 0.0
            if not float(stale_s).is_integer():
                raise ValueError(
                    f"staleness {parts[2]!r} must be whole seconds (TF counts seconds)"
                )
            stale = int(stale_s)
        except ValueError as exc:
            raise ValueError(f"--configs item {item!r}: {exc}") from None
        if block == 0 or max_bytes == 0:
            raise ValueError(f"--configs item {item!r}: write 'off' for the cache off")
        if max_bytes < block:
            raise ValueError(
                f"--configs item {item!r}: max_bytes is smaller than one block (TF would "
                "evict every block at once)"
            )
        out.append(CacheConfig(block, max_bytes, stale))
    return out


def _parse_params(items: list[str], workload: str) -> dict[str, Any]:
    from benchmarks.workloads import WORKLOADS

    fields = set(WORKLOADS[workload].params()) - {"sizes", "bucket"}
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            fail(f"--param wants KEY=VALUE, got {item!r}")
        if key not in fields:
            fail(
                f"workload {workload!r} has no parameter {key!r}; it has: {', '.join(sorted(fields))}"
            )
        try:
            number = parse_size(value)
        except ValueError:
            fail(f"--param {key}: {value!r} is not a non-negative number or size")
        if number <= 0 and key != "seed":
            fail(f"--param {key} must be positive, got {value!r}")
        out[key] = number
    if out:
        from benchmarks.workloads import check_scale, get_workload

        problem = check_scale(get_workload(workload, **_sweep_params(workload, out)))
        if problem:
            fail(f"--param: {problem}")
    return out


def _sweep_params(workload: str, params: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.workloads import SWEEP_SCALE

    return {**SWEEP_SCALE.get(workload, {}), **params}


def _check_backend(spec: str) -> None:
    """Validate the spec (:func:`parse_backend_spec`) and, for a URL, that something answers."""
    spec = option("--backend", parse_backend_spec, spec)
    if spec in ("embedded", "container"):
        if spec == "container":
            from emulator.fakegcs.backend import docker_engine_error

            reason = docker_engine_error()
            if reason:
                fail(f"backend 'container' is unusable: {reason}")
        return
    from emulator.fakegcs.backend import BackendError, ExternalBackend

    try:
        ExternalBackend(spec).close()
    except BackendError as exc:
        fail(f"backend {spec} unreachable: {exc}")
    except OSError as exc:
        fail(f"backend {spec} unreachable: {exc}")


def _check_out_dir(out: str) -> None:
    """Fail now, before any work, if ``--out`` cannot become a writable directory.

    Creates nothing: an existing directory must accept a file, a new one needs a writable parent.
    """
    path = Path(out)
    if path.exists() and not path.is_dir():
        fail(f"--out {out} exists and is not a directory")
    probe_dir = path if path.is_dir() else path.parent
    while not probe_dir.exists() and probe_dir != probe_dir.parent:
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        fail(f"--out {out}: {probe_dir} is not a directory")
    try:
        with tempfile.NamedTemporaryFile(dir=probe_dir, prefix=".gcs-hook-probe-"):
            pass
    except OSError as exc:
        fail(f"--out {out}: cannot write in {probe_dir} ({exc.strerror or exc})")


def _timing_from_flags(
    latency_ms: str, overhead_ms: str, bandwidth: str, bandwidth_mibps: float | None
) -> Any:
    """The :class:`GcsTiming` the flags ask for; a bad value is the one-line error."""
    from benchmarks.sweep.timing import GcsTiming

    latency_s = option("--latency-ms", parse_duration, latency_ms, unit="ms", context="bad timing")
    overhead_s = option(
        "--overhead-ms", parse_duration, overhead_ms, unit="ms", context="bad timing"
    )
    rate = option("--bandwidth", parse_rate, bandwidth, context="bad timing")
    if bandwidth_mibps is not None:
        rate = deprecated_rate_mbps(bandwidth_mibps * 1.048576, context="bad timing")
    if rate is None:  # 0 = no limit, as in serve and the README: bytes cost no time
        rate = math.inf
    try:
        return GcsTiming(latency_s, rate, overhead_s)
    except ValueError as exc:
        fail(f"bad timing: {exc}")


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
        str,
        typer.Option("--latency-ms", help="GCS first-byte latency for predictions, ms (or 20ms)"),
    ] = "20",
    bandwidth: Annotated[
        str,
        typer.Option("--bandwidth", help="per-connection bandwidth, a rate (e.g. 64MiB/s)"),
    ] = "64MiB/s",
    bandwidth_mibps: Annotated[
        float | None,
        typer.Option("--bandwidth-mibps", help="Deprecated: use --bandwidth N MiB/s.", hidden=True),
    ] = None,
    overhead_ms: Annotated[
        str, typer.Option("--overhead-ms", help="per-request client overhead, ms (or 1ms)")
    ] = "1",
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
) -> None:
    """Recommend BlockCacheParams for a training workload (sweep + measured runs, plots)."""
    from rich.console import Console

    from benchmarks.tune import TuneOptions, run_tune
    from benchmarks.workloads import WORKLOADS

    budget = option("--memory-budget", parse_size, memory_budget, minimum=MIN_MEMORY_BUDGET)
    _check_out_dir(out)
    opts = TuneOptions(memory_budget=budget, backend=backend, out_dir=out, quick=quick)
    if configs is not None:
        try:
            opts.configs = parse_configs(configs)
        except ValueError as exc:
            fail(str(exc))
    elif with_grid:
        fail("--with-grid goes with --configs (the grid is the default without it)")
    opts.with_grid = with_grid
    opts.allow_stale = allow_stale
    if workload is not None and (workload.endswith((".json", ".npz")) or os.sep in workload):
        path = Path(workload)
        if not path.is_file():
            fail(f"trace file {workload} does not exist")
        try:
            if path.suffix == ".npz":  # a columnar trace (docs/trace-format.md)
                from emulator.replay.columnar import load_columnar

                opts.trace = load_columnar(path)
            else:
                from emulator.replay.loading import load_replay_trace

                # what replay accepts: a trace or a fault case (its injected errors not swept)
                loaded = load_replay_trace(str(path))
                opts.trace = {k: v for k, v in loaded.items() if k != "faults"}
        except Exception as exc:  # noqa: BLE001 - any parse/validation error → one line
            fail(
                f"{workload} is not a valid trace: {str(exc).splitlines()[0] if str(exc) else exc!r}"
            )
        opts.trace_name = path.name
        if param:
            fail("--param applies to named workloads, not to a TRACE.json")
    else:
        name = workload or "tfrecord-epochs"
        if name not in WORKLOADS:
            fail(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)} (or a TRACE.json)")
        opts.workload = name
        opts.params = _parse_params(param or [], name)
        import importlib.util

        if not WORKLOADS[name].can_synthesize and importlib.util.find_spec("tensorflow") is None:
            fail(f"workload {name!r} is recorded with TensorFlow: pip install 'gcs-hook[tf]'")
    opts.timing = _timing_from_flags(latency_ms, overhead_ms, bandwidth, bandwidth_mibps)
    if workers is not None and workers < 1:
        fail(f"--workers must be >= 1, got {workers}")
    from benchmarks.sweep.parallel import max_workers

    if workers is not None and workers > max_workers():
        typer.echo(
            f"gcs-hook: note: --workers {workers} capped at the {max_workers()} cores", err=True
        )
        workers = max_workers()
    if sample_rate is not None and not (0 < sample_rate <= 1):
        fail(f"--sample-rate must be in (0, 1], got {sample_rate}")
    if exact and sample_rate is not None:
        fail("--exact and --sample-rate exclude each other")
    opts.exact, opts.sample_rate = exact, sample_rate
    if scheduler:
        import importlib.util

        if importlib.util.find_spec("distributed") is None:
            fail("--scheduler needs dask.distributed (pip install 'dask[distributed]')")
    opts.workers, opts.scheduler = workers, scheduler
    if stat_cache_max_age is not None and stat_cache_max_age < 0:
        fail(f"--stat-cache-max-age must be >= 0 seconds, got {stat_cache_max_age}")
    opts.stat_cache_max_age = stat_cache_max_age
    opts.measure = not no_measure and opts.trace is None
    if opts.trace is None:
        _check_backend(backend)

    console = Console(stderr=json_out)
    try:
        outcome = run_tune(opts, console)
    except Exception as exc:  # noqa: BLE001 - report as one line, exit 2
        from emulator.fakegcs.backend import BackendError

        if isinstance(exc, BackendError):
            fail(f"backend {backend} unusable: {str(exc).splitlines()[0]}")
        raise
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
        typer.echo(json.dumps(results_json(outcome.results, best, exact=exact), indent=1))
    else:
        typer.echo(outcome.line)  # never wrapped: it is meant to be pasted
    console.print(f"model check: {outcome.model_check}")
    for kind, path in outcome.paths.items():
        console.print(f"  {kind:9s} {path}")
    console.print(f"done in {outcome.seconds:.1f} s")


def register(app: typer.Typer) -> None:
    app.command("tune")(tune)
