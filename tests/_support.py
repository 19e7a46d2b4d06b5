"""Shared test helpers: content, hashes, ledger ranges, the suite traces' folder, and the code
that runs inside a TfWorker (tests/hook/, tests/fakegcs/test_tf_through_front.py, ...)."""

from __future__ import annotations

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
