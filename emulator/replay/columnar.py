"""Columnar traces: a trace's ops as numpy columns, and a binary file that memory-maps.

A JSON trace (docs/trace-format.md) holds one dict per op; at tens of millions of reads that is
~900 bytes per read in Python. :class:`ColumnarTrace` holds the same trace as five numpy columns
(25 bytes per op) plus the object table, and :func:`save_columnar` / :func:`load_columnar` store
it in a ``.npz`` file (uncompressed) whose columns load as read-only memory maps, so processes
that sweep the same trace share one copy in the page cache.

Columns (one row per op, in trace order):

========  =======  ================================================================
column    dtype    meaning
========  =======  ================================================================
kind      uint8    0 open, 1 read, 2 close, 3 stat, 4 sleep (:data:`OPEN` ...)
handle    int32    handle id (open/read/close; ids are dense, reused ids = reused names);
                   -1 otherwise
obj       int32    object id (index into ``names``/``sizes``) for open/read/close/stat —
                   for read and close, the object of the handle's open; -1 for sleep
offset    int64    read: offset; sleep: index into ``seconds``; 0 otherwise
n         int64    read: n; open: the opens left out before it by sampling (0 in a full
                   trace, see ``select_objects``); 0 otherwise
========  =======  ================================================================

plus ``sizes`` (int64, one per object), ``seconds`` (float64, one per sleep op), and ``meta`` (the
UTF-8 JSON ``{"format": "gcs-hook-columnar", "version": 1, "names": [...], "config": ...,
"stat_cache_max_age": ...}`` as a uint8 array). No pickled objects: the file loads with
``allow_pickle=False``.

Scope: the ops that read (open/read/close/stat/sleep) of objects named in ``objects``. A trace
with overwrite, delete, configure (or ops on objects it does not name) stays JSON:
:func:`from_dict` raises ``NotImplementedError`` for it — the fast engines' convention.

Invariants: ``to_dict(from_dict(t)) == t`` up to handle names (``h<id>``) and key order; every
read/close names a handle opened before it; every column has the same length.

Length: just over 400 lines; the column layout, its conversions to and from JSON traces and
the ``.npz`` file are one format and are kept in one place (the checked reading of the file's
zip members is :mod:`emulator.replay.npz_members`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emulator.atomic_files import atomic_writer
from emulator.replay.limits import TraceError
from emulator.replay.npz_members import read_members

__all__ = [
    "CLOSE",
    "OPEN",
    "READ",
    "SLEEP",
    "STAT",
    "ColumnBuilder",
    "ColumnarTrace",
    "concat",
    "from_dict",
    "load_columnar",
    "save_columnar",
    "to_dict",
]

OPEN, READ, CLOSE, STAT, SLEEP = range(5)
_KIND_NAMES = ("open", "read", "close", "stat", "sleep")
_FORMAT = "gcs-hook-columnar"
_VERSION = 1
COLUMNS = ("kind", "handle", "obj", "offset", "n")
_DTYPES = {
    "kind": np.uint8,
    "handle": np.int32,
    "obj": np.int32,
    "offset": np.int64,
    "n": np.int64,
}


@dataclass
class ColumnarTrace:
    """A trace as columns (see the module docstring for their meaning)."""

    names: list[str]
    sizes: np.ndarray
    kind: np.ndarray
    handle: np.ndarray
    obj: np.ndarray
    offset: np.ndarray
    n: np.ndarray
    seconds: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    config: dict[str, int] | None = None
    stat_cache_max_age: int | None = None

    def __len__(self) -> int:
        return int(self.kind.shape[0])

    @property
    def n_reads(self) -> int:
        return int(np.count_nonzero(self.kind == READ))

    @property
    def n_handles(self) -> int:
        return int(self.handle.max()) + 1 if len(self) else 0

    @property
    def nbytes(self) -> int:
        """Bytes held by the columns (what one copy of the trace costs)."""
        arrays = (self.kind, self.handle, self.obj, self.offset, self.n, self.sizes, self.seconds)
        return int(sum(a.nbytes for a in arrays))

    def columns(self) -> dict[str, np.ndarray]:
        return {c: getattr(self, c) for c in COLUMNS}

    def objects(self) -> dict[str, int]:
        return dict(zip(self.names, (int(s) for s in self.sizes), strict=True))

    def max_read_end(self) -> np.ndarray:
        """Per object, the largest ``offset + n`` of its reads with ``n > 0`` (0 if none)."""
        out = np.zeros(len(self.names), np.int64)
        mask = (self.kind == READ) & (self.n > 0)
        if mask.any():
            np.maximum.at(out, self.obj[mask], self.offset[mask] + self.n[mask])
        return out

    def select_objects(self, keep: np.ndarray) -> ColumnarTrace:
        """The sub-trace of the ops on objects where ``keep[obj]`` (sleeps are kept); the object
        table is unchanged, handles are renumbered densely in order of first appearance, and
        each kept open's ``n`` counts the opens left out since the previous kept open."""
        keep = np.asarray(keep, bool)
        mask = self.kind == SLEEP
        mask |= keep[np.where(self.obj >= 0, self.obj, 0)] & (self.obj >= 0)
        handle = self.handle[mask]
        has = handle >= 0
        new_handle = np.full(handle.shape, -1, np.int32)
        if has.any():
            _, first, inverse = np.unique(handle[has], return_index=True, return_inverse=True)
            # rank ids by first appearance so renumbering keeps "opened in order" numbering
            order = np.argsort(first, kind="stable")
            rank = np.empty_like(order)
            rank[order] = np.arange(order.size)
            new_handle[has] = rank[inverse].astype(np.int32)
        # an open's n counts the opens left out before it (each worth 1 + its own n)
        opens = self.kind == OPEN
        weight = np.where(opens & ~mask, 1 + self.n, 0)
        left_out = np.cumsum(weight)
        kept_open_idx = np.flatnonzero(opens & mask)
        n = self.n[mask].copy()
        if kept_open_idx.size:
            at = left_out[kept_open_idx]
            gaps = np.diff(np.concatenate([[0], at])) + self.n[kept_open_idx]
            n[np.flatnonzero(self.kind[mask] == OPEN)] = gaps
        return ColumnarTrace(
            names=self.names,
            sizes=self.sizes,
            kind=self.kind[mask],
            handle=new_handle,
            obj=self.obj[mask],
            offset=self.offset[mask],
            n=n,
            seconds=self.seconds,
            config=self.config,
            stat_cache_max_age=self.stat_cache_max_age,
        )


