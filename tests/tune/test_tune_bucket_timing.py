"""``tune``'s seconds use the bucket's timing and the program's concurrency; each row has a cost.

Constructed traces (no TF needed): 4 lanes read 4 files at once in 256 KiB reads, their ``at``
times made by a known bucket (lognormal latency, a per-stream rate, a shared cap). The checks:

- a trace recorded upstream is priced with the profile fitted from its own times, and with
  lanes the seconds are the wall-time model's: well below the one-reader sum of the same
  requests, never below the bytes over the cap;
- ``--timing FILE`` prices with the given profile instead (a slower bucket: more seconds, the
  same requests and bytes);
- every row carries ``cost_usd`` = the price table's dollars for its operations and bytes,
  ``--prices FILE`` changes it, and a bad ``--timing``/``--prices`` is one line, exit 2.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from _support import cli_in_process, one_error_line

from benchmarks.sweep.cost import DEFAULT_PRICES, PriceTable
from benchmarks.sweep.timing import GcsTiming
from benchmarks.tune.bucket_timing import bucket_timing, profile_of, sequential_timing
from emulator.fakegcs.profile import TimingProfile

MiB = 1 << 20
READ = 256 * 1024
CLI = [sys.executable, "-c", "from gcs_hook.cli import main; main()"]
BUCKET = TimingProfile(0.030, 0.080, 32 * MiB, 64 * MiB, 0.0, seed=3)


def lanes_trace(n_lanes: int = 4, file_mib: int = 4, *, mode: str = "upstream") -> dict:
    """``n_lanes`` readers, one file each, in ``READ``-byte reads, timed by :data:`BUCKET`:
    while all lanes read, a body runs at min(stream, cap / lanes); lane 0's file is twice as
    long, and its second half runs alone at the stream rate."""
    rng = random.Random(1)
    sigma = BUCKET.sigma
    n_reads = file_mib * MiB // READ
    objects = {f"b/f{i}": (2 if i == 0 else 1) * file_mib * MiB for i in range(n_lanes)}
    shared = min(BUCKET.stream_bandwidth_Bps, BUCKET.aggregate_bandwidth_Bps / n_lanes)
    ops: list[dict] = [
        {"op": "open", "handle": f"h{lane}", "object": f"b/f{lane}"} for lane in range(n_lanes)
    ]
    reads = []
    for lane in range(n_lanes):
        clock = 0.0
        for k in range((2 if lane == 0 else 1) * n_reads):
            rate = shared if k < n_reads else BUCKET.stream_bandwidth_Bps
            think = 0.001
            arrive = clock + think
            first = arrive + BUCKET.latency_median_s * rng.lognormvariate(0, sigma)
            end = first + READ / rate
            clock = end
            reads.append(
                {"op": "read", "handle": f"h{lane}", "offset": k * READ, "n": READ,
                 "lane": lane, "think": think, "at": [arrive, first, end]}
            )  # fmt: skip
    ops.extend(sorted(reads, key=lambda op: (op["at"][0], op["lane"])))  # arrival order
    return {"config": None, "objects": objects, "ops": ops, "recorded": {"mode": mode,
            "lanes": n_lanes}}  # fmt: skip


def fitted_cap(trace: dict) -> float:
    p = bucket_timing(None, GcsTiming(), trace).profile
    return min(p.stream_bandwidth_Bps or float("inf"), p.aggregate_bandwidth_Bps or float("inf"))


def _tune(
    tmp_path: Path, trace: dict, *extra: str, in_process: bool = False
) -> tuple[subprocess.CompletedProcess, Path]:
    path = tmp_path / "trace.json"
    path.write_text(json.dumps(trace))
    out = tmp_path / "out"
    args = ["tune", "--workload", str(path), "--configs", "off,256KiB/1MiB/0,8MiB/64MiB/0",
            "--memory-budget", "256MiB", "--workers", "1", "--json", "--out", str(out), *extra]  # fmt: skip
    if in_process:
        return cli_in_process(*args, cwd=tmp_path), out
    res = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=180, cwd=tmp_path)
    return res, out


def test_profile_choice_and_the_sequential_equivalent() -> None:
    flags = GcsTiming(0.02, 64 * MiB, 0.001)
    assert sequential_timing(profile_of(flags)) == flags  # the flags round-trip exactly
    fitted = bucket_timing(None, flags, lanes_trace())
    assert fitted.source == "fitted" and fitted.fit_lines
    p = fitted.profile
    assert p.latency_median_s == pytest.approx(BUCKET.latency_median_s, rel=0.15)
    assert p.stream_bandwidth_Bps == pytest.approx(BUCKET.stream_bandwidth_Bps, rel=0.15)
    assert p.aggregate_bandwidth_Bps is not None  # bodies that ran together were slower
    # a fake-mode recording says nothing about a bucket: the flags price it
    assert bucket_timing(None, flags, lanes_trace(mode="fake")).source == "flags"
    assert bucket_timing(BUCKET, flags, lanes_trace()).profile is BUCKET


def test_recorded_lanes_are_priced_as_concurrent_with_the_fitted_bucket(tmp_path) -> None:
    trace = lanes_trace()
    res, out = _tune(tmp_path, trace)
    assert res.returncode == 0, res.stderr
    assert "timing (fitted from the recording)" in res.stderr
    assert "the wall-time model" in res.stderr
    rows = {(r["config"] or {}).get("block_size", 0): r for r in json.loads(res.stdout)}
    same = rows[READ]  # one block per read: the recorded requests themselves
    n_reads = sum(op["op"] == "read" for op in trace["ops"])
    total = n_reads * READ
    assert same["requests"] == n_reads and same["bytes_fetched"] == total
    # recorded: the 4 lanes took max(lane end); one reader would take the sum
    recorded_wall = max(op["at"][2] for op in trace["ops"] if "at" in op)
    one_reader = sum(op["at"][2] - op["at"][0] + op["think"] for op in trace["ops"] if "at" in op)
    assert same["predicted_seconds"] < one_reader / 2
    assert same["predicted_seconds"] == pytest.approx(recorded_wall, rel=0.25)
    for r in rows.values():  # never faster than the bytes through the fitted cap allow
        assert r["predicted_seconds"] >= r["bytes_fetched"] / fitted_cap(trace) * 0.99
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seconds_model"] == "wall"
    assert summary["bucket_timing"]["source"] == "fitted"
    # every row's cost is the price table's for its operations and media bytes
    want = DEFAULT_PRICES.cost_usd(
        media=n_reads, metadata=same["metadata_requests"], egress_bytes=total
    )
    assert same["cost_usd"] == pytest.approx(want, rel=1e-6)


def test_given_profile_and_prices_replace_the_defaults(tmp_path) -> None:
    trace = lanes_trace()
    slow = TimingProfile(0.2, 0.2, 4 * MiB, 8 * MiB, 0.0)
    slow.save(tmp_path / "slow.json")
    prices = {"class_a_usd_per_1000": 0.01, "class_b_usd_per_1000": 0.001,
              "egress_usd_per_gib": 0.0}  # fmt: skip
    (tmp_path / "prices.json").write_text(json.dumps(prices))
    base, _ = _tune(tmp_path, trace)
    res, out = _tune(
        tmp_path, trace, "--timing", str(tmp_path / "slow.json"), "--prices",
        str(tmp_path / "prices.json"),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "timing (--timing)" in res.stderr
    fast = {json.dumps(r["config"]): r for r in json.loads(base.stdout)}
    slow_rows = {json.dumps(r["config"]): r for r in json.loads(res.stdout)}
    assert len(slow_rows) == 3
    for key, r in slow_rows.items():
        assert (r["requests"], r["bytes_fetched"]) == (fast[key]["requests"],
                                                       fast[key]["bytes_fetched"])  # fmt: skip
        assert r["predicted_seconds"] > fast[key]["predicted_seconds"]
        assert r["predicted_seconds"] >= r["bytes_fetched"] / (8 * MiB) * 0.99
        table = PriceTable(**prices)
        assert r["cost_usd"] == pytest.approx(
            table.cost_usd(media=r["requests"], metadata=r["metadata_requests"]), rel=1e-6
        )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--timing", "nope.json"], "--timing nope.json: no such file"),
        (["--timing", "bad.json"], "not a timing profile"),
        (["--timing", "slow.json", "--latency-ms", "5"], "drop --latency-ms"),
        (["--prices", "bad.json"], "--prices bad.json"),
        (["--prices", "neg.json"], "must be a finite number >= 0"),
    ],
)
def test_bad_timing_or_prices_is_one_line(tmp_path, args, needle) -> None:
    (tmp_path / "bad.json").write_text('{"format": "nope"}')
    (tmp_path / "neg.json").write_text('{"egress_usd_per_gib": -1}')
    BUCKET.save(tmp_path / "slow.json")
    res, out = _tune(tmp_path, lanes_trace(), *args, in_process=True)
    assert needle in one_error_line(res)
    assert not out.exists()


@pytest.mark.timeout(120)
def test_wall_model_ends_when_a_body_rest_is_below_the_clocks_resolution() -> None:
    """A thrashing cache (16 MiB blocks, 16 MiB cache, 4 lanes) left a 200-byte body with
    2e-7 bytes to go at t = 257 s: its time left rounded to 0 and the clock never moved."""
    from benchmarks.sweep.wall import predict_wall
    from emulator.model.cache_config import CacheConfig

    trace = lanes_trace(4, 64)
    p = bucket_timing(None, GcsTiming(), trace).profile
    seq = sequential_timing(p)
    wall, sim = predict_wall(
        trace, CacheConfig(16 * MiB, 16 * MiB, 0), p,
        clock_cost=lambda _k, n: seq.request_seconds(n),
    )  # fmt: skip
    assert wall.requests == sim.total_requests
    assert wall.wall_s >= wall.body_bytes / p.aggregate_bandwidth_Bps * 0.99


def test_recorded_tail_and_client_cost_enter_the_wall_time() -> None:
    """``recorded.tail_s`` (the program's time after its last request) is added whatever the
    cache; the client's own per-request cost leaves the think times of the requests a
    configuration no longer sends (here: one 64 MiB read-ahead instead of 64 ranged GETs)."""
    from benchmarks.sweep.wall import client_overhead, predict_wall
    from emulator.model.cache_config import CacheConfig
    from emulator.replay.reader import TraceError, parse_document

    trace = lanes_trace(1, 16)
    off = CacheConfig(0, 0, 0)
    c = client_overhead(trace)
    assert c == pytest.approx(0.001, abs=1e-9)  # the generator's think between two requests
    base, _ = predict_wall(trace, off, BUCKET)
    tailed = dict(trace, recorded={**trace["recorded"], "tail_s": 0.5})
    with_tail, _ = predict_wall(tailed, off, BUCKET)
    assert with_tail.wall_s == pytest.approx(base.wall_s + 0.5, abs=1e-9)
    kept, _ = predict_wall(trace, off, BUCKET, client_s=0.0)
    n_reads = sum(op["op"] == "read" for op in trace["ops"])
    # cache off sends 1 request for the 64 reads: 63 of the 64 client costs are gone
    assert kept.wall_s - base.wall_s == pytest.approx((n_reads - 1) * c, rel=1e-6)
    with pytest.raises(TraceError, match="tail_s"):
        parse_document(dict(trace, recorded={**trace["recorded"], "tail_s": -1}))
