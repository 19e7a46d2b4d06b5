"""Injected failures: what real networks and servers do to a request, on demand.

Used to check retry and error behaviour against real TensorFlow (e.g. a 503 on a block GET is
retried; a 404 is not) and for soak tests. ``front.faults`` is a :class:`FaultPlan`, empty by
default. Actions:

- ``status``: answer HTTP ``status`` with GCS's JSON error body instead of forwarding;
- ``reset``: forward, send the answer's head and ``after_bytes`` of its body (default: half),
  then reset the connection (RST);
- ``truncate``: the same, but close normally (FIN): the client sees a body shorter than its
  ``Content-Length``;
- ``stall``: forward, then wait ``stall_s`` before the answer's head (the client's own
  timeouts decide what happens).

Invariants:
- A :class:`Fault` matches on the ledger's view of a request (kind, bucket, object, method);
  ``None`` fields match anything. Rules are tried in the order added; the first match is used
  and its ``times`` count goes down by one (``times=None``: never spent); a spent rule is
  removed.
- ``probability`` < 1: a matching request is faulted with that probability, drawn from the
  plan's own ``random.Random(seed)``, so a seeded plan faults the same sequence of matching
  requests every run (given the same request order).
- Token requests are never faulted (auth failures are the token issuer's business).
- Every faulted request is in the ledger with ``extra["injected"] = True`` and
  ``extra["fault"]`` = the action.
- Thread-safe; rules may be added while the front serves requests.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass

ACTIONS = ("status", "reset", "truncate", "stall")
MAX_STALL_S = 3600.0


@dataclass
class Fault:
    """Answer up to ``times`` matching requests with HTTP ``status`` (a JSON error body)."""

    status: int = 503
    kind: str | None = None
    bucket: str | None = None
    object: str | None = None
    method: str | None = None
    times: int | None = 1
    message: str = "injected fault"
    action: str = "status"
    after_bytes: int | None = None
    stall_s: float = 1.0
    probability: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.status, int) or not 400 <= self.status <= 599:
            raise ValueError(
                f"fault status must be an HTTP error code 400..599, got {self.status!r}"
            )
        if self.times is not None and (not isinstance(self.times, int) or self.times < 1):
            raise ValueError(f"fault times must be a positive integer or None, got {self.times!r}")
        if self.action not in ACTIONS:
            raise ValueError(
                f"fault action must be one of {', '.join(ACTIONS)}, got {self.action!r}"
            )
        if self.after_bytes is not None and (
            not isinstance(self.after_bytes, int) or self.after_bytes < 0
        ):
            raise ValueError(f"fault after_bytes must be an integer >= 0, got {self.after_bytes!r}")
        s = self.stall_s
        if not isinstance(s, (int, float)) or not math.isfinite(s) or not 0 <= s <= MAX_STALL_S:
            raise ValueError(f"fault stall_s must be 0..{MAX_STALL_S:g} s, got {s!r}")
        p = self.probability
        if not isinstance(p, (int, float)) or not 0 < p <= 1:
            raise ValueError(f"fault probability must be in (0, 1], got {p!r}")

    def matches(self, kind: str, bucket: str | None, obj: str | None, method: str) -> bool:
        return (
            (self.kind is None or self.kind == kind)
            and (self.bucket is None or self.bucket == bucket)
            and (self.object is None or self.object == obj)
            and (self.method is None or self.method.upper() == method.upper())
        )


class FaultPlan:
    """An ordered, thread-safe list of :class:`Fault` rules."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._rules: list[Fault] = []
        self._rng = random.Random(seed)
        self.injected = 0
        self.by_action: dict[str, int] = dict.fromkeys(ACTIONS, 0)

    def reseed(self, seed: int | None) -> None:
        """Restart the plan's random draws from ``seed``."""
        with self._lock:
            self._rng = random.Random(seed)

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._rules.append(fault)
        return fault

    def take(self, kind: str, bucket: str | None, obj: str | None, method: str) -> Fault | None:
        """The first rule matching this request (consuming one use of it), or None."""
        if kind == "token":
            return None
        with self._lock:
            for i, rule in enumerate(self._rules):
                if rule.matches(kind, bucket, obj, method):
                    if rule.probability < 1 and self._rng.random() >= rule.probability:
                        continue
                    if rule.times is not None:
                        rule.times -= 1
                        if rule.times == 0:
                            del self._rules[i]
                    self.injected += 1
                    self.by_action[rule.action] += 1
                    return rule
        return None

    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._rules)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._rules)
