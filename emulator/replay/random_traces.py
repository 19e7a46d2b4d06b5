"""Random but valid traces for differential testing of the model against real TensorFlow.

The same seed gives the same trace; see :func:`random_trace` for the edges it aims at.
"""

from __future__ import annotations

import itertools
from typing import Any

from emulator.replay.loading import load_replay_trace

__all__ = ["random_trace"]


def random_trace(
    seed: int, *, max_ops: int = 24, timed: bool = False, faults: bool = False
) -> dict[str, Any]:
    """A random but valid trace for differential testing; the same seed gives the same trace.

    It aims at edges: block sizes that are not powers of two, ``max_bytes`` below, at and just
    above multiples of the block size (or 0 = cache off), object sizes at/around block
    multiples (and 0), reads at block edges, at/past EOF, ``n`` = 0 and ``n`` > ``max_bytes``,
    overwrites that shrink or grow, deletes, reconfiguration, stats, several handles and files.
    Untimed (default): no ``sleep`` ops, stat cache max age 0 or the default, so such traces
    need at most two TF processes per buffer size. ``timed=True``: also ``max_staleness`` 1-2 s,
    stat cache max age 1-2 s and whole-second ``sleep`` ops (see :mod:`emulator.replay.tf_replayer`
    on time), a few seconds of wall time per trace in the TF engine. ``faults=True``: also 1-3
    injected HTTP errors (see :func:`emulator.replay.loading.validate_faults`) on media or
    metadata requests.
    """
    import random

    rng = random.Random(seed)
    block = rng.choice([4096, 10000, 32768, 65536])
    max_bytes = rng.choice([0, block - 1, block, 2 * block + block // 2, 3 * block, 8 * block])

    def size() -> int:
        k = rng.randint(0, 5)
        return max(0, rng.choice([k * block, k * block + rng.randint(1, block - 1), k * block - 1]))

    names = [f"fz/o{i}.bin" for i in range(rng.randint(1, 3))]
    objects = {name: size() for name in names}
    staleness = rng.choice([0, 1, 2]) if timed else 0
    config = {"block_size": block, "max_bytes": max_bytes, "max_staleness": staleness}
    ops: list[dict[str, Any]] = []
    open_handles: dict[str, str] = {}
    sizes = dict(objects)
    counter = itertools.count()
    slept = 0.0
    for _ in range(rng.randint(4, max_ops)):
        if timed and slept < 4 and rng.random() < 0.12:
            seconds = rng.choice([0.5, 1.0, 1.0, 1.5, 2.0])
            slept += seconds
            ops.append({"op": "sleep", "seconds": seconds})
            continue
        roll = rng.random()
        if not open_handles or roll < 0.12:
            handle = f"h{next(counter)}"
            name = rng.choice([*names, "fz/missing.bin"] if rng.random() < 0.1 else names)
            open_handles[handle] = name
            ops.append({"op": "open", "handle": handle, "object": name})
        elif roll < 0.78:
            handle = rng.choice(sorted(open_handles))
            known = sizes.get(open_handles[handle]) or 0
            edge = rng.randint(0, max(1, known // block + 1)) * block
            offset = max(
                0,
                rng.choice(
                    [
                        edge,
                        edge - 1,
                        edge + 1,
                        rng.randint(0, known + block),
                        known,
                        known - 1,
                        known + rng.randint(1, 2 * block),
                    ]
                ),
            )
            n = rng.choice(
                [0, 1, 10, block - 1, block, block + 1, rng.randint(1, 3 * block), max_bytes + 1]
            )
            ops.append({"op": "read", "handle": handle, "offset": offset, "n": max(0, n)})
        elif roll < 0.86:
            name = rng.choice(names)
            sizes[name] = size()
            ops.append({"op": "overwrite", "object": name, "size": sizes[name]})
        elif roll < 0.89:
            name = rng.choice(names)
            sizes.pop(name, None)
            ops.append({"op": "delete", "object": name})
        elif roll < 0.93:
            new_block = rng.choice([block, block // 2, 4096])
            ops.append(
                {
                    "op": "configure",
                    "config": {
                        "block_size": new_block,
                        "max_bytes": rng.choice([0, new_block, 3 * new_block, max_bytes]),
                        "max_staleness": rng.choice([0, staleness]) if timed else 0,
                    },
                }
            )
        elif roll < 0.96:
            ops.append({"op": "stat", "object": rng.choice(names)})

        else:
            handle = rng.choice(sorted(open_handles))
            del open_handles[handle]
            ops.append({"op": "close", "handle": handle})
    trace = {
        "comment": f"random_trace({seed})",
        "config": config,
        "objects": objects,
        "ops": ops,
    }
    if timed:
        trace["stat_cache_max_age"] = rng.choice([1, 2, 5])
    elif rng.random() < 0.4:
        trace["stat_cache_max_age"] = 0
    if faults:
        trace["faults"] = [
            {
                "status": rng.choice([503, 503, 500, 429, 404, 403, 410, 400]),
                "kind": rng.choice(["media", "media", "metadata"]),
                "object": rng.choice(names),
                "times": rng.choice([1, 1, 2, 3, 11]),
            }
            for _ in range(rng.randint(1, 3))
        ]
    return load_replay_trace(trace)
