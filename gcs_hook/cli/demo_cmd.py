"""``gcs-hook demo`` (and ``serve --demo``): real TensorFlow reads an object through the front.

This module is the demo itself (:func:`run_demo`); the ``demo`` command, a ``serve --demo`` with
defaults, is registered by :mod:`gcs_hook.cli.serve_cmd` (so this module imports nothing of it).

The demo seeds one object, reads two ranges of it with TensorFlow in a subprocess (1 MiB block
cache), checks the bytes against the backend and prints the request ledger as a table.
"""

from __future__ import annotations

from typing import Any

from gcs_hook.cli.errors import fail

DEMO_BUCKET = "gcs-hook-demo"
DEMO_OBJECT = "data/sample.bin"
DEMO_SIZE = 3_000_000
DEMO_ENV = {"GCS_READ_CACHE_BLOCK_SIZE_MB": "1", "GCS_READ_CACHE_MAX_SIZE_MB": "4"}
DEFAULT_TEST_TOKEN = "gcs-hook-fake-token"


def ledger_table(records: list[Any], title: str = "request ledger") -> Any:
    """A rich Table of ledger records (no secrets are in records to begin with)."""
    from rich.table import Table

    table = Table(title=title)
    for col, justify in (
        ("seq", "right"),
        ("t ms", "right"),
        ("conn", "right"),
        ("principal", "left"),
        ("kind", "left"),
        ("method", "left"),
        ("host", "left"),
        ("path", "left"),
        ("range", "left"),
        ("status", "right"),
        ("bytes out", "right"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    t0 = records[0].t if records else 0.0
    for r in records:
        rng = f"{r.range[0]}-{r.range[1] if r.range[1] >= 0 else ''}" if r.range else ""
        table.add_row(
            str(r.seq),
            f"{(r.t - t0) * 1000:.1f}",
            str(r.conn_id),
            r.principal,
            r.kind,
            r.method,
            r.host,
            r.path if len(r.path) <= 60 else r.path[:57] + "...",
            rng,
            str(r.status),
            str(r.bytes_out),
        )
    return table


def run_demo(emu: Any, console: Any) -> bool:
    """Read the demo object with real TensorFlow through the front; print the ledger.

    Returns True when TF returned exactly the bytes the backend holds.
    """
    from emulator.replay.tf_worker import TfWorker, TfWorkerError
    from emulator.replay.trace import object_content

    data = object_content(f"{DEMO_BUCKET}/{DEMO_OBJECT}", 1, DEMO_SIZE)
    emu.backend.create_bucket(DEMO_BUCKET)
    emu.backend.put_object(DEMO_BUCKET, DEMO_OBJECT, data)
    env = emu.tf_env(test_token=DEFAULT_TEST_TOKEN)
    env.update(DEMO_ENV)
    console.print(
        f"[bold]demo[/]: real TensorFlow reads gs://{DEMO_BUCKET}/{DEMO_OBJECT} "
        f"({DEMO_SIZE:,} bytes) at offsets 0 and 1,500,000 with a 1 MiB block cache"
    )
    mark = emu.ledger.mark()
    try:
        with TfWorker(env) as worker:
            got = worker.run(
                """
f = tf.io.gfile.GFile(path, "rb")
f.seek(0); a = f.read(100)
f.seek(1_500_000); b = f.read(1000)
result = {"version": tf.__version__, "a": a, "b": b, "names": tf.io.gfile.listdir(root)}
""",
                path=f"gs://{DEMO_BUCKET}/{DEMO_OBJECT}",
                root=f"gs://{DEMO_BUCKET}/data",
            )
    except TfWorkerError as exc:
        fail(f"demo: TensorFlow failed: {exc}")
    ok = got["a"] == data[:100] and got["b"] == data[1_500_000:1_501_000]
    console.print(
        f"TensorFlow {got['version']}: listdir -> {got['names']}; bytes "
        + ("[green]match[/] the backend" if ok else "[red]DIFFER[/] from the backend")
    )
    console.print(ledger_table(emu.ledger.since(mark), title="requests TensorFlow sent"))
    return ok
