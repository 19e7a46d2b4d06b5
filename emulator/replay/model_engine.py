"""The model engine of ``gcs-hook replay``: a trace through :class:`GcsFilesystemModel`.

The model runs on a virtual clock starting at :data:`~emulator.replay.loading.TRACE_START_FRACTION`
(as the TF engine's ops do), with TF's retry settings as the TF engine runs TF (no backoff), and
the trace's ops go through :func:`emulator.replay.simulation.run_trace`, the one trace runner of
the model side, so replay and simulation cannot drift apart.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Mapping
from typing import Any

from emulator.replay.isolation import Isolation, wait_quiet
from emulator.replay.loading import (
    TRACE_START_FRACTION,
    ReplayError,
    fault_body_bytes,
    renamed_trace,
    trace_object_names,
)
from emulator.replay.objects import LazyObjectTransport
from gcs_hook.tf_defaults import TF_STAT_CACHE_MAX_AGE

__all__ = ["MODEL_TRANSPORTS", "run_model"]


#: Transports the model engine can read through.
MODEL_TRANSPORTS = ("memory", "gcsfs")


def run_model(
    trace: Mapping[str, Any], *, transport: str = "memory", emulator: Any = None
) -> dict[str, Any]:
    """Run one (validated) trace through the model on a virtual clock; returns the result.

    The model filesystem is built with the trace's ``config`` and ``stat_cache_max_age``; the
    ops run through :func:`emulator.replay.simulation.run_trace` (the one trace runner the
    model side has), so replay and simulation cannot drift apart.

    ``transport="memory"``: a :class:`~emulator.replay.objects.LazyObjectTransport` (the memory
    transport holding each object as name, version and size; a ranged GET computes just the
    bytes it returns, so an object nothing reads costs nothing whatever its size); requests are
    what the model says it sends. ``transport="gcsfs"``: a
    :class:`~emulator.model.transport.GcsfsTransport` through the front's plain-HTTP endpoint
    of ``emulator`` (started and stopped here if None), objects in the fake GCS under run-unique
    bucket names; requests are what the FRONT saw (the wire, comparable with the tf engine),
    and ``transport_requests`` what the model says it sent.
    """
    from emulator.model.clock import VirtualClock
    from emulator.model.errors import error_for_http_status
    from emulator.model.gcs_model import GcsFilesystemModel, RetryConfig
    from emulator.model.transport import GcsfsTransport
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
            stat_cache_max_age=TF_STAT_CACHE_MAX_AGE if stat_age is None else int(stat_age),
            clock=VirtualClock(TRACE_START_FRACTION),
            # as the tf engine runs TF: GCS_RETRY_CONFIG_INIT_DELAY_TIME_US=0 (no backoff)
            retry=RetryConfig(init_delay_us=0),
        )

    if transport == "memory":
        store = LazyObjectTransport()
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
        result = run_trace(
            plain,
            model_fs(store),
            engine="model",
            writer=store.put_trace_object,
            deleter=store.delete_trace_object,
        ).to_dict()
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
    iso = Isolation(emulator, trace, f"m{uuid.uuid4().hex[:6]}")
    renamed = renamed_trace(trace, iso.real_path)
    original = {iso.real_path(name): name for name in trace_object_names(trace)}
    try:
        iso.create(trace.get("objects") or {})
        fs = model_fs(transport_cls(emulator.gcsfs()))
        wait_quiet(emulator.ledger)
        start = emulator.ledger.mark()
        result = run_trace(
            renamed,
            fs,
            engine="model",
            writer=lambda real, version, size, earlier=(): iso.put(
                original[real], size, version, earlier
            ),
            deleter=lambda real: iso.delete(original[real]),
            create_objects=False,
        ).to_dict()
        wait_quiet(emulator.ledger)
        requests, _ = iso.collect(start)
        return {
            "engine": "model",
            "requests": requests,
            "reads": result["reads"],
            "transport_requests": [iso.unmap(r) for r in result["requests"]],
        }
    finally:
        iso.drop()
