"""The front's benchmarks run end to end at a tiny size (their numbers are not judged here)."""

from __future__ import annotations

import re


def test_front_throughput_benchmark_smoke(capsys):
    """Every path and client count measured, bytes checked by the benchmark itself."""
    from benchmarks.perf import front_throughput

    assert front_throughput.main(["--size-mib", "2", "--rounds", "1", "--clients", "1,2"]) == 0
    out = capsys.readouterr().out
    for path in front_throughput.PATHS:
        for k in (1, 2):
            assert re.search(rf"^  {re.escape(path)}\s+{k}\s+\d", out, re.M), (path, k, out)
    assert "CPU per GiB with 2 clients / with 1" in out


def test_front_requests_benchmark_smoke(capsys):
    """gcsfs and raw HTTP, straight at the backend and through the front."""
    from benchmarks.perf import front_requests

    assert front_requests.main(["--rounds", "1", "--ops", "10"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"gcsfs\s+direct\s+[\d.]+ ms\s+front\s+[\d.]+ ms", out), out
    assert re.search(r"http\s+direct\s+[\d.]+ ms\s+front\s+[\d.]+ ms", out), out
