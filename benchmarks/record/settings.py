"""The recording settings: the TF environment under which every ``RandomAccessFile::Read`` is
exactly one ranged GET (and, for programs, every stat one metadata request), and the block
cache in force while recording. Imports nothing (every recorder uses it).
"""

from __future__ import annotations

__all__ = ["PROGRAM_RECORDING_ENV", "RECORDING_CONFIG", "RECORDING_ENV"]

#: Environment that makes every RandomAccessFile::Read exactly one ranged GET.
RECORDING_ENV = {"GCS_READ_CACHE_BLOCK_SIZE_MB": "0", "GCS_READ_CACHE_MAX_SIZE_MB": "0"}
#: For programs whose files change (``gcs-hook record``, live workloads): also every stat is
#: one metadata request (TF's stat cache off), so the trace has a ``stat`` op for each and the
#: model applies the stat cache of the configuration swept (a stale size shows there).
PROGRAM_RECORDING_ENV = {**RECORDING_ENV, "GCS_STAT_CACHE_MAX_AGE": "0"}
#: The block cache in force while recording (bytes, bytes, seconds).
RECORDING_CONFIG = {"block_size": 0, "max_bytes": 0, "max_staleness": 0}
