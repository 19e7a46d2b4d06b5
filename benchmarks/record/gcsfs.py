"""Record and run the built-in gcsfs workloads (:mod:`benchmarks.workloads.gcsfs_job`).

:func:`record_gcsfs_workload` runs the real gcsfs program under ``record``'s fake mode (the
fsspec shim logs its file reads; :func:`benchmarks.record.program.record_program`) and returns
the trace; :func:`run_gcsfs_workload` runs it with one explicit configuration against a fresh
fake GCS and counts the media requests and bytes the front saw (what ``tune`` measures, and what
the tests compare with the model).

Invariants: each call starts and stops its own fake GCS; the program is anonymous (gcsfs with
``STORAGE_EMULATOR_HOST``), as a user's would be.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from benchmarks.workloads.gcsfs_job import WORKLOADS, make_objects

__all__ = ["gcsfs_job_cmd", "record_gcsfs_workload", "run_gcsfs_workload", "seed_gcsfs_job"]

BUCKET = "gcsfs-job"


def gcsfs_job_cmd(mode: str, config: Any = None, bucket: str = BUCKET) -> list[str]:
    """The job's command line; ``config`` (an ``FsspecCacheConfig``) is passed to every open."""
    cmd = [sys.executable, "-m", "benchmarks.workloads.gcsfs_job", bucket, "--mode", mode]
    if config is not None:
        cmd += ["--cache-type", config.cache_type, "--block-size", str(config.block_size)]
        maxblocks = dict(config.cache_options).get("maxblocks")
        if maxblocks:
            cmd += ["--maxblocks", str(maxblocks)]
    return cmd


def seed_gcsfs_job(emu: Any, mode: str, bucket: str = BUCKET) -> dict[str, int]:
    """Write the job's objects into ``emu``; ``{"bucket/name": size}``."""
    emu.backend.create_bucket(bucket)
    sizes = {}
    for name, data in make_objects((mode,)).items():
        emu.backend.put_object(bucket, name, data)
        sizes[f"{bucket}/{name}"] = len(data)
    return sizes


def _project_env() -> dict[str, str]:
    """The job is a module of this project: make sure a child interpreter finds it."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": root + (os.pathsep + path if path else "")}


def record_gcsfs_workload(name: str, *, backend: str = "embedded") -> dict[str, Any]:
    """The trace of built-in workload ``name`` (recorded now, with gcsfs's defaults)."""
    from benchmarks.record.program import record_program
    from emulator.fakegcs.session import GcsEmulator

    mode = WORKLOADS[name]
    with GcsEmulator(backend) as emu:
        sizes = seed_gcsfs_job(emu, mode)
        old = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = _project_env()["PYTHONPATH"]
        try:
            rec = record_program(gcsfs_job_cmd(mode), emulator=emu, stdout=subprocess.DEVNULL)
        finally:
            if old is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = old
    if rec.returncode != 0:
        raise RuntimeError(f"gcsfs workload {name} exited with {rec.returncode}")
    trace = rec.result.trace
    trace["objects"] = sizes
    trace["comment"] = f"recorded by gcs-hook tune: gcsfs workload {name}"
    return trace


def run_gcsfs_workload(name: str, config: Any, *, backend: str = "embedded") -> dict[str, int]:
    """Run workload ``name`` with ``config``; ``{"requests", "bytes", "metadata"}`` the front
    saw (media GETs and their body bytes, metadata GETs) and the job's ``returncode``."""
    from emulator.fakegcs.session import GcsEmulator

    mode = WORKLOADS[name]
    with GcsEmulator(backend) as emu:
        seed_gcsfs_job(emu, mode)
        env = {**os.environ, **emu.tf_env(test_token=None), **_project_env()}
        mark = emu.ledger.mark()
        proc = subprocess.run(gcsfs_job_cmd(mode, config), env=env, check=False,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        emu.ledger.wait_quiet(quiet_s=0.05, timeout=30.0)
        recs = emu.ledger.since(mark)
    media = [r for r in recs if r.kind == "media" and r.method == "GET"]
    return {
        "requests": len(media),
        "bytes": sum(r.bytes_out for r in media),
        "metadata": sum(1 for r in recs if r.kind == "metadata"),
        "returncode": proc.returncode,
    }
