"""Read what the fsspec shim (:mod:`benchmarks.record.fsspec_shim`) logged into trace ops.

Why at the file-object level, not on the wire: a gcsfs file's requests depend on the
``cache_type`` and ``block_size`` it ran with (readahead widens each read, blockcache aligns it,
gcsfs splits big fetches into concurrent GETs), and a program's own settings are what we want
to change. Its ``read(n)`` calls at their offsets do not: they are what the program asked for,
whatever cache served them, so one recording can be replayed under every cache
(:mod:`emulator.model.fsspec_cache`). The other way, forcing ``cache_type="none"`` and reading
the wire, would miss reads a program makes with an explicit cache and would change the program's
timing as much.

The ops (``client`` ``gcsfs`` on the ``open``; see docs/trace-format.md):

- ``{"op": "open", "handle": "g1", "object": "bkt/key", "client": "gcsfs", "size": N,
  "info": "request"|"dircache"|"given", "recorded": {"cache_type", "block_size",
  "cache_options"}}``
- ``{"op": "read", "handle": "g1", "offset": O, "n": N}`` (``n`` > 0, as fsspec normalized it)
- ``{"op": "close", "handle": "g1"}``; files never closed are closed at the end of the trace.

Invariants: handles are numbered in the order the files were opened (over all processes);
ops of one handle keep their logged order; unreadable lines are counted, never raised.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FSSPEC_LOG_ENV", "FileEvents", "SHIM_DIR", "read_fsspec_log", "shim_env"]

#: Environment variable that turns the shim on (a private directory for its logs).
FSSPEC_LOG_ENV = "GCS_HOOK_FSSPEC_LOG"
#: The directory to put first on the program's ``PYTHONPATH``.
SHIM_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fsspec_shim")


@dataclass
class FileEvents:
    """The shim's events as ``(monotonic time, op)``, plus who logged them."""

    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    pids: set[int] = field(default_factory=set)
    versions: dict[str, str] = field(default_factory=dict)  # {"fsspec": ..., "gcsfs": ...}
    files: int = 0
    reads: int = 0
    bad_lines: int = 0
    #: the last ``exit`` event of the tree's interpreters (None: none logged)
    exit_t: float | None = None


def shim_env(log_dir: str) -> dict[str, str]:
    """What the recorded program's environment gets for the shim to log into ``log_dir``: the
    shim first on ``PYTHONPATH`` (ours kept after it) and the log directory."""
    path = os.environ.get("PYTHONPATH", "")
    return {FSSPEC_LOG_ENV: log_dir, "PYTHONPATH": SHIM_DIR + (os.pathsep + path if path else "")}


def _lines(log_dir: str) -> tuple[list[dict[str, Any]], int]:
    out: list[dict[str, Any]] = []
    bad = 0
    for name in sorted(os.listdir(log_dir)):
        if not name.endswith(".jsonl"):
            continue
        with open(os.path.join(log_dir, name), encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    d = json.loads(line)
                except json.JSONDecodeError:
                    bad += 1
                    continue
                if isinstance(d, dict) and isinstance(d.get("pid"), int) and "ev" in d:
                    out.append(d)
                else:
                    bad += 1
    return out, bad


def read_fsspec_log(log_dir: str | None) -> FileEvents:
    """The ops the shim logged under ``log_dir`` (empty if it logged nothing)."""
    res = FileEvents()
    if not log_dir or not os.path.isdir(log_dir):
        return res
    lines, res.bad_lines = _lines(log_dir)
    for d in lines:
        t = d.get("t")
        if d.get("ev") == "exit" and isinstance(t, int | float) and math.isfinite(t):
            res.exit_t = float(t) if res.exit_t is None else max(res.exit_t, float(t))
        if d.get("ev") == "process":
            for k in ("fsspec", "gcsfs"):
                if isinstance(d.get(k), str):
                    res.versions.setdefault(k, d[k])
    opens = sorted(
        (d for d in lines if d.get("ev") == "open"), key=lambda d: (d["t"], d["pid"], d["id"])
    )
    handles: dict[str, str] = {}  # the shim's file id ("pid:n") -> handle
    last_t: dict[str, float] = {}
    for d in opens:
        key = str(d["id"])
        handles[key] = f"g{len(handles) + 1}"
        op = {
            "op": "open", "handle": handles[key], "object": d["path"], "client": "gcsfs",
            "size": int(d["size"]), "info": d.get("info", "request"),
            "recorded": {
                "cache_type": d.get("cache_type"), "block_size": d.get("block_size"),
                "cache_options": d.get("cache_options") or {},
            },
        }  # fmt: skip
        res.events.append((float(d["t"]), op))
        res.pids.add(d["pid"])
        last_t[handles[key]] = float(d["t"])
    res.files = len(handles)
    closed: set[str] = set()
    for d in lines:
        h = handles.get(str(d.get("id")))
        if h is None or h in closed:
            continue
        if d.get("ev") == "read" and int(d.get("n", 0)) > 0:
            op = {"op": "read", "handle": h, "offset": int(d["offset"]), "n": int(d["n"])}
            res.reads += 1
        elif d.get("ev") == "close":
            op = {"op": "close", "handle": h}
            closed.add(h)
        else:
            continue
        t = max(float(d["t"]), last_t[h])  # a handle's ops stay in their logged order
        last_t[h] = t
        res.events.append((t, op))
    end = max((t for t, _ in res.events), default=0.0)
    for h in sorted(set(handles.values()) - closed, key=lambda h: int(h[1:])):
        res.events.append((end, {"op": "close", "handle": h}))
    res.events.sort(key=lambda e: e[0])
    return res
