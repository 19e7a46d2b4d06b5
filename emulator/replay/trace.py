"""The read-trace format and its result format (docs/trace-format.md).

(Over 400 lines on purpose: one small dataclass and one validation branch per op kind keep the
whole format - what a trace may say and what it means - in one place.)

- :func:`load_trace` parses and validates a trace (path, JSON text or dict) into a
  :class:`Trace`; any problem raises :class:`TraceError` naming where it is
  (``ops[3] (read): 'n' must be an integer >= 0``). Validation is complete before anything runs.
- :func:`object_content` is the deterministic content every engine uses: version ``v`` of object
  ``NAME`` is the concatenation of ``sha256(f"{NAME}|{v}|{i}")`` digests for i = 0, 1, ...,
  cut to ``size``.
- :class:`TraceResult` / :class:`ReadRecord` are the result format; two engines agree on a
  trace when their ``requests`` and ``reads`` lists are equal.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

from emulator.fakegcs.names import name_error
from emulator.model.cache_config import CacheConfig
from emulator.replay.limits import MAX_TRACE_FILE_BYTES, TraceError
from emulator.replay.trace_timing import OP_TIMING_KEYS, TraceTiming, op_timing_dict, parse_timing

__all__ = [
    "CacheConfig",
    "CloseOp",
    "ConfigureOp",
    "DeleteOp",
    "Op",
    "OpenOp",
    "OverwriteOp",
    "ReadOp",
    "ReadRecord",
    "RemoveOp",
    "SleepOp",
    "StatOp",
    "Trace",
    "TraceError",
    "TailOp",
    "TraceResult",
    "WriteOp",
    "digest_chain",
    "dump_trace",
    "load_result",
    "load_trace",
    "object_content",
    "sha256_hex",
]


@dataclass(frozen=True)
class OpenOp:
    handle: str
    object: str
    op: str = field(default="open", init=False)


@dataclass(frozen=True)
class ReadOp:
    handle: str
    offset: int
    n: int
    op: str = field(default="read", init=False)


@dataclass(frozen=True)
class CloseOp:
    handle: str
    op: str = field(default="close", init=False)


@dataclass(frozen=True)
class OverwriteOp:
    """Another writer replaces the object with a new version of ``size`` bytes. ``append``: the
    new version keeps the old version's bytes as its prefix (an event log re-uploaded with
    more events); the bytes past the old end are the new version's own."""

    object: str
    size: int
    append: bool = False
    op: str = field(default="overwrite", init=False)


@dataclass(frozen=True)
class StatOp:
    object: str
    op: str = field(default="stat", init=False)


@dataclass(frozen=True)
class ConfigureOp:
    config: CacheConfig
    op: str = field(default="configure", init=False)


@dataclass(frozen=True)
class SleepOp:
    seconds: float
    op: str = field(default="sleep", init=False)


@dataclass(frozen=True)
class DeleteOp:
    object: str
    op: str = field(default="delete", init=False)


@dataclass(frozen=True)
class WriteOp:
    """The reading program's own write: the object gets a new generation of ``size`` bytes
    (like ``overwrite``), uploaded by the program itself, so its filesystem clears the
    object's cached blocks and stat entry (TF's ``ClearFileCaches`` after an upload)."""

    object: str
    size: int
    append: bool = False
    op: str = field(default="write", init=False)


@dataclass(frozen=True)
class RemoveOp:
    """The reading program's own delete (``tf.io.gfile.remove``): the object is gone, and its
    filesystem drops the object's cached blocks and stat entry (TF's ``ClearFileCaches``). A
    ``delete`` is another writer's: the reader's caches are not told."""

    object: str
    op: str = field(default="remove", init=False)


@dataclass(frozen=True)
class TailOp:
    """A follower reading new data from where it got to (TensorBoard's event loader, any
    ``tail -f``): the handle keeps a position (0 at open, moved only by tail ops). If it is
    > 0, one byte is read at ``position - 1``; then reads of ``chunk`` bytes from the position
    until one returns fewer than ``chunk``; the position moves by what the reads returned.
    Each of those reads is a read in the result."""

    handle: str
    chunk: int
    op: str = field(default="tail", init=False)


Op = (
    OpenOp
    | ReadOp
    | CloseOp
    | OverwriteOp
    | StatOp
    | ConfigureOp
    | SleepOp
    | DeleteOp
    | WriteOp
    | TailOp
    | RemoveOp
)


