"""Replay a read trace (docs: trace-format.md) through real TensorFlow or the Python model.

Engines:

- ``tf`` (:class:`TfReplayer`): real TensorFlow in a :class:`emulator.replay.tf_worker.TfWorker`
  subprocess, talking TLS to the front of a :class:`emulator.fakegcs.session.GcsEmulator`; reads are
  positional ``RandomAccessFile::Read`` calls through the project's native ops (see
  :mod:`emulator.replay.tf_engine`). Requests are what the front's ledger recorded.
- ``model`` (:func:`run_model`): :class:`emulator.model.gcs_model.GcsFilesystemModel` on a virtual
  clock over a :class:`emulator.model.transport.MemoryTransport` holding the trace's deterministic
  content; requests are what the model's transport says it would send.

:func:`compare` gives the first difference between two results.

How one TF process replays many traces without them seeing each other:

- every trace gets its own bucket names (``<run>-<n>-<bucket>``), so TF's stat cache (keyed by
  path) and block cache keys (keyed by path) cannot collide; requests are mapped back to the
  trace's names before they are compared;
- before each trace the block cache is replaced by a brand-new one with the trace's parameters
  (:func:`emulator.replay.tf_engine.fresh_cache` forces a reset even when the parameters are unchanged,
  which also drops the file-signature map), and every handle is closed after it.

What cannot be changed after ``import tensorflow`` decides which process a trace runs in
(:func:`env_group`): the stat cache max age (``GCS_STAT_CACHE_MAX_AGE``) and, for traces that
open a file while the cache is off, the buffered reader's buffer size, which is the block size
the filesystem was constructed with (``GCS_READAHEAD_BUFFER_SIZE_BYTES``; the configure op does
not change it). :meth:`TfReplayer.run_many` runs traces grouped by that key, one process per group.

Semantics fixed here for both engines: the filesystem's construction-time block size (the
buffered reader's buffer) is the trace's initial ``config.block_size``, or TF's default 64 MiB
when ``config`` is null; ``configure`` ops never change it.

Time (TF reads it as integer seconds): a trace's ops start :data:`TRACE_START_FRACTION` s after a
whole second in both engines. The TF engine, for traces with ``sleep`` ops, builds the block cache
just after a whole second (so TF's once-a-second staleness prune runs before the ops of each
second, as the model's does), starts the ops at that fraction, and sleeps to absolute points of
the timeline (``t0 + sum of sleeps``), so staleness and stat-cache ages agree to the second as
long as the ops between two sleeps take well under a second; the result's ``max_lag_s`` says how
far behind the timeline the ops ran. Caveat: a mid-trace ``configure`` that turns staleness on
starts a prune thread at that moment's phase instead.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import json
import math
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "MODEL_TRANSPORTS",
    "TRACE_START_FRACTION",
    "Difference",
    "EnvGroup",
    "ReplayError",
    "TfReplayer",
    "compare",
    "env_group",
    "load_trace",
    "object_content",
    "public_result",
    "random_trace",
    "run_model",
    "run_tf",
    "trace_paths",
]

MiB = 1024 * 1024
#: TF 2.21's default block size (also the buffered reader's default buffer).
DEFAULT_BLOCK_SIZE = 64 * MiB
#: TF 2.21's default stat cache max age in seconds.
DEFAULT_STAT_CACHE_MAX_AGE = 5

#: Where, within a wall-clock second, a trace with ``sleep`` ops starts its ops in the TF engine,
#: and where the model engine's virtual clock starts: both clocks then cross whole seconds
#: (TF's ``NowSeconds``) at the same points of the trace.
TRACE_START_FRACTION = 0.15
#: Where, within a second, the TF engine builds the trace's block cache: TF's staleness prune
#: thread then ticks at that phase each second, i.e. before the trace's ops in that second,
#: which is when the model prunes (at the first read of each new second).
_PRUNE_PHASE = 0.02


class ReplayError(RuntimeError):
    """A trace could not be replayed (bad trace, or an engine failed outside the trace's ops)."""


# --------------------------------------------------------------------------------------------
# Trace access


def load_trace(source: str | os.PathLike | Mapping[str, Any]) -> dict[str, Any]:
    """Load and validate a trace; returns it as a plain dict (``ReplayError`` if invalid).

    Validation is :mod:`emulator.replay.trace`'s; this only normalises the result to the JSON dict form
    both engines walk. A *fault case* — ``{"comment": ..., "faults": [...], "trace": {...}}`` —
    is a trace plus errors to inject (see :func:`validate_faults`); it loads as the trace dict
    with a ``"faults"`` list added, which both engines apply.
    """
    from emulator.replay import trace as trace_mod

    if isinstance(source, Mapping):
        doc: Any = dict(source)
    else:
        try:
            doc = trace_mod.read_json_file(source)
        except trace_mod.TraceError as exc:
            raise ReplayError(str(exc)) from exc
    faults: Any = None
    if isinstance(doc, dict) and "trace" in doc:
        unknown = set(doc) - {"trace", "faults", "comment"}
        if unknown:
            raise ReplayError(f"fault case: unknown keys {sorted(unknown)}")
        faults = doc.get("faults") or []
        doc = doc["trace"]
    if isinstance(doc, dict) and "faults" in doc:
        faults = doc["faults"]
        doc = {k: v for k, v in doc.items() if k != "faults"}
    try:
        trace = _trace_dict(trace_mod.load_trace(doc))
    except ValueError as exc:
        raise ReplayError(str(exc)) from exc
    if faults:
        trace["faults"] = validate_faults(faults, trace)
    return trace


def fault_body_bytes(status: int) -> int:
    """Size of the error body the front sends with an injected fault (emulator.fakegcs.front, Fault's
    default message): TF copies it into the caller's buffer, so it matters for small reads."""
    from emulator.fakegcs.faults import Fault

    return len(json.dumps({"error": {"code": status, "message": Fault(status).message}}).encode())


#: Request kinds a fault can target.
FAULT_KINDS = ("metadata", "media", "list")


def validate_faults(faults: Any, trace: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Check a fault list; returns it normalised (``ReplayError`` naming the bad entry).

    Each fault: ``{"status": 400..599, "kind": "metadata"|"media"|"list", "object":
    "bucket/path" (for "list": the bucket), "times": n >= 1 (default 1)}`` — answer the next
    ``times`` matching requests with HTTP ``status`` instead of serving them. Installed when
    the trace's ops start: at the front for the tf engine, as transport faults (the TF status
    code for that HTTP status) for the model.
    """
    if not isinstance(faults, list):
        raise ReplayError("faults must be a list")
    buckets = set(_trace_buckets(trace))
    out = []
    for i, fault in enumerate(faults):
        where = f"faults[{i}]"
        if not isinstance(fault, Mapping):
            raise ReplayError(f"{where} must be an object")
        unknown = set(fault) - {"status", "kind", "object", "times"}
        if unknown:
            raise ReplayError(f"{where}: unknown keys {sorted(unknown)}")
        status, kind = fault.get("status"), fault.get("kind")
        obj, times = fault.get("object"), fault.get("times", 1)
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise ReplayError(f"{where}: status must be an HTTP error code 400..599")
        if kind not in FAULT_KINDS:
            raise ReplayError(f"{where}: kind must be one of {', '.join(FAULT_KINDS)}")
        if not isinstance(obj, str) or _bucket_of(obj) not in buckets:
            raise ReplayError(f"{where}: object must name a bucket the trace uses")
        if kind != "list" and "/" not in obj:
            raise ReplayError(f"{where}: object must be 'bucket/path' for {kind} faults")
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ReplayError(f"{where}: times must be an integer >= 1")
        out.append({"status": status, "kind": kind, "object": obj, "times": times})
    return out


def _trace_dict(loaded: Any) -> dict[str, Any]:
    if isinstance(loaded, Mapping):
        return dict(loaded)
    for name in ("to_dict", "as_dict"):
        if hasattr(loaded, name):
            return dict(getattr(loaded, name)())
    raise ReplayError(f"cannot use a trace of type {type(loaded).__name__}")


def object_content(name: str, version: int, size: int) -> bytes:
    """Deterministic content of version ``version`` of object ``name`` (trace-format.md)."""
    from emulator.replay import trace as trace_mod

    return trace_mod.object_content(name, version, size)


def _config_tuple(config: Mapping[str, Any] | None) -> tuple[int, int, int]:
    if config is None:
        return (DEFAULT_BLOCK_SIZE, 0, 0)
    return (int(config["block_size"]), int(config["max_bytes"]), int(config["max_staleness"]))


def _bucket_of(name: str) -> str:
    return name.split("/", 1)[0]


def _trace_buckets(trace: Mapping[str, Any]) -> list[str]:
    names = list(trace.get("objects") or {})
    names += [op["object"] for op in trace["ops"] if "object" in op]
    return sorted({_bucket_of(n) for n in names})


# --------------------------------------------------------------------------------------------
# Grouping traces by what must be fixed before `import tensorflow`


@dataclass(frozen=True, order=True)
class EnvGroup:
    """Import-time settings a trace needs. ``buffer_size`` None = any (cache never off at open)."""

    stat_cache_max_age: int
    buffer_size: int | None

    def env(self) -> dict[str, str]:
        """Environment variables that give a TF process these settings."""
        env = {"GCS_STAT_CACHE_MAX_AGE": str(self.stat_cache_max_age)}
        if self.buffer_size is not None and self.buffer_size != DEFAULT_BLOCK_SIZE:
            env["GCS_READAHEAD_BUFFER_SIZE_BYTES"] = str(self.buffer_size)
        return env


def env_group(trace: Mapping[str, Any]) -> EnvGroup:
    """The import-time settings ``trace`` needs (see the module docstring)."""
    stat_age = trace.get("stat_cache_max_age")
    stat_age = DEFAULT_STAT_CACHE_MAX_AGE if stat_age is None else int(stat_age)
    initial = _config_tuple(trace.get("config"))
    cache_on = initial[0] > 0 and initial[1] > 0
    needs_buffer = False
    for op in trace["ops"]:
        if op["op"] == "configure":
            block, max_bytes, _ = _config_tuple(op.get("config"))
            cache_on = block > 0 and max_bytes > 0
        elif op["op"] == "open" and not cache_on:
            needs_buffer = True
    return EnvGroup(stat_age, initial[0] if needs_buffer else None)


def _merge_groups(groups: Iterable[EnvGroup]) -> dict[EnvGroup, EnvGroup]:
    """Map each group to the process group it runs in (``buffer_size=None`` joins any)."""
    groups = set(groups)
    concrete = sorted(g for g in groups if g.buffer_size is not None)
    mapping: dict[EnvGroup, EnvGroup] = {g: g for g in concrete}
    for g in sorted(g for g in groups if g.buffer_size is None):
        same_age = [c for c in concrete if c.stat_cache_max_age == g.stat_cache_max_age]
        mapping[g] = same_age[0] if same_age else g
    return mapping


# --------------------------------------------------------------------------------------------
# Results and comparison


def _read_record(op: Mapping[str, Any], returned: int, sha: str, error: str | None) -> dict:
    return {
        "handle": op["handle"],
        "offset": int(op["offset"]),
        "n": int(op["n"]),
        "returned": int(returned),
        "sha256": sha,
        "error": error,
    }


@dataclass(frozen=True)
class Difference:
    """The first place two results differ. ``left``/``right`` are None when a list ran out."""

    section: str  # "requests" | "reads"
    index: int
    left_engine: str
    right_engine: str
    left: Any
    right: Any
    left_op: Any = None  # index into the trace's ops that produced the item, when known
    right_op: Any = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "index": self.index,
            self.left_engine if self.left_engine != self.right_engine else "left": self.left,
            self.right_engine if self.left_engine != self.right_engine else "right": self.right,
            "left_op": self.left_op,
            "right_op": self.right_op,
        }

    def describe(self, trace: Mapping[str, Any] | None = None) -> str:
        """Several human-readable lines naming the differing item and the op behind it."""

        def op_text(idx: Any) -> str:
            if idx is None or trace is None or not (0 <= idx < len(trace["ops"])):
                return ""
            return f" (during op #{idx}: {json.dumps(trace['ops'][idx])})"

        what = "request" if self.section == "requests" else "read"
        return "\n".join(
            [
                f"first difference: {what} #{self.index}",
                f"  {self.left_engine:>6}: {json.dumps(self.left)}{op_text(self.left_op)}",
                f"  {self.right_engine:>6}: {json.dumps(self.right)}{op_text(self.right_op)}",
            ]
        )


def compare(left: Mapping[str, Any], right: Mapping[str, Any]) -> Difference | None:
    """First difference between two results (requests first, then reads); None if equal.

    Only ``requests`` and ``reads`` take part; ``request_ops`` (which op sent each request) is
    carried into the difference for context.
    """
    for section in ("requests", "reads"):
        a, b = list(left[section]), list(right[section])
        for i in range(max(len(a), len(b))):
            x = a[i] if i < len(a) else None
            y = b[i] if i < len(b) else None
            if x != y:
                return Difference(
                    section,
                    i,
                    str(left.get("engine", "left")),
                    str(right.get("engine", "right")),
                    x,
                    y,
                    _op_index(left, section, i),
                    _op_index(right, section, i),
                )
    return None


def _op_index(result: Mapping[str, Any], section: str, i: int) -> int | None:
    key = "request_ops" if section == "requests" else "read_ops"
    ops = result.get(key) or []
    return ops[i] if i < len(ops) else None


# --------------------------------------------------------------------------------------------
# TF engine


class TfReplayer:
    """Replays traces in real TensorFlow; one TF subprocess per :class:`EnvGroup` at a time.

    Uses ``emulator`` (a :class:`emulator.fakegcs.session.GcsEmulator`) when given, else starts (and on
    :meth:`close` stops) its own. ``worker_factory(env)`` makes the TF process (default:
    :class:`emulator.replay.tf_worker.TfWorker`; anything with ``run(code, **variables)`` and
    ``close()`` works). Thread-unsafe: one trace at a time.
    """

    def __init__(
        self,
        emulator: Any = None,
        *,
        backend: str = "embedded",
        worker_factory: Callable[[dict[str, str]], Any] | None = None,
    ) -> None:
        self._worker_factory = worker_factory
        self._own_emulator = emulator is None
        if emulator is None:
            from emulator.fakegcs.session import GcsEmulator

            emulator = GcsEmulator(backend)
        self.emulator = emulator
        self._run_id = uuid.uuid4().hex[:6]
        self._counter = itertools.count(1)
        self._worker: Any = None
        self._worker_group: EnvGroup | None = None
        self.workers_started = 0

    # -- lifecycle
    def close(self) -> None:
        self._stop_worker()
        if self._own_emulator and self.emulator is not None:
            emulator, self.emulator = self.emulator, None
            emulator.close()

    def __enter__(self) -> TfReplayer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _stop_worker(self) -> None:
        worker, self._worker, self._worker_group = self._worker, None, None
        if worker is not None:
            worker.close()

    def _worker_for(self, group: EnvGroup) -> Any:
        if self._worker is not None and self._worker_group == group:
            return self._worker
        self._stop_worker()
        env = dict(self.emulator.tf_env())
        env.update(group.env())
        # A retriable error must not make TF sleep 1 s, 2 s, 4 s, ... between attempts.
        env["GCS_RETRY_CONFIG_INIT_DELAY_TIME_US"] = "0"
        if self._worker_factory is not None:
            worker = self._worker_factory(env)
        else:
            from emulator.replay.tf_worker import TfWorker

            worker = TfWorker(env)
        self._worker, self._worker_group = worker, group
        self.workers_started += 1
        self._call("params()")  # load the native ops now, so failures name the build
        return worker

    def _call(self, expr: str, **variables: Any) -> Any:
        code = "from emulator.replay import tf_engine as _E\nresult = _E." + expr
        return self._worker.run(code, **variables)

    # -- running
    def run_many(self, traces: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Run traces grouped by :class:`EnvGroup` (fewest TF processes); results in input order."""
        traces = list(traces)
        groups = [env_group(t) for t in traces]
        process_group = _merge_groups(groups)
        order = sorted(range(len(traces)), key=lambda i: process_group[groups[i]])
        results: list[dict[str, Any] | None] = [None] * len(traces)
        for i in order:
            results[i] = self.run(traces[i], group=process_group[groups[i]])
        return results  # type: ignore[return-value]

    def run(self, trace: Mapping[str, Any], *, group: EnvGroup | None = None) -> dict[str, Any]:
        """Run one (validated) trace; returns the result dict (trace-format.md)."""
        group = group or env_group(trace)
        needed = env_group(trace)
        if needed.stat_cache_max_age != group.stat_cache_max_age or (
            needed.buffer_size is not None and needed.buffer_size != group.buffer_size
        ):
            raise ReplayError(f"trace needs {needed}, cannot run in {group}")
        self._worker_for(group)
        run = _TfTraceRun(self, trace, f"r{self._run_id}-{next(self._counter)}")
        try:
            return run.execute()
        finally:
            run.cleanup()


class _Isolation:
    """A trace's objects in a shared backend under bucket names unique to this run.

    Version ``v`` of trace object ``NAME`` holds ``object_content(NAME, v, size)`` whatever its
    real bucket is called, so every engine returns the same bytes; :meth:`collect` gives the
    front's records for these buckets, renamed back to the trace's names.
    """

    def __init__(self, emulator: Any, trace: Mapping[str, Any], prefix: str) -> None:
        self.backend = emulator.backend
        self.ledger = emulator.ledger
        self.buckets = {b: _real_bucket(prefix, b) for b in _trace_buckets(trace)}
        self.reverse = {real: b for b, real in self.buckets.items()}
        self.versions: dict[str, int] = {}
        self.deleted: set[str] = set()

    def create(self, objects: Mapping[str, int]) -> None:
        for real in self.buckets.values():
            self.backend.create_bucket(real)
        for name, size in objects.items():
            self.put(name, size)

    def real_name(self, name: str) -> tuple[str, str]:
        bucket, _, obj = name.partition("/")
        return self.buckets[bucket], obj

    def real_path(self, name: str) -> str:
        bucket, obj = self.real_name(name)
        return f"{bucket}/{obj}"

    def put(self, name: str, size: int, version: int | None = None) -> None:
        version = self.versions.get(name, 0) + 1 if version is None else version
        self.versions[name] = version
        bucket, obj = self.real_name(name)
        self.backend.put_object(bucket, obj, object_content(name, version, int(size)))
        self.deleted.discard(name)

    def delete(self, name: str) -> None:
        """Delete the object if it exists (deleting a missing object changes nothing)."""
        if self.versions.get(name) and name not in self.deleted:
            bucket, obj = self.real_name(name)
            self.backend.delete_object(bucket, obj)
            self.deleted.add(name)

    def unmap(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """A trace-format request with real bucket names turned back into the trace's."""
        out = dict(request)
        for key in ("object", "bucket"):
            value = out.get(key)
            if isinstance(value, str):
                bucket, sep, rest = value.partition("/")
                if bucket in self.reverse:
                    out[key] = self.reverse[bucket] + sep + rest
        if isinstance(out.get("range"), tuple):
            out["range"] = list(out["range"])
        return out

    def collect(
        self, start: int, marks: list[tuple[int, int]] | None = None
    ) -> tuple[list[dict[str, Any]], list[int | None]]:
        """The front's requests for these buckets since ``start`` and the op index of each."""
        requests: list[dict[str, Any]] = []
        request_ops: list[int | None] = []
        for rec in self.ledger.since(start):
            if getattr(rec, "bucket", None) not in self.reverse:
                continue
            requests.append(self.unmap(rec.as_trace_request()))
            request_ops.append(_op_for_seq(marks or [], rec))
        return requests, request_ops

    def drop(self) -> None:
        for real in self.buckets.values():
            # best effort: the names are unique to this run, so a leftover collides with nothing
            with contextlib.suppress(Exception):
                self.backend.delete_bucket(real)


class _TfTraceRun:
    """One trace in the TF engine: TF-side ops through the worker, the rest on the backend."""

    def __init__(self, replayer: TfReplayer, trace: Mapping[str, Any], prefix: str) -> None:
        self.r = replayer
        self.trace = trace
        self.iso = _Isolation(replayer.emulator, trace, prefix)
        self.ledger = replayer.emulator.ledger
        self.t0 = 0.0  # wall time of the trace's ops start (traces with sleep ops)
        self.virtual = 0.0  # sum of the sleeps so far
        self.max_lag = 0.0
        self.handles: dict[str, str] = {}
        self.prefix = prefix

    def gs_path(self, name: str) -> str:
        return "gs://" + self.iso.real_path(name)

    def execute(self) -> dict[str, Any]:
        self.iso.create(self.trace.get("objects") or {})
        timed = any(op["op"] == "sleep" for op in self.trace["ops"])
        if timed:  # TF's prune thread ticks once a second from the cache's construction
            _sleep_until(math.floor(time.time()) + 1 + _PRUNE_PHASE)
        self.r._call("fresh_cache(*args)", args=list(_config_tuple(self.trace.get("config"))))
        _wait_quiet(self.ledger)
        self.install_faults()
        if timed:
            self.t0 = math.floor(time.time()) + TRACE_START_FRACTION
            _sleep_until(self.t0)
        start = self.ledger.mark()
        marks: list[tuple[int, int]] = []  # (ledger mark before op, op index)
        reads: list[dict[str, Any]] = []
        read_ops: list[int] = []
        for index, op in enumerate(self.trace["ops"]):
            marks.append((self.ledger.mark(), index))
            outcome = self.run_op(op)
            if timed:
                self.max_lag = max(self.max_lag, time.time() - (self.t0 + self.virtual))
            if op["op"] == "read":
                reads.append(
                    _read_record(op, outcome["returned"], outcome["sha256"], outcome["error"])
                )
                read_ops.append(index)
        _wait_quiet(self.ledger)
        requests, request_ops = self.iso.collect(start, marks)
        return {
            "engine": "tf",
            "requests": requests,
            "reads": reads,
            "request_ops": request_ops,
            "read_ops": read_ops,
            "max_lag_s": round(self.max_lag, 3),
        }

    def install_faults(self) -> None:
        """The trace's faults as front rules, scoped to this run's bucket names."""
        faults = self.trace.get("faults") or []
        if not faults:
            return
        from emulator.fakegcs.faults import Fault

        for fault in faults:
            bucket, _, obj = fault["object"].partition("/")
            self.r.emulator.front.faults.add(
                Fault(
                    fault["status"],
                    kind=fault["kind"],
                    bucket=self.iso.buckets[bucket],
                    object=obj or None,
                    times=fault["times"],
                )
            )

    def run_op(self, op: Mapping[str, Any]) -> Any:
        kind = op["op"]
        if kind in ("open", "read", "close"):
            handle = op["handle"]
            if kind == "open":
                self.handles[handle] = f"{self.prefix}:{handle}:{len(self.handles)}"
            real_handle = self.handles.get(handle, f"{self.prefix}:{handle}:unopened")
            path = self.gs_path(op["object"]) if kind == "open" else None
            result = self.r._call(
                "run_op(op, path, handle)", op=dict(op), path=path, handle=real_handle
            )
            if kind == "close":
                self.handles.pop(handle, None)
            return result
        if kind == "stat":
            return self.r._call("run_op(op, path)", op=dict(op), path=self.gs_path(op["object"]))
        if kind == "configure":
            return self.r._call("run_op(op)", op=dict(op))
        if kind == "overwrite":
            self.iso.put(op["object"], op["size"])
            return None
        if kind == "delete":
            self.iso.delete(op["object"])
            return None
        if kind == "sleep":
            # on an absolute timeline, so time spent in ops does not add up across sleeps
            self.virtual += float(op["seconds"])
            _sleep_until(self.t0 + self.virtual)
            return None
        raise ReplayError(f"unknown op {kind!r}")

    def cleanup(self) -> None:
        try:
            if self.r._worker is not None:
                self.r._call("close_all()")
        finally:
            self.iso.drop()


def _sleep_until(wall: float) -> None:
    while (left := wall - time.time()) > 0:
        time.sleep(left)


def _real_bucket(prefix: str, bucket: str) -> str:
    name = re.sub(r"[^a-z0-9_.-]", "-", f"{prefix}-{bucket}".lower())
    return name[:63].rstrip("-_.")


def _op_for_seq(marks: list[tuple[int, int]], rec: Any) -> int | None:
    """The op during which the request arrived: the last op whose pre-op mark is < its seq.

    The front numbers requests on arrival (``mark()`` is the last number handed out), so this
    is exact for a single-threaded trace even when the record itself is appended later.
    """
    seq = getattr(rec, "seq", None)
    if seq is None:
        return None
    found = None
    for mark, index in marks:
        if mark < seq:
            found = index
    return found


def _wait_quiet(ledger: Any) -> None:
    """Let the front finish recording requests whose responses TF has already consumed."""
    if hasattr(ledger, "wait_quiet"):
        # nothing in flight is what matters: TF runs one request at a time and has consumed
        # each response before the op returns
        if not ledger.wait_quiet(quiet_s=0.01, timeout=30.0):
            raise ReplayError("the front's ledger did not settle within 30 s")
    else:
        time.sleep(0.05)


def run_tf(trace: Mapping[str, Any], *, emulator: Any = None, backend: str = "embedded") -> dict:
    """Run one trace through real TensorFlow (starts an emulator unless one is given)."""
    with TfReplayer(emulator, backend=backend) as replayer:
        return replayer.run(trace)


# --------------------------------------------------------------------------------------------
# Model engine


#: Transports the model engine can read through.
MODEL_TRANSPORTS = ("memory", "gcsfs")


def run_model(
    trace: Mapping[str, Any], *, transport: str = "memory", emulator: Any = None
) -> dict[str, Any]:
    """Run one (validated) trace through the model on a virtual clock; returns the result.

    The model filesystem is built with the trace's ``config`` and ``stat_cache_max_age``; the
    ops run through :func:`emulator.replay.simulation.run_trace` (the one trace runner the model side
    has), so replay and simulation cannot drift apart.

    ``transport="memory"``: a :class:`~emulator.model.transport.MemoryTransport`; requests are what
    the model says it sends. ``transport="gcsfs"``: a :class:`~emulator.model.transport.GcsfsTransport`
    through the front's plain-HTTP endpoint of ``emulator`` (started and stopped here if None),
    objects in the fake GCS under run-unique bucket names; requests are what the FRONT saw (the
    wire, comparable with the tf engine), and ``transport_requests`` what the model says it
    sent.
    """
    from emulator.model.clock import VirtualClock
    from emulator.model.errors import error_for_http_status
    from emulator.model.gcs_model import GcsFilesystemModel, RetryConfig
    from emulator.model.transport import GcsfsTransport, MemoryTransport
    from emulator.replay.simulation import run_trace

    if transport not in MODEL_TRANSPORTS:
        raise ReplayError(f"transport must be one of {', '.join(MODEL_TRANSPORTS)}: {transport!r}")
    faults = trace.get("faults") or []
    if faults and transport != "memory":
        raise ReplayError("faults can only be injected with the memory transport")
    stat_age = trace.get("stat_cache_max_age")
    plain = {k: v for k, v in trace.items() if k != "faults"}

    def model_fs(tr: Any) -> GcsFilesystemModel:
        return GcsFilesystemModel(
            tr,
            trace.get("config"),
            stat_cache_max_age=DEFAULT_STAT_CACHE_MAX_AGE if stat_age is None else int(stat_age),
            clock=VirtualClock(TRACE_START_FRACTION),
            # as the tf engine runs TF: GCS_RETRY_CONFIG_INIT_DELAY_TIME_US=0 (no backoff)
            retry=RetryConfig(init_delay_us=0),
        )

    if transport == "memory":
        store = MemoryTransport()
        sized = "body_bytes" in inspect.signature(store.inject_fault).parameters
        for fault in faults:
            store.inject_fault(
                fault["kind"],
                error_for_http_status(fault["status"]).code,
                fault["times"],
                fault["object"],
                # what the front sends with an injected error; TF reads it into its n-byte buffer
                **({"body_bytes": fault_body_bytes(fault["status"])} if sized else {}),
            )
        result = run_trace(plain, model_fs(store), engine="model").to_dict()
        return {"engine": "model", "requests": result["requests"], "reads": result["reads"]}

    own = emulator is None
    if own:
        from emulator.fakegcs.session import GcsEmulator

        emulator = GcsEmulator()
    try:
        return _run_model_gcsfs(plain, emulator, model_fs, GcsfsTransport, run_trace)
    finally:
        if own:
            emulator.close()


def _run_model_gcsfs(
    trace: Mapping[str, Any], emulator: Any, model_fs: Any, transport_cls: Any, run_trace: Any
) -> dict[str, Any]:
    iso = _Isolation(emulator, trace, f"m{uuid.uuid4().hex[:6]}")
    renamed = _renamed_trace(trace, iso.real_path)
    original = {iso.real_path(name): name for name in _trace_object_names(trace)}
    try:
        iso.create(trace.get("objects") or {})
        fs = model_fs(transport_cls(emulator.gcsfs()))
        _wait_quiet(emulator.ledger)
        start = emulator.ledger.mark()
        result = run_trace(
            renamed,
            fs,
            engine="model",
            writer=lambda real, version, size: iso.put(original[real], size, version),
            deleter=lambda real: iso.delete(original[real]),
            create_objects=False,
        ).to_dict()
        _wait_quiet(emulator.ledger)
        requests, _ = iso.collect(start)
        return {
            "engine": "model",
            "requests": requests,
            "reads": result["reads"],
            "transport_requests": [iso.unmap(r) for r in result["requests"]],
        }
    finally:
        iso.drop()


def _trace_object_names(trace: Mapping[str, Any]) -> set[str]:
    names = set(trace.get("objects") or {})
    return names | {op["object"] for op in trace["ops"] if "object" in op}


def _renamed_trace(trace: Mapping[str, Any], rename: Callable[[str], str]) -> dict[str, Any]:
    """The trace with every object name passed through ``rename``."""
    out = dict(trace)
    out["objects"] = {rename(k): v for k, v in (trace.get("objects") or {}).items()}
    out["ops"] = [
        {**op, "object": rename(op["object"])} if "object" in op else dict(op)
        for op in trace["ops"]
    ]
    return out


def public_result(result: Mapping[str, Any]) -> dict[str, Any]:
    """The result as trace-format.md defines it (engine, requests, reads) — for printing."""
    return {k: result[k] for k in ("engine", "requests", "reads")}


def trace_paths(directory: str | os.PathLike) -> list[Path]:
    """All ``*.json`` traces in ``directory``, sorted by name."""
    return sorted(Path(directory).glob("*.json"))


# --------------------------------------------------------------------------------------------
# Random traces (differential fuzzing of the model against real TF)


def random_trace(
    seed: int, *, max_ops: int = 24, timed: bool = False, faults: bool = False
) -> dict[str, Any]:
    """A random but valid trace for differential testing; the same seed gives the same trace.

    It aims at edges: block sizes that are not powers of two, ``max_bytes`` below, at and just
    above multiples of the block size (or 0 = cache off), object sizes at/around block
    multiples (and 0), reads at block edges, at/past EOF, ``n`` = 0 and ``n`` > ``max_bytes``,
    overwrites that shrink or grow, deletes, reconfiguration, stats, several handles and files.
    Untimed (default): no ``sleep`` ops, stat cache max age 0 or the default, so such traces
    need at most two TF processes per buffer size. ``timed=True``: also ``max_staleness`` 1-2 s,
    stat cache max age 1-2 s and whole-second ``sleep`` ops (see the module docstring on time),
    a few seconds of wall time per trace in the TF engine. ``faults=True``: also 1-3 injected
    HTTP errors (see :func:`validate_faults`) on media or metadata requests.
    """
    import random

    rng = random.Random(seed)
    block = rng.choice([4096, 10000, 32768, 65536])
    max_bytes = rng.choice([0, block - 1, block, 2 * block + block // 2, 3 * block, 8 * block])

    def size() -> int:
        k = rng.randint(0, 5)
        return max(0, rng.choice([k * block, k * block + rng.randint(1, block - 1), k * block - 1]))

    names = [f"fz/o{i}.bin" for i in range(rng.randint(1, 3))]
    objects = {name: size() for name in names}
    staleness = rng.choice([0, 1, 2]) if timed else 0
    config = {"block_size": block, "max_bytes": max_bytes, "max_staleness": staleness}
    ops: list[dict[str, Any]] = []
    open_handles: dict[str, str] = {}
    sizes = dict(objects)
    counter = itertools.count()
    slept = 0.0
    for _ in range(rng.randint(4, max_ops)):
        if timed and slept < 4 and rng.random() < 0.12:
            seconds = rng.choice([0.5, 1.0, 1.0, 1.5, 2.0])
            slept += seconds
            ops.append({"op": "sleep", "seconds": seconds})
            continue
        roll = rng.random()
        if not open_handles or roll < 0.12:
            handle = f"h{next(counter)}"
            name = rng.choice([*names, "fz/missing.bin"] if rng.random() < 0.1 else names)
            open_handles[handle] = name
            ops.append({"op": "open", "handle": handle, "object": name})
        elif roll < 0.78:
            handle = rng.choice(sorted(open_handles))
            known = sizes.get(open_handles[handle]) or 0
            edge = rng.randint(0, max(1, known // block + 1)) * block
            offset = max(
                0,
                rng.choice(
                    [
                        edge,
                        edge - 1,
                        edge + 1,
                        rng.randint(0, known + block),
                        known,
                        known - 1,
                        known + rng.randint(1, 2 * block),
                    ]
                ),
            )
            n = rng.choice(
                [0, 1, 10, block - 1, block, block + 1, rng.randint(1, 3 * block), max_bytes + 1]
            )
            ops.append({"op": "read", "handle": handle, "offset": offset, "n": max(0, n)})
        elif roll < 0.86:
            name = rng.choice(names)
            sizes[name] = size()
            ops.append({"op": "overwrite", "object": name, "size": sizes[name]})
        elif roll < 0.89:
            name = rng.choice(names)
            sizes.pop(name, None)
            ops.append({"op": "delete", "object": name})
        elif roll < 0.93:
            new_block = rng.choice([block, block // 2, 4096])
            ops.append(
                {
                    "op": "configure",
                    "config": {
                        "block_size": new_block,
                        "max_bytes": rng.choice([0, new_block, 3 * new_block, max_bytes]),
                        "max_staleness": rng.choice([0, staleness]) if timed else 0,
                    },
                }
            )
        elif roll < 0.96:
            ops.append({"op": "stat", "object": rng.choice(names)})

        else:
            handle = rng.choice(sorted(open_handles))
            del open_handles[handle]
            ops.append({"op": "close", "handle": handle})
    trace = {
        "comment": f"random_trace({seed})",
        "config": config,
        "objects": objects,
        "ops": ops,
    }
    if timed:
        trace["stat_cache_max_age"] = rng.choice([1, 2, 5])
    elif rng.random() < 0.4:
        trace["stat_cache_max_age"] = 0
    if faults:
        trace["faults"] = [
            {
                "status": rng.choice([503, 503, 500, 429, 404, 403, 410, 400]),
                "kind": rng.choice(["media", "media", "metadata"]),
                "object": rng.choice(names),
                "times": rng.choice([1, 1, 2, 3, 11]),
            }
            for _ in range(rng.randint(1, 3))
        ]
    return load_trace(trace)
