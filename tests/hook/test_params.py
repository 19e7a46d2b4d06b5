"""BlockCacheParams: r1.12 defaults plus the stricter validation of issue #3 (no TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest

from gcs_hook import BlockCacheParams
from gcs_hook.params import R1_12_DEFAULT_BLOCK_SIZE as DEFAULT_BLOCK_SIZE
from gcs_hook.params import UINT64_MAX

MiB = 1024 * 1024


def test_r112_defaults():
    p = BlockCacheParams()
    assert p.as_tuple() == (128 * MiB, 256 * MiB, 0)
    assert BlockCacheParams(block_size=MiB).max_bytes == 2 * MiB
    assert BlockCacheParams(max_staleness=None).max_staleness == 0
    assert 128 * MiB == DEFAULT_BLOCK_SIZE


def test_values_kept_and_equality():
    p = BlockCacheParams(block_size=MiB, max_bytes=4 * MiB, max_staleness=7)
    assert (p.block_size, p.max_bytes, p.max_staleness) == (MiB, 4 * MiB, 7)
    assert p == BlockCacheParams(MiB, 4 * MiB, 7)
    assert p != BlockCacheParams(MiB, 4 * MiB, 8)
    assert len({p, BlockCacheParams(MiB, 4 * MiB, 7)}) == 1
    assert p.as_dict() == {"block_size": MiB, "max_bytes": 4 * MiB, "max_staleness": 7}
    assert repr(p) == "BlockCacheParams(block_size=1048576, max_bytes=4194304, max_staleness=7)"


def test_numpy_integers_accepted_and_max_uint64_allowed():
    p = BlockCacheParams(np.int64(MiB), np.uint64(UINT64_MAX), np.int32(3))
    assert p.as_tuple() == (MiB, UINT64_MAX, 3)
    assert all(type(v) is int for v in p.as_tuple())


def test_read_only():
    p = BlockCacheParams()
    with pytest.raises(AttributeError):
        p.block_size = 1  # type: ignore[misc]
    with pytest.raises(AttributeError):
        p._block_size = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"block_size": -1}, "block_size must not be negative"),
        ({"max_bytes": -5}, "max_bytes must not be negative"),
        ({"max_staleness": -1}, "max_staleness must not be negative"),
        ({"block_size": 0}, "block_size must be positive; pass None"),
        ({"max_bytes": 0}, "max_bytes must be positive; pass None"),
        ({"block_size": 1.5}, "block_size must be an integer number of bytes, not float"),
        ({"block_size": 1048576.0}, "not float"),
        ({"max_staleness": 2.0}, "max_staleness must be an integer number of seconds"),
        ({"block_size": "1048576"}, "not str"),
        ({"max_bytes": True}, "max_bytes must be an integer, not bool"),
        ({"block_size": 2**64}, "block_size must be at most 2**64 - 1"),
        ({"block_size": MiB, "max_bytes": 2**70}, "max_bytes must be at most 2**64 - 1"),
        ({"max_staleness": 2**64}, "max_staleness must be at most 2**64 - 1"),
        ({"block_size": 2**63 + 1}, "default max_bytes (2 * block_size) would exceed"),
        ({"block_size": 4 * MiB, "max_bytes": MiB}, "must be at least block_size"),
        ({"block_size": [1]}, "not list"),
    ],
)
def test_bad_values_raise_value_error(kwargs, message):
    with pytest.raises(ValueError) as info:
        BlockCacheParams(**kwargs)
    assert message in str(info.value)


def test_max_bytes_equal_to_block_size_is_fine():
    assert BlockCacheParams(MiB, MiB).as_tuple() == (MiB, MiB, 0)


def test_pickle_and_copy_round_trip():
    import copy
    import pickle

    p = BlockCacheParams(MiB, 3 * MiB, 9)
    assert pickle.loads(pickle.dumps(p)) == p
    assert copy.deepcopy(p) == p and copy.copy(p) == p
