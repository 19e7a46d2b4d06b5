"""``gcs-hook record -- CMD``: run a user's program against the fake GCS and keep its trace.

:func:`record_program` starts a :class:`~emulator.fakegcs.session.GcsEmulator` (seeded from
``data_dir``: ``DIR/<bucket>/<path...>``), runs ``cmd`` with the front's environment plus the
recording settings (:data:`benchmarks.record.PROGRAM_RECORDING_ENV`, set before the program
imports TensorFlow: every ``RandomAccessFile::Read`` is one ranged GET and every stat one
metadata request, so the run is slower than usual: more, smaller requests, no read-ahead, no
stat cache), waits for it, converts the ledger with
:func:`benchmarks.record.ledger.ledger_to_trace` and returns the trace and the program's exit
code.

Invariants: the emulator is stopped before :func:`record_program` returns or raises, and no
process of the program's process group is left (:mod:`benchmarks.record.process`); the
program's environment holds no credential other than the front's test token; stdin, stdout
and stderr of the program are the caller's.

A pass-through mode against real GCS (issue 12) will reuse :func:`ledger_to_trace` unchanged:
only where the front forwards to changes.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.record.fsspec_log import read_fsspec_log, shim_env
from benchmarks.record.ledger import (
    LedgerTrace,
    completed_uploads,
    ledger_to_trace,
    mark_appends,
)
from benchmarks.record.process import run_limited
from benchmarks.record.settings import PROGRAM_RECORDING_ENV
from benchmarks.record.sharing import trace_comment
from benchmarks.record.writer import write_ledger

__all__ = [
    "ProgramRecording",
    "TreeRecording",
    "record_program",
    "recording_env",
    "seed_objects",
    "tree_recording",
]


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


def keep_seeded_versions(emu: Any, objects: dict[str, int]) -> None:
    """Keep every object version in the seeded buckets (to tell appends from rewrites)."""
    from benchmarks.record.versions import keep_versions

    keep_versions(emu.backend, {name.partition("/")[0] for name in objects})


def recorded_appends(emu: Any, records: Any) -> dict[str, list[bool]]:
    """Which of the recorded uploads appended (the fake holds both versions)."""
    from benchmarks.record.versions import append_flags

    return append_flags(emu.backend, completed_uploads(records))


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
    keep_command: bool = False,
    stdout: Any = None,
) -> ProgramRecording:
    """Run ``cmd`` against a fresh fake GCS (or ``emulator``) and convert what it sent; the
    run's ledger records go to ``ledger_path`` (atomically) when it ends; the comment names
    the program's base name only unless ``keep_command``. ``stdout``: the program's (default:
    ours; ``tune`` records built-ins with DEVNULL)."""
    from emulator.fakegcs.session import GcsEmulator
    from emulator.fakegcs.tempdirs import remove_dead_leftovers

    own = emulator is None
    if own:
        remove_dead_leftovers()  # key material and backend dirs of records that were SIGKILLed
    emu = GcsEmulator(backend) if own else emulator
    try:
        objects = seed_objects(emu, data_dir)
        keep_seeded_versions(emu, objects)
        with tree_recording(emu) as tree:
            env = recording_env(emu, {**tree.env, **(extra_env or {})})
            mark = emu.ledger.mark()
            # the whole process group, ended
            returncode, seconds, _ = run_limited(cmd, env, stdout=stdout)
            emu.ledger.wait_quiet(quiet_s=0.05, timeout=30.0)
            records = emu.ledger.since(mark)
            appends = recorded_appends(emu, records)
            records = mark_appends(records, appends)  # the written ledger keeps them
            result = tree.to_trace(
                records,
                objects,
                appends=appends,
                min_sleep_s=min_sleep_s,
                comment=trace_comment(
                    "recorded by gcs-hook record", cmd, keep_command=keep_command
                ),
                timing_mode="fake",
            )
        if ledger_path is not None:
            write_ledger(ledger_path, records)
        return ProgramRecording(result, returncode, seconds, len(records))
    finally:
        if own:
            emu.close()


class TreeRecording:
    """What a fake-mode recording adds to the program's run (see :func:`tree_recording`)."""

    def __init__(self, emu: Any, log_dir: str) -> None:
        from emulator.fakegcs.peers import MARKER_ENV, PeerAttribution

        record_id = secrets.token_hex(8)
        self.attribution = PeerAttribution(record_id)
        self.log_dir = log_dir
        self.env = {MARKER_ENV: record_id, **shim_env(log_dir)}

    def to_trace(self, records: list[Any], objects: dict[str, int], **kw: Any) -> LedgerTrace:
        """The trace: the tree's requests are the program's whatever token they carry, gcsfs
        file reads come from the shim's log (tagged ``client: gcsfs``)."""
        files = read_fsspec_log(self.log_dir)
        kw.setdefault("end_t", files.exit_t)
        result = ledger_to_trace(
            records, objects, peers=self.attribution.peers(), file_events=files.events,
            fsspec_pids=files.pids, **kw,
        )  # fmt: skip
        if files.files:
            result.trace["clients"] = {
                "gcsfs": {**files.versions, "files": files.files, "reads": files.reads}
            }
        result.files = files
        return result


@contextlib.contextmanager
def tree_recording(emu: Any) -> Iterator[TreeRecording]:
    """Attribute the front's connections to processes, and log fsspec file reads, while the
    program runs: ``tree.env`` goes into its environment, ``tree.to_trace`` converts."""
    with tempfile.TemporaryDirectory(prefix="gcs-hook-fsspec-") as log_dir:
        os.chmod(log_dir, 0o700)
        tree = TreeRecording(emu, log_dir)
        emu.front.connection_observers.append(tree.attribution.observe)
        try:
            yield tree
        finally:
            with contextlib.suppress(ValueError):
                emu.front.connection_observers.remove(tree.attribution.observe)
