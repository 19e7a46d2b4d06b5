"""GcsFilesystemModel: TF 2.21's GCS read path at request level (docs/tf-read-path.md)."""

from __future__ import annotations

import pytest

from emulator.model.clock import VirtualClock
from emulator.model.errors import InvalidArgumentError, NotFoundError
from emulator.model.gcs_model import GcsFilesystemModel, RetryConfig, parse_gcs_path
from emulator.model.transport import MemoryTransport, SizeOnlyTransport
from emulator.replay.trace import CacheConfig, object_content

MiB = 1024 * 1024
CACHE_ON = CacheConfig(MiB, 4 * MiB, 0)


def setup(params=CACHE_ON, size=3_000_000, **kw):
    t = MemoryTransport()
    t.put("b", "a", object_content("b/a", 1, size))
    clock = kw.pop("clock", VirtualClock(1000))
    fs = GcsFilesystemModel(t, params, clock=clock, **kw)
    return t, fs, clock


def media(t):
    return [r["range"] for r in t.requests if r["kind"] == "media"]


def kinds(t):
    return [r["kind"] for r in t.requests]


def test_open_sends_nothing_and_cached_read_stats_once_within_max_age():
    t, fs, clock = setup()
    f = fs.open("gs://b/a")
    assert t.requests == [] and f.kind == "cached"
    assert f.read(0, 100).data == object_content("b/a", 1, 100)
    clock.advance(5)  # age 5 <= 5: fresh
    f.read(1_500_000, 10)
    assert kinds(t) == ["metadata", "media", "media"]
    clock.advance(1)  # age 6: expired → a new metadata request, same generation keeps blocks
    f.read(0, 10)
    assert kinds(t) == ["metadata", "media", "media", "metadata"]


def test_zero_length_cached_read_still_stats():
    t, fs, _ = setup(stat_cache_max_age=0)
    f = fs.open("b/a")
    r = f.read(5, 0)
    assert r.error is None and r.data == b""
    assert kinds(t) == ["metadata"]


def test_generation_change_seen_after_stat_expiry_refetches_new_bytes():
    t, fs, _ = setup(stat_cache_max_age=0)
    f = fs.open("gs://b/a")
    f.read(0, 10)
    t.put("b", "a", object_content("b/a", 2, 3_000_000))
    assert f.read(0, 10).data == object_content("b/a", 2, 10)
    assert media(t) == [[0, MiB - 1], [0, MiB - 1]]


def test_overwrite_within_stat_age_serves_old_cached_and_new_uncached_blocks():
    t, fs, _ = setup()
    f = fs.open("gs://b/a")
    f.read(0, 10)
    t.put("b", "a", object_content("b/a", 2, 3_000_000))
    assert f.read(0, 10).data == object_content("b/a", 1, 10)
    assert f.read(MiB, 10).data == object_content("b/a", 2, MiB + 10)[MiB:]


def test_short_read_against_fresh_stat_is_internal_inconsistent():
    t, fs, _ = setup()
    f = fs.open("gs://b/a")
    f.read(0, 10)
    t.put("b", "a", object_content("b/a", 2, 1_500_000))
    r = f.read(MiB, 10)
    assert r.code == "INTERNAL" and "File contents are inconsistent" in r.error.message
    assert r.returned == 0
    assert len(media(t)) == 2  # INTERNAL is not retried


def test_eof_partial_data_and_past_eof():
    t, fs, _ = setup()
    f = fs.open("gs://b/a")
    r = f.read(2_999_000, 5000)
    assert r.code == "OUT_OF_RANGE"
    assert r.data == object_content("b/a", 1, 3_000_000)[2_999_000:]
    r = f.read(3_500_000, 10)
    assert (r.code, r.returned) == ("OUT_OF_RANGE", 0)
    assert media(t) == [[2 * MiB, 3 * MiB - 1], [3 * MiB, 4 * MiB - 1]]


def test_missing_object_read_not_found_and_failed_stats_not_cached():
    t, fs, _ = setup()
    f = fs.open("gs://b/missing")
    assert f.read(0, 1).code == "NOT_FOUND"
    assert f.read(0, 1).code == "NOT_FOUND"
    assert kinds(t) == ["metadata", "metadata"]


def test_stat_missing_object_sends_metadata_then_list_then_not_found():
    t, fs, _ = setup()
    with pytest.raises(NotFoundError):
        fs.stat("gs://b/nope")
    assert t.requests == [
        {"kind": "metadata", "object": "b/nope"},
        {"kind": "list", "object": "b"},
    ]
    t.put("b", "dir/x", b"1")
    assert fs.stat("gs://b/dir").is_directory
    st = fs.stat("gs://b/a")
    assert st.length == 3_000_000 and not st.is_directory


