"""Ops of other clients than TensorFlow in a trace: gcsfs/fsspec file objects.

A recorded program can read through TensorFlow's C++ filesystem and through gcsfs in one run;
both land in one trace, in time order. An ``open`` op with ``"client": "gcsfs"`` starts a gcsfs
file handle; that handle's ``read`` and ``close`` ops are gcsfs's too. TensorFlow's engines
never see them (:func:`split_client_ops` takes them out before the TF ops are validated), and
``tune --client gcsfs`` replays only them (:mod:`emulator.model.fsspec_cache`).

A gcsfs ``open``: ``handle``, ``object``, ``client``, ``size`` (what ``info`` said at open),
optional ``info`` (``request``: it asked GCS, ``dircache``: from an earlier listing, ``given``:
the caller passed the size) and ``recorded`` (the cache the program ran with: ``cache_type``,
``block_size``, ``cache_options``). Reads: ``offset`` >= 0 and ``n`` >= 1, as fsspec normalized
them.

Invariants: validation is complete (one :class:`ClientOpError` naming the op) before anything
runs; the TF ops keep their order; each client op keeps its index in the original list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["CLIENTS", "ClientOp", "ClientOpError", "split_client_ops"]

#: The clients other than TensorFlow a trace may name.
CLIENTS = ("gcsfs",)
_INFO = ("request", "dircache", "given")


class ClientOpError(ValueError):
    """A client op is malformed; the message says where."""


@dataclass(frozen=True)
class ClientOp:
    """One op of a non-TF client: ``index`` in the trace's ``ops``; ``op`` the validated dict."""

    index: int
    client: str
    op: dict[str, Any]


def _nat(raw: dict[str, Any], key: str, where: str, least: int = 0) -> int:
    v = raw.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < least:
        raise ClientOpError(f"{where}: {key!r} must be an integer >= {least}, got {v!r}")
    return v


def _open(raw: dict[str, Any], where: str) -> dict[str, Any]:
    allowed = {"op", "handle", "object", "client", "size", "info", "recorded", "comment"}
    extra = set(raw) - allowed
    if extra:
        raise ClientOpError(f"{where}: unknown keys {sorted(extra)}")
    if raw["client"] not in CLIENTS:
        raise ClientOpError(f"{where}: unknown client {raw['client']!r} (known: {CLIENTS})")
    if not isinstance(raw.get("object"), str) or "/" not in raw["object"]:
        raise ClientOpError(f"{where}: 'object' must be 'bucket/path'")
    if raw.get("info", "request") not in _INFO:
        raise ClientOpError(f"{where}: 'info' must be one of {_INFO}")
    if not isinstance(raw.get("recorded", {}), dict):
        raise ClientOpError(f"{where}: 'recorded' must be an object")
    _nat(raw, "size", where)
    return dict(raw)


def split_client_ops(ops: list[Any]) -> tuple[list[Any], tuple[ClientOp, ...]]:
    """``(TF ops, client ops)`` of a trace's raw ``ops`` list (see the module docstring)."""
    tf_ops: list[Any] = []
    client_ops: list[ClientOp] = []
    open_handles: dict[str, str] = {}  # handle -> client
    for i, raw in enumerate(ops):
        if not isinstance(raw, dict):
            tf_ops.append(raw)
            continue
        where = f"ops[{i}] ({raw.get('op')})"
        handle = raw.get("handle")
        if raw.get("op") == "open" and "client" in raw:
            if not isinstance(handle, str) or handle in open_handles:
                raise ClientOpError(f"{where}: handle {handle!r} is missing or already open")
            op = _open(raw, where)
            open_handles[handle] = op["client"]
            client_ops.append(ClientOp(i, op["client"], op))
        elif isinstance(handle, str) and handle in open_handles:
            kind = raw.get("op")
            if kind == "read":
                extra = set(raw) - {"op", "handle", "offset", "n", "comment"}
                if extra:
                    raise ClientOpError(f"{where}: unknown keys {sorted(extra)}")
                _nat(raw, "offset", where)
                _nat(raw, "n", where, 1)
            elif kind == "close":
                del open_handles[handle]
            else:
                raise ClientOpError(f"{where}: a {open_handles[handle]} handle only reads/closes")
            client = open_handles.get(handle) or next(
                c.client for c in reversed(client_ops) if c.op.get("handle") == handle
            )
            client_ops.append(ClientOp(i, client, dict(raw)))
        else:
            tf_ops.append(raw)
    return tf_ops, tuple(client_ops)
