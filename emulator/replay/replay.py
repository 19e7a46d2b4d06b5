"""Replay a read trace (docs/trace-format.md) through real TensorFlow or the Python model.

This module is the one import for everything replay does; each job lives in its own module:

- :mod:`emulator.replay.loading` — trace loading and validation (:func:`load_replay_trace`,
  fault cases, :class:`ReplayError`), the defaults and time origin both engines share;
- :mod:`emulator.replay.tf_replayer` — the ``tf`` engine (:class:`TfReplayer`, :func:`run_tf`):
  real TensorFlow in a subprocess through the fake GCS front, one process per
  :class:`EnvGroup`; its in-process side is :mod:`emulator.replay.tf_engine`;
- :mod:`emulator.replay.isolation` — one trace's objects in a shared fake GCS under bucket
  names of its own, and the front's records mapped back;
- :mod:`emulator.replay.model_engine` — the ``model`` engine (:func:`run_model`):
  :class:`~emulator.model.gcs_model.GcsFilesystemModel` on a virtual clock over an in-memory
  store (requests are what the model says it sends) or gcsfs through the front;
- :mod:`emulator.replay.objects` — trace objects without their bytes built up front (lazy
  in-memory store, write plan, chunked uploads);
- :mod:`emulator.replay.comparison` — :func:`compare`, the first difference of two results;
- :mod:`emulator.replay.random_traces` — :func:`random_trace` for differential fuzzing.

``load_trace`` here is :func:`load_replay_trace` (a dict, ``ReplayError``); the package root's
``emulator.replay.load_trace`` is :func:`emulator.replay.trace.load_trace` (a ``Trace``).
"""

from __future__ import annotations

from emulator.replay.comparison import Difference, compare, read_record
from emulator.replay.isolation import Isolation, check_uploadable, real_bucket
from emulator.replay.loading import (
    FAULT_KINDS,
    TRACE_START_FRACTION,
    ReplayError,
    fault_body_bytes,
    load_replay_trace,
    object_content,
    public_result,
    trace_paths,
    validate_faults,
)
from emulator.replay.model_engine import MODEL_TRANSPORTS, run_model
from emulator.replay.random_traces import random_trace
from emulator.replay.tf_replayer import EnvGroup, TfReplayer, env_group, merge_groups, run_tf
from gcs_hook.tf_defaults import TF_DEFAULT_BLOCK_SIZE, TF_STAT_CACHE_MAX_AGE

#: The name this module has always used for :func:`load_replay_trace`.
load_trace = load_replay_trace

__all__ = [
    "TF_DEFAULT_BLOCK_SIZE",
    "TF_STAT_CACHE_MAX_AGE",
    "FAULT_KINDS",
    "MODEL_TRANSPORTS",
    "TRACE_START_FRACTION",
    "Difference",
    "EnvGroup",
    "Isolation",
    "ReplayError",
    "TfReplayer",
    "check_uploadable",
    "compare",
    "env_group",
    "fault_body_bytes",
    "load_replay_trace",
    "load_trace",
    "merge_groups",
    "object_content",
    "public_result",
    "random_trace",
    "read_record",
    "real_bucket",
    "run_model",
    "run_tf",
    "trace_paths",
    "validate_faults",
]
