"""The time structure a trace may carry (docs/trace-format.md, "Lanes and think time").

Optional keys on any op:

- ``lane``: integer >= 0, the program's stream the op ran on. Ops of one lane ran one after the
  other; ops of different lanes may have been in flight together. Absent: lane 0.
- ``think``: seconds >= 0 of the program's own time on that lane before the op: from the end of
  the lane's previous response (for a lane's first op: from the program's start) to the op's
  request. It never includes I/O. Absent: 0.
- ``at``: ``[arrive, first_byte, end]`` seconds since the program started, as the bucket saw the
  op's request (pass-through recordings: the upstream's first byte and end); what timing
  profiles are fitted from. ``first_byte`` may be null (an old ledger without it).

Optional top-level key ``recorded``: ``{"mode": "upstream" | "fake" | "ledger", ...}``: where the
times come from. A ``fake`` recording has no real bucket latency.

Invariant: a trace without any of these keys has ``Trace.timing is None`` and means exactly what
it meant before they existed (one lane; ``sleep`` ops are the program's pauses). In a trace with
lanes, ``sleep`` ops are the program's idle gaps (no request in flight), kept for the engines'
clocks; the wall-time model uses ``think`` instead of them (never both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["OP_TIMING_KEYS", "TraceTiming", "op_timing_dict", "parse_timing"]

OP_TIMING_KEYS = frozenset({"lane", "think", "at"})
_MODES = ("upstream", "fake", "ledger", "synthetic")


@dataclass(frozen=True)
class TraceTiming:
    """Per-op lanes, think times and recorded times (one entry per op, in op order)."""

    lanes: tuple[int, ...]
    think: tuple[float, ...]
    at: tuple[tuple[float, float | None, float] | None, ...]
    recorded: dict[str, Any] | None = None

    @property
    def n_lanes(self) -> int:
        return max(self.lanes, default=0) + 1

    @property
    def mode(self) -> str | None:
        return (self.recorded or {}).get("mode")


def _seconds(value: Any, where: str, name: str, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{where}: {name!r} must be a finite number >= 0, got {value!r}")
    return float(value)


def _at(value: Any, where: str) -> tuple[float, float | None, float]:
    if not isinstance(value, list) or len(value) != 3:
        raise ValueError(f"{where}: 'at' must be [arrive, first_byte, end], got {value!r}")
    arrive = _seconds(value[0], where, "at[0]")
    first = _seconds(value[1], where, "at[1]", allow_none=True)
    end = _seconds(value[2], where, "at[2]")
    assert arrive is not None and end is not None
    if end < arrive or (first is not None and not arrive <= first <= end):
        raise ValueError(f"{where}: 'at' must hold arrive <= first_byte <= end, got {value!r}")
    return arrive, first, end


def parse_timing(ops_raw: list[Any], recorded: Any) -> TraceTiming | None:
    """The timing of a trace's raw ops (already checked to be dicts); None if it has none.
    ValueError (the caller turns it into a TraceError) naming the op for a bad value."""
    if recorded is not None and (
        not isinstance(recorded, dict) or recorded.get("mode") not in _MODES
    ):
        raise ValueError(f"trace: 'recorded' must be an object with 'mode' one of {_MODES}")
    if recorded is not None and "tail_s" in recorded:
        _seconds(recorded["tail_s"], "trace: recorded", "tail_s")
    if recorded is None and not any(OP_TIMING_KEYS & set(raw) for raw in ops_raw):
        return None
    lanes: list[int] = []
    think: list[float] = []
    at: list[tuple[float, float | None, float] | None] = []
    for i, raw in enumerate(ops_raw):
        where = f"ops[{i}] ({raw.get('op')})"
        lane = raw.get("lane", 0)
        if isinstance(lane, bool) or not isinstance(lane, int) or not 0 <= lane < 1 << 20:
            raise ValueError(f"{where}: 'lane' must be an integer 0..{(1 << 20) - 1}, got {lane!r}")
        lanes.append(lane)
        think.append(_seconds(raw.get("think", 0.0), where, "think") or 0.0)
        at.append(_at(raw["at"], where) if raw.get("at") is not None else None)
    return TraceTiming(tuple(lanes), tuple(think), tuple(at), dict(recorded) if recorded else None)


def op_timing_dict(timing: TraceTiming | None, i: int) -> dict[str, Any]:
    """The timing keys of op ``i`` as they are written back (only the non-default ones)."""
    if timing is None:
        return {}
    out: dict[str, Any] = {}
    if timing.lanes[i]:
        out["lane"] = timing.lanes[i]
    if timing.think[i]:
        out["think"] = timing.think[i]
    if timing.at[i] is not None:
        out["at"] = list(timing.at[i])  # type: ignore[arg-type]
    return out
