"""``gcs-hook record -- CMD``: run a user's program against the fake GCS and keep its trace.

:func:`record_program` starts a :class:`~emulator.fakegcs.session.GcsEmulator` (seeded from
``data_dir``: ``DIR/<bucket>/<path...>``), runs ``cmd`` with the front's environment plus the
recording settings (:data:`benchmarks.record.PROGRAM_RECORDING_ENV`, set before the program
imports TensorFlow: every ``RandomAccessFile::Read`` is one ranged GET and every stat one
metadata request, so the run is slower than usual: more, smaller requests, no read-ahead, no
stat cache), waits for it, converts the ledger with
:func:`benchmarks.record.ledger.ledger_to_trace` and returns the trace and the program's exit
code.

Invariants: the emulator is stopped before :func:`record_program` returns or raises; the
program's environment holds no credential other than the front's test token; stdin, stdout
and stderr of the program are the caller's.

A pass-through mode against real GCS (issue 12) will reuse :func:`ledger_to_trace` unchanged:
only where the front forwards to changes.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.record import PROGRAM_RECORDING_ENV
from benchmarks.record.ledger import LedgerTrace, ledger_to_trace

__all__ = ["ProgramRecording", "record_program", "recording_env", "seed_objects"]


@dataclass
class ProgramRecording:
    result: LedgerTrace
    returncode: int
    seconds: float
    requests: int  # ledger records of the run (all clients)


def seed_objects(emu: Any, data_dir: str | None) -> dict[str, int]:
    """Seed ``data_dir`` (``DIR/<bucket>/<path...>``) into ``emu``; ``{"bucket/path": size}``."""
    objects: dict[str, int] = {}
    if data_dir is not None:
        for name in emu.backend.seed_from_dir(data_dir):
            bucket, _, path = name.partition("/")
            objects[name] = int(emu.backend.stat_object(bucket, path)["size"])
    return objects


def recording_env(emu: Any, extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """The recorded program's environment: ours, the front's, the recording settings, extras."""
    env = dict(os.environ)
    env.update(emu.tf_env())
    env.update(PROGRAM_RECORDING_ENV)
    env.update(extra_env or {})
    return env


def record_program(
    cmd: Sequence[str],
    *,
    data_dir: str | None = None,
    backend: str = "embedded",
    ledger_path: str | None = None,
    extra_env: dict[str, str] | None = None,
    min_sleep_s: float = 0.001,
    emulator: Any = None,
) -> ProgramRecording:
    """Run ``cmd`` against a fresh fake GCS (or ``emulator``) and convert what it sent."""
    from emulator.fakegcs.session import GcsEmulator

    own = emulator is None
    emu = GcsEmulator(backend, ledger_path=ledger_path) if own else emulator
    try:
        objects = seed_objects(emu, data_dir)
        env = recording_env(emu, extra_env)
        mark = emu.ledger.mark()
        t0 = time.monotonic()
        proc = subprocess.run(list(cmd), env=env, check=False)
        seconds = time.monotonic() - t0
        emu.ledger.wait_quiet(quiet_s=0.05, timeout=30.0)
        records = emu.ledger.since(mark)
        result = ledger_to_trace(
            records,
            objects,
            min_sleep_s=min_sleep_s,
            comment=f"recorded by gcs-hook record: {' '.join(cmd)[:200]}",
            timing_mode="fake",
        )
        return ProgramRecording(result, proc.returncode, seconds, len(records))
    finally:
        if own:
            emu.close()
