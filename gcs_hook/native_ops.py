"""Load gcs-hook's C++ ops (building them on first use) — see docs/design.md "Native ops".

``load()`` returns the module made by ``tf.load_op_library``; its functions are::

    gcs_configure_block_cache(max_cache_size, block_size, max_staleness)   # uint64 bytes/bytes/s
    gcs_configure_credentials(json)                                        # string, never logged
    gcs_block_cache_params() -> int64[3]        # [block_size, max_bytes, max_staleness]
    gcs_random_access_open(handle, path)
    gcs_random_access_read(handle, offset, n) -> (data, code, message)
    gcs_random_access_close(handle)
    gcs_flush_caches()                          # GcsFileSystem::FlushCaches (every cache)

All ops are stateful, so they run eagerly (TF2) and are never pruned or constant-folded in graphs.
The module is loaded once per process (thread-safe). A library TensorFlow refuses to load (e.g.
an undefined symbol on an unsupported version) raises :class:`NativeBuildError` naming the TF
version and the supported range.
"""

from __future__ import annotations

import threading
from types import ModuleType

from gcs_hook.native_build import SUPPORTED_TEXT, NativeBuildError, build, unsupported_tf_note

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

            path = library_path()
            try:
                _module = tf.load_op_library(path)
            except Exception as exc:  # tf.errors.NotFoundError for an undefined symbol
                note = unsupported_tf_note(tf.__version__) or f"{SUPPORTED_TEXT}."
                raise NativeBuildError(
                    f"TensorFlow {tf.__version__} could not load gcs-hook's native ops from "
                    f"{path} ({str(getattr(exc, 'message', exc)).strip()}). {note}"
                ) from None
        return _module
