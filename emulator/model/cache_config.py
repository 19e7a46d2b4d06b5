"""``CacheConfig``: the block cache triple (block_size, max_bytes, max_staleness), the one type
that carries it from the CLI to every engine (the trace format, the model, the sweeps, tune).

Rules, all checked in :meth:`CacheConfig.__post_init__` (the one place):

- units are bytes, bytes, seconds (what ``BlockCacheParams`` and TF's ops take);
- each value is an ``int`` (numpy integers accepted and turned into ``int``; ``bool``, ``float``
  and ``str`` refused) and ``>= 0``; a bad value raises ``ValueError`` naming the field;
- the cache is on iff ``block_size > 0 and max_bytes > 0`` (:attr:`CacheConfig.cache_on`); with it
  off the block size is TF's read-ahead buffer. Unlike ``BlockCacheParams`` (which refuses 0 and
  ``max_bytes < block_size``), any such triple is representable: TF accepts them from its
  environment variables and the model mirrors TF.

Configs are frozen, hashable and ordered (field order). :meth:`CacheConfig.of` is the one
converter from what users and traces give (None = TF 2.21's defaults, a mapping, a
``BlockCacheParams`` or any object with the three attributes). The conversion the other way, to
``gcs_hook.params.BlockCacheParams``, happens at one edge only (the printed recommendation and the
measured configure, :mod:`benchmarks.tune.hook_params`).
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gcs_hook.tf_defaults import (
    TF_DEFAULT_BLOCK_SIZE,
    TF_DEFAULT_MAX_BYTES,
    TF_DEFAULT_MAX_STALENESS,
)

__all__ = ["FIELDS", "TF_DEFAULT_CONFIG", "CacheConfig"]

#: The three fields, in the order TF's ``GcsBlockCacheParams`` reports them.
FIELDS = ("block_size", "max_bytes", "max_staleness")


@dataclass(frozen=True, order=True)
class CacheConfig:
    """Block cache parameters in bytes, bytes, seconds (what a ``BlockCacheParams`` carries)."""

    block_size: int
    max_bytes: int
    max_staleness: int = 0

    def __post_init__(self) -> None:
        for name in FIELDS:
            value = getattr(self, name)
            number = None
            if not isinstance(value, bool):
                try:
                    number = operator.index(value)
                except TypeError:
                    number = None
            if number is None or number < 0:
                raise ValueError(f"cache config {name} must be an integer >= 0, got {value!r}")
            if type(value) is not int:
                object.__setattr__(self, name, int(number))

    @classmethod
    def of(cls, value: Any) -> CacheConfig:
        """``value`` as a config: None → :data:`TF_DEFAULT_CONFIG`; a ``CacheConfig`` as is; a
        mapping with the three keys (``max_staleness`` may be left out: 0); or any object with
        the three attributes (e.g. ``gcs_hook.BlockCacheParams``). ValueError otherwise."""
        if value is None:
            return TF_DEFAULT_CONFIG
        if isinstance(value, CacheConfig):
            return value
        values = []
        for name in FIELDS:
            if isinstance(value, Mapping):
                if name not in value:
                    if name == "max_staleness":
                        values.append(0)
                        continue
                    raise ValueError(f"cache config lacks {name!r}: {value!r}")
                values.append(value[name])
            elif hasattr(value, name):
                values.append(getattr(value, name))
            else:
                raise ValueError(f"cache config {value!r} has no attribute {name!r}")
        return cls(*values)

    @property
    def cache_on(self) -> bool:
        return self.block_size > 0 and self.max_bytes > 0

    def as_tuple(self) -> tuple[int, int, int]:
        """``(block_size, max_bytes, max_staleness)`` — the order ``GcsBlockCacheParams`` reports."""
        return (self.block_size, self.max_bytes, self.max_staleness)

    def as_dict(self) -> dict[str, int]:
        """The trace-format ``config`` dict (docs/trace-format.md)."""
        return {
            "block_size": self.block_size,
            "max_bytes": self.max_bytes,
            "max_staleness": self.max_staleness,
        }


#: TensorFlow 2.21's own block cache configuration (64 MiB blocks, cache off, no staleness).
TF_DEFAULT_CONFIG = CacheConfig(
    TF_DEFAULT_BLOCK_SIZE, TF_DEFAULT_MAX_BYTES, TF_DEFAULT_MAX_STALENESS
)
