"""One parser and one validator per kind of value the ``gcs-hook`` commands take.

Every subcommand reads sizes, rates, durations, ports and backend specs through these functions,
so a value is written the same way everywhere and a bad one fails the same way:

========== ============================================ ===========================================
kind       how to write it                               parser
========== ============================================ ===========================================
size       ``64MiB``, ``2GiB``, ``1.5GB``, ``4096`` (B)  :func:`parse_size` → bytes (int)
rate       ``64MiB/s``, ``100MB/s``, ``0`` = no limit    :func:`parse_rate` → bytes/s (float | None)
duration   ``250ms``, ``5s``, ``2m``, ``1h``; a bare     :func:`parse_duration` → seconds (float)
           number is in the flag's own unit (its help
           says which: ``--latency-ms`` ms, ``--duration``
           s)
port       ``0`` (any free port) … ``65535``             :func:`parse_port` → int
backend    ``embedded``, ``container``,                  :func:`parse_backend_spec` → normalized
           ``http(s)://host:port``                       spec (``emulator.fakegcs.backend``)
========== ============================================ ===========================================

Binary units (KiB, MiB, GiB, TiB) are powers of 1024, decimal ones (kB, MB, GB, TB) powers of 1000;
units are case-insensitive. Invariants: every parser either returns a finite, in-range value or
raises :class:`ValueError` with a message that names the accepted forms; none of them touches
anything else. :func:`option` turns that ``ValueError`` into the CLI's one-line error (exit 2).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from fractions import Fraction
from typing import TypeVar

from emulator.fakegcs.backend import parse_backend_spec
from gcs_hook.cli.errors import fail, warn

__all__ = [
    "MAX_DURATION_S",
    "MAX_RATE",
    "MAX_SIZE",
    "deprecated_rate_mbps",
    "option",
    "parse_backend_spec",
    "parse_cache_size",
    "parse_duration",
    "parse_port",
    "parse_rate",
    "parse_size",
]

T = TypeVar("T")

_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
    "t": 10**12, "tb": 10**12, "p": 10**15, "pb": 10**15,
    "ki": 2**10, "kib": 2**10, "mi": 2**20, "mib": 2**20, "gi": 2**30, "gib": 2**30,
    "ti": 2**40, "tib": 2**40, "pi": 2**50, "pib": 2**50,
}  # fmt: skip
_TIME_UNITS = {"ms": 1e-3, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_NUMBER_UNIT = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*([a-zA-Z]*)\s*$")

#: Largest size any flag accepts: 2**63 - 1 bytes (TF keeps sizes in signed 64-bit integers).
MAX_SIZE = 2**63 - 1
#: Largest rate any flag accepts: 1 TiB/s (no network or disk here comes near).
MAX_RATE = float(2**40)
#: Longest duration any flag accepts: 30 days.
MAX_DURATION_S = 30 * 86400.0


def _number_and_unit(text: str, what: str, examples: str) -> tuple[Fraction, str]:
    """The exact number and the lower-cased unit of ``'<number><unit>'``; no inf/nan/negatives."""
    m = _NUMBER_UNIT.match(str(text))
    if not m:
        raise ValueError(f"cannot read {text!r} as a {what} (examples: {examples})")
    number = Fraction(m.group(1))  # exact: 2**63 - 1 bytes must not round up past the bound
    if number < 0:
        raise ValueError(f"{what} must not be negative, got {text!r}")
    return number, m.group(2).lower()


def parse_size(
    text: str | int, *, allow_zero: bool = True, minimum: int = 0, maximum: int = MAX_SIZE
) -> int:
    """``'2GiB'`` → 2147483648; ``'512MiB'``, ``'1.5GB'``, ``'4096'`` (bytes).

    The result is an integer in ``[max(minimum, 0 or 1), maximum]``; fractional bytes round down.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    examples = "64MiB, 2GiB, 1.5GB, 4096"
    number, unit = _number_and_unit(str(text), "size", examples)
    if unit not in _SIZE_UNITS:
        raise ValueError(
            f"unknown size unit {unit!r} in {text!r} (use B, KiB, MiB, GiB, TiB, kB, MB, GB, TB)"
        )
    value = number * _SIZE_UNITS[unit]
    if value > maximum:
        raise ValueError(f"size {text!r} is larger than the maximum {maximum:,} bytes")
    size = int(value)
    low = max(minimum, 0 if allow_zero else 1)
    if size < low:
        raise ValueError(f"size {text!r} must be at least {low:,} bytes")
    return size


#: decimal size units: refused for TF cache sizes, which TF counts in MiB
_DECIMAL_UNITS = {"k": "KiB", "kb": "KiB", "m": "MiB", "mb": "MiB", "g": "GiB", "gb": "GiB",
                  "t": "TiB", "tb": "TiB", "p": "PiB", "pb": "PiB"}  # fmt: skip


