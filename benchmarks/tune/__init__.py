"""``gcs-hook tune``: record → sweep → measure → report, for one workload.

Stages (each printed as it runs):

1. **Record** (named workloads, when TensorFlow is installed): the workload at measurement
   scale (:data:`~benchmarks.workloads.MEASURE_SCALE`, a few MiB) is written to the fake GCS and
   read by real TF through the front (:mod:`benchmarks.record`). For workloads with a
   synthesizer the recorded reads are compared with the synthesized ones ("model check").
2. **Sweep**: the workload at sweep scale (:data:`~benchmarks.workloads.SWEEP_SCALE` + user
   ``--param``s; 1 GiB by default) is synthesized (or recorded, for checkpoint-restore) and every
   grid configuration is simulated in the size-only model on all local cores
   (:mod:`benchmarks.sweep`); a ``TRACE.json`` is swept as given.
3. **Measure**: the recommendation, TF's default (cache off) and one or three others run in real
   TF through the front with traffic shaping (:mod:`benchmarks.tune.measure`), each also unshaped for
   this machine's own cost.
4. **Report** (:mod:`benchmarks.tune.report`): table, CSV/JSON, PNGs, the line to paste.

Where each piece lives: :mod:`benchmarks.tune.options` (:class:`TuneOptions`, :class:`TuneOutcome`,
:data:`MEASURE_TIMING`), :mod:`benchmarks.tune.pipeline` (:func:`run_tune` and the four stage
functions), :mod:`benchmarks.tune.inputs` (the grid, the engine, the model check),
:mod:`benchmarks.tune.measure`, :mod:`benchmarks.tune.advice`, :mod:`benchmarks.tune.report`.

Invariants: everything :func:`run_tune` starts (fake GCS, front, TF workers) is stopped before it
returns or raises; nothing is written outside ``out_dir`` (plus temp files).
"""

from __future__ import annotations

from benchmarks.tune.options import MEASURE_TIMING, TuneOptions, TuneOutcome
from benchmarks.tune.pipeline import run_tune

__all__ = ["MEASURE_TIMING", "TuneOptions", "TuneOutcome", "run_tune"]
