"""Workloads whose files change while they are read: real clients of live GCS directories.

- :class:`TensorBoardLogs` (``tensorboard``): TensorBoard's ``EventMultiplexer`` reloading
  ``runs`` event files while a trainer (another process) appends to them. TensorBoard reads an
  event file through ``tf_record_iterator`` (a RandomAccessFile behind a 16 MiB input buffer,
  kept open across reloads): the first load reads 16 MiB chunks from offset 0 until a short
  read; every later reload reads 1 byte at ``end - 1`` and then 16 MiB chunks from ``end`` (the
  bytes it has consumed) until a short read. Each trainer flush uploads the whole file again:
  a new generation that keeps the old bytes (an ``overwrite`` op with ``append``, since the
  trainer is another process).
- :class:`CheckpointPoller` (``checkpoint-poller``): an evaluator polling
  ``tf.train.latest_checkpoint`` and restoring each new checkpoint with ``tf.train.Checkpoint``
  while a trainer writes new ones. Recorded only (the requests of TF's checkpoint code are
  taken from a recording, not derived).

Both record through the front like a user's program (:func:`benchmarks.record.live.record_live`): the trainer's
uploads go through the front anonymously, so :func:`benchmarks.record.ledger.ledger_to_trace`
turns them into ``overwrite`` ops and the reader's requests into reads, stats and sleeps.

Invariants: :meth:`TensorBoardLogs.synthesize` gives the read ops a recording gives when every
read sees the current data (the recording settings, cache off with no read-ahead); the
objects' sizes are the exact byte lengths of the event files at each reload.
"""

from __future__ import annotations

import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from benchmarks.workloads.base import Workload
from benchmarks.workloads.files import tfrecord_bytes
from gcs_hook.units import KiB, MiB

__all__ = [
    "LIVE",
    "CheckpointPoller",
    "TensorBoardLogs",
    "TB_READ_CHUNK",
    "run_live",
    "upload_as_other_writer",
]

#: TF's record reader buffer in tf_record_iterator (io/record_io_wrapper.cc kReaderBufferSize)
TB_READ_CHUNK = 16 * MiB