@dataclass(frozen=True)
class Trace:
    """A validated trace. ``config`` None = TF's defaults; ``stat_cache_max_age`` None = TF's."""

    objects: dict[str, int]
    ops: tuple[Op, ...]
    config: CacheConfig | None = None
    stat_cache_max_age: int | None = None
    #: other clients' ops (gcsfs files), out of ``ops`` (emulator.replay.client_ops)
    client_ops: tuple[Any, ...] = ()
    clients: dict[str, Any] = field(default_factory=dict)
    #: lanes, think times and recorded times (emulator.replay.trace_timing); None: none given
    timing: TraceTiming | None = None

    def to_dict(self, with_clients: bool = False) -> dict[str, Any]:
        """The JSON form TF's engines walk: TF's ops only, unless ``with_clients`` (then the
        other clients' ops are back at their places, and ``clients`` is kept)."""
        out: dict[str, Any] = {"config": self.config.as_dict() if self.config else None}
        if self.stat_cache_max_age is not None:
            out["stat_cache_max_age"] = self.stat_cache_max_age
        out["objects"] = dict(self.objects)
        ops = []
        for i, op in enumerate(self.ops):
            d: dict[str, Any] = {"op": op.op}
            for k, v in op.__dict__.items():
                if k == "append" and not v:
                    continue  # the flag is written only where it is set
                if k != "op":
                    d[k] = v.as_dict() if isinstance(v, CacheConfig) else v
            d.update(op_timing_dict(self.timing, i))
            ops.append(d)
        if with_clients:
            for c in self.client_ops:  # back at their places (they kept their indices)
                ops.insert(c.index, dict(c.op))
            if self.clients:
                out["clients"] = dict(self.clients)
        out["ops"] = ops
        if self.timing is not None and self.timing.recorded is not None:
            out["recorded"] = dict(self.timing.recorded)
        return out


