"""The gcsfs sweep engine: every ``cache_type × block_size`` (and ``maxblocks``) on a trace's
gcsfs files, through :mod:`emulator.model.fsspec_cache` (fsspec's own cache classes).

Rows carry the fields of the TF sweep's ``--json`` objects (``requests`` = media GETs,
``metadata_requests``, ``bytes_fetched``, ``predicted_seconds``, ``stale_reads``,
``torn_reads``, ``errors``, ``stale_stats``, ``memory_bytes``, ``exact``), with ``config`` =
``{"cache_type", "block_size"[, "cache_options"]}``. ``errors`` counts fetches that fail: a
cache that asks past the end of a file (``blockcache`` fetches whole blocks) with a block so
large that gcsfs splits it into concurrent GETs, one of which starts past the end (416: gcsfs
2026.10 raises on the fake GCS; real GCS's "InvalidRange" makes it return no bytes). Stale and
torn reads are 0: a gcsfs file reads one generation (its ``info`` at open), and the traces
recorded here do not change objects under open gcsfs files.

Predicted time (:class:`benchmarks.sweep.timing.GcsTiming`): a gcsfs file's fetches run one
after another (each ``read`` waits for its fetch); the GETs of one fetch run concurrently (gcsfs
splits large fetches), so a fetch costs one overhead + latency + its largest GET's bytes at the
per-connection bandwidth; each ``info`` at open one metadata request.

Memory: the most bytes the open files' caches held at once (blockcache: blocks held × block
size; readahead/bytes/first: the buffer; ``none`` holds nothing), plus the largest fetch in
flight (gcsfs returns a fetch as one bytes object).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.sweep.timing import METADATA_RESPONSE_BYTES, GcsTiming
from emulator.model.fsspec_cache import FsspecCacheConfig, replay_trace_files

__all__ = [
    "DEFAULT_BLOCK_SIZES",
    "DEFAULT_CACHE_TYPES",
    "GcsfsRow",
    "default_grid",
    "gcsfs_ops",
    "label",
    "sweep_gcsfs",
]

KiB, MiB = 1024, 1024 * 1024
#: Cache types the default grid sweeps (``mmap`` pages through a local file, ``parts`` needs
#: known parts, ``background`` is threaded like ``adaptive``: name them with ``--configs``).
DEFAULT_CACHE_TYPES = ("none", "readahead", "blockcache", "bytes", "first", "all", "adaptive")
DEFAULT_BLOCK_SIZES = (256 * KiB, 1 * MiB, 2 * MiB, 5 * MiB, 8 * MiB, 16 * MiB, 32 * MiB)
#: Cache types whose requests do not depend on the block size.
NO_BLOCKS = ("none", "all")


@dataclass(frozen=True)
class GcsfsRow:
    """One configuration's prediction."""

    config: FsspecCacheConfig
    requests: int
    metadata_requests: int
    bytes_fetched: int
    predicted_seconds: float
    memory_bytes: int
    exact: bool
    errors: int = 0
    cost_usd: float = 0.0  # priced by the caller (PriceTable.cost_usd); 0 when not priced

    def as_json(self) -> dict[str, Any]:
        return {
            "config": self.config.as_dict(),
            "requests": self.requests,
            "metadata_requests": self.metadata_requests,
            "bytes_fetched": self.bytes_fetched,
            "predicted_seconds": round(self.predicted_seconds, 6),
            "stale_reads": 0,
            "torn_reads": 0,
            "errors": self.errors,
            "stale_stats": 0,
            "memory_bytes": self.memory_bytes,
            "exact": self.exact,
            "cost_usd": round(self.cost_usd, 8),
        }


def label(config: FsspecCacheConfig) -> str:
    """A short name: ``blockcache 2MiB x8`` (x = maxblocks), ``none``, ``all``."""
    if config.cache_type in NO_BLOCKS:
        return config.cache_type
    bs = config.block_size
    size = f"{bs >> 20}MiB" if bs % MiB == 0 else f"{bs >> 10}KiB" if bs % KiB == 0 else str(bs)
    blocks = dict(config.cache_options).get("maxblocks")
    return f"{config.cache_type} {size}" + (f" x{blocks}" if blocks else "")


def gcsfs_ops(trace: Any) -> list[dict[str, Any]]:
    """The gcsfs ops of a loaded :class:`emulator.replay.trace.Trace`, in trace order."""
    return [c.op for c in getattr(trace, "client_ops", ()) if c.client == "gcsfs"]


def default_grid(quick: bool = False) -> list[FsspecCacheConfig]:
    """The default sweep: every cache type × block size (``blockcache`` with its default 32
    blocks and with 8), one row for the block-size-free types."""
    sizes = (1 * MiB, 5 * MiB, 16 * MiB) if quick else DEFAULT_BLOCK_SIZES
    out: list[FsspecCacheConfig] = []
    for ct in DEFAULT_CACHE_TYPES:
        if ct in NO_BLOCKS:
            out.append(FsspecCacheConfig(ct, 5 * MiB))
            continue
        for bs in sizes:
            out.append(FsspecCacheConfig(ct, bs))
            if ct == "blockcache" and not quick:
                out.append(FsspecCacheConfig(ct, bs, (("maxblocks", 8),)))
    return out


def _seconds(fetches: Iterable[list[int]], metadata: int, timing: GcsTiming) -> float:
    per = timing.per_request_overhead_s + timing.first_byte_latency_s
    t = metadata * (per + METADATA_RESPONSE_BYTES / timing.bandwidth_bytes_per_s)
    for bodies in fetches:
        t += per + max(bodies, default=0) / timing.bandwidth_bytes_per_s
    return t


def sweep_gcsfs(
    ops: Sequence[dict[str, Any]],
    configs: Iterable[FsspecCacheConfig],
    timing: GcsTiming | None = None,
) -> list[GcsfsRow]:
    """One :class:`GcsfsRow` per config, in the order given."""
    timing = timing or GcsTiming()
    rows = []
    for cfg in configs:
        res = replay_trace_files(ops, cfg)
        in_flight = max((sum(b) for b in res.fetches), default=0)
        rows.append(
            GcsfsRow(
                cfg,
                res.requests,
                res.metadata_requests,
                res.bytes_fetched,
                _seconds(res.fetches, res.metadata_requests, timing),
                res.peak_held + in_flight,
                res.exact,
                res.errors,
            )  # fmt: skip
        )
    return rows
