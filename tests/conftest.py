"""Suite-wide pytest setup.

The suite mirrors the package layout (tests/hook, tests/fakegcs, tests/model, tests/replay,
tests/tune); test modules keep unique basenames so that no ``__init__.py`` is needed. This file
sits in ``tests/`` so that pytest puts ``tests/`` on ``sys.path`` and every test module can
``import _support``. The fixtures themselves come from the ``emulator.pytest_plugin`` plugin.
"""

from __future__ import annotations

import pytest

#: The slowest modules, slowest first (wall time summed per module, 3 xdist workers on 2 cores;
#: test_container_backend where an engine runs). A stale entry only changes the order tests are
#: handed out in, never what runs. Modules with no TF or Docker test (test_tune_gcsfs,
#: test_record_stops) are here so that they do not come last.
SLOWEST_MODULES = (
    "tests/tune/test_live_workloads.py",
    "tests/replay/test_replay_compare.py",
    "tests/tune/test_record_cli.py",
    "tests/tune/test_tune_cli.py",  # the README's main job, end to end (~20 s)
    "tests/hook/test_native_build.py",
    "tests/tune/test_tune_gcsfs.py",
    "tests/fakegcs/test_container_backend.py",
    "tests/tune/test_record_stops.py",
    "tests/fakegcs/test_upstream.py",
    "tests/tune/test_hazards_tf.py",
    "tests/model/test_gcs_model_tf.py",
    "tests/hook/test_hook_credentials.py",
    "tests/docs/test_doc_examples.py",
    "tests/hook/test_hook_timeline.py",
    "tests/tune/test_record_upstream.py",
    "tests/cli/test_record_traps.py",
    "tests/tune/test_clock_tf.py",
)


def _module_rank(item: pytest.Item, heavy: set[str]) -> tuple[int, int]:
    path = item.nodeid.split("::", 1)[0]
    if path in SLOWEST_MODULES:
        return (0, SLOWEST_MODULES.index(path))
    return (1, 0) if path in heavy else (2, 0)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Hand out the long modules first: the slowest known ones, then every module with a test
    that runs TensorFlow or Docker, then the rest (stable within each; a module's tests keep
    their order). With ``--dist loadfile --no-loadscope-reorder`` (``scripts/test.sh``) the
    short pure-Python modules then fill the workers' tails instead of a long TF module running
    alone at the end (xdist's default reorder puts modules with many tests first)."""
    heavy = {
        item.nodeid.split("::", 1)[0]
        for item in items
        if item.get_closest_marker("tf") or item.get_closest_marker("docker")
    }
    items.sort(key=lambda item: _module_rank(item, heavy))
