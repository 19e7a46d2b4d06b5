"""Timing profiles: how a bucket answers, as a seeded distribution (issue 17).

A :class:`TimingProfile` is what the shaped front applies (``gcs-hook serve --timing``) and what
``gcs-hook tune`` predicts with (``--timing``), and what a recording's fit produces:

- first-byte latency: lognormal, given by its median and its 99th percentile (``p99 ==
  median``: a constant); ``sigma = ln(p99 / median) / z99``;
- ``stream_bandwidth_Bps``: the rate of one response body (None: no limit);
- ``aggregate_bandwidth_Bps``: a cap shared by all responses in flight (None: none);
- ``per_request_overhead_s``: a constant added to every request before its first byte.

Invariants: every number is finite; latencies and overhead are in 0..3600 s with
``median <= p99``; bandwidths are None or 1 kB/s..10^13 B/s; ``seed`` is an int. A profile file is
JSON (``{"format": "gcs-hook-timing-profile", "version": 1, ...}``), written atomically, never
through a symlink, and holds no path or credential.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["DEFAULT_PROFILE", "TimingProfile", "Z90", "Z99"]

#: standard normal quantiles
Z90 = 1.2815515655446004
Z99 = 2.3263478740408408
_FORMAT = "gcs-hook-timing-profile"
_MAX_S = 3600.0
_MIN_BW, _MAX_BW = 1e3, 1e13


def _check_s(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ValueError(f"timing profile: {name} must be a finite number, got {v!r}")
    if not 0 <= v <= _MAX_S:
        raise ValueError(f"timing profile: {name} must be in 0..{_MAX_S:g} s, got {v!r}")
    return float(v)


def _check_bw(name: str, v: Any) -> float | None:
    if v is None or v == 0:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ValueError(f"timing profile: {name} must be a number or null, got {v!r}")
    if not _MIN_BW <= v <= _MAX_BW:
        raise ValueError(f"timing profile: {name} must be {_MIN_BW:g}..{_MAX_BW:g} B/s, got {v!r}")
    return float(v)


@dataclass(frozen=True)
class TimingProfile:
    """A bucket's timing: lognormal first-byte latency, per-stream rate, aggregate cap."""

    latency_median_s: float = 0.020
    latency_p99_s: float | None = None  # None: = the median (constant latency)
    stream_bandwidth_Bps: float | None = 64 * 1024 * 1024  # noqa: N815 - unit in the name
    aggregate_bandwidth_Bps: float | None = None  # noqa: N815
    per_request_overhead_s: float = 0.0
    seed: int = 0
    #: where the numbers come from (printed by tune, kept in the file)
    source: str = ""

    def __post_init__(self) -> None:
        med = _check_s("latency_median_s", self.latency_median_s)
        p99 = med if self.latency_p99_s is None else _check_s("latency_p99_s", self.latency_p99_s)
        if p99 < med:
            raise ValueError("timing profile: latency_p99_s must be >= latency_median_s")
        _check_s("per_request_overhead_s", self.per_request_overhead_s)
        object.__setattr__(self, "latency_p99_s", p99)
        for name in ("stream_bandwidth_Bps", "aggregate_bandwidth_Bps"):
            object.__setattr__(self, name, _check_bw(name, getattr(self, name)))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"timing profile: seed must be an integer, got {self.seed!r}")
        if not isinstance(self.source, str) or len(self.source) > 500:
            raise ValueError("timing profile: source must be a string of at most 500 characters")

    # -- the distribution -----------------------------------------------------------------
    @property
    def sigma(self) -> float:
        """Lognormal shape: ``ln(p99 / median) / z99`` (0 for a constant latency)."""
        med, p99 = self.latency_median_s, float(self.latency_p99_s or 0.0)
        return math.log(p99 / med) / Z99 if med > 0 and p99 > med else 0.0

    def latency_quantile(self, q: float) -> float:
        """The latency below which a fraction ``q`` of first bytes arrive."""
        from statistics import NormalDist

        if self.sigma == 0:
            return self.latency_median_s
        return self.latency_median_s * math.exp(self.sigma * NormalDist().inv_cdf(q))

    @property
    def latency_mean_s(self) -> float:
        """Expected first-byte latency (what a prediction uses): ``median * exp(sigma^2 / 2)``."""
        return self.latency_median_s * math.exp(self.sigma**2 / 2)

    def sampler(self) -> LatencySampler:
        """A thread-safe, seeded stream of latency draws."""
        return LatencySampler(self)

    # -- files ----------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"format": _FORMAT, "version": 1, **asdict(self)}

    @classmethod
    def from_json(cls, doc: Any) -> TimingProfile:
        """A profile from its JSON document; ValueError (one line) if it is not one."""
        if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
            raise ValueError(f'not a timing profile (no "format": "{_FORMAT}")')
        known = set(cls.__dataclass_fields__)
        unknown = set(doc) - known - {"format", "version", "fit"}
        if unknown:
            raise ValueError(f"timing profile: unknown keys {sorted(unknown)}")
        return cls(**{k: v for k, v in doc.items() if k in known})

    @classmethod
    def load(cls, path: str | os.PathLike) -> TimingProfile:
        try:
            with open(path, encoding="utf-8") as fh:
                doc = json.load(fh)
        except OSError as e:
            raise ValueError(
                f"cannot read timing profile {os.fspath(path)!s}: {e.strerror}"
            ) from None
        except json.JSONDecodeError as e:
            raise ValueError(f"timing profile is not valid JSON: {e}") from None
        return cls.from_json(doc)

    def save(self, path: str | os.PathLike, *, fit: dict[str, Any] | None = None) -> None:
        """Write the profile (and an optional fit report) atomically; never through a symlink."""
        path = os.fspath(path)
        if os.path.islink(path):
            raise ValueError(f"refusing to write the timing profile through a symlink: {path}")
        doc = self.to_json()
        if fit is not None:
            doc["fit"] = fit
        d = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".profile-", dir=d)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, indent=1, sort_keys=True)
                fh.write("\n")
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


@dataclass
class LatencySampler:
    """Seeded lognormal draws of a profile's first-byte latency (thread-safe)."""

    profile: TimingProfile
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.profile.seed)

    def draw(self) -> float:
        p = self.profile
        if p.sigma == 0:
            return p.latency_median_s
        with self._lock:
            v = self._rng.lognormvariate(math.log(p.latency_median_s), p.sigma)
        return min(v, _MAX_S)


#: The profile ``tune`` uses when the trace carries no bucket timing (a fake-mode recording):
#: GCS same-region numbers, see :mod:`benchmarks.sweep.timing` for their source.
DEFAULT_PROFILE = TimingProfile(
    latency_median_s=0.020,
    latency_p99_s=0.020,
    stream_bandwidth_Bps=64 * 1024 * 1024,
    aggregate_bandwidth_Bps=None,
    per_request_overhead_s=0.001,
    source=(
        "default: Cloud Storage FUSE benchmarks (GoogleCloudPlatform/gcsfuse docs/benchmarks.md, "
        "same-region n2-standard-96): ~20 ms to first byte, ~60 MiB/s per stream; 1 ms "
        "client overhead (an assumption of gcs-hook)"
    ),
)
