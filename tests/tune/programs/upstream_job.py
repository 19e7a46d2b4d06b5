"""A small "real job" for pass-through recording tests:
python upstream_job.py BUCKET [--python-token | --fetch-token].

With ``--python-token`` it first gets an access token the way google-auth does (a JWT signed
with the service account in ``GOOGLE_APPLICATION_CREDENTIALS``, POSTed to
``https://oauth2.googleapis.com/token`` through ``https_proxy``) and hands it to TensorFlow
(``GOOGLE_AUTH_TOKEN_FOR_TESTING``). ``--fetch-token`` fetches it the same way but keeps it;
then, as without either, TensorFlow gets its own token (its service account flow, or the test
token of the fake mode).

Then TensorFlow reads ``a.bin`` whole, three ranges of ``b.bin``, stats ``c.bin``, writes
``out.bin`` and reads it back. Prints one JSON line: SHA-256 prefixes of what it read, and
``c.bin``'s size.
"""

import hashlib
import json
import os
import sys
import time
import urllib.parse
import urllib.request


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


bucket = sys.argv[1]
if "--python-token" in sys.argv or "--fetch-token" in sys.argv:
    import jwt

    with open(os.environ["GOOGLE_APPLICATION_CREDENTIALS"]) as fh:
        sa = json.load(fh)
    now = int(time.time())
    claims = {
        "iss": sa["client_email"],
        "scope": "https://www.googleapis.com/auth/devstorage.read_write",
        "aud": "https://oauth2.googleapis.com/token",
        "iat": now,
        "exp": now + 3600,
    }
    assertion = jwt.encode(claims, sa["private_key"], algorithm="RS256")
    body = urllib.parse.urlencode(
        {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
    ).encode()
    with urllib.request.urlopen("https://oauth2.googleapis.com/token", data=body, timeout=60) as r:
        token = json.load(r)["access_token"]
    if "--python-token" in sys.argv:
        os.environ["GOOGLE_AUTH_TOKEN_FOR_TESTING"] = token

import tensorflow as tf  # noqa: E402 - after the token, as a job would


def gs(name: str) -> str:
    return f"gs://{bucket}/{name}"


out = {}
with tf.io.gfile.GFile(gs("a.bin"), "rb") as f:
    out["a"] = sha(f.read())
f = tf.io.gfile.GFile(gs("b.bin"), "rb")
parts = []
for offset in (1_000_000, 10, 2_500_000):
    f.seek(offset)
    parts.append(f.read(100_000))
f.close()
out["b"] = sha(b"".join(parts))
out["c_size"] = tf.io.gfile.stat(gs("c.bin")).length
with tf.io.gfile.GFile(gs("out.bin"), "wb") as w:
    w.write(b"x" * 700_000)
with tf.io.gfile.GFile(gs("out.bin"), "rb") as f:
    out["out"] = sha(f.read())
print(json.dumps(out))
