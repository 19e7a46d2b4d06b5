"""Compile the C++ ops in ``gcs_hook/native/`` against the installed TensorFlow, once per user.

Invariants:

- The shared library is cached under :func:`cache_root` in a directory named after the
  TensorFlow version and a hash of everything that affects the binary (sources, headers,
  TensorFlow's compile/link flags, the header layout, the compiler path). Changing any of them
  builds a new library; an unchanged setup never recompiles.
- Builds are atomic and serialised by a file lock: the compiler writes a temporary file in the
  target directory which is then ``os.replace``-d into place, so a reader never sees a partial
  library and two processes building at once both succeed (the second finds the first's result).
- Missing prerequisites (compiler, jsoncpp headers, TensorFlow or its GCS headers) raise ONE
  :class:`NativeBuildError` naming everything that has to be installed.
- Supported: TensorFlow 2.16-2.21 (:data:`SUPPORTED_TF`). Any other version is refused up front
  with a :class:`NativeBuildError` that names the supported range, unless
  ``GCS_HOOK_ALLOW_UNSUPPORTED_TF=1`` asks to try anyway; then a failed compile (or load, see
  ``native_ops``) says the version is unsupported. A failure on a supported version names the
  supported range and the verified versions too.
- Header layout: the GCS filesystem headers live in ``tsl/platform/cloud/`` (TF 2.16-2.18 wheels)
  or ``xla/tsl/platform/cloud/`` (TF 2.19-2.21); which one exists decides
  ``-DGCS_HOOK_XLA_TSL=0|1``. No other source difference is needed across 2.16-2.21.

Verified (:data:`VERIFIED_TF`), each in a throw-away virtualenv with ``tensorflow-cpu==X`` from
PyPI, Python 3.11, g++ 12.2, Debian jsoncpp 1.9.5 headers, by ``scripts/check_native_tf.py``:
the ops build and load; ``GcsBlockCacheParams`` reads TF's defaults ``[64 MiB, 0, 0]``;
``GcsConfigureBlockCache`` changes them, identical values skip (no refetch), new values give a
fresh cache; the random-access ops read a local file (plain path and ``file://``) byte-exact with
``OUT_OF_RANGE`` + partial tail at EOF; gs:// reads through the fake GCS front (cache off: one
64 MiB buffered GET; cache on: aligned 1 MiB / 2 MiB block GETs; missing object ``NOT_FOUND``);
``GcsConfigureCredentials`` with authorized_user and with service_account JSON fetches one token
from the right endpoint (v3 refresh / v4 JWT) and later requests carry it; the public API
(``configure_gcs`` eager and in a Session with a device, ``ConfigureGcsHook`` in a
MonitoredSession, ``ConfigureGcsCallback`` in ``Model.fit``) reads back what it set. 16/16 checks
passed on 2.16.1, 2.16.2, 2.17.1, 2.18.1, 2.19.1, 2.20.0 and 2.21.0 (2026-11-25 run, final
sources, fresh builds), plus the repo's own test suite on 2.21.0. The 2.16-2.18 wheels pull in
tensorflow-io-gcs-filesystem 0.37.1; it does not replace the built-in gs:// filesystem (all
checks ran against TF's own).

Outside the range: 2.15.1 passed the 14 op-level checks of an earlier version of the script (run
before the version gate existed; now it needs ``GCS_HOOK_ALLOW_UNSUPPORTED_TF=1`` and stays
unsupported, as the project pins ``tensorflow-cpu>=2.16``). The 2.14.1 wheel ships no GCS
filesystem headers at all: refused up front, and with the override the build stops with the
missing-headers error, which also says the version is unsupported.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import filelock

SOURCE_DIR = Path(__file__).resolve().parent / "native"
LIBRARY_NAME = "gcs_hook_ops.so"
BASE_FLAGS = ("-std=c++17", "-shared", "-fPIC", "-O2", "-Wno-deprecated-declarations",
              "-Wno-interference-size")  # fmt: skip
JSONCPP_INCLUDE_CANDIDATES = ("/usr/include/jsoncpp", "/usr/local/include/jsoncpp", "/usr/include")
LAYOUTS = {  # header that must exist -> value of GCS_HOOK_XLA_TSL
    "xla/tsl/platform/cloud/gcs_file_system.h": 1,
    "tsl/platform/cloud/gcs_file_system.h": 0,
}
LOCK_TIMEOUT_S = 900.0

INSTALL_COMPILER = "a C++17 compiler: apt-get install -y g++ (or set CXX)"
INSTALL_JSONCPP = (
    "jsoncpp headers (json/json.h): apt-get install -y libjsoncpp-dev "
    "(or set GCS_HOOK_JSONCPP_INCLUDE to the directory holding json/json.h)"
)
SUPPORTED_TF = ((2, 16), (2, 21))  # inclusive (major, minor) range
VERIFIED_TF = ("2.16.1", "2.16.2", "2.17.1", "2.18.1", "2.19.1", "2.20.0", "2.21.0")
ALLOW_UNSUPPORTED_ENV = "GCS_HOOK_ALLOW_UNSUPPORTED_TF"
SUPPORTED_TEXT = (
    f"gcs-hook's native ops support TensorFlow {SUPPORTED_TF[0][0]}.{SUPPORTED_TF[0][1]}-"
    f"{SUPPORTED_TF[1][0]}.{SUPPORTED_TF[1][1]} (verified on {', '.join(VERIFIED_TF)})"
)
INSTALL_TF = "TensorFlow 2.16-2.21: pip install 'tensorflow-cpu>=2.16,<2.22'"


class NativeBuildError(RuntimeError):
    """The native ops cannot be built; the message names what to install or what failed."""


@dataclass(frozen=True)
class BuildPlan:
    """Everything needed to build (and to name) the shared library."""

    compiler: str
    tf_version: str
    sources: tuple[Path, ...]
    command_flags: tuple[str, ...] = field(repr=False)
    link_flags: tuple[str, ...] = field(repr=False)
    key: str = ""

    @property
    def output(self) -> Path:
        return cache_root() / f"tf{self.tf_version}-{self.key[:16]}" / LIBRARY_NAME

    def command(self, out: Path) -> list[str]:
        return [
            self.compiler,
            *self.command_flags,
            *(str(s) for s in self.sources),
            "-o",
            str(out),
            *self.link_flags,
        ]


def cache_root() -> Path:
    """``$GCS_HOOK_CACHE_DIR``, else ``$XDG_CACHE_HOME/gcs-hook/ops``, else ``~/.cache/gcs-hook/ops``."""
    explicit = os.environ.get("GCS_HOOK_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "gcs-hook" / "ops"


def find_compiler() -> str | None:
    """``$CXX`` if set (and found), else ``g++``, else ``c++``; ``None`` if none exists."""
    for name in (os.environ.get("CXX"), "g++", "c++"):
        if name:
            path = shutil.which(name)
            if path:
                return path
    return None


def find_jsoncpp_include() -> str | None:
    """Directory that holds ``json/json.h`` (``$GCS_HOOK_JSONCPP_INCLUDE`` first)."""
    explicit = os.environ.get("GCS_HOOK_JSONCPP_INCLUDE")
    candidates = (explicit,) if explicit else JSONCPP_INCLUDE_CANDIDATES
    for d in candidates:
        if d and os.path.isfile(os.path.join(d, "json", "json.h")):
            return d
    return None


def find_layout(tf_include: str) -> int | None:
    """``1`` for ``xla/tsl/...`` headers, ``0`` for ``tsl/...`` headers, ``None`` if neither."""
    for header, value in LAYOUTS.items():
        if os.path.isfile(os.path.join(tf_include, header)):
            return value
    return None


def tf_minor(version: str) -> tuple[int, int] | None:
    """``(major, minor)`` of a TensorFlow version string (``"2.16.2"``, ``"2.22.0-dev2026"``)."""
    m = re.match(r"\s*(\d+)\.(\d+)", version)
    return (int(m.group(1)), int(m.group(2))) if m else None


def is_supported_tf(version: str) -> bool:
    """Whether ``version`` lies in :data:`SUPPORTED_TF` (inclusive, by major.minor)."""
    mm = tf_minor(version)
    return mm is not None and SUPPORTED_TF[0] <= mm <= SUPPORTED_TF[1]


def allow_unsupported_tf() -> bool:
    """``$GCS_HOOK_ALLOW_UNSUPPORTED_TF`` is set to 1/true/yes: build for any TF version."""
    return os.environ.get(ALLOW_UNSUPPORTED_ENV, "").strip().lower() in ("1", "true", "yes")


def unsupported_tf_note(version: str) -> str:
    """One sentence for error messages: ``version`` is outside the supported range (or ``""``)."""
    if is_supported_tf(version):
        return ""
    return f"TensorFlow {version} is not supported: {SUPPORTED_TEXT}."


def version_problem(version: str) -> str | None:
    """Why the build refuses ``version`` (``None`` if supported or the override is set)."""
    if is_supported_tf(version) or allow_unsupported_tf():
        return None
    return (
        f"TensorFlow {version} is not supported ({SUPPORTED_TEXT}); install {INSTALL_TF}, "
        f"or set {ALLOW_UNSUPPORTED_ENV}=1 to try building against {version} anyway"
    )


def _tensorflow():
    try:
        import tensorflow as tf
    except Exception as exc:  # ImportError, or a broken install
        raise NativeBuildError(
            f"Cannot build gcs-hook's native ops: TensorFlow does not import ({type(exc).__name__}). "
            f"Install {INSTALL_TF}."
        ) from None
    return tf


def problems() -> list[str]:
    """What is missing for a build (empty list = ready); used by ``gcs-hook doctor``."""
    found: list[str] = []
    if find_compiler() is None:
        found.append(f"no C++ compiler found; install {INSTALL_COMPILER}")
    if find_jsoncpp_include() is None:
        found.append(f"jsoncpp headers not found; install {INSTALL_JSONCPP}")
    try:
        tf = _tensorflow()
    except NativeBuildError:
        found.append(f"TensorFlow does not import; install {INSTALL_TF}")
    else:
        refused = version_problem(tf.__version__)
        if refused:
            found.append(refused)
        include = tf.sysconfig.get_include()
        if find_layout(include) is None:
            advice = "" if refused else f"; install {INSTALL_TF}"
            note = unsupported_tf_note(tf.__version__)
            if note and not refused:
                advice = f"; {note[:-1]}; install {INSTALL_TF}"
            found.append(
                f"TensorFlow {tf.__version__} has no GCS filesystem headers under {include} "
                f"(looked for {' or '.join(LAYOUTS)}){advice}"
            )
    return found


def plan() -> BuildPlan:
    """Work out the build; raises one :class:`NativeBuildError` listing every missing piece."""
    missing = problems()
    if missing:
        raise NativeBuildError("Cannot build gcs-hook's native ops: " + "; ".join(missing) + ".")
    tf = _tensorflow()
    compiler = find_compiler()
    jsoncpp = find_jsoncpp_include()
    layout = find_layout(tf.sysconfig.get_include())
    assert compiler and jsoncpp and layout is not None  # checked by problems()
    sources = tuple(sorted(SOURCE_DIR.glob("*.cc")))
    headers = tuple(sorted(SOURCE_DIR.glob("*.h")))
    compile_flags = tuple(tf.sysconfig.get_compile_flags())
    link_flags = tuple(tf.sysconfig.get_link_flags())
    flags = (
        *BASE_FLAGS,
        *compile_flags,
        f"-DGCS_HOOK_XLA_TSL={layout}",
        f"-I{SOURCE_DIR}",
        f"-I{jsoncpp}",
    )
    digest = hashlib.sha256()
    for part in (tf.__version__, compiler, *flags, *link_flags):
        digest.update(part.encode() + b"\0")
    for path in (*sources, *headers):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return BuildPlan(
        compiler=compiler,
        tf_version=tf.__version__,
        sources=sources,
        command_flags=flags,
        link_flags=link_flags,
        key=digest.hexdigest(),
    )


def build(*, force: bool = False) -> Path:
    """Return the path of the compiled library, building it first if needed (thread/process safe)."""
    p = plan()
    out = p.output
    if out.is_file() and not force:
        return out
    out.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = filelock.FileLock(str(out.parent) + ".lock", timeout=LOCK_TIMEOUT_S)
    try:
        with lock:
            if out.is_file() and not force:
                return out  # another process built it while we waited
            _compile(p, out)
    except filelock.Timeout:
        raise NativeBuildError(
            f"Timed out after {LOCK_TIMEOUT_S:.0f} s waiting for the build lock {lock.lock_file}"
        ) from None
    return out


def compile_and_link(
    p: BuildPlan, out: Path, objdir: Path
) -> tuple[list[str], subprocess.CompletedProcess[str]]:
    """Compile every source as one translation unit (``objdir/unity.cc`` includes them all, in
    order) and link it into ``out``, in one compiler run. TensorFlow's headers are most of the
    work and are parsed once instead of once per source: measured here, 9.3 CPU-s instead of
    36 for the four sources (and less wall time than compiling them in parallel on 2 cores).
    Returns the command and its result."""
    for src in p.sources:  # an #include names the file verbatim: no quote or line break in it
        if any(c in str(src) for c in '"\n\r'):
            raise NativeBuildError(f"cannot build from a source path with a quote or line "
                                   f"break in it: {str(src)!r}")  # fmt: skip
    unity = objdir / "unity.cc"
    unity.write_text("".join(f'#include "{src}"\n' for src in p.sources), encoding="utf-8")
    cmd = [p.compiler, *p.command_flags, str(unity), "-o", str(out), *p.link_flags]
    return cmd, subprocess.run(cmd, capture_output=True, text=True, check=False)


def _compile(p: BuildPlan, out: Path) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=".build-", suffix=".so", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with tempfile.TemporaryDirectory(prefix="gcs-hook-build-") as objdir:
            cmd, proc = compile_and_link(p, tmp, Path(objdir))
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines()
            errors = [line for line in lines if "error" in line]
            tail = "\n".join(errors[:20] if errors else lines[-40:])
            if is_supported_tf(p.tf_version):
                note = f"{SUPPORTED_TEXT}; this is a bug in gcs-hook, please report it."
            else:
                note = unsupported_tf_note(p.tf_version) + (
                    f" The build was attempted because {ALLOW_UNSUPPORTED_ENV} is set; "
                    f"install {INSTALL_TF}."
                )
            raise NativeBuildError(
                f"Compiling gcs-hook's native ops against TensorFlow {p.tf_version} failed "
                f"(exit {proc.returncode}). {note}\nCommand: {' '.join(cmd)}\n{tail}"
            )
        os.chmod(tmp, 0o755)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
