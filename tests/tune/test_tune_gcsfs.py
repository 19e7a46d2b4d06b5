"""``tune --client gcsfs`` against real gcsfs through the front, request for request.

A real gcsfs program (footer walks, a sequential pass in 1 MiB reads, seeded random 64 KiB
records; and pyarrow reading a Parquet file) is recorded ONCE with gcsfs's defaults
(``adaptive``). ``tune --client gcsfs --configs … --json`` then predicts, for ``readahead``,
``blockcache``, ``bytes`` and ``none`` at two block sizes each, the media requests and bytes the
real program sends when it runs with that configuration: the predictor is told only the
recording, the real runs use configurations it never saw run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from _support import cli_in_process, one_error_line

from benchmarks.workloads.gcsfs_job import make_objects

MiB = 1024 * 1024
CLI = [sys.executable, "-c", "from gcs_hook.cli import main; main()"]
JOB = [sys.executable, "-m", "benchmarks.workloads.gcsfs_job"]
TYPES = ("readahead", "blockcache", "bytes", "none")
BLOCKS = (1 * MiB, 8 * MiB)
TF_FIELDS = {
    "config", "requests", "metadata_requests", "bytes_fetched", "predicted_seconds",
    "stale_reads", "torn_reads", "errors", "stale_stats", "memory_bytes", "recommended", "exact",
    "cost_usd",
}  # fmt: skip


def _cli(*args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, **kw)


def _record(tmp_path_factory, mode: str) -> str:
    root = tmp_path_factory.mktemp(f"gcsfs-{mode}")
    (root / "data" / "job").mkdir(parents=True)
    for name, data in make_objects((mode,)).items():
        (root / "data" / "job" / name).write_bytes(data)
    out = root / "t.json"
    res = _cli("record", "--data", str(root / "data"), "--out", str(out), "--",
               *JOB, "job", "--mode", mode, timeout=180)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    return str(out)


@pytest.fixture(scope="module")
def mixed_trace(tmp_path_factory) -> str:
    return _record(tmp_path_factory, "mixed")


@pytest.fixture(scope="module")
def parquet_trace(tmp_path_factory) -> str:
    pytest.importorskip("pyarrow")
    return _record(tmp_path_factory, "parquet")


def _predict(trace: str, configs: str, tmp_path) -> list[dict]:
    res = _cli("tune", "--client", "gcsfs", "--workload", trace, "--configs", configs,
               "--json", "--out", str(tmp_path / "out"), timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout)


def _real(emu, mode: str, cache_type: str, block: int, ranges: list | None = None):
    """(media requests, bytes, exit code) of the real program with this configuration;
    ``ranges`` gets its GETs as (object, first, last)."""
    bucket = f"gj-{uuid.uuid4().hex[:12]}"
    emu.backend.create_bucket(bucket)
    for name, data in make_objects((mode,)).items():
        emu.backend.put_object(bucket, name, data)
    env = {**os.environ, **emu.tf_env(test_token=None)}
    mark = emu.ledger.mark()
    proc = subprocess.run([*JOB, bucket, "--mode", mode, "--cache-type", cache_type,
                           "--block-size", str(block)], env=env, capture_output=True,
                          timeout=120)  # fmt: skip
    emu.ledger.wait_quiet(quiet_s=0.05, timeout=30)
    media = [r for r in emu.ledger.since(mark) if r.kind == "media" and r.bucket == bucket]
    if ranges is not None:
        ranges.extend((r.object, *r.range) for r in media)
    return len(media), sum(r.bytes_out for r in media), proc.returncode


@pytest.fixture(scope="module")
def real_runs(gcs_emulator):
    """``run(mode, cache_type, block) -> (media requests, bytes, exit code, GETs)``: ``_real``
    once per configuration in this module; the tests check its totals and its GETs."""
    runs: dict[tuple, tuple] = {}

    def run(mode: str, cache_type: str, block: int) -> tuple:
        key = (mode, cache_type, block)
        if key not in runs:
            ranges: list = []
            runs[key] = (*_real(gcs_emulator, *key, ranges), ranges)
        return runs[key]

    return run


@pytest.mark.parametrize("mode", ["mixed", "parquet"])
def test_predicted_media_requests_and_bytes_equal_real_gcsfs(
    mode, mixed_trace, parquet_trace, real_runs, tmp_path
):
    trace = mixed_trace if mode == "mixed" else parquet_trace
    configs = ",".join(f"{t}/{b}" for t in TYPES for b in BLOCKS)
    rows = _predict(trace, configs, tmp_path)
    assert len(rows) == len(TYPES) * len(BLOCKS)
    predicted, real = {}, {}
    for row in rows:
        assert set(row) == TF_FIELDS
        cfg = row["config"]
        key = (cfg["cache_type"], cfg["block_size"])
        predicted[key] = (row["requests"], row["bytes_fetched"])
        n, nbytes, code, _ = real_runs(mode, *key)
        assert code == 0
        real[key] = (n, nbytes)
    assert predicted == real
    # the configurations really differ (the check is not trivially equal)
    assert len({v for v in predicted.values()}) >= 5


def test_request_for_request(mixed_trace, real_runs):
    """Every GET, not only the totals: the multiset of (object, range) per configuration
    (the concurrent GETs of one fetch reach the front in any order)."""
    from benchmarks.sweep.engine_fsspec import gcsfs_ops
    from emulator.model.fsspec_cache import FsspecCacheConfig, replay_trace_files
    from emulator.replay.trace import load_trace

    ops = gcsfs_ops(load_trace(mixed_trace))
    for cache_type in TYPES:
        for block in BLOCKS:
            model = replay_trace_files(ops, FsspecCacheConfig(cache_type, block))
            real = real_runs("mixed", cache_type, block)[3]
            predicted = [(obj.partition("/")[2], a, b) for obj, a, b in model.ranges]
            assert sorted(predicted) == sorted(real), (cache_type, block)


def test_a_failing_configuration_is_predicted_and_never_recommended(
    mixed_trace, gcs_emulator, tmp_path
):
    # blockcache asks for whole 16 MiB blocks; gcsfs splits the fetch into 3 concurrent GETs and
    # the last one starts past the end of the 6 MiB footer file: 416, and gcsfs raises
    rows = _predict(mixed_trace, "blockcache/16MiB,blockcache/2MiB", tmp_path)
    by = {r["config"]["block_size"]: r for r in rows}
    assert by[16 * MiB]["errors"] > 0 and by[2 * MiB]["errors"] == 0
    assert not by[16 * MiB]["recommended"] and by[2 * MiB]["recommended"]
    assert _real(gcs_emulator, "mixed", "blockcache", 16 * MiB)[2] != 0
    assert _real(gcs_emulator, "mixed", "blockcache", 2 * MiB)[2] == 0


def test_tune_gcsfs_outputs(mixed_trace, tmp_path):
    out = tmp_path / "out"
    res = _cli("tune", "--client", "gcsfs", "--workload", mixed_trace, "--quick",
               "--out", str(out), timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    lines = [x for x in res.stdout.splitlines() if x.startswith("fs.open(")]
    assert len(lines) == 1, res.stdout[-2000:]
    line = lines[0]  # never wrapped: it is meant to be pasted
    assert line.startswith('fs.open(path, "rb", cache_type="') and "block_size=" in line
    summary = json.loads((out / "summary.json").read_text())
    assert summary["line"] == line and summary["recommended"]["config"]["cache_type"] in line
    assert (out / "gcsfs-sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "sweep.csv").read_text().startswith("cache_type,block_size,")


def test_tf_tune_refuses_a_gcsfs_only_trace(mixed_trace, tmp_path):
    res = _cli("tune", "--workload", mixed_trace, "--configs", "1MiB/4MiB/0", "--out",
               str(tmp_path / "o"), timeout=60)  # fmt: skip
    assert (
        res.returncode == 2
        and "holds only gcsfs reads (80): tune them with --client gcsfs" in res.stderr
    )
    assert len(res.stderr.strip().splitlines()) == 1


def test_recorded_versions_are_checked(mixed_trace):
    from emulator.model.fsspec_cache import fsspec_versions, version_mismatch

    have = fsspec_versions()
    recorded = json.loads(Path(mixed_trace).read_text())["clients"]["gcsfs"]
    assert version_mismatch(recorded) == []
    assert version_mismatch({**recorded, "fsspec": "2020.1.0"}) == [
        f"fsspec 2020.1.0 recorded, {have['fsspec']} installed"
    ]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--client", "nope"], "--client must be one of"),
        (["--client", "gcsfs", "--configs", "bogus/1MiB"], "unknown cache_type 'bogus'"),
        (["--client", "gcsfs", "--configs", "readahead/1MiB/maxblocks=2"], "maxblocks goes"),
        (["--client", "gcsfs", "--configs", "readahead/0"], "block size must be > 0"),
        (["--client", "gcsfs", "--param", "x=1"], "--param is an option of TF's cache"),
        (["--client", "gcsfs", "--workload", "no-such"], "unknown gcsfs workload"),
    ],
)
def test_bad_gcsfs_options_are_one_line(args, needle, tmp_path):
    """In-process; test_tf_tune_refuses_a_gcsfs_only_trace runs the console script."""
    res = cli_in_process("tune", *args, "--out", str(tmp_path / "o"))
    assert res.stderr.startswith("gcs-hook: error: ") and needle in one_error_line(res)
    assert not (tmp_path / "o").exists()


def test_builtin_gcsfs_workload_is_recorded_swept_and_measured(tmp_path):
    out = tmp_path / "out"
    res = _cli("tune", "--workload", "gcsfs-random", "--quick", "--json", "--out", str(out),
               timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    rows = json.loads(res.stdout)
    assert sum(r["recommended"] for r in rows) == 1
    measured = json.loads((out / "summary.json").read_text())["measurements"]
    assert len(measured) >= 3
    for m in measured:  # the real program with each configuration, through the front
        assert (m["predicted_requests"], m["predicted_bytes"]) == (
            m["real_requests"],
            m["real_bytes"],
        ), m


def test_gcsfs_seconds_from_a_timing_profile_and_cost_from_a_price_table(mixed_trace, tmp_path):
    """--timing prices every request as alone under the profile (a slower bucket: more seconds,
    the same requests and bytes); --prices gives each row its cost (class B per GET, egress per
    byte); the recommendation's ties go to lower cost."""
    slow = tmp_path / "slow.json"
    slow.write_text(json.dumps({"format": "gcs-hook-timing-profile", "version": 1,
                                "latency_median_s": 0.2, "stream_bandwidth_Bps": 4 * MiB}))  # fmt: skip
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"class_a_usd_per_1000": 0.0, "class_b_usd_per_1000": 1.0,
                                  "egress_usd_per_gib": 2.0}))  # fmt: skip
    configs = ["--configs", "readahead/1MiB,blockcache/8MiB", "--no-measure", "--json"]

    def rows(*extra: str) -> list[dict]:
        res = cli_in_process("tune", "--client", "gcsfs", "--workload", mixed_trace, *configs,
                             *extra, "--out", str(tmp_path / f"o{len(extra)}"))  # fmt: skip
        assert res.returncode == 0, res.stderr[-2000:]
        return json.loads(res.stdout)

    plain, timed = rows(), rows("--timing", str(slow), "--prices", str(prices))
    for a, b in zip(plain, timed, strict=True):
        assert (a["requests"], a["bytes_fetched"]) == (b["requests"], b["bytes_fetched"])
        assert b["predicted_seconds"] > a["predicted_seconds"]
        gets = b["requests"] + b["metadata_requests"]
        assert b["cost_usd"] == pytest.approx(gets / 1000 + 2.0 * b["bytes_fetched"] / 2**30)
    both = cli_in_process("tune", "--client", "gcsfs", "--workload", mixed_trace, "--timing",
                          str(slow), "--latency-ms", "5", "--out", str(tmp_path / "x"))  # fmt: skip
    assert "--timing gives the bucket's latency" in one_error_line(both)
