"""Bounds on workload parameters (``gcs-hook tune --param``), checked before anything runs.

Invariant: :func:`check_scale` is None for every workload at its defaults, its
``SWEEP_SCALE`` and its ``MEASURE_SCALE``, and for the 10 TiB benchmark workloads.
"""

from __future__ import annotations

from typing import Any

from benchmarks.workloads.files import RECORD_OVERHEAD

__all__ = ["SCALE_LIMITS", "check_scale"]

#: Bounds on a workload's size (``tune --param``): beyond them synthesis would not fit in this
#: machine's memory or time even when sampled.
SCALE_LIMITS = {
    "objects": 4_000_000,  # names held in memory
    "object_bytes": 4 * 2**40,  # one object: a shard's read template is built per record
    "logical_bytes": 64 * 2**40,
    "epochs": 1000,
    "records": 20_000_000,  # random-records shuffles its record order in Python
    "record_size": 2**30,
}


def check_scale(workload: Any) -> str | None:
    """None if ``workload`` is within :data:`SCALE_LIMITS`, else one line saying what is not."""
    from benchmarks.workloads.builtin import CheckpointRestore, InterleavedShards, SequentialShards

    def size(n: float) -> str:
        for unit, k in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
            if n >= k:
                return f"{n / k:.3g} {unit}"
        return f"{n:.0f} B"

    p = workload.params()
    lim = SCALE_LIMITS
    if p.get("epochs", 1) > lim["epochs"]:
        return f"epochs={p['epochs']} is over the limit of {lim['epochs']}"
    if p.get("record_size", 0) > lim["record_size"]:
        return f"record_size={p['record_size']} is over the limit of {size(lim['record_size'])}"
    if p.get("records", 0) > lim["records"]:
        return f"records={p['records']} is over the limit of {lim['records']:,}"
    if p.get("file_size", 0) > lim["object_bytes"]:
        return f"file_size={p['file_size']} is over the limit of {size(lim['object_bytes'])}"
    n_objects = p.get("shards", p.get("files_count", 1))
    if n_objects > lim["objects"]:
        return f"{n_objects:,} objects is over the limit of {lim['objects']:,}"
    if isinstance(workload, (SequentialShards, InterleavedShards)):
        shard = p["records_per_shard"] * (p["record_size"] + RECORD_OVERHEAD)
        if shard > lim["object_bytes"]:
            return (f"a shard of {size(shard)} (records_per_shard x record_size) is over the "
                    f"limit of {size(lim['object_bytes'])} per object")  # fmt: skip
    if isinstance(workload, CheckpointRestore):
        if workload.logical_bytes() > lim["object_bytes"]:
            return f"a checkpoint of {size(workload.logical_bytes())} is over the limit"
    elif workload.logical_bytes() > lim["logical_bytes"]:
        return (f"{size(workload.logical_bytes())} logical is over the limit of "
                f"{size(lim['logical_bytes'])}")  # fmt: skip
    return None
