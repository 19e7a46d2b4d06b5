"""Ahead-of-time builds, run by ``scripts/setup.sh``, so that the first ``gcs-hook tune`` is not a
cold one (measured on a 2-core machine: the native build alone took 40 s of CPU):

1. gcs-hook's native ops: compiled with g++ against the installed TensorFlow and cached under
   :func:`gcs_hook.native_build.cache_root` (what the first ``native_ops.load()`` would do);
2. numba's kernels (``cache=True``: compiled once, then loaded from ``__pycache__``): the sweep's
   compiled engine and the columnar synthesizers, run once on tiny workloads, for the argument
   types the sweep passes.

Each step prints its time on stderr; a step that cannot run (no compiler, no TensorFlow, no
numba) says why and is skipped — the first use builds it then. Always exits 0: setup does not
fail over a cache.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _step(name: str, fn: object) -> None:
    t0 = time.monotonic()
    try:
        detail = fn()  # type: ignore[operator]
    except Exception as exc:  # any failure only means "built on first use instead"
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"prebuild: {name}: skipped ({first[:200]})", file=sys.stderr)
        return
    print(f"prebuild: {name}: {detail} in {time.monotonic() - t0:.1f} s", file=sys.stderr)


def native_ops() -> str:
    from gcs_hook.native_build import build

    build()
    return "built (or already cached)"


def numba_kernels() -> str:
    from benchmarks.sweep import CacheConfig
    from benchmarks.sweep.engine_compiled import simulate_columnar
    from benchmarks.workloads import MEASURE_SCALE, get_workload
    from benchmarks.workloads.columns import synthesize_columns

    mib = 1 << 20
    n = 0
    for name in ("tfrecord-epochs", "interleave", "random-records", "small-files"):
        trace = synthesize_columns(get_workload(name, **MEASURE_SCALE[name]))
        for config in (CacheConfig(mib, 4 * mib, 0), CacheConfig(0, 0, 0)):
            simulate_columnar(trace, config)
            n += 1
    return f"{n} runs compiled and cached"


if __name__ == "__main__":
    _step("native ops", native_ops)
    _step("numba kernels", numba_kernels)
