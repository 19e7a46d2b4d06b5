"""BlockCache: the RamFileBlockCache model (docs/tf-read-path.md, "Block cache")."""

from __future__ import annotations

import pytest

from emulator.model.block_cache import BlockCache
from emulator.model.clock import VirtualClock
from emulator.model.errors import InternalError, NotFoundError, OutOfRangeError, UnavailableError
from emulator.replay.trace import object_content

MiB = 1024 * 1024


class Store:
    """Object bytes by filename; records every fetch (filename, offset, n)."""

    def __init__(self, **objects: int) -> None:
        self.data = {f"gs://b/{k}": object_content(f"b/{k}", 1, v) for k, v in objects.items()}
        self.calls: list[tuple[str, int, int]] = []
        self.fail: list[Exception] = []

    def __call__(self, filename: str, offset: int, n: int) -> bytes:
        self.calls.append((filename, offset, n))
        if self.fail:
            raise self.fail.pop(0)
        if filename not in self.data:
            raise NotFoundError(filename)
        return self.data[filename][offset : offset + n]


def make(store: Store, bs: int = MiB, max_bytes: int = 4 * MiB, stale: int = 0, clock=None):
    return BlockCache(bs, max_bytes, stale, store, clock or VirtualClock())


def test_reads_are_aligned_full_block_fetches_and_hits_fetch_nothing():
    s = Store(a=3_000_000)
    c = make(s)
    assert c.read("gs://b/a", 0, 100) == s.data["gs://b/a"][:100]
    assert c.read("gs://b/a", 1_500_000, 1000) == s.data["gs://b/a"][1_500_000:1_501_000]
    assert c.read("gs://b/a", 0, 100) == s.data["gs://b/a"][:100]
    assert s.calls == [("gs://b/a", 0, MiB), ("gs://b/a", MiB, MiB)]
    assert c.cache_size() == 2 * MiB
    assert c.stats.hits == 1 and c.stats.misses == 2 and c.stats.requests == 3


def test_read_spanning_blocks_fetches_each_in_order():
    s = Store(a=3_000_000)
    c = make(s)
    assert c.read("gs://b/a", 1_048_000, 2000) == s.data["gs://b/a"][1_048_000:1_050_000]
    assert [x[1] for x in s.calls] == [0, MiB]


def test_short_block_is_eof_and_offset_past_eof_is_out_of_range():
    s = Store(a=3_000_000)
    c = make(s)
    assert len(c.read("gs://b/a", 2_999_000, 5000)) == 1000
    with pytest.raises(OutOfRangeError) as e:
        c.read("gs://b/a", 3_000_000, 10)
    assert e.value.partial == b""
    assert len(s.calls) == 1  # the short block is cached: no new fetch
    with pytest.raises(OutOfRangeError):
        c.read("gs://b/a", 3_500_000, 10)  # a block past the end: fetched, empty, cached
    assert s.calls[-1] == ("gs://b/a", 3 * MiB, MiB)
    assert c.cache_size() == 3_000_000 - 2 * MiB
    # TF's consistency check: a short block with a later cached block of the same file.
    with pytest.raises(InternalError, match="inconsistent"):
        c.read("gs://b/a", 2_999_000, 10)


def test_zero_length_read_fetches_nothing():
    s = Store(a=100)
    c = make(s)
    assert c.read("gs://b/a", 50, 0) == b""
    assert s.calls == []


def test_read_larger_than_max_bytes_bypasses_cache_exactly_equal_does_not():
    s = Store(c=10 * MiB)
    c = make(s, max_bytes=2 * MiB)
    assert len(c.read("gs://b/c", 10, 3_000_000)) == 3_000_000
    assert s.calls == [("gs://b/c", 10, 3_000_000)]
    assert c.cache_size() == 0 and c.stats.bypasses == 1
    s.calls.clear()
    assert len(c.read("gs://b/c", 0, 2 * MiB)) == 2 * MiB
    assert s.calls == [("gs://b/c", 0, MiB), ("gs://b/c", MiB, MiB)]


