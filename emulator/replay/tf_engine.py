"""The TensorFlow side of ``gcs-hook replay --engine tf``: runs trace ops inside a TF process.

This module is imported INSIDE a :class:`emulator.replay.tf_worker.TfWorker` subprocess
(TensorFlow already imported, the front's environment set before import).
:mod:`emulator.replay.tf_replayer` drives it one op at a time, so the parent can mark the
front's ledger between ops and do the backend-side ops (object creation, overwrite, delete,
sleep) itself.

How reads reach TensorFlow: through the project's native ops (:mod:`gcs_hook.native_ops`):
``gcs_random_access_open`` calls ``Env::NewRandomAccessFile`` on the ``gs://`` filesystem (TF's
own ``RetryingGcsFileSystem``), ``gcs_random_access_read`` calls ``RandomAccessFile::Read(offset,
n)`` on it and returns the data together with the status code name (partial data is kept when the
status is an error, e.g. OUT_OF_RANGE at EOF). No ``GFile`` is involved (GFile would add its own
512 KiB buffered stream in front of the filesystem). ``configure`` uses
``gcs_configure_block_cache`` (``GcsFileSystem::ResetFileBlockCache`` unless all three values are
unchanged); ``stat`` uses ``tf.io.gfile.stat`` (``FileSystem::Stat`` through TF's stat cache).

Invariants:
- Handle names are chosen by the caller and must be unique within the process for as long as
  they are open; :func:`close_all` closes every handle this module opened.
- Read results carry the SHA-256 of the returned bytes, never the bytes themselves, so results
  stay small whatever the read size.
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from emulator.model.cache_config import CacheConfig

_ops: Any = None
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_open_handles: set[str] = set()


# Status code names by number (tensorflow/core/protobuf/error_codes.proto).
_CODE_NAMES = {
    0: "OK",
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    15: "DATA_LOSS",
    16: "UNAUTHENTICATED",
}


def _native() -> Any:
    global _ops
    if _ops is None:
        from gcs_hook import native_ops

        _ops = native_ops.load()
    return _ops


def _text(value: Any) -> str:
    """A scalar string tensor (or bytes/str) as ``str``."""
    if hasattr(value, "numpy"):
        value = value.numpy()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _code_name(code: Any) -> str | None:
    """Normalise a status code (name or number) to a name; ``None`` for OK."""
    if hasattr(code, "numpy"):
        code = code.numpy()
    if isinstance(code, bytes):
        code = code.decode()
    if isinstance(code, str):
        name = code.strip().upper()
        if name.isdigit():
            name = _CODE_NAMES.get(int(name), name)
    else:
        name = _CODE_NAMES.get(int(code), str(code))
    return None if name in ("", "OK") else name


def params() -> list[int]:
    """The current cache parameters ``[block_size, max_bytes, max_staleness]``."""
    values = _native().gcs_block_cache_params()
    if hasattr(values, "numpy"):
        values = values.numpy()
    return [int(v) for v in values]


def configure(block_size: int, max_bytes: int, max_staleness: int) -> list[int]:
    """Run the configure op (TF skips the reset when all three values are unchanged)."""
    _native().gcs_configure_block_cache(
        max_cache_size=max_bytes, block_size=block_size, max_staleness=max_staleness
    )
    return params()


def fresh_cache(block_size: int, max_bytes: int, max_staleness: int) -> list[int]:
    """Install a brand-new, empty block cache with these parameters.

    The op skips a reset when the parameters are unchanged, which would keep blocks (and file
    signatures) of an earlier trace; so when they already match, reset to a different cache
    first. Guarantees: afterwards the cache holds nothing and has exactly these parameters.
    """
    if params() == [block_size, max_bytes, max_staleness]:
        configure(block_size + 1, max_bytes, max_staleness)
    return configure(block_size, max_bytes, max_staleness)


def open_file(handle: str, path: str) -> None:
    """Open ``path`` (``gs://…``) as a TF random-access file under ``handle`` (no request)."""
    _native().gcs_random_access_open(handle=handle, path=path)
    _open_handles.add(handle)
    _positions.pop(handle, None)


def read(handle: str, offset: int, n: int) -> dict[str, Any]:
    """One positional read: ``{"returned", "sha256", "error"}`` (error = status code name)."""
    import tensorflow as tf

    try:
        data, code, _message = _native().gcs_random_access_read(handle=handle, offset=offset, n=n)
    except tf.errors.OpError as exc:  # e.g. an unknown handle: the op itself fails
        return {"returned": 0, "sha256": _EMPTY_SHA256, "error": _code_name(exc.error_code)}
    raw = data.numpy() if hasattr(data, "numpy") else data
    if isinstance(raw, str):
        raw = raw.encode("latin-1")
    return {
        "returned": len(raw),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "error": _code_name(code),
    }


def close(handle: str) -> None:
    """Close a handle opened by :func:`open_file`."""
    _native().gcs_random_access_close(handle=handle)
    _open_handles.discard(handle)


def close_all() -> int:
    """Close every handle still open; returns how many were closed."""
    handles = sorted(_open_handles)
    for handle in handles:
        close(handle)
    return len(handles)


def stat(path: str) -> dict[str, Any]:
    """``FileSystem::Stat`` through TF's stat cache: ``{"size", "error"}``."""
    import tensorflow as tf

    try:
        info = tf.io.gfile.stat(path)
    except tf.errors.OpError as exc:
        return {"size": None, "error": _code_name(exc.error_code)}
    return {"size": int(info.length), "error": None}


_positions: dict[str, int] = {}


def tail(handle: str, chunk: int) -> list[dict[str, Any]]:
    """The trace's ``tail`` op on an open handle (see emulator.replay.trace.TailOp): a 1-byte
    read at ``position - 1`` if the position is > 0, then ``chunk`` reads from the position until
    a short one. Returns each read as ``{"handle", "offset", "n", "returned", "sha256",
    "error"}``."""
    pos = _positions.get(handle, 0)
    out = []
    if pos > 0:
        out.append({"offset": pos - 1, "n": 1, **read(handle, pos - 1, 1)})
    while True:
        one = read(handle, pos, chunk)
        out.append({"offset": pos, "n": chunk, **one})
        pos += one["returned"]
        if one["returned"] < chunk:
            break
    _positions[handle] = pos
    return out


def remove(path: str) -> dict[str, Any]:
    """The program's own delete through TF (``tf.io.gfile.remove``: a DELETE, then TF clears
    the file's caches). ``{"error"}``."""
    import tensorflow as tf

    try:
        tf.io.gfile.remove(path)
    except tf.errors.OpError as exc:
        return {"error": _code_name(exc.error_code)}
    return {"error": None}


def write(
    path: str, name: str, version: int, size: int, earlier: list | None = None
) -> dict[str, Any]:
    """The program's own write: version ``version`` of trace object ``name`` uploaded through
    TF's GCS filesystem (``GFile`` write + close: a resumable upload, after which TF clears the
    file's block-cache and stat-cache entries); ``earlier``: the append chain it keeps as its
    prefix. ``{"error"}``."""
    import tensorflow as tf

    from emulator.replay.objects import TraceObject

    chain = tuple((int(v), int(s)) for v, s in earlier or ())
    try:
        with tf.io.gfile.GFile(path, "wb") as fh:
            fh.write(TraceObject(name, version, size, chain).read(0, size))
    except tf.errors.OpError as exc:
        return {"error": _code_name(exc.error_code)}
    return {"error": None}


def run_op(op: dict[str, Any], path: str | None = None, handle: str | None = None) -> Any:
    """Run one TF-side trace op (``open``/``read``/``close``/``stat``/``configure``).

    ``path`` is the real ``gs://`` path for ``open``/``stat``; ``handle`` is the process-unique
    handle name the caller mapped the trace's handle to.
    """
    kind = op["op"]
    if kind == "open":
        open_file(handle, path)
        return None
    if kind == "read":
        return read(handle, int(op["offset"]), int(op["n"]))
    if kind == "close":
        close(handle)
        return None
    if kind == "tail":
        return tail(handle, int(op["chunk"]))
    if kind == "stat":
        return stat(path)
    if kind == "configure":
        return configure(*CacheConfig.of(op["config"]).as_tuple())
    raise ValueError(f"not a TF-side trace op: {kind!r}")


def concurrent_reads(handle: str, reads: list[list[int]], threads: int) -> list[dict[str, Any]]:
    """Run positional reads ``[offset, n]`` on one open handle from ``threads`` Python threads
    at once (the read op runs without the GIL, so the reads really overlap inside TF's cache);
    results in the order of ``reads``."""
    start = threading.Barrier(max(1, min(threads, len(reads))))

    def one(item: list[int]) -> dict[str, Any]:
        return read(handle, int(item[0]), int(item[1]))

    def first(item: list[int]) -> dict[str, Any]:
        start.wait(timeout=60)  # line the threads up so the first reads collide
        return one(item)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        head = [pool.submit(first, item) for item in reads[:threads]]
        tail = [pool.submit(one, item) for item in reads[threads:]]
        return [f.result(timeout=120) for f in head + tail]
