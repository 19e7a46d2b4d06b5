"""``gcs-hook record --upstream``: record a real job against real GCS, copying no data.

:func:`record_upstream` starts a :class:`~emulator.fakegcs.passthrough.PassThrough` front,
runs the program with the front's proxy and CA settings plus the recording settings
(:data:`benchmarks.record.PROGRAM_RECORDING_ENV`: every ``RandomAccessFile::Read`` is one
ranged GET, every stat one metadata request) and its own credentials, and converts the ledger
with
:func:`benchmarks.record.ledger.ledger_to_trace` — the same conversion as the fake mode
(:func:`benchmarks.record.program.record_program`), so the same program gives the same trace.

- Object sizes at the start come from the upstream's answers (``Content-Range`` totals and
  metadata ``size``, kept in the ledger's ``extra``) before the object was first written;
  objects never answered for fall back to :func:`benchmarks.record.ledger.infer_start_sizes`.
- :func:`run_limited` (:mod:`benchmarks.record.process`) ends the program's process group
  after ``max_seconds`` or once ``max_requests`` requests went through the front (SIGTERM,
  then SIGKILL after a grace period), and at its end in any case; the trace then holds the
  first ``max_requests`` requests.
- :func:`redact_trace` replaces bucket and object names by keyed hashes (a per-run random key
  that is never written), keeping which ops touch the same object; ``--ledger`` gets the same
  hashes (:func:`benchmarks.record.sharing.redact_records`).
- The ledger (``ledger_path``) is written when the run ends, atomically
  (:mod:`benchmarks.record.writer`); the trace's comment names the program by its base name
  only unless ``keep_command`` (:func:`benchmarks.record.sharing.trace_comment`).

Invariants: the front and the CA material are gone when :func:`record_upstream` returns or
raises; the trace holds only object names (or their hashes), sizes and ops; credentials pass
through to the upstream untouched and are written nowhere.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.record.fsspec_log import read_fsspec_log, shim_env
from benchmarks.record.ledger import (
    LedgerTrace,
    infer_start_sizes,
    ledger_to_trace,
    mark_appends,
)
from benchmarks.record.process import STOP_GRACE_S, run_limited
from benchmarks.record.settings import PROGRAM_RECORDING_ENV
from benchmarks.record.sharing import trace_comment
from benchmarks.record.writer import write_ledger

__all__ = [
    "STOP_GRACE_S",
    "UpstreamRecording",
    "record_fake_limited",
    "record_upstream",
    "redact_trace",
    "run_limited",
    "start_sizes",
]


@dataclass
class UpstreamRecording:
    result: LedgerTrace
    returncode: int
    seconds: float
    requests: int  # ledger records that went into the conversion
    stopped_by: str | None  # "max-seconds", "max-requests" or None (the program exited)
    upstream_errors: int  # forwarded requests answered with an error (or unreachable)
    tunnels: int  # blind CONNECT tunnels
    front: FrontTime | None = None  # the front's own time in the forwarded requests


@dataclass(frozen=True)
class FrontTime:
    """What the pass-through front itself added to the forwarded requests (seconds)."""

    requests: int
    median_s: float
    p90_s: float
    total_s: float
    share: float  # of the requests' whole time (arrival to end)

    @classmethod
    def of(cls, records: Iterable[Any]) -> FrontTime | None:
        """From ledger records (:func:`emulator.fakegcs.ledger.front_time`); None if none."""
        import numpy as np

        from emulator.fakegcs.ledger import front_time

        pairs = [(f, r.t_end - r.t) for r in records if (f := front_time(r)) is not None]
        if not pairs:
            return None
        own = np.array([p[0] for p in pairs])
        whole = float(sum(p[1] for p in pairs))
        return cls(len(own), float(np.median(own)), float(np.quantile(own, 0.9)),
                   float(own.sum()), float(own.sum()) / whole if whole > 0 else 0.0)  # fmt: skip

    def describe(self) -> str:
        return (
            f"the front's own time: {self.median_s * 1e3:.2f} ms median, "
            f"{self.p90_s * 1e3:.2f} ms p90 per request ({self.requests} requests, "
            f"{self.total_s:.2f} s, {self.share:.1%} of their time; TLS handshakes with the "
            "program not included)"
        )


def _obj(rec: Any) -> str | None:
    return f"{rec.bucket}/{rec.object}" if rec.bucket and rec.object else None


def start_sizes(records: Iterable[Any]) -> dict[str, int]:
    """Object sizes at the start: the first size an answer revealed before the object was
    first written or deleted; :func:`infer_start_sizes` for the others."""
    recs = sorted(records, key=lambda r: r.seq)
    sizes = infer_start_sizes(recs)
    known: set[str] = set()
    changed: set[str] = set()
    for rec in recs:
        obj = _obj(rec)
        if obj is None:
            continue
        if rec.kind in ("upload", "delete") and rec.status in (200, 201, 204):
            changed.add(obj)
            continue
        size = (rec.extra or {}).get("object_size")
        if size is not None and obj not in changed and obj not in known:
            sizes[obj] = int(size)
            known.add(obj)
    return sizes


def _keyed(key: bytes, prefix: str, name: str, n: int) -> str:
    return prefix + hmac.new(key, name.encode("utf-8"), hashlib.sha256).hexdigest()[:n]


def redact_trace(trace: dict[str, Any], key: bytes | None = None) -> dict[str, Any]:
    """A copy of ``trace`` with every ``bucket/object`` name replaced by keyed hashes
    (``b<12 hex>/o<24 hex>``). Same name → same hash within one call; ``key`` defaults to a
    fresh random key that is not kept. The comment is replaced too (it may name paths)."""
    key = key if key is not None else secrets.token_bytes(32)

    def name(full: str) -> str:
        bucket, _, obj = full.partition("/")
        return f"{_keyed(key, 'b', bucket, 12)}/{_keyed(key, 'o', obj, 24)}"  # = name_hasher

    out = dict(trace)
    out["objects"] = {name(k): v for k, v in trace["objects"].items()}
    ops = []
    for op in trace["ops"]:
        if "object" in op:
            op = dict(op, object=name(op["object"]))
        ops.append(op)
    out["ops"] = ops
    out["comment"] = "recorded by gcs-hook record --upstream --redact-names (names are hashes)"
    return out


def record_upstream(
    cmd: Sequence[str],
    *,
    upstream: Any = None,
    connect_to: dict[str, tuple[str, int]] | None = None,
    ledger_path: str | None = None,
    min_sleep_s: float = 0.001,
    max_seconds: float | None = None,
    max_requests: int | None = None,
    redact_names: bool = False,
    extra_env: dict[str, str] | None = None,
    on_start: Callable[[Any], None] | None = None,
    curl_per_run_ca: bool = True,
    keep_command: bool = False,
) -> UpstreamRecording:
    """Run ``cmd`` through a pass-through front to ``upstream`` (an
    :class:`~emulator.fakegcs.upstream.UpstreamConfig`; None: real GCS) and convert its
    requests into a trace. ``on_start(passthrough)`` is called once the front runs;
    ``curl_per_run_ca``: see :meth:`emulator.fakegcs.passthrough.PassThrough.env`."""
    from emulator.fakegcs.passthrough import PassThrough
    from emulator.fakegcs.tempdirs import remove_dead_leftovers
    from emulator.fakegcs.upstream import PRINCIPAL

    remove_dead_leftovers()  # CA/bundle directories of runs that were killed (SIGKILL)
    with (
        PassThrough(upstream, connect_to=connect_to) as pt,
        tempfile.TemporaryDirectory(prefix="gcs-hook-shim-") as log_dir,
    ):
        if on_start is not None:
            on_start(pt)
        env = dict(os.environ)
        env.update(pt.env(curl_per_run_ca=curl_per_run_ca))
        env.update(PROGRAM_RECORDING_ENV)
        env.update(shim_env(log_dir))  # the program's end (its exit event)
        env.update(extra_env or {})
        code, seconds, stopped_by, records = _run_and_collect(
            cmd, env, pt.ledger, max_seconds, max_requests
        )
        end_t = read_fsspec_log(log_dir).exit_t
    comment = trace_comment(
        "recorded by gcs-hook record --upstream", cmd, keep_command=keep_command
    )
    result = ledger_to_trace(
        records,
        start_sizes(records),
        own=PRINCIPAL,
        min_sleep_s=min_sleep_s,
        comment=comment,
        timing_mode="upstream",
        end_t=end_t,
    )
    _finish_files(result, records, ledger_path, redact_names)
    errors = sum(1 for r in records if (r.extra or {}).get("upstream_error") is not None)
    tunnels = sum(1 for r in records if (r.extra or {}).get("tunnel"))
    return UpstreamRecording(
        result, code, seconds, len(records), stopped_by, errors, tunnels, FrontTime.of(records)
    )


def _run_and_collect(
    cmd: Sequence[str],
    env: dict[str, str],
    ledger: Any,
    max_seconds: float | None,
    max_requests: int | None,
) -> tuple[int, float, str | None, list[Any]]:
    """Run ``cmd`` under the limits; ``(code, seconds, stopped_by, records)``, where ``records``
    are the ledger's records of the run, at most ``max_requests`` of them."""
    mark = ledger.mark()
    start = len(ledger)
    code, seconds, stopped_by = run_limited(
        cmd, env, lambda: len(ledger) - start, max_seconds=max_seconds, max_requests=max_requests
    )
    ledger.wait_quiet(quiet_s=0.05, timeout=30.0)
    records = ledger.since(mark)
    if max_requests is not None:
        records = records[:max_requests]
    return code, seconds, stopped_by, records


