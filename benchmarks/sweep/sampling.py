"""Sampled sweeps: spatial sampling of the objects and miniature caches, with an error estimate.

After SHARDS (Waldspurger et al., FAST '15) and miniature simulation (Waldspurger et al.,
USENIX ATC '17), adapted to a block cache that is shared by files:

- **Units.** Objects are sampled in units: one object, or for the built-in interleave workload
  a group of ``cycle_length`` consecutive shards (the shards ``InterleaveDataset`` reads at the
  same time; sampling them together keeps the competition for the cache between them).
- **Sample.** A unit is kept when ``hash(unit) / 2**64 < R`` (BLAKE2b of its first object's
  name: deterministic, independent of the order of the objects). Its ops are kept in trace
  order; the ops of the other units are never synthesized.
- **Miniature.** Each config runs on the sample with ``max_bytes`` scaled by the effective rate
  ``R_eff`` (the sampled share of the units' weight: reads, or bytes when the full trace is not
  built) but never below ``min(max_bytes, 2 * block_size * objects per unit)`` (the blocks a
  unit's reads hold at once; without this floor a miniature cache smaller than one block would
  evict what the full cache keeps).
- **Time.** Within a file, requests take their own time, as in the full trace. Each open of
  the sample records how many opens were left out before it (``n`` of the open op); the engine
  advances the clock by that many mean open-to-open periods of the run so far, so the stat
  cache age and ``max_staleness`` see about the time the left-out files would have taken.
- **Scale back.** Requests and bytes are divided by ``R_eff`` (a ratio estimator); the clock is
  already full scale.
- **Error estimate**, per config and metric (requests, bytes), the larger of
  (a) twice the standard error of the ratio estimator over the sampled units (Bernoulli
  sampling: ``Var = (1-R)/R² · Σ (y_u - ρ w_u)²``), and (b) the difference between the
  estimate at ``R`` and at ``R/2`` (the nested half sample), which shows the bias of a
  miniature too small for the config (it grows as R shrinks). With fewer than
  :data:`MIN_RELIABLE_UNITS` sampled units every estimate is 100 %: too few to say.
- **Choosing R.** ``R = 1`` (exact) when the exact sweep fits the time target at the engine's
  measured speed; else the largest R that fits, but at least enough for
  :data:`MIN_SAMPLED_UNITS` units. Workloads with fewer units than that are always exact.

Invariants: with ``R = 1`` the results are the exact sweep's; every sampled result carries its
``rate`` and ``error`` (see :class:`SampledSweep`).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from benchmarks.sweep.grid import PointResult
from benchmarks.sweep.parallel import Task, TaskOut, execute, max_workers, spilled
from benchmarks.sweep.timing import DEFAULT_TIMING, GcsTiming
from emulator.model.cache_config import CacheConfig
from emulator.replay.columnar import READ, ColumnarTrace
from gcs_hook.tf_defaults import TF_STAT_CACHE_MAX_AGE

__all__ = [
    "ENGINE_READS_PER_S",
    "MIN_RELIABLE_UNITS",
    "MIN_SAMPLED_UNITS",
    "SampledSweep",
    "choose_rate",
    "run_sampled_sweep",
    "summary",
    "unit_hashes",
    "workload_sweep_inputs",
]

#: Reads per second per worker of the compiled engine assumed when choosing R (measured on the
#: 2-core reference machine over the default grid; conservative).
ENGINE_READS_PER_S = 8e6
#: A sample holds at least this many units (else the sweep is exact).
MIN_SAMPLED_UNITS = 256
#: With fewer sampled units than this (or half as many in the half sample) every error
#: estimate is reported as 100 %: the sample is too small to say.
MIN_RELIABLE_UNITS = 16
#: The sweep stage's default time target, seconds.
DEFAULT_TIME_TARGET_S = 20.0


@dataclass(frozen=True)
class SampledSweep:
    """Results (scaled back to the full trace), the rate and the error estimate."""

    results: list[PointResult]
    rate: float  # the nominal R (1.0 = exact)
    effective_rate: float  # R_eff: the sampled share of the weight
    errors: list[float]  # per config: estimated relative error (max over requests, bytes)
    sampled_reads: int
    total_reads: int
    seconds: float

    @property
    def exact(self) -> bool:
        return self.rate >= 1.0

    @property
    def max_error(self) -> float:
        return max(self.errors, default=0.0)


def unit_hashes(first_names: Sequence[str]) -> np.ndarray:
    """Per unit, a uniform number in [0, 1) from BLAKE2b of its first object's name."""
    out = np.empty(len(first_names), np.float64)
    for i, name in enumerate(first_names):
        digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "little") / 2.0**64
    return out


