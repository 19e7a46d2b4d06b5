"""``gcs-hook record``'s shim for fsspec/gcsfs readers: logs every gcsfs file object's reads.

``record`` puts this directory first on the recorded program's ``PYTHONPATH``, so every Python
interpreter of the program's process tree runs it at start-up. When ``GCS_HOOK_FSSPEC_LOG`` names
a directory, it patches ``fsspec.spec.AbstractBufferedFile`` *when fsspec is first imported*
(an import hook: nothing is imported at start-up) and appends one JSON line per event to
``<dir>/<pid>.jsonl``:

- ``open``: a gcsfs file in ``rb`` mode (path ``bucket/key``, size, the cache class it got,
  block size, cache options, and where its size came from: ``request`` = an ``info`` call that
  asked GCS, ``dircache`` = an earlier listing, ``given`` = the caller passed ``size``);
- ``read``: every ``read(n)`` (``readinto``, ``readline`` and friends go through it) at the
  file's position, ``n`` as fsspec normalizes it (``-1`` = to the end), before any cache;
- ``close``;
- ``exit``: the main module of a process finished (``time.monotonic()``), written by every
  interpreter of the tree, fsspec or not: the program's end, after its last request.

Times are ``time.monotonic()`` (the system's monotonic clock, the one the front's ledger uses),
so these events merge with the wire ledger of TensorFlow's requests in one trace.

Not seen: file-system calls that bypass file objects (``cat_file``/``cat_ranges``/``cat``,
``get``, ``pipe``/``put`` and other writes, ``open_files`` readers are seen since they open
file objects), non-gcsfs filesystems, and C++ readers (pyarrow's own ``GcsFileSystem``).
Reads from several threads are logged in the order they entered ``read``. Each process logs
the files it opens (a PyTorch ``DataLoader`` worker that opens its own files is recorded like
the parent). A file opened before a fork and read successfully in the child (gcsfs 2026.10
refuses: "not fork-safe") becomes the child's own file from that read on, logged as a new open
whose cache starts empty.

Invariants: never raises into the program (a failing log write is dropped); logs no bytes
read, no credentials and no environment; chains to the ``sitecustomize`` it shadows.
"""

import contextlib
import os
import sys


def _install(log_dir):
    import importlib.abc
    import importlib.machinery
    import itertools
    import json
    import threading

    lock = threading.Lock()
    state = {"pid": None, "fh": None}
    ids = itertools.count(1)
    local = threading.local()

    def emit(event):
        try:
            with lock:
                if state["pid"] != os.getpid():  # first event, or a forked child
                    state["pid"] = os.getpid()
                    path = os.path.join(log_dir, f"{os.getpid()}.jsonl")
                    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
                    state["fh"] = os.fdopen(os.open(path, flags, 0o600), "a", buffering=1)
                    fsspec = sys.modules.get("fsspec")
                    gcsfs = sys.modules.get("gcsfs")
                    hello = {
                        "ev": "process",
                        "pid": os.getpid(),
                        "fsspec": getattr(fsspec, "__version__", None),
                        "gcsfs": getattr(gcsfs, "__version__", None),
                    }
                    state["fh"].write(json.dumps(hello) + "\n")
                event["pid"] = os.getpid()
                state["fh"].write(json.dumps(event) + "\n")
        except Exception:  # noqa: BLE001 - the program must never see the shim fail
            pass

    def is_gcsfs(fs):
        return any(c.__name__ == "GCSFileSystem" for c in type(fs).__mro__)

    def size_source(fs, path, size):
        if size is not None:
            return "given"
        try:
            parent = path.rstrip("/").rsplit("/", 1)[0]
            for entry in fs.dircache.get(parent) or ():
                if entry.get("name", "").rstrip("/") == path.rstrip("/"):
                    return "dircache"
        except Exception:  # noqa: BLE001
            pass
        return "request"

    def patch(module):
        _patch(module, emit, is_gcsfs, size_source, ids, local)

    class Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name != "fsspec.spec":
                return None
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
                return spec
            loader_exec = spec.loader.exec_module

            def exec_module(module):
                loader_exec(module)
                with contextlib.suppress(Exception):
                    patch(module)

            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, Finder())

    import time

    def program_done():
        emit({"ev": "exit", "t": time.monotonic()})

    # the main module is done: before non-daemon threads are joined and atexit runs (what a
    # program's own timing sees as its end); atexit where that hook does not exist
    import threading as _threading

    try:
        _threading._register_atexit(program_done)
    except Exception:  # noqa: BLE001 - no such hook in this interpreter, or it refused
        import atexit

        atexit.register(program_done)


