"""The emulator: a fake GCS that real TensorFlow reads from, a model of TF's GCS read path, and
the replay machinery that proves the model against TF.

Three subpackages, one per role; imports go one way (``replay`` → ``model``, ``replay`` →
``fakegcs``; ``model`` imports neither)::

    emulator.fakegcs   the fake GCS service: backend launcher, TLS front, ledger, OAuth, shaping,
                       faults, GcsEmulator (backend + front)
    emulator.model     TF's read path as Python state: BlockCache, GcsFilesystemModel, GFile,
                       transports (the fetcher side), the ``tfgcs`` fsspec filesystem
    emulator.replay    traces: the format, size-only simulation, the model and TF engines,
                       comparison, random traces, the TF subprocess worker

``emulator.pytest_plugin`` wires the service and the TF worker into pytest fixtures. The main
entry points are re-exported here and from each subpackage, imported on first use.
"""

from emulator._lazy import lazy_exports

__all__ = [
    "BlockCache",
    "GcsEmulator",
    "GcsFilesystemModel",
    "Ledger",
    "TFCachedFileSystem",
    "TfWorker",
    "load_trace",
    "simulate",
    "start_backend",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "GcsEmulator": ".fakegcs",
        "Ledger": ".fakegcs",
        "start_backend": ".fakegcs",
        "BlockCache": ".model",
        "GcsFilesystemModel": ".model",
        "TFCachedFileSystem": ".model",
        "TfWorker": ".replay",
        "load_trace": ".replay",
        "simulate": ".replay",
    },
)
