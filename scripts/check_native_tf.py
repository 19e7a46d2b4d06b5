"""Check gcs-hook's native ops against another TensorFlow version, for real.

Usage (the TF under test lives in a throw-away virtualenv OUTSIDE the repo)::

    python3 -m venv /tmp/venv-tf216
    /tmp/venv-tf216/bin/pip install 'tensorflow-cpu==2.16.*' filelock numpy
    /tmp/venv-tf216/bin/pip install --no-deps -e .
    python scripts/check_native_tf.py /tmp/venv-tf216/bin/python     # from the system Python

The system Python (which has the emulator's dependencies) runs a fake GCS + front; the given
interpreter runs the TF side with the front's ``tf_env()``. Checks, in that TF process:

1. the ops build (into ``--cache-dir``, a fresh temp dir by default) and load;
2. ``GcsBlockCacheParams`` reads back TF's defaults ``[64 MiB, 0, 0]``;
3. ``GcsConfigureBlockCache`` changes them, identical values skip (cached blocks kept, no
   request), different values start a fresh cache;
4. the random-access ops read a local file (plain path and ``file://``), byte-exact, with
   ``OUT_OF_RANGE`` and the partial tail at EOF;
5. gs:// reads through the front: cache off = one 64 MiB buffered GET; cache on = aligned block
   GETs; a missing object = ``NOT_FOUND``;
6. ``GcsConfigureCredentials``, authorized_user then service_account (JWT signed by TF): one
   token request each, to the flow's endpoint; later requests carry that token;
7. the public API on top: ``configure_gcs`` eagerly and in a ``tf.compat.v1.Session`` (with a
   device), ``ConfigureGcsHook`` in a ``MonitoredSession``, ``ConfigureGcsCallback`` in
   ``Model.fit``, each read back with ``current_block_cache``.

Exit status 0 only if every check passed. Nothing here touches the repo's files.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

# emulator.replay.trace is stdlib-only, so the TF side (another venv with this repo installed) has it too
from emulator.replay.trace import digest_chain
from emulator.replay.trace import sha256_hex as _sha

MiB = 1 << 20
BUCKET = "native-tf-check"
TF_SIDE_TIMEOUT_S = 600


def _data(n: int, seed: str) -> bytes:
    """The tests' content (tests/_support.data): the digest chain of ``seed``."""
    return digest_chain(seed, n)


def tf_side(bucket: str, workdir: str) -> dict:
    """Runs in the interpreter under test; returns what it observed (no judgement here)."""
    import tensorflow as tf

    from gcs_hook import native_ops

    m = native_ops.load()
    out: dict = {"tf": tf.__version__, "library": native_ops.library_path()}

    def read(path: str, reads: list[tuple[int, int]]) -> list[list]:
        m.gcs_random_access_open("h", path)
        res = []
        for off, n in reads:
            d, c, _ = m.gcs_random_access_read("h", off, n)
            d = d.numpy()
            res.append([len(d), c.numpy().decode(), _sha(d)])
        m.gcs_random_access_close("h")
        return res

    local = os.path.join(workdir, "local.bin")
    with open(local, "wb") as f:
        f.write(_data(100_000, "local"))
    out["local"] = [read(p, [(1000, 5000), (99_990, 100)]) for p in (local, "file://" + local)]
    try:
        m.gcs_random_access_read("no-such-handle", 0, 1)
        out["unknown_handle"] = "no error"
    except tf.errors.NotFoundError:
        out["unknown_handle"] = "NotFoundError"

    out["defaults"] = m.gcs_block_cache_params().numpy().tolist()
    out["off"] = read(f"gs://{bucket}/off.bin", [(0, 1000), (1536 * 1024, 1000)])
    m.gcs_configure_block_cache(8 * MiB, 1 * MiB, 0)
    out["configured"] = m.gcs_block_cache_params().numpy().tolist()
    out["on1"] = read(f"gs://{bucket}/on.bin", [(100, 10), (2 * MiB + 5, 10)])
    m.gcs_configure_block_cache(8 * MiB, 1 * MiB, 0)  # identical: skip, keep blocks
    out["on2"] = read(f"gs://{bucket}/on.bin", [(100, 10)])
    m.gcs_configure_block_cache(8 * MiB, 2 * MiB, 0)  # different: a fresh, empty cache
    out["reconfigured"] = m.gcs_block_cache_params().numpy().tolist()
    out["on3"] = read(f"gs://{bucket}/on.bin", [(100, 10)])
    out["missing"] = read(f"gs://{bucket}/missing.bin", [(0, 10)])
    with open(os.path.join(workdir, "authorized_user.json")) as f:
        m.gcs_configure_credentials(f.read())
    out["auth"] = read(f"gs://{bucket}/auth.bin", [(0, 1000)])
    with tf.io.gfile.GFile(f"gs://{bucket}/auth.bin", "rb") as f:
        out["gfile_sha"] = _sha(f.read())
    with open(os.path.join(workdir, "service_account.json")) as f:
        m.gcs_configure_credentials(f.read())
    out["auth_sa"] = read(f"gs://{bucket}/auth-sa.bin", [(0, 1000)])
    out["api"] = _public_api(tf)
    return out


