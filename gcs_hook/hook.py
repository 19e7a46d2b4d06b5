"""``ConfigureGcsHook``, ``configure_gcs``, ``configure_colab_session``: r1.12's
``tf.contrib.cloud`` API on current TensorFlow, backed by the ops in ``gcs_hook/native``.

What the ops change is process-global: the block cache and auth provider of TensorFlow's
built-in ``gs://`` filesystem in the process that RUNS the op (for a remote session, the worker
that the op is placed on — hence ``device``).

Invariants:

- All input is validated before any op is built or run: bad input raises ``ValueError`` and
  changes nothing (see :mod:`gcs_hook.params`, :mod:`gcs_hook.credentials`).
- Credentials reach the op only through a string placeholder feed (graph mode) or an eager
  tensor; they never become a graph constant, a log line, or a file.
- Credentials are applied before the block cache (r1.12's order); if the credentials op fails
  (e.g. the token endpoint rejects them) the block cache is not changed and the previously
  installed auth provider stays.
- Per graph (and device) the configure ops are built once and fed each time, so calling
  ``configure_gcs`` repeatedly does not grow the graph.

When the configuration takes effect, with ``ConfigureGcsHook`` in a ``MonitoredSession`` /
``MonitoredTrainingSession``:

- default (r1.12): ops are built in ``begin()`` and run in ``after_create_session()`` — AFTER the
  session was created, so GCS reads made while creating the session (restoring a checkpoint from
  ``checkpoint_dir``, ``Scaffold`` init/ready ops) still use TensorFlow's defaults and the
  environment's credentials;
- ``configure_in_begin=True``: the ops run in ``begin()``, in a private session in this process,
  BEFORE the session is created, so checkpoint restore and every later read use the new
  configuration. Use this in single-process training; with remote sessions use the default mode
  (the ops must run on the remote worker).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import weakref
from typing import Any

import numpy as np
import tensorflow as tf

from gcs_hook import native_ops
from gcs_hook.credentials import Credentials, load_credentials_file, parse_credentials
from gcs_hook.params import UINT64_MAX, BlockCacheParams

__all__ = [
    "ConfigureGcsHook",
    "configure_gcs",
    "configure_colab_session",
    "current_block_cache",
    "validate_block_cache",
]

log = logging.getLogger(__name__)


def validate_block_cache(block_cache: Any) -> BlockCacheParams | None:
    """``None`` or a :class:`BlockCacheParams`; anything else → ``ValueError`` (r1.12 message)."""
    if block_cache is None:
        return None
    if not isinstance(block_cache, BlockCacheParams):
        raise ValueError(
            "block_cache must be an instance of BlockCacheParams "
            f"(got {type(block_cache).__name__})."
        )
    return block_cache


class _GraphOps:
    """The configure ops in one graph under one device: fed, never holding values."""

    def __init__(self, device: Any) -> None:
        ops = native_ops.load()
        placement = tf.device(device) if device else contextlib.nullcontext()
        with placement, tf.name_scope("gcs_hook"):
            self.credentials = tf.compat.v1.placeholder(tf.string, shape=[], name="credentials")
            self.credentials_op = ops.gcs_configure_credentials(self.credentials)
            self.max_bytes = tf.compat.v1.placeholder(tf.uint64, shape=[], name="max_bytes")
            self.block_size = tf.compat.v1.placeholder(tf.uint64, shape=[], name="block_size")
            self.max_staleness = tf.compat.v1.placeholder(tf.uint64, shape=[], name="max_staleness")
            self.block_cache_op = ops.gcs_configure_block_cache(
                max_cache_size=self.max_bytes,
                block_size=self.block_size,
                max_staleness=self.max_staleness,
            )
            self.params_op = ops.gcs_block_cache_params()

    def run(
        self, session: Any, credentials: Credentials | None, block_cache: BlockCacheParams | None
    ) -> None:
        if credentials is not None:
            session.run(
                self.credentials_op, feed_dict={self.credentials: credentials.secret_json()}
            )
        if block_cache is not None:
            session.run(
                self.block_cache_op,
                feed_dict={
                    self.max_bytes: np.uint64(block_cache.max_bytes),
                    self.block_size: np.uint64(block_cache.block_size),
                    self.max_staleness: np.uint64(block_cache.max_staleness),
                },
            )


_graph_ops: weakref.WeakKeyDictionary[tf.Graph, dict[str, _GraphOps]] = weakref.WeakKeyDictionary()
_graph_ops_lock = threading.Lock()


def _ops_for(graph: tf.Graph, device: Any) -> _GraphOps:
    key = str(device or "")
    with _graph_ops_lock:
        per_graph = _graph_ops.setdefault(graph, {})
        if key not in per_graph:
            if graph.finalized:
                raise RuntimeError(
                    "The session's graph is finalized, so gcs_hook cannot add its configure ops; "
                    "use ConfigureGcsHook (it builds them in begin()) or call configure_gcs "
                    "before the graph is finalized."
                )
            with graph.as_default():
                per_graph[key] = _GraphOps(device)
        return per_graph[key]


def _run_eagerly(
    credentials: Credentials | None, block_cache: BlockCacheParams | None, device: Any
) -> None:
    ops = native_ops.load()
    with tf.device(device) if device else contextlib.nullcontext():
        if credentials is not None:
            ops.gcs_configure_credentials(tf.constant(credentials.secret_json()))
        if block_cache is not None:
            ops.gcs_configure_block_cache(
                max_cache_size=tf.constant(block_cache.max_bytes, tf.uint64),
                block_size=tf.constant(block_cache.block_size, tf.uint64),
                max_staleness=tf.constant(block_cache.max_staleness, tf.uint64),
            )


def _run_in_private_session(
    credentials: Credentials | None, block_cache: BlockCacheParams | None, device: Any
) -> None:
    """Run the ops now, in this process, in a throw-away graph and session (the caller's graph
    is untouched, and a bad ``device`` cannot poison later calls)."""
    graph = tf.Graph()
    ops = _ops_for(graph, device)
    with tf.compat.v1.Session(graph=graph) as session:
        ops.run(session, credentials, block_cache)


def _run_now(
    credentials: Credentials | None, block_cache: BlockCacheParams | None, device: Any
) -> None:
    if tf.executing_eagerly():
        _run_eagerly(credentials, block_cache, device)
    else:
        _run_in_private_session(credentials, block_cache, device)


def configure_gcs(
    session: Any = None,
    credentials: Any = None,
    block_cache: BlockCacheParams | None = None,
    device: Any = None,
) -> None:
    """Configures the GCS file system (credentials and/or block cache) — r1.12's signature.

    Warning (as in r1.12): GCS ``credentials`` may be transmitted over the network unencrypted
    when the session is remote; make sure the network is trusted.

    Args:
      session: a ``tf.compat.v1.Session`` whose graph gets the configure ops (placed on
        ``device``). ``None`` (TF2): run the ops right away in this process — eagerly when
        executing eagerly, else in a private session.
      credentials: a JSON string or dict with ``refresh_token`` (authorized_user) or
        ``private_key`` (service_account), or a :class:`~gcs_hook.credentials.Credentials`.
      block_cache: a :class:`BlockCacheParams`. Identical parameters are a no-op in TF (cached
        blocks are kept); different ones replace the cache with a new, empty one.
      device: device for the ops, e.g. ``"/job:worker/task:0/device:CPU:0"``.

    Raises:
      ValueError: bad credentials or block_cache (nothing is changed).
      tf.errors.OpError: TensorFlow rejected the configuration (e.g. no token could be obtained
        with the credentials); the previous configuration stays.
    """
    creds = parse_credentials(credentials)
    params = validate_block_cache(block_cache)
    if creds is None and params is None:
        return
    if session is None:
        _run_now(creds, params, device)
    else:
        _ops_for(session.graph, device).run(session, creds, params)
    if creds is not None:
        log.info("gcs_hook: configured GCS credentials (%s, %s)", creds.kind, creds.identity)
    if params is not None:
        log.info("gcs_hook: configured GCS block cache %r", params)


def configure_colab_session(session: Any = None, *, credentials_path: Any = None) -> None:
    """Configures GCS with application-default credentials read from a JSON file.

    ``credentials_path`` overrides the lookup; otherwise the first existing of
    ``$GOOGLE_APPLICATION_CREDENTIALS``, ``/content/adc.json`` (Colab, r1.12's default) and
    gcloud's ``application_default_credentials.json``. ``FileNotFoundError`` if none exists.
    """
    configure_gcs(session, credentials=load_credentials_file(credentials_path))


def current_block_cache(session: Any = None) -> tuple[int, int, int]:
    """TensorFlow's current ``(block_size, max_bytes, max_staleness)`` (read back by the op)."""
    if session is not None:
        values = session.run(_ops_for(session.graph, None).params_op)
    elif tf.executing_eagerly():
        values = native_ops.load().gcs_block_cache_params().numpy()
    else:
        graph = tf.Graph()
        ops = _ops_for(graph, None)
        with tf.compat.v1.Session(graph=graph) as s:
            values = s.run(ops.params_op)
    return tuple(int(v) & UINT64_MAX for v in values)  # type: ignore[return-value]


class ConfigureGcsHook(tf.compat.v1.train.SessionRunHook):
    """Configures GCS (credentials, block cache) when used with ``MonitoredSession`` /
    ``MonitoredTrainingSession`` / Estimator — r1.12's ``tf.contrib.cloud.ConfigureGcsHook``.

    Warning (as in r1.12): GCS ``credentials`` may be transmitted over the network unencrypted
    when the session is remote; make sure the network is trusted.

    ``begin()`` builds the ops (credentials through a string placeholder, never a constant);
    ``after_create_session()`` runs them. ``before_run``/``after_run``/``end`` are the plain
    ``SessionRunHook`` no-ops. With ``configure_in_begin=True`` the ops instead run inside
    ``begin()`` in this process, before the session (and its checkpoint restore) exists — see
    the module docstring for when to use which.

    Args:
      credentials: JSON string or dict (``refresh_token`` or ``private_key``), or ``None``.
      block_cache: a :class:`BlockCacheParams` or ``None``.
      configure_in_begin: run the ops in ``begin()`` instead of ``after_create_session()``.
      device: device for the ops built in ``begin()``.
      timeline: optional :class:`gcs_hook.timeline.Timeline`; records ``configure_start`` and
        ``configure_done`` events (source ``"configure_gcs_hook"``).

    Raises:
      ValueError: credentials improperly formatted or block_cache not a ``BlockCacheParams``.
    """

    def __init__(
        self,
        credentials: Any = None,
        block_cache: BlockCacheParams | None = None,
        *,
        configure_in_begin: bool = False,
        device: Any = None,
        timeline: Any = None,
    ) -> None:
        self._credentials = parse_credentials(credentials)
        self._block_cache = validate_block_cache(block_cache)
        self._configure_in_begin = bool(configure_in_begin)
        self._device = device
        self._timeline = timeline
        self._ops: _GraphOps | None = None

    def __repr__(self) -> str:
        return (
            f"ConfigureGcsHook(credentials={self._credentials!r}, block_cache={self._block_cache!r}, "
            f"configure_in_begin={self._configure_in_begin})"
        )

    def _record(self, name: str) -> None:
        if self._timeline is not None:
            detail = {}
            if self._block_cache is not None:
                detail["block_cache"] = list(self._block_cache.as_tuple())
            if self._credentials is not None:
                detail["credentials"] = self._credentials.kind
            self._timeline.record(name, "configure_gcs_hook", **detail)

    def _nothing_to_do(self) -> bool:
        return self._credentials is None and self._block_cache is None

    def begin(self) -> None:
        if self._nothing_to_do():
            return
        if self._configure_in_begin:
            self._record("configure_start")
            _run_in_private_session(self._credentials, self._block_cache, self._device)
            self._record("configure_done")
            return
        self._ops = _ops_for(tf.compat.v1.get_default_graph(), self._device)

    def after_create_session(self, session, coord) -> None:
        del coord
        if self._ops is None:
            return
        self._record("configure_start")
        self._ops.run(session, self._credentials, self._block_cache)
        self._record("configure_done")
