"""Traces and the machinery that replays them through the model and through real TensorFlow.

- ``trace``: the trace and result format (load, validate, dump; deterministic object content);
- ``simulation``: ``simulate()``, a trace through the model with a virtual clock, size-only (no bytes moved);
- ``replay``: the model engine, the TF engine and its isolation, comparison, random traces;
- ``tf_engine``, ``tf_worker``: the TF side, inside a TensorFlow subprocess.

Uses ``emulator.model`` and ``emulator.fakegcs``; neither uses this package.
"""

from emulator._lazy import lazy_exports

__all__ = [
    "CacheConfig",
    "Trace",
    "TraceError",
    "TfWorker",
    "compare",
    "dump_trace",
    "load_trace",
    "random_trace",
    "run_model",
    "run_tf",
    "simulate",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "CacheConfig": ".trace",
        "Trace": ".trace",
        "TraceError": ".trace",
        "dump_trace": ".trace",
        "load_trace": ".trace",
        "simulate": ".simulation",
        "TfWorker": ".tf_worker",
        "compare": ".replay",
        "random_trace": ".replay",
        "run_model": ".replay",
        "run_tf": ".replay",
    },
)
