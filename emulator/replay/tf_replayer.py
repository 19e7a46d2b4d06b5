"""The TF engine of ``gcs-hook replay``: traces run by real TensorFlow through the fake GCS front.

Real TensorFlow runs in a :class:`emulator.replay.tf_worker.TfWorker` subprocess, talking TLS to
the front of a :class:`emulator.fakegcs.session.GcsEmulator`; reads are positional
``RandomAccessFile::Read`` calls through the project's native ops (the in-process side is
:mod:`emulator.replay.tf_engine`). A trace's requests are what the front's ledger recorded.
Object creation, overwrites, deletes and sleeps are done here, on the backend, between ops.

How one TF process replays many traces without them seeing each other:

- every trace gets its own bucket names (``<run>-<n>-<bucket>``), so TF's stat cache (keyed by
  path) and block cache keys (keyed by path) cannot collide; requests are mapped back to the
  trace's names before they are compared;
- before each trace the block cache is replaced by a brand-new one with the trace's parameters
  (:func:`emulator.replay.tf_engine.fresh_cache` forces a reset even when the parameters are
  unchanged, which also drops the file-signature map), and every handle is closed after it.

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

import itertools
import math
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from emulator.model.cache_config import CacheConfig
from emulator.replay.comparison import read_record
from emulator.replay.isolation import Isolation, check_uploadable, wait_quiet
from emulator.replay.loading import (
    TRACE_START_FRACTION,
    ReplayError,
)
from gcs_hook.tf_defaults import TF_DEFAULT_BLOCK_SIZE, TF_STAT_CACHE_MAX_AGE

__all__ = ["EnvGroup", "TfReplayer", "env_group", "merge_groups", "run_tf"]

#: Where, within a second, the TF engine builds the trace's block cache: TF's staleness prune
#: thread then ticks at that phase each second, i.e. before the trace's ops in that second,
#: which is when the model prunes (at the first read of each new second).
_PRUNE_PHASE = 0.02


@dataclass(frozen=True, order=True)
class EnvGroup:
    """Import-time settings a trace needs. ``buffer_size`` None = any (cache never off at open)."""

    stat_cache_max_age: int
    buffer_size: int | None

    def env(self) -> dict[str, str]:
        """Environment variables that give a TF process these settings."""
        env = {"GCS_STAT_CACHE_MAX_AGE": str(self.stat_cache_max_age)}
        if self.buffer_size is not None and self.buffer_size != TF_DEFAULT_BLOCK_SIZE:
            env["GCS_READAHEAD_BUFFER_SIZE_BYTES"] = str(self.buffer_size)
        return env


def env_group(trace: Mapping[str, Any]) -> EnvGroup:
    """The import-time settings ``trace`` needs (see the module docstring)."""
    stat_age = trace.get("stat_cache_max_age")
    stat_age = TF_STAT_CACHE_MAX_AGE if stat_age is None else int(stat_age)
    initial = CacheConfig.of(trace.get("config"))
    cache_on = initial.cache_on
    needs_buffer = False
    for op in trace["ops"]:
        if op["op"] == "configure":
            cache_on = CacheConfig.of(op.get("config")).cache_on
        elif op["op"] == "open" and not cache_on:
            needs_buffer = True
    return EnvGroup(stat_age, initial.block_size if needs_buffer else None)


def merge_groups(groups: Iterable[EnvGroup]) -> dict[EnvGroup, EnvGroup]:
    """Map each group to the process group it runs in (``buffer_size=None`` joins any)."""
    groups = set(groups)
    concrete = sorted(g for g in groups if g.buffer_size is not None)
    mapping: dict[EnvGroup, EnvGroup] = {g: g for g in concrete}
    for g in sorted(g for g in groups if g.buffer_size is None):
        same_age = [c for c in concrete if c.stat_cache_max_age == g.stat_cache_max_age]
        mapping[g] = same_age[0] if same_age else g
    return mapping


class TfReplayer:
    """Replays traces in real TensorFlow; one TF subprocess per :class:`EnvGroup` at a time.

    Uses ``emulator`` (a :class:`emulator.fakegcs.session.GcsEmulator`) when given, else starts
    (and on :meth:`close` stops) its own. ``worker_factory(env)`` makes the TF process (default:
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
        for trace in traces:  # before any TF process starts or any object is written
            check_uploadable(trace)
        groups = [env_group(t) for t in traces]
        process_group = merge_groups(groups)
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
        run = _TfTraceRun(self, trace, f"r{self._run_id}-{next(self._counter)}")
        self._worker_for(group)
        try:
            return run.execute()
        finally:
            run.cleanup()


class _TfTraceRun:
    """One trace in the TF engine: TF-side ops through the worker, the rest on the backend."""

    def __init__(self, replayer: TfReplayer, trace: Mapping[str, Any], prefix: str) -> None:
        self.r = replayer
        self.trace = trace
        self.iso = Isolation(replayer.emulator, trace, prefix)
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
        self.r._call(
            "fresh_cache(*args)", args=list(CacheConfig.of(self.trace.get("config")).as_tuple())
        )
        wait_quiet(self.ledger)
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
                    read_record(op, outcome["returned"], outcome["sha256"], outcome["error"])
                )
                read_ops.append(index)
            elif op["op"] == "tail":  # several reads, as the TF side ran them
                for one in outcome:
                    one = {**one, "handle": op["handle"]}
                    reads.append(read_record(one, one["returned"], one["sha256"], one["error"]))
                    read_ops.append(index)
        wait_quiet(self.ledger)
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
        if kind in ("open", "read", "close", "tail"):
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
            self.iso.put(op["object"], op["size"], append=bool(op.get("append")))
            return None
        if kind == "delete":
            self.iso.delete(op["object"])
            return None
        if kind == "remove":
            result = self.r._call("remove(path)", path=self.gs_path(op["object"]))
            self.iso.present.discard(op["object"])
            return result
        if kind == "write":
            name = op["object"]
            new = self.iso.next_object(name, op["size"], append=bool(op.get("append")))
            result = self.r._call(
                "write(path, name, version, size, earlier)",
                path=self.gs_path(name),
                name=name,
                version=new.version,
                size=new.size,
                earlier=[list(e) for e in new.earlier],
            )
            self.iso.versions[name] = new.version
            self.iso.objects[name] = new
            self.iso.present.add(name)
            return result
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


def run_tf(trace: Mapping[str, Any], *, emulator: Any = None, backend: str = "embedded") -> dict:
    """Run one trace through real TensorFlow (starts an emulator unless one is given)."""
    with TfReplayer(emulator, backend=backend) as replayer:
        return replayer.run(trace)
