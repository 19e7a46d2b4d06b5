"""The one edge where a :class:`~emulator.model.cache_config.CacheConfig` becomes the hook's
:class:`gcs_hook.params.BlockCacheParams`: the printed recommendation
(:func:`benchmarks.tune.report.recommendation_line`) and the measured configure
(:mod:`benchmarks.tune.measure`, whose TF program calls ``configure_gcs`` with it).

Invariant: cache off (``max_bytes`` 0, TF 2.21's default) has no ``BlockCacheParams`` (r1.12's
type refuses 0): :func:`block_cache_params` returns None for it, and the hook is left unconfigured.
Any other config passes ``BlockCacheParams``' own validation or raises its ``ValueError``.
"""

from __future__ import annotations

from emulator.model.cache_config import CacheConfig
from gcs_hook.params import BlockCacheParams

__all__ = ["block_cache_params"]


def block_cache_params(config: CacheConfig) -> BlockCacheParams | None:
    """``config`` as the hook's ``BlockCacheParams``; None for cache off."""
    if not config.cache_on:
        return None
    return BlockCacheParams(config.block_size, config.max_bytes, config.max_staleness)
