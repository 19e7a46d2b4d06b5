"""TfWorker: the TensorFlow subprocess protocol (real TensorFlow)."""

from __future__ import annotations

import os

import pytest

from emulator.replay.tf_worker import TfWorker, TfWorkerError

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def worker():
    with TfWorker({"GCS_HOOK_WORKER_PROBE": "set-before-import"}) as w:
        yield w


def test_env_is_set_before_import_and_values_roundtrip(worker):
    blob = os.urandom(1000)
    got = worker.run(
        "result = {'env': os.environ['GCS_HOOK_WORKER_PROBE'], 'tf': tf.__version__,"
        " 'echo': data, 'n': n + 1, 'arr': np.arange(3)}",
        data=blob,
        n=41,
    )
    assert got["env"] == "set-before-import"
    assert got["tf"].startswith("2.")
    assert got["echo"] == blob and got["n"] == 42 and got["arr"] == [0, 1, 2]


def test_globals_persist_and_print_does_not_break_protocol(worker):
    worker.run("print('noise on stdout'); counter = 10")
    assert worker.run("counter += 1\nprint(counter)\nresult = counter") == 11


def test_exception_comes_back_typed(worker):
    with pytest.raises(TfWorkerError) as info:
        worker.run("tf.io.gfile.GFile('/nonexistent/dir/file', 'rb').read()")
    assert info.value.type == "NotFoundError"
    assert "Traceback" in info.value.traceback
    assert worker.run("result = 'still alive'") == "still alive"


def test_unserialisable_result_is_an_error(worker):
    with pytest.raises(TfWorkerError, match="not JSON serializable"):
        worker.run("result = object()")


def test_timeout_kills_the_worker():
    w = TfWorker({}, timeout=30)
    try:
        with pytest.raises(TfWorkerError) as info:
            w.run("import time\ntime.sleep(60)", timeout=1)
        assert info.value.type == "Timeout"
        assert w._proc.poll() is not None  # killed, not left running
        with pytest.raises(TfWorkerError, match="not running"):
            w.run("result = 1")
    finally:
        w.close()


def test_code_sees_the_documented_globals(worker):
    """The module docstring promises ``tf``, ``np``, ``os`` and ``time`` as globals (the
    module's worker: one TF start fewer than the plugin's ``tf_worker``, which the tests of
    the front use)."""
    names = worker.run("result = sorted(n for n in ('tf', 'np', 'os', 'time') if n in globals())")
    assert names == ["np", "os", "tf", "time"]
    assert worker.run("result = time.monotonic() > 0 and os.getpid() > 0")