class ColumnBuilder:
    """Appends ops into columns chunk by chunk (Python lists up to ``chunk`` ops, then numpy),
    so memory stays ~25 bytes per op plus one chunk."""

    def __init__(self, objects: Mapping[str, int], chunk: int = 1 << 20) -> None:
        self.names = list(objects)
        self.index = {n: i for i, n in enumerate(self.names)}
        self.sizes = np.fromiter((int(objects[n]) for n in self.names), np.int64, len(self.names))
        self._chunk = chunk
        self._parts: dict[str, list[np.ndarray]] = {c: [] for c in COLUMNS}
        self._cur: dict[str, list[int]] = {c: [] for c in COLUMNS}
        self._seconds: list[float] = []
        self._next_handle = 0

    def _row(self, kind: int, handle: int, obj: int, offset: int, n: int) -> None:
        cur = self._cur
        cur["kind"].append(kind)
        cur["handle"].append(handle)
        cur["obj"].append(obj)
        cur["offset"].append(offset)
        cur["n"].append(n)
        if len(cur["kind"]) >= self._chunk:
            self.flush()

    def open(self, obj: int) -> int:
        h = self._next_handle
        self._next_handle += 1
        self._row(OPEN, h, obj, 0, 0)
        return h

    def read(self, handle: int, obj: int, offset: int, n: int) -> None:
        self._row(READ, handle, obj, offset, n)

    def close(self, handle: int, obj: int) -> None:
        self._row(CLOSE, handle, obj, 0, 0)

    def stat(self, obj: int) -> None:
        self._row(STAT, -1, obj, 0, 0)

    def sleep(self, seconds: float) -> None:
        self._seconds.append(float(seconds))
        self._row(SLEEP, -1, -1, len(self._seconds) - 1, 0)

    def add_columns(self, cols: Mapping[str, np.ndarray]) -> None:
        """Append a block of rows given as columns (handles as given; no sleeps)."""
        self.flush()
        for c in COLUMNS:
            self._parts[c].append(np.asarray(cols[c], _DTYPES[c]))
        if len(cols["handle"]):
            self._next_handle = max(self._next_handle, int(np.max(cols["handle"])) + 1)

    def flush(self) -> None:
        if not self._cur["kind"]:
            return
        for c in COLUMNS:
            self._parts[c].append(np.array(self._cur[c], _DTYPES[c]))
            self._cur[c] = []

    def build(
        self, config: dict[str, int] | None = None, stat_cache_max_age: int | None = None
    ) -> ColumnarTrace:
        self.flush()
        cols = {
            c: (np.concatenate(p) if p else np.zeros(0, _DTYPES[c])) for c, p in self._parts.items()
        }
        self._parts = {c: [] for c in COLUMNS}
        return ColumnarTrace(
            names=self.names,
            sizes=self.sizes,
            seconds=np.array(self._seconds, np.float64),
            config=config,
            stat_cache_max_age=stat_cache_max_age,
            **cols,
        )


