"""Hook events on a ``time.monotonic()`` clock, merged with the front's request ledger.

``time.monotonic()`` is CLOCK_MONOTONIC on Linux: system wide, so times recorded in a TensorFlow
process and in the front's process (``RequestRecord.t``) are directly comparable.

Invariants:

- :class:`Timeline` is thread-safe and append-only; events keep insertion order and each gets a
  strictly increasing ``seq``.
- Events carry only names and small non-secret details (step numbers, parameter values).
- :func:`merge` returns hook events and requests in time order; at equal times hook events come
  first (a request can only be caused by something already recorded).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Event",
    "Timeline",
    "TimelineEntry",
    "merge",
    "requests_between",
    "TimelineHook",
    "make_timeline_callback",
]


@dataclass(frozen=True)
class Event:
    """One hook event: ``t`` is ``time.monotonic()``; ``source`` says which hook recorded it."""

    seq: int
    t: float
    source: str
    name: str
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "t": self.t,
            "source": self.source,
            "name": self.name,
            "detail": dict(self.detail),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Event:
        return cls(
            int(d["seq"]), float(d["t"]), str(d["source"]), str(d["name"]), dict(d["detail"])
        )


class Timeline:
    """A thread-safe, append-only list of :class:`Event`."""

    def __init__(self, events: Iterable[Event] = ()) -> None:
        self._lock = threading.Lock()
        self._events: list[Event] = list(events)

    def record(self, name: str, source: str = "hook", **detail: Any) -> Event:
        with self._lock:
            ev = Event(len(self._events) + 1, time.monotonic(), source, name, detail)
            self._events.append(ev)
            return ev

    @property
    def events(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def first(self, name: str, source: str | None = None) -> Event | None:
        """The first event called ``name`` (from ``source`` if given)."""
        for ev in self.events:
            if ev.name == name and (source is None or ev.source == source):
                return ev
        return None

    def to_json(self) -> list[dict[str, Any]]:
        return [ev.as_dict() for ev in self.events]

    @classmethod
    def from_json(cls, data: Sequence[dict[str, Any]]) -> Timeline:
        return cls(Event.from_dict(d) for d in data)


@dataclass(frozen=True)
class TimelineEntry:
    """One row of a merged timeline: ``kind`` is ``"event"`` or ``"request"``."""

    t: float
    kind: str
    item: Any

    def describe(self) -> str:
        if self.kind == "event":
            ev = self.item
            return f"{self.t:.6f} EVENT   {ev.source}.{ev.name} {ev.detail or ''}".rstrip()
        r = self.item
        rng = f" range={r.range[0]}-{r.range[1]}" if r.range else ""
        query = getattr(r, "query", None) or {}
        target = r.object if r.object is not None else f"?prefix={query.get('prefix', '')}"
        return (
            f"{self.t:.6f} REQUEST {r.method} {r.kind} {r.bucket}/{target} "
            f"status={r.status} principal={r.principal}{rng}"
        )


def merge(events: Iterable[Event], records: Iterable[Any]) -> list[TimelineEntry]:
    """Hook events and ledger records (anything with a float ``t``) in time order."""
    rows = [TimelineEntry(ev.t, "event", ev) for ev in events]
    rows += [TimelineEntry(r.t, "request", r) for r in records]
    rows.sort(key=lambda e: (e.t, 0 if e.kind == "event" else 1))
    return rows


def requests_between(
    records: Iterable[Any], start: float | None = None, end: float | None = None
) -> list[Any]:
    """Ledger records with ``start <= t < end`` (``None`` = unbounded)."""
    return [r for r in records if (start is None or r.t >= start) and (end is None or r.t < end)]


def _session_run_hook_base():
    import tensorflow as tf

    return tf.compat.v1.train.SessionRunHook


def _make_timeline_hook_class():
    """Built on first use so importing this module does not import TensorFlow."""
    base = _session_run_hook_base()

    class TimelineHook(base):  # type: ignore[misc, valid-type]
        """A ``SessionRunHook`` that records every callback in a :class:`Timeline`."""

        def __init__(self, timeline: Timeline, source: str = "session_hook") -> None:
            self.timeline = timeline
            self.source = source
            self._step = 0

        def begin(self) -> None:
            self.timeline.record("begin", self.source)

        def after_create_session(self, session, coord) -> None:
            self.timeline.record("after_create_session", self.source)

        def before_run(self, run_context):
            self.timeline.record("before_run", self.source, step=self._step)
            return None

        def after_run(self, run_context, run_values) -> None:
            self.timeline.record("after_run", self.source, step=self._step)
            self._step += 1

        def end(self, session) -> None:
            self.timeline.record("end", self.source)

    return TimelineHook


_hook_class = None


def TimelineHook(timeline: Timeline, source: str = "session_hook"):  # noqa: N802 - class factory
    """Create a ``SessionRunHook`` that records begin/after_create_session/before_run/after_run/end."""
    global _hook_class
    if _hook_class is None:
        _hook_class = _make_timeline_hook_class()
    return _hook_class(timeline, source)


def make_timeline_callback(timeline: Timeline, source: str = "keras"):
    """A Keras callback recording train/epoch/batch begin/end events in ``timeline``."""
    import tensorflow as tf

    class TimelineCallback(tf.keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            timeline.record("on_train_begin", source)

        def on_epoch_begin(self, epoch, logs=None):
            timeline.record("on_epoch_begin", source, epoch=epoch)

        def on_train_batch_begin(self, batch, logs=None):
            timeline.record("on_train_batch_begin", source, batch=batch)

        def on_train_batch_end(self, batch, logs=None):
            timeline.record("on_train_batch_end", source, batch=batch)

        def on_epoch_end(self, epoch, logs=None):
            timeline.record("on_epoch_end", source, epoch=epoch)

        def on_train_end(self, logs=None):
            timeline.record("on_train_end", source)

    return TimelineCallback()
