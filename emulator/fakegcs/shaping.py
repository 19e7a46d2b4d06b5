"""Traffic shaping for the front: added latency and a bandwidth cap, settable at run time.

What it applies to (every response the front forwards from the backend: media, metadata,
list, upload answers; not the token endpoint, not refused CONNECTs):

- ``per_request_overhead_s + first_byte_latency_s`` of sleep before the response status line is
  sent (the two are kept apart so a timing model can attribute them separately);
- ``bandwidth_bytes_per_s``: the response body of each request is paced so that after ``k``
  bytes at least ``k / bandwidth`` seconds have passed since its first body byte. Requests on one
  connection are sequential, so this is also a per-connection cap; parallel connections each get
  the full bandwidth (like per-stream limits on real GCS).

A :class:`emulator.fakegcs.profile.TimingProfile` makes it honest (``Shaping.from_profile``,
``gcs-hook serve --timing PROFILE``): the first-byte latency of each response is then a seeded
lognormal draw (median and p99), and ``aggregate_bandwidth_bytes_per_s`` caps the body bytes of
all responses in flight together (each piece waits for its turn at the shared rate, first come
first served, as well as for its own stream's rate).

Invariants: latencies are finite, ≥ 0 and at most ``MAX_DELAY_S`` (one hour); a bandwidth is
``0``/``None`` (unlimited) or between ``MIN_BANDWIDTH`` (1 kB/s) and ``MAX_BANDWIDTH`` (10^13 B/s);
anything else is a ``ValueError`` at construction, so an absurd value can never make every
request sleep forever or overflow ``time.sleep``. The front reads ``front.shaping`` afresh for every response and every
body chunk, so assigning a new :class:`Shaping` (or ``None``) takes effect immediately.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emulator.fakegcs.profile import LatencySampler, TimingProfile

#: Largest piece sent at once while a bandwidth cap is active (pacing granularity).
PACE_PIECE = 64 * 1024
MAX_DELAY_S = 3600.0
MIN_BANDWIDTH = 1e3
MAX_BANDWIDTH = 1e13


@dataclass(frozen=True)
class Shaping:
    """Latency and bandwidth the front adds to each forwarded response."""

    first_byte_latency_s: float = 0.0
    bandwidth_bytes_per_s: float | None = None
    per_request_overhead_s: float = 0.0
    #: a timing profile's latency distribution and aggregate cap (None: constant, no cap)
    profile: TimingProfile | None = None
    _sampler: LatencySampler | None = field(default=None, init=False, compare=False, repr=False)
    _aggregate: AggregateLimiter | None = field(default=None, init=False, compare=False, repr=False)

    @classmethod
    def from_profile(cls, profile: TimingProfile) -> Shaping:
        """The shaping that applies ``profile`` (median latency shown as the latency)."""
        return cls(
            first_byte_latency_s=profile.latency_median_s,
            bandwidth_bytes_per_s=profile.stream_bandwidth_Bps,
            per_request_overhead_s=profile.per_request_overhead_s,
            profile=profile,
        )

    def __post_init__(self) -> None:
        if self.profile is not None:
            object.__setattr__(self, "_sampler", self.profile.sampler())
            if self.profile.aggregate_bandwidth_Bps:
                agg = AggregateLimiter(self.profile.aggregate_bandwidth_Bps)
                object.__setattr__(self, "_aggregate", agg)
        for name in ("first_byte_latency_s", "per_request_overhead_s"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 <= v <= MAX_DELAY_S:
                raise ValueError(
                    f"Shaping.{name} must be a finite number in 0..{MAX_DELAY_S:g} s, got {v!r}"
                )
        bw = self.bandwidth_bytes_per_s
        if bw is not None and (
            not isinstance(bw, (int, float))
            or not math.isfinite(bw)
            or bw < 0
            or (bw and not MIN_BANDWIDTH <= bw <= MAX_BANDWIDTH)
        ):
            raise ValueError(
                "Shaping.bandwidth_bytes_per_s must be 0/None (no cap) or "
                f"{MIN_BANDWIDTH:g}..{MAX_BANDWIDTH:g} B/s, got {bw!r}"
            )

    # short aliases used in docs/design.md
    @property
    def latency_s(self) -> float:
        return self.first_byte_latency_s

    @property
    def bandwidth_Bps(self) -> float | None:  # noqa: N802 - documented name
        return self.bandwidth_bytes_per_s

    @property
    def limited(self) -> bool:
        return bool(self.bandwidth_bytes_per_s) or self._aggregate is not None

    def delay_first_byte(self) -> None:
        """Sleep for the per-request overhead plus first-byte latency (a draw from the
        profile's distribution when there is one)."""
        latency = self._sampler.draw() if self._sampler is not None else self.first_byte_latency_s
        d = self.per_request_overhead_s + latency
        if d > 0:
            time.sleep(d)

    def aggregate_due(self, nbytes: int) -> float | None:
        """Reserve ``nbytes`` at the aggregate cap; when they may have gone out (or None)."""
        return self._aggregate.reserve(nbytes) if self._aggregate is not None else None

    def expected_time(self, nbytes: int) -> float:
        """Seconds one response of ``nbytes`` body bytes takes under this shaping (lower bound)."""
        t = self.per_request_overhead_s + self.first_byte_latency_s
        if self.bandwidth_bytes_per_s:
            t += nbytes / self.bandwidth_bytes_per_s
        return t


class AggregateLimiter:
    """A rate shared by every response: bytes are granted first come, first served."""

    def __init__(self, rate: float) -> None:
        self.rate = float(rate)
        self._next_free = 0.0
        self._lock = threading.Lock()

    def reserve(self, nbytes: int) -> float:
        """Book ``nbytes`` now; the monotonic time by which they may have been sent."""
        with self._lock:
            start = max(time.monotonic(), self._next_free)
            self._next_free = start + nbytes / self.rate
            return self._next_free


class ShapedSender:
    """Paces one response body according to whatever shaping ``current()`` returns now.

    Pacing restarts (from the current instant) whenever the bandwidth value changes, so a cap
    set or changed mid-body applies to the remaining bytes only.
    """

    def __init__(self, current: Callable[[], Shaping | None]) -> None:
        self._current = current
        self._bw: float | None = None
        self._start = 0.0
        self._paced = 0

    def due(self, nbytes: int) -> float | None:
        """When the last of ``nbytes`` more body bytes will have gone out under the current
        pacing (``time.monotonic()``), or None when nothing is paced."""
        shaping = self._current()
        bw = shaping.bandwidth_bytes_per_s if shaping is not None else None
        if not bw:
            return None
        now = time.monotonic()
        if bw != self._bw:
            return now + nbytes / bw
        return max(now, self._start + (self._paced + nbytes) / bw)

    def pieces(self, data: bytes | memoryview) -> Iterator[memoryview | bytes]:
        """Yield ``data`` in pieces, sleeping before each as the bandwidth cap requires."""
        shaping = self._current()
        if shaping is None or not shaping.limited:
            self._bw = None
            yield data
            return
        mv = memoryview(data)
        for off in range(0, len(mv), PACE_PIECE):
            piece = mv[off : off + PACE_PIECE]
            shaping = self._current()
            bw = shaping.bandwidth_bytes_per_s if shaping is not None else None
            now = time.monotonic()
            if bw != self._bw:
                self._bw, self._start, self._paced = bw, now, 0
            if bw:
                due = self._start + (self._paced + len(piece)) / bw
                if due > now:
                    time.sleep(due - now)
                self._paced += len(piece)
            agg = shaping.aggregate_due(len(piece)) if shaping is not None else None
            if agg is not None:
                wait = agg - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            yield piece