def test_stat_fills_the_stat_cache_used_by_reads():
    t, fs, _ = setup()
    fs.stat("gs://b/a")
    fs.open("gs://b/a").read(0, 1)
    assert kinds(t) == ["metadata", "media"]


def test_buffered_reader_default_config_t10():
    t, fs, _ = setup(params=None)
    f = fs.open("gs://b/a")
    assert f.kind == "buffered" and fs.buffer_size == 64 * MiB
    assert f.read(0, 100).error is None
    assert f.read(1_500_000, 1000).error is None
    r = f.read(2_999_000, 5000)
    assert (r.code, r.returned) == ("OUT_OF_RANGE", 1000)
    r = f.read(2_999_000, 5000)
    assert (r.code, r.returned) == ("OUT_OF_RANGE", 1000)
    f.read(0, 100)
    assert media(t) == [[0, 64 * MiB - 1], [3_000_000, 3_000_000 + 64 * MiB - 1], [0, 64 * MiB - 1]]
    assert "metadata" not in kinds(t)


def test_buffered_reader_refills_unaligned_and_large_reads_go_direct_t11():
    t, fs, _ = setup(params=CacheConfig(MiB, 0, 0))
    f = fs.open("gs://b/a")
    content = object_content("b/a", 1, 3_000_000)
    assert f.read(1_048_000, 1000).data == content[1_048_000:1_049_000]
    assert f.read(2_096_000, 1000).data == content[2_096_000:2_097_000]
    f.read(500, 10)
    f.read(100, 2_000_000)
    assert media(t) == [
        [1_048_000, 1_048_000 + MiB - 1],
        [2_096_576, 2_096_576 + MiB - 1],
        [500, 500 + MiB - 1],
        [100, 2_000_099],
    ]
    g = fs.open("gs://b/a")
    t.clear_requests()
    g.read(2_096_576, 10)
    assert g.read(3_500_000, 10).code == "OUT_OF_RANGE"  # past-EOF flag: no request
    assert g.read(3_500_000, 10).code == "OUT_OF_RANGE"  # flag cleared: 416
    assert media(t) == [[2_096_576, 2_096_576 + MiB - 1], [3_500_000, 3_500_000 + MiB - 1]]


def test_reset_makes_new_cache_keeps_stat_cache_and_buffer_size():
    t, fs, _ = setup(params=CacheConfig(2 * MiB, 0, 0))
    old = fs.open("gs://b/a")  # buffered, chosen at open
    fs.reset_block_cache(MiB, 4 * MiB, 0)
    assert fs.cache_enabled and fs.buffer_size == 2 * MiB
    assert old.kind == "buffered"
    new = fs.open("gs://b/a")
    new.read(0, 1)
    fs.reset_block_cache(MiB, 8 * MiB, 0)
    new.read(0, 1)  # same handle uses the new (empty) cache; stat still cached
    assert kinds(t) == ["metadata", "media", "media"]
    old.read(0, 1)
    assert media(t)[-1] == [0, 2 * MiB - 1]


def test_configure_skips_when_unchanged():
    t, fs, _ = setup()
    f = fs.open("gs://b/a")
    f.read(0, 1)
    assert not fs.configure_block_cache(CACHE_ON)
    f.read(0, 1)
    assert fs.configure_block_cache({"block_size": MiB, "max_bytes": 2 * MiB, "max_staleness": 0})
    f.read(0, 1)
    assert len(media(t)) == 2
    assert fs.cache_stats().misses == 2 and fs.cache_stats().hits == 1


def test_cached_handle_after_reset_to_disabled_passes_through_with_stat():
    t, fs, _ = setup()
    f = fs.open("gs://b/a")
    fs.reset_block_cache(MiB, 0, 0)
    f.read(10, 20)
    assert t.requests == [
        {"kind": "metadata", "object": "b/a"},
        {"kind": "media", "object": "b/a", "range": [10, 29]},
    ]


def test_clear_file_caches_drops_blocks_and_stat():
    t, fs, _ = setup()
    f = fs.open("gs://b/a")
    f.read(0, 1)
    fs.clear_file_caches("gs://b/a")
    f.read(0, 1)
    assert kinds(t) == ["metadata", "media"] * 2


