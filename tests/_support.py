"""Shared test helpers: content, hashes, ledger ranges, the suite traces' folder, the code
that runs inside a TfWorker (tests/hook/, tests/fakegcs/test_tf_through_front.py, ...), and
``gcs-hook`` run in-process (:func:`cli_in_process`) with the one-error-line check."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from emulator.replay.trace import digest_chain, sha256_hex

MiB = 1024 * 1024

#: The suite traces (tests/replay/traces/*.json) and fault cases (tests/replay/traces/faults/).
TRACE_DIR = Path(__file__).resolve().parent / "replay" / "traces"

#: Preamble for TfWorker: loads gcs_hook + the ops and defines positional-read helpers.
WORKER_PREAMBLE = """
import json, hashlib
import gcs_hook
from gcs_hook import BlockCacheParams, native_ops
from gcs_hook.hook import current_block_cache
ops = native_ops.load()

def read_at(path, reads, handle=None):
    handle = handle or ('h:' + path)
    ops.gcs_random_access_open(handle, path)
    out = []
    for off, n in reads:
        d, c, m = ops.gcs_random_access_read(handle, off, n)
        d = d.numpy()
        out.append([len(d), c.numpy().decode(), hashlib.sha256(d).hexdigest()])
    ops.gcs_random_access_close(handle)
    return out

def gfile_sha(path):
    with tf.io.gfile.GFile(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()
"""


def data(n: int, seed: str) -> bytes:
    """Deterministic bytes: :func:`emulator.replay.trace.digest_chain` of ``seed``, ``n`` long."""
    return digest_chain(seed, n)


def sha(b: bytes) -> str:
    """Hex SHA-256 (:func:`emulator.replay.trace.sha256_hex`), as the worker's ``read_at`` reports it."""
    return sha256_hex(b)


def media_ranges(ledger, mark: int, bucket: str, obj: str | None = None) -> list[tuple[int, int]]:
    """Range of every media GET since ``mark`` (in order)."""
    ledger.wait_quiet(quiet_s=0.05, timeout=5)
    filters = {"kind": "media", "bucket": bucket}
    if obj is not None:
        filters["object"] = obj
    return [r.range for r in ledger.since(mark, **filters)]


def aligned_blocks(size: int, block: int) -> list[tuple[int, int]]:
    """The aligned full-block ranges TF's cache fetches to read a whole ``size``-byte object."""
    return [(start, start + block - 1) for start in range(0, size, block)]


def cli_in_process(
    *args: str, cwd: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``gcs-hook ARGS`` run in this process through the console script's own ``main()`` (so
    typer's usage errors get the same one line as in a real run), stdout and stderr captured
    with typer's ``CliRunner`` (``env``: overrides of ``os.environ`` for the call; ``cwd``: the
    working directory for the call). The result has a ``CompletedProcess``'s fields, the exit
    code from ``main()``'s ``SystemExit``; any other exception propagates (a traceback is a
    failure). For checks of what a command prints and exits with; a test of a process property
    (signals, the real environment, what a real process writes to stderr) runs the console
    script in a subprocess instead."""
    from typer.testing import CliRunner

    from gcs_hook.cli import main

    argv = ["gcs-hook", *args]
    code: int = 0
    saved_argv, saved_cwd = sys.argv, os.getcwd()
    with CliRunner().isolation(env={"COLUMNS": "200", **(env or {})}) as (out, err, _):
        sys.argv = argv
        try:
            if cwd is not None:
                os.chdir(cwd)
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        finally:
            sys.argv = saved_argv
            os.chdir(saved_cwd)
            sys.stdout.flush()
            sys.stderr.flush()
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    return subprocess.CompletedProcess(argv, code, stdout, stderr)


def one_error_line(res: subprocess.CompletedProcess[str]) -> str:
    """The contract of a refused command: exit code 2 and exactly one line on stderr,
    ``gcs-hook: error: ...`` (no traceback); returns that line."""
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gcs-hook: error: "), res.stderr
    assert "Traceback" not in res.stderr
    return lines[0]