def _public_api(tf) -> dict:
    """The hook API (not just the ops) on this TF: each entry point, read back."""
    import numpy as np

    import gcs_hook
    from gcs_hook import BlockCacheParams
    from gcs_hook.hook import current_block_cache

    got = {}
    gcs_hook.configure_gcs(block_cache=BlockCacheParams(MiB, 2 * MiB, 1))
    got["eager"] = list(current_block_cache())
    g = tf.Graph()
    with g.as_default():
        sess = tf.compat.v1.Session(graph=g)
        params = BlockCacheParams(2 * MiB, 8 * MiB)
        gcs_hook.configure_gcs(sess, block_cache=params, device="/device:CPU:0")
        got["session"] = list(current_block_cache(sess))
        sess.close()
    with tf.Graph().as_default():
        inc = tf.compat.v1.assign_add(tf.compat.v1.train.get_or_create_global_step(), 1)
        hook = gcs_hook.ConfigureGcsHook(block_cache=BlockCacheParams(4 * MiB, 16 * MiB, 2))
        with tf.compat.v1.train.MonitoredSession(hooks=[hook]) as s:
            s.run(inc)
            got["hook"] = list(current_block_cache())
    model = tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    callback = gcs_hook.ConfigureGcsCallback(block_cache=BlockCacheParams(3 * MiB, 6 * MiB))
    model.fit(np.zeros((4, 2)), np.zeros((4, 1)), epochs=1, verbose=0, callbacks=[callback])
    got["keras"] = list(current_block_cache())
    return got


