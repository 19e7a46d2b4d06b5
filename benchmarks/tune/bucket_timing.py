"""The bucket's timing in ``gcs-hook tune``: which profile prices the seconds, wall time with the
program's concurrency, and what each configuration costs in dollars.

Which :class:`~emulator.fakegcs.profile.TimingProfile` (first match):

1. ``--timing PROFILE.json`` (``TuneOptions.profile``): the user's bucket as they measured it,
   or the file ``gcs-hook serve --timing`` shapes with;
2. a trace recorded with ``record --upstream`` (``recorded.mode == "upstream"``) with enough
   timed requests: the profile fitted from its own ``at`` times (:mod:`benchmarks.sweep.fit`),
   i.e. the user's real bucket;
3. otherwise the ``--latency-ms`` / ``--bandwidth`` / ``--overhead-ms`` flags (a constant
   latency, one stream rate, no aggregate cap): :func:`profile_of`.

Seconds: the sweep engines price requests one after another with :func:`sequential_timing` of
the profile (mean latency, the slower of stream rate and cap). Where the trace knows the
program's lanes and think times (``Trace.timing``: every recorded trace), each configuration's
seconds are then replaced by the wall-time model (:func:`benchmarks.sweep.wall.predict_wall`:
lanes in parallel, bodies sharing the cap). Requests and bytes never change here.

Cost: :func:`cost_usd` prices a result's operations and bytes with a
:class:`~benchmarks.sweep.cost.PriceTable` (``--prices``; by default GCS list prices with
internet egress, :data:`benchmarks.sweep.cost.DEFAULT_PRICES`).

Invariants: a one-lane trace priced by the wall model gives the sequential sum (the wall model's
own invariant), so both paths agree where both apply; nothing here does I/O but reading the
profile a user names.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks.sweep.cost import PriceTable
from benchmarks.sweep.grid import PointResult
from benchmarks.sweep.timing import GcsTiming
from emulator.fakegcs.profile import TimingProfile

__all__ = [
    "BucketTiming",
    "bucket_timing",
    "cost_usd",
    "has_lanes",
    "profile_of",
    "sequential_timing",
    "wall_results",
]

#: fewer timed requests than this in an upstream recording: the flags price it (a fit of a
#: handful of requests says little about the bucket)
MIN_FIT_REQUESTS = 20


@dataclasses.dataclass(frozen=True)
class BucketTiming:
    """The profile tune prices with, where it came from, and the fit's own lines (if fitted)."""

    profile: TimingProfile
    source: str  # "--timing" | "fitted" | "flags"
    fit_lines: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "profile": self.profile.to_json()}


def profile_of(timing: GcsTiming) -> TimingProfile:
    """The profile the sequential flags describe: constant latency, one stream rate, no cap."""
    bw = timing.bandwidth_bytes_per_s
    return TimingProfile(
        latency_median_s=timing.first_byte_latency_s,
        stream_bandwidth_Bps=None if math.isinf(bw) else bw,
        per_request_overhead_s=timing.per_request_overhead_s,
        source="tune --latency-ms/--bandwidth/--overhead-ms",
    )


def sequential_timing(profile: TimingProfile) -> GcsTiming:
    """What one request costs under ``profile`` when it is alone: the sweep engines' timing."""
    bw = min(profile.stream_bandwidth_Bps or math.inf, profile.aggregate_bandwidth_Bps or math.inf)
    return GcsTiming(profile.latency_mean_s, bw, profile.per_request_overhead_s)


def _timed_trace(trace: Any) -> Any:
    """The loaded trace when it has ``timing`` (lanes, think times), else None (a synthesized
    workload, a columnar trace, a trace without times)."""
    if not isinstance(trace, dict):
        return None
    from emulator.replay.trace import load_trace

    loaded = load_trace(trace)
    return loaded if loaded.timing is not None else None


def has_lanes(trace: Any) -> bool:
    """Whether the wall-time model prices ``trace`` (it records lanes and think times)."""
    return _timed_trace(trace) is not None


def bucket_timing(given: TimingProfile | None, flags: GcsTiming, trace: Any) -> BucketTiming:
    """The profile to price with (see the module docstring for the order)."""
    if given is not None:
        return BucketTiming(given, "--timing")
    loaded = _timed_trace(trace)
    if loaded is not None and (loaded.timing.recorded or {}).get("mode") == "upstream":
        from benchmarks.sweep.fit import fit_profile, trace_samples

        samples = trace_samples(loaded)
        if len(samples) >= MIN_FIT_REQUESTS:
            fit = fit_profile(samples, source=f"fitted from the trace's {len(samples)} requests")
            return BucketTiming(fit.profile, "fitted", tuple(fit.lines()))
    return BucketTiming(profile_of(flags), "flags")


def wall_results(
    results: Sequence[PointResult],
    trace: Any,
    profile: TimingProfile,
    *,
    stat_cache_max_age: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[PointResult] | None:
    """``results`` with ``predicted_s`` from the wall-time model (lanes in parallel), or None
    when the trace has no lanes and think times to model, or is swept for several epochs (the
    sweep's sequential seconds stand). The model's virtual clock moves as the sweep's did
    (:func:`sequential_timing`), so its requests are the sweep's; a mismatch is an error."""
    loaded = _timed_trace(trace)
    if loaded is None or any(r.epochs != 1 for r in results):
        return None
    from benchmarks.sweep.wall import client_overhead, pace_coupling, predict_wall

    pace, client_s = pace_coupling(loaded), client_overhead(loaded)
    seq = sequential_timing(profile)
    out = []
    for i, r in enumerate(results):
        wall, sim = predict_wall(
            loaded, r.config, profile, pace=pace, client_s=client_s,
            stat_cache_max_age=stat_cache_max_age,
            clock_cost=lambda _kind, n: seq.request_seconds(n),
        )  # fmt: skip
        if sim.total_requests != r.requests:
            raise RuntimeError(
                f"wall-time model made {sim.total_requests} requests for {r.config}, the "
                f"sweep {r.requests}"
            )
        out.append(dataclasses.replace(r, predicted_s=wall.wall_s))
        if progress is not None:
            progress(i + 1, len(results))
    return out


def cost_usd(r: PointResult, prices: PriceTable) -> float:
    """Dollars of ``r``'s operations and media bytes (all epochs) at ``prices``."""
    return prices.cost_usd(
        media=r.media_requests,
        metadata=r.metadata_requests,
        lists=max(0, r.requests - r.media_requests - r.metadata_requests),
        egress_bytes=r.media_bytes_fetched,
    )
