"""No secret in the GraphDef, in INFO logs (TF C++ and Python), in reprs, or in files.

The hook never writes credentials to a file (they travel through a placeholder feed or an
eager tensor), so the "temp files" check is: after configuring, no file in the process's
TMPDIR or in the native-op cache holds any part of a secret.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from _support import WORKER_PREAMBLE, MiB, data

from emulator.fakegcs.oauth import make_test_credentials
from gcs_hook import native_build

pytestmark = pytest.mark.tf

LOGGING = """
import logging
logging.basicConfig(level=logging.INFO)
logging.getLogger("gcs_hook").setLevel(logging.INFO)
tf.get_logger().setLevel("INFO")
"""

GRAPH_RUN = """
creds = json.loads(creds_json)
with tf.Graph().as_default() as g:
    step = tf.compat.v1.train.get_or_create_global_step()
    inc = tf.compat.v1.assign_add(step, 1)
    hook = gcs_hook.ConfigureGcsHook(credentials=creds, block_cache=BlockCacheParams(MiB, 4 * MiB))
    with tf.compat.v1.train.MonitoredSession(hooks=[hook]) as s:
        s.run(inc)
    graph_def = g.as_graph_def().SerializeToString()
    graph_text = str(g.as_graph_def())
data_ok = read_at(path, [(0, 100)], handle="graph")[0][1]   # eager, after the hook ran
sess_graph = tf.Graph()
with sess_graph.as_default():
    sess = tf.compat.v1.Session(graph=sess_graph)
    gcs_hook.configure_gcs(sess, credentials=creds_json)
    sess_def = sess_graph.as_graph_def().SerializeToString()
    sess.close()
gcs_hook.configure_gcs(credentials=creds)   # eager
logging.getLogger("gcs_hook").info("hook repr: %r", hook)
result = dict(graph_def=graph_def, graph_text=graph_text, sess_def=sess_def, data_ok=data_ok,
              hook_repr=repr(hook), tmp=os.environ.get("TMPDIR"))
"""


def _secret_parts(creds: dict) -> list[str]:
    parts = [creds[k] for k in ("client_secret", "refresh_token", "private_key_id") if k in creds]
    if "private_key" in creds:
        parts += [line for line in creds["private_key"].splitlines() if "-----" not in line]
    return [p for p in parts if p]


@pytest.mark.parametrize("kind", ["authorized_user", "service_account"])
def test_no_secret_in_graphdef_logs_or_files(
    kind, tf_worker_factory, gcs_emulator, gcs_bucket, tmp_path
):
    creds = make_test_credentials(kind)
    gcs_emulator.token_issuer.register(creds)
    gcs_emulator.backend.put_object(gcs_bucket, "a.bin", data(1000, "a"))
    gcs_emulator.front.require_auth = True
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    worker = tf_worker_factory(
        {
            "GCS_HOOK_TEST_MODULE": f"secrets-{kind}",
            "TF_CPP_MIN_LOG_LEVEL": "0",
            "TMPDIR": str(tmpdir),
        },
        test_token=None,
        preamble=WORKER_PREAMBLE + LOGGING,
    )
    got = worker.run(
        GRAPH_RUN, creds_json=json.dumps(creds), MiB=MiB, path=f"gs://{gcs_bucket}/a.bin"
    )
    assert got["data_ok"] == "OK"  # the credentials really were applied
    assert got["tmp"] == str(tmpdir)

    secrets = _secret_parts(creds)
    assert secrets
    graph_blobs = [got["graph_def"], got["sess_def"], got["graph_text"].encode()]
    # The credentials op is in the graph, fed by a placeholder.
    assert b"GcsConfigureCredentials" in got["graph_def"] and b"Placeholder" in got["graph_def"]
    for blob in graph_blobs:
        for s in secrets:
            assert s.encode() not in blob
    assert "<redacted>" in got["hook_repr"]
    for s in secrets:
        assert s not in got["hook_repr"]

    # INFO logs of TF's C++ runtime and of Python's logging were captured and hold no secret.
    log = worker.stderr_tail(limit=10_000_000)
    assert "GCS credentials configured" in log  # C++ INFO line from the op
    assert "gcs_hook: configured GCS credentials" in log  # Python INFO line
    assert "hook repr: ConfigureGcsHook(" in log
    for s in secrets:
        assert s not in log

    # No file anywhere we could have written holds a secret.
    roots = [tmpdir, native_build.cache_root()]
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                content = Path(dirpath, name).read_bytes()
                for s in secrets:
                    assert s.encode() not in content, f"secret found in {dirpath}/{name}"
