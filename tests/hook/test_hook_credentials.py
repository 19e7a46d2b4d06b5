"""The credentials side of the hook, against real TF 2.21, the front and its fake OAuth endpoint.

For both credential types: anonymous (401) before, one token request at configure time, every
storage request carries that bearer, a fresh token after expiry, and a rejected configuration
leaves the previous provider in place.
"""

from __future__ import annotations

import json
import time

import pytest
from _support import WORKER_PREAMBLE, data, sha

from emulator.fakegcs.oauth import make_test_credentials

pytestmark = pytest.mark.tf

KINDS = ("authorized_user", "service_account")
TOKEN_PATH = {"authorized_user": "/oauth2/v3/token", "service_account": "/oauth2/v4/token"}


def _worker(tf_worker_factory, kind):
    # No GOOGLE_AUTH_TOKEN_FOR_TESTING: TF starts anonymous, as on a machine without credentials.
    return tf_worker_factory(
        {"GCS_HOOK_TEST_MODULE": f"credentials-{kind}"}, test_token=None, preamble=WORKER_PREAMBLE
    )


@pytest.mark.parametrize("kind", KINDS)
def test_auth_before_after_and_refresh(
    kind, tf_worker_factory, gcs_emulator, gcs_bucket, gcs_ledger
):
    issuer = gcs_emulator.token_issuer
    creds = make_test_credentials(kind)
    principal = issuer.register(creds)
    for name in ("a", "b", "c"):
        gcs_emulator.backend.put_object(gcs_bucket, f"{name}.bin", data(1000, name))
    gcs_emulator.front.require_auth = True
    worker = _worker(tf_worker_factory, kind)

    # Before: no credentials, so TF's requests are anonymous and the front refuses them.
    mark = gcs_ledger.mark()
    got = worker.run("result = read_at(p, [(0, 10)])", p=f"gs://{gcs_bucket}/a.bin")
    assert got[0][:2] == [0, "PERMISSION_DENIED"]
    before = gcs_ledger.since(mark, bucket=gcs_bucket)
    assert before and all(r.principal == "anonymous" and r.status == 401 for r in before)

    # Configure: exactly one token request, to the flow's endpoint.
    issuer.expires_in = 3600
    mark = gcs_ledger.mark()
    worker.run("gcs_hook.configure_gcs(credentials=c)", c=json.dumps(creds))
    gcs_ledger.wait_quiet(quiet_s=0.05, timeout=5)
    tokens = gcs_ledger.since(mark, kind="token")
    assert [(r.path.split("?")[0], r.status, r.principal) for r in tokens] == [
        (TOKEN_PATH[kind], 200, principal)
    ]
    assert issuer.count(principal) == 1

    # After: every storage request carries that bearer; no further token requests.
    mark = gcs_ledger.mark()
    got = worker.run(
        "result = [read_at(p, [(0, 1000)]), read_at(q, [(0, 1000)])]",
        p=f"gs://{gcs_bucket}/a.bin",
        q=f"gs://{gcs_bucket}/b.bin",
    )
    assert got == [[[1000, "OK", sha(data(1000, "a"))]], [[1000, "OK", sha(data(1000, "b"))]]]
    gcs_ledger.wait_quiet(quiet_s=0.05, timeout=5)
    after = gcs_ledger.since(mark)
    assert {r.kind for r in after} >= {"media"}
    assert all(r.principal == principal and r.status < 300 for r in after)
    assert issuer.count(principal) == 1

    # Expiry: with 61 s tokens the provider (60 s margin) must fetch a new one after ~1 s.
    issuer.expires_in = 61
    worker.run("gcs_hook.configure_gcs(credentials=c)", c=json.dumps(creds))
    assert issuer.count(principal) == 2
    time.sleep(2.5)
    mark = gcs_ledger.mark()
    got = worker.run("result = read_at(p, [(0, 1000)])", p=f"gs://{gcs_bucket}/c.bin")
    assert got == [[1000, "OK", sha(data(1000, "c"))]]
    gcs_ledger.wait_quiet(quiet_s=0.05, timeout=5)
    refreshed = gcs_ledger.since(mark)
    assert [r.kind for r in refreshed][0] == "token"
    assert issuer.count(principal) == 3
    assert all(r.principal == principal for r in refreshed)
    issuer.expires_in = 3600


@pytest.mark.parametrize("kind", KINDS)
def test_rejected_credentials_keep_previous_provider(
    kind, tf_worker_factory, gcs_emulator, gcs_bucket, gcs_ledger
):
    issuer = gcs_emulator.token_issuer
    good = make_test_credentials(kind)
    principal = issuer.register(good)
    unknown = make_test_credentials(kind)  # never registered: the token endpoint refuses it
    gcs_emulator.backend.put_object(gcs_bucket, "x.bin", data(500, "x"))
    gcs_emulator.front.require_auth = True
    worker = _worker(tf_worker_factory, kind)
    worker.run("gcs_hook.configure_gcs(credentials=c)", c=json.dumps(good))

    got = worker.run(
        """
try:
    gcs_hook.configure_gcs(credentials=c)
    result = None
except tf.errors.OpError as e:
    result = [type(e).__name__, e.message]
""",
        c=json.dumps(unknown),
    )
    assert got is not None, "configuring unknown credentials must fail"
    assert "Could not retrieve a token" in got[1]
    for secret in [
        unknown.get("client_secret"),
        unknown.get("refresh_token"),
        unknown.get("private_key_id"),
    ]:
        if secret:
            assert secret not in got[1]

    mark = gcs_ledger.mark()
    got = worker.run("result = read_at(p, [(0, 500)])", p=f"gs://{gcs_bucket}/x.bin")
    assert got == [[500, "OK", sha(data(500, "x"))]]
    gcs_ledger.wait_quiet(quiet_s=0.05, timeout=5)
    assert {r.principal for r in gcs_ledger.since(mark, bucket=gcs_bucket)} == {principal}


def test_configure_colab_session_reads_the_adc_file(
    tf_worker_factory, gcs_emulator, gcs_bucket, gcs_ledger, tmp_path
):
    issuer = gcs_emulator.token_issuer
    creds = make_test_credentials("authorized_user")
    principal = issuer.register(creds)
    adc = tmp_path / "adc.json"
    adc.write_text(json.dumps(creds))
    adc.chmod(0o600)
    gcs_emulator.backend.put_object(gcs_bucket, "y.bin", data(300, "y"))
    gcs_emulator.front.require_auth = True
    worker = tf_worker_factory(
        {"GCS_HOOK_TEST_MODULE": "credentials-colab"}, test_token=None, preamble=WORKER_PREAMBLE
    )
    got = worker.run(
        """
g = tf.Graph()
with g.as_default():
    sess = tf.compat.v1.Session(graph=g)
    gcs_hook.configure_colab_session(sess, credentials_path=adc)
    sess.close()
try:
    gcs_hook.configure_colab_session(credentials_path=adc + ".missing")
    missing = None
except FileNotFoundError as e:
    missing = type(e).__name__
result = [read_at(p, [(0, 300)]), missing]
""",
        adc=str(adc),
        p=f"gs://{gcs_bucket}/y.bin",
    )
    assert got == [[[300, "OK", sha(data(300, "y"))]], "FileNotFoundError"]
    assert issuer.count(principal) == 1
    gcs_ledger.wait_quiet(quiet_s=0.05, timeout=5)
    assert {r.principal for r in gcs_ledger.records(bucket=gcs_bucket)} == {principal}
