"""``gcs-hook tune``: record → sweep → measure → report, for one workload.

Stages (each printed as it runs):

1. **Record** (named workloads, when TensorFlow is installed): the workload at measurement
   scale (:data:`~benchmarks.workloads.MEASURE_SCALE`, a few MiB) is written to the fake GCS and
   read by real TF through the front (:mod:`benchmarks.record`). For workloads with a
   synthesizer the recorded reads are compared with the synthesized ones ("model check").
2. **Sweep**: the workload at sweep scale (:data:`~benchmarks.workloads.SWEEP_SCALE` + user
   ``--param``s; 1 GiB by default) is synthesized (or recorded, for checkpoint-restore) and every
   grid configuration is simulated in the size-only model on all local cores
   (:mod:`benchmarks.sweep`); a ``TRACE.json`` is swept as given.
3. **Measure**: the recommendation, TF's default (cache off) and one or three others run in real
   TF through the front with traffic shaping (:mod:`benchmarks.tune.measure`), each also unshaped for
   this machine's own cost.
4. **Report** (:mod:`benchmarks.tune.report`): table, CSV/JSON, PNGs, the line to paste.

Invariants: everything this module starts (fake GCS, front, TF workers) is stopped before
:func:`run_tune` returns or raises; nothing is written outside ``out_dir`` (plus temp files).
"""

from __future__ import annotations

import importlib.util
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from benchmarks.sweep import (
    CacheConfig,
    PointResult,
    run_sweep,
)
from benchmarks.sweep.timing import DEFAULT_TIMING, GcsTiming
from benchmarks.tune.advice import recommend
from benchmarks.tune.inputs import _choose_engine, _grid, _read_ops, _same_reads  # noqa: F401
from benchmarks.tune.report import format_bytes, recommendation_line, rich_table, write_report
from benchmarks.workloads import MEASURE_SCALE, SWEEP_SCALE, Workload, get_workload
from benchmarks.workloads.live import LIVE

__all__ = ["MEASURE_TIMING", "TuneOptions", "TuneOutcome", "run_tune"]

MiB = 1024 * 1024
#: Shaping for measured runs: large enough that this machine's own per-request cost (a new
#: CONNECT + TLS handshake through the Python front for each TF request, ~5-20 ms on 2 busy
#: cores) is small next to it.
MEASURE_TIMING = GcsTiming(first_byte_latency_s=0.08, bandwidth_bytes_per_s=8 * MiB,
                           per_request_overhead_s=0.0)  # fmt: skip


@dataclass
class TuneOptions:
    workload: str | None = None  # name; None → tfrecord-epochs
    trace: Any = (
        None  # a loaded TRACE.json (dict) or TRACE.npz (ColumnarTrace) instead of a workload
    )
    trace_name: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    memory_budget: int = 2 * 1024 * MiB
    backend: str = "embedded"
    out_dir: str = "tune-out"
    quick: bool = False
    timing: GcsTiming = DEFAULT_TIMING
    measure: bool = True
    workers: int | None = None
    scheduler: str | None = None
    stat_cache_max_age: int | None = None  # GCS_STAT_CACHE_MAX_AGE; None: trace's or TF's 5 s
    configs: list[CacheConfig] | None = None  # --configs: exactly these (plus the grid if asked)
    with_grid: bool = False  # --configs and the default grid
    allow_stale: bool = False  # the recommendation may read stale/torn data
    exact: bool = False  # never sample (benchmarks.sweep.sampling)
    sample_rate: float | None = None  # None: chosen for the time target
    sweep_time_target_s: float = 20.0


@dataclass
class TuneOutcome:
    results: list[PointResult]
    best: PointResult | None
    line: str
    paths: dict[str, str]
    measurements: list[dict[str, Any]]
    model_check: str
    seconds: float
    sampling: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    engine: str = "fast"


def _tf_available() -> bool:
    return importlib.util.find_spec("tensorflow") is not None


