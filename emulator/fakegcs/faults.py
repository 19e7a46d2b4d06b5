"""Injected failures: make the front answer chosen requests with an error instead of forwarding.

Used to check retry and error behaviour against real TensorFlow (e.g. a 503 on a block GET is
retried; a 404 is not). ``front.faults`` is a :class:`FaultPlan`, empty by default.

Invariants:
- A :class:`Fault` matches on the ledger's view of a request (kind, bucket, object, method);
  ``None`` fields match anything. Rules are tried in the order added; the first match is used
  and its ``times`` count goes down by one; a spent rule is removed.
- Token requests are never faulted (auth failures are the token issuer's business).
- Thread-safe; rules may be added while the front serves requests.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass
class Fault:
    """Answer up to ``times`` matching requests with HTTP ``status`` (a JSON error body)."""

    status: int
    kind: str | None = None
    bucket: str | None = None
    object: str | None = None
    method: str | None = None
    times: int = 1
    message: str = "injected fault"

    def __post_init__(self) -> None:
        if not isinstance(self.status, int) or not 400 <= self.status <= 599:
            raise ValueError(
                f"fault status must be an HTTP error code 400..599, got {self.status!r}"
            )
        if not isinstance(self.times, int) or self.times < 1:
            raise ValueError(f"fault times must be a positive integer, got {self.times!r}")

    def matches(self, kind: str, bucket: str | None, obj: str | None, method: str) -> bool:
        return (
            (self.kind is None or self.kind == kind)
            and (self.bucket is None or self.bucket == bucket)
            and (self.object is None or self.object == obj)
            and (self.method is None or self.method.upper() == method.upper())
        )


class FaultPlan:
    """An ordered, thread-safe list of :class:`Fault` rules."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[Fault] = []
        self.injected = 0

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
                    rule.times -= 1
                    if rule.times == 0:
                        del self._rules[i]
                    self.injected += 1
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