def choose_rate(
    total_reads: int,
    n_configs: int,
    n_units: int,
    *,
    time_target_s: float = DEFAULT_TIME_TARGET_S,
    workers: int | None = None,
) -> float:
    """The sampling rate R for a sweep of ``n_configs`` over ``total_reads`` reads (1.0 = exact):
    the largest that fits ``time_target_s`` (the sample is run twice: R and R/2 → 1.5 × R)."""
    workers = workers or max_workers()
    exact_s = total_reads * n_configs / (ENGINE_READS_PER_S * workers)
    if exact_s <= time_target_s or n_units <= MIN_SAMPLED_UNITS:
        return 1.0
    rate = time_target_s / (1.5 * exact_s)
    rate = max(rate, MIN_SAMPLED_UNITS / n_units)
    if rate >= 0.5:
        return 1.0
    return float(2.0 ** math.floor(math.log2(rate)))  # powers of two: nested, comparable


#: Below this many read-steps (reads × configs) a sweep runs in this process: starting worker
#: processes (and loading the compiled engine in each) costs more than it saves.
IN_PROCESS_READ_STEPS = 50_000_000


def _workers_for(read_steps: int, workers: int | None) -> int | None:
    return 1 if read_steps < IN_PROCESS_READ_STEPS else workers


def _miniature(
    config: CacheConfig, r_eff: float, objects_per_unit: int, object_size: int, sample_bytes: int
) -> CacheConfig:
    """``config`` with ``max_bytes`` scaled by ``r_eff``, but at least four blocks (no larger
    than an object) per object of a unit — and never a quarter of the sample's bytes or more,
    which would let the miniature keep what the full cache cannot."""
    if not config.cache_on or r_eff >= 1.0:
        return config
    block = min(config.block_size, max(1, object_size))
    floor = min(
        config.max_bytes,
        4 * block * objects_per_unit,
        max(sample_bytes // 4, block * objects_per_unit),
    )
    return replace(config, max_bytes=max(floor, int(round(config.max_bytes * r_eff))))


def _estimate(
    out: TaskOut, r_eff: float, rate: float, w_total: float, w_sample: float, w2: float
) -> tuple[float, float, float, float]:
    """(requests, bytes) scaled back and their relative standard errors."""
    res = out.result
    est = []
    for metric, y_total in enumerate((res.requests, res.bytes_fetched)):
        value = y_total / r_eff
        se = 0.0
        if out.unit_sums is not None and rate < 1.0 and value > 0:
            sy, syy, syw = out.unit_sums[metric]
            rho = sy / w_sample if w_sample else 0.0
            sum_e2 = max(0.0, syy - 2 * rho * syw + rho * rho * w2)
            se = math.sqrt((1 - rate) / (rate * rate) * sum_e2) / value
        est += [value, se]
    return est[0], est[2], est[1], est[3]


def _scaled(out: TaskOut, config: CacheConfig, r_eff: float, req: float, nbytes: float):
    res = out.result
    media_share = res.media_requests / res.requests if res.requests else 0.0
    requests = int(round(req))
    media = int(round(req * media_share))
    return PointResult(
        config=config,
        requests=requests,
        media_requests=media,
        metadata_requests=requests - media,
        bytes_fetched=int(round(nbytes)),
        predicted_s=res.predicted_s,
        epochs=res.epochs,
        peak_cache_bytes=min(config.max_bytes, int(res.peak_cache_bytes / r_eff)),
    )


def run_sampled_sweep(
    columns_for: Callable[[np.ndarray | None], ColumnarTrace],
    names: Sequence[str],
    configs: Sequence[CacheConfig],
    *,
    unit_size: int = 1,
    weights: np.ndarray | None = None,
    total_reads: int | None = None,
    rate: float | None = None,
    exact: bool = False,
    time_target_s: float = DEFAULT_TIME_TARGET_S,
    timing: GcsTiming = DEFAULT_TIMING,
    epochs: int = 1,
    stat_cache_max_age: int | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SampledSweep:
    """Sweep ``configs`` over the trace ``columns_for(keep)`` builds for a bool mask over
    ``names`` (None = all objects), sampled at ``rate`` (None: chosen for ``time_target_s``;
    ``exact`` forces 1). ``weights``: per object (reads, or bytes); ``total_reads``: of the full
    trace, for choosing R (default: the sum of ``weights``)."""
    t0 = time.monotonic()
    configs = list(configs)
    n_obj = len(names)
    unit_size = max(1, int(unit_size))
    unit_of = np.arange(n_obj, dtype=np.int64) // unit_size
    n_units = int(unit_of[-1]) + 1 if n_obj else 0
    w_obj = np.ones(n_obj) if weights is None else np.asarray(weights, np.float64)
    w_unit = np.bincount(unit_of, weights=w_obj, minlength=n_units)
    if total_reads is None:
        total_reads = int(w_obj.sum())
    if exact:
        rate = 1.0
    elif rate is None:
        rate = choose_rate(total_reads, len(configs), n_units, time_target_s=time_target_s,
                           workers=workers)  # fmt: skip
    rate = min(1.0, max(0.0, float(rate)))
    kw = {"timing": timing, "epochs": epochs,
          "stat_cache_max_age": TF_STAT_CACHE_MAX_AGE if stat_cache_max_age is None
          else stat_cache_max_age}  # fmt: skip
    if rate >= 1.0:
        ct = columns_for(None)
        workers = _workers_for(ct.n_reads * len(configs), workers)
        with spilled(ct, workers, scheduler) as ct:
            outs = execute({"full": ct}, [Task("full", c) for c in configs], engine="fast",
                           kw=kw, workers=workers, scheduler=scheduler,
                           progress=progress)  # fmt: skip
            reads = ct.n_reads
        return SampledSweep([o.result for o in outs], 1.0, 1.0, [0.0] * len(configs), reads,
                            reads, time.monotonic() - t0)  # fmt: skip
    first_names = [names[u * unit_size] for u in range(n_units)]
    h = unit_hashes(first_names)
    keep_unit = h < rate
    half_unit = h < rate / 2
    if not keep_unit.any():  # an unlucky draw on few units: take the lowest hash
        keep_unit[np.argmin(h)] = True
    if not half_unit.any():
        half_unit[np.argmin(h)] = True
    keep_obj = keep_unit[unit_of]
    ct = columns_for(keep_obj)
    half = ct.select_objects(half_unit[unit_of])
    w_total = float(w_unit.sum())
    plans = []
    for key, sel, r_nom in (("sample", keep_unit, rate), ("half", half_unit, rate / 2)):
        w_s = float(w_unit[sel].sum())
        r_eff = w_s / w_total if w_total else 1.0
        w2 = float((w_unit[sel] ** 2).sum())
        plans.append((key, r_eff, r_nom, w_s, w2))
    sizes = np.asarray(ct.sizes)
    object_size = int(np.median(sizes[keep_obj])) if keep_obj.any() else 0
    tasks = []
    for (key, r_eff, _, _, _), sel in zip(plans, (keep_obj, half_unit[unit_of]), strict=True):
        sample_bytes = int(sizes[sel].sum())
        for c in configs:
            mini = _miniature(c, r_eff, unit_size, object_size, sample_bytes)
            tasks.append(Task(key, mini, open_gaps=True))
    units = (unit_of, w_unit)
    workers = _workers_for((ct.n_reads + half.n_reads) * len(configs), workers)
    outs = execute({"sample": ct, "half": half}, tasks, engine="fast", kw=kw, units=units,
                   workers=workers, scheduler=scheduler,
                   progress=(lambda d, t: progress(d, t)) if progress else None)  # fmt: skip
    n = len(configs)
    # too few units for an estimate (and for a miniature that holds a unit's working set)
    unreliable = int(keep_unit.sum()) < MIN_RELIABLE_UNITS or int(half_unit.sum()) < (
        MIN_RELIABLE_UNITS // 2
    )
    results, errors = [], []
    (_, r_eff, r_nom, w_s, w2), (_, r_eff_h, r_nom_h, w_s_h, w2_h) = plans
    for i, c in enumerate(configs):
        req, nbytes, se_req, se_bytes = _estimate(outs[i], r_eff, r_nom, w_total, w_s, w2)
        req_h, bytes_h, _, _ = _estimate(outs[n + i], r_eff_h, r_nom_h, w_total, w_s_h, w2_h)
        bias_req = abs(req - req_h) / req if req else 0.0
        bias_bytes = abs(nbytes - bytes_h) / nbytes if nbytes else 0.0
        error = max(2 * se_req, 2 * se_bytes, bias_req, bias_bytes)
        errors.append(max(error, 1.0) if unreliable else error)
        results.append(_scaled(outs[i], c, r_eff, req, nbytes))
    sampled = int(np.count_nonzero(ct.kind == READ))
    return SampledSweep(results, rate, r_eff, errors, sampled, int(total_reads),
                        time.monotonic() - t0)  # fmt: skip


def workload_sweep_inputs(workload: Any) -> dict[str, Any]:
    """For a synthesizable built-in workload: ``columns_for``, ``names``, ``unit_size``,
    ``weights`` and ``total_reads`` for :func:`run_sampled_sweep`, without synthesizing it."""
    from benchmarks.workloads.builtin import InterleavedShards
    from benchmarks.workloads.columns import estimated_reads, synthesize_columns

    objects = workload.objects()
    names = list(objects)
    reads = estimated_reads(workload)
    unit = workload.cycle_length if isinstance(workload, InterleavedShards) else 1
    return {
        "columns_for": lambda keep: synthesize_columns(workload, keep),
        "names": names,
        "unit_size": unit,
        "weights": reads,
        "total_reads": int(reads.sum()),
    }


def summary(sweep: SampledSweep) -> Mapping[str, Any]:
    """What reports show about how the sweep was computed."""
    return {
        "exact": sweep.exact,
        "sample_rate": sweep.rate,
        "effective_rate": round(sweep.effective_rate, 6),
        "max_error_estimate": round(sweep.max_error, 6),
        "sampled_reads": sweep.sampled_reads,
        "total_reads": sweep.total_reads,
        "sweep_seconds": round(sweep.seconds, 3),
    }