@lru_cache(maxsize=8192)
def _event(run: int, step: int, size: int) -> bytes:
    """One serialized Event: step 0 is the file-version header, later steps carry a scalar
    ``loss`` and ``size`` bytes of plugin data (the bulk of a real summary: images, histograms)."""
    from tensorboard.compat.proto import event_pb2

    if step == 0:
        return event_pb2.Event(wall_time=0.0, file_version="brain.Event:2").SerializeToString()
    e = event_pb2.Event(wall_time=float(step), step=step)
    v = e.summary.value.add()
    v.tag, v.simple_value = "loss", 1.0 / step
    pad = e.summary.value.add()
    pad.tag = "pad"
    pad.metadata.plugin_data.plugin_name = "gcs_hook_pad"
    pad.metadata.plugin_data.content = (f"{run}|{step}|".encode() * (size // 4 + 1))[:size]
    return e.SerializeToString()


@dataclass(frozen=True)
class TensorBoardLogs(Workload):
    """``runs`` event files; the trainer appends ``events_per_reload`` events to each before
    every reload after the first; TensorBoard reloads ``reloads`` times, every
    ``reload_interval_s`` seconds."""

    name: str = "tensorboard"
    runs: int = 4
    event_bytes: int = 64 * KiB
    initial_events: int = 16
    events_per_reload: int = 16
    reloads: int = 4
    reload_interval_s: int = 5
    epochs: int = 1
    description = "TensorBoard EventMultiplexer reloading event files a trainer appends to"

    def _path(self, run: int) -> str:
        return f"{self.bucket}/logs/run{run:03d}/events.out.tfevents.1700000000.trainer"

    def events_at(self, reload: int) -> int:
        """Events in each file when reload ``reload`` (0-based) runs (+1: the header)."""
        return 1 + self.initial_events + reload * self.events_per_reload

    def content(self, run: int, reload: int) -> bytes:
        return tfrecord_bytes(
            [_event(run, s, self.event_bytes) for s in range(self.events_at(reload))]
        )

    def size_at(self, run: int, reload: int) -> int:
        return sum(
            len(_event(run, s, self.event_bytes)) + 16 for s in range(self.events_at(reload))
        )

    def objects(self) -> dict[str, int]:
        return {self._path(r): self.size_at(r, 0) for r in range(self.runs)}

    def logical_bytes(self) -> int:
        return sum(self.size_at(r, self.reloads - 1) for r in range(self.runs))

    def files(self) -> Iterator[tuple[str, bytes]]:
        for r in range(self.runs):
            yield self._path(r), self.content(r, 0)

    def updates(self, reload: int) -> Iterator[tuple[str, bytes]]:
        """What the trainer has uploaded before reload ``reload`` (>= 1)."""
        for r in range(self.runs):
            yield self._path(r), self.content(r, reload)

    def reader_setup_code(self) -> str:
        return (
            "from tensorboard.backend.event_processing import plugin_event_multiplexer as _pem\n"
            "mx = _pem.EventMultiplexer()\n"
            f"mx.AddRunsFromDirectory('gs://{self.bucket}/logs')\n"
            "result = None\n"
        )

    def reader_step_code(self) -> str:
        return "mx.Reload()\nresult = {r: len(mx.Tensors(r, 'loss')) for r in sorted(mx.Runs())}\n"

    def tf_epoch_code(self) -> str:  # a whole run in one call (no trainer): not for measure
        return self.reader_setup_code() + self.reader_step_code()

    def synthesize(self) -> dict[str, Any]:
        # AddRunsFromDirectory: IsDirectory on the logdir (metadata 404, then a listing)
        ops: list[dict[str, Any]] = [{"op": "stat", "object": f"{self.bucket}/logs"}]
        for k in range(self.reloads):
            if k > 0:
                ops.append({"op": "sleep", "seconds": self.reload_interval_s})
                for r in range(self.runs):  # the trainer re-uploads the file with more events
                    ops.append({"op": "overwrite", "object": self._path(r),
                                "size": self.size_at(r, k), "append": True})  # fmt: skip
            for r in range(self.runs):
                if k == 0:
                    ops.append({"op": "open", "handle": f"run{r}", "object": self._path(r)})
                ops.append({"op": "tail", "handle": f"run{r}", "chunk": TB_READ_CHUNK})
        for r in range(self.runs):
            ops.append({"op": "close", "handle": f"run{r}"})
        return {
            "config": None,
            "objects": self.objects(),
            "ops": ops,
            "comment": f"synthesized: workload {self.name} {self.params()}",
        }


@dataclass(frozen=True)
class CheckpointPoller(Workload):
    """The trainer saves ``checkpoints`` checkpoints of ``variables`` float32 variables; after
    each save the evaluator polls ``latest_checkpoint`` (and once more with nothing new) and
    restores what is new."""

    name: str = "checkpoint-poller"
    variables: int = 8
    floats_per_variable: int = 64 * 1024
    checkpoints: int = 3
    poll_interval_s: int = 2
    epochs: int = 1
    description = "evaluator polling tf.train.latest_checkpoint and restoring while a trainer saves"

    def objects(self) -> dict[str, int]:
        return {}

    def logical_bytes(self) -> int:
        return self.variables * self.floats_per_variable * 4 * self.checkpoints

    def files(self) -> Iterator[tuple[str, bytes]]:
        return iter(())

    def reader_setup_code(self) -> str:
        return (
            "import numpy as _np\n"
            f"_vars = [tf.Variable(tf.zeros([{self.floats_per_variable}])) "
            f"for _ in range({self.variables})]\n"
            "_ckpt = tf.train.Checkpoint(v=_vars)\n"
            "_seen = None\n"
            "result = None\n"
        )

    def reader_step_code(self) -> str:
        return (
            f"_latest = tf.train.latest_checkpoint('gs://{self.bucket}/ckpt')\n"
            "if _latest is not None and _latest != _seen:\n"
            "    _ckpt.restore(_latest).expect_partial()\n"
            "    _seen = _latest\n"
            "result = [_latest, float(_vars[0][0].numpy())]\n"
        )

    def trainer_code(self) -> str:
        """Run in a trainer TfWorker with ``outdir`` and ``step``: saves checkpoint ``step``
        locally with a ``tf.train.CheckpointManager`` (TF's own format and state file);
        returns the directory's file names."""
        f, v = self.floats_per_variable, self.variables
        return (
            "import os\n"
            "if globals().get('_outdir') != outdir:  # a new run (the trainer may be reused)\n"
            f"    _tv = [tf.Variable(tf.zeros([{f}])) for _ in range({v})]\n"
            "    _mgr = tf.train.CheckpointManager(tf.train.Checkpoint(v=_tv), outdir, "
            "max_to_keep=None)\n"
            "    _outdir = outdir\n"
            "for _i, _var in enumerate(_tv):\n"
            f"    _var.assign(tf.fill([{f}], float(step) + _i))\n"
            "_mgr.save(checkpoint_number=step)\n"
            "result = sorted(os.listdir(outdir))\n"
        )

    def tf_epoch_code(self) -> str:
        return self.reader_setup_code() + self.reader_step_code()


#: the live workload classes (recorded with ``benchmarks.record.live.record_live``, not measured per epoch)
LIVE = (TensorBoardLogs, CheckpointPoller)


def upload_as_other_writer(front_url: str, bucket: str, name: str, data: bytes) -> None:
    """An anonymous single-request upload through the front (another writer, not the reader)."""
    q = urllib.parse.urlencode({"uploadType": "media", "name": name})
    req = urllib.request.Request(
        f"{front_url}/upload/storage/v1/b/{bucket}/o?{q}", data=data, method="POST"
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        resp.read()


def run_live(workload: Workload, emulator: Any, reader: Any, *, trainer: Any = None) -> list:
    """Run a live workload: the trainer's uploads (anonymous, through the front) between the
    reader's steps in ``reader`` (a TfWorker). Returns the reader's step results."""
    import os
    import tempfile

    bucket = workload.bucket
    for name, data in workload.files():  # the objects at the start, before the reader runs
        emulator.backend.put_object(bucket, name.partition("/")[2], data)
    results = [reader.run(workload.reader_setup_code())]
    if isinstance(workload, TensorBoardLogs):
        for k in range(workload.reloads):
            if k > 0:
                time.sleep(workload.reload_interval_s)
                for name, data in workload.updates(k):
                    upload_as_other_writer(emulator.url, bucket, name.partition("/")[2], data)
            results.append(reader.run(workload.reader_step_code(), timeout=600))
        return results
    assert isinstance(workload, CheckpointPoller)
    uploaded: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="gcs-hook-poller-") as outdir:
        for step in range(1, workload.checkpoints + 1):
            files = trainer.run(workload.trainer_code(), outdir=outdir, step=step, timeout=300)
            new = [f for f in files if f not in uploaded or f == "checkpoint"]
            uploaded.update(new)
            # data and index first, the state file last (as CheckpointManager writes them)
            for fname in sorted(new, key=lambda f: f == "checkpoint"):
                with open(os.path.join(outdir, fname), "rb") as fh:
                    upload_as_other_writer(emulator.url, bucket, f"ckpt/{fname}", fh.read())
            for _ in range(2):  # a poll that finds it, and one that finds nothing new
                results.append(reader.run(workload.reader_step_code(), timeout=600))
                time.sleep(workload.poll_interval_s)
    return results