def test_retries_transient_errors_with_backoff_then_succeeds():
    delays = []
    t, fs, _ = setup(sleep=delays.append)
    t.inject_fault("media", "UNAVAILABLE", count=2)
    r = fs.open("gs://b/a").read(0, 10)
    assert r.error is None and r.returned == 10
    assert kinds(t) == ["metadata", "media", "media", "media"]
    assert 1.0 <= delays[0] < 2.0 and 2.0 <= delays[1] < 3.0


def test_retries_exhausted_gives_aborted_and_non_retriable_is_not_retried():
    t, fs, _ = setup(retry=RetryConfig(init_delay_us=0))
    t.inject_fault("media", "UNAVAILABLE", count=11)
    r = fs.open("gs://b/a").read(0, 10)
    assert r.code == "ABORTED" and "All 10 retry attempts failed" in r.error.message
    assert len(media(t)) == 11
    t.clear_requests()
    t.inject_fault("media", "PERMISSION_DENIED")
    assert fs.open("gs://b/a").read(0, 10).code == "PERMISSION_DENIED"
    assert len(media(t)) == 1


def test_retry_sleep_advances_virtual_clock_by_default():
    t, fs, clock = setup()
    t.inject_fault("metadata", "UNAVAILABLE", count=3)
    before = clock.time
    assert fs.open("gs://b/a").read(0, 1).error is None
    assert 7.0 <= clock.time - before < 10.0  # 1 + 2 + 4 s plus jitter < 1 s each


def test_size_only_transport_gives_same_requests_as_memory():
    ops = [(0, 100), (1_500_000, 1000), (2_999_000, 5000), (3_500_000, 10), (0, 5 * MiB)]
    results = []
    for transport in (MemoryTransport(), SizeOnlyTransport()):
        if transport.size_only:
            transport.put("b", "a", 3_000_000)
        else:
            transport.put("b", "a", object_content("b/a", 1, 3_000_000))
        fs = GcsFilesystemModel(transport, CACHE_ON, clock=VirtualClock())
        f = fs.open("gs://b/a")
        reads = [(r.returned, r.code) for r in (f.read(o, n) for o, n in ops)]
        results.append((transport.requests, reads))
    assert results[0] == results[1]


@pytest.mark.parametrize("path", ["s3://b/a", "gs://", "gs:///a", "gs://b/", "gs://./a", "b", 7])
def test_bad_paths_are_invalid_argument(path):
    with pytest.raises(InvalidArgumentError):
        parse_gcs_path(path)


def test_path_forms():
    assert parse_gcs_path("gs://b/x/y") == ("gs://b/x/y", "b", "x/y")
    assert parse_gcs_path("b/x") == ("gs://b/x", "b", "x")


@pytest.mark.parametrize(
    "params",
    [{"block_size": 1}, {"block_size": -1, "max_bytes": 0, "max_staleness": 0}, object()],
)
def test_bad_params_rejected(params):
    with pytest.raises(ValueError):
        CacheConfig.of(params)


def test_params_from_attribute_object_and_defaults():
    class P:
        block_size, max_bytes, max_staleness = 4096, 8192, 3

    assert CacheConfig.of(P()).as_tuple() == (4096, 8192, 3)
    assert CacheConfig.of(None).as_tuple() == (64 * MiB, 0, 0)
    with pytest.raises(ValueError):
        GcsFilesystemModel(SizeOnlyTransport(), None, stat_cache_max_age=-1)


def test_matching_paths_lists_once_and_globs_without_crossing_slash():
    t = SizeOnlyTransport()
    for name in ["d/a.rec", "d/b.rec", "d/e/c.rec", "x.rec", "d/"]:
        t.put("b", name, 1)
    clock = VirtualClock()
    fs = GcsFilesystemModel(t, matching_paths_cache_max_age=2, clock=clock)
    assert fs.get_matching_paths("gs://b/d/*.rec") == ["gs://b/d/a.rec", "gs://b/d/b.rec"]
    assert fs.get_matching_paths("gs://b/*") == ["gs://b/d", "gs://b/x.rec"]
    assert fs.get_matching_paths("gs://b/d/?/[a-c].rec") == ["gs://b/d/e/c.rec"]
    assert len(t.requests) == 3
    fs.get_matching_paths("gs://b/d/*.rec")  # cached for 2 s
    assert len(t.requests) == 3
    clock.advance(3)
    fs.get_matching_paths("gs://b/d/*.rec")
    assert t.requests[-1] == {"kind": "list", "object": "b"} and len(t.requests) == 4
    with pytest.raises(InvalidArgumentError):
        fs.get_matching_paths("gs://b*")


