"""What a configuration costs in money: GCS operations and egress priced from a price table.

Operation classes (Cloud Storage pricing, "Operations by class"): a media GET and a metadata
GET are **class B** (``storage.*.get``); an object listing and an upload (``objects.insert``)
are **class A**; deletes are free. Egress is the body bytes read.

Default prices (:data:`DEFAULT_PRICES`): the list prices of https://cloud.google.com/storage/pricing
as transcribed on 2026-09-20 (Standard storage, single region, flat namespace): class A
$0.005 and class B $0.0004 per 1,000 operations; network egress, worldwide destinations,
first 10 TiB: $0.12 per GiB. Reads from Compute Engine in the bucket's own region pay no egress:
give ``--prices`` a table with ``"egress_usd_per_gib": 0`` for that (docs in the README).

Invariants: prices are finite and >= 0; a price file is JSON with exactly the keys below
(``source`` and ``date`` optional); cost is linear in every count.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["DEFAULT_PRICES", "PriceTable"]

GiB = 1024**3


@dataclass(frozen=True)
class PriceTable:
    """USD per 1,000 class A / class B operations and per GiB of egress."""

    class_a_usd_per_1000: float = 0.005
    class_b_usd_per_1000: float = 0.0004
    egress_usd_per_gib: float = 0.12
    source: str = "https://cloud.google.com/storage/pricing (Standard, single region)"
    date: str = "2026-09-20"

    def __post_init__(self) -> None:
        for name in ("class_a_usd_per_1000", "class_b_usd_per_1000", "egress_usd_per_gib"):
            v = getattr(self, name)
            if (
                isinstance(v, bool)
                or not isinstance(v, int | float)
                or not math.isfinite(v)
                or v < 0
            ):
                raise ValueError(f"prices: {name} must be a finite number >= 0, got {v!r}")

    def cost_usd(
        self, *, media: int = 0, metadata: int = 0, lists: int = 0, uploads: int = 0,
        egress_bytes: int = 0,
    ) -> float:  # fmt: skip
        """Dollars for these operation counts and bytes read."""
        class_b = media + metadata
        class_a = lists + uploads
        return (
            class_a * self.class_a_usd_per_1000 / 1000
            + class_b * self.class_b_usd_per_1000 / 1000
            + egress_bytes / GiB * self.egress_usd_per_gib
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def load(cls, path: str | os.PathLike) -> PriceTable:
        """A table from a JSON file; ValueError (one line) if unreadable or malformed."""
        try:
            with open(path, encoding="utf-8") as fh:
                doc = json.load(fh)
        except OSError as e:
            raise ValueError(f"cannot read prices {os.fspath(path)!s}: {e.strerror}") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"prices file is not valid JSON: {e}") from None
        if not isinstance(doc, dict):
            raise ValueError("prices file must be a JSON object")
        unknown = set(doc) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"prices: unknown keys {sorted(unknown)}")
        return cls(**doc)


DEFAULT_PRICES = PriceTable()
