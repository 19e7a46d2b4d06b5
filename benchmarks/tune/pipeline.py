"""The ``gcs-hook tune`` pipeline: four stage functions, run in order by :func:`run_tune`.

1. :func:`record_stage` (named workloads, when TensorFlow is installed): the workload at
   measurement scale is recorded through the front and checked against its synthesized trace;
   a workload without a synthesizer is also recorded at sweep scale.
2. :func:`sweep_stage`: the bucket's timing profile (:mod:`benchmarks.tune.bucket_timing`:
   ``--timing``, fitted from an upstream recording, or the flags), every configuration of the
   grid priced on the sweep-scale trace (compiled engine, exact or sampled; the model engine for
   traces it does not cover), wall time with the program's lanes where the trace has them, then
   the recommendation (:func:`benchmarks.tune.advice.recommend`).
3. :func:`measure_stage`: a few configurations in real TF through the shaped front.
4. :func:`report_stage`: tables, files, the recommendation line.

The stages share one :class:`TuneJob` (what is tuned, the traces, what each stage found).
Invariants: the fake GCS :func:`run_tune` starts is closed before the report stage runs, even on
errors; nothing is written outside ``opts.out_dir`` (plus temp files).
"""

from __future__ import annotations

import importlib.util
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from benchmarks.sweep import PointResult, run_sweep
from benchmarks.tune.advice import recommend
from benchmarks.tune.bucket_timing import (
    BucketTiming,
    bucket_timing,
    has_lanes,
    sequential_timing,
    wall_results,
)
from benchmarks.tune.inputs import config_grid, same_reads
from benchmarks.tune.options import MEASURE_TIMING, TuneOptions, TuneOutcome
from benchmarks.tune.report import format_bytes, recommendation_line, rich_table, write_report
from benchmarks.workloads import MEASURE_SCALE, SWEEP_SCALE, Workload, get_workload
from benchmarks.workloads.live import LIVE
from emulator.model.cache_config import CacheConfig
from gcs_hook.units import MiB

__all__ = [
    "TuneJob",
    "measure_stage",
    "record_stage",
    "report_stage",
    "run_tune",
    "sweep_stage",
]


@dataclass
class TuneJob:
    """What the stages share: the workload (None for a given trace) at sweep scale and at
    measurement scale, the trace to sweep (None: synthesized by the sweep), and the findings."""

    workload: Workload | None
    measure_w: Workload | None
    trace: Any
    title: str
    epochs: int = 1
    model_check: str = "not run"
    recorded: Any = None
    results: list[PointResult] = field(default_factory=list)
    sampling: dict[str, Any] = field(default_factory=dict)
    best: PointResult | None = None
    note: str = ""
    engine: str = "fast"
    measurements: list[dict[str, Any]] = field(default_factory=list)
    bucket: BucketTiming | None = None
    seconds_model: str = "sequential"


def tune_job(opts: TuneOptions) -> TuneJob:
    """The job ``opts`` asks for: a given trace, or a named workload at its two scales."""
    if opts.trace is not None:
        return TuneJob(None, None, opts.trace, f"trace {opts.trace_name}")
    name = opts.workload or "tfrecord-epochs"
    params = dict(SWEEP_SCALE.get(name, {}))
    params.update(opts.params)
    workload = get_workload(name, **params)
    epochs = workload.epochs
    measure_params = dict(MEASURE_SCALE.get(name, {}))
    measure_w = workload.with_params(**measure_params, bucket=f"tune-{uuid.uuid4().hex[:12]}")
    title = f"{name}: {format_bytes(workload.logical_bytes())} × {epochs} epochs"
    return TuneJob(workload, measure_w, None, title, epochs=epochs)


def run_tune(opts: TuneOptions, console: Any) -> TuneOutcome:
    """Run the whole tune pipeline, printing progress to ``console`` (a rich Console)."""
    t0 = time.monotonic()
    job = tune_job(opts)
    emulator = None
    try:
        emulator = _start_emulator(opts, console, job)
        record_stage(opts, console, job, emulator)
        sweep_stage(opts, console, job)
        measure_stage(opts, console, job, emulator)
    finally:
        if emulator is not None:
            emulator.close()
    return report_stage(opts, console, job, t0)


