"""A bucket's timing profile fitted from a recording (issue 17 item 3).

Input: timed requests — ``(arrive, first_byte, end, body_bytes)`` in seconds, as the bucket
answered them (a trace's ``at`` times, see docs/trace-format.md). Output: a
:class:`emulator.fakegcs.profile.TimingProfile` and how well it fits (:class:`ProfileFit`).

- First-byte latency ``first_byte - arrive``: median, p90 and p99 of the samples; the profile is
  the lognormal through the median and the p90 (its p99 printed next to the sampled one). The
  per-request overhead cannot be told apart from latency on the wire: it is part of it.
- Bodies of at least :data:`MIN_BODY_BYTES`: rate ``bytes / (end - first_byte)``; each body's
  concurrency is the time-averaged number of bodies in flight over it (itself included). The
  per-stream rate is the median rate of bodies that ran alone (concurrency < 1.25; else the
  p90 of all rates). Bodies that ran with others (concurrency >= 1.75) tell the aggregate cap:
  the one whose processor sharing (``min(stream, cap / concurrency)``) explains their rates
  clearly better than no cap (:func:`_fit_cap`). Otherwise the data show none (up to the
  concurrency seen).
- Quality: every request's duration ``end - arrive`` predicted from the profile (mean latency
  + body at ``min(stream, cap / concurrency)``) against the recorded one: median and p90 of the
  relative error.

Invariants: the fit is a pure function of the samples; it needs at least
:data:`MIN_SAMPLES` requests with a first-byte time (ValueError otherwise).
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from emulator.fakegcs.profile import Z90, Z99, TimingProfile

__all__ = ["MIN_BODY_BYTES", "MIN_SAMPLES", "ProfileFit", "fit_profile", "trace_samples"]

MIN_BODY_BYTES = 64 * 1024
MIN_SAMPLES = 5


@dataclass(frozen=True)
class Sample:
    arrive: float
    first: float
    end: float
    nbytes: int


@dataclass(frozen=True)
class ProfileFit:
    """The fitted profile and the facts it was fitted from."""

    profile: TimingProfile
    requests: int
    bodies: int
    latency_median_s: float
    latency_p90_s: float
    latency_p99_s: float
    stream_Bps: float | None  # noqa: N815
    aggregate_Bps: float | None  # noqa: N815
    max_concurrency: float
    error_median: float
    error_p90: float
    aggregate_note: str
    #: |sum of predicted durations - sum of recorded ones| / recorded: what wall time sees
    error_total: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "bodies": self.bodies,
            "latency_s": {"median": round(self.latency_median_s, 6),
                          "p90": round(self.latency_p90_s, 6),
                          "p99": round(self.latency_p99_s, 6),
                          "p99_of_the_fit": round(self.profile.latency_quantile(0.99), 6)},
            "stream_Bps": self.stream_Bps,
            "aggregate_Bps": self.aggregate_Bps,
            "aggregate": self.aggregate_note,
            "max_concurrency": round(self.max_concurrency, 2),
            "duration_error": {"median": round(self.error_median, 4),
                               "p90": round(self.error_p90, 4),
                               "total": round(self.error_total, 4)},
        }  # fmt: skip

    def lines(self) -> list[str]:
        """What ``tune`` prints about the fit."""
        mib = 1024 * 1024
        s = f"{self.stream_Bps / mib:.1f} MiB/s" if self.stream_Bps else "no limit seen"
        agg = f"{self.aggregate_Bps / mib:.1f} MiB/s" if self.aggregate_Bps else "none"
        return [
            f"timing fit from {self.requests} recorded requests ({self.bodies} bodies >= 64 KiB):",
            f"  first byte: median {self.latency_median_s * 1e3:.1f} ms, p90 "
            f"{self.latency_p90_s * 1e3:.1f} ms, p99 {self.latency_p99_s * 1e3:.1f} ms "
            f"(lognormal fit p99 {self.profile.latency_quantile(0.99) * 1e3:.1f} ms)",
            f"  per-stream throughput {s}; aggregate cap {agg} ({self.aggregate_note})",
            f"  fit quality: summed request time within {self.error_total * 100:.1f} %; one "
            f"request's within {self.error_median * 100:.1f} % (median), "
            f"{self.error_p90 * 100:.1f} % (p90: latency jitter)",
        ]


def _quantile(xs: Sequence[float], q: float) -> float:
    """Nearest-rank quantile of sorted ``xs``."""
    return xs[min(len(xs) - 1, max(0, math.ceil(q * len(xs)) - 1))]


def _concurrency(bodies: Sequence[tuple[float, float]]) -> list[float]:
    """Time-averaged number of bodies in flight over each body (itself included)."""
    events = sorted([(a, 1) for a, _ in bodies] + [(b, -1) for _, b in bodies])
    times: list[float] = []
    cum: list[float] = []  # integral of the in-flight count up to each event time
    levels: list[int] = []  # the count right after each event
    level, acc = 0, 0.0
    for t, d in events:
        if times:
            acc += level * (t - times[-1])
        level += d
        times.append(t)
        cum.append(acc)
        levels.append(level)

    def integral(t: float) -> float:
        i = bisect.bisect_right(times, t) - 1
        return 0.0 if i < 0 else cum[i] + levels[i] * (t - times[i])

    return [(integral(b) - integral(a)) / (b - a) if b > a else 1.0 for a, b in bodies]


def fit_profile(samples: Iterable[Sample], *, seed: int = 0, source: str = "") -> ProfileFit:
    """Fit a :class:`TimingProfile` to ``samples`` (see the module docstring)."""
    timed = [s for s in samples if s.first >= s.arrive and s.end >= s.first]
    if len(timed) < MIN_SAMPLES:
        raise ValueError(
            f"a timing fit needs at least {MIN_SAMPLES} requests with a first-byte time "
            f"(the recording has {len(timed)})"
        )
    lat = sorted(s.first - s.arrive for s in timed)
    med, p90, p99 = statistics.median(lat), _quantile(lat, 0.90), _quantile(lat, 0.99)
    sigma = math.log(p90 / med) / Z90 if med > 0 and p90 > med else 0.0
    big = [s for s in timed if s.nbytes >= MIN_BODY_BYTES and s.end > s.first]
    conc = _concurrency([(s.first, s.end) for s in big])
    rates = [s.nbytes / (s.end - s.first) for s in big]
    stream: float | None = None
    agg: float | None = None
    note = "no bodies to judge"
    if rates:
        alone = [r for r, c in zip(rates, conc, strict=True) if c < 1.25]
        stream = statistics.median(alone) if len(alone) >= MIN_SAMPLES else _quantile(
            sorted(rates), 0.90)  # fmt: skip
        together = [(r, c) for r, c in zip(rates, conc, strict=True) if c >= 1.75]
        agg = _fit_cap(together, stream) if len(together) >= MIN_SAMPLES else None
        if agg is not None:
            note = f"concurrent bodies slowed down: cap fitted from {len(together)} of them"
        elif together:
            note = f"concurrent bodies kept the per-stream rate (up to {max(conc):.1f} at once)"
        else:
            note = "no concurrent bodies recorded"
    p99_fit = med * math.exp(sigma * Z99)
    profile = TimingProfile(
        latency_median_s=med, latency_p99_s=max(med, p99_fit), stream_bandwidth_Bps=stream,
        aggregate_bandwidth_Bps=agg, per_request_overhead_s=0.0, seed=seed,
        source=source or f"fitted from {len(timed)} recorded requests",
    )  # fmt: skip
    errors, total = _duration_errors(timed, profile, big, conc)
    return ProfileFit(
        profile, len(timed), len(big), med, p90, p99, stream, agg, max(conc, default=0.0),
        statistics.median(errors), _quantile(sorted(errors), 0.90), note, total,
    )  # fmt: skip


def _fit_cap(together: Sequence[tuple[float, float]], stream: float) -> float | None:
    """The aggregate cap that best explains the rates of bodies that ran with others (``(rate,
    concurrency)``): processor sharing gives each ``min(stream, cap / concurrency)``. The cap
    minimises the summed absolute error over the candidates ``rate x concurrency`` of the
    bodies themselves; None (no cap) unless the best cap explains the rates clearly better
    (an error at least 20 % below the no-cap one). A cap binds only where ``concurrency >
    cap / stream``: bodies two at a time under a cap of twice the stream rate are not slowed,
    so a median over all of them would miss it."""

    def loss(cap: float) -> float:
        return sum(abs(r - min(stream, cap / c)) for r, c in together)

    none = loss(math.inf)
    best, best_loss = None, none
    for cand in sorted({r * c for r, c in together}):
        got = loss(cand)
        if got < best_loss:
            best, best_loss = cand, got
    return best if best is not None and best_loss <= 0.8 * none else None


def _duration_errors(
    timed: Sequence[Sample], profile: TimingProfile, big: Sequence[Sample], conc: Sequence[float]
) -> tuple[list[float], float]:
    c_of = {id(s): c for s, c in zip(big, conc, strict=True)}
    stream = profile.stream_bandwidth_Bps or math.inf
    agg = profile.aggregate_bandwidth_Bps or math.inf
    out = []
    sum_pred = sum_real = 0.0
    for s in timed:
        c = c_of.get(id(s), 1.0)
        rate = min(stream, agg / max(1.0, c))
        pred = profile.latency_mean_s + (s.nbytes / rate if rate < math.inf else 0.0)
        real = s.end - s.arrive
        sum_pred += pred
        sum_real += real
        out.append(abs(pred - real) / real if real > 0 else 0.0)
    return out, (abs(sum_pred - sum_real) / sum_real if sum_real > 0 else 0.0)


def trace_samples(trace: Any) -> list[Sample]:
    """The timed requests of a trace's ``at`` times: reads (body = the bytes inside the
    object), stats (a small JSON answer). Writes and removes are left out (an upload's time
    is not a download's)."""
    from benchmarks.sweep.wall import SMALL_RESPONSE_BYTES
    from emulator.replay.trace import OpenOp, ReadOp, StatOp, load_trace

    trace = load_trace(trace)
    if trace.timing is None:
        return []
    sizes = dict(trace.objects)
    handle_obj: dict[str, str] = {}
    out = []
    for op, at in zip(trace.ops, trace.timing.at, strict=True):
        if isinstance(op, OpenOp):
            handle_obj[op.handle] = op.object
        if at is None or at[1] is None:
            continue
        if isinstance(op, ReadOp):
            size = sizes.get(handle_obj.get(op.handle, ""), 0)
            nbytes = max(0, min(op.n, size - op.offset))
        elif isinstance(op, StatOp):
            nbytes = SMALL_RESPONSE_BYTES
        else:
            continue
        out.append(Sample(at[0], at[1], at[2], nbytes))
    return out
