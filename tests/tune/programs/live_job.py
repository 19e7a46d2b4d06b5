"""A small "real job" for ``gcs-hook record`` tests: python live_job.py BUCKET.

Reads ``gs://BUCKET/a.rec`` and ``b.rec`` interleaved (two GFile readers, 700 KiB at a time),
then appends to ``log.txt`` in this process (a GFile writer flushed three times, each flush an
upload read back at once, and an append-mode write to ``a.rec``), then has ANOTHER process
overwrite ``b.rec`` (anonymous JSON-API upload, not TensorFlow's credentials) and reads
``b.rec`` again at once (stale with the cache on) and after 6 s (past TF's 5 s stat cache).
Prints one JSON line: SHA-256 of every whole-file read, in order.
"""

import hashlib
import json
import os
import subprocess
import sys
import time

import tensorflow as tf

KiB = 1024
bucket = sys.argv[1]


def gs(name: str) -> str:
    return f"gs://{bucket}/{name}"


def read_all(name: str) -> str:
    with tf.io.gfile.GFile(gs(name), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


shas = []
readers = [tf.io.gfile.GFile(gs("a.rec"), "rb"), tf.io.gfile.GFile(gs("b.rec"), "rb")]
done = [False, False]
while not all(done):
    for i, r in enumerate(readers):
        if not done[i] and not r.read(700 * KiB):
            done[i] = True
for r in readers:
    r.close()

w = tf.io.gfile.GFile(gs("log.txt"), "w")
for step in range(3):
    w.write(f"step {step} " * 40000)
    w.flush()
    shas.append(read_all("log.txt"))
w.close()
with tf.io.gfile.GFile(gs("a.rec"), "a") as f:
    f.write("tail" * 1000)
shas.append(read_all("a.rec"))

OVERWRITE = """
import os, sys, urllib.request
url = os.environ["STORAGE_EMULATOR_HOST"] + "/upload/storage/v1/b/%s/o?uploadType=media&name=b.rec"
data = bytes(range(256)) * (2 * 1024 * 1024 // 256 + 1000)
urllib.request.urlopen(urllib.request.Request(url % sys.argv[1], data=data, method="POST")).read()
"""
env = {k: v for k, v in os.environ.items() if k != "GOOGLE_AUTH_TOKEN_FOR_TESTING"}
subprocess.run([sys.executable, "-c", OVERWRITE, bucket], env=env, check=True)
shas.append(read_all("b.rec"))
time.sleep(6)
shas.append(read_all("b.rec"))
print(json.dumps(shas))
