"""Does the front's traffic shaping do what it says? Prints expected vs measured times.

Run: ``python -m benchmarks.perf.shaping [--size-mib 4] [--repeats 3]``

For several :class:`emulator.fakegcs.shaping.Shaping` settings, applied at run time to one running
front, Range GETs of ``size`` bytes go through the CONNECT/TLS path (as TensorFlow's would);
the median wall time is printed next to ``Shaping.expected_time(size)`` (the lower bound the
shaping should impose). Unshaped time is printed first so the overhead is visible. Traffic goes
only to 127.0.0.1 and is bounded by settings × repeats × size.
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import sys
import time

from emulator.fakegcs.session import GcsEmulator
from emulator.fakegcs.shaping import Shaping

BUCKET = "bench-shaping"

SETTINGS: list[tuple[str, Shaping | None]] = [
    ("none", None),
    ("latency 50 ms", Shaping(first_byte_latency_s=0.05)),
    ("overhead 20 ms + latency 30 ms", Shaping(0.03, None, 0.02)),
    ("bandwidth 50 MB/s", Shaping(bandwidth_bytes_per_s=50e6)),
    ("bandwidth 20 MB/s + latency 40 ms", Shaping(0.04, 20e6)),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    if not 1 <= args.size_mib <= 64 or not 1 <= args.repeats <= 20:
        ap.error("--size-mib must be 1..64 and --repeats 1..20")
    size = args.size_mib << 20
    with GcsEmulator() as emu:
        emu.backend.create_bucket(BUCKET)
        emu.backend.put_object(BUCKET, "o.bin", os.urandom(size))
        conn = http.client.HTTPSConnection(
            "127.0.0.1", emu.front.port, context=emu.front.client_ssl_context(), timeout=120
        )
        conn.set_tunnel("storage.googleapis.com", 443)
        headers = {"Range": f"bytes=0-{size - 1}"}
        print(f"Range GETs of {size} bytes through CONNECT/TLS, median of {args.repeats}")
        print(f"  {'shaping':36s} {'expected s':>10s} {'measured s':>10s} {'ratio':>7s}")
        for label, shaping in SETTINGS:
            emu.front.shaping = shaping  # run-time change on the running front
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                conn.request("GET", f"/{BUCKET}/o.bin", headers=headers)
                resp = conn.getresponse()
                n = len(resp.read())
                times.append(time.perf_counter() - t0)
                if n != size:
                    raise RuntimeError(f"short read: {n} bytes")
            measured = statistics.median(times)
            expected = shaping.expected_time(size) if shaping else 0.0
            ratio = f"{measured / expected:7.2f}" if expected else "      -"
            print(f"  {label:36s} {expected:10.3f} {measured:10.3f} {ratio}")
        emu.front.shaping = None
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