def _start_emulator(opts: TuneOptions, console: Any, job: TuneJob) -> Any:
    """The fake GCS when the job needs TF (record, measure, sweep a recording) and TF exists."""
    needs_tf = job.workload is not None  # record (model check), measure, or sweep a recording
    if needs_tf and _tf_available():
        from emulator.fakegcs.session import GcsEmulator

        console.print(f"[bold]fake GCS[/bold]: starting ({opts.backend}) …")
        return GcsEmulator(opts.backend)
    if needs_tf:
        console.print("TensorFlow is not installed: no recording, no measured runs "
                      "(pip install 'gcs-hook[tf]')")  # fmt: skip
    return None


def record_stage(opts: TuneOptions, console: Any, job: TuneJob, emulator: Any) -> None:
    """Stage 1: record the measurement-scale workload (model check); record the sweep-scale one
    when it has no synthesizer. Fills ``job.recorded``, ``job.model_check``, ``job.trace``."""
    workload, measure_w = job.workload, job.measure_w
    if workload is not None and emulator is not None and measure_w is not None:
        from benchmarks.record import record_workload

        console.print(
            f"[bold]record[/bold]: {measure_w.name} at "
            f"{format_bytes(measure_w.logical_bytes() or 0)} with real TensorFlow …"
        )
        rec, measure_w = record_workload(measure_w, emulator)
        job.recorded, job.measure_w = rec, measure_w
        n_req = len(rec.requests)
        if measure_w.can_synthesize:
            same = same_reads(rec, measure_w.synthesize())
            job.model_check = (
                f"OK — synthesized reads equal TF's {n_req} recorded requests"
                if same
                else "MISMATCH — synthesized reads differ from TF's recorded requests"
            )
        else:
            job.model_check = f"recorded {n_req} requests (no synthesizer)"
        console.print(f"  model check: {job.model_check} ({rec.seconds:.1f} s)")

    if job.trace is None and workload is not None:
        if workload.can_synthesize:
            pass  # synthesized into columns by the sweep, only the sample if sampled
        else:
            if emulator is None:
                raise RuntimeError(f"workload {workload.name!r} needs TensorFlow to record")
            from benchmarks.record import record_workload

            sweep_w = workload.with_params(bucket=f"tune-{uuid.uuid4().hex[:12]}")
            console.print(f"[bold]record[/bold]: {sweep_w.name} at sweep scale …")
            rec, _ = record_workload(sweep_w, emulator)
            job.trace = dict(rec.trace, config=None)
    if job.trace is None and workload is not None and isinstance(workload, LIVE):
        job.trace = workload.synthesize()  # tail/overwrite ops: the model engine, as a dict


def sweep_stage(opts: TuneOptions, console: Any, job: TuneJob) -> None:
    """Stage 2: the bucket's timing, the sweep over the grid (wall time where the trace has
    lanes), then the recommendation. Fills ``job.bucket``, ``job.results``, ``job.sampling``,
    ``job.engine``, ``job.seconds_model``, ``job.best``, ``job.note``."""
    grid = config_grid(opts)
    job.bucket = bucket_timing(opts.profile, opts.timing, job.trace)
    _print_bucket(console, job.bucket)
    timing = sequential_timing(job.bucket.profile)
    job.results, job.sampling = _sweep(
        opts, console, grid, job.trace, job.workload, job.epochs, timing
    )
    job.engine = str(job.sampling.get("engine", "fast"))
    walled = None
    if has_lanes(job.trace):
        with _progress_bar(console) as bar:
            task = bar.add_task("wall time", total=len(job.results))
            walled = wall_results(
                job.results, job.trace, job.bucket.profile,
                stat_cache_max_age=opts.stat_cache_max_age,
                progress=lambda d, t: bar.update(task, completed=d),
            )  # fmt: skip
    if walled is not None:
        job.results, job.seconds_model = walled, "wall"
        console.print("  seconds: the wall-time model (the trace's lanes run in parallel, "
                      "bodies share the bucket's cap; requests and bytes as swept)")  # fmt: skip
    job.best, job.note = recommend(job.results, opts.memory_budget, allow_stale=opts.allow_stale)
    if job.note:
        console.print(f"  {job.note}")