def from_dict(trace: Mapping[str, Any]) -> ColumnarTrace:
    """Columns of a JSON-shaped trace dict; ``NotImplementedError`` for ops outside the scope."""
    objects = trace.get("objects") or {}
    b = ColumnBuilder(objects)
    handles: dict[str, int] = {}
    handle_obj: dict[int, int] = {}
    for op in trace.get("ops") or []:
        kind = op.get("op")
        if kind == "open":
            obj = b.index.get(op["object"])
            if obj is None:
                raise NotImplementedError(
                    f"the fast engine does not model missing objects ({op['object']!r}); "
                    "use engine='model'"
                )
            h = handles.setdefault(op["handle"], len(handles))
            handle_obj[h] = obj
            b._row(OPEN, h, obj, 0, 0)
        elif kind == "read":
            h = handles[op["handle"]]
            b.read(h, handle_obj[h], int(op["offset"]), int(op["n"]))
        elif kind == "close":
            h = handles[op["handle"]]
            b.close(h, handle_obj[h])
        elif kind == "stat":
            obj = b.index.get(op["object"])
            if obj is None:
                raise NotImplementedError("the fast engine does not model missing objects")
            b.stat(obj)
        elif kind == "sleep":
            b.sleep(float(op["seconds"]))
        else:
            raise NotImplementedError(
                f"the fast engine does not model {kind!r} ops; use engine='model'"
            )
    age = trace.get("stat_cache_max_age")
    return b.build(trace.get("config"), None if age is None else int(age))


def to_dict(ct: ColumnarTrace) -> dict[str, Any]:
    """The JSON-shaped trace of ``ct`` (handles named ``h<id>``)."""
    ops: list[dict[str, Any]] = []
    names = ct.names
    for k, h, o, off, n in zip(
        ct.kind.tolist(), ct.handle.tolist(), ct.obj.tolist(), ct.offset.tolist(), ct.n.tolist(),
        strict=True,
    ):  # fmt: skip
        if k == OPEN:
            ops.append({"op": "open", "handle": f"h{h}", "object": names[o]})
        elif k == READ:
            ops.append({"op": "read", "handle": f"h{h}", "offset": off, "n": n})
        elif k == CLOSE:
            ops.append({"op": "close", "handle": f"h{h}"})
        elif k == STAT:
            ops.append({"op": "stat", "object": names[o]})
        else:
            ops.append({"op": "sleep", "seconds": float(ct.seconds[off])})
    out: dict[str, Any] = {"config": ct.config, "objects": ct.objects(), "ops": ops}
    if ct.stat_cache_max_age is not None:
        out["stat_cache_max_age"] = ct.stat_cache_max_age
    return out


