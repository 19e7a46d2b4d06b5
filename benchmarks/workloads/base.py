"""The workload base classes: :class:`Workload` (what every workload knows) and
:class:`TFRecordShards` (the shard workloads' objects and files).

Invariants: object names are ``bucket/path``; every size :meth:`Workload.objects` gives is the
exact byte length of what :meth:`Workload.files` produces.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from benchmarks.workloads.files import RECORD_OVERHEAD, tfrecord_bytes
from benchmarks.workloads.files import payload as file_payload
from gcs_hook.units import KiB

__all__ = ["TFRecordShards", "Workload", "shard_names"]


@dataclass(frozen=True)
class Workload:
    """Base class; subclasses are frozen dataclasses whose fields are the workload's parameters."""

    name: str = ""
    bucket: str = "tune"
    epochs: int = 2

    description = ""
    #: how :mod:`benchmarks.record` assigns handles to recorded reads (see there)
    recorded_handles = "per-object"

    def objects(self) -> dict[str, int]:
        """Object name (``bucket/path``) → size in bytes."""
        raise NotImplementedError

    def files(self) -> Iterator[tuple[str, bytes]]:
        """(object name, content) for every object, the real bytes written to the fake GCS."""
        raise NotImplementedError

    def tf_epoch_code(self) -> str:
        """Python run inside a TfWorker (``tf`` imported) that reads the data for one epoch.

        Variables: ``epoch`` (int, 0-based). Sets ``result`` to a small JSON-able summary and
        ``_t_last`` to ``time.perf_counter()`` when the last element/read was delivered (what
        measured runs time: tf.data sometimes idles ~1 s after the last element before it
        reports the end of the sequence, which is not GCS time).
        """
        raise NotImplementedError

    def synthesize(self) -> dict[str, Any]:
        """The trace (trace-format dict, ``config`` null) of all epochs, without TF."""
        raise NotImplementedError(f"workload {self.name!r} is recorded only (no synthesizer)")

    @property
    def can_synthesize(self) -> bool:
        return type(self).synthesize is not Workload.synthesize

    def params(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "name"}

    def logical_bytes(self) -> int:
        return sum(self.objects().values())

    def with_params(self, **kw: Any) -> Workload:
        return replace(self, **kw)


def shard_names(bucket: str, prefix: str, shards: int) -> list[str]:
    return [f"{bucket}/{prefix}/shard-{i:05d}-of-{shards:05d}.tfrecord" for i in range(shards)]


@dataclass(frozen=True)
class TFRecordShards(Workload):
    """Base of the shard workloads: ``shards`` TFRecord files under ``bucket/<_prefix>/``, each
    ``records_per_shard`` records of ``record_size`` payload bytes (subclasses set defaults)."""

    shards: int = 4
    records_per_shard: int = 64
    record_size: int = 16 * KiB
    _prefix = ""  # class attribute, not a field

    def _names(self) -> list[str]:
        return shard_names(self.bucket, self._prefix, self.shards)

    def _gs_paths(self) -> list[str]:
        return ["gs://" + n for n in self._names()]

    def objects(self) -> dict[str, int]:
        size = self.records_per_shard * (self.record_size + RECORD_OVERHEAD)
        return {n: size for n in self._names()}

    def files(self) -> Iterator[tuple[str, bytes]]:
        for name in self._names():
            payloads = [
                file_payload(name, i, self.record_size) for i in range(self.records_per_shard)
            ]
            yield name, tfrecord_bytes(payloads)
