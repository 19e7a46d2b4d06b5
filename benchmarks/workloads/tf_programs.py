"""The TensorFlow programs of the workloads: Python source run inside a ``TfWorker``.

Each function returns code for one epoch (``tf`` imported, variable ``epoch`` set). The code sets
``result`` to a small JSON-able summary and ``_t_last`` to ``time.perf_counter()`` when the last
element/read was delivered (what measured runs time: tf.data sometimes idles ~1 s after the last
element before it reports the end of the sequence, which is not GCS time).

Invariant: the reads these programs make are the ones :mod:`benchmarks.workloads.synth` derives
(checked against recordings in ``tests/tune/test_workloads.py``).
"""

from __future__ import annotations

__all__ = [
    "checkpoint_read_code",
    "checkpoint_write_code",
    "gfile_random_code",
    "interleave_code",
    "read_files_code",
    "tfrecord_dataset_code",
]

TICK = "import time as _time\n_t_last = _time.perf_counter()\n"

#: TfWorker code that counts the records of dataset ``ds`` (the tail of a shard epoch).
_COUNT_RECORDS = (
    "count = 0\n"
    "for _rec in ds:\n"
    "    count += 1\n"
    "    _t_last = _time.perf_counter()\n"
    "result = count\n"
)


def tfrecord_dataset_code(paths: list[str]) -> str:
    """``TFRecordDataset(paths)`` read to the end, records counted."""
    return f"{TICK}ds = tf.data.TFRecordDataset({paths!r})\n" + _COUNT_RECORDS


def interleave_code(paths: list[str], cycle_length: int, block_length: int) -> str:
    """``from_tensor_slices(paths).interleave(TFRecordDataset, cycle, block)``, no parallelism."""
    return (
        f"{TICK}ds = tf.data.Dataset.from_tensor_slices({paths!r})\n"
        "ds = ds.interleave(tf.data.TFRecordDataset,"
        f" cycle_length={cycle_length}, block_length={block_length})\n" + _COUNT_RECORDS
    )


def gfile_random_code(path: str, record_size: int) -> str:
    """``GFile(path)``: ``seek(off)`` + ``read(record_size)`` for each ``off`` in ``offsets``
    (a variable the recorder passes in)."""
    return (
        f"{TICK}f = tf.io.gfile.GFile({path!r}, 'rb')\n"
        "total = 0\n"
        "for off in offsets:\n"
        "    f.seek(off)\n"
        f"    total += len(f.read({record_size}))\n"
        "    _t_last = _time.perf_counter()\n"
        "f.close()\n"
        "result = total\n"
    )


def checkpoint_write_code(variables: int, floats_per_variable: int) -> str:
    """Writes a ``tf.train.Checkpoint`` of float32 variables to ``outdir``; returns its files."""
    return (
        "import os\n"
        "vs = {f'v{i}': tf.Variable(tf.random.stateless_uniform("
        f"[{floats_per_variable}], seed=[i, 7])) for i in range({variables})}}\n"
        "ckpt = tf.train.Checkpoint(**vs)\n"
        "prefix = ckpt.write(os.path.join(outdir, 'ckpt'))\n"
        "result = sorted(os.listdir(outdir))\n"
    )


def checkpoint_read_code(prefix: str, variables: int, floats_per_variable: int) -> str:
    """Restores the checkpoint at ``prefix`` (a gs:// path) into fresh variables."""
    return (
        TICK + "vs = {f'v{i}': tf.Variable(tf.zeros("
        f"[{floats_per_variable}])) for i in range({variables})}}\n"
        "ckpt = tf.train.Checkpoint(**vs)\n"
        f"ckpt.read({prefix!r}).assert_consumed()\n"
        "_t_last = _time.perf_counter()\n"
        "result = float(sum(float(tf.reduce_sum(v)) for v in vs.values()))\n"
    )


def read_files_code(paths: list[str]) -> str:
    """``tf.io.read_file`` of each path, one after another (a tf.data map would be parallelized
    by tf.data's map_parallelization and make the request order nondeterministic)."""
    return (
        f"{TICK}total = 0\nfor _f in {paths!r}:\n"
        "    total += int(tf.strings.length(tf.io.read_file(_f)))\n"
        "    _t_last = _time.perf_counter()\n"
        "result = total\n"
    )
