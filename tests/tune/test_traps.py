"""The traps a new user hit (issue 18), each with the clear error or the one meaning it has now.

- a decimal cache size in ``--configs`` (``8M``, ``8MB``) is refused with a hint, never taken
  as 8,000,000 bytes;
- ``--bandwidth 0`` is "no limit" in ``tune`` as in ``serve`` and the README;
- the table says when it folds configurations that tie;
- ``bytes_fetched`` is media bytes in ``tune --json``, ``sweep.csv`` and ``summary.json``;
- a sampled sweep prints its error figure as an estimate, never as a bound ("≤").
"""

from __future__ import annotations

import csv
import json

import pytest
from _support import cli_in_process, one_error_line
from test_tune_cli import run_cli

from benchmarks.sweep import CacheConfig, run_sweep
from benchmarks.tune.advice import recommend, results_json
from benchmarks.tune.report import rich_table
from emulator.replay.simulation import simulate
from gcs_hook.cli.values import parse_cache_size

MiB = 1024 * 1024


def _trace() -> dict:
    obj = "tp/a.bin"
    return {
        "config": None,
        "objects": {obj: 3_000_000},
        "ops": [
            {"op": "open", "handle": "h", "object": obj},
            {"op": "read", "handle": "h", "offset": 0, "n": 100_000},
            {"op": "read", "handle": "h", "offset": 2_000_000, "n": 500_000},
            {"op": "stat", "object": obj},
            {"op": "read", "handle": "h", "offset": 0, "n": 100_000},
            {"op": "close", "handle": "h"},
        ],
    }


@pytest.mark.parametrize("text", ["8M", "8MB", "8mb", "1.5GB", "512kB", "512k"])
def test_decimal_cache_sizes_are_refused_with_a_hint(tmp_path, text) -> None:
    with pytest.raises(ValueError, match="TF cache sizes are binary: did you mean"):
        parse_cache_size(text)
    path = tmp_path / "t.json"
    path.write_text(json.dumps(_trace()))
    res = cli_in_process("tune", "--workload", str(path), "--configs", f"{text}/64MiB",
                         "--no-measure", "--out", str(tmp_path / "out"), cwd=tmp_path)  # fmt: skip
    line = one_error_line(res)
    assert "did you mean" in line
    number = text.rstrip("kKmMgGbB")
    assert f"did you mean {number}" in line and "iB?" in line
    assert not (tmp_path / "out").exists()


def test_binary_and_plain_byte_cache_sizes_are_taken() -> None:
    assert parse_cache_size("8MiB") == 8 * MiB
    assert parse_cache_size("8388608") == 8 * MiB
    assert parse_cache_size("256KiB") == 256 * 1024


def test_bandwidth_0_is_no_limit_in_tune(tmp_path) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps(_trace()))

    def predicted(bandwidth: str) -> dict:
        res = run_cli("--workload", str(path), "--configs", "off,1MiB/4MiB", "--json",
                      "--no-measure", "--bandwidth", bandwidth, "--latency-ms", "20",
                      "--overhead-ms", "1", "--out", str(tmp_path / bandwidth.replace("/", "")),
                      cwd=tmp_path, timeout=120)  # fmt: skip
        assert res.returncode == 0, res.stderr
        return {json.dumps(r["config"]): r for r in json.loads(res.stdout)}

    free, slow = predicted("0"), predicted("1MiB/s")
    for key, row in free.items():
        # no limit: every request costs its latency and overhead, its bytes nothing
        n = row["requests"] + row["metadata_requests"]
        assert row["predicted_seconds"] == pytest.approx(n * 0.021, abs=1e-6)
        assert slow[key]["predicted_seconds"] > row["predicted_seconds"] + 0.05
        assert slow[key]["requests"] == row["requests"]


def test_bytes_fetched_is_media_bytes_everywhere(tmp_path) -> None:
    trace = _trace()
    configs = [CacheConfig(0, 0, 0), CacheConfig(MiB, 4 * MiB, 0)]
    results = run_sweep(trace, configs, engine="model", workers=1)
    best, _ = recommend(results, 64 * MiB)
    doc = results_json(results, best)
    for config, r, row in zip(configs, results, doc, strict=True):
        model = config if config.cache_on else CacheConfig(64 * MiB, 0, 0)
        sim = simulate(trace, model.as_dict(), record_requests=True)
        media = sum(
            min(q["range"][1], 3_000_000 - 1) - q["range"][0] + 1
            for q in sim.requests
            if q["kind"] == "media" and q["range"][0] < 3_000_000
        )
        assert r.metadata_requests > 0  # so that counting metadata would show
        assert row["bytes_fetched"] == r.as_row()["bytes_fetched"] == media
    path = tmp_path / "t.json"
    path.write_text(json.dumps(trace))
    out = tmp_path / "out"
    res = run_cli("--workload", str(path), "--configs", "off,1MiB/4MiB", "--json",
                  "--no-measure", "--out", str(out), cwd=tmp_path, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr
    cli = [r["bytes_fetched"] for r in json.loads(res.stdout)]
    with open(out / "sweep.csv", newline="") as fh:
        from_csv = [int(row["bytes_fetched"]) for row in csv.DictReader(fh)]
    summary = json.loads((out / "summary.json").read_text())
    rows = summary["results"]
    assert sorted(cli) == sorted(from_csv) == sorted(int(r["bytes_fetched"]) for r in rows)
    assert sorted(cli) == sorted(row["bytes_fetched"] for row in doc)


def test_the_table_says_when_tied_rows_are_folded() -> None:
    from rich.console import Console

    configs = [CacheConfig(0, 0, 0), CacheConfig(MiB, 4 * MiB, 0), CacheConfig(MiB, 4 * MiB, 60),
               CacheConfig(MiB, 8 * MiB, 600)]  # fmt: skip
    results = run_sweep(_trace(), configs, engine="model", workers=1)
    by = {r.config: r for r in results}
    assert by[configs[1]].requests == by[configs[2]].requests  # a tie the table folds
    console = Console(record=True, width=200)
    console.print(rich_table(results, best=None, budget=64 * MiB))
    text = console.export_text()
    assert "1 configuration(s) with max_staleness > 0 tie" in text and "folded" in text
    unfolded = Console(record=True, width=200)
    unfolded.print(rich_table([by[c] for c in configs[:2]], best=None, budget=64 * MiB))
    assert "folded" not in unfolded.export_text()
