"""The wall-time model (issue 17 item 4), the profile fit (item 3) and cost (item 6): lanes
replayed concurrently with think times, per-stream and aggregate bandwidth, the cache shared in
arrival order with requests and bytes exactly the sweep's. Pure computation: no clocks."""

from __future__ import annotations

import json

import pytest

from benchmarks.sweep.cost import DEFAULT_PRICES, PriceTable
from benchmarks.sweep.engine_python import simulate_fast
from benchmarks.sweep.fit import Sample, fit_profile, trace_samples
from benchmarks.sweep.grid import CacheConfig
from benchmarks.sweep.timing import GcsTiming
from benchmarks.sweep.wall import Step, sequential_seconds, trace_steps, wall_time
from emulator.fakegcs.profile import TimingProfile

KiB, MiB = 1024, 1024 * 1024


def _laned_trace(lanes: int, reads: int, think: float, size: int = 4 * MiB) -> dict:
    """``lanes`` readers, each reading its own object sequentially in 256 KiB reads,
    interleaved in arrival order (as record writes a 4-way interleave)."""
    ops: list[dict] = [{"op": "open", "handle": f"h{k}", "object": f"b/o{k}", "lane": k}
                       for k in range(lanes)]  # fmt: skip
    for i in range(reads):
        for k in range(lanes):
            ops.append({"op": "read", "handle": f"h{k}", "offset": i * 256 * KiB,
                        "n": 256 * KiB, "lane": k, "think": think})  # fmt: skip
    return {"objects": {f"b/o{k}": size for k in range(lanes)}, "ops": ops}


def test_one_lane_is_the_sequential_sum_and_matches_gcs_timing() -> None:
    p = TimingProfile(0.02, None, 64 * MiB, None, 0.001)
    trace = _laned_trace(1, 16, 0.0)
    for cfg in (CacheConfig(0, 0, 0), CacheConfig(MiB, 8 * MiB, 0)):
        steps, _ = trace_steps(trace, cfg)
        w = wall_time(steps, p)
        assert w.wall_s == pytest.approx(sequential_seconds(steps, p), rel=1e-9)
        point, _ = simulate_fast(trace, cfg, timing=GcsTiming(0.02, 64 * MiB, 0.001))
        assert w.wall_s == pytest.approx(point.predicted_s, rel=1e-9)  # today's model, 1 lane
        assert w.io_bound_fraction == pytest.approx(1.0)


def test_requests_and_bytes_stay_exactly_the_sweeps() -> None:
    trace = _laned_trace(4, 12, 0.003)
    for cfg in (
        CacheConfig(0, 0, 0),
        CacheConfig(MiB, 4 * MiB, 0),
        CacheConfig(4 * MiB, 64 * MiB, 0),
    ):
        steps, sim = trace_steps(trace, cfg)
        point, _ = simulate_fast(trace, cfg)
        w = wall_time(steps, TimingProfile())
        assert w.requests == point.requests == sum(len(s.requests) for s in steps)
        assert w.body_bytes == point.bytes_fetched
        assert sim.requests_by_kind.get("media", 0) == point.media_requests


def test_parallel_lanes_overlap_and_the_aggregate_cap_is_shared() -> None:
    per_stream = 32 * MiB
    work = [Step(k, 0.0, (MiB,)) for k in range(4) for _ in range(10)]
    alone = wall_time([s for s in work if s.lane == 0], TimingProfile(0.04, None, per_stream))
    free = wall_time(work, TimingProfile(0.04, None, per_stream))
    assert free.lanes == 4 and free.wall_s == pytest.approx(alone.wall_s)  # 4 lanes at once
    capped = wall_time(work, TimingProfile(0.04, None, per_stream, per_stream))
    # one stream's rate shared by four: bodies take 4x, latencies still overlap
    assert capped.wall_s == pytest.approx(10 * (0.04 + 4 * MiB / per_stream))
    assert capped.wall_s >= 40 * MiB / per_stream  # never faster than the cap allows


