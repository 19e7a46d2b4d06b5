"""Suite-wide pytest setup.

The suite mirrors the package layout (tests/hook, tests/fakegcs, tests/model, tests/replay,
tests/tune); test modules keep unique basenames so that no ``__init__.py`` is needed. This file
sits in ``tests/`` so that pytest puts ``tests/`` on ``sys.path`` and every test module can
``import _support``. The fixtures themselves come from the ``emulator.pytest_plugin`` plugin.
"""
