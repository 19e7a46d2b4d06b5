"""Bad arguments of ``gcs-hook record`` and of tune's new flags: one line, exit 2, nothing
written; ``parse_configs``; the advice rules; the ledger → trace rules (no TF needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _support import cli_in_process, one_error_line

from benchmarks.record.ledger import infer_start_sizes, ledger_to_trace
from benchmarks.sweep import CacheConfig, PointResult
from benchmarks.tune.advice import recommend
from emulator.fakegcs.ledger import RequestRecord
from gcs_hook.cli.tune_options import parse_configs

MiB = 1024 * 1024
CLI = [sys.executable, "-c", "from gcs_hook.cli import main; main()"]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run the CLI in ``cwd`` with no reachable Docker engine (a dead socket), so the
    container case fails the same way whether or not this machine runs one."""
    env = {**os.environ, "DOCKER_HOST": f"unix://{cwd}/no-engine.sock"}
    return subprocess.run(
        [*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["record", "--out", "t.json"], "give the program to record after --"),
        (["record", "--out", "t.json", "--from-ledger", "nope.jsonl"], "does not exist"),
        (["record", "--out", "t.json", "--data", "nodir", "--", "true"], "is not a directory"),
        (["record", "--out", "no/such/dir/t.json", "--", "true"], "does not exist"),
        (["record", "--out", "t.json", "--min-sleep-ms", "-1", "--", "true"], "must be >= 0"),
        (["record", "--out", "t.json", "--from-ledger", "l.jsonl", "--", "true"], "do not also"),
        (["record", "--out", "t.json", "--backend", "ftp://x", "--", "true"], "--backend must be"),
        (["record", "--out", "t.json", "--backend", "container", "--", "true"], "container"),
        (["record", "--out", "t.json", "--principal", "x", "--", "true"], "--principal goes"),
        (["tune", "--configs", "1MiB", "--out", "o"], "is not BLOCK/MAX_BYTES"),
        (["tune", "--configs", "1MiB/lots/0", "--out", "o"], "cannot read 'lots'"),
        (["tune", "--configs", "4MiB/1MiB/0", "--out", "o"], "smaller than one block"),
        (["tune", "--configs", "0/4MiB", "--out", "o"], "write 'off'"),
        (["tune", "--with-grid", "--out", "o"], "--with-grid goes with --configs"),
    ],
)
def test_bad_arguments_one_line_exit_2(tmp_path, args, needle) -> None:
    """In-process, with no reachable Docker engine as in ``_run``; the test below runs the
    console script in a real process."""
    (tmp_path / "l.jsonl").write_text("")
    env = {"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    assert needle in one_error_line(cli_in_process(*args, cwd=tmp_path, env=env))
    assert not (tmp_path / "t.json").exists() and not (tmp_path / "o").exists()


def test_bad_ledger_line_is_one_line(tmp_path) -> None:
    (tmp_path / "bad.jsonl").write_text('{"seq": 1}\n')
    res = _run("record", "--from-ledger", "bad.jsonl", "--out", "t.json", cwd=tmp_path)
    assert res.returncode == 2 and "bad.jsonl:1: not a ledger record" in res.stderr
    assert not (tmp_path / "t.json").exists()


def test_parse_configs() -> None:
    assert parse_configs("1MiB/4MiB/0, 8MiB/32MiB/60,off,256KiB/1MiB") == [
        CacheConfig(MiB, 4 * MiB, 0),
        CacheConfig(8 * MiB, 32 * MiB, 60),
        CacheConfig(0, 0, 0),
        CacheConfig(256 * 1024, MiB, 0),
    ]


def _pr(block: int, max_bytes: int, seconds: float, **hz: int) -> PointResult:
    return PointResult(CacheConfig(block, max_bytes, 0), 10, 8, 2, 1000, seconds, 1, 0, **hz)


def test_advice_near_ties_go_to_less_memory_and_hazards_are_excluded() -> None:
    results = [
        _pr(256 * MiB, 1024 * MiB, 10.0),
        _pr(64 * MiB, 256 * MiB, 10.2),  # within 5 %: less memory wins
        _pr(64 * MiB, 512 * MiB, 10.2),
        _pr(16 * MiB, 256 * MiB, 10.6),  # 6 % slower: not a tie
        _pr(MiB, 4 * MiB, 5.0, stale_reads=3),  # fastest, but reads stale data
    ]
    best, note = recommend(results, 2 * 1024 * MiB)
    assert best is results[1] and "excluded" in note
    best, _ = recommend(results, 2 * 1024 * MiB, allow_stale=True)
    assert best is results[4]
    best, _ = recommend(results[:3], 320 * MiB)  # budget: max_bytes + the block in flight
    assert best is results[1] and best.memory_bytes == 320 * MiB
    best, note = recommend(results[:3], 300 * MiB)  # 256 MiB fits, 256 MiB + 64 MiB does not
    assert best is None and "fits" in note


def _rec(seq, t, kind, obj, *, method="GET", rng=None, out=0, inn=0, who="test-token",
         status=200, query=None) -> RequestRecord:  # fmt: skip
    return RequestRecord(seq, t, seq, "storage.googleapis.com", method, "/", query or {}, rng,
                         status, out, inn, who, kind, "b", obj, t + 0.01)  # fmt: skip


def test_ledger_rules_handles_writes_overwrites_sleeps() -> None:
    recs = [
        _rec(1, 0.0, "media", "x", rng=(0, 99), out=100),
        _rec(2, 0.01, "media", "x", rng=(100, 199), out=100),  # back to back: no sleep
        _rec(3, 0.5, "media", "x", rng=(0, 99), out=100),  # re-read from 0: a new handle
        _rec(4, 0.6, "metadata", "x"),
        _rec(5, 0.7, "upload", "x", method="PUT", inn=300),  # own write
        _rec(
            6,
            0.8,
            "upload",
            "x",
            method="POST",
            inn=50,
            who="anonymous",
            query={"uploadType": "media"},
        ),  # fmt: skip
        _rec(7, 0.9, "media", "x", rng=(0, 99), out=50, who="anonymous"),  # other client
        _rec(8, 1.0, "list", None),
    ]
    res = ledger_to_trace(recs, {"b/x": 200})
    ops = [(o["op"], o.get("handle"), o.get("offset"), o.get("size")) for o in res.trace["ops"]]
    assert ops == [
        ("open", "h1", None, None),
        ("read", "h1", 0, None),
        ("read", "h1", 100, None),
        ("sleep", None, None, None),
        ("close", "h1", None, None),
        ("open", "h2", None, None),
        ("read", "h2", 0, None),
        ("sleep", None, None, None),
        ("stat", None, None, None),
        ("sleep", None, None, None),
        ("write", None, None, 300),
        ("overwrite", None, None, 50),
        ("close", "h2", None, None),
    ]
    assert res.skipped == {"other-clients": 1, "list": 1}
    # sizes inferred from reads: exact when a read came back short
    assert infer_start_sizes([_rec(1, 0, "media", "y", rng=(0, 999), out=640)]) == {"b/y": 640}


def test_from_ledger_finds_the_reader_among_clients() -> None:
    """A serve ledger: the reader authenticated as a user, another client overwrote anonymously."""
    recs = [
        _rec(1, 0.0, "media", "x", rng=(0, 99), out=100, who="user:abc"),
        _rec(2, 0.1, "upload", "x", method="PUT", inn=70, who="anonymous"),
        _rec(3, 0.2, "media", "x", rng=(100, 199), out=100, who="user:abc"),
    ]
    ops = [o["op"] for o in ledger_to_trace(recs, {"b/x": 200}, own=None).trace["ops"]]
    assert ops == ["open", "read", "overwrite", "sleep", "read", "close"]
    assert [o["op"] for o in ledger_to_trace(recs, {"b/x": 200}).trace["ops"]] == ["overwrite"]