def test_think_time_hides_io_and_makes_the_cache_hardly_matter() -> None:
    p = TimingProfile(0.02, None, 64 * MiB)
    trace = _laned_trace(4, 12, 0.2)  # 200 ms of work per element, I/O ~24 ms
    walls = {}
    for cfg in (
        CacheConfig(0, 0, 0),
        CacheConfig(256 * KiB, 4 * MiB, 0),
        CacheConfig(4 * MiB, 64 * MiB, 0),
    ):
        steps, _ = trace_steps(trace, cfg)
        walls[cfg] = w = wall_time(steps, p)
        assert w.think_s == pytest.approx(12 * 0.2)
        assert w.io_bound_fraction < 0.2
    lo, hi = min(w.wall_s for w in walls.values()), max(w.wall_s for w in walls.values())
    assert hi / lo < 1.1  # within 10 %: the cache hardly matters
    # an old trace (no lanes): sleep ops are think time on one lane
    old = {"objects": {"b/a": MiB}, "ops": [{"op": "open", "handle": "h", "object": "b/a"},
           {"op": "sleep", "seconds": 1.5}, {"op": "read", "handle": "h", "offset": 0, "n": 10}]}  # fmt: skip
    steps, _ = trace_steps(old, CacheConfig(0, 0, 0))
    assert wall_time(steps, p).wall_s == pytest.approx(1.5 + 0.02 + MiB / (64 * MiB))


def test_fit_recovers_a_known_profile_within_10_percent() -> None:
    true = TimingProfile(0.04, 0.12, 32 * MiB, 64 * MiB, 0.0, seed=5)
    draw = true.sampler().draw
    one = wall_time([Step(0, 0.002, (256 * KiB,)) for _ in range(150)], true, latency=draw,
                    intervals=True)  # fmt: skip
    four = wall_time([Step(k, 0.002, (MiB,)) for k in range(4) for _ in range(60)], true,
                     latency=draw, intervals=True)  # fmt: skip
    off = one.wall_s + 1.0
    samples = [Sample(a, f, e, n) for _, a, f, e, n in one.intervals]
    samples += [Sample(a + off, f + off, e + off, n) for _, a, f, e, n in four.intervals]
    fit = fit_profile(samples)
    got = fit.profile
    assert got.latency_median_s == pytest.approx(0.04, rel=0.10)
    assert got.latency_quantile(0.99) == pytest.approx(0.12, rel=0.10)
    assert got.stream_bandwidth_Bps == pytest.approx(32 * MiB, rel=0.10)
    assert got.aggregate_bandwidth_Bps == pytest.approx(64 * MiB, rel=0.10)
    assert fit.error_total < 0.10 and "slowed down" in fit.aggregate_note
    # without concurrency there is no cap to see, and the fit says so
    solo = fit_profile([Sample(a, f, e, n) for _, a, f, e, n in one.intervals])
    assert solo.profile.aggregate_bandwidth_Bps is None and "no concurrent" in solo.aggregate_note
    with pytest.raises(ValueError, match="at least"):
        fit_profile(samples[:2])


def test_trace_samples_read_the_at_times() -> None:
    trace = {"objects": {"b/a": 1000}, "recorded": {"mode": "upstream"}, "ops": [
        {"op": "open", "handle": "h", "object": "b/a"},
        {"op": "read", "handle": "h", "offset": 900, "n": 500, "at": [0.0, 0.04, 0.05]},
        {"op": "stat", "object": "b/a", "at": [0.1, 0.13, 0.131]},
        {"op": "read", "handle": "h", "offset": 0, "n": 10, "at": [0.2, None, 0.3]},
    ]}  # fmt: skip
    got = trace_samples(trace)
    assert [(s.arrive, s.first, s.nbytes) for s in got] == [(0.0, 0.04, 100), (0.1, 0.13, 200)]


def test_prices(tmp_path) -> None:
    assert DEFAULT_PRICES.date and "cloud.google.com/storage/pricing" in DEFAULT_PRICES.source
    c = DEFAULT_PRICES.cost_usd(media=10_000, metadata=10_000, lists=1000, egress_bytes=2 * 1024**3)
    assert c == pytest.approx(20 * 0.0004 + 1 * 0.005 + 2 * 0.12)
    (tmp_path / "p.json").write_text(
        json.dumps({"egress_usd_per_gib": 0, "class_b_usd_per_1000": 1})
    )
    t = PriceTable.load(tmp_path / "p.json")
    assert t.cost_usd(media=1000, egress_bytes=10**12) == pytest.approx(1.0)
    for doc, why in (({"class_a": 1}, "unknown keys"), ({"egress_usd_per_gib": -1}, ">= 0")):
        (tmp_path / "bad.json").write_text(json.dumps(doc))
        with pytest.raises(ValueError, match=why):
            PriceTable.load(tmp_path / "bad.json")
