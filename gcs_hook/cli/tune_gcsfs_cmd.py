"""``gcs-hook tune --client gcsfs``: the option checks and the output of the gcsfs tune.

    gcs-hook tune --client gcsfs [--workload gcsfs-mixed|gcsfs-parquet|gcsfs-sequential|
                  gcsfs-random|TRACE.json] [--configs readahead/1MiB,blockcache/2MiB/maxblocks=8,
                  none,…] [--with-grid] [--memory-budget 2GiB] [--json] [--quick] [--no-measure]
                  [--out DIR] [--latency-ms MS] [--bandwidth RATE] [--overhead-ms MS]

The pipeline is :func:`benchmarks.tune.gcsfs.run_gcsfs_tune`. Options that only mean something
for TensorFlow's cache (``--param``, ``--allow-stale``, ``--stat-cache-max-age``, ``--exact``,
``--sample-rate``, ``--workers``, ``--scheduler``) are refused with one line, exit 2.
"""

from __future__ import annotations

import json
from typing import Any

import typer

from gcs_hook.cli.errors import fail
from gcs_hook.cli.values import parse_size

__all__ = ["CLIENTS", "check_tf_trace", "parse_gcsfs_configs", "run"]

CLIENTS = ("tf", "gcsfs")


def parse_gcsfs_configs(text: str) -> list[Any]:
    """``'readahead/1MiB,blockcache/2MiB/maxblocks=8,none'`` → FsspecCacheConfigs
    (CACHE_TYPE[/BLOCK_SIZE[/maxblocks=N]]; block size default 5 MiB, gcsfs's). ValueError
    naming the bad item."""
    from fsspec.caching import caches

    from emulator.model.fsspec_cache import FsspecCacheConfig

    out = []
    items = [item.strip() for item in (text or "").split(",")]
    if not any(items):
        raise ValueError("--configs is empty (example: readahead/1MiB,blockcache/2MiB,none)")
    for item in items:
        parts = item.split("/")
        ct = parts[0].strip()
        if ct not in caches or ct is None:
            known = ", ".join(sorted(k for k in caches if k))
            raise ValueError(f"--configs item {item!r}: unknown cache_type {ct!r} ({known})")
        try:
            block = parse_size(parts[1]) if len(parts) > 1 else 5 * 2**20
        except ValueError as exc:
            raise ValueError(f"--configs item {item!r}: {exc}") from None
        if block <= 0:
            raise ValueError(f"--configs item {item!r}: block size must be > 0")
        options: tuple[tuple[str, Any], ...] = ()
        for extra in parts[2:]:
            key, sep, value = extra.partition("=")
            if key != "maxblocks" or not sep or not value.isdigit() or int(value) < 1:
                raise ValueError(f"--configs item {item!r}: want maxblocks=N (N >= 1)")
            if ct not in ("blockcache", "background"):
                raise ValueError(f"--configs item {item!r}: maxblocks goes with blockcache")
            options = (("maxblocks", int(value)),)
        out.append(FsspecCacheConfig(ct, block, options))
    return out


def check_tf_trace(path: str, tf_trace: dict[str, Any]) -> None:
    """For ``tune`` of TF's cache on a trace file: refuse a trace whose reads are all gcsfs's
    (one line, exit 2), and say when it also holds gcsfs reads that TF's sweep leaves out."""
    from emulator.replay.trace import TraceError, load_trace

    try:
        full = load_trace(path)
    except TraceError:  # a fault case (trace + faults): TF's own format, no gcsfs ops
        return
    n = sum(1 for c in full.client_ops if c.op["op"] == "read")
    if not n:
        return
    tf_reads = sum(1 for op in tf_trace.get("ops", []) if op.get("op") in ("read", "tail"))
    if not tf_reads:
        fail(f"{path} holds only gcsfs reads ({n}): tune them with --client gcsfs")
    typer.echo(
        f"gcs-hook: note: {path} also holds {n} gcsfs reads; TF's sweep leaves them out "
        "(--client gcsfs tunes them)",
        err=True,
    )


def run(
    *, workload: str | None, budget: int, out: str, quick: bool, configs: str | None,
    with_grid: bool, json_out: bool, measure: bool, timing: Any, prices: Any, backend: str,
    tf_only: dict[str, bool],
) -> None:  # fmt: skip
    """Check the gcsfs-specific options, run the pipeline, print table/JSON/the line."""
    from rich.console import Console

    from benchmarks.tune.gcsfs import GcsfsTuneOptions, results_json, run_gcsfs_tune
    from benchmarks.workloads.gcsfs_job import WORKLOADS

    for flag, given in tf_only.items():
        if given:
            fail(f"{flag} is an option of TF's cache; not with --client gcsfs")
    opts = GcsfsTuneOptions(memory_budget=budget, out_dir=out, quick=quick, timing=timing,
                            prices=prices, measure=measure, backend=backend,
                            with_grid=with_grid)  # fmt: skip
    if configs is not None:
        try:
            opts.configs = parse_gcsfs_configs(configs)
        except ValueError as exc:
            fail(str(exc))
    elif with_grid:
        fail("--with-grid goes with --configs (the grid is the default without it)")
    name = workload or "gcsfs-mixed"
    if name in WORKLOADS:
        import importlib.util

        if name == "gcsfs-parquet" and importlib.util.find_spec("pyarrow") is None:
            fail(
                "workload 'gcsfs-parquet' reads Parquet with pyarrow: pip install 'gcs-hook[parquet]'"
            )
        opts.workload = name
    elif name.endswith(".json"):
        from emulator.replay.trace import TraceError, load_trace

        try:
            opts.trace = load_trace(name)
        except TraceError as exc:
            fail(f"{name} is not a valid trace: {str(exc).splitlines()[0]}")
    else:
        fail(f"unknown gcsfs workload {name!r}; known: {', '.join(WORKLOADS)} (or a TRACE.json)")
    console = Console(stderr=json_out)
    try:
        outcome = run_gcsfs_tune(opts, console)
    except (ValueError, RuntimeError) as exc:  # no gcsfs reads; a built-in job that failed
        fail(str(exc).splitlines()[0])
    console.print()
    if outcome.best is not None:
        b = outcome.best
        console.print(
            f"[bold]recommendation[/bold] (memory budget {budget:,} B): predicted "
            f"{b.predicted_seconds:.2f} s, {b.requests} media requests, "
            f"{b.bytes_fetched / 2**20:.1f} MiB fetched"
        )
    if outcome.note:
        console.print(f"  note: {outcome.note}")
    if json_out:
        console.print(outcome.line)
        typer.echo(json.dumps(results_json(outcome), indent=1))
    else:
        typer.echo(outcome.line)
        if outcome.best is not None:
            c = outcome.best.config
            console.print(
                f"  or for every file of the filesystem: gcsfs.GCSFileSystem(block_size="
                f"{c.block_size}) plus cache_type={c.cache_type!r} at each open (gcsfs "
                "has no filesystem-wide cache_type default)"
            )
    for kind, path in outcome.paths.items():
        console.print(f"  {kind:9s} {path}")
    console.print(f"done in {outcome.seconds:.1f} s")