def _pick_measured(results: list[PointResult], best: PointResult | None, n: int) -> list:
    """The best, TF's default, then configurations spread over the predicted range."""
    chosen: list[CacheConfig] = []
    if best is not None:
        chosen.append(best.config)
    off = CacheConfig(0, 0, 0)
    if off not in chosen:
        chosen.append(off)
    rest = sorted(
        (r for r in results if r.config.cache_on and r.config.max_staleness == 0),
        key=lambda r: r.predicted_s,
    )
    # tiny caches (max_bytes of a few blocks) thrash and run long in real TF: not measured
    rest = [
        r
        for r in rest
        if r.config not in chosen
        and r.config.block_size >= 256 * 1024
        and r.config.max_bytes >= 16 * MiB
    ]
    if rest:
        step = max(1, len(rest) // max(1, n - len(chosen)))
        for r in rest[::-1][::step]:  # from the slowest: maximal spread
            if len(chosen) >= n:
                break
            chosen.append(r.config)
    return chosen[:n]


def _progress_bar(console: Any) -> Any:
    """The rich progress bar of one pipeline stage (description, bar, done/total, elapsed)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def run_tune(opts: TuneOptions, console: Any) -> TuneOutcome:
    """Run the whole tune pipeline, printing progress to ``console`` (a rich Console)."""

    t0 = time.monotonic()
    workload: Workload | None = None
    measure_w: Workload | None = None
    epochs = 1
    model_check = "not run"
    if opts.trace is not None:
        trace = opts.trace
        title = f"trace {opts.trace_name}"
    else:
        name = opts.workload or "tfrecord-epochs"
        params = dict(SWEEP_SCALE.get(name, {}))
        params.update(opts.params)
        workload = get_workload(name, **params)
        epochs = workload.epochs
        measure_params = dict(MEASURE_SCALE.get(name, {}))
        measure_w = workload.with_params(**measure_params, bucket=f"tune-{uuid.uuid4().hex[:12]}")
        title = f"{name}: {format_bytes(workload.logical_bytes())} × {epochs} epochs"
        trace = None

    emulator = None
    measurements: list[dict[str, Any]] = []
    try:
        needs_tf = workload is not None  # record (model check), measure, or sweep a recording
        if needs_tf and _tf_available():
            from emulator.fakegcs.session import GcsEmulator

            console.print(f"[bold]fake GCS[/bold]: starting ({opts.backend}) …")
            emulator = GcsEmulator(opts.backend)
        elif needs_tf:
            console.print("TensorFlow is not installed: no recording, no measured runs "
                          "(pip install 'gcs-hook[tf]')")  # fmt: skip

        recorded = None
        if workload is not None and emulator is not None and measure_w is not None:
            from benchmarks.record import record_workload

            console.print(
                f"[bold]record[/bold]: {measure_w.name} at "
                f"{format_bytes(measure_w.logical_bytes() or 0)} with real TensorFlow …"
            )
            rec, measure_w = record_workload(measure_w, emulator)
            recorded = rec
            n_req = len(rec.requests)
            if measure_w.can_synthesize:
                same = _same_reads(rec, measure_w.synthesize())
                model_check = (
                    f"OK — synthesized reads equal TF's {n_req} recorded requests"
                    if same
                    else "MISMATCH — synthesized reads differ from TF's recorded requests"
                )
            else:
                model_check = f"recorded {n_req} requests (no synthesizer)"
            console.print(f"  model check: {model_check} ({rec.seconds:.1f} s)")

        if trace is None and workload is not None:
            if workload.can_synthesize:
                pass  # synthesized into columns by the sweep, only the sample if sampled
            else:
                if emulator is None:
                    raise RuntimeError(f"workload {workload.name!r} needs TensorFlow to record")
                from benchmarks.record import record_workload

                sweep_w = workload.with_params(bucket=f"tune-{uuid.uuid4().hex[:12]}")
                console.print(f"[bold]record[/bold]: {sweep_w.name} at sweep scale …")
                rec, _ = record_workload(sweep_w, emulator)
                trace = dict(rec.trace, config=None)
        if trace is None and workload is not None and isinstance(workload, LIVE):
            trace = workload.synthesize()  # tail/overwrite ops: the model engine, as a dict
        grid = _grid(opts)
        results, sampling = _sweep(opts, console, grid, trace, workload, epochs)
        engine = str(sampling.get("engine", "fast"))
        best, note = recommend(results, opts.memory_budget, allow_stale=opts.allow_stale)
        if note:
            console.print(f"  {note}")

        if measure_w is not None and isinstance(measure_w, LIVE) and opts.measure:
            console.print("[bold]measure[/bold]: not for live workloads (their trainer runs "
                          "beside the reader); tests/tune/test_live_workloads.py compares them "
                          "with real TF")  # fmt: skip
        elif opts.measure and emulator is not None and measure_w is not None:
            from benchmarks.tune.measure import measure_configs

            configs = _pick_measured(results, best, 3 if opts.quick else 5)
            console.print(
                f"[bold]measure[/bold]: {len(configs)} configurations in real TF, shaped "
                f"{MEASURE_TIMING.first_byte_latency_s * 1000:.0f} ms + "
                f"{MEASURE_TIMING.bandwidth_bytes_per_s / MiB:.0f} MiB/s …"
            )
            m_trace = None
            if not measure_w.can_synthesize and recorded is not None:
                m_trace = dict(recorded.trace, config=None)
            with _progress_bar(console) as bar:
                task = bar.add_task("measure", total=len(configs))
                ms = measure_configs(
                    measure_w,
                    configs,
                    emulator,
                    MEASURE_TIMING,
                    trace=m_trace,
                    upload=False,
                    repeats=1 if opts.quick else 2,
                    stat_cache_max_age=5
                    if opts.stat_cache_max_age is None
                    else opts.stat_cache_max_age,
                    progress=lambda done, total: bar.update(task, completed=done),
                )
            measurements = [m.as_dict() | {"label": m.label} for m in ms]
    finally:
        if emulator is not None:
            emulator.close()

    summary = {
        "workload": workload.name if workload else opts.trace_name,
        "workload_params": workload.params() if workload else None,
        "logical_bytes": workload.logical_bytes() if workload else None,
        "epochs": epochs,
        "timing": opts.timing.as_dict(),
        "measure_timing": MEASURE_TIMING.as_dict(),
        "model_check": model_check,
        "grid": "quick" if opts.quick else "full",
        "stat_cache_max_age": opts.stat_cache_max_age,
        "engine": engine,
        "allow_stale": opts.allow_stale,
        "advice": note,
        "sampling": sampling,
    }
    paths = write_report(
        opts.out_dir,
        results,
        budget=opts.memory_budget,
        title=f"{title} — budget {format_bytes(opts.memory_budget)}",
        summary=summary,
        measurements=measurements,
        best=best,
    )
    console.print(rich_table(results, best=best, budget=opts.memory_budget))
    if measurements:
        _print_measurements(console, measurements)
    line = recommendation_line(best)
    if opts.stat_cache_max_age not in (None, 5):
        line += f"  # with GCS_STAT_CACHE_MAX_AGE={opts.stat_cache_max_age} set before importing TF"
    return TuneOutcome(
        results,
        best,
        line,
        paths,
        measurements,
        model_check,
        time.monotonic() - t0,
        sampling=sampling,
        note=note,
        engine=engine,
    )


def _sweep(
    opts: TuneOptions,
    console: Any,
    grid: list[CacheConfig],
    trace: dict[str, Any] | None,
    workload: Workload | None,
    epochs: int,
) -> tuple[list[PointResult], dict[str, Any]]:
    """The sweep stage: exact or sampled on the compiled engine when it covers the trace
    (a synthesizable workload is synthesized into columns, only its sample when sampled), else
    exact on the model engine. Returns the results and how they were computed."""
    import numpy as np

    from benchmarks.sweep import fast_engine_covers
    from benchmarks.sweep.sampling import run_sampled_sweep, summary, workload_sweep_inputs
    from emulator.replay.columnar import READ, ColumnarTrace, from_dict

    common = {"timing": opts.timing, "epochs": epochs,
              "stat_cache_max_age": opts.stat_cache_max_age, "workers": opts.workers,
              "scheduler": opts.scheduler}  # fmt: skip
    if trace is not None and not fast_engine_covers(trace):
        console.print(
            f"[bold]sweep[/bold]: {len(grid)} configurations × {len(trace['ops']):,} ops "
            "(model engine: the trace has ops the fast engine does not cover; exact) …"
        )
        with _progress_bar(console) as bar:
            task = bar.add_task("sweep", total=len(grid))
            results = run_sweep(trace, grid, engine="model", **common,
                                progress=lambda d, t: bar.update(task, completed=d))  # fmt: skip
        return results, {"exact": True, "engine": "model", "sample_rate": 1.0}
    if trace is None:
        assert workload is not None
        inputs = workload_sweep_inputs(workload)
    else:
        ct = trace if isinstance(trace, ColumnarTrace) else from_dict(trace)
        reads = ct.kind == READ
        weights = np.bincount(ct.obj[reads], minlength=len(ct.names))
        inputs = {"columns_for": lambda keep: ct if keep is None else ct.select_objects(keep),
                  "names": ct.names, "weights": weights, "total_reads": int(reads.sum())}  # fmt: skip
    console.print(
        f"[bold]sweep[/bold]: {len(grid)} configurations × {inputs['total_reads']:,} reads "
        "(compiled engine, size-only) …"
    )
    with _progress_bar(console) as bar:
        task = bar.add_task("sweep", total=len(grid))
        sweep = run_sampled_sweep(
            configs=grid, exact=opts.exact, rate=opts.sample_rate,
            time_target_s=opts.sweep_time_target_s, **inputs, **common,
            progress=lambda d, t: bar.update(task, completed=d * len(grid) // max(1, t)),
        )  # fmt: skip
    info = dict(summary(sweep), engine="compiled")
    info["error_estimates"] = [round(e, 6) for e in sweep.errors]
    if sweep.exact:
        console.print("  exact: every read simulated (R = 1)")
    else:
        console.print(
            f"  sampled: R = {sweep.rate:g} ({sweep.sampled_reads:,} of "
            f"{sweep.total_reads:,} reads), error estimate ~{sweep.max_error:.2%} "
            "on requests and bytes (an estimate, not a bound; --exact to simulate every read)"
        )
    return sweep.results, info


def _print_measurements(console: Any, measurements: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(title="Predicted vs measured seconds (real TF, shaped front)")
    for col in ("config", "req p/m", "model", "local", "pred", "meas", "error"):
        table.add_column(col, justify="right")
    for m in measurements:
        table.add_row(
            m["label"],
            f"{m['predicted_requests']}/{m['measured_requests']}",
            f"{m['predicted_s']:.2f}",
            f"{m['baseline_s']:.2f}",
            f"{m['calibrated_s']:.2f}",
            f"{m['measured_s']:.2f}",
            f"{m['error_pct']:+.1f}%",
        )
    console.print(table)
