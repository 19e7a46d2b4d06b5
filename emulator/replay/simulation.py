"""Running traces on the model, fast.

- :func:`run_trace` executes a trace (trace-format.md) on a :class:`GcsFilesystemModel` with any
  transport that can create objects (``SizeOnlyTransport``, ``MemoryTransport``, or a caller's
  ``writer``/``deleter`` for a real backend), and returns the result format.
- :func:`simulate` is the sweep entry point: the SAME model classes on a
  :class:`SizeOnlyTransport` (no bytes move) and a :class:`VirtualClock` (``sleep`` ops advance
  virtual time, nothing waits). Request-for-request it equals the byte-moving model (tested).
- :func:`replay_block_trace` is a separate tight loop for raw block traces (one request = one
  whole block): TF's LRU with byte accounting (evict while ``used > max_bytes``), for speed
  comparisons with libcachesim; :func:`read_oracle_general` / :func:`write_oracle_general`
  handle libcachesim's binary ``oracleGeneral`` format.

Length: just over 400 lines; ``run_trace`` (op by op, bytes or sizes) and ``simulate`` (its
size-only wrapper) share the op dispatch, and the libCacheSim trace helpers sit beside them.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from emulator.model.block_cache import CacheStats
from emulator.model.cache_config import TF_DEFAULT_CONFIG, CacheConfig
from emulator.model.clock import Clock, VirtualClock
from emulator.model.gcs_model import GcsFilesystemModel, RetryConfig
from emulator.model.transport import MemoryTransport, SizeOnlyTransport, Transport
from emulator.replay.objects import TraceObject
from emulator.replay.trace import (
    CloseOp,
    ConfigureOp,
    DeleteOp,
    OpenOp,
    OverwriteOp,
    ReadOp,
    ReadRecord,
    RemoveOp,
    SleepOp,
    StatOp,
    TailOp,
    Trace,
    TraceResult,
    WriteOp,
    load_trace,
    object_content,
    sha256_hex,
)

__all__ = [
    "BlockReplayResult",
    "SimResult",
    "TF_DEFAULT_CONFIG",
    "read_oracle_general",
    "replay_block_trace",
    "run_trace",
    "simulate",
    "write_oracle_general",
]


#: (object "bucket/path", version, size[, earlier]): ``earlier`` (the append chain, see
#: :class:`emulator.replay.objects.TraceObject`) is passed only for a version that appends
Writer = Callable[..., None]
Deleter = Callable[[str], None]  # (object "bucket/path")


def _split(name: str) -> tuple[str, str]:
    bucket, _, path = name.partition("/")
    return bucket, path


def _default_store(transport: Transport) -> tuple[Writer, Deleter]:
    if isinstance(transport, SizeOnlyTransport):

        def write(name: str, version: int, size: int, earlier: Any = ()) -> None:
            transport.put(*_split(name), size)

    elif isinstance(transport, MemoryTransport):

        def write(name: str, version: int, size: int, earlier: Any = ()) -> None:
            if earlier:
                data = TraceObject(name, version, size, tuple(earlier)).read(0, size)
            else:
                data = object_content(name, version, size)
            transport.put(*_split(name), data)

    else:
        raise TypeError(
            f"run_trace needs writer= and deleter= for a {type(transport).__name__} transport"
        )

    def delete(name: str) -> None:
        if transport.exists(*_split(name)):
            transport.delete(*_split(name))

    return write, delete


class _Versions:
    """The objects' versions as the run makes them: ``current[name]`` is the object's current
    :class:`TraceObject` (an append keeps the old one's bytes as its prefix); every new version
    goes through ``writer`` and is told to ``hazards``."""

    def __init__(self, writer: Writer, hazards: Any) -> None:
        self.writer, self.hazards = writer, hazards
        self.versions: dict[str, int] = {}
        self.current: dict[str, TraceObject] = {}

    def new_version(self, name: str, size: int, append: bool) -> None:
        version = self.versions[name] = self.versions.get(name, 0) + 1
        old = self.current.get(name)
        if append and old is not None:
            obj = old.appended(version, size)
            self.writer(name, obj.version, size, obj.earlier)
        else:
            obj = TraceObject(name, version, size)
            self.writer(name, obj.version, size)
        self.current[name] = obj
        if self.hazards is not None:
            self.hazards.wrote(name, obj)

    def assume(self, objects: dict[str, int]) -> None:
        """The objects exist already, as version 1 (``create_objects=False``)."""
        self.versions = dict.fromkeys(objects, 1)
        self.current = {name: TraceObject(name, 1, size) for name, size in objects.items()}
        if self.hazards is not None:
            for name, obj in self.current.items():
                self.hazards.wrote(name, obj)


def run_trace(
    trace: Trace | dict | str | os.PathLike,
    fs: GcsFilesystemModel,
    *,
    engine: str = "model",
    writer: Writer | None = None,
    deleter: Deleter | None = None,
    sleep: Callable[[float], None] | None = None,
    create_objects: bool = True,
    hazards: Any = None,
    on_op: Callable[[int], None] | None = None,
) -> TraceResult:
    """Execute ``trace`` on ``fs``. ``trace.config``/``stat_cache_max_age`` are NOT applied
    here (build ``fs`` with them, as :func:`simulate` does). Objects are created through
    ``writer`` (default: the in-memory transport's ``put``) unless ``create_objects`` is False;
    ``overwrite``/``delete`` go to the store directly, not through the model (no invalidation),
    ``sleep`` ops call ``sleep`` (default ``fs.clock.sleep``). A ``write`` op is the program's
    own upload: a new version through ``writer``, then ``fs.clear_file_caches`` (TF clears the
    file's blocks and stat entry after uploading it); ``remove``, its own delete, likewise. ``hazards``: an
    :class:`emulator.replay.hazards.HazardCounter` that performs and classifies each read.
    Result requests are the transport's requests sent during the ops. ``on_op(i)`` is called
    before op ``i`` runs (what the wall-time model uses to tell which op sent which request)."""
    trace = load_trace(trace)
    if writer is None or deleter is None:
        default_writer, default_deleter = _default_store(fs.transport)
        writer = writer or default_writer
        deleter = deleter or default_deleter
    sleep = sleep or fs.clock.sleep
    store = _Versions(writer, hazards)
    if create_objects:
        for name, size in trace.objects.items():
            store.new_version(name, size, False)
    else:
        store.assume(trace.objects)
    new_version, current = store.new_version, store.current
    transport = fs.transport
    first_request = len(transport.requests)
    handles: dict[str, Any] = {}
    positions: dict[str, int] = {}  # tail ops' positions per handle
    reads: list[ReadRecord] = []
    size_only = fs.size_only

    def do_read(handle: str, offset: int, n: int, follow: bool = False) -> int:
        if hazards is None:
            result = handles[handle].read(offset, n)
        else:
            result = hazards.read(handles[handle], offset, n, follow=follow)
        data = result.data
        reads.append(
            ReadRecord(
                handle,
                offset,
                n,
                result.returned,
                None if size_only else sha256_hex(data),  # type: ignore[arg-type]
                result.code,
            )
        )
        return result.returned

    def do_tail(op: TailOp) -> None:
        """TensorBoard's follower: a 1-byte probe at the end it knows, then chunks to EOF."""
        pos = positions.get(op.handle, 0)
        if pos > 0:
            do_read(op.handle, pos - 1, 1, True)
        while (got := do_read(op.handle, pos, op.chunk, True)) == op.chunk:
            pos += got
        positions[op.handle] = pos + got
        if hazards is not None:
            hazards.tail_done(handles[op.handle], pos + got)

    for i, op in enumerate(trace.ops):
        if on_op is not None:
            on_op(i)
        if type(op) is ReadOp:
            do_read(op.handle, op.offset, op.n)
        elif type(op) is TailOp:
            do_tail(op)
        elif type(op) is OpenOp:
            handles[op.handle] = fs.open("gs://" + op.object)
            positions.pop(op.handle, None)
        elif type(op) is CloseOp:
            closed = handles.pop(op.handle)
            closed.close()
            if hazards is not None:
                hazards.forget(closed)
        elif type(op) is SleepOp:
            sleep(op.seconds)
        elif type(op) is OverwriteOp:
            new_version(op.object, op.size, op.append)
        elif type(op) is ConfigureOp:
            fs.configure_block_cache(op.config)
        elif type(op) is StatOp:
            try:
                st = fs.stat("gs://" + op.object)
            except Exception as e:  # noqa: BLE001 - a stat error is part of the run, not fatal
                if not hasattr(e, "code"):
                    raise
            else:
                if hazards is not None:
                    hazards.stat(op.object, st)
        elif type(op) is DeleteOp:
            deleter(op.object)
            current.pop(op.object, None)
        elif type(op) is RemoveOp:
            if getattr(transport, "record", False):
                transport.requests.append({"kind": "delete", "object": op.object})
            deleter(op.object)
            current.pop(op.object, None)
            fs.clear_file_caches("gs://" + op.object)
        elif type(op) is WriteOp:
            if getattr(transport, "record", False):
                # TF's resumable upload: the session POST, then one PUT with the content
                transport.requests.append({"kind": "upload", "object": op.object})
                transport.requests.append({"kind": "upload", "object": op.object})
            new_version(op.object, op.size, op.append)
            fs.clear_file_caches("gs://" + op.object)
        else:  # pragma: no cover - load_trace only builds the types above
            raise TypeError(f"unknown op {op!r}")
    if hazards is not None:
        hazards.finish()
    return TraceResult(engine, list(transport.requests[first_request:]), reads)


@dataclass
class SimResult:
    """What :func:`simulate` reports.

    ``requests_by_kind``: metadata/media/list request counts; ``bytes_fetched``: bytes the
    (simulated) server sent; ``requests``: the request list (if asked for); ``cache``: block
    cache counters summed over every cache of the run; ``reads``: one record per read op
    (``sha256`` None: no bytes move); ``virtual_seconds``: virtual time the run took (sleeps and
    retry back-offs).
    """

    requests_by_kind: dict[str, int]
    bytes_fetched: int
    cache: CacheStats
    reads: list[ReadRecord]
    virtual_seconds: float
    requests: list[dict] | None = None
    config: CacheConfig | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def total_requests(self) -> int:
        return sum(self.requests_by_kind.values())

    @property
    def bytes_returned(self) -> int:
        return sum(r.returned for r in self.reads)


_USE_TRACE = object()


def simulate(
    trace: Trace | dict | str | os.PathLike,
    config: Any = None,
    *,
    stat_cache_max_age: int | None = None,
    record_requests: bool = False,
    retry: RetryConfig | None = None,
    clock: Clock | None = None,
    cost: Callable[[str, int], float] | None = None,
    count_hazards: bool = False,
    buffer_size: int | None = None,
    on_op: Callable[[int], None] | None = None,
) -> SimResult:
    """Run ``trace`` on the model with a size-only transport and a virtual clock.

    ``config``: None → the trace's own ``config`` (which may itself be null = TF defaults);
    otherwise a ``BlockCacheParams``-like object, a mapping, or :data:`emulator.model.cache_config.TF_DEFAULT_CONFIG`.
    ``stat_cache_max_age``: None → the trace's value, else TF's default (5 s).
    ``cost(kind, body_bytes) -> seconds``: each request advances the virtual clock by its
    predicted time (so stat-cache expiry and ``max_staleness`` act as over a real run); None:
    only ``sleep`` ops and retry back-offs move the clock. ``count_hazards``: classify every
    read's bytes by generation (:mod:`emulator.replay.hazards`); the counts go to
    ``extra["hazards"]``. ``extra["media_bytes"]`` is the media bytes fetched, each request
    priced with the object's size at the time it was sent. ``buffer_size``: the cache-off
    read-ahead buffer (None: the config's block size, as TF at start-up). ``on_op``: see
    :func:`run_trace`.
    """
    from emulator.replay.hazards import HazardCounter, PricedTransport

    trace = load_trace(trace)
    if config is None:
        config = trace.config
    if stat_cache_max_age is None:
        stat_cache_max_age = trace.stat_cache_max_age
    clock = clock if clock is not None else VirtualClock()
    start = getattr(clock, "time", 0.0)
    transport = PricedTransport(
        clock=clock if isinstance(clock, VirtualClock) else None, cost=cost, record=record_requests
    )
    fs = GcsFilesystemModel(
        transport,
        config,
        stat_cache_max_age=stat_cache_max_age,
        clock=clock,
        retry=retry,
        buffer_size=buffer_size,
    )
    counter = HazardCounter(transport, fs) if count_hazards else None
    result = run_trace(trace, fs, engine="simulate", hazards=counter, on_op=on_op)
    extra: dict[str, Any] = {"media_bytes": transport.media_bytes}
    if counter is not None:
        extra["hazards"] = counter.hazards
    return SimResult(
        requests_by_kind=dict(transport.counts),
        bytes_fetched=transport.bytes_received,
        cache=fs.cache_stats(),
        reads=result.reads,
        virtual_seconds=getattr(clock, "time", 0.0) - start,
        requests=result.requests if record_requests else None,
        config=CacheConfig(fs.block_size, fs.max_bytes, fs.max_staleness),
        extra=extra,
    )


@dataclass(frozen=True)
class BlockReplayResult:
    requests: int
    hits: int
    misses: int
    bytes_fetched: int
    evictions: int

    @property
    def hit_ratio(self) -> float:
        return self.hits / self.requests if self.requests else 0.0


def replay_block_trace(
    keys: Iterable[Any], sizes: Iterable[int] | int, max_bytes: int
) -> BlockReplayResult:
    """Replay whole-block reads through TF's LRU: a hit moves the block to the MRU end; a miss
    adds its size and then evicts from the LRU end while ``used > max_bytes`` (strict).

    ``keys``: hashable block ids (e.g. numpy array / list of ints); ``sizes``: per-request
    block sizes, or one int for all. Equivalent to :class:`BlockCache` for full-block reads on
    a cache with no staleness (tested), minus the per-block locking and bookkeeping.
    """
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
        raise ValueError(f"max_bytes must be an integer >= 0, got {max_bytes!r}")
    keys = keys.tolist() if hasattr(keys, "tolist") else list(keys)
    lru: OrderedDict[Any, int] = OrderedDict()
    move = lru.move_to_end
    popitem = lru.popitem
    used = 0
    misses = 0
    fetched = 0
    evictions = 0
    requests = 0
    if isinstance(sizes, int):
        # Uniform blocks: "evict while used > max_bytes" keeps exactly max_bytes // size blocks,
        # so a count-capacity loop gives the same hits/misses/evictions.
        size = sizes
        requests = len(keys)
        if size <= 0 or max_bytes == 0:  # TF: cache disabled, every read is fetched
            return BlockReplayResult(requests, 0, requests, requests * max(size, 0), 0)
        capacity = max_bytes // size
        hits = 0
        for key in keys:
            if key in lru:
                move(key)
                hits += 1
            else:
                lru[key] = size
                if len(lru) > capacity:
                    popitem(False)
        misses = requests - hits
        return BlockReplayResult(requests, hits, misses, misses * size, misses - len(lru))
    else:
        if hasattr(sizes, "tolist"):
            sizes = sizes.tolist()
        for key, size in zip(keys, sizes, strict=True):
            requests += 1
            if key in lru:
                move(key)
            else:
                misses += 1
                fetched += size
                lru[key] = size
                used += size
                while used > max_bytes and lru:
                    used -= popitem(False)[1]
                    evictions += 1
    return BlockReplayResult(requests, requests - misses, misses, fetched, evictions)


#: libcachesim's oracleGeneral record: uint32 time, uint64 obj_id, uint32 size, int64 next.
_ORACLE_DTYPE = [("time", "<u4"), ("obj_id", "<u8"), ("size", "<u4"), ("next", "<i8")]


def write_oracle_general(path: str | os.PathLike, obj_ids: Any, sizes: Any) -> None:
    """Write a binary oracleGeneral trace (next-access times computed; -1 = never again)."""
    import numpy as np

    ids = np.asarray(obj_ids, dtype=np.uint64)
    size_arr = np.broadcast_to(np.asarray(sizes, dtype=np.uint32), ids.shape)
    rec = np.zeros(len(ids), dtype=_ORACLE_DTYPE)
    rec["time"] = np.arange(len(ids), dtype=np.uint32)
    rec["obj_id"] = ids
    rec["size"] = size_arr
    # next access: sort positions by (id, position); each one's successor in its id group.
    order = np.lexsort((np.arange(len(ids)), ids))
    nxt = np.full(len(ids), -1, dtype=np.int64)
    same = ids[order[1:]] == ids[order[:-1]]
    nxt[order[:-1][same]] = order[1:][same]
    rec["next"] = nxt
    rec.tofile(os.fspath(path))


def read_oracle_general(path: str | os.PathLike) -> tuple[Any, Any]:
    """``(obj_ids, sizes)`` numpy arrays of a binary oracleGeneral trace."""
    import numpy as np

    rec = np.fromfile(os.fspath(path), dtype=_ORACLE_DTYPE)
    return rec["obj_id"], rec["size"]
