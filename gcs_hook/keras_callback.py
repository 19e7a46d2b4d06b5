"""``ConfigureGcsCallback``: configure TensorFlow's GCS filesystem from Keras (TF2).

The configuration runs in ``on_train_begin`` (also ``on_test_begin``/``on_predict_begin`` for
``evaluate``/``predict``), which Keras calls before the first batch is drawn from the dataset,
so every input read of ``fit`` uses it. Reads done while BUILDING the dataset (e.g.
``Dataset.list_files`` globbing, or a ``Dataset.from_tensor_slices`` of file contents) happen
before ``fit`` and are not covered: call :func:`gcs_hook.configure_gcs` first for those.

Invariants: validation happens in the constructor (``ValueError``, nothing changed); the ops run
at most once per callback instance; no secret is logged.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from gcs_hook.credentials import parse_credentials
from gcs_hook.hook import configure_gcs, validate_block_cache
from gcs_hook.params import BlockCacheParams

__all__ = ["ConfigureGcsCallback"]


class ConfigureGcsCallback(tf.keras.callbacks.Callback):
    """Keras callback that applies credentials and/or a block cache at the start of training."""

    def __init__(
        self,
        credentials: Any = None,
        block_cache: BlockCacheParams | None = None,
        *,
        device: Any = None,
        timeline: Any = None,
    ) -> None:
        super().__init__()
        self._credentials = parse_credentials(credentials)
        self._block_cache = validate_block_cache(block_cache)
        self._device = device
        self._timeline = timeline
        self.configured = False

    def __repr__(self) -> str:
        return (
            f"ConfigureGcsCallback(credentials={self._credentials!r}, "
            f"block_cache={self._block_cache!r})"
        )

    def _configure(self, hook_name: str) -> None:
        if self.configured:
            return
        if self._timeline is not None:
            self._timeline.record("configure_start", "configure_gcs_callback", at=hook_name)
        configure_gcs(
            credentials=self._credentials, block_cache=self._block_cache, device=self._device
        )
        self.configured = True
        if self._timeline is not None:
            self._timeline.record("configure_done", "configure_gcs_callback", at=hook_name)

    def on_train_begin(self, logs=None):
        self._configure("on_train_begin")

    def on_test_begin(self, logs=None):
        self._configure("on_test_begin")

    def on_predict_begin(self, logs=None):
        self._configure("on_predict_begin")
