"""A model of TensorFlow's GCS read path as Python state.

State only: the one way out is a fetcher (a ``Transport``) that the caller passes in, so the
same classes run on bytes, on byte counts (size-only simulation), or over a real endpoint.

- ``block_cache``: ``BlockCache``, TF's RamFileBlockCache;
- ``gcs_model``: ``GcsFilesystemModel``, the stat cache and the random-access files;
- ``gfile_model``: ``GFileModel``, tf.io.gfile.GFile's buffered read layer;
- ``transport``: the fetchers (memory, size-only, gcsfs, google-cloud-storage);
- ``fsspec_fs``: the model as the ``tfgcs`` fsspec filesystem;
- ``clock``, ``errors``: integer-second clocks and TF status codes.

Nothing here imports ``emulator.fakegcs`` or ``emulator.replay``.
"""

from emulator._lazy import lazy_exports

__all__ = [
    "BlockCache",
    "CacheStats",
    "GFileModel",
    "GcsError",
    "GcsFilesystemModel",
    "MemoryTransport",
    "RealClock",
    "SizeOnlyTransport",
    "TFCachedFileSystem",
    "Transport",
    "VirtualClock",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "BlockCache": ".block_cache",
        "CacheStats": ".block_cache",
        "GFileModel": ".gfile_model",
        "GcsError": ".errors",
        "GcsFilesystemModel": ".gcs_model",
        "MemoryTransport": ".transport",
        "RealClock": ".clock",
        "SizeOnlyTransport": ".transport",
        "TFCachedFileSystem": ".fsspec_fs",
        "Transport": ".transport",
        "VirtualClock": ".clock",
    },
)
