"""A model of TensorFlow's GCS read path as Python state.

State only: the one way out is a fetcher (a ``Transport``) that the caller passes in, so the
same classes run on bytes, on byte counts (size-only simulation), or over a real endpoint.

- ``block_cache``: ``BlockCache``, TF's RamFileBlockCache;
- ``gcs_model``: ``GcsFilesystemModel``, TF's GCS filesystem (open, stat, glob, cache resets),
  built from ``stat_cache`` (``StatCache``, TF's expiring LRU cache), ``random_access`` (the
  cached and buffered readers ``open`` returns) and ``gcs_paths`` (path parsing, globbing);
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
    "RandomAccessFileModel",
    "ReadResult",
    "RealClock",
    "SizeOnlyTransport",
    "StatCache",
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
        "RandomAccessFileModel": ".random_access",
        "ReadResult": ".random_access",
        "RealClock": ".clock",
        "SizeOnlyTransport": ".transport",
        "StatCache": ".stat_cache",
        "TFCachedFileSystem": ".fsspec_fs",
        "Transport": ".transport",
        "VirtualClock": ".clock",
    },
)
