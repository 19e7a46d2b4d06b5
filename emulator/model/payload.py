"""Payloads: what the model moves, as bytes or as byte counts.

The model runs in two modes with the same classes: byte-moving (payloads are ``bytes``) and
size-only (payloads are ``int`` byte counts, for sweeps that must not move data). Every piece of
the model that slices or joins data goes through these helpers, so a size-only payload is never
mistaken for data. Invariant: ``payload_len(payload_slice(p, a, b)) == len(range(a, min(b, n)))``
for ``n = payload_len(p)``, in both modes.
"""

from __future__ import annotations

__all__ = ["Payload", "payload_concat", "payload_len", "payload_slice"]

Payload = bytes | int


def payload_len(data: Payload) -> int:
    """Number of bytes a payload stands for."""
    return data if type(data) is int else len(data)  # type: ignore[arg-type]


def payload_slice(data: Payload, start: int, stop: int) -> Payload:
    """``data[start:stop]`` for bytes; the slice's length for a size-only payload."""
    if type(data) is int:
        return max(0, min(stop, data) - start)
    return data[start:stop]  # type: ignore[index]


def payload_concat(parts: list[Payload], size_only: bool) -> Payload:
    """Concatenate payload parts (sum of lengths in size-only mode)."""
    if size_only:
        return sum(parts)  # type: ignore[arg-type]
    if len(parts) == 1:
        return parts[0]
    return b"".join(parts)  # type: ignore[arg-type]
