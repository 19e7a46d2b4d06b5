"""``BlockCacheParams``: the block cache settings the hook applies to TensorFlow's GCS filesystem.

r1.12 semantics (``tf.contrib.cloud.BlockCacheParams``): ``None`` selects the default
(``block_size`` 128 MiB, ``max_bytes`` 2 × block_size, ``max_staleness`` 0); properties are
read-only. Units: bytes, bytes, seconds.

Stricter than r1.12 (r1.12 accepted anything and let the op fail, or silently turned 0 into the
default). Every violation raises ``ValueError`` before anything reaches TensorFlow:

- each value must be an integer (``bool``, ``float``, ``str`` are rejected; numpy integers are
  accepted), not negative, and at most 2**64 - 1 (the ops take ``uint64``);
- ``block_size`` and ``max_bytes`` must be positive when given (``0`` was silently "default" in
  r1.12; pass ``None`` for the default); ``max_staleness=0`` means "no staleness limit";
- ``max_bytes`` must be at least ``block_size`` (a smaller cache could not hold one block);
- the defaulted ``max_bytes = 2 * block_size`` must itself fit in uint64.
"""

from __future__ import annotations

import operator
from typing import Any

from gcs_hook.tf_defaults import R1_12_DEFAULT_BLOCK_SIZE
from gcs_hook.units import UINT64_MAX

__all__ = ["BlockCacheParams", "R1_12_DEFAULT_BLOCK_SIZE", "UINT64_MAX"]


def _as_uint64(name: str, value: Any, *, allow_zero: bool) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, not bool")
    try:
        number = operator.index(value)
    except TypeError:
        raise ValueError(
            f"{name} must be an integer number of {'seconds' if name == 'max_staleness' else 'bytes'}, "
            f"not {type(value).__name__}"
        ) from None
    if number < 0:
        raise ValueError(f"{name} must not be negative (got {number})")
    if number == 0 and not allow_zero:
        raise ValueError(f"{name} must be positive; pass None to use the default")
    if number > UINT64_MAX:
        raise ValueError(f"{name} must be at most 2**64 - 1 (got {number})")
    return number


class BlockCacheParams:
    """A struct used for configuring the GCS block cache (bytes, bytes, seconds).

    Immutable and hashable; two params with the same three values compare equal.
    """

    __slots__ = ("_block_size", "_max_bytes", "_max_staleness")

    def __init__(
        self,
        block_size: int | None = None,
        max_bytes: int | None = None,
        max_staleness: int | None = None,
    ) -> None:
        bs = (
            R1_12_DEFAULT_BLOCK_SIZE
            if block_size is None
            else _as_uint64("block_size", block_size, allow_zero=False)
        )
        if max_bytes is None:
            mb = 2 * bs
            if mb > UINT64_MAX:
                raise ValueError(
                    "the default max_bytes (2 * block_size) would exceed 2**64 - 1; "
                    "pass max_bytes explicitly"
                )
        else:
            mb = _as_uint64("max_bytes", max_bytes, allow_zero=False)
            if mb < bs:
                raise ValueError(
                    f"max_bytes ({mb}) must be at least block_size ({bs}): "
                    "the cache must hold at least one block"
                )
        ms = (
            0
            if max_staleness is None
            else _as_uint64("max_staleness", max_staleness, allow_zero=True)
        )
        object.__setattr__(self, "_block_size", bs)
        object.__setattr__(self, "_max_bytes", mb)
        object.__setattr__(self, "_max_staleness", ms)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("BlockCacheParams is immutable")

    @property
    def block_size(self) -> int:
        """Block size in bytes (every cache fetch is one aligned block)."""
        return self._block_size

    @property
    def max_bytes(self) -> int:
        """Cache capacity in bytes."""
        return self._max_bytes

    @property
    def max_staleness(self) -> int:
        """Maximum age of a cached block in seconds; 0 = no limit."""
        return self._max_staleness

    def as_tuple(self) -> tuple[int, int, int]:
        """``(block_size, max_bytes, max_staleness)`` — the order ``GcsBlockCacheParams`` reports."""
        return (self._block_size, self._max_bytes, self._max_staleness)

    def as_dict(self) -> dict[str, int]:
        """The trace-format ``config`` dict (docs/trace-format.md)."""
        return {
            "block_size": self._block_size,
            "max_bytes": self._max_bytes,
            "max_staleness": self._max_staleness,
        }

    def __reduce__(self):  # pickle/copy rebuild through __init__ (and its validation)
        return (BlockCacheParams, self.as_tuple())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BlockCacheParams):
            return NotImplemented
        return self.as_tuple() == other.as_tuple()

    def __hash__(self) -> int:
        return hash(self.as_tuple())

    def __repr__(self) -> str:
        return (
            f"BlockCacheParams(block_size={self._block_size}, max_bytes={self._max_bytes}, "
            f"max_staleness={self._max_staleness})"
        )
