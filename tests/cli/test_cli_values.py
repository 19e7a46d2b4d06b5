"""One CLI vocabulary: the shared parsers (gcs_hook.cli.values) and how every subcommand fails on
a bad value — one line ``gcs-hook: error: ...`` on stderr, exit code 2, nothing started."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys

import pytest
from _support import cli_in_process
from _support import one_error_line as _one_error_line

from emulator.fakegcs.backend import BackendError, parse_backend_spec, start_backend
from gcs_hook.cli.values import (
    MAX_SIZE,
    parse_duration,
    parse_port,
    parse_rate,
    parse_size,
)

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
CLI = [
    shutil.which("gcs-hook") or sys.executable,
    *([] if shutil.which("gcs-hook") else ["-m", "gcs_hook.cli"]),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("64MiB", 64 * MiB), ("2GiB", 2 * GiB), ("1.5GB", 1_500_000_000), ("4096", 4096),
        ("4096B", 4096), ("1kib", KiB), ("  3 MiB ", 3 * MiB), ("1TiB", 1 << 40), (7, 7),
    ],
)  # fmt: skip
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("-1GiB", "must not be negative"), ("lots", "cannot read"), ("2XB", "unknown size unit"),
        ("inf", "cannot read"), ("nan", "cannot read"), ("1e300", "larger than the maximum"),
        ("", "cannot read"), ("9EiB", "unknown size unit"), ("64 MiB/s", "cannot read"),
    ],
)  # fmt: skip
def test_parse_size_rejects(text, needle):
    with pytest.raises(ValueError, match=needle):
        parse_size(text)


def test_parse_size_bounds():
    assert parse_size(str(MAX_SIZE)) == MAX_SIZE
    with pytest.raises(ValueError, match="larger than the maximum"):
        parse_size(str(MAX_SIZE + 1))
    with pytest.raises(ValueError, match="at least 1 bytes"):
        parse_size("0", allow_zero=False)
    with pytest.raises(ValueError, match="at least 1,048,576 bytes"):
        parse_size("1KiB", minimum=MiB)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("64MiB/s", 64.0 * MiB), ("100MB/s", 100e6), ("1GiBps", float(GiB)), ("0", None),
        ("none", None), ("unlimited", None), ("0MiB/s", None),
    ],
)  # fmt: skip
def test_parse_rate(text, expected):
    assert parse_rate(text) == expected


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("64", "cannot read"), ("64/s", "needs a unit"), ("-5MiB/s", "must not be negative"),
        ("infMiB/s", "cannot read"), ("1e300MB/s", "larger than the maximum"), ("fast", "cannot read"),
    ],
)  # fmt: skip
def test_parse_rate_rejects(text, needle):
    with pytest.raises(ValueError, match=needle):
        parse_rate(text)


@pytest.mark.parametrize(
    ("text", "unit", "expected"),
    [("250ms", "s", 0.25), ("5s", "ms", 5.0), ("2m", "s", 120.0), ("1h", "s", 3600.0),
     ("20", "ms", 0.02), ("0.2", "s", 0.2), ("0", "s", 0.0)],
)  # fmt: skip
def test_parse_duration(text, unit, expected):
    assert math.isclose(parse_duration(text, unit=unit), expected)


@pytest.mark.parametrize(
    ("text", "needle"),
    [("inf", "cannot read"), ("1e300", "longer than the maximum"), ("-1", "must not be negative"),
     ("5 parsecs", "unknown time unit"), ("soon", "cannot read")],
)  # fmt: skip
def test_parse_duration_rejects(text, needle):
    with pytest.raises(ValueError, match=needle):
        parse_duration(text)


def test_parse_port():
    assert parse_port("0") == 0 and parse_port(65535) == 65535
    for bad in ("70000", "-1", "http", "1.5"):
        with pytest.raises(ValueError, match="port"):
            parse_port(bad)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("embedded", "embedded"), ("container", "container"),
     ("http://127.0.0.1:4443/", "http://127.0.0.1:4443"), ("127.0.0.1:9000", "http://127.0.0.1:9000"),
     ("https://storage.example:443", "https://storage.example:443")],
)  # fmt: skip
def test_parse_backend_spec(spec, expected):
    assert parse_backend_spec(spec) == expected


@pytest.mark.parametrize(
    "spec", ["ftp://x", "http://user:pw@h:1", "http://h:70000", "floppy", "http://h:1/path", ""]
)
def test_backend_spec_rejected_the_same_way_by_library_and_cli(spec):
    with pytest.raises(ValueError, match="must"):
        parse_backend_spec(spec)
    if spec:  # "" means $STORAGE_EMULATOR_HOST or embedded for start_backend
        with pytest.raises(BackendError, match="unknown backend"):
            start_backend(spec)


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    line = _one_error_line(proc)
    assert proc.stdout == ""
    return line


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["serve", "--port", "70000"], "--port must be a port 0-65535"),
        (["serve", "--backend-port", "-1"], "--backend-port"),
        (["serve", "--duration", "inf"], "--duration 'inf'"),
        (["serve", "--duration", "1e300"], "longer than the maximum"),
        (["serve", "--latency-ms", "1e300"], "shaping: --latency-ms"),
        (["serve", "--bandwidth", "100"], "shaping: --bandwidth '100'"),
        (["serve", "--bandwidth-mbps", "nan"], "shaping: --bandwidth-mbps"),
        (["serve", "--backend", "http://h:1/path"], "--backend must be"),
        (["serve", "--no-such-flag"], "No such option"),
        (["serve", "--port", "abc"], "cannot read 'abc' as a port"),
        (["tune", "--memory-budget", "0"], "--memory-budget '0'"),
        (["tune", "--memory-budget", "1e30GiB"], "larger than the maximum"),
        (["tune", "--bandwidth", "fast"], "bad timing: --bandwidth 'fast'"),
        (["tune", "--overhead-ms", "nan"], "bad timing: --overhead-ms"),
        (["tune", "--workers", "x"], "Invalid value for '--workers'"),
        (["tune", "--out", "/proc/gcs-hook-cannot-write-here"], "--out"),
        (["replay", "--engine", "tf", "--random", "x"], "--random"),
    ],
)
def test_bad_values_one_line_exit_2(args, needle):
    """In-process; the tests below run the console script (serve, tune) in a real process."""
    line = one_error_line(cli_in_process(*args))
    assert needle in line, line


def test_tune_out_checked_before_any_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    line = one_error_line(run_cli("tune", "--out", str(blocker / "sub")))
    assert "--out" in line and "not a directory" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_deprecated_bandwidth_mbps_still_works_and_warns(tmp_path):
    proc = run_cli(
        "serve", "--bandwidth-mbps", "100", "--duration", "0.2",
        "--state-file", str(tmp_path / "state.json"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (
        "gcs-hook: warning: --bandwidth-mbps is deprecated; use --bandwidth 100MB/s" in proc.stderr
    )
    assert "bandwidth_bytes_per_s=100000000.0" in proc.stderr


def test_bandwidth_rate_with_units(tmp_path):
    proc = run_cli(
        "serve", "--bandwidth", "64MiB/s", "--latency-ms", "20ms", "--duration", "200ms",
        "--state-file", str(tmp_path / "state.json"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "bandwidth_bytes_per_s=67108864.0" in proc.stderr
    assert "first_byte_latency_s=0.02" in proc.stderr
    assert "deprecated" not in proc.stderr


def test_both_bandwidth_flags_conflict():
    line = one_error_line(run_cli("serve", "--bandwidth", "1MiB/s", "--bandwidth-mbps", "5"))
    assert "not both" in line
