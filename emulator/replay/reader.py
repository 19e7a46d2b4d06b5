"""The one trace reader: JSON and columnar ``.npz`` traces, one set of limits, one error.

:func:`read_trace_file` is what ``gcs-hook tune`` and ``gcs-hook replay`` (both engines) read a
trace file with; :func:`parse_document` is its JSON half for an already-parsed document.
Whatever a file holds, the only exception is :class:`~emulator.replay.limits.TraceError` with
a one-line message naming the file's base name (never a directory) and where in it.

- JSON: :func:`emulator.replay.trace.read_json_file` (size bound, UTF-8, JSON, nesting), then
  :func:`emulator.replay.trace.load_trace` (every op), then :func:`check_byte_counts`.
- Columnar: :func:`emulator.replay.columnar.load_columnar` (members, dtypes, declared sizes
  before inflating), then :func:`check_columns`: every column against :data:`KIND_RULES`.

Invariants (both forms, checked before anything runs): every op kind is known; object
indices are in range and handles dense; a read or close follows an open of its handle on the
same object; offsets, lengths and sizes are >= 0 and within :mod:`emulator.replay.limits`;
sleeps are finite and >= 0; the cache configuration is whole bytes within the limits.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from emulator.replay import columnar as col
from emulator.replay import trace as trace_mod
from emulator.replay.limits import (
    MAX_BLOCK_BYTES,
    MAX_OBJECT_BYTES,
    MAX_READ_BYTES,
    TraceError,
)

__all__ = [
    "KIND_RULES",
    "TraceError",
    "check_byte_counts",
    "check_columns",
    "parse_document",
    "read_trace_file",
]

#: Per op kind of a columnar trace, the rule for each column (extend a row for a new kind):
#: ``"handle"`` an open handle id, ``"obj"`` an index into the object table, ``"any"``
#: unchecked (the engines ignore it), ``"offset"`` / ``"length"`` / ``"count"`` a byte offset,
#: a read length, a count (>= 0 and within the limits), ``"sleep"`` an index into ``seconds``.
KIND_RULES: dict[int, dict[str, str]] = {
    col.OPEN: {"handle": "handle", "obj": "obj", "offset": "any", "n": "count"},
    col.READ: {"handle": "handle", "obj": "obj", "offset": "offset", "n": "length"},
    col.CLOSE: {"handle": "handle", "obj": "obj", "offset": "any", "n": "any"},
    col.STAT: {"handle": "any", "obj": "obj", "offset": "any", "n": "any"},
    col.SLEEP: {"handle": "any", "obj": "any", "offset": "sleep", "n": "any"},
}


def read_trace_file(path: str | os.PathLike) -> dict[str, Any] | col.ColumnarTrace:
    """A validated trace from ``path``: a ``.npz`` file gives a :class:`ColumnarTrace`, any
    other a plain trace dict (a fault case's raw ``"faults"`` list kept for the caller)."""
    if os.fspath(path).endswith(".npz"):
        return check_columns(col.load_columnar(path))
    return _parse_owned(trace_mod.read_json_file(path))


def parse_document(doc: Any) -> dict[str, Any]:
    """A parsed JSON trace (or fault case ``{"trace": ..., "faults": [...]}``) validated into
    the plain dict the engines walk; raw ``"faults"`` kept (:mod:`emulator.replay.loading`
    checks them against the trace)."""
    if not isinstance(doc, Mapping):
        raise TraceError(f"a trace must be a JSON object, not {_json_type(doc)}")
    return _parse_owned(doc, owned=False)


def _parse_owned(doc: Any, *, owned: bool = True) -> dict[str, Any]:
    """:func:`parse_document`; an ``owned`` document (nobody else holds it) is emptied once
    validated, so the raw ops are freed before the result is built (the memory peak is the
    larger of raw + validated and validated + result, not all three); another is copied."""
    if not isinstance(doc, Mapping):
        raise TraceError(f"a trace must be a JSON object, not {_json_type(doc)}")
    doc = doc if owned and isinstance(doc, dict) else dict(doc)
    faults: Any = None
    if "trace" in doc:
        unknown = set(doc) - {"trace", "faults", "comment"}
        if unknown:
            raise TraceError(f"fault case: unknown keys {sorted(unknown)}")
        faults = doc.get("faults") or []
        inner = doc.pop("trace")
        if not isinstance(inner, Mapping):
            raise TraceError(f"fault case: 'trace' must be a JSON object, not {_json_type(inner)}")
        doc = inner if owned and isinstance(inner, dict) else dict(inner)
    if "faults" in doc:
        faults = doc.pop("faults")
    try:
        validated = trace_mod.load_trace(doc)
    except RecursionError:
        raise TraceError("trace: a value is nested too deeply") from None
    except TraceError as exc:
        raise TraceError(_one_line(str(exc))) from None
    doc.clear()
    trace = validated.to_dict()
    del validated
    check_byte_counts(trace)
    if faults:
        trace["faults"] = faults
    return trace


def check_byte_counts(trace: Mapping[str, Any]) -> None:
    """TraceError naming the first object or op of a trace dict beyond the byte limits."""
    for name, size in (trace.get("objects") or {}).items():
        if size > MAX_OBJECT_BYTES:
            raise TraceError(
                f"objects[{name!r}]: {size} bytes is more than GCS's {MAX_OBJECT_BYTES}-byte limit"
            )
    configs = [("config", trace.get("config"))]
    for i, op in enumerate(trace["ops"]):
        where = f"ops[{i}] ({op['op']})"
        if op["op"] == "read" and op["n"] > MAX_READ_BYTES:
            raise TraceError(
                f"{where}: n = {op['n']} is more than the {MAX_READ_BYTES} bytes a replayed "
                "read may ask for (the engines move real bytes)"
            )
        if op["op"] == "read" and op["offset"] > MAX_OBJECT_BYTES:
            raise TraceError(f"{where}: offset {op['offset']} is beyond GCS's object size limit")
        if op["op"] in ("overwrite", "write") and op["size"] > MAX_OBJECT_BYTES:
            raise TraceError(
                f"{where}: {op['size']} bytes is more than GCS's {MAX_OBJECT_BYTES}-byte limit"
            )
        if op["op"] == "configure":
            configs.append((where, op.get("config")))
    for where, config in configs:
        if config is not None and config["block_size"] > MAX_BLOCK_BYTES:
            raise TraceError(
                f"{where}: block_size {config['block_size']} is more than the "
                f"{MAX_BLOCK_BYTES} bytes a replay fetches at once"
            )


#: Rows checked at a time: the checks' temporaries are a few times this many 8-byte values,
#: whatever the trace's length (plus 4 bytes per handle for the open state).
CHECK_CHUNK_ROWS = 1 << 20


def check_columns(ct: col.ColumnarTrace) -> col.ColumnarTrace:
    """``ct`` if every column says something a JSON trace could say, else TraceError naming
    the first bad row. Memory: bounded by :data:`CHECK_CHUNK_ROWS` and the number of handles,
    not by the trace's length (no per-op Python objects)."""
    _check_table(ct)
    n = len(ct)
    handles = min(n, int(np.max(ct.handle)) + 1) if n else 0  # > n: refused by the rules
    open_obj = np.full(max(handles, 1), -1, np.int32)  # per handle: its open's object, or -1
    for start in range(0, n, CHECK_CHUNK_ROWS):
        stop = min(n, start + CHECK_CHUNK_ROWS)
        kind = np.asarray(ct.kind[start:stop])
        known = np.isin(kind, np.fromiter(KIND_RULES, np.uint8))
        if not known.all():
            i = start + int(np.argmin(known))
            raise TraceError(
                f"ops[{i}]: unknown op kind {int(ct.kind[i])} (known: {sorted(KIND_RULES)})"
            )
        for k, rules in KIND_RULES.items():
            rows = np.flatnonzero(kind == k) + start
            if rows.size:
                for column, rule in rules.items():
                    _check_rule(ct, rows, column, rule, col.kind_name(k))
        _check_open_before_use(ct, start, stop, open_obj)
    return ct


def _check_table(ct: col.ColumnarTrace) -> None:
    """Object table, sleeps and configuration, through the JSON validation where it applies."""
    if len(ct.names) != ct.sizes.shape[0]:
        raise TraceError(f"{len(ct.names)} names for {ct.sizes.shape[0]} object sizes")
    if len(set(ct.names)) != len(ct.names):
        raise TraceError("object names are not unique")
    if ct.sizes.size and (ct.sizes.min() < 0 or ct.sizes.max() > MAX_OBJECT_BYTES):
        i = int(np.argmax((ct.sizes < 0) | (ct.sizes > MAX_OBJECT_BYTES)))
        raise TraceError(f"objects[{ct.names[i]!r}]: size {int(ct.sizes[i])} is out of range")
    seconds = np.asarray(ct.seconds)
    if seconds.size and not (np.isfinite(seconds).all() and seconds.min() >= 0):
        i = int(np.argmin(np.isfinite(seconds) & (seconds >= 0)))
        raise TraceError(f"seconds[{i}]: a sleep must be a finite number >= 0, got {seconds[i]}")
    header = {"config": ct.config, "objects": dict.fromkeys(ct.names, 0), "ops": []}
    if ct.stat_cache_max_age is not None:
        header["stat_cache_max_age"] = ct.stat_cache_max_age
    parse_document(header)  # names, config and stat_cache_max_age: the JSON rules and limits


def _check_rule(ct: col.ColumnarTrace, rows: np.ndarray, column: str, rule: str, kind: str):  # noqa: ANN202
    if rule == "any":
        return
    values = np.asarray(getattr(ct, column))[rows]
    low, high = {
        "handle": (0, min(len(ct), int(np.max(ct.handle)) + 1) - 1),
        "obj": (0, len(ct.names) - 1),
        "offset": (0, MAX_OBJECT_BYTES),
        "length": (0, MAX_READ_BYTES),
        "count": (0, len(ct)),
        "sleep": (0, ct.seconds.shape[0] - 1),
    }[rule]
    bad = (values < low) | (values > high)
    if bad.any():
        j = int(np.argmax(bad))
        raise TraceError(
            f"ops[{int(rows[j])}] ({kind}): {column} {int(values[j])} is out of range {low}..{high}"
        )


def _check_open_before_use(
    ct: col.ColumnarTrace, start: int, stop: int, open_obj: np.ndarray
) -> None:
    """Rows ``start:stop``: each read and close follows an open of its handle (none closed
    between) on its object; ``open_obj`` carries each handle's state from chunk to chunk."""
    kind = np.asarray(ct.kind[start:stop])
    rows = np.flatnonzero((kind == col.OPEN) | (kind == col.READ) | (kind == col.CLOSE))
    if not rows.size:
        return
    handle = np.asarray(ct.handle[start:stop])[rows]
    order = np.argsort(handle, kind="stable")  # by handle, trace order within a handle
    rows, handle = rows[order], handle[order]
    k = kind[rows]
    obj = np.asarray(ct.obj[start:stop])[rows]
    pos = np.arange(rows.size)
    first = np.concatenate([[True], handle[1:] != handle[:-1]])
    group_start = np.maximum.accumulate(np.where(first, pos, 0))
    event = (k == col.OPEN) | (k == col.CLOSE)
    before = np.concatenate([[-1], np.maximum.accumulate(np.where(event, pos, -1))[:-1]])
    in_chunk = before >= group_start  # an open or close of this handle earlier in the chunk
    prev = np.maximum(before, 0)
    state = np.where(in_chunk, np.where(k[prev] == col.OPEN, obj[prev], -1), open_obj[handle])
    bad = (k != col.OPEN) & (state != obj)
    if bad.any():
        i = start + int(rows[bad].min())
        raise TraceError(
            f"ops[{i}] ({col.kind_name(int(ct.kind[i]))}): handle {int(ct.handle[i])} is not "
            "open on this object"
        )
    ends = np.flatnonzero(np.concatenate([handle[1:] != handle[:-1], [True]]))
    for_end = np.maximum.accumulate(np.where(event, pos, -1))[ends]
    has = for_end >= group_start[ends]
    h_end = handle[ends][has]
    e = for_end[has]
    open_obj[h_end] = np.where(k[e] == col.OPEN, obj[e], -1)  # each handle's last event


def _json_type(value: Any) -> str:
    """The JSON name of a parsed value's type ("an array", "a number", ...)."""
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "null"
    return type(value).__name__


def _one_line(message: str) -> str:
    """The first line of ``message``, at most 300 characters."""
    first = message.strip().splitlines()[0] if message.strip() else "invalid trace"
    return first if len(first) <= 300 else first[:297] + "..."
