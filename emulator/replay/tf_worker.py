"""``TfWorker``: a TensorFlow subprocess driven over stdin/stdout JSON lines.

Protocol (one JSON object per line):

- parent → child: ``{"code": "<python source>", "vars": {...}}``. ``vars`` values are JSON;
  ``{"__bytes_b64__": "..."}`` stands for ``bytes``.
- child → parent: ``{"ok": true, "result": <JSON value>}`` or
  ``{"ok": false, "type": ..., "message": ..., "traceback": ...}``. ``bytes`` in a result come
  back as ``{"__bytes_b64__": ...}`` and are decoded again.

The code runs with ``tf`` (tensorflow), ``np`` (numpy, if importable), ``os``, ``time`` and the
vars as globals; its value is whatever it assigns to ``result``. Globals persist between calls
(a worker is a small REPL), so tests can keep files open across calls.

Invariants: the child's environment is ``os.environ`` + ``env`` set BEFORE ``import tensorflow``
(TF reads its GCS settings at import); the child's own stdout is redirected to stderr so only
protocol lines reach the parent; every call has a timeout after which the worker is killed and
:class:`TfWorkerError` raised (it never hangs forever).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from typing import Any

_B64 = "__bytes_b64__"


class TfWorkerError(RuntimeError):
    """The code raised in the worker (``type``, ``message``, ``traceback``) or the worker died."""

    def __init__(self, type_: str, message: str, tb: str = "") -> None:
        super().__init__(f"{type_}: {message}")
        self.type = type_
        self.message = message
        self.traceback = tb


def _encode(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {_B64: base64.b64encode(bytes(value)).decode()}
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalars/arrays
        return _encode(value.tolist())
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {_B64}:
            return base64.b64decode(value[_B64])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


class TfWorker:
    """One TensorFlow subprocess; ``run(code, **vars)`` executes code in it."""

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        preamble: str = "",
        timeout: float = 120.0,
        startup_timeout: float = 120.0,
    ) -> None:
        self.timeout = timeout
        child_env = dict(os.environ)
        child_env.update(env or {})
        child_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        child_env["PYTHONUNBUFFERED"] = "1"
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "emulator.replay.tf_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=child_env,
            cwd=os.getcwd(),
        )
        self._lines: queue.Queue[bytes] = queue.Queue()
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()
        self._closed = False
        try:
            self.run("import tensorflow as tf\nresult = tf.__version__", timeout=startup_timeout)
            if preamble:
                self.run(preamble, timeout=startup_timeout)
        except BaseException:
            self.close()
            raise

    def _read_loop(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.put(line)
        self._lines.put(b"")

    def stderr_tail(self, limit: int = 4000) -> str:
        with contextlib.suppress(Exception):
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - limit))
            return self._stderr.read().decode("utf-8", "replace")
        return ""

    @property
    def pid(self) -> int:
        return self._proc.pid

    def run(self, code: str, timeout: float | None = None, **variables: Any) -> Any:
        """Execute ``code`` in the worker and return the value it put in ``result``."""
        if self._closed or self._proc.poll() is not None:
            raise TfWorkerError("WorkerDied", "the TF worker is not running\n" + self.stderr_tail())
        msg = json.dumps({"code": code, "vars": _encode(variables)}) + "\n"
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(msg.encode())
            self._proc.stdin.flush()
        except OSError as exc:
            raise TfWorkerError("WorkerDied", f"{exc}\n{self.stderr_tail()}") from exc
        limit = self.timeout if timeout is None else timeout
        try:
            line = self._lines.get(timeout=limit)
        except queue.Empty:
            self._proc.kill()  # it is stuck: do not wait for a graceful exit
            self.close()
            raise TfWorkerError(
                "Timeout", f"no answer within {limit:.0f} s; worker killed\n" + self.stderr_tail()
            ) from None
        if not line:
            code_ = self._proc.wait(timeout=5)
            raise TfWorkerError("WorkerDied", f"exit code {code_}\n{self.stderr_tail()}")
        reply = json.loads(line)
        if reply.get("ok"):
            return _decode(reply.get("result"))
        raise TfWorkerError(
            reply.get("type", "?"), reply.get("message", ""), reply.get("traceback", "")
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            assert self._proc.stdin is not None
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
        with contextlib.suppress(Exception):
            self._stderr.close()

    def __enter__(self) -> TfWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TfWorker(pid={self._proc.pid}, closed={self._closed})"


def _serve() -> None:  # runs in the child
    proto_out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything the code prints goes to stderr, not the protocol
    sys.stdout = sys.stderr
    namespace: dict[str, Any] = {"__name__": "__tf_worker__", "os": os, "time": time}
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            namespace.update(_decode(req.get("vars") or {}))
            namespace.pop("result", None)
            if "tf" not in namespace:
                import tensorflow as tf

                namespace["tf"] = tf
                with contextlib.suppress(ImportError):
                    import numpy as np

                    namespace["np"] = np
            exec(compile(req["code"], "<tf_worker>", "exec"), namespace)
            out = {"ok": True, "result": _encode(namespace.get("result"))}
            text = json.dumps(out)
        except BaseException as exc:  # report everything, keep serving
            text = json.dumps(
                {
                    "ok": False,
                    "type": type(exc).__name__,
                    "message": str(exc),
                    "traceback": traceback.format_exc(),
                }
            )
        proto_out.write(text + "\n")
        proto_out.flush()


if __name__ == "__main__":
    _serve()
