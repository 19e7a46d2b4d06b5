"""Benchmark: where a fresh machine's first ``gcs-hook tune --quick`` spends its time.

Prints, each measured in this run in fresh cache directories (nothing of this user's caches is
used or changed):

1. the native ops' cold build, wall and CPU seconds: one g++ invocation for every source, one
   per source on all cores then a link (the two old ways), and one translation unit that
   includes every source (:func:`gcs_hook.native_build.compile_and_link`: TF's headers parsed
   once), side by side;
2. numba's kernels compiled cold (empty ``NUMBA_CACHE_DIR``) vs loaded from that cache
   (what ``scripts/prebuild.py`` leaves behind), each in a fresh interpreter;
3. one ``import tensorflow`` in a fresh interpreter (what each TF process costs);
4. ``gcs-hook tune --quick`` with the caches warm (what the first run after ``setup.sh`` sees),
   and with ``--cold`` also with both caches empty (no prebuild). Its own "done in N s".

    python -m benchmarks.perf.fresh [--cold]

Bounded: about a minute on 2 cores (two more with ``--cold``).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_NUMBA = (
    "from benchmarks.sweep import CacheConfig\n"
    "from benchmarks.sweep.engine_compiled import simulate_columnar\n"
    "from benchmarks.workloads import MEASURE_SCALE, get_workload\n"
    "from benchmarks.workloads.columns import synthesize_columns\n"
    "import time\nt = time.perf_counter()\n"
    "for name in ('tfrecord-epochs', 'interleave', 'random-records'):\n"
    "    tr = synthesize_columns(get_workload(name, **MEASURE_SCALE[name]))\n"
    "    for c in (CacheConfig(1 << 20, 4 << 20, 0), CacheConfig(0, 0, 0)):\n"
    "        simulate_columnar(tr, c)\n"
    "print(time.perf_counter() - t)\n"
)


def _python(code: str, env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=600, check=True)  # fmt: skip
    return out.stdout.strip().splitlines()[-1]


def _timed(run) -> tuple[float, float]:  # noqa: ANN001 - a no-argument callable
    """(wall, CPU of child processes) seconds of ``run()``."""
    import resource

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    t0, c0 = time.perf_counter(), cpu()
    run()
    return time.perf_counter() - t0, cpu() - c0


def native_build() -> None:
    from gcs_hook import native_build as nb

    p = nb.plan()
    with tempfile.TemporaryDirectory(prefix="gcs-hook-bench-") as d:
        tmp = Path(d)

        def serial() -> None:
            subprocess.run(p.command(tmp / "serial.so"), capture_output=True, check=True)

        def per_core() -> None:
            objs = [tmp / f"{i}.o" for i in range(len(p.sources))]
            jobs = max(1, min(len(objs), os.cpu_count() or 1))
            cmds = [[p.compiler, *p.command_flags, "-c", str(src), "-o", str(o)]
                    for src, o in zip(p.sources, objs, strict=True)]  # fmt: skip
            for start in range(0, len(cmds), jobs):
                procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                         for c in cmds[start : start + jobs]]  # fmt: skip
                assert all(pr.wait() == 0 for pr in procs)
            link = [p.compiler, *p.command_flags, *map(str, objs), "-o", str(tmp / "pc.so"),
                    *p.link_flags]  # fmt: skip
            subprocess.run(link, capture_output=True, check=True)

        def unity() -> None:
            _, proc = nb.compile_and_link(p, tmp / "unity.so", tmp)
            assert proc.returncode == 0, proc.stderr[-2000:]

        rows = [(name, *_timed(fn)) for name, fn in
                (("one g++, all sources", serial), ("one per source on the cores", per_core),
                 ("one translation unit (used)", unity))]  # fmt: skip
    print(f"native ops, cold build of {len(p.sources)} sources ({os.cpu_count()} cores):")
    for name, wall, cpu in rows:
        print(f"  {name:30s} {wall:5.1f} s wall, {cpu:5.1f} CPU-s")


def numba() -> None:
    with tempfile.TemporaryDirectory(prefix="gcs-hook-bench-") as d:
        env = {**os.environ, "NUMBA_CACHE_DIR": d}
        cold = float(_python(_NUMBA, env))
        warm = float(_python(_NUMBA, env))
    print(f"numba kernels: compiled {cold:.1f} s, loaded from the cache {warm:.2f} s")


def tf_import() -> None:
    t = _python("import time; t = time.perf_counter(); import tensorflow; "
                "print(time.perf_counter() - t)", dict(os.environ))  # fmt: skip
    print(f"import tensorflow in a fresh interpreter: {float(t):.1f} s")


def tune_quick(label: str, env: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory(prefix="gcs-hook-bench-") as d:
        cmd = [sys.executable, "-m", "gcs_hook.cli", "tune", "--quick", "--out", f"{d}/out"]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, env={**env, "COLUMNS": "200"}, capture_output=True, text=True,
                             timeout=900, cwd=d)  # fmt: skip
        wall = time.perf_counter() - t0
    done = re.findall(r"done in ([0-9.]+) s", out.stdout + out.stderr)
    print(f"tune --quick, {label}: done in {done[-1] if done else '?'} s "
          f"(process {wall:.1f} s, exit {out.returncode})")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cold", action="store_true", help="also tune with empty caches")
    args = ap.parse_args()
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    native_build()
    numba()
    tf_import()
    tune_quick("caches warm (after setup.sh's prebuild)", dict(os.environ))
    if args.cold:
        with tempfile.TemporaryDirectory(prefix="gcs-hook-bench-") as d:
            env = {**os.environ, "GCS_HOOK_CACHE_DIR": f"{d}/ops", "NUMBA_CACHE_DIR": f"{d}/nb"}
            tune_quick("caches empty (no prebuild)", env)


if __name__ == "__main__":
    main()
