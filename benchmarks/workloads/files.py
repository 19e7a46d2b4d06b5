"""The bytes of workload objects: TFRecord framing and deterministic payloads.

A TFRecord is ``length`` (u64 little-endian), the masked CRC32C of the length, the payload, and
the masked CRC32C of the payload — the format ``tf.data.TFRecordDataset`` reads (see TF's
`record_writer.cc <https://github.com/tensorflow/tensorflow/blob/v2.21.0/tensorflow/core/lib/io/record_writer.cc>`_).

Invariants: :func:`tfrecord_bytes` of ``k`` payloads of ``s`` bytes is exactly
``k * (s + RECORD_OVERHEAD)`` bytes; :func:`payload` is a pure function of its arguments.
"""

from __future__ import annotations

import random
import struct

import google_crc32c

__all__ = ["RECORD_OVERHEAD", "masked_crc", "payload", "tfrecord_bytes"]

#: Bytes a TFRecord adds around each payload: 8 length + 4 CRC + 4 CRC.
RECORD_OVERHEAD = 16

_MASK_DELTA = 0xA282EAD8


def masked_crc(data: bytes) -> bytes:
    """TFRecord's masked CRC32C of ``data`` (4 bytes, little-endian)."""
    crc = google_crc32c.value(data)
    masked = (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF
    return struct.pack("<I", masked)


def tfrecord_bytes(payloads: list[bytes]) -> bytes:
    """The TFRecord file holding ``payloads`` in order (uncompressed)."""
    parts = []
    for p in payloads:
        header = struct.pack("<Q", len(p))
        parts += [header, masked_crc(header), p, masked_crc(p)]
    return b"".join(parts)


def payload(seed: str, index: int, size: int) -> bytes:
    """``size`` pseudo-random bytes determined by (``seed``, ``index``)."""
    return random.Random(f"{seed}|{index}").randbytes(size)