def _patch(module, emit, is_gcsfs, size_source, ids, local):
    """Wrap AbstractBufferedFile's __init__, read and close (see the module docstring)."""
    import time

    cls = module.AbstractBufferedFile
    orig_init, orig_read, orig_close = cls.__init__, cls.read, cls.close

    def __init__(self, fs, path, mode="rb", *args, **kwargs):
        tracked = mode == "rb" and is_gcsfs(fs)
        if tracked:
            size = kwargs.get("size", args[4] if len(args) > 4 else None)
            source = size_source(fs, str(path), size)
            t = time.monotonic()
        orig_init(self, fs, path, mode, *args, **kwargs)
        if tracked:
            self._gcs_hook_id = f"{os.getpid()}:{next(ids)}"
            given = kwargs.get("cache_options", args[3] if len(args) > 3 else None)
            options = {
                str(k): v
                for k, v in (given if isinstance(given, dict) else {}).items()
                if isinstance(v, int | float | str | bool) or v is None
            }
            self._gcs_hook_open = {
                "ev": "open", "id": self._gcs_hook_id, "t": t, "path": str(self.path),
                "size": int(self.size),
                "cache_type": getattr(getattr(self, "cache", None), "name", None),
                "block_size": int(self.blocksize), "info": source, "cache_options": options,
            }  # fmt: skip
            emit(dict(self._gcs_hook_open))

    def own(fid):
        return fid.partition(":")[0] == str(os.getpid())

    def adopt(self, t):
        """A file opened before this process forked, read here for the first time: from now
        on a file of its own (its cache is this process's copy), logged as opened at ``t``."""
        fid = self._gcs_hook_id = f"{os.getpid()}:{next(ids)}"
        emit({**self._gcs_hook_open, "id": fid, "t": t, "info": "given", "inherited": True})
        return fid

    def read(self, length=-1):
        fid = getattr(self, "_gcs_hook_id", None)
        if fid is None or getattr(local, "depth", 0):
            return orig_read(self, length)
        loc = self.loc
        n = -1 if length is None else int(length)
        if n < 0:
            n = self.size - loc
        t = time.monotonic()
        local.depth = 1
        try:
            out = orig_read(self, length)
        finally:
            local.depth = 0
        if n > 0:
            fid = fid if own(fid) else adopt(self, t)  # only once a read there succeeded
            emit({"ev": "read", "id": fid, "t": t, "t_end": time.monotonic(),
                  "offset": loc, "n": n, "got": len(out)})  # fmt: skip
        return out

    def close(self):
        fid = getattr(self, "_gcs_hook_id", None)
        was_closed = getattr(self, "closed", True)
        orig_close(self)
        if fid is not None and not was_closed and own(fid):
            emit({"ev": "close", "id": fid, "t": time.monotonic()})

    cls.__init__, cls.read, cls.close = __init__, read, close


def _chain():
    """Run the ``sitecustomize`` this one shadows (a venv's or the distribution's), if any."""
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        if not entry or os.path.abspath(entry) == here:
            continue
        candidate = os.path.join(entry, "sitecustomize.py")
        if os.path.isfile(candidate):
            spec = importlib.util.spec_from_file_location("_gcs_hook_next_sitecustomize", candidate)
            if spec and spec.loader:
                spec.loader.exec_module(importlib.util.module_from_spec(spec))
            return


if os.environ.get("GCS_HOOK_FSSPEC_LOG"):
    with contextlib.suppress(Exception):
        _install(os.environ["GCS_HOOK_FSSPEC_LOG"])
with contextlib.suppress(Exception):
    _chain()
