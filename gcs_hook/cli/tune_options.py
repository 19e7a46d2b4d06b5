"""``gcs-hook tune``'s options parsed in one step: :class:`TuneArgs` (the raw values typer gives,
one field per option of :func:`gcs_hook.cli.tune_cmd.tune`) → :meth:`TuneArgs.parse` →
:class:`benchmarks.tune.TuneOptions` (typed: sizes in bytes, configs as
:class:`~emulator.model.cache_config.CacheConfig`, a :class:`~benchmarks.sweep.timing.GcsTiming`,
a loaded trace).

Invariant: :meth:`TuneArgs.parse` either returns options the pipeline can run or exits with the
one-line ``gcs-hook: error: …`` (exit 2) for the first bad option, in the order of the checks in
:meth:`TuneArgs.parse`, before anything is started or written. Imported only when ``tune`` runs
(it loads the benchmarks).
"""

from __future__ import annotations

import importlib.util
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from benchmarks.sweep.parallel import max_workers
from benchmarks.sweep.timing import DEFAULT_TIMING, GcsTiming
from benchmarks.tune import TuneOptions
from benchmarks.workloads import SWEEP_SCALE, WORKLOADS, check_scale, get_workload
from emulator.model.cache_config import CacheConfig
from gcs_hook.cli.backend_check import check_backend
from gcs_hook.cli.errors import fail
from gcs_hook.cli.values import (
    deprecated_rate_mbps,
    option,
    parse_cache_size,
    parse_duration,
    parse_rate,
    parse_size,
)
from gcs_hook.units import MiB

__all__ = ["MIN_MEMORY_BUDGET", "TuneArgs", "parse_configs"]

#: The smallest memory budget tune accepts: one block of the smallest size the grid considers.
MIN_MEMORY_BUDGET = MiB


def parse_configs(text: str) -> list[CacheConfig]:
    """``'1MiB/4MiB/0,8MiB/32MiB/0,off'`` → CacheConfigs (block_size/max_bytes[/max_staleness];
    sizes and durations as :mod:`gcs_hook.cli.values` reads them, e.g. ``8MiB/32MiB/30s``;
    ``off`` = cache off). ValueError naming the bad item."""
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
        problem = check_scale(get_workload(workload, **_sweep_params(workload, out)))
        if problem:
            fail(f"--param: {problem}")
    return out


def _sweep_params(workload: str, params: dict[str, Any]) -> dict[str, Any]:
    return {**SWEEP_SCALE.get(workload, {}), **params}


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
    latency_ms: str | None,
    overhead_ms: str | None,
    bandwidth: str | None,
    bandwidth_mibps: float | None,
) -> GcsTiming:
    """The :class:`GcsTiming` the flags ask for (None: :data:`DEFAULT_TIMING`'s value); a bad
    value is the one-line error."""
    d = DEFAULT_TIMING
    latency_s = d.first_byte_latency_s if latency_ms is None else option(
        "--latency-ms", parse_duration, latency_ms, unit="ms", context="bad timing"
    )  # fmt: skip
    overhead_s = d.per_request_overhead_s if overhead_ms is None else option(
        "--overhead-ms", parse_duration, overhead_ms, unit="ms", context="bad timing"
    )  # fmt: skip
    rate = d.bandwidth_bytes_per_s if bandwidth is None else option(
        "--bandwidth", parse_rate, bandwidth, context="bad timing"
    )  # fmt: skip
    if bandwidth_mibps is not None:
        rate = deprecated_rate_mbps(bandwidth_mibps * 1.048576, context="bad timing")
    if rate is None:  # 0 = no limit, as in serve and the README: bytes cost no time
        rate = math.inf
    try:
        return GcsTiming(latency_s, rate, overhead_s)
    except ValueError as exc:
        fail(f"bad timing: {exc}")


