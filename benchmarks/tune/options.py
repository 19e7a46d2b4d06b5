"""What ``gcs-hook tune`` is asked (:class:`TuneOptions`, one typed object filled by the CLI in
one step) and what it answers (:class:`TuneOutcome`), and the shaping of its measured runs.

Invariant: a :class:`TuneOptions` holds parsed values only (sizes in bytes, configs as
:class:`~emulator.model.cache_config.CacheConfig`); the pipeline never parses strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from benchmarks.sweep.cost import DEFAULT_PRICES, PriceTable
from benchmarks.sweep.grid import PointResult
from benchmarks.sweep.timing import DEFAULT_TIMING, GcsTiming
from emulator.fakegcs.profile import TimingProfile
from emulator.model.cache_config import CacheConfig
from gcs_hook.units import GiB, MiB

__all__ = ["MEASURE_TIMING", "TuneOptions", "TuneOutcome"]

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
    memory_budget: int = 2 * GiB
    backend: str = "embedded"
    out_dir: str = "tune-out"
    quick: bool = False
    timing: GcsTiming = DEFAULT_TIMING  # the flags (used when no profile applies)
    profile: TimingProfile | None = None  # --timing: the bucket's profile
    prices: PriceTable = DEFAULT_PRICES  # --prices
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
