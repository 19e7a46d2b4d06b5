"""Turn a front ledger (what a real program sent to GCS) into a replayable trace.

Used by ``gcs-hook record -- CMD`` (live) and ``gcs-hook record --from-ledger FILE`` (a JSONL
written by ``gcs-hook serve --ledger``). The program must have run with the recording settings
(:data:`benchmarks.record.PROGRAM_RECORDING_ENV`: block size 0, so every
``RandomAccessFile::Read`` is exactly one ranged GET, and TF's stat cache off, so every stat is
one metadata request); the ledger then maps one-to-one onto ops:

- media GET ``bytes=a-b`` by the program → ``read(offset=a, n=b-a+1)`` on an inferred handle;
- metadata GET by the program → ``stat`` (``GetFileSize``, ``Stat``, ``FileExists``);
- a completed upload (the resumable ``PUT``) by the program → ``write`` (its own write: TF
  clears the file's caches) of ``bytes_in`` bytes; by anyone else → ``overwrite``; either
  with ``"append": true`` where ``appends`` (from the fake's versions,
  :func:`benchmarks.record.versions.append_flags`) says the new version keeps the old bytes;
- an object ``DELETE`` by the program → ``remove`` (it also clears the program's caches), by
  anyone else → ``delete``;
- wall-clock gaps of at least ``min_sleep_s`` between the program's requests → ``sleep``;
- listings, bucket requests, token requests, upload session starts: not ops (they do not
  depend on the block cache); counted in ``skipped``.

Events are ordered by when they take effect: reads and stats when they arrive at the front,
uploads and deletes when they complete. "The program" is the ledger principal ``own`` (the
token ``record`` hands to the command, ``test-token``); give other writers other credentials
(e.g. anonymous gcsfs clients) to have them recorded as ``overwrite``. A child process that
inherits the command's environment counts as the program itself. For a ledger of
``gcs-hook serve`` (``--from-ledger``) the program is the principal that sent the most ranged
media GETs, unless named (``--principal``).

Handle inference (opens send nothing on the wire, and TF uses a new connection per request):
all of the program's reads of one object share one handle, except that a read at offset 0
after the handle has already read something opens a new handle (readers start at the
beginning: a re-opened file, TF's append-mode copy, a new TFRecord epoch). Handles stay open
until the end of the trace. With the cache on, TF's requests do not depend on handles; with it
off each handle has its own read-ahead buffer, so this rule decides the cache-off prediction
(its error is measured in tests/tune/test_record_cli.py and stated in the README).

Lanes and think time (docs/trace-format.md): every op made from one of the program's requests
(read, stat, write, remove) gets a ``lane`` and a ``think``. Requests are taken in arrival
order; a request goes on a lane that is free when it arrives (the lane's previous request
ended at or before its arrival), the one freed most recently; if none is free it opens a new
lane. So the number of lanes is the most requests the program had in flight at once, and
``think`` = arrival - the end of the lane's previous response (a lane's first request: arrival
- the program's start, ``start_t`` or else the first arrival). ``at`` is the request's
``[arrive, first_byte, end]`` since that start, as the bucket saw it (pass-through: the
upstream's first byte and end). The ``sleep`` ops stay the program's idle gaps (nothing in
flight), for the engines' clocks; ``recorded.mode`` says where the times come from.

Invariants: object sizes are the sizes at the start of the recording; every read op's
``n`` is the recorded request's range length, so replaying the trace with the recording
configuration reproduces the recorded media requests one for one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "HANDLE_RULE",
    "completed_uploads",
    "recording_settings_problem",
    "LedgerTrace",
    "infer_start_sizes",
    "ledger_to_trace",
    "load_ledger_jsonl",
    "reader_principal",
]

HANDLE_RULE = "per-object, new handle at a re-read of offset 0"
OWN_PRINCIPAL = "test-token"


@dataclass
class LedgerTrace:
    trace: dict[str, Any]
    skipped: dict[str, int] = field(default_factory=dict)
    handles: int = 0
    own_requests: int = 0
    other_writes: int = 0
    files: Any = None  # benchmarks.record.fsspec_log.FileEvents of a fake-mode recording


def load_ledger_jsonl(path: str | os.PathLike) -> list[Any]:
    """The records of a ledger JSONL file (``Ledger(jsonl_path=...)``), in seq order.

    ValueError naming the file and line for a malformed file (not UTF-8, not JSON lines)."""
    from emulator.fakegcs.ledger import RequestRecord

    fields = set(RequestRecord.__dataclass_fields__)
    out = []
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError(
                    f"{path}:{lineno}: not a ledger (not UTF-8 text; expected the JSON lines "
                    "of gcs-hook serve --ledger)"
                ) from None
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                d = {k: v for k, v in d.items() if k in fields}
                d["range"] = tuple(d["range"]) if d.get("range") else None
                out.append(RequestRecord(**d))
            except (json.JSONDecodeError, TypeError, KeyError, ValueError, AttributeError) as e:
                raise ValueError(f"{path}:{lineno}: not a ledger record ({e})") from None
    return sorted(out, key=lambda r: r.seq)


def _obj(rec: Any) -> str | None:
    return f"{rec.bucket}/{rec.object}" if rec.bucket and rec.object else None


def infer_start_sizes(records: Iterable[Any]) -> dict[str, int]:
    """Object sizes at the start, from reads made before the object was first written: exact
    where a read reached the end (a short answer: offset + bytes returned), else the furthest
    byte read (a lower bound)."""
    sizes: dict[str, int] = {}
    exact: set[str] = set()
    written: set[str] = set()
    for rec in records:
        obj = _obj(rec)
        if obj is None:
            continue
        if rec.kind in ("upload", "delete"):
            if rec.kind == "delete" or _completes(rec):
                written.add(obj)
            continue
        if rec.kind != "media" or obj in written or obj in exact or rec.range is None:
            continue
        if rec.status == 416:  # size <= offset; the furthest byte read so far is the best bound
            sizes[obj] = min(sizes.get(obj, rec.range[0]), rec.range[0])
            continue
        if rec.status not in (200, 206):
            continue
        start, end = rec.range
        want = end - start + 1 if end >= 0 else None
        if want is not None and rec.bytes_out < want:
            sizes[obj] = start + rec.bytes_out
            exact.add(obj)
        else:
            sizes[obj] = max(sizes.get(obj, 0), start + rec.bytes_out)
    return sizes


def _completes(rec: Any) -> bool:
    """An upload request that carries the object's whole content: the resumable PUT (TF) or
    a single-request ``uploadType=media`` POST."""
    if rec.method == "PUT":
        return True
    return rec.method == "POST" and rec.query.get("uploadType") == "media"


def reader_principal(records: Iterable[Any]) -> str:
    """The principal that sent the most ranged media GETs (the reader whose trace is wanted),
    for ledgers of ``gcs-hook serve`` where clients may authenticate in any way."""
    counts: dict[str, int] = {}
    for rec in records:
        if rec.kind == "media" and rec.range is not None:
            counts[rec.principal] = counts.get(rec.principal, 0) + 1
    return max(counts, key=lambda p: (counts[p], p == OWN_PRINCIPAL)) if counts else OWN_PRINCIPAL


def _completed_upload_records(records: Iterable[Any]) -> list[Any]:
    recs = sorted(records, key=lambda r: (_effect_time(r), r.seq))
    return [
        r
        for r in recs
        if r.kind == "upload" and _obj(r) and r.status in (200, 201) and _completes(r)
    ]


def completed_uploads(records: Iterable[Any]) -> list[tuple[str, str]]:
    """``(bucket, object)`` of every upload that completed, in the order they took effect (what
    :func:`benchmarks.record.versions.append_flags` takes)."""
    return [(r.bucket, r.object) for r in _completed_upload_records(records)]


def mark_appends(records: Iterable[Any], appends: Mapping[str, list[bool]]) -> list[Any]:
    """``records`` with each completed upload's append flag in ``extra["appended"]``, so a
    written ledger keeps what only the fake's versions could tell (``--from-ledger`` reads
    it back with :func:`appends_in`). The records themselves are not changed (copies)."""
    records = list(records)
    flag_of: dict[int, bool] = {}
    seen: dict[str, int] = {}
    for r in _completed_upload_records(records):
        obj = _obj(r)
        k = seen[obj] = seen.get(obj, 0) + 1
        flags = appends.get(obj, [])
        flag_of[r.seq] = bool(flags[k - 1]) if k <= len(flags) else False
    return [
        replace(r, extra={**r.extra, "appended": flag_of[r.seq]}) if r.seq in flag_of else r
        for r in records
    ]


def appends_in(records: Iterable[Any]) -> dict[str, list[bool]] | None:
    """The append flags a ledger written by ``record`` carries (:func:`mark_appends`), in the
    form ``ledger_to_trace`` takes; None when no completed upload carries one (a ledger of
    ``serve --ledger``: the fake's versions were not kept, so every upload is a rewrite)."""
    out: dict[str, list[bool]] = {}
    found = False
    for r in _completed_upload_records(records):
        flag = r.extra.get("appended") if isinstance(r.extra, dict) else None
        found = found or flag is not None
        out.setdefault(_obj(r), []).append(flag is True)
    return out if found else None


#: TF 2.21's default read-ahead buffer (cache off): a GET of exactly this many bytes
_TF_READAHEAD = 64 * 1024 * 1024
_MiB = 1024 * 1024


def recording_settings_problem(records: Iterable[Any], own: str) -> str | None:
    """Why the program ``own``'s media GETs in ``records`` cannot have been made with the
    recording settings (block size 0: one GET per ``Read``), or None. Told from the ledger
    itself: TF's cache-off read-ahead asks for 64 MiB at a time; a block cache asks for whole
    blocks (all GETs one size of whole MiB, at multiples of it)."""
    lengths: list[tuple[int, int]] = []
    for rec in records:
        if rec.kind == "media" and rec.principal == own and rec.range and rec.range[1] >= 0:
            lengths.append((rec.range[0], rec.range[1] - rec.range[0] + 1))
    if not lengths:
        return None
    if any(n == _TF_READAHEAD for _, n in lengths):
        return "it has 64 MiB read-ahead GETs (TF's defaults, cache off)"
    sizes = {n for _, n in lengths}
    if len(lengths) >= 4 and len(sizes) == 1:
        (block,) = sizes
        if block >= _MiB and block % _MiB == 0 and all(start % block == 0 for start, _ in lengths):
            return f"every GET is a whole {block // _MiB} MiB block at a block boundary (a block cache)"
    return None


def _effect_time(rec: Any) -> float:
    if rec.kind in ("upload", "delete"):
        return rec.t_end or rec.t
    return rec.t


def _ownership(
    recs: list[Any], own: str, peers: Mapping[int, Any] | None
) -> tuple[Callable[[Any], bool], set[int]]:
    """``mine(rec)`` and the pids of the program's readers (see :func:`ledger_to_trace`)."""

    def mine(rec: Any) -> bool:
        peer = peers.get(rec.conn_id) if peers else None
        return peer.in_tree if peer is not None else rec.principal == own

    readers = {
        peers[r.conn_id].pid
        for r in recs
        if peers and r.conn_id in peers and r.kind in ("media", "metadata") and mine(r)
    }
    return mine, readers


class _Handles:
    """The handle rule (:data:`HANDLE_RULE`): one handle per object, a new one when a read
    starts at offset 0 after the handle has read."""

    def __init__(self) -> None:
        self.of: dict[str, str] = {}  # object -> open handle
        self.has_read: dict[str, bool] = {}
        self.n = 0

    def for_read(self, obj: str, start: int, ops: list[dict[str, Any]]) -> str:
        """The handle a read of ``obj`` at ``start`` goes on (its close/open ops to ``ops``)."""
        if obj not in self.of or (start == 0 and self.has_read[obj]):
            if obj in self.of:
                ops.append({"op": "close", "handle": self.of[obj]})
            self.n += 1
            self.of[obj] = f"h{self.n}"
            ops.append({"op": "open", "handle": self.of[obj], "object": obj})
        self.has_read[obj] = True
        return self.of[obj]

    def close_all(self, ops: list[dict[str, Any]]) -> None:
        for obj in sorted(self.of, key=lambda o: int(self.of[o][1:])):
            ops.append({"op": "close", "handle": self.of[obj]})


def _upload_op(
    obj: str, size: int, mine: bool, flag: list[bool], old_size: int | None
) -> dict[str, Any]:
    """A completed upload's op: the program's own ``write`` or another writer's ``overwrite``,
    ``append`` when ``flag`` (this upload's entry of ``appends``, if any) says it appended and
    the object did not shrink (``old_size``: its size before; an append never shrinks it)."""
    op: dict[str, Any] = {"op": "write" if mine else "overwrite", "object": obj, "size": size}
    if flag and flag[0] and old_size is not None and size >= old_size:
        op["append"] = True
    return op


def _files_wire(rec: Any, peers: Mapping[int, Any] | None, fsspec_pids: set[int] | None) -> bool:
    """Whether ``rec`` is gcsfs files' own wire traffic (plain HTTP from an fsspec process)."""
    if not fsspec_pids or rec.scheme != "http":
        return False
    peer = peers.get(rec.conn_id) if peers else None
    return peer is None or peer.pid in fsspec_pids


class _Lanes:
    """Greedy interval partitioning of the program's requests (see the module docstring)."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.free_at: list[float] = []  # lane -> end of its last request

    def place(self, rec: Any) -> dict[str, Any]:
        """The ``lane``, ``think`` and ``at`` keys of the op made from ``rec``."""
        t, end = rec.t, max(rec.t, rec.t_end or rec.t)
        free = [i for i, f in enumerate(self.free_at) if f <= t]
        if free:
            lane = max(free, key=lambda i: (self.free_at[i], -i))
            think = t - self.free_at[lane]
        else:
            lane = len(self.free_at)
            self.free_at.append(self.t0)
            think = t - self.t0
        self.free_at[lane] = end
        first = getattr(rec, "t_up_first", None) or (rec.t_first or None)
        up_end = getattr(rec, "t_up_end", None) or end
        if first is not None:
            first = min(max(first, t), up_end)
        at = [round(t - self.t0, 6), None if first is None else round(first - self.t0, 6),
              round(max(up_end, t) - self.t0, 6)]  # fmt: skip
        if at[1] is not None:
            at[1] = min(max(at[1], at[0]), at[2])
        out: dict[str, Any] = {"at": at}
        if lane:
            out["lane"] = lane
        if think > 0:
            out["think"] = round(max(0.0, think), 6)
        return out


def ledger_to_trace(
    records: Iterable[Any],
    objects: Mapping[str, int] | None = None,
    *,
    own: str | None = OWN_PRINCIPAL,
    min_sleep_s: float = 0.001,
    start_t: float | None = None,
    comment: str = "",
    peers: Mapping[int, Any] | None = None,
    file_events: Iterable[tuple[float, dict[str, Any]]] = (),
    fsspec_pids: set[int] | None = None,
    appends: Mapping[str, list[bool]] | None = None,
    timing_mode: str | None = None,
    end_t: float | None = None,
) -> LedgerTrace:
    """The trace of ``records`` (see the module docstring). ``objects``: sizes at the start
    (None: :func:`infer_start_sizes`). ``own``: the program's principal (None:
    :func:`reader_principal`). ``start_t``: monotonic time the program started (a
    leading ``sleep`` covers the time before its first request).

    ``peers`` (connection id → :class:`emulator.fakegcs.peers.Peer`): where the process behind
    a connection is known, a request is the program's when that process is in the recorded
    tree, whatever token it sent; a completed upload or delete is the program's own
    (``write``/``remove``) when its process also read (its caches are the ones told), else
    ``overwrite``/``delete``. Unknown connections fall back to the token rule (``own``).
    ``file_events``: ``(monotonic time, op)`` of fsspec file objects
    (:mod:`benchmarks.record.fsspec_log`), merged in by time; the program's plain-HTTP
    requests from the processes in ``fsspec_pids`` are then those files' own wire traffic
    (skipped as ``gcsfs-wire``: the model of each ``cache_type`` predicts it).
    ``appends``: per object, for each completed upload in the order they took effect, whether
    it appended (None: the flags the records carry, :func:`appends_in`).
    ``timing_mode``: where the times come from (``"upstream"``, ``"fake"``, ``"ledger"``),
    written as ``recorded.mode``; ``end_t``: monotonic time the program's work ended (the
    shim's ``exit`` event), written as ``recorded.tail_s``: the program's own time after its
    last request (a consumer draining what it prefetched)."""
    recs = sorted(records, key=lambda r: (_effect_time(r), r.seq))
    if appends is None:
        appends = appends_in(recs)
    if own is None:
        own = reader_principal(recs)
    if objects is None:
        objects = infer_start_sizes(sorted(recs, key=lambda r: r.seq))
    sizes = dict(objects)
    out = LedgerTrace(trace={})
    ops: list[dict[str, Any]] = []
    hs = _Handles()
    uploaded: dict[str, int] = {}  # object -> completed uploads so far
    last_t = start_t
    skipped = out.skipped
    owns = _op_owner(*_ownership(recs, own, peers), peers)
    events = sorted(file_events, key=lambda e: e[0])
    next_event = 0
    timing, lanes = _lane_timing(recs, owns, start_t)

    def skip(kind: str) -> None:
        skipped[kind] = skipped.get(kind, 0) + 1

    def gap(t: float) -> None:
        nonlocal last_t
        if last_t is not None and t - last_t >= min_sleep_s:
            ops.append({"op": "sleep", "seconds": round(t - last_t, 6)})
        if last_t is None or t > last_t:
            last_t = t

    def flush_events(until: float | None) -> None:
        nonlocal next_event
        while next_event < len(events) and (until is None or events[next_event][0] <= until):
            t, op = events[next_event]
            gap(t)
            ops.append(op)
            next_event += 1

    for rec in recs:
        flush_events(_effect_time(rec))
        obj = _obj(rec)
        mine = owns(rec)
        if (
            mine
            and rec.kind in ("media", "metadata", "list")
            and _files_wire(rec, peers, fsspec_pids)
        ):
            skip("gcsfs-wire")
            continue
        if rec.kind == "media" and obj and mine and rec.method == "GET":
            if rec.range is None or rec.range[1] < 0:
                skip("media-without-range")
                continue
            gap(rec.t)
            start, end = rec.range
            handle = hs.for_read(obj, start, ops)
            ops.append(
                {"op": "read", "handle": handle, "offset": start, "n": end - start + 1,
                 **timing.get(rec.seq, {})}
            )  # fmt: skip
            last_t = max(last_t or 0.0, rec.t_end or rec.t)
            out.own_requests += 1
        elif rec.kind == "metadata" and obj and mine:
            gap(rec.t)
            ops.append({"op": "stat", "object": obj, **timing.get(rec.seq, {})})
            last_t = max(last_t or 0.0, rec.t_end or rec.t)
            out.own_requests += 1
        elif rec.kind == "upload" and obj and rec.status in (200, 201) and _completes(rec):
            k = uploaded[obj] = uploaded.get(obj, 0) + 1
            flag = (appends or {}).get(obj, [])[k - 1 : k]
            op = _upload_op(obj, int(rec.bytes_in), mine, flag, sizes.get(obj))
            if mine:
                op.update(timing.get(rec.seq, {}))
                gap(rec.t_end or rec.t)
            else:
                out.other_writes += 1
            ops.append(op)
            sizes[obj] = int(rec.bytes_in)
        elif rec.kind == "delete" and obj and rec.status in (200, 204):
            ops.append({"op": "remove" if mine else "delete", "object": obj,
                        **(timing.get(rec.seq, {}) if mine else {})})  # fmt: skip
            sizes.pop(obj, None)
            if not mine:
                out.other_writes += 1
        else:
            skip(rec.kind if mine or rec.kind not in ("media", "metadata") else "other-clients")
    flush_events(None)
    hs.close_all(ops)
    out.handles = hs.n
    out.trace = {
        "config": None,
        "objects": dict(objects),
        "ops": ops,
        "comment": comment or f"recorded by gcs-hook record; handles: {HANDLE_RULE}",
    }
    if timing_mode is not None:
        out.trace["recorded"] = {"mode": timing_mode, "lanes": len(lanes.free_at)}
        ends = [r.t_end or r.t for r in recs if owns(r)]  # any of its requests, op or not
        if end_t is not None and ends and end_t > max(ends):
            out.trace["recorded"]["tail_s"] = round(end_t - max(ends), 6)
    return out


#: Why a ledger record of the run did not become an op, for ``record``'s warnings.
SKIP_REASONS = {
    "other-clients": "reads/stats by processes outside the recorded program (or, where the "
    "process could not be found, without the program's token): not the program's",
    "gcsfs-wire": "gcsfs's own GETs: recorded as its file reads instead (client gcsfs; "
    "tune --client gcsfs predicts them for every cache_type)",
    "list": "listings (they do not depend on TF's block cache)",
    "bucket": "bucket requests",
    "token": "token requests",
    "upload": "upload session starts and parts (a completed upload is a write op)",
    "media-without-range": "whole-object GETs without a Range (not TF's read path: was the "
    "recording setting GCS_READ_CACHE_BLOCK_SIZE_MB=0 overridden?)",
}


def recording_warnings(result: LedgerTrace, n_records: int) -> list[str]:
    """The lines ``record`` prints on stderr when the trace is empty or requests were skipped,
    each with its reason (empty list: nothing to say)."""
    ops = result.trace.get("ops", [])
    reads = sum(1 for op in ops if op.get("op") in ("read", "stat", "tail"))
    out: list[str] = []
    if not reads:
        if n_records == 0:
            why = (
                "the program sent no request to the fake GCS (does it read gs:// paths of the "
                "seeded buckets, with the environment record gave it?)"
            )
        else:
            why = f"none of the run's {n_records} requests was a read of the program"
        out.append(f"the trace has no reads: {why}")
    for kind, n in sorted(result.skipped.items()):
        reason = SKIP_REASONS.get(kind, "not a read, stat, write or delete")
        out.append(f"skipped {n} {kind} request{'s' if n != 1 else ''}: {reason}")
    return out


def _becomes_op(rec: Any) -> bool:
    """Whether ``rec`` (a request of the program) turns into an op (see the module docstring)."""
    if not rec.bucket or not rec.object:
        return False
    if rec.kind == "media":
        return rec.method == "GET" and rec.range is not None and rec.range[1] >= 0
    if rec.kind == "metadata":
        return True
    if rec.kind == "upload":
        return rec.status in (200, 201) and _completes(rec)
    return rec.kind == "delete" and rec.status in (200, 204)


def _op_owner(
    is_mine: Callable[[Any], bool], reader_pids: set[int], peers: Mapping[int, Any] | None
) -> Callable[[Any], bool]:
    """Whether a request is one of the program's own ops: a tree process's upload or delete is
    the program's only when that process also read; else it is another writer's
    ``overwrite``/``delete``, which takes no lane time."""

    def owns(rec: Any) -> bool:
        if rec.kind in ("upload", "delete") and peers and rec.conn_id in peers:
            return is_mine(rec) and peers[rec.conn_id].pid in reader_pids
        return is_mine(rec)

    return owns


def _lane_timing(
    recs: list[Any], is_mine: Callable[[Any], bool], start_t: float | None
) -> tuple[dict[int, dict[str, Any]], _Lanes]:
    """The ``lane``/``think``/``at`` keys of each of the program's requests that becomes an op,
    by ledger sequence number, and the lanes they were placed in."""
    own_times = [r.t for r in recs if is_mine(r)]
    lanes = _Lanes(start_t if start_t is not None else min(own_times, default=0.0))
    placed = sorted((r for r in recs if is_mine(r) and _becomes_op(r)), key=lambda r: (r.t, r.seq))
    return {r.seq: lanes.place(r) for r in placed}, lanes
