"""The model sweep engine (``engine="model"``): one configuration priced by the project's model,
``emulator.replay.simulation.simulate``, which covers every trace (write/overwrite/delete/
configure, growing and shrinking objects) and counts hazards (stale and torn reads, errors).

Invariant: for the traces the fast engines cover, :func:`simulate_model` sends the same requests
as :func:`benchmarks.sweep.engine_python.simulate_fast` (tests/tune/test_sweep.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from benchmarks.sweep.grid import PointResult
from benchmarks.sweep.timing import DEFAULT_TIMING, METADATA_RESPONSE_BYTES, GcsTiming
from emulator.model.cache_config import CacheConfig
from gcs_hook.tf_defaults import TF_DEFAULT_BLOCK_SIZE

__all__ = ["simulate_model"]


def simulate_model(
    trace: Mapping[str, Any],
    config: CacheConfig,
    *,
    timing: GcsTiming = DEFAULT_TIMING,
    stat_cache_max_age: int | None = None,
    buffer_size: int = TF_DEFAULT_BLOCK_SIZE,
    epochs: int = 1,
    keep_requests: bool = False,
) -> tuple[PointResult, list[dict[str, Any]]]:
    """The same as :func:`benchmarks.sweep.engine_python.simulate_fast`, computed by ``emulator.replay.simulation.simulate``;
    covers every trace (write/overwrite/delete/configure, growing and shrinking objects).

    A cache-off ``config`` is given to the model as ``(buffer_size, 0, max_staleness)``: the
    model, like TF at start-up, uses the configured block size as the read-ahead buffer.

    Each request advances the model's virtual clock by its ``timing`` cost (as in the fast
    engine), so stat-cache expiry and ``max_staleness`` see the time requests take; bytes are
    priced with the object's size when each request is sent. The result also carries the
    hazard counts (stale and torn reads, errors; :mod:`emulator.replay.hazards`).
    """
    from emulator.replay.simulation import simulate  # C1's size-only model

    kw: dict[str, Any] = {}
    if stat_cache_max_age is not None:
        kw["stat_cache_max_age"] = stat_cache_max_age
    model_config = config if config.cache_on else CacheConfig(buffer_size, 0, config.max_staleness)

    def cost(kind: str, nbytes: int) -> float:
        return timing.request_seconds(nbytes)

    sim = simulate(
        dict(trace),
        model_config.as_dict(),
        record_requests=keep_requests,
        cost=cost,
        count_hazards=True,
        **kw,
    )
    counts = sim.requests_by_kind
    meta = counts.get("metadata", 0)
    media = counts.get("media", 0)
    other = sum(counts.values()) - meta - media
    media_bytes = int(sim.extra["media_bytes"])
    hz = sim.extra["hazards"]
    result = PointResult(
        config=config,
        requests=media + meta + other,
        media_requests=media,
        metadata_requests=meta,
        bytes_fetched=media_bytes + METADATA_RESPONSE_BYTES * (meta + other),
        predicted_s=sim.virtual_seconds,
        epochs=epochs,
        peak_cache_bytes=int(getattr(sim, "peak_cache_bytes", 0) or 0),
        stale_reads=hz.stale_reads,
        torn_reads=hz.torn_reads,
        errors=hz.errors,
        stale_stats=hz.stale_stats,
        media_bytes=media_bytes,
        stale_files=hz.stale_files,
        torn_files=hz.torn_files,
        reads_not_seen=hz.reads_not_seen,
        tails_behind=hz.tails_behind,
        tail_lag=hz.tail_lag,
    )
    requests = list(_requests_of(sim)) if keep_requests else []
    return result, requests


def _requests_of(sim: Any) -> list[dict[str, Any]]:
    reqs = sim.get("requests") if isinstance(sim, Mapping) else getattr(sim, "requests", None)
    if reqs is None:
        raise TypeError("emulator.replay.simulation.simulate returned no 'requests'")
    return [r if isinstance(r, Mapping) else r.as_trace_request() for r in reqs]
