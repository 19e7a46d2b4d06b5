"""``gcs-hook record --upstream``: a real job recorded through the pass-through front.

Real TF (a program of ours, tests/tune/programs/upstream_job.py), real TLS both sides, a real
fake-gcs-server behind an upstream that impersonates GCS (tests/_impersonator.py: its own CA,
bearer tokens required, an oauth2.googleapis.com token server reached only by a blind tunnel).
Everything on 127.0.0.1.

- cache-off recording (the CLI): bytes exact; the upstream saw only the program's own
  service-account token (never the front's test token); the token host was tunnelled blind;
  the trace equals the fake-mode recording of the same program (timing aside); nothing the
  recording wrote holds a secret; the per-run CA and bundle are gone afterwards.
- cache-on run (TF's own service-account flow, and the program fetching a token through the
  blind tunnel too): TF's token request is forwarded to www.googleapis.com unchanged and its
  body is not recorded; bytes exact; nothing written holds a secret; tune's prediction from the
  cache-off recording equals this run's media requests and bytes.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from _impersonator import Impersonator

from emulator.replay.trace import digest_chain

PROGRAM = Path(__file__).parent / "programs" / "upstream_job.py"
BUCKET = "upjob"
FILES = {
    "a.bin": digest_chain("ua", 1_300_000),
    "b.bin": digest_chain("ub", 2_700_000),
    "c.bin": digest_chain("uc", 12_345),
}
CLI = [sys.executable, "-c", "from gcs_hook.cli import main; main()"]

pytestmark = [pytest.mark.tf, pytest.mark.slow]


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()[:16]


EXPECTED = {
    "a": _sha(FILES["a.bin"]),
    "b": _sha(FILES["b.bin"][1_000_000:1_100_000] + FILES["b.bin"][10:100_010]
              + FILES["b.bin"][2_500_000:2_600_000]),
    "c_size": len(FILES["c.bin"]),
    "out": _sha(b"x" * 700_000),
}  # fmt: skip


def _bundles() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "gcs-hook-bundle-*")))


def _orphaned(dirs: set[str]) -> set[str]:
    """The directories whose owner process is gone (others may belong to a concurrent test)."""
    out = set()
    for d in dirs:
        try:
            os.kill(int(Path(d, "owner.pid").read_text()), 0)
        except ProcessLookupError:
            out.add(d)
        except (OSError, ValueError):
            pass
    return out


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    pytest.importorskip("tensorflow")
    imp = Impersonator(tmp_path_factory.mktemp("imp"))
    imp.emu.backend.create_bucket(BUCKET)
    for name, data in FILES.items():
        imp.emu.backend.put_object(BUCKET, name, data)
    yield imp
    imp.close()


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env={**os.environ, **env, "COLUMNS": "200"},
        timeout=300,
    )  # fmt: skip


def _last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def recorded(upstream, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("rec")
    before = _bundles()
    mark = upstream.emu.ledger.mark()
    token_calls = upstream.token_server.requests
    out, ledger = tmp / "up.json", tmp / "up.jsonl"
    res = _cli(
        ["record", *upstream.record_args(), "--out", str(out), "--ledger", str(ledger), "--",
         sys.executable, str(PROGRAM), BUCKET, "--python-token"],
        upstream.program_env(),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    return {
        "res": res, "trace": json.loads(out.read_text()), "files": [out, ledger],
        "ledger": [json.loads(x) for x in ledger.read_text().splitlines()],
        "upstream_records": upstream.emu.ledger.since(mark),
        "token_calls": upstream.token_server.requests - token_calls,
        "leftover_bundles": _orphaned(_bundles() - before),
    }  # fmt: skip


@pytest.fixture(scope="module")
def fake_trace(tmp_path_factory, upstream) -> dict:
    tmp = tmp_path_factory.mktemp("fake")
    (tmp / "data" / BUCKET).mkdir(parents=True)
    for name, data in FILES.items():
        (tmp / "data" / BUCKET / name).write_bytes(data)
    out = tmp / "fake.json"
    res = _cli(
        ["record", "--data", str(tmp / "data"), "--out", str(out), "--",
         sys.executable, str(PROGRAM), BUCKET],
        upstream.program_env(),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert _last_json(res.stdout) == EXPECTED
    return json.loads(out.read_text())


def test_recorded_program_reads_exact_bytes(recorded) -> None:
    assert _last_json(recorded["res"].stdout) == EXPECTED


def test_upstream_saw_only_the_programs_own_token(recorded, upstream) -> None:
    recs = recorded["upstream_records"]
    storage = [r for r in recs if r.kind != "token"]
    assert len(storage) >= 10
    # the program's service-account token reached the upstream unchanged: it accepted every
    # request as that principal. The front's own test token would show as "test-token" (the
    # upstream accepts it, see _impersonator), any other token as "invalid" with a 401
    assert "test-token" not in {r.principal for r in recs}
    assert {r.principal for r in storage} == {upstream.principal}
    assert all(r.status < 400 for r in storage), [(r.path, r.status) for r in storage]
    # request for request: what the front forwarded is what the upstream received
    fwd = [r for r in recorded["ledger"] if r["extra"].get("upstream")]
    assert [(r["method"], r["path"], r["range"]) for r in fwd] == [
        (r.method, r.path, list(r.range) if r.range else None) for r in recs
    ]


def test_token_host_is_tunnelled_blind(recorded) -> None:
    assert recorded["token_calls"] == 1
    tunnels = [r for r in recorded["ledger"] if r["method"] == "CONNECT"]
    assert len(tunnels) == 1
    t = tunnels[0]
    assert t["host"] == "oauth2.googleapis.com" and t["extra"] == {"tunnel": "blind"}
    assert t["status"] == 200 and t["bytes_in"] > 500 and t["bytes_out"] > 500
    assert t["path"] == "oauth2.googleapis.com:443" and t["query"] == {}
    # no request of the program went to the token host through the terminating path
    assert not any(r["kind"] == "token" for r in recorded["ledger"])


def test_trace_equals_fake_mode_trace(recorded, fake_trace) -> None:
    def strip(trace: dict) -> tuple:
        untimed = [{k: v for k, v in op.items() if k not in ("lane", "think", "at")}
                   for op in trace["ops"] if op["op"] != "sleep"]  # fmt: skip
        return trace["objects"], untimed

    up_objects, up_ops = strip(recorded["trace"])
    fake_objects, fake_ops = strip(fake_trace)
    assert up_objects == fake_objects == {f"{BUCKET}/{k}": len(v) for k, v in FILES.items()}
    assert up_ops == fake_ops
    assert recorded["trace"]["recorded"]["mode"] == "upstream"
    assert fake_trace["recorded"]["mode"] == "fake"
    kinds = {op["op"] for op in up_ops}
    assert {"read", "stat", "write"} <= kinds


def test_nothing_written_holds_a_secret(recorded, upstream) -> None:
    texts = [p.read_text() for p in recorded["files"]]
    texts += [recorded["res"].stdout.split("\n")[-2], recorded["res"].stderr]
    for secret in upstream.secrets():
        for text in texts:
            assert secret not in text
    for rec in recorded["ledger"]:
        assert "authorization" not in json.dumps(rec).lower()
    # the resumable upload's session id is a capability on real GCS: never kept
    ids = [r["query"]["upload_id"] for r in recorded["ledger"] if "upload_id" in r["query"]]
    assert ids and set(ids) == {"<redacted>"}


def test_ca_material_is_removed(recorded) -> None:
    assert recorded["leftover_bundles"] == set()


def test_cache_on_run_forwards_tfs_token_request(upstream, recorded, tmp_path, monkeypatch) -> None:
    from benchmarks.record.upstream import record_upstream
    from emulator.fakegcs.upstream import UpstreamConfig

    mark = upstream.emu.ledger.mark()
    cfg = UpstreamConfig(("127.0.0.1", upstream.tls.port), upstream.emu.front.ca_pem)
    seen: list = []
    env = {"GOOGLE_APPLICATION_CREDENTIALS": upstream.sa_path, "NO_GCE_CHECK": "true",
           "GCS_READ_CACHE_BLOCK_SIZE_MB": "1", "GCS_READ_CACHE_MAX_SIZE_MB": "8"}  # fmt: skip
    stdout = tmp_path / "stdout.txt"
    ledger = tmp_path / "on.jsonl"
    # this process's "system" CAs (what the program's bundle is made of) include the token CA
    monkeypatch.setenv("SSL_CERT_FILE", upstream.system_bundle)
    rec = record_upstream(
        ["sh", "-c", f'"{sys.executable}" "{PROGRAM}" {BUCKET} --fetch-token > "{stdout}"'],
        upstream=cfg, connect_to=upstream.connect_to(), extra_env=env,
        on_start=seen.append, ledger_path=str(ledger),
    )  # fmt: skip
    assert rec.returncode == 0
    assert _last_json(stdout.read_text()) == EXPECTED
    records = seen[0].ledger.records()
    # google-auth's token host went through a blind tunnel, TF's own token request was forwarded
    tunnels = [r for r in records if r.method == "CONNECT"]
    assert [(t.host, t.status, t.extra) for t in tunnels] == [
        ("oauth2.googleapis.com", 200, {"tunnel": "blind"})
    ]
    tokens = [r for r in records if r.kind == "token"]
    assert len(tokens) == 1 and tokens[0].host == "www.googleapis.com"
    assert tokens[0].status == 200 and tokens[0].extra.get("upstream") is True
    assert tokens[0].bytes_in > 200  # the JWT assertion went up; none of it was kept
    up = upstream.emu.ledger.since(mark)
    assert [r.principal for r in up if r.kind == "token"] == [upstream.principal]
    assert {r.principal for r in up} == {upstream.principal}
    # with 1 MiB blocks TF fetches whole blocks: fewer, larger requests than cache-off
    media = [r for r in records if r.kind == "media"]
    assert media and all(r.range[1] - r.range[0] + 1 <= 1 << 20 for r in media)
    assert any(r.range[1] - r.range[0] + 1 == 1 << 20 for r in media)
    text = ledger.read_text()
    for secret in upstream.secrets():
        assert secret not in text
    # tune, given the cache-off recording, predicts what this cache-on run fetched
    res = _cli(["tune", "--workload", str(recorded["files"][0]), "--configs", "1MiB/8MiB/0",
                "--json", "--no-measure"], {})  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    [pred] = json.loads(res.stdout)
    assert pred["requests"] == len(media)
    assert pred["bytes_fetched"] == sum(r.bytes_out for r in media)


def test_pass_through_ledger_converts_offline_to_the_same_ops(recorded, tmp_path) -> None:
    """``record --from-ledger`` on the pass-through ledger (principal "program", found as the
    top reader) gives the live recording's ops."""
    out = tmp_path / "offline.json"
    res = _cli(["record", "--from-ledger", str(recorded["files"][1]), "--out", str(out)], {})
    assert res.returncode == 0, res.stderr[-2000:]

    def ops(trace: dict) -> list:
        return [op for op in trace["ops"] if op["op"] != "sleep"]

    assert ops(json.loads(out.read_text())) == ops(recorded["trace"])


def test_record_prints_the_fronts_own_time(recorded) -> None:
    """record --upstream ends with the front's own time, from the forwarded requests' records
    (arrival -> sent upstream, upstream head -> program's first byte)."""
    import re

    from emulator.fakegcs.ledger import RequestRecord, front_time

    m = re.search(r"the front's own time: ([\d.]+) ms median, ([\d.]+) ms p90 per request "
                  r"\((\d+) requests", " ".join(recorded["res"].stderr.split()))  # fmt: skip
    assert m, recorded["res"].stderr[-2000:]
    forwarded = [RequestRecord.from_json(d) for d in recorded["ledger"]]
    own = sorted(t * 1e3 for r in forwarded if (t := front_time(r)) is not None)
    assert int(m.group(3)) == len(own) > 0
    assert float(m.group(1)) <= float(m.group(2)) <= own[-1] + 0.01