def measure_stage(opts: TuneOptions, console: Any, job: TuneJob, emulator: Any) -> None:
    """Stage 3: the recommendation, TF's default and a spread of others in real TF through the
    shaped front (not for live workloads). Fills ``job.measurements``."""
    measure_w, results, best = job.measure_w, job.results, job.best
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
        if not measure_w.can_synthesize and job.recorded is not None:
            m_trace = dict(job.recorded.trace, config=None)
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
        job.measurements = [m.as_dict() | {"label": m.label} for m in ms]


def report_stage(opts: TuneOptions, console: Any, job: TuneJob, t0: float) -> TuneOutcome:
    """Stage 4: the report files, the table, the measurements and the line to paste."""
    workload, results, best = job.workload, job.results, job.best
    summary = {
        "workload": workload.name if workload else opts.trace_name,
        "workload_params": workload.params() if workload else None,
        "logical_bytes": workload.logical_bytes() if workload else None,
        "epochs": job.epochs,
        "timing": opts.timing.as_dict(),
        "bucket_timing": job.bucket.as_dict() if job.bucket else None,
        "seconds_model": job.seconds_model,
        "prices": opts.prices.as_dict(),
        "measure_timing": MEASURE_TIMING.as_dict(),
        "model_check": job.model_check,
        "grid": "quick" if opts.quick else "full",
        "stat_cache_max_age": opts.stat_cache_max_age,
        "engine": job.engine,
        "allow_stale": opts.allow_stale,
        "advice": job.note,
        "sampling": job.sampling,
    }
    paths = write_report(
        opts.out_dir,
        results,
        budget=opts.memory_budget,
        title=f"{job.title} — budget {format_bytes(opts.memory_budget)}",
        summary=summary,
        measurements=job.measurements,
        best=best,
        prices=opts.prices,
    )
    console.print(rich_table(results, best=best, budget=opts.memory_budget, prices=opts.prices))
    if job.measurements:
        _print_measurements(console, job.measurements)
    line = recommendation_line(best)
    if opts.stat_cache_max_age not in (None, 5):
        line += f"  # with GCS_STAT_CACHE_MAX_AGE={opts.stat_cache_max_age} set before importing TF"
    return TuneOutcome(
        results,
        best,
        line,
        paths,
        job.measurements,
        job.model_check,
        time.monotonic() - t0,
        sampling=job.sampling,
        note=job.note,
        engine=job.engine,
    )


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


def _print_bucket(console: Any, bucket: BucketTiming) -> None:
    """One line on the profile the seconds use (and the fit's lines when fitted)."""
    p = bucket.profile
    mib = 1024 * 1024
    stream = f"{p.stream_bandwidth_Bps / mib:.1f} MiB/s" if p.stream_bandwidth_Bps else "no limit"
    cap = f"{p.aggregate_bandwidth_Bps / mib:.1f} MiB/s" if p.aggregate_bandwidth_Bps else "none"
    where = {"--timing": "--timing", "fitted": "fitted from the recording",
             "flags": "the --latency-ms/--bandwidth/--overhead-ms flags"}[bucket.source]  # fmt: skip
    console.print(
        f"[bold]timing[/bold] ({where}): first byte median {p.latency_median_s * 1e3:.1f} ms, "
        f"p99 {float(p.latency_p99_s or 0) * 1e3:.1f} ms; stream {stream}; aggregate cap "
        f"{cap}; {p.per_request_overhead_s * 1e3:.1f} ms per request"
    )
    for line in bucket.fit_lines:
        console.print(f"  {line}")


def _sweep(
    opts: TuneOptions,
    console: Any,
    grid: list[CacheConfig],
    trace: dict[str, Any] | None,
    workload: Workload | None,
    epochs: int,
    timing: Any,
) -> tuple[list[PointResult], dict[str, Any]]:
    """The sweep stage: exact or sampled on the compiled engine when it covers the trace
    (a synthesizable workload is synthesized into columns, only its sample when sampled), else
    exact on the model engine. Returns the results and how they were computed."""
    import numpy as np

    from benchmarks.sweep import fast_engine_covers
    from benchmarks.sweep.sampling import run_sampled_sweep, summary, workload_sweep_inputs
    from emulator.replay.columnar import READ, ColumnarTrace, from_dict

    common = {"timing": timing, "epochs": epochs,
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