@dataclass(frozen=True)
class TuneArgs:
    """The ``tune`` options as typer gives them (strings, flags, None for not given)."""

    workload: str | None
    memory_budget: str
    backend: str
    out: str
    quick: bool
    param: list[str] | None
    latency_ms: str | None
    bandwidth: str | None
    bandwidth_mibps: float | None
    overhead_ms: str | None
    timing_file: str | None
    prices_file: str | None
    no_measure: bool
    workers: int | None
    scheduler: str | None
    stat_cache_max_age: int | None
    configs: str | None
    with_grid: bool
    json_out: bool
    allow_stale: bool
    exact: bool
    sample_rate: float | None

    def parse(self) -> TuneOptions:
        """All options checked and converted, in one step (see the module docstring)."""
        budget = option(
            "--memory-budget", parse_size, self.memory_budget, minimum=MIN_MEMORY_BUDGET
        )
        _check_out_dir(self.out)
        configs = None
        if self.configs is not None:
            try:
                configs = parse_configs(self.configs)
            except ValueError as exc:
                fail(str(exc))
        elif self.with_grid:
            fail("--with-grid goes with --configs (the grid is the default without it)")
        source = self._source()
        timing = _timing_from_flags(
            self.latency_ms, self.overhead_ms, self.bandwidth, self.bandwidth_mibps
        )
        profile, prices = self._profile(), self._prices()
        workers = self._workers()
        self._check_sweep_options()
        trace = source.get("trace")
        if trace is None:
            check_backend(self.backend)
        return TuneOptions(
            **source,
            memory_budget=budget,
            backend=self.backend,
            out_dir=self.out,
            quick=self.quick,
            timing=timing,
            profile=profile,
            prices=prices,
            measure=not self.no_measure and trace is None,
            workers=workers,
            scheduler=self.scheduler,
            stat_cache_max_age=self.stat_cache_max_age,
            configs=configs,
            with_grid=self.with_grid,
            allow_stale=self.allow_stale,
            exact=self.exact,
            sample_rate=self.sample_rate,
        )

    def _source(self) -> dict[str, Any]:
        """What is tuned: ``trace`` + ``trace_name`` for a trace file, else ``workload`` +
        ``params``."""
        workload = self.workload
        if workload is not None and (workload.endswith((".json", ".npz")) or os.sep in workload):
            path = Path(workload)
            if not path.is_file():
                fail(f"trace file {workload} does not exist")
            trace = _load_trace(path, workload)
            if self.param:
                fail("--param applies to named workloads, not to a TRACE.json")
            return {"trace": trace, "trace_name": path.name}
        name = workload or "tfrecord-epochs"
        if name not in WORKLOADS:
            fail(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)} (or a TRACE.json)")
        params = _parse_params(self.param or [], name)
        if not WORKLOADS[name].can_synthesize and importlib.util.find_spec("tensorflow") is None:
            fail(f"workload {name!r} is recorded with TensorFlow: pip install 'gcs-hook[tf]'")
        return {"workload": name, "params": params}

    def _profile(self) -> Any:
        return profile_file(self.timing_file, self.latency_ms, self.bandwidth,
                            self.bandwidth_mibps, self.overhead_ms)  # fmt: skip

    def _prices(self) -> Any:
        return prices_file(self.prices_file)

    def _workers(self) -> int | None:
        workers = self.workers
        if workers is not None and workers < 1:
            fail(f"--workers must be >= 1, got {workers}")
        if workers is not None and workers > max_workers():
            typer.echo(
                f"gcs-hook: note: --workers {workers} capped at the {max_workers()} cores",
                err=True,
            )
            workers = max_workers()
        return workers

    def _check_sweep_options(self) -> None:
        sample_rate = self.sample_rate
        if sample_rate is not None and not (0 < sample_rate <= 1):
            fail(f"--sample-rate must be in (0, 1], got {sample_rate}")
        if self.exact and sample_rate is not None:
            fail("--exact and --sample-rate exclude each other")
        if self.scheduler and importlib.util.find_spec("distributed") is None:
            fail("--scheduler needs dask.distributed (pip install 'dask[distributed]')")
        if self.stat_cache_max_age is not None and self.stat_cache_max_age < 0:
            fail(f"--stat-cache-max-age must be >= 0 seconds, got {self.stat_cache_max_age}")


#: the largest --timing / --prices file read (both are a few hundred bytes)
_MAX_SMALL_JSON = 1 << 20


def _load_json_file(flag: str, path: str, kind: str) -> Any:
    """A :class:`TimingProfile` or :class:`PriceTable` from ``path``; a missing, huge, special
    or malformed file is the one-line error."""
    from benchmarks.sweep.cost import PriceTable
    from emulator.fakegcs.profile import TimingProfile

    p = Path(path)
    if not p.exists():
        fail(f"{flag} {path}: no such file")
    if not p.is_file():
        fail(f"{flag} {path}: not a regular file")
    if p.stat().st_size > _MAX_SMALL_JSON:
        fail(f"{flag} {path}: larger than {_MAX_SMALL_JSON >> 20} MiB (not a {kind} file)")
    cls = TimingProfile if kind == "TimingProfile" else PriceTable
    try:
        return cls.load(p)
    except (ValueError, TypeError) as exc:
        fail(f"{flag} {path}: {str(exc).splitlines()[0] if str(exc) else exc}")