def concat(parts: Iterable[ColumnarTrace]) -> ColumnarTrace:
    """Traces over the same object table one after another (handle ids kept as they are)."""
    parts = list(parts)
    first = parts[0]
    sec_base = np.cumsum([0] + [p.seconds.size for p in parts[:-1]])
    offsets = []
    for p, base in zip(parts, sec_base, strict=True):
        off = p.offset
        if base and (p.kind == SLEEP).any():
            off = np.where(p.kind == SLEEP, off + base, off)
        offsets.append(off)
    return ColumnarTrace(
        names=first.names,
        sizes=first.sizes,
        kind=np.concatenate([p.kind for p in parts]),
        handle=np.concatenate([p.handle for p in parts]),
        obj=np.concatenate([p.obj for p in parts]),
        offset=np.concatenate(offsets),
        n=np.concatenate([p.n for p in parts]),
        seconds=np.concatenate([p.seconds for p in parts]),
        config=first.config,
        stat_cache_max_age=first.stat_cache_max_age,
    )


def save_columnar(ct: ColumnarTrace, path: str | os.PathLike) -> None:
    """Write ``ct`` to ``path`` (``.npz``, uncompressed, every member memory-mappable)."""
    meta = {
        "format": _FORMAT,
        "version": _VERSION,
        "names": ct.names,
        "config": ct.config,
        "stat_cache_max_age": ct.stat_cache_max_age,
    }
    meta_arr = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    with atomic_writer(path, text=False) as f:  # atomic, never through a symlink
        np.savez(f, meta=meta_arr, sizes=ct.sizes, seconds=ct.seconds, **ct.columns())


#: dtype of each member a columnar file may hold (anything else is refused unread).
MEMBER_DTYPES = {"meta": np.uint8, "sizes": np.int64, "seconds": np.float64, **_DTYPES}


def _meta(arrays: Mapping[str, np.ndarray], where: str) -> dict[str, Any]:
    try:
        meta = json.loads(bytes(np.asarray(arrays["meta"])).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise TraceError(f"{where}: meta is not UTF-8 JSON") from None
    if not isinstance(meta, dict):
        raise TraceError(f"{where}: meta is not a JSON object")
    if meta.get("format") != _FORMAT or meta.get("version") != _VERSION:
        raise TraceError(f"{where}: not a {_FORMAT} v{_VERSION} file")
    names = meta.get("names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise TraceError(f"{where}: meta 'names' must be a list of strings")
    if meta.get("config") is not None and not isinstance(meta["config"], dict):
        raise TraceError(f"{where}: meta 'config' must be an object or null")
    return meta


def load_columnar(path: str | os.PathLike, *, mmap: bool = True) -> ColumnarTrace:
    """Read a file written by :func:`save_columnar`; with ``mmap`` the columns are read-only
    memory maps (pages shared by every process mapping the same file).

    Checks the file's structure only (members, dtypes, lengths; ``TraceError``, one line);
    :func:`emulator.replay.reader.check_columns` checks what the columns say."""
    where = os.path.basename(path)
    arrays = read_members(path, MEMBER_DTYPES, mmap=mmap)
    missing = {"meta", "sizes", "seconds", *COLUMNS} - set(arrays)
    if missing:
        raise TraceError(f"{where}: not a columnar trace (missing {', '.join(sorted(missing))})")
    meta = _meta(arrays, where)
    lengths = {arrays[c].shape[0] for c in COLUMNS}
    if len(lengths) != 1:
        raise TraceError(f"{where}: columns of different lengths")
    if arrays["sizes"].shape[0] != len(meta["names"]):
        raise TraceError(
            f"{where}: {len(meta['names'])} names for {arrays['sizes'].shape[0]} object sizes"
        )
    ct = ColumnarTrace(
        names=list(meta["names"]),
        sizes=np.asarray(arrays["sizes"], np.int64),
        seconds=np.asarray(arrays["seconds"], np.float64),
        config=meta.get("config"),
        stat_cache_max_age=meta.get("stat_cache_max_age"),
        **{c: arrays[c] for c in COLUMNS},
    )
    if mmap:
        ct._path = os.fspath(path)  # type: ignore[attr-defined]  # workers map the same file
    return ct


def kind_name(kind: int) -> str:
    return _KIND_NAMES[kind]