def test_flush_caches_empties_the_matching_paths_cache():
    """Issue 11 finding 8 (real TF: tests/model/test_gcs_model_tf.py)."""
    t = SizeOnlyTransport()
    t.put("b", "d/a.rec", 1)
    fs = GcsFilesystemModel(t, matching_paths_cache_max_age=60, clock=VirtualClock())
    assert fs.get_matching_paths("gs://b/d/*") == ["gs://b/d/a.rec"]
    t.put("b", "d/b.rec", 1)
    assert fs.get_matching_paths("gs://b/d/*") == ["gs://b/d/a.rec"]  # cached
    fs.flush_caches()
    assert fs.get_matching_paths("gs://b/d/*") == ["gs://b/d/a.rec", "gs://b/d/b.rec"]
    assert [r["kind"] for r in t.requests] == ["list", "list"]


def test_unbounded_listing_sends_one_request_per_page():
    t = SizeOnlyTransport()
    t.page_size = 2
    for i in range(5):
        t.put("b", f"p/{i}", 1)
    fs = GcsFilesystemModel(t)
    assert len(fs.get_matching_paths("gs://b/p/*")) == 5
    assert len(t.requests) == 3


def test_takes_gcs_hook_block_cache_params():
    from gcs_hook.params import BlockCacheParams

    t = SizeOnlyTransport()
    t.put("b", "a", 3 * MiB)
    fs = GcsFilesystemModel(
        t, BlockCacheParams(block_size=MiB, max_bytes=2 * MiB), clock=VirtualClock()
    )
    assert (fs.block_size, fs.max_bytes, fs.max_staleness) == (MiB, 2 * MiB, 0)
    fs.open("gs://b/a").read(0, 1)
    assert not fs.configure_block_cache(BlockCacheParams(block_size=MiB, max_bytes=2 * MiB))
    assert fs.configure_block_cache(BlockCacheParams())  # r1.12 defaults: 128 MiB / 256 MiB
    assert (fs.block_size, fs.max_bytes) == (128 * MiB, 256 * MiB)


def test_buffered_fill_error_returns_copied_part_and_empties_buffer():
    t, fs, _ = setup(params=CacheConfig(MiB, 0, 0))
    f = fs.open("gs://b/a")
    content = object_content("b/a", 1, 3_000_000)
    f.read(0, 10)  # buffer [0, 1 MiB)
    t.delete("b", "a")
    r = f.read(MiB - 4, 10)  # 4 bytes from the buffer, then the refill gets 404
    assert r.code == "NOT_FOUND" and r.data == content[MiB - 4 : MiB]
    assert f.read(0, 10).code == "NOT_FOUND"  # buffer was emptied: a new GET
    assert len(media(t)) == 3


def test_stat_cache_evicts_least_recently_used_beyond_max_entries():
    t = SizeOnlyTransport()
    for name in "abc":
        t.put("b", name, 10)
    fs = GcsFilesystemModel(t, CACHE_ON, stat_cache_max_entries=2, clock=VirtualClock())
    for name in "abac":  # c evicts b (a was used more recently)
        fs.open(f"gs://b/{name}").read(0, 1)
    t.clear_requests()
    fs.open("gs://b/a").read(0, 1)
    fs.open("gs://b/b").read(0, 1)
    assert t.requests == [{"kind": "metadata", "object": "b/b"}]


def test_buffer_size_can_differ_from_the_cache_block_size():
    t, fs, _ = setup(params=CacheConfig(MiB, 0, 0), buffer_size=64 * 1024)
    fs.open("gs://b/a").read(0, 10)
    assert media(t) == [[0, 64 * 1024 - 1]] and fs.block_size == MiB
    with pytest.raises(ValueError):
        GcsFilesystemModel(SizeOnlyTransport(), None, buffer_size=-1)


def test_error_body_larger_than_the_read_is_failed_precondition():
    """TF reads media into an n-byte buffer: fake-gcs-server's 10-byte 404 body overflows a
    1-byte read (curl write error → FAILED_PRECONDITION) but not a 10-byte one."""
    t, fs, _ = setup()
    f = fs.open("gs://b/a")
    f.read(0, 1)  # stat cached
    fs.reset_block_cache(MiB, 0, 0)  # the cached handle now passes reads straight through
    t.delete("b", "a")
    assert f.read(5, 1).code == "FAILED_PRECONDITION"
    assert f.read(5, 10).code == "NOT_FOUND"
    t.error_body_bytes = 300  # e.g. real GCS's XML error document
    assert f.read(5, 200).code == "FAILED_PRECONDITION"
