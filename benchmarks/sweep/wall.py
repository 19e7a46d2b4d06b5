"""The program's wall time under a timing profile: lanes replayed concurrently (issue 17).

Entry point for any client (TF traces here, gcsfs traces elsewhere): :func:`wall_time` takes
:class:`Step` s — a lane, the think time before the step, and the body sizes of the requests
the step sends, one after another — and a
:class:`emulator.fakegcs.profile.TimingProfile`, and returns seconds (:class:`WallTime`).

The model:

- every lane runs its steps in order: ``think`` seconds of the program's own time, then its
  requests one after the other; lanes run at the same time;
- a request costs ``per_request_overhead_s`` + the first-byte latency (the profile's mean, or a
  draw of ``latency()``), then its body at ``min(stream rate, aggregate cap / bodies in
  flight)``: bodies in flight share the aggregate cap equally (processor sharing);
- I/O time is the time at least one request is in flight; the I/O-bound fraction is I/O time
  over wall time.

:func:`trace_steps` turns a trace and a cache configuration into steps: the size-only model
runs the ops in trace order (so the cache is shared in arrival order and the requests and
bytes are exactly those of the sweep engines), and each request is put on the lane of the op
that sent it. A trace with lanes (``Trace.timing``) gives each op its lane and think time and
its ``sleep`` ops are left out (they are the idle gaps the think times already hold); a trace
without is one lane whose ``sleep`` ops are think time, i.e. today's sequential sum.

Invariants: a single lane without an aggregate cap gives exactly ``sum(think) + sum(request
times)`` (the sequential model of :mod:`benchmarks.sweep.timing`); wall time is at least the
longest lane's think time plus its requests' fixed costs, and at least the total body bytes
over the aggregate cap; the event loop ends (every event retires a phase of one lane; a body
whose time left is below the clock's float resolution is retired, so the clock always moves).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from emulator.fakegcs.profile import TimingProfile

__all__ = [
    "Step",
    "WallTime",
    "client_overhead",
    "pace_coupling",
    "predict_wall",
    "trace_steps",
    "wall_time",
]

#: body bytes of a metadata/list answer and of an upload session start (as in timing.py)
SMALL_RESPONSE_BYTES = 200
_EPS = 1e-12


@dataclass(frozen=True)
class Step:
    """One op of the program on ``lane``: ``think_s`` of own time, then ``requests`` (body
    bytes of each request it sends, in order; empty for a cache hit)."""

    lane: int
    think_s: float
    requests: tuple[int, ...] = ()
    #: the recorded I/O time of the lane's previous op (for ``pace``, see :func:`wall_time`)
    io_before_s: float = 0.0


@dataclass(frozen=True)
class WallTime:
    """What :func:`wall_time` predicts."""

    wall_s: float
    io_s: float
    think_s: float  # the longest lane's think time
    lanes: int
    requests: int
    body_bytes: int
    #: per request (arrive, first_byte, end) when asked for (``intervals=True``)
    intervals: list[tuple[int, float, float, float, int]] = field(default_factory=list)

    @property
    def io_bound_fraction(self) -> float:
        return self.io_s / self.wall_s if self.wall_s > 0 else 0.0


class _Lane:
    __slots__ = ("steps", "phase", "until", "left", "reqs", "arrive", "first", "nbytes",
                 "io_start", "last_io")  # fmt: skip

    def __init__(self, steps: Iterable[Step]) -> None:
        self.steps: deque[Step] = deque(steps)
        self.phase = "idle"  # idle | think | ready | wait (first byte) | body | done
        self.until = 0.0
        self.left = 0.0
        self.reqs: deque[int] = deque()
        self.arrive = self.first = 0.0
        self.nbytes = 0
        self.io_start: float | None = None  # first request of the current step
        self.last_io = 0.0  # I/O time of the lane's previous step


def wall_time(
    steps: Iterable[Step],
    profile: TimingProfile,
    *,
    latency: Callable[[], float] | None = None,
    intervals: bool = False,
    pace: float = 0.0,
) -> WallTime:
    """Simulate the lanes of ``steps`` together under ``profile`` (see the module docstring).
    ``latency``: draws of the first-byte latency (default: the profile's mean every time).
    ``pace`` (0..1, :func:`pace_coupling`): the share of a step's recorded think time that was
    waiting for the program (backpressure: a consumer that had not taken the last element
    yet) rather than work; a step's think time becomes ``think + pace * (recorded I/O of the
    lane's previous op - its I/O now)``, at least 0, so a lane paced by a slower consumer
    keeps that pace when its I/O gets faster."""
    by_lane: dict[int, list[Step]] = {}
    for st in steps:
        by_lane.setdefault(st.lane, []).append(st)
    lanes = [_Lane(v) for _, v in sorted(by_lane.items())]
    fixed = profile.per_request_overhead_s
    mean_latency = profile.latency_mean_s
    stream = profile.stream_bandwidth_Bps or math.inf
    agg = profile.aggregate_bandwidth_Bps or math.inf
    think_max = max((sum(s.think_s for s in v) for v in by_lane.values()), default=0.0)
    n_req = sum(len(s.requests) for v in by_lane.values() for s in v)
    body = sum(sum(s.requests) for v in by_lane.values() for s in v)
    out: list[tuple[int, float, float, float, int]] = []
    t = io = 0.0

    def advance(lane: _Lane, now: float, idx: int) -> None:
        """Move ``lane`` through every phase that ends at ``now``."""
        while True:
            ph = lane.phase
            if ph in ("think", "wait"):
                if lane.until > now + _EPS:
                    return
                if ph == "wait":  # first byte: the body starts
                    lane.first, lane.phase, lane.left = now, "body", float(lane.nbytes)
                else:
                    lane.phase = "ready"
            elif ph == "body":
                if lane.left > 0:
                    return
                if intervals:
                    out.append((idx, lane.arrive, lane.first, now, lane.nbytes))
                lane.phase = "ready"
            elif ph in ("idle", "ready"):
                if lane.reqs:  # the step's next request
                    lane.nbytes, lane.arrive = lane.reqs.popleft(), now
                    if lane.io_start is None:
                        lane.io_start = now
                    d = fixed + (latency() if latency is not None else mean_latency)
                    lane.phase, lane.until = "wait", now + d
                elif lane.steps:  # the next step: its think time first
                    if lane.phase == "ready":
                        lane.last_io = now - lane.io_start if lane.io_start is not None else 0.0
                    lane.io_start = None
                    st = lane.steps.popleft()
                    lane.reqs = deque(st.requests)
                    think = st.think_s
                    if pace and st.io_before_s:
                        think = max(0.0, think + pace * (st.io_before_s - lane.last_io))
                    lane.phase, lane.until = "think", now + think
                else:
                    lane.phase = "done"
                    return
            else:
                return

    for i, lane in enumerate(lanes):
        advance(lane, 0.0, i)
    while True:
        live = [ln for ln in lanes if ln.phase != "done"]
        if not live:
            break
        bodies = [ln for ln in live if ln.phase == "body"]
        rate = min(stream, agg / len(bodies)) if bodies else math.inf
        nxt = math.inf
        for ln in live:
            if ln.phase in ("think", "wait"):
                nxt = min(nxt, ln.until)
            elif ln.phase == "body":
                nxt = min(nxt, t + (ln.left / rate if rate < math.inf else 0.0))
        nxt = max(nxt, t)
        dt = nxt - t
        if any(ln.phase in ("wait", "body") for ln in live):
            io += dt
        for ln in bodies:
            ln.left = 0.0 if rate == math.inf else max(0.0, ln.left - rate * dt)
            # done: a rounding rest, or one whose time left is below the clock's resolution
            # (else the clock could not move past it: the loop would never end)
            if ln.left <= max(_EPS, 1e-9 * ln.nbytes) or nxt + ln.left / rate <= nxt:
                ln.left = 0.0
        t = nxt
        for i, ln in enumerate(lanes):
            if ln.phase != "done":
                advance(ln, t, i)
    return WallTime(t, io, think_max, len(lanes), n_req, body, out)


def trace_steps(
    trace: Any,
    config: Any,
    *,
    stat_cache_max_age: int | None = None,
    clock_cost: Callable[[str, int], float] | None = None,
    buffer_size: int = 64 * 1024 * 1024,
    client_s: float = 0.0,
) -> tuple[list[Step], Any]:
    """The steps of ``trace`` under the cache ``config`` and the size-only run's
    :class:`emulator.replay.simulation.SimResult` (its counts are the sweep's, exactly).
    ``clock_cost``: what moves the model's virtual clock per request (as the model engine);
    ``buffer_size``: the cache-off read-ahead buffer (TF's default 64 MiB, as the sweep);
    ``client_s``: the client's own cost per request (:func:`client_overhead`), taken out of
    the recorded think time of every op that sent a request when it was recorded (the caller
    charges it to each request the configuration sends instead)."""
    from emulator.replay.simulation import simulate
    from emulator.replay.trace import RemoveOp, SleepOp, WriteOp, load_trace

    trace = load_trace(trace)
    log: list[int] = []
    marks: list[int] = []

    def cost(kind: str, nbytes: int) -> float:
        log.append(int(nbytes))
        return clock_cost(kind, nbytes) if clock_cost is not None else 0.0

    res = simulate(
        trace,
        config,
        stat_cache_max_age=stat_cache_max_age,
        cost=cost,
        on_op=lambda _i: marks.append(len(log)),
        buffer_size=buffer_size,
    )
    marks.append(len(log))
    timing = trace.timing
    steps: list[Step] = []
    io_last: dict[int, float] = {}  # lane -> recorded I/O time of its last timed op
    for i, op in enumerate(trace.ops):
        reqs = log[marks[i] : marks[i + 1]]
        if isinstance(op, WriteOp):  # the resumable upload: session start, then the content
            reqs = [*reqs, SMALL_RESPONSE_BYTES, op.size]
        elif isinstance(op, RemoveOp):
            reqs = [*reqs, 0]
        io_before = 0.0
        if timing is None:
            lane, think = 0, (op.seconds if isinstance(op, SleepOp) else 0.0)
        else:
            lane, think = timing.lanes[i], timing.think[i]
            at = timing.at[i]
            if at is not None and client_s:
                think = max(0.0, think - client_s)
            if at is not None:
                io_before = io_last.get(lane, 0.0)
                io_last[lane] = at[2] - at[0]
        if reqs or think or io_before:
            steps.append(Step(lane, think, tuple(reqs), io_before))
    return steps, res


def client_overhead(trace: Any, *, quantile: float = 0.10, min_ops: int = 16) -> float:
    """The client's own cost of one request, seconds, read off a recorded trace: a low quantile
    of the think time before ops that sent a request, on a lane whose previous op sent one too.

    Between two requests of one lane there is the program's work (if any) and the client's own
    per-request cost (TF's curl set-up, auth header, response handling), which a recording
    cannot tell apart from work; the lowest gaps are the ones with no work in them. A
    configuration that sends fewer requests saves that cost per request it does not send. 0 for
    a trace without recorded times or with fewer than ``min_ops`` such ops."""
    from emulator.replay.trace import load_trace

    timing = load_trace(trace).timing
    if timing is None:
        return 0.0
    seen: set[int] = set()
    gaps: list[float] = []
    for lane, think, at in zip(timing.lanes, timing.think, timing.at, strict=True):
        if at is None:
            continue
        if lane in seen:
            gaps.append(think)
        seen.add(lane)
    if len(gaps) < min_ops:
        return 0.0
    gaps.sort()
    return gaps[int(quantile * (len(gaps) - 1))]


def pace_coupling(trace: Any, *, min_pairs: int = 16) -> float:
    """How much of a recorded trace's think time was waiting rather than work, 0..1.

    Over the ops with recorded times, the least-squares slope of ``think`` on the recorded I/O
    time of the lane's previous op, negated and clipped to 0..1: a lane whose next request waits
    for a consumer starts it a fixed pace after the previous one, so a longer I/O leaves a
    shorter think time (slope -1); work between reads does not depend on the I/O (slope 0).
    0 for a trace without recorded times or with fewer than ``min_pairs`` pairs."""
    from emulator.replay.trace import load_trace

    trace = load_trace(trace)
    timing = trace.timing
    if timing is None:
        return 0.0
    io_last: dict[int, float] = {}
    xs: list[float] = []
    ys: list[float] = []
    for lane, think, at in zip(timing.lanes, timing.think, timing.at, strict=True):
        if at is None:
            continue
        if lane in io_last:
            xs.append(io_last[lane])
            ys.append(think)
        io_last[lane] = at[2] - at[0]
    if len(xs) < min_pairs:
        return 0.0
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if var <= 1e-12 * len(xs):
        return 0.0
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var
    return min(1.0, max(0.0, -slope))


def sequential_seconds(steps: Sequence[Step], profile: TimingProfile) -> float:
    """The one-lane closed form (every step after the previous one): a check of the model."""
    per = profile.per_request_overhead_s + profile.latency_mean_s
    bw = min(profile.stream_bandwidth_Bps or math.inf, profile.aggregate_bandwidth_Bps or math.inf)
    return sum(s.think_s + sum(per + (b / bw if bw < math.inf else 0.0) for b in s.requests)
               for s in steps)  # fmt: skip


def predict_wall(
    trace: Any,
    config: Any,
    profile: TimingProfile,
    *,
    pace: float | None = None,
    client_s: float | None = None,
    **kw: Any,
) -> tuple[WallTime, Any]:
    """The wall time of ``trace`` under ``config`` and ``profile`` (and the size-only run):
    :func:`trace_steps` then :func:`wall_time`, with ``pace`` = :func:`pace_coupling` and
    ``client_s`` = :func:`client_overhead` of the trace unless given; the client's cost moves
    from the recorded think times onto every request sent (the profile's per-request overhead
    plus ``client_s``); a recorded ``tail_s`` (the program's time after its last request) is
    added at the end. ``kw`` go to :func:`trace_steps`."""
    from dataclasses import replace

    from emulator.replay.trace import load_trace

    trace = load_trace(trace)
    if client_s is None:
        client_s = client_overhead(trace)
    steps, sim = trace_steps(trace, config, client_s=client_s, **kw)
    if pace is None:
        pace = pace_coupling(trace)
    if client_s:
        profile = replace(profile, per_request_overhead_s=profile.per_request_overhead_s + client_s)
    wall = wall_time(steps, profile, pace=pace)
    tail = float((trace.timing.recorded or {}).get("tail_s", 0.0)) if trace.timing else 0.0
    if tail:  # the program's own time after its last request, whatever the cache
        wall = replace(wall, wall_s=wall.wall_s + tail)
    return wall, sim