def _finish_files(
    result: LedgerTrace, records: list[Any], ledger_path: str | None, redact_names: bool
) -> None:
    """Redact the trace (``redact_names``) and write the ledger, both with one run key."""
    key = secrets.token_bytes(32) if redact_names else None
    if key is not None:
        result.trace = redact_trace(result.trace, key)
    if ledger_path is not None:
        write_ledger(ledger_path, records, redact_key=key)


def record_fake_limited(
    cmd: Sequence[str],
    *,
    data_dir: str | None = None,
    backend: str = "embedded",
    ledger_path: str | None = None,
    min_sleep_s: float = 0.001,
    max_seconds: float | None = None,
    max_requests: int | None = None,
    redact_names: bool = False,
    keep_command: bool = False,
) -> UpstreamRecording:
    """The fake mode (:func:`benchmarks.record.program.record_program`) with the limits and
    name redaction of :func:`record_upstream`: same environment, same conversion."""
    from benchmarks.record.program import (
        keep_seeded_versions,
        recorded_appends,
        recording_env,
        seed_objects,
        tree_recording,
    )
    from emulator.fakegcs.session import GcsEmulator
    from emulator.fakegcs.tempdirs import remove_dead_leftovers

    remove_dead_leftovers()  # key material and backend dirs of records that were SIGKILLed
    comment = trace_comment("recorded by gcs-hook record", cmd, keep_command=keep_command)
    with GcsEmulator(backend) as emu, tree_recording(emu) as tree:
        objects = seed_objects(emu, data_dir)
        keep_seeded_versions(emu, objects)
        env = recording_env(emu, tree.env)
        code, seconds, stopped_by, records = _run_and_collect(
            cmd, env, emu.ledger, max_seconds, max_requests
        )
        appends = recorded_appends(emu, records)
        records = mark_appends(records, appends)  # the written ledger keeps them
        result = tree.to_trace(
            records,
            objects,
            min_sleep_s=min_sleep_s,
            comment=comment,
            appends=appends,
            timing_mode="fake",
        )
    _finish_files(result, records, ledger_path, redact_names)
    return UpstreamRecording(result, code, seconds, len(records), stopped_by, 0, 0)