def _int(value: Any, where: str, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TraceError(f"{where}: {name!r} must be an integer >= 0, got {value!r}")
    return value


def _str(value: Any, where: str, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise TraceError(f"{where}: {name!r} must be a non-empty string, got {value!r}")
    return value


def _object_name(value: Any, where: str, name: str = "object") -> str:
    text = _str(value, where, name)
    bucket, _, path = text.partition("/")
    if not bucket or not path or text.startswith("gs://"):
        raise TraceError(f"{where}: {name!r} must look like 'bucket/path', got {value!r}")
    bad = name_error(path)  # GCS's own rules: the fake and real GCS refuse these names
    if bad is not None:
        shown = text if len(text) <= 80 and text.isprintable() else repr(text[:80]) + "…"
        raise TraceError(f"{where}: {name!r} {shown}: {bad}")
    return text


def _config(value: Any, where: str) -> CacheConfig | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise TraceError(f"{where}: config must be an object or null, got {value!r}")
    unknown = set(value) - {"block_size", "max_bytes", "max_staleness"}
    if unknown:
        raise TraceError(f"{where}: unknown config keys {sorted(unknown)}")
    for key in ("block_size", "max_bytes"):
        if key not in value:
            raise TraceError(f"{where}: config lacks {key!r}")
    return CacheConfig(
        _int(value["block_size"], where, "block_size"),
        _int(value["max_bytes"], where, "max_bytes"),
        _int(value.get("max_staleness", 0), where, "max_staleness"),
    )


_OP_FIELDS = {
    "open": {"handle", "object"},
    "read": {"handle", "offset", "n"},
    "close": {"handle"},
    "overwrite": {"object", "size"},
    "stat": {"object"},
    "configure": {"config"},
    "sleep": {"seconds"},
    "delete": {"object"},
    "write": {"object", "size"},
    "tail": {"handle", "chunk"},
    "remove": {"object"},
}


#: optional keys per op kind
_OPTIONAL_FIELDS = {"overwrite": {"append"}, "write": {"append"}}


def _flag(raw: dict, where: str, name: str) -> bool:
    value = raw.get(name, False)
    if not isinstance(value, bool):
        raise TraceError(f"{where}: {name!r} must be true or false, got {value!r}")
    return value


def _op(raw: Any, where: str) -> Op:
    if not isinstance(raw, dict):
        raise TraceError(f"{where}: an op must be an object, got {raw!r}")
    kind = raw.get("op")
    if kind not in _OP_FIELDS:
        raise TraceError(f"{where}: unknown op {kind!r} (known: {sorted(_OP_FIELDS)})")
    where = f"{where} ({kind})"
    missing = _OP_FIELDS[kind] - set(raw)
    if missing:
        raise TraceError(f"{where}: missing {sorted(missing)}")
    extra = (
        set(raw)
        - _OP_FIELDS[kind]
        - {"op", "comment"}
        - _OPTIONAL_FIELDS.get(kind, set())
        - OP_TIMING_KEYS
    )
    if extra:
        raise TraceError(f"{where}: unknown keys {sorted(extra)}")
    if kind == "open":
        return OpenOp(_str(raw["handle"], where, "handle"), _object_name(raw["object"], where))
    if kind == "read":
        return ReadOp(
            _str(raw["handle"], where, "handle"),
            _int(raw["offset"], where, "offset"),
            _int(raw["n"], where, "n"),
        )
    if kind == "close":
        return CloseOp(_str(raw["handle"], where, "handle"))
    if kind == "tail":
        chunk = _int(raw["chunk"], where, "chunk")
        if chunk == 0:
            raise TraceError(f"{where}: 'chunk' must be > 0")
        return TailOp(_str(raw["handle"], where, "handle"), chunk)
    if kind == "overwrite":
        return OverwriteOp(
            _object_name(raw["object"], where),
            _int(raw["size"], where, "size"),
            _flag(raw, where, "append"),
        )
    if kind == "remove":
        return RemoveOp(_object_name(raw["object"], where))
    if kind == "write":
        return WriteOp(
            _object_name(raw["object"], where),
            _int(raw["size"], where, "size"),
            _flag(raw, where, "append"),
        )
    if kind == "stat":
        return StatOp(_object_name(raw["object"], where))
    if kind == "configure":
        cfg = _config(raw["config"], where)
        if cfg is None:
            raise TraceError(f"{where}: config must be an object")
        return ConfigureOp(cfg)
    if kind == "sleep":
        seconds = raw["seconds"]
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not math.isfinite(seconds)
            or seconds < 0
        ):
            raise TraceError(f"{where}: 'seconds' must be a finite number >= 0, got {seconds!r}")
        return SleepOp(float(seconds))
    return DeleteOp(_object_name(raw["object"], where))


def _check_handles(ops: tuple[Op, ...]) -> None:
    """Reads and closes must name a handle that is open at that point; opens a fresh one."""
    open_handles: set[str] = set()
    for i, op in enumerate(ops):
        if isinstance(op, OpenOp):
            if op.handle in open_handles:
                raise TraceError(f"ops[{i}] (open): handle {op.handle!r} is already open")
            open_handles.add(op.handle)
        elif isinstance(op, ReadOp | CloseOp | TailOp):
            if op.handle not in open_handles:
                raise TraceError(f"ops[{i}] ({op.op}): handle {op.handle!r} is not open")
            if isinstance(op, CloseOp):
                open_handles.discard(op.handle)


def _check_appends(objects: dict[str, int], ops: tuple[Op, ...]) -> None:
    """An append (``overwrite``/``write`` with ``append``) needs an object that exists at that
    point and a new size at least its current size (the old bytes are the new prefix)."""
    sizes = dict(objects)
    for i, op in enumerate(ops):
        if isinstance(op, OverwriteOp | WriteOp):
            if op.append:
                if op.object not in sizes:
                    raise TraceError(
                        f"ops[{i}] ({op.op}): append to {op.object!r}, which does not exist here"
                    )
                if op.size < sizes[op.object]:
                    raise TraceError(
                        f"ops[{i}] ({op.op}): append of {op.size} bytes to {op.object!r} of "
                        f"{sizes[op.object]} bytes: an append keeps the old bytes, so it "
                        "cannot shrink the object"
                    )
            sizes[op.object] = op.size
        elif isinstance(op, DeleteOp | RemoveOp):
            sizes.pop(op.object, None)


def read_json_file(path: str | os.PathLike) -> Any:
    """The JSON document in the file ``path``; ``TraceError`` (one line) if the file cannot be
    read, is larger than :data:`~emulator.replay.limits.MAX_TRACE_FILE_BYTES`, is not UTF-8,
    is not JSON, or is nested deeper than the parser's recursion limit."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size  # a regular file too large: refused unread
            data = (
                b"" if size > MAX_TRACE_FILE_BYTES else _read_bounded(fh, MAX_TRACE_FILE_BYTES + 1)
            )
    except OSError as e:
        raise TraceError(f"cannot read trace {os.path.basename(path)}: {e.strerror}") from None
    if size > MAX_TRACE_FILE_BYTES or len(data) > MAX_TRACE_FILE_BYTES:
        raise TraceError(
            f"trace file is larger than {MAX_TRACE_FILE_BYTES} bytes, the JSON limit (save a "
            "large trace as a columnar .npz: docs/trace-format.md)"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TraceError(
            f"trace is not UTF-8 text (byte {data[e.start]:#04x} at offset {e.start})"
        ) from None
    del data  # the text alone while parsing
    return _parse_json(text)


def _read_bounded(fh: Any, limit: int) -> bytes:
    """At most ``limit`` bytes of ``fh``, in 1 MiB reads (``read(limit)`` would allocate
    ``limit`` bytes up front, whatever the file's size)."""
    parts: list[bytes] = []
    left = limit
    while left > 0:
        chunk = fh.read(min(left, 1 << 20))
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise TraceError(f"trace is not valid JSON: {e}") from None
    except RecursionError:
        raise TraceError("trace is not usable JSON: nested too deeply") from None


def load_trace(source: str | os.PathLike | dict | Trace) -> Trace:
    """Parse and validate a trace from a path, JSON text, or an already-parsed dict."""
    if isinstance(source, Trace):
        return source
    if isinstance(source, dict):
        doc = source
    else:
        text = str(source)
        if isinstance(source, os.PathLike) or not text.lstrip().startswith("{"):
            doc = read_json_file(source)
        else:
            doc = _parse_json(text)
    if not isinstance(doc, dict):
        raise TraceError("a trace must be a JSON object")
    unknown = set(doc) - {
        "config", "stat_cache_max_age", "objects", "ops", "comment", "name", "clients", "recorded"
    }  # fmt: skip
    if unknown:
        raise TraceError(f"trace: unknown top-level keys {sorted(unknown)}")
    config = _config(doc.get("config"), "config")
    age = doc.get("stat_cache_max_age")
    if age is not None:
        age = _int(age, "trace", "stat_cache_max_age")
    objects_raw = doc.get("objects", {})
    if not isinstance(objects_raw, dict):
        raise TraceError("trace: 'objects' must be an object mapping 'bucket/path' to a size")
    objects = {
        _object_name(name, "objects", "name"): _int(size, f"objects[{name!r}]", "size")
        for name, size in objects_raw.items()
    }
    ops_raw = doc.get("ops")
    if not isinstance(ops_raw, list):
        raise TraceError("trace: 'ops' must be a list")
    from emulator.replay.client_ops import ClientOpError, split_client_ops

    try:
        tf_raw, client_ops = split_client_ops(ops_raw)
    except ClientOpError as e:
        raise TraceError(str(e)) from None
    clients = doc.get("clients", {})
    if not isinstance(clients, dict):
        raise TraceError("trace: 'clients' must be an object")
    ops = tuple(_op(raw, f"ops[{i}]") for i, raw in enumerate(tf_raw))
    _check_handles(ops)
    _check_appends(objects, ops)
    try:
        timing = parse_timing(ops_raw, doc.get("recorded"))
    except ValueError as e:
        raise TraceError(str(e)) from None
    return Trace(
        objects=objects, ops=ops, config=config, stat_cache_max_age=age,
        client_ops=client_ops, clients=dict(clients), timing=timing,
    )  # fmt: skip


def dump_trace(trace: Trace) -> str:
    """JSON text of a trace (round-trips through :func:`load_trace`)."""
    return json.dumps(trace.to_dict(with_clients=True), indent=1)


def digest_chain(seed: str, size: int) -> bytes:
    """Deterministic bytes: ``sha256(f"{seed}|{i}")`` digests for i = 0, 1, ..., cut to ``size``.

    The one generator of test/demo content; :func:`object_content` is it with seed
    ``f"{name}|{version}"``.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"size must be an integer >= 0, got {size!r}")
    prefix = f"{seed}|".encode()
    sha = hashlib.sha256
    count = (size + 31) // 32
    out = b"".join(sha(prefix + str(i).encode()).digest() for i in range(count))
    return out[:size]


def object_content(name: str, version: int, size: int) -> bytes:
    """Deterministic bytes of version ``version`` of object ``name`` ("bucket/path")."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"size must be an integer >= 0, got {size!r}")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be an integer >= 1, got {version!r}")
    return digest_chain(f"{name}|{version}", size)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class ReadRecord:
    """One ``read`` op's outcome: bytes returned (partial data with an error counts), their
    SHA-256 (``None`` when an engine moves no bytes), and the TF status code name or None."""

    handle: str
    offset: int
    n: int
    returned: int
    sha256: str | None
    error: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "handle": self.handle,
            "offset": self.offset,
            "n": self.n,
            "returned": self.returned,
            "sha256": self.sha256,
            "error": self.error,
        }


@dataclass
class TraceResult:
    engine: str
    requests: list[dict]
    reads: list[ReadRecord]

    def to_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "requests": list(self.requests),
            "reads": [r.as_dict() for r in self.reads],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)


def load_result(source: str | os.PathLike | dict) -> TraceResult:
    """Parse a result document (path, JSON text or dict); TraceError if malformed."""
    if isinstance(source, dict):
        doc = source
    else:
        text = str(source)
        if isinstance(source, os.PathLike) or not text.lstrip().startswith("{"):
            with open(source, encoding="utf-8") as fh:
                text = fh.read()
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise TraceError(f"result is not valid JSON: {e}") from None
    try:
        reads = [
            ReadRecord(
                r["handle"], r["offset"], r["n"], r["returned"], r.get("sha256"), r.get("error")
            )
            for r in doc["reads"]
        ]
        return TraceResult(str(doc["engine"]), list(doc["requests"]), reads)
    except (KeyError, TypeError) as e:
        raise TraceError(f"malformed result document: {e!r}") from None
