"""What recording a real job costs: the recording settings, and the pass-through front.

Run: ``python -m benchmarks.perf.record_upstream [--size-mib 64] [--read-kib 256] [--rounds 2]``

An upstream impersonating GCS (``gcs-hook serve --tls --require-auth`` in its own process: a
fake GCS behind a direct-TLS listener with its own CA, a bearer token required) holds one
object; real TensorFlow reads it sequentially with
``GFile.read(read_kib)``. Three runs of the same reads, interleaved round by round:

- ``plain``: TF's default settings, straight at the upstream (what the job does unrecorded);
- ``recording-settings``: ``GCS_READ_CACHE_BLOCK_SIZE_MB=0`` (every ``Read`` is one GET),
  straight at the upstream;
- ``recorded``: the recording settings through the pass-through front (what
  ``gcs-hook record --upstream`` runs).

Prints GETs, bytes fetched, seconds and the TLS connections the upstream accepted (median) for
each, and the ratios: recording settings vs
plain (more, smaller requests) and pass-through vs direct (the front's own cost). Traffic goes
only to 127.0.0.1, bounded by ``rounds × 3 × size``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import tempfile
import time

from benchmarks.perf.servers import ServeProcess

BUCKET = "bench-record-up"
OBJECT = "big.bin"

READ_CODE = """
t0 = time.perf_counter()
n = 0
with tf.io.gfile.GFile(path, "rb") as f:
    while True:
        chunk = f.read(read_bytes)
        if not chunk:
            break
        n += len(chunk)
result = {"seconds": time.perf_counter() - t0, "bytes": n}
"""


def _run(env: dict[str, str], ledger_file: str, read_bytes: int) -> dict[str, float]:
    from benchmarks.record.ledger import load_ledger_jsonl
    from emulator.replay.tf_worker import TfWorker

    before = len(load_ledger_jsonl(ledger_file)) if os.path.exists(ledger_file) else 0
    with TfWorker(env) as w:
        got = w.run(READ_CODE, path=f"gs://{BUCKET}/{OBJECT}", read_bytes=read_bytes)
    time.sleep(0.3)  # the upstream's last ledger lines
    media = [r for r in load_ledger_jsonl(ledger_file)[before:] if r.kind == "media"]
    conns = len({r.conn_id for r in media})
    return {"gets": len(media), "fetched": sum(r.bytes_out for r in media), "conns": conns, **got}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--read-kib", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    from emulator.fakegcs.passthrough import PassThrough
    from emulator.fakegcs.upstream import UpstreamConfig

    size = args.size_mib << 20
    token = "bench-" + secrets.token_urlsafe(12)
    with tempfile.TemporaryDirectory(prefix="bench-record-up-") as tmp:
        os.makedirs(os.path.join(tmp, "data", BUCKET))
        with open(os.path.join(tmp, "data", BUCKET, OBJECT), "wb") as f:
            f.write(os.urandom(size))
        ledger = os.path.join(tmp, "upstream.jsonl")
        up = ServeProcess(os.path.join(tmp, "data"), "--tls", "--require-auth", "--token", token,
                          "--ledger", ledger, "--state-file", ledger + ".state")  # fmt: skip
        try:
            assert up.tls_port is not None and up.ca is not None
            cfg = UpstreamConfig(("127.0.0.1", up.tls_port), up.ca)
            with PassThrough(cfg) as pt:
                base = {"GOOGLE_AUTH_TOKEN_FOR_TESTING": token, "NO_GCE_CHECK": "true"}
                rec = {"GCS_READ_CACHE_BLOCK_SIZE_MB": "0", "GCS_READ_CACHE_MAX_SIZE_MB": "0"}
                runs = {
                    "plain": {**up.env, **base},
                    "recording-settings": {**up.env, **base, **rec},
                    # what record --upstream runs: TF trusting only the per-run CA
                    "recorded": {**pt.env(), **base, **rec},
                    # record --curl-ca bundle: the system CAs too, i.e. what they cost
                    # (libcurl loads its bundle for every connection)
                    "recorded-bundle": {**pt.env(curl_per_run_ca=False), **base, **rec},
                }
                results: dict[str, list[dict[str, float]]] = {k: [] for k in runs}
                for _ in range(args.rounds):
                    for name, env in runs.items():
                        results[name].append(_run(env, ledger, args.read_kib << 10))
        finally:
            up.close()
    print(f"sequential read of {args.size_mib} MiB in {args.read_kib} KiB GFile.read calls, "
          f"{args.rounds} rounds (median):")  # fmt: skip
    med = {}
    for name, rs in results.items():
        assert all(r["bytes"] == size for r in rs), "TF read the wrong number of bytes"
        med[name] = {
            k: statistics.median(r[k] for r in rs) for k in ("gets", "fetched", "seconds", "conns")
        }
        m = med[name]
        print(f"  {name:<19} {m['gets']:>6.0f} GETs  {m['fetched'] / 2**20:>8.1f} MiB fetched  "
              f"{m['seconds']:>7.3f} s  {m['conns']:>4.0f} connections at the upstream")  # fmt: skip
    p, r, d = med["plain"], med["recording-settings"], med["recorded"]
    print(f"recording settings vs plain: {r['gets'] / max(p['gets'], 1):.1f}x GETs, "
          f"{r['seconds'] / p['seconds']:.2f}x time")  # fmt: skip
    print(f"pass-through vs direct (same settings): {d['seconds'] / r['seconds']:.2f}x time, "
          f"{d['gets'] / max(r['gets'], 1):.2f}x GETs")  # fmt: skip


if __name__ == "__main__":
    main()
