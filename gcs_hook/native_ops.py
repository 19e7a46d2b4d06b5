"""Load gcs-hook's C++ ops (building them on first use) — see docs/design.md "Native ops".

``load()`` returns the module made by ``tf.load_op_library``; its functions are::

    gcs_configure_block_cache(max_cache_size, block_size, max_staleness)   # uint64 bytes/bytes/s
    gcs_configure_credentials(json)                                        # string, never logged
    gcs_block_cache_params() -> int64[3]        # [block_size, max_bytes, max_staleness]
    gcs_random_access_open(handle, path)
    gcs_random_access_read(handle, offset, n) -> (data, code, message)
    gcs_random_access_close(handle)

All ops are stateful, so they run eagerly (TF2) and are never pruned or constant-folded in graphs.
The module is loaded once per process (thread-safe).
"""

from __future__ import annotations

import threading
from types import ModuleType

from gcs_hook.native_build import NativeBuildError, build

__all__ = ["NativeBuildError", "load", "library_path"]

_lock = threading.Lock()
_module: ModuleType | None = None


def library_path() -> str:
    """Path of the compiled library (building it if needed)."""
    return str(build())


def load() -> ModuleType:
    """Build (if needed) and load the ops library; raises :class:`NativeBuildError` if it can't."""
    global _module
    with _lock:
        if _module is None:
            import tensorflow as tf

            _module = tf.load_op_library(library_path())
        return _module
