"""pytest plugin (entry point ``pytest11: gcs_hook_emulator``): a fake GCS for tests.

Fixtures:

- ``gcs_emulator`` (session): one :class:`emulator.fakegcs.session.GcsEmulator` (embedded
  fake-gcs-server + front) per test session (per xdist worker).
- ``gcs_bucket`` (function): the name of a fresh, empty bucket, deleted after the test.
- ``gcs_ledger`` (function): the session ledger; use ``mark()``/``since()`` to look only at
  your own requests (other tests share it).
- ``tf_env`` (function): a copy of the environment a TensorFlow subprocess needs
  (``gcs_emulator.tf_env()``).
- ``tf_worker_factory`` (module): ``factory(extra_env=None, **kw) -> TfWorker`` — a TF
  subprocess with ``tf_env`` + ``extra_env``, cached per distinct env within the module and
  closed at module end. Skips the test if TensorFlow is not installed.
- ``tf_worker`` (module): ``tf_worker_factory()`` with no extra env.

Invariants: importing this module is cheap (no TensorFlow, no server start); servers and
workers started by fixtures are always stopped by them; ``require_auth``, ``shaping`` and
``faults`` on the shared front are reset after each test that used ``gcs_bucket``.
"""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "tf: needs TensorFlow (runs TF work in a subprocess)")
    config.addinivalue_line("markers", "docker: needs a Docker engine")


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[Any]:
    """One embedded fake GCS + front for the whole session."""
    from emulator.fakegcs.session import GcsEmulator
    from emulator.fakegcs.tempdirs import remove_dead_leftovers

    remove_dead_leftovers()  # directories of earlier sessions that were killed
    emu = GcsEmulator()
    try:
        yield emu
    finally:
        emu.close()


def new_bucket_name(prefix: str = "t") -> str:
    """A valid, unique bucket name."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


@pytest.fixture
def gcs_bucket(gcs_emulator: Any) -> Iterator[str]:
    """A fresh empty bucket; removed (with its objects) after the test."""
    name = new_bucket_name()
    gcs_emulator.backend.create_bucket(name)
    try:
        yield name
    finally:
        gcs_emulator.front.require_auth = False
        gcs_emulator.front.shaping = None
        gcs_emulator.front.faults.clear()
        gcs_emulator.backend.delete_bucket(name)


@pytest.fixture
def gcs_ledger(gcs_emulator: Any) -> Any:
    """The shared ledger (filter by your bucket, or use mark()/since())."""
    return gcs_emulator.ledger


@pytest.fixture
def tf_env(gcs_emulator: Any) -> dict[str, str]:
    """Environment for a TensorFlow subprocess that reads gs:// through the front."""
    return dict(gcs_emulator.tf_env())


@pytest.fixture(scope="module")
def tf_worker_factory(gcs_emulator: Any) -> Iterator[Callable[..., Any]]:
    """``factory(extra_env=None, **kw)``: a cached TF subprocess per distinct environment."""
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("TensorFlow is not installed (pip install 'gcs-hook[tf]')")
    from emulator.replay.tf_worker import TfWorker

    workers: dict[tuple, TfWorker] = {}

    def factory(extra_env: dict[str, str] | None = None, **kw: Any) -> TfWorker:
        test_token = kw.pop("test_token", "fake-token")
        env = gcs_emulator.tf_env(test_token=test_token)
        env.update(extra_env or {})
        key = (tuple(sorted(env.items())), tuple(sorted((k, repr(v)) for k, v in kw.items())))
        worker = workers.get(key)
        if worker is None or worker._closed:
            worker = TfWorker(env, **kw)
            workers[key] = worker
        return worker

    try:
        yield factory
    finally:
        for worker in workers.values():
            worker.close()


@pytest.fixture(scope="module")
def tf_worker(tf_worker_factory: Callable[..., Any]) -> Any:
    """A TF subprocess with just the front's environment."""
    return tf_worker_factory()
