"""Byte units, the one home of ``KiB``/``MiB``/``GiB`` for the whole project.

Binary units (powers of two), as TensorFlow's ``GCS_READ_CACHE_*_MB`` variables and
``BlockCacheParams`` sizes are: 1 MiB = 2**20 bytes. Imports nothing (every package may use it).
"""

from __future__ import annotations

__all__ = ["GiB", "KiB", "MiB", "TiB", "UINT64_MAX"]

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40
#: The largest value the native ops' ``uint64`` attributes take.
UINT64_MAX = 2**64 - 1