def parse_cache_size(text: str | int, **kw: int) -> int:
    """A TF block-cache size (block size, max bytes): :func:`parse_size` in binary units or
    plain bytes. A decimal unit (``8M``, ``8MB``) is refused with a hint, never taken as
    8,000,000 bytes: TF's own ``GCS_READ_CACHE_*_MB`` variables count MiB."""
    m = _NUMBER_UNIT.match(str(text))
    if m and m.group(2).lower() in _DECIMAL_UNITS:
        binary = _DECIMAL_UNITS[m.group(2).lower()]
        raise ValueError(
            f"TF cache sizes are binary: did you mean {m.group(1)}{binary}? ({text!r} would be "
            "decimal; write plain bytes for an exact count)"
        )
    return parse_size(text, **kw)


def parse_rate(text: str, *, maximum: float = MAX_RATE) -> float | None:
    """``'64MiB/s'`` → 67108864.0 bytes/s; ``'100MB/s'``; ``'0'``, ``'none'``, ``'unlimited'`` → None.

    A unit is required for a non-zero rate (``'64MiB/s'``, also ``'64MiBps'``), so MB vs MiB is
    never guessed. The result is ``None`` (no limit) or a finite rate in ``(0, maximum]``.
    """
    raw = str(text).strip()
    if raw.lower() in ("0", "none", "unlimited", "off"):
        return None
    body = raw
    for suffix in ("/s", "ps"):
        if body.lower().endswith(suffix):
            body = body[: -len(suffix)]
            break
    else:
        raise ValueError(
            f"cannot read {text!r} as a rate (examples: 64MiB/s, 100MB/s, 0 = no limit)"
        )
    number, unit = _number_and_unit(body, "rate", "64MiB/s, 100MB/s")
    if unit in ("", "b") and number != 0:
        raise ValueError(f"rate {text!r} needs a unit (examples: 64MiB/s, 100MB/s)")
    if unit not in _SIZE_UNITS:
        raise ValueError(
            f"unknown rate unit {unit!r} in {text!r} (use KiB/s, MiB/s, GiB/s, MB/s, …)"
        )
    rate = number * _SIZE_UNITS[unit]
    if rate == 0:
        return None
    if rate > maximum:
        raise ValueError(f"rate {text!r} is larger than the maximum {maximum:,.0f} bytes/s")
    return float(rate)


def parse_duration(text: str | float, *, unit: str = "s", maximum: float = MAX_DURATION_S) -> float:
    """``'250ms'``, ``'5s'``, ``'2m'``, ``'1h'`` → seconds; a bare number is in ``unit``.

    The result is finite and in ``[0, maximum]`` seconds.
    """
    if unit not in _TIME_UNITS:
        raise ValueError(f"unknown default time unit {unit!r}")
    number, given = _number_and_unit(str(text), "duration", "250ms, 5s, 2m")
    given = given or unit
    if given not in _TIME_UNITS:
        raise ValueError(f"unknown time unit {given!r} in {text!r} (use ms, s, m, h)")
    seconds = float(number) * _TIME_UNITS[given]
    if seconds > maximum:
        raise ValueError(f"duration {text!r} is longer than the maximum {maximum:g} s")
    return seconds


def parse_port(text: str | int) -> int:
    """A TCP port: ``0`` (any free port) to ``65535``."""
    try:
        port = int(str(text).strip())
    except ValueError:
        raise ValueError(f"cannot read {text!r} as a port (0-65535; 0 = any free port)") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"must be a port 0-65535 (0 = any free port), got {port}")
    return port


def option(
    flag: str, parser: Callable[..., T], text: object, *, context: str = "", **kw: object
) -> T:
    """``parser(text, **kw)``, or the CLI's one-line error (exit 2).

    The line reads ``[<context>: ]<flag> <text>: <reason>``; ``context`` names what the flag is
    part of (``"shaping"``) when the flag alone does not say it.
    """
    try:
        return parser(text, **kw)
    except ValueError as exc:
        reason = str(exc)
        # "must ..." reasons already say what was given: the flag is their subject.
        what = f"{flag} {reason}" if reason.startswith("must ") else f"{flag} {text!r}: {reason}"
        fail(f"{context + ': ' if context else ''}{what}")
        raise  # unreachable: fail() exits


def deprecated_rate_mbps(
    value: float | None, *, replacement: str = "--bandwidth", context: str = ""
) -> float | None:
    """The deprecated ``--bandwidth-mbps N`` (MB/s = 10^6 bytes/s) as bytes/s, with a warning.

    Kept for one release; ``None``/0 means no limit. Bad numbers get the same one-line error as
    :func:`parse_rate`.
    """
    if value is None:
        return None
    if not math.isfinite(value) or value < 0:
        prefix = f"{context}: " if context else ""
        fail(f"{prefix}--bandwidth-mbps {value!r}: rate must be a finite number of MB/s >= 0")
    rate = option("--bandwidth-mbps", parse_rate, f"{value!r}MB/s", context=context)
    warn(f"--bandwidth-mbps is deprecated; use {replacement} {value:g}MB/s")
    return rate
