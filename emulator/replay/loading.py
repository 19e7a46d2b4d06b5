"""Trace loading and validation for the replay engines: what both engines agree on before a run.

:func:`load_replay_trace` returns a trace as the plain dict both engines walk, validated by
:mod:`emulator.replay.trace` (docs/trace-format.md) and extended with an optional list of faults
to inject (a *fault case*). Not to be confused with :func:`emulator.replay.trace.load_trace`,
which returns a :class:`~emulator.replay.trace.Trace` object and raises ``TraceError``; this one
raises :class:`ReplayError`, the error every replay entry point uses.

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


#: Where, within a wall-clock second, a trace with ``sleep`` ops starts its ops in the TF engine,
#: and where the model engine's virtual clock starts: both clocks then cross whole seconds
#: (TF's ``NowSeconds``) at the same points of the trace.
TRACE_START_FRACTION = 0.15


class ReplayError(RuntimeError):
    """A trace could not be replayed (bad trace, or an engine failed outside the trace's ops)."""


def load_replay_trace(source: str | os.PathLike | Mapping[str, Any]) -> dict[str, Any]:
    """Load and validate a trace; returns it as a plain dict (``ReplayError`` if invalid).

    ``source`` is a file path (a ``str`` is always a path here) or an already-parsed mapping.
    Validation is :mod:`emulator.replay.trace`'s; this only normalises the result to the JSON
    dict form both engines walk. A *fault case* — ``{"comment": ..., "faults": [...], "trace":
    {...}}`` — is a trace plus errors to inject (see :func:`validate_faults`); it loads as the
    trace dict with a ``"faults"`` list added, which both engines apply.

    Invariant: whatever the file holds (not UTF-8, not JSON, nested deeper than Python can
    parse, a JSON array or number at the top), the only exception is :class:`ReplayError` with
    a one-line message.
    """
    from emulator.replay import trace as trace_mod

    doc: Any = dict(source) if isinstance(source, Mapping) else read_trace_document(source)
    if not isinstance(doc, dict):
        raise ReplayError(f"a trace must be a JSON object, not {_json_type(doc)}")
    faults: Any = None
    if "trace" in doc:
        unknown = set(doc) - {"trace", "faults", "comment"}
        if unknown:
            raise ReplayError(f"fault case: unknown keys {sorted(unknown)}")
        faults = doc.get("faults") or []
        doc = doc["trace"]
        if not isinstance(doc, dict):
            raise ReplayError(f"fault case: 'trace' must be a JSON object, not {_json_type(doc)}")
    if "faults" in doc:
        faults = doc["faults"]
        doc = {k: v for k, v in doc.items() if k != "faults"}
    try:
        trace = _trace_dict(trace_mod.load_trace(doc))
    except ValueError as exc:
        raise ReplayError(_one_line(str(exc))) from exc
    except RecursionError:
        raise ReplayError("trace: a value is nested too deeply") from None
    _check_byte_counts(trace)
    if faults:
        trace["faults"] = validate_faults(faults, trace)
    return trace


#: Largest ``n`` of a read op the replay engines accept (both move real bytes; TF allocates
#: ``n`` bytes for the read).
MAX_READ_BYTES = 1 << 30
#: Largest ``block_size`` they accept (a cached read fetches a whole block, and the buffered
#: reader's buffer is the initial block size).
MAX_BLOCK_BYTES = 1 << 30
#: Largest object size: GCS's own limit, 5 TiB.
MAX_OBJECT_BYTES = 5 << 40


def _check_byte_counts(trace: Mapping[str, Any]) -> None:
    """ReplayError naming the first op (or object) beyond the limits above."""
    for name, size in (trace.get("objects") or {}).items():
        if size > MAX_OBJECT_BYTES:
            raise ReplayError(
                f"objects[{name!r}]: {size} bytes is more than GCS's {MAX_OBJECT_BYTES}-byte limit"
            )
    configs = [("config", trace.get("config"))]
    for i, op in enumerate(trace["ops"]):
        where = f"ops[{i}] ({op['op']})"
        if op["op"] == "read" and op["n"] > MAX_READ_BYTES:
            raise ReplayError(
                f"{where}: n = {op['n']} is more than the {MAX_READ_BYTES} bytes a replayed "
                "read may ask for (the engines move real bytes)"
            )
        if op["op"] == "overwrite" and op["size"] > MAX_OBJECT_BYTES:
            raise ReplayError(
                f"{where}: {op['size']} bytes is more than GCS's {MAX_OBJECT_BYTES}-byte limit"
            )
        if op["op"] == "configure":
            configs.append((where, op.get("config")))
    for where, config in configs:
        if config is not None and config["block_size"] > MAX_BLOCK_BYTES:
            raise ReplayError(
                f"{where}: block_size {config['block_size']} is more than the "
                f"{MAX_BLOCK_BYTES} bytes a replay fetches at once"
            )


#: Largest trace file :func:`read_trace_document` reads (a trace of 10^6 ops is ~70 MB).
MAX_TRACE_FILE_BYTES = 1 << 30


def read_trace_document(path: str | os.PathLike) -> Any:
    """The JSON document in the file ``path``; :class:`ReplayError` (one line) if the file
    cannot be read, is larger than :data:`MAX_TRACE_FILE_BYTES`, is not UTF-8, is not JSON,
    or is nested deeper than the parser's recursion limit."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_TRACE_FILE_BYTES + 1)
    except OSError as exc:
        raise ReplayError(f"cannot read trace {os.fspath(path)}: {exc.strerror}") from None
    if len(data) > MAX_TRACE_FILE_BYTES:
        raise ReplayError(f"trace file is larger than {MAX_TRACE_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReplayError(
            f"trace is not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start})"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReplayError(f"trace is not valid JSON: {exc}") from None
    except RecursionError:
        raise ReplayError("trace is not usable JSON: nested too deeply") from None


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
    """The first line of ``message``, at most 300 characters (values quoted in errors can be
    large)."""
    first = message.strip().splitlines()[0] if message.strip() else "invalid trace"
    return first if len(first) <= 300 else first[:297] + "..."


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
