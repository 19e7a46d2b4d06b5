"""Bad input: every row gives its documented error and changes nothing in TF's configuration.

"Nothing changed" is checked in the TF process after each row: the block cache read back with
GcsBlockCacheParams is the one configured before, and storage requests still carry the bearer
of the credentials configured before (the front requires auth; no new token was requested).
"""

from __future__ import annotations

import json

import pytest
from _support import WORKER_PREAMBLE, MiB, data

from emulator.fakegcs.oauth import make_test_credentials

pytestmark = pytest.mark.tf

ROWS = r"""
user = json.loads(user_json)
unknown = json.loads(unknown_json)
text = json.dumps(user)
no_secret = {k: v for k, v in user.items() if k != "client_secret"}
good_cache = BlockCacheParams(2 * MiB, 8 * MiB)
rows = [
    # (name, callable, expected exception type, message fragment)
    ("malformed JSON", lambda: gcs_hook.configure_gcs(credentials=text[:-3]),
        "ValueError", "not a well formed JSON string"),
    ("JSON list", lambda: gcs_hook.configure_gcs(credentials=json.dumps([user])),
        "ValueError", "must be a JSON object"),
    ("python list", lambda: gcs_hook.configure_gcs(credentials=[user]),
        "ValueError", "unknown type (list)"),
    ("bytes", lambda: gcs_hook.configure_gcs(credentials=text.encode()),
        "ValueError", "unknown type (bytes)"),
    ("neither refresh_token nor private_key", lambda: gcs_hook.configure_gcs(credentials={"a": "b"}),
        "ValueError", 'neither a "refresh_token" nor a "private_key"'),
    ("missing client_secret", lambda: gcs_hook.configure_gcs(credentials=no_secret),
        "ValueError", "client_secret"),
    ("hook: malformed JSON", lambda: gcs_hook.ConfigureGcsHook(credentials="{"),
        "ValueError", "not a well formed JSON string"),
    ("callback: bytes", lambda: gcs_hook.ConfigureGcsCallback(credentials=b"{}"),
        "ValueError", "unknown type (bytes)"),
    ("block_cache dict", lambda: gcs_hook.configure_gcs(block_cache={"block_size": MiB}),
        "ValueError", "block_cache must be an instance of BlockCacheParams"),
    ("block_cache tuple (hook)", lambda: gcs_hook.ConfigureGcsHook(block_cache=(MiB, 4 * MiB, 0)),
        "ValueError", "block_cache must be an instance of BlockCacheParams"),
    ("block_cache int (callback)", lambda: gcs_hook.ConfigureGcsCallback(block_cache=5),
        "ValueError", "block_cache must be an instance of BlockCacheParams"),
    ("negative block_size", lambda: gcs_hook.configure_gcs(block_cache=BlockCacheParams(-1)),
        "ValueError", "must not be negative"),
    ("zero max_bytes", lambda: gcs_hook.configure_gcs(block_cache=BlockCacheParams(MiB, 0)),
        "ValueError", "must be positive"),
    ("zero block_size", lambda: gcs_hook.configure_gcs(block_cache=BlockCacheParams(0, MiB)),
        "ValueError", "must be positive"),
    ("huge block_size", lambda: gcs_hook.configure_gcs(block_cache=BlockCacheParams(2**64)),
        "ValueError", "at most 2**64 - 1"),
    ("max_bytes < block_size", lambda: gcs_hook.configure_gcs(block_cache=BlockCacheParams(4 * MiB, MiB)),
        "ValueError", "at least block_size"),
    ("float size", lambda: gcs_hook.configure_gcs(block_cache=BlockCacheParams(1.5 * MiB)),
        "ValueError", "not float"),
    ("bad credentials + good cache", lambda: gcs_hook.configure_gcs(credentials="[", block_cache=good_cache),
        "ValueError", "not a well formed JSON string"),
    ("rejected by token endpoint + good cache",
        lambda: gcs_hook.configure_gcs(credentials=unknown, block_cache=good_cache),
        "PermissionDeniedError", "Could not retrieve a token"),
    ("op: malformed JSON", lambda: ops.gcs_configure_credentials("{not json"),
        "InvalidArgumentError", "Could not parse the credentials"),
    ("op: JSON array", lambda: ops.gcs_configure_credentials("[1, 2]"),
        "InvalidArgumentError", "Could not parse the credentials"),
    ("op: neither field", lambda: ops.gcs_configure_credentials('{"client_id": "x"}'),
        "InvalidArgumentError", "neither 'refresh_token'"),
]
out = []
for name, call, _, _ in rows:
    before = current_block_cache()
    try:
        call()
        err = [None, ""]
    except Exception as e:
        err = [type(e).__name__, getattr(e, "message", None) or str(e)]
    probe = read_at(probe_path, [(0, 100)], handle="probe")
    out.append([name, err[0], err[1], before, current_block_cache(), probe[0][1]])
result = [[r[0], r[2], r[3]] for r in rows], out
"""


def test_bad_input_table_changes_nothing(tf_worker_factory, gcs_emulator, gcs_bucket, gcs_ledger):
    issuer = gcs_emulator.token_issuer
    user = make_test_credentials("authorized_user")
    unknown = make_test_credentials("authorized_user")
    principal = issuer.register(user)
    gcs_emulator.backend.put_object(gcs_bucket, "probe.bin", data(1000, "probe"))
    gcs_emulator.front.require_auth = True
    worker = tf_worker_factory(
        {"GCS_HOOK_TEST_MODULE": "bad_input"}, test_token=None, preamble=WORKER_PREAMBLE
    )
    configured = [MiB, 4 * MiB, 0]
    worker.run(
        "gcs_hook.configure_gcs(credentials=c, block_cache=BlockCacheParams(MiB, 4 * MiB))",
        c=json.dumps(user),
        MiB=MiB,
    )
    tokens_before = issuer.count(principal)
    mark = gcs_ledger.mark()
    expected, rows = worker.run(
        ROWS,
        user_json=json.dumps(user),
        unknown_json=json.dumps(unknown),
        MiB=MiB,
        probe_path=f"gs://{gcs_bucket}/probe.bin",
    )
    assert len(rows) == len(expected) >= 20
    secrets = [
        user["client_secret"],
        user["refresh_token"],
        unknown["client_secret"],
        unknown["refresh_token"],
    ]
    for (name, want_type, want_fragment), (
        got_name,
        got_type,
        message,
        before,
        after,
        probe,
    ) in zip(expected, rows, strict=True):
        assert got_name == name
        assert got_type == want_type, (name, got_type, message)
        assert want_fragment in message, (name, message)
        assert not any(s in message for s in secrets), name
        assert before == configured, name
        assert after == configured, name
        assert probe == "OK", name
    gcs_ledger.wait_quiet(quiet_s=0.05, timeout=5)
    storage = gcs_ledger.since(mark, bucket=gcs_bucket)
    assert storage and {r.principal for r in storage} == {principal}
    # Only the one row that reached the token endpoint asked for a token (and was refused).
    assert issuer.count(principal) == tokens_before
    refused = gcs_ledger.since(mark, kind="token")
    assert [r.status for r in refused] == [401]
