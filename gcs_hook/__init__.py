"""gcs-hook: TensorFlow's ``tf.contrib.cloud`` GCS hook on current TensorFlow.

Public API (drop-in for r1.12's ``tf.contrib.cloud``)::

    from gcs_hook import BlockCacheParams, ConfigureGcsHook, configure_gcs, configure_colab_session
    from gcs_hook import ConfigureGcsCallback     # Keras (TF2)

Importing ``gcs_hook`` does not import TensorFlow; the TF-backed names are loaded on first use.
"""

from __future__ import annotations

from gcs_hook.credentials import Credentials, parse_credentials
from gcs_hook.lazy import lazy_getattr
from gcs_hook.native_build import NativeBuildError
from gcs_hook.params import BlockCacheParams

__version__ = "0.1.0"

__all__ = [
    "BlockCacheParams",
    "ConfigureGcsCallback",
    "ConfigureGcsHook",
    "Credentials",
    "NativeBuildError",
    "configure_colab_session",
    "configure_gcs",
    "current_block_cache",
    "parse_credentials",
]

_LAZY = {
    "ConfigureGcsHook": "gcs_hook.hook",
    "configure_gcs": "gcs_hook.hook",
    "configure_colab_session": "gcs_hook.hook",
    "current_block_cache": "gcs_hook.hook",
    "ConfigureGcsCallback": "gcs_hook.keras_callback",
}


__getattr__ = lazy_getattr(__name__, _LAZY)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
