"""Timing profiles and the honest shaped front (issue 17 item 5): seeded lognormal latency by
median and p99, per-stream rate, a shared aggregate cap, the profile file, ``serve --timing``."""

from __future__ import annotations

import os
import statistics

import pytest
from _support import cli_in_process, one_error_line

from emulator.fakegcs.profile import DEFAULT_PROFILE, TimingProfile
from emulator.fakegcs.shaping import AggregateLimiter, Shaping

MiB = 1 << 20


def test_latency_draws_follow_the_median_and_p99_and_are_seeded() -> None:
    p = TimingProfile(latency_median_s=0.04, latency_p99_s=0.12, seed=7)
    draws = [p.sampler().draw() for _ in range(3)]
    assert len(set(draws)) == 1  # a fresh sampler starts the same seeded stream
    s = p.sampler()
    xs = sorted(s.draw() for _ in range(20_000))
    assert statistics.median(xs) == pytest.approx(0.04, rel=0.05)
    assert xs[int(0.99 * len(xs))] == pytest.approx(0.12, rel=0.08)
    assert p.latency_quantile(0.5) == pytest.approx(0.04)
    assert p.latency_quantile(0.99) == pytest.approx(0.12)
    assert p.latency_mean_s > 0.04  # a lognormal's mean lies above its median
    other = TimingProfile(latency_median_s=0.04, latency_p99_s=0.12, seed=8).sampler()
    assert [other.draw() for _ in range(5)] != xs[:5]
    const = TimingProfile(latency_median_s=0.03)
    assert const.latency_p99_s == 0.03 and const.sampler().draw() == 0.03


def test_profile_file_round_trip_and_refusals(tmp_path) -> None:
    p = TimingProfile(0.03, 0.09, 32 * MiB, 64 * MiB, 0.002, seed=3, source="test")
    path = tmp_path / "p.json"
    p.save(path, fit={"requests": 10})
    assert TimingProfile.load(path) == p
    assert oct(os.stat(path).st_mode & 0o777) != "0o777"
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(ValueError, match="symlink"):
        p.save(link)
    assert not (tmp_path / "elsewhere.json").exists()
    for kw, why in (
        ({"latency_median_s": -1}, "latency_median_s"),
        ({"latency_median_s": 0.05, "latency_p99_s": 0.01}, "p99"),
        ({"stream_bandwidth_Bps": 5}, "stream_bandwidth_Bps"),
        ({"aggregate_bandwidth_Bps": float("inf")}, "aggregate_bandwidth_Bps"),
        ({"seed": 1.5}, "seed"),
    ):
        with pytest.raises(ValueError, match=why):
            TimingProfile(**kw)
    with pytest.raises(ValueError, match="not a timing profile"):
        TimingProfile.from_json({"latency_median_s": 0.1})
    assert "gcsfuse" in DEFAULT_PROFILE.source


def test_shaping_from_profile_draws_latency_and_shares_the_aggregate_cap() -> None:
    p = TimingProfile(0.01, 0.05, 8 * MiB, 4 * MiB, 0.001, seed=1)
    sh = Shaping.from_profile(p)
    assert (sh.first_byte_latency_s, sh.bandwidth_bytes_per_s, sh.per_request_overhead_s) == (
        0.01, 8 * MiB, 0.001)  # fmt: skip
    assert sh.limited and sh.profile is p
    # the aggregate cap is one limiter for every response: two streams booking 1 MiB each
    # at once are granted 2 MiB at 4 MiB/s, one after the other
    a = sh.aggregate_due(MiB)
    b = sh.aggregate_due(MiB)
    assert a is not None and b is not None and b - a == pytest.approx(MiB / (4 * MiB))
    assert Shaping(first_byte_latency_s=0.01).aggregate_due(MiB) is None
    lim = AggregateLimiter(1e6)
    t1, t2 = lim.reserve(500_000), lim.reserve(500_000)
    assert t2 - t1 == pytest.approx(0.5)


def test_serve_timing_bad_profile_is_one_line_exit_2(tmp_path) -> None:
    (tmp_path / "bad.json").write_text('{"format": "gcs-hook-timing-profile", "seed": "x"}')
    for args, why in (
        (["--timing", str(tmp_path / "bad.json")], "--timing: timing profile: seed"),
        (["--timing", str(tmp_path / "none.json")], "--timing: cannot read timing profile"),
        (["--timing", str(tmp_path / "bad.json"), "--latency-ms", "5"], "not both"),
    ):
        assert why in one_error_line(cli_in_process("serve", *args))  # in-process