def _load_trace(path: Path, shown: str) -> Any:
    """A TRACE.json (what replay accepts: a trace or a fault case, its injected errors not
    swept) or a columnar TRACE.npz (docs/trace-format.md), read by the one trace reader (every
    column and limit checked); a bad one is the one-line error."""
    from emulator.replay.reader import TraceError, read_trace_file

    try:
        loaded = read_trace_file(path)
    except TraceError as exc:
        fail(f"{shown} is not a valid trace: {exc}")
    if isinstance(loaded, dict):  # a fault case's injected errors are not swept
        loaded.pop("faults", None)
    if path.suffix == ".json":  # a trace of gcsfs reads only is tune --client gcsfs's
        from gcs_hook.cli.tune_gcsfs_cmd import check_tf_trace

        check_tf_trace(str(path), loaded)
    return loaded


def profile_file(
    timing_file: str | None, latency_ms: Any, bandwidth: Any, bandwidth_mibps: Any,
    overhead_ms: Any,
) -> Any:  # fmt: skip
    """``--timing``: the loaded profile (None: not given); it replaces the timing flags, so
    giving both is the one-line error."""
    if timing_file is None:
        return None
    given = [name for name, v in (("--latency-ms", latency_ms), ("--bandwidth", bandwidth),
             ("--bandwidth-mibps", bandwidth_mibps), ("--overhead-ms", overhead_ms))
             if v is not None]  # fmt: skip
    if given:
        fail(f"--timing gives the bucket's latency and bandwidth: drop {', '.join(given)}")
    return _load_json_file("--timing", timing_file, "TimingProfile")


def prices_file(path: str | None) -> Any:
    """``--prices``: the loaded price table (default: GCS list prices)."""
    if path is None:
        from benchmarks.sweep.cost import DEFAULT_PRICES

        return DEFAULT_PRICES
    return _load_json_file("--prices", path, "PriceTable")


def _gcsfs_timing(a: dict[str, Any]) -> Any:
    """gcsfs's seconds: ``--timing PROFILE`` (one request alone under it: gcsfs's reads are
    priced one after another), else the timing flags."""
    flags = (a["latency_ms"], a["bandwidth"], a["bandwidth_mibps"], a["overhead_ms"])
    profile = profile_file(a["timing_file"], *flags)
    if profile is None:
        return _timing_from_flags(
            a["latency_ms"], a["overhead_ms"], a["bandwidth"], a["bandwidth_mibps"]
        )
    from benchmarks.tune.bucket_timing import sequential_timing

    return sequential_timing(profile)


def tune_other_client(client: str, given: dict[str, Any]) -> None:
    """``tune --client gcsfs`` (or a ``gcsfs-*`` workload): ``given`` are the :class:`TuneArgs`
    fields as typer gave them; the pipeline and its checks are :mod:`gcs_hook.cli.tune_gcsfs_cmd`'s."""
    from gcs_hook.cli import tune_gcsfs_cmd

    a = given
    budget = option("--memory-budget", parse_size, a["memory_budget"], minimum=MIN_MEMORY_BUDGET)
    _check_out_dir(a["out"])
    if client not in tune_gcsfs_cmd.CLIENTS:
        fail(f"--client must be one of {', '.join(tune_gcsfs_cmd.CLIENTS)}, got {client!r}")
    if not (a["workload"] or "").endswith(".json"):
        check_backend(a["backend"])  # a built-in gcsfs job is recorded on the fake
    tune_gcsfs_cmd.run(
        workload=a["workload"], budget=budget, out=a["out"], quick=a["quick"],
        configs=a["configs"], with_grid=a["with_grid"], json_out=a["json_out"],
        measure=not a["no_measure"], backend=a["backend"],
        timing=_gcsfs_timing(a), prices=prices_file(a["prices_file"]),
        tf_only={"--param": bool(a["param"]), "--allow-stale": a["allow_stale"],
                 "--stat-cache-max-age": a["stat_cache_max_age"] is not None,
                 "--exact": a["exact"], "--sample-rate": a["sample_rate"] is not None,
                 "--workers": a["workers"] is not None, "--scheduler": bool(a["scheduler"])},
    )  # fmt: skip