@pytest.mark.parametrize("bs,max_bytes", [(0, 4 * MiB), (MiB, 0)])
def test_disabled_cache_passes_exact_ranges_through(bs, max_bytes):
    s = Store(a=3_000_000)
    c = make(s, bs=bs, max_bytes=max_bytes)
    assert not c.enabled
    c.read("gs://b/a", 7, 13)
    c.read("gs://b/a", 7, 13)
    assert s.calls == [("gs://b/a", 7, 13)] * 2


def test_lru_not_fifo_and_strict_greater_than():
    s = Store(c=10 * MiB)
    c = make(s)
    for i in range(4):
        c.read("gs://b/c", i * MiB, 1)
    assert c.cache_size() == 4 * MiB and c.stats.evictions == 0  # == max: no eviction
    c.read("gs://b/c", 0, 1)  # hit: block 0 becomes most recent
    c.read("gs://b/c", 4 * MiB, 1)  # evicts block 1 (LRU), not block 0 (FIFO)
    assert [b[1] for b in c.cached_blocks()] == [2 * MiB, 3 * MiB, 0, 4 * MiB]
    s.calls.clear()
    c.read("gs://b/c", MiB, 1)
    c.read("gs://b/c", 0, 1)
    assert [x[1] for x in s.calls] == [MiB]


def test_lru_is_global_across_files_and_max_not_multiple_of_block():
    s = Store(a=4 * MiB, b=4 * MiB)
    c = make(s, max_bytes=2 * MiB + 1)  # holds 2 full blocks
    c.read("gs://b/a", 0, 1)
    c.read("gs://b/b", 0, 1)
    c.read("gs://b/a", MiB, 1)  # 3 MiB > max: evict LRU = a@0
    assert [(f[-1], o) for f, o, _ in c.cached_blocks()] == [("b", 0), ("a", MiB)]
    assert c.cache_size() <= c.max_bytes


def test_block_larger_than_max_bytes_is_evicted_right_after_use():
    s = Store(a=3 * MiB)
    c = make(s, bs=2 * MiB, max_bytes=MiB)
    assert len(c.read("gs://b/a", 0, 10)) == 10
    assert c.cache_size() == 0
    c.read("gs://b/a", 0, 10)
    assert len(s.calls) == 2


def test_staleness_lookup_drops_whole_file_and_boundary_is_inclusive():
    clock = VirtualClock(100)
    s = Store(a=3 * MiB)
    c = make(s, stale=2, clock=clock)
    c.read("gs://b/a", 0, 1)
    clock.advance(1)
    c.read("gs://b/a", MiB, 1)
    clock.advance(1)  # block 0 is 2 s old: still fresh (<=)
    c.read("gs://b/a", 0, 1)
    assert len(s.calls) == 2
    clock.advance(1)  # block 0 is 3 s old → the prune drops the whole file
    c.read("gs://b/a", MiB, 1)  # block 1 is only 2 s old but went with its file
    assert [x[1] for x in s.calls] == [0, MiB, MiB]
    assert c.stats.stale_drops == 2


def test_prune_happens_when_time_advances_without_reads():
    clock = VirtualClock()
    s = Store(a=MiB, b=MiB)
    c = make(s, stale=5, clock=clock)
    c.read("gs://b/a", 0, 1)
    clock.advance(3)
    c.read("gs://b/b", 0, 1)
    clock.advance(3)  # a is 6 s old, b 3 s
    assert c.cache_size() == MiB
    assert [f for f, _, _ in c.cached_blocks()] == ["gs://b/b"]


