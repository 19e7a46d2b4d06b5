"""Traces and the machinery that replays them through the model and through real TensorFlow.

- ``trace``: the trace and result format (load, validate, dump; deterministic object content);
- ``simulation``: ``simulate()``, a trace through the model on a virtual clock, size-only
  (no bytes moved);
- ``loading``: traces as the engines take them (``load_replay_trace``: validated dict + faults);
- ``model_engine``: ``run_model``, a trace through the model, requests as the model sends them;
- ``tf_replayer``: ``TfReplayer`` / ``run_tf``, a trace through real TensorFlow and the front;
- ``isolation``: one trace's objects in a shared fake GCS under bucket names of its own;
- ``objects``: trace objects without their bytes built up front (lazy store, write plan);
- ``comparison``: ``compare``, the first difference between two results;
- ``random_traces``: ``random_trace``, seeded traces for differential fuzzing;
- ``replay``: one import for all of the above (``from emulator.replay import replay``);
- ``tf_engine``, ``tf_worker``: the TF side, inside a TensorFlow subprocess.

``load_trace`` here is ``trace.load_trace`` (a ``Trace``); ``load_replay_trace`` is the
engines' (a dict, ``ReplayError``).

Uses ``emulator.model`` and ``emulator.fakegcs``; neither uses this package.
"""

from emulator._lazy import lazy_exports

__all__ = [
    "CacheConfig",
    "ReplayError",
    "Trace",
    "TraceError",
    "TfWorker",
    "compare",
    "dump_trace",
    "load_replay_trace",
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
        "ReplayError": ".loading",
        "load_replay_trace": ".loading",
        "compare": ".comparison",
        "random_trace": ".random_traces",
        "run_model": ".model_engine",
        "run_tf": ".tf_replayer",
    },
)
