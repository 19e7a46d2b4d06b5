"""Comparing two replay results: the first request or read where they differ.

Results are dicts in the form of docs/trace-format.md ("Result"): ``requests`` and ``reads``
take part in the comparison; ``request_ops`` / ``read_ops`` (which op produced each item, when
an engine knows) only give context in the :class:`Difference`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Difference", "compare", "read_record"]


def read_record(op: Mapping[str, Any], returned: int, sha: str, error: str | None) -> dict:
    return {
        "handle": op["handle"],
        "offset": int(op["offset"]),
        "n": int(op["n"]),
        "returned": int(returned),
        "sha256": sha,
        "error": error,
    }


@dataclass(frozen=True)
class Difference:
    """The first place two results differ. ``left``/``right`` are None when a list ran out."""

    section: str  # "requests" | "reads"
    index: int
    left_engine: str
    right_engine: str
    left: Any
    right: Any
    left_op: Any = None  # index into the trace's ops that produced the item, when known
    right_op: Any = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "index": self.index,
            self.left_engine if self.left_engine != self.right_engine else "left": self.left,
            self.right_engine if self.left_engine != self.right_engine else "right": self.right,
            "left_op": self.left_op,
            "right_op": self.right_op,
        }

    def describe(self, trace: Mapping[str, Any] | None = None) -> str:
        """Several human-readable lines naming the differing item and the op behind it."""

        def op_text(idx: Any) -> str:
            if idx is None or trace is None or not (0 <= idx < len(trace["ops"])):
                return ""
            return f" (during op #{idx}: {json.dumps(trace['ops'][idx])})"

        what = "request" if self.section == "requests" else "read"
        return "\n".join(
            [
                f"first difference: {what} #{self.index}",
                f"  {self.left_engine:>6}: {json.dumps(self.left)}{op_text(self.left_op)}",
                f"  {self.right_engine:>6}: {json.dumps(self.right)}{op_text(self.right_op)}",
            ]
        )


def compare(left: Mapping[str, Any], right: Mapping[str, Any]) -> Difference | None:
    """First difference between two results (requests first, then reads); None if equal.

    Only ``requests`` and ``reads`` take part; ``request_ops`` (which op sent each request) is
    carried into the difference for context.
    """
    for section in ("requests", "reads"):
        a, b = list(left[section]), list(right[section])
        for i in range(max(len(a), len(b))):
            x = a[i] if i < len(a) else None
            y = b[i] if i < len(b) else None
            if x != y:
                return Difference(
                    section,
                    i,
                    str(left.get("engine", "left")),
                    str(right.get("engine", "right")),
                    x,
                    y,
                    _op_index(left, section, i),
                    _op_index(right, section, i),
                )
    return None


def _op_index(result: Mapping[str, Any], section: str, i: int) -> int | None:
    key = "request_ops" if section == "requests" else "read_ops"
    ops = result.get(key) or []
    return ops[i] if i < len(ops) else None