def test_signature_change_drops_file_and_signatures_survive_flush():
    s = Store(a=2 * MiB, b=MiB)
    c = make(s)
    assert c.validate_and_update_file_signature("gs://b/a", 1)
    c.read("gs://b/a", 0, 2 * MiB)
    c.read("gs://b/b", 0, 1)
    assert c.validate_and_update_file_signature("gs://b/a", 1)
    assert c.cache_size() == 3 * MiB
    assert not c.validate_and_update_file_signature("gs://b/a", 2)
    assert c.cache_size() == MiB and c.stats.invalidations == 2
    c.flush()
    assert c.cache_size() == 0
    assert c.signature("gs://b/a") == 2
    assert not c.validate_and_update_file_signature("gs://b/a", 3)


def test_remove_file_is_exact_name_match():
    s = Store(a=MiB, a2=MiB)
    c = make(s)
    c.read("gs://b/a", 0, 1)
    c.read("gs://b/a2", 0, 1)
    c.remove_file("gs://b/a")
    assert [f for f, _, _ in c.cached_blocks()] == ["gs://b/a2"]


def test_failed_fetch_propagates_and_next_reader_refetches():
    s = Store(a=3 * MiB)
    c = make(s)
    s.fail.append(UnavailableError("503"))
    with pytest.raises(UnavailableError):
        c.read("gs://b/a", 0, 10)
    assert c.cache_size() == 0
    assert c.read("gs://b/a", 0, 10) == s.data["gs://b/a"][:10]
    assert [x[1] for x in s.calls] == [0, 0]
    assert c.stats.fetch_errors == 1


def test_errored_block_removal_uses_tf_capacity_accounting():
    """TF subtracts data.capacity() (= block_size for an errored block) when removing it; the
    size_t counter wraps. The model keeps that quirk so eviction patterns match TF."""
    s = Store(a=3 * MiB)
    c = make(s, max_bytes=8 * MiB)
    c.read("gs://b/a", 0, 1)
    s.fail.append(UnavailableError("503"))
    with pytest.raises(UnavailableError):
        c.read("gs://b/a", MiB, 1)
    assert c.cache_size() == MiB  # the errored block is not accounted while cached...
    c.remove_file("gs://b/a")  # ...but is subtracted as block_size when removed
    assert c.held_bytes() == 0
    assert c.cache_size() == (1 << 64) - MiB


def test_size_only_cache_returns_counts():
    calls = []

    def fetch(filename, offset, n):
        calls.append(offset)
        return max(0, min(n, 3_000_000 - offset))

    c = BlockCache(MiB, 4 * MiB, 0, fetch, VirtualClock(), size_only=True)
    assert c.read("gs://b/a", 2_999_000, 5000) == 1000
    assert c.read("gs://b/a", 0, 0) == 0
    assert c.read("gs://b/a", 0, 2 * MiB) == 2 * MiB
    assert c.cache_size() == 3_000_000 and calls == [2 * MiB, 0, MiB]


@pytest.mark.parametrize("args", [(-1, 1, 0), (1, -1, 0), (1, 1, -1), (1.5, 1, 0), (True, 1, 0)])
def test_bad_parameters_are_rejected(args):
    with pytest.raises(ValueError):
        BlockCache(*args, fetcher=Store())


def test_bad_read_arguments_change_nothing():
    s = Store(a=10)
    c = make(s)
    with pytest.raises(ValueError):
        c.read("gs://b/a", -1, 5)
    assert s.calls == [] and c.stats.requests == 0


def test_real_clock_prune_thread_frees_stale_files_without_calls():
    import threading
    import time

    from emulator.model.clock import RealClock

    s = Store(a=MiB)
    c = BlockCache(MiB, 4 * MiB, 1, s, RealClock())
    assert any(t.name == "model_prune_FBC" for t in threading.enumerate())
    c.read("gs://b/a", 0, 1)
    deadline = time.monotonic() + 10
    while c.held_bytes() and time.monotonic() < deadline:
        time.sleep(0.2)  # the block is stale after > 1 s; the thread drops it within ~1 s more
    assert c.held_bytes() == 0 and c.stats.stale_drops == 1
    c.close()
