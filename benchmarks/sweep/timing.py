"""A latency/bandwidth model of Google Cloud Storage that turns requests into predicted time.

TensorFlow's GCS filesystem issues the requests of one reader one after another on one thread
(a cached read fetches the blocks it overlaps sequentially, the buffered reader refills
synchronously), so the predicted time of a request list is the sum of per-request times:

    t(request) = per_request_overhead_s + first_byte_latency_s + bytes / bandwidth_bytes_per_s

``bytes`` is what the response body carries: for a media request the part of the inclusive
``range`` that lies inside the object (a range starting at or past the end is a 416 with no body),
for metadata/list requests a small JSON document (:data:`METADATA_RESPONSE_BYTES`).

Defaults and where they come from
---------------------------------
- ``first_byte_latency_s = 0.020`` and ``bandwidth_bytes_per_s = 64 MiB/s`` per connection are
  read off Google's published Cloud Storage FUSE benchmarks (GoogleCloudPlatform/gcsfuse
  ``docs/benchmarks.md``: same-region n2-standard-96 VM, FIO, 128 threads): 128 KiB files are read
  with ~21 ms average latency (latency-bound, so ~20 ms time to first byte), and 1 GiB files at
  ~7,700 MiB/s over 128 threads, i.e. ~60 MiB/s per stream. These are same-region numbers; a
  cross-region job sees larger latencies (pass ``--latency-ms``/``--bandwidth`` to ``tune``).
- ``per_request_overhead_s = 0.001``: client-side cost of one request in TensorFlow (curl handle
  set-up, auth header, response parsing); an assumption of this project, an order of magnitude
  below the latency so it only matters for very many tiny requests.

The same three numbers drive the front's traffic shaping (``emulator.fakegcs.shaping.Shaping``) in
measured runs, so predicted and measured time are comparable.

Invariants: latency and overhead are finite and >= 0; bandwidth > 0, ``math.inf`` = no limit
(``--bandwidth 0``: bytes cost no time).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

__all__ = [
    "DEFAULT_TIMING",
    "METADATA_RESPONSE_BYTES",
    "GcsTiming",
    "RequestCost",
    "response_bytes",
]

#: Body size of a metadata (stat) or list response: a small JSON document.
METADATA_RESPONSE_BYTES = 200


def response_bytes(request: Mapping, object_sizes: Mapping[str, int]) -> int:
    """Bytes in the response body of one trace-format request.

    Media requests carry the part of ``range`` (inclusive) inside the object; a range that starts
    at or past the end of the object is answered 416 with no body. A media request without a
    range reads the whole object. Other kinds carry :data:`METADATA_RESPONSE_BYTES`.
    """
    kind = request.get("kind")
    if kind != "media":
        return METADATA_RESPONSE_BYTES if kind in ("metadata", "list") else 0
    size = int(object_sizes.get(request.get("object") or "", 0))
    rng = request.get("range")
    if rng is None:
        return size
    start, end = int(rng[0]), int(rng[1])
    if start >= size:
        return 0
    return min(end, size - 1) - start + 1


@dataclass(frozen=True)
class RequestCost:
    """Totals for a list of requests under a :class:`GcsTiming`."""

    requests: int
    media_requests: int
    metadata_requests: int
    bytes_fetched: int
    seconds: float


@dataclass(frozen=True)
class GcsTiming:
    """First-byte latency, per-connection bandwidth and per-request overhead of GCS."""

    first_byte_latency_s: float = 0.020
    bandwidth_bytes_per_s: float = 64 * 1024 * 1024
    per_request_overhead_s: float = 0.001

    def __post_init__(self) -> None:
        for name in ("first_byte_latency_s", "bandwidth_bytes_per_s", "per_request_overhead_s"):
            value = getattr(self, name)
            unlimited = name == "bandwidth_bytes_per_s" and value == math.inf
            if not isinstance(value, (int, float)) or not (math.isfinite(value) or unlimited):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if self.first_byte_latency_s < 0 or self.per_request_overhead_s < 0:
            raise ValueError("latency and per-request overhead must be >= 0")
        if self.bandwidth_bytes_per_s <= 0:
            raise ValueError("bandwidth_bytes_per_s must be > 0")

    def request_seconds(self, nbytes: int) -> float:
        """Predicted time of one request whose response body has ``nbytes`` bytes."""
        return (
            self.per_request_overhead_s
            + self.first_byte_latency_s
            + nbytes / self.bandwidth_bytes_per_s
        )

    def cost(self, requests: Iterable[Mapping], object_sizes: Mapping[str, int]) -> RequestCost:
        """Predicted totals for ``requests`` (trace-format dicts) issued one after another."""
        n = media = meta = 0
        nbytes = 0
        for req in requests:
            n += 1
            kind = req.get("kind")
            if kind == "media":
                media += 1
            elif kind == "metadata":
                meta += 1
            nbytes += response_bytes(req, object_sizes)
        seconds = n * (self.per_request_overhead_s + self.first_byte_latency_s)
        seconds += nbytes / self.bandwidth_bytes_per_s
        return RequestCost(n, media, meta, nbytes, seconds)

    def seconds_for(self, n_requests: int, nbytes: int) -> float:
        """Predicted time of ``n_requests`` requests carrying ``nbytes`` in total."""
        fixed = self.per_request_overhead_s + self.first_byte_latency_s
        return n_requests * fixed + nbytes / self.bandwidth_bytes_per_s

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


DEFAULT_TIMING = GcsTiming()
