"""Building the native ops: per-user cache, atomic concurrent builds, clear prerequisite errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gcs_hook import native_build

LOAD_AND_READ_BACK = (
    "from gcs_hook import native_ops\n"
    "m = native_ops.load()\n"
    "print('PARAMS', m.gcs_block_cache_params().numpy().tolist())\n"
    "print('PATH', native_ops.library_path())\n"
)


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.update(extra)
    return env


def _run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with ``env``; assert it exited 0 (stderr tail shown)."""
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def _only_error_line(stdout: str) -> str:
    """The one ``ERROR ...`` line the child printed; asserts there is exactly one."""
    lines = [line for line in stdout.splitlines() if line.startswith("ERROR")]
    assert len(lines) == 1
    return lines[0]


def test_cache_root_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("GCS_HOOK_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert native_build.cache_root() == tmp_path / "xdg" / "gcs-hook" / "ops"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert native_build.cache_root() == tmp_path / "home" / ".cache" / "gcs-hook" / "ops"
    monkeypatch.setenv("GCS_HOOK_CACHE_DIR", str(tmp_path / "explicit"))
    assert native_build.cache_root() == tmp_path / "explicit"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (["xla/tsl/platform/cloud/gcs_file_system.h"], 1),  # TF 2.19-2.21
        (["tsl/platform/cloud/gcs_file_system.h"], 0),  # TF 2.16-2.18
        (
            ["xla/tsl/platform/cloud/gcs_file_system.h", "tsl/platform/cloud/gcs_file_system.h"],
            1,
        ),
        ([], None),
    ],
)
def test_header_layout_detection(tmp_path, headers, expected):
    for h in headers:
        (tmp_path / h).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / h).write_text("// header\n")
    assert native_build.find_layout(str(tmp_path)) == expected


@pytest.mark.parametrize(
    ("version", "minor", "supported"),
    [
        ("2.16.2", (2, 16), True),
        ("2.21.0", (2, 21), True),
        ("2.19.0rc1", (2, 19), True),
        ("2.15.1", (2, 15), False),
        ("2.22.0-dev20260101", (2, 22), False),
        ("3.0.0", (3, 0), False),
        ("nightly", None, False),
    ],
)
def test_tf_version_range(version, minor, supported):
    assert native_build.tf_minor(version) == minor
    assert native_build.is_supported_tf(version) is supported
    assert (native_build.unsupported_tf_note(version) == "") is supported


def test_unsupported_tf_is_refused_unless_overridden(monkeypatch):
    monkeypatch.delenv(native_build.ALLOW_UNSUPPORTED_ENV, raising=False)
    assert native_build.version_problem("2.21.0") is None
    refused = native_build.version_problem("2.15.1")
    assert refused is not None
    assert "TensorFlow 2.15.1 is not supported" in refused
    assert "2.16-2.21" in refused and native_build.ALLOW_UNSUPPORTED_ENV in refused
    monkeypatch.setenv(native_build.ALLOW_UNSUPPORTED_ENV, "1")
    assert native_build.version_problem("2.15.1") is None
    monkeypatch.setenv(native_build.ALLOW_UNSUPPORTED_ENV, "0")
    assert native_build.version_problem("2.15.1") is not None


def test_jsoncpp_include_override(monkeypatch, tmp_path):
    monkeypatch.setenv("GCS_HOOK_JSONCPP_INCLUDE", str(tmp_path))
    assert native_build.find_jsoncpp_include() is None
    (tmp_path / "json").mkdir()
    (tmp_path / "json" / "json.h").write_text("// json\n")
    assert native_build.find_jsoncpp_include() == str(tmp_path)


@pytest.mark.tf
@pytest.mark.slow
def test_two_processes_building_at_once_both_succeed(tmp_path):
    cache = tmp_path / "cache"
    env = _env(GCS_HOOK_CACHE_DIR=str(cache))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", LOAD_AND_READ_BACK],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
        # TF 2.21's defaults, read back through the freshly built op.
        assert "PARAMS [67108864, 0, 0]" in out
    paths = {
        line.split(" ", 1)[1]
        for out, _ in outs
        for line in out.splitlines()
        if line.startswith("PATH ")
    }
    assert len(paths) == 1
    lib = Path(paths.pop())
    assert lib.is_file() and lib.parent.parent == cache
    assert lib.parent.name.startswith("tf")
    # Exactly one library, no temporary build files left behind.
    assert [p.name for p in lib.parent.iterdir()] == [native_build.LIBRARY_NAME]
    assert oct(lib.parent.stat().st_mode & 0o777) == oct(0o700)

    # A third process reuses the cached library without recompiling.
    before = lib.stat()
    _run_python(LOAD_AND_READ_BACK, env)
    after = lib.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


@pytest.mark.tf
def test_missing_compiler_and_jsoncpp_give_one_clear_error(tmp_path):
    cache = tmp_path / "cache"
    code = (
        "from gcs_hook import native_ops\n"
        "from gcs_hook.native_build import NativeBuildError\n"
        "try:\n"
        "    native_ops.load()\n"
        "except NativeBuildError as e:\n"
        "    print('ERROR', e)\n"
    )
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    env = _env(
        GCS_HOOK_CACHE_DIR=str(cache),
        PATH=str(empty_bin),
        GCS_HOOK_JSONCPP_INCLUDE=str(tmp_path / "no-jsoncpp"),
    )
    env.pop("CXX", None)
    msg = _only_error_line(_run_python(code, env).stdout)
    assert "apt-get install -y g++" in msg
    assert "apt-get install -y libjsoncpp-dev" in msg
    assert not cache.exists()  # nothing was built or half-built


@pytest.mark.tf
def test_library_tf_cannot_load_gives_native_build_error(tmp_path):
    # A cached "library" that is not a shared object: real TF refuses it; the error says which
    # TF and which versions are supported, as a NativeBuildError (not a bare tf.errors one).
    cache = tmp_path / "cache"
    code = (
        "import pathlib\n"
        "from gcs_hook import native_build, native_ops\n"
        "out = native_build.plan().output\n"
        "out.parent.mkdir(parents=True)\n"
        "out.write_bytes(b'not an ELF file')\n"
        "try:\n"
        "    native_ops.load()\n"
        "except native_build.NativeBuildError as e:\n"
        "    print('ERROR', e)\n"
        "import tensorflow as tf\n"
        "print('VERSION', tf.__version__)\n"
    )
    out = _run_python(code, _env(GCS_HOOK_CACHE_DIR=str(cache)))
    error = _only_error_line(out.stdout)
    version = out.stdout.split("VERSION ", 1)[1].split()[0]
    assert f"TensorFlow {version} could not load" in error
    assert "support TensorFlow 2.16-2.21" in error