def drive(python: str, cache_dir: str | None) -> int:
    """Runs in the system Python: emulator up, TF side run, ledger judged; returns exit status."""
    from emulator.fakegcs.oauth import make_test_credentials
    from emulator.fakegcs.session import GcsEmulator

    objs = {
        "off.bin": _data(3 * MiB, "off"),
        "on.bin": _data(3 * MiB, "on"),
        "auth.bin": _data(1000, "auth"),
        "auth-sa.bin": _data(1000, "auth-sa"),
    }
    local = _data(100_000, "local")
    with GcsEmulator() as emu, tempfile.TemporaryDirectory(prefix="native-tf-check-") as tmp:
        emu.backend.create_bucket(BUCKET)
        for name, body in objs.items():
            emu.backend.put_object(BUCKET, name, body)
        principals = {}
        for kind in ("authorized_user", "service_account"):
            creds = make_test_credentials(kind)
            principals[kind] = emu.token_issuer.register(creds)
            fd = os.open(
                os.path.join(tmp, f"{kind}.json"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600
            )
            with os.fdopen(fd, "w") as f:
                json.dump(creds, f)
        principal = principals["authorized_user"]
        env = dict(os.environ, **emu.tf_env(), TF_CPP_MIN_LOG_LEVEL="1")
        env["GCS_HOOK_CACHE_DIR"] = cache_dir or os.path.join(tmp, "ops-cache")
        proc = subprocess.run(
            [python, os.path.abspath(__file__), "--tf-side", BUCKET, tmp],
            env=env,
            capture_output=True,
            text=True,
            timeout=TF_SIDE_TIMEOUT_S,
            cwd=tmp,
        )
        lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if proc.returncode or not lines:
            print(proc.stdout[-3000:], proc.stderr[-6000:], sep="\n")
            print(f"FAIL the TF side exited {proc.returncode} without a result")
            return 1
        r = json.loads(lines[-1][len("RESULT ") :])
        emu.ledger.wait_quiet(quiet_s=0.1, timeout=5)
        recs = emu.ledger.records(bucket=BUCKET)
        tokens = [(t.path.split("?")[0], t.principal) for t in emu.ledger.records(kind="token")]

    def media(obj: str) -> list:
        return [
            tuple(x.range) if x.range else None
            for x in recs
            if x.kind == "media" and x.object == obj
        ]

    on = objs["on.bin"]
    local_expected = [[5000, "OK", _sha(local[1000:6000])], [10, "OUT_OF_RANGE", _sha(local[-10:])]]
    auth_recs = [x for x in recs if x.object == "auth.bin"]
    sa_recs = [x for x in recs if x.object == "auth-sa.bin"]
    checks = {
        "ops build and load": bool(r.get("library")),
        "local file reads (plain path and file://), EOF tail": r["local"] == [local_expected] * 2,
        "unknown handle -> NotFoundError": r["unknown_handle"] == "NotFoundError",
        "defaults == [64 MiB, 0, 0]": r["defaults"] == [64 * MiB, 0, 0],
        "cache off: byte-exact": r["off"]
        == [
            [1000, "OK", _sha(objs["off.bin"][:1000])],
            [1000, "OK", _sha(objs["off.bin"][1536 * 1024 : 1536 * 1024 + 1000])],
        ],
        "cache off: one 64 MiB buffered GET": media("off.bin") == [(0, 64 * MiB - 1)],
        "configured == [1 MiB, 8 MiB, 0]": r["configured"] == [MiB, 8 * MiB, 0],
        "cache on: byte-exact": [x[2] for x in r["on1"] + r["on2"] + r["on3"]]
        == [_sha(on[100:110]), _sha(on[2 * MiB + 5 : 2 * MiB + 15])] + [_sha(on[100:110])] * 2,
        "reconfigured == [2 MiB, 8 MiB, 0]": r["reconfigured"] == [2 * MiB, 8 * MiB, 0],
        "aligned 1 MiB blocks; identical params skip; new params = fresh 2 MiB cache": media(
            "on.bin"
        )
        == [(0, MiB - 1), (2 * MiB, 3 * MiB - 1), (0, 2 * MiB - 1)],
        "missing object -> NOT_FOUND": r["missing"][0][1] == "NOT_FOUND",
        "credentials: one token request per configure, right flow": tokens
        == [
            ("/oauth2/v3/token", principal),
            ("/oauth2/v4/token", principals["service_account"]),
        ],
        "credentials: later requests carry the configured token": bool(auth_recs)
        and all(x.principal == principal for x in auth_recs),
        "credentials: reads byte-exact (op and GFile)": r["auth"]
        == [[1000, "OK", _sha(objs["auth.bin"])]]
        and r["gfile_sha"] == _sha(objs["auth.bin"]),
        "service account: JWT flow token carried, bytes exact": r["auth_sa"]
        == [[1000, "OK", _sha(objs["auth-sa.bin"])]]
        and bool(sa_recs)
        and all(x.principal == principals["service_account"] for x in sa_recs),
        "API: configure_gcs eager / Session+device, ConfigureGcsHook, Keras callback": r["api"]
        == {
            "eager": [MiB, 2 * MiB, 1],
            "session": [2 * MiB, 8 * MiB, 0],
            "hook": [4 * MiB, 16 * MiB, 2],
            "keras": [3 * MiB, 6 * MiB, 0],
        },
    }
    print(f"TensorFlow {r['tf']} ({python}); library {r['library']}")
    for x in recs:
        print(f"  #{x.seq} {x.method} {x.kind} {x.object} {x.range} {x.status} {x.principal}")
    for name, ok in checks.items():
        print("PASS" if ok else "FAIL", name)
    passed = sum(checks.values())
    print(f"{passed}/{len(checks)} checks passed for TensorFlow {r['tf']}")
    return 0 if passed == len(checks) else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--tf-side"]:
        bucket, workdir = argv[1:3]
        print("RESULT " + json.dumps(tf_side(bucket, workdir)), flush=True)
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("python", help="interpreter whose TensorFlow is checked (e.g. a venv's)")
    ap.add_argument("--cache-dir", help="GCS_HOOK_CACHE_DIR for the build (default: a temp dir)")
    args = ap.parse_args(argv)
    return drive(args.python, args.cache_dir)


if __name__ == "__main__":
    sys.exit(main())
