"""TensorFlow's GCS defaults, one home each (bytes, bytes, seconds).

Two TensorFlows matter and their defaults differ, so every name says which one it is:

- **TF 2.21** (what runs here; ``gcs_file_system.cc``, non-libtpu build): block size 64 MiB,
  block cache off (``max_bytes`` 0), no staleness limit, stat cache 5 s. With the cache off the
  block size is the buffered reader's read-ahead buffer.
- **r1.12** ``tf.contrib.cloud.BlockCacheParams``: a field left at ``None`` meant block size
  128 MiB and ``max_bytes`` = 2 × block size (what :class:`gcs_hook.params.BlockCacheParams`
  keeps).

Imports only :mod:`gcs_hook.units` (every package may use it: ``gcs_hook``, ``emulator``,
``benchmarks``).
"""

from __future__ import annotations

from gcs_hook.units import MiB

__all__ = [
    "R1_12_DEFAULT_BLOCK_SIZE",
    "TF_DEFAULT_BLOCK_SIZE",
    "TF_DEFAULT_MAX_BYTES",
    "TF_DEFAULT_MAX_STALENESS",
    "TF_STAT_CACHE_MAX_AGE",
    "TF_STAT_CACHE_MAX_ENTRIES",
]

#: TF 2.21's filesystem block size = the cache-off read-ahead buffer.
TF_DEFAULT_BLOCK_SIZE = 64 * MiB
#: TF 2.21's block cache capacity: 0, the cache is off.
TF_DEFAULT_MAX_BYTES = 0
#: TF 2.21's block staleness limit: 0, none.
TF_DEFAULT_MAX_STALENESS = 0
#: TF 2.21's stat cache max age (seconds) and capacity (entries).
TF_STAT_CACHE_MAX_AGE = 5
TF_STAT_CACHE_MAX_ENTRIES = 1024
#: r1.12's ``BlockCacheParams(block_size=None)``: 128 MiB (not TF 2.21's 64 MiB).
R1_12_DEFAULT_BLOCK_SIZE = 128 * MiB
