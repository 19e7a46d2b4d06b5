"""Trace loading and validation for the replay engines: what both engines agree on before a run.

:func:`load_replay_trace` returns a trace as the plain dict both engines walk, read and
validated by the one trace reader, :mod:`emulator.replay.reader` (JSON or columnar ``.npz``,
the limits of :mod:`emulator.replay.limits`; docs/trace-format.md), and extended with an
optional list of faults to inject (a *fault case*). The reader raises ``TraceError``; this
raises :class:`ReplayError` with the same one-line message, the error every replay entry point
uses.

Also here: the time origin both engines share (TF's defaults: :mod:`gcs_hook.tf_defaults`), and small helpers on trace dicts
(bucket names, renaming, the public result form).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "FAULT_KINDS",
    "TRACE_START_FRACTION",
    "ReplayError",
    "bucket_of",
    "fault_body_bytes",
    "MAX_BLOCK_BYTES",
    "MAX_OBJECT_BYTES",
    "MAX_READ_BYTES",
    "MAX_TRACE_FILE_BYTES",
    "load_replay_trace",
    "object_content",
    "public_result",
    "read_trace_document",
    "renamed_trace",
    "trace_buckets",
    "trace_object_names",
    "trace_paths",
    "validate_faults",
]

from emulator.replay.limits import (  # noqa: F401 - re-exported: their old home
    MAX_BLOCK_BYTES,
    MAX_OBJECT_BYTES,
    MAX_READ_BYTES,
    MAX_TRACE_FILE_BYTES,
)

#: Where, within a wall-clock second, a trace with ``sleep`` ops starts its ops in the TF engine,
#: and where the model engine's virtual clock starts: both clocks then cross whole seconds
#: (TF's ``NowSeconds``) at the same points of the trace.
TRACE_START_FRACTION = 0.15


class ReplayError(RuntimeError):
    """A trace could not be replayed (bad trace, or an engine failed outside the trace's ops)."""


def load_replay_trace(source: str | os.PathLike | Mapping[str, Any]) -> dict[str, Any]:
    """Load and validate a trace; returns it as a plain dict (``ReplayError`` if invalid).

    ``source`` is a file path (a ``str`` is always a path here; ``.npz`` is a columnar trace)
    or an already-parsed mapping. Reading and validation are the one trace reader's
    (:mod:`emulator.replay.reader`, whose ``TraceError`` becomes a ``ReplayError`` with the
    same message); this only normalises the result to the JSON dict form both engines walk.
    A *fault case* — ``{"comment": ..., "faults": [...], "trace": {...}}`` — is a trace plus
    errors to inject (see :func:`validate_faults`); it loads as the trace dict with a
    ``"faults"`` list added, which both engines apply.

    Invariant: whatever the file holds (not UTF-8, not JSON, nested deeper than Python can
    parse, a JSON array or number at the top, hostile columns), the only exception is
    :class:`ReplayError` with a one-line message.
    """
    from emulator.replay import columnar, reader

    try:
        if isinstance(source, Mapping):
            trace = reader.parse_document(source)
        else:
            loaded = reader.read_trace_file(source)
            trace = (
                columnar.to_dict(loaded) if isinstance(loaded, columnar.ColumnarTrace) else loaded
            )
    except reader.TraceError as exc:
        raise ReplayError(str(exc)) from None
    faults = trace.pop("faults", None)
    if faults:
        trace["faults"] = validate_faults(faults, trace)
    return trace


def read_trace_document(path: str | os.PathLike) -> Any:
    """The JSON document in the file ``path`` (:func:`emulator.replay.trace.read_json_file`'s
    limits); :class:`ReplayError` (one line) if it is not usable."""
    from emulator.replay import trace as trace_mod

    try:
        return trace_mod.read_json_file(path)
    except trace_mod.TraceError as exc:
        raise ReplayError(str(exc)) from None


def fault_body_bytes(status: int) -> int:
    """Size of the error body the front sends with an injected fault (the default message of
    :class:`emulator.fakegcs.faults.Fault`): TF copies it into the caller's buffer, so it
    matters for small reads."""
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
    buckets = set(trace_buckets(trace))
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
        if not isinstance(obj, str) or bucket_of(obj) not in buckets:
            raise ReplayError(f"{where}: object must name a bucket the trace uses")
        if kind != "list" and "/" not in obj:
            raise ReplayError(f"{where}: object must be 'bucket/path' for {kind} faults")
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ReplayError(f"{where}: times must be an integer >= 1")
        out.append({"status": status, "kind": kind, "object": obj, "times": times})
    return out


def object_content(name: str, version: int, size: int) -> bytes:
    """Deterministic content of version ``version`` of object ``name`` (trace-format.md)."""
    from emulator.replay import trace as trace_mod

    return trace_mod.object_content(name, version, size)


def bucket_of(name: str) -> str:
    return name.split("/", 1)[0]


def trace_buckets(trace: Mapping[str, Any]) -> list[str]:
    names = list(trace.get("objects") or {})
    names += [op["object"] for op in trace["ops"] if "object" in op]
    return sorted({bucket_of(n) for n in names})


def trace_object_names(trace: Mapping[str, Any]) -> set[str]:
    names = set(trace.get("objects") or {})
    return names | {op["object"] for op in trace["ops"] if "object" in op}


def renamed_trace(trace: Mapping[str, Any], rename: Callable[[str], str]) -> dict[str, Any]:
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
