"""Model of TensorFlow's Python ``tf.io.gfile.GFile`` read path on top of the filesystem model.

``tf.io.gfile.GFile`` (python/lib/io/file_io.py, TF 2.21) reads through a C++
``BufferedInputStream`` of 512 KiB over a ``RandomAccessInputStream`` over the filesystem's
``RandomAccessFile`` (xla/tsl/lib/io/buffered_inputstream.cc, random_inputstream.cc). So the
filesystem does not see the caller's reads but:

- buffer fills: ``Read(stream_pos, 512 KiB)`` at the stream position, whenever the buffer is
  used up; a short fill (OUT_OF_RANGE) is remembered and ends later reads until a seek resets it;
- ``read()`` with no size first calls ``size()`` = ``Stat`` (through the stat cache);
- ``seek`` within the current buffer moves a pointer; before the buffer it resets the stream;
  past the buffer it *skips*, and skipping probes with a 1-byte ``Read`` at the target - 1
  (falling back to 8 MiB reads when that fails);
- the file is opened (``NewRandomAccessFile``, no request) at the first read/seek/tell.

:class:`GFileModel` reproduces those calls on a :class:`~emulator.model.gcs_model.GcsFilesystemModel`
(so every cache/buffer effect below it is the model's). Errors other than OUT_OF_RANGE raise the
:class:`~emulator.model.errors.GcsError`, as TF raises ``tf.errors.*``.
"""

from __future__ import annotations

from emulator.model.block_cache import Payload, payload_len, payload_slice
from emulator.model.errors import GcsError, InvalidArgumentError, OutOfRangeError
from emulator.model.gcs_model import GcsFilesystemModel
from emulator.model.random_access import RandomAccessFileModel

__all__ = ["GFILE_BUFFER_SIZE", "GFileModel"]

#: The buffer tf.io.gfile.GFile gives its BufferedInputStream (1024 * 512 bytes).
GFILE_BUFFER_SIZE = 512 * 1024
_MAX_SKIP = 8 * 1024 * 1024


def _ok_or_eof(err: GcsError | None) -> bool:
    return err is None or err.code == "OUT_OF_RANGE"


class _BufferedInputStream:
    """tsl::io::BufferedInputStream over a RandomAccessInputStream (one file, one position)."""

    def __init__(self, file: RandomAccessFileModel, size: int, empty: Payload) -> None:
        self._file = file
        self._size = size
        self._empty = empty
        self._in_pos = 0  # RandomAccessInputStream position
        self._buf: Payload = empty
        self._pos = 0
        self._limit = 0
        self._status: GcsError | None = None

    # -- RandomAccessInputStream
    def _in_read(self, n: int) -> tuple[Payload, GcsError | None]:
        r = self._file.read(self._in_pos, n)
        if _ok_or_eof(r.error):
            self._in_pos += r.returned
        return r.data, r.error

    def _in_skip(self, k: int) -> GcsError | None:
        if k > 0:
            r = self._file.read(self._in_pos + k - 1, 1)
            if _ok_or_eof(r.error) and r.returned == 1:
                self._in_pos += k
                return None
        while k > 0:
            m = min(_MAX_SKIP, k)
            r = self._file.read(self._in_pos, m)
            if not _ok_or_eof(r.error):
                return r.error
            self._in_pos += r.returned
            if r.returned < m:
                return OutOfRangeError("reached end of file")
            k -= m
        return None

    # -- BufferedInputStream
    def _fill(self) -> GcsError | None:
        if self._status is not None:
            self._pos = self._limit = 0
            return self._status
        data, err = self._in_read(self._size)
        self._buf = data
        self._pos = 0
        self._limit = payload_len(data)
        if err is not None:
            self._status = err
        return err

    def read_n(self, n: int) -> tuple[Payload, GcsError | None]:
        if n < 0:
            return self._empty, InvalidArgumentError(f"Can't read a negative number of bytes: {n}")
        if self._pos == self._limit and self._status is not None and n > 0:
            return self._empty, self._status
        parts: list[Payload] = []
        got = 0
        err: GcsError | None = None
        while got < n:
            if self._pos == self._limit:
                err = self._fill()
                if self._limit == 0:
                    self._status = err
                    break
            take = min(self._limit - self._pos, n - got)
            parts.append(payload_slice(self._buf, self._pos, self._pos + take))
            self._pos += take
            got += take
        data = sum(parts) if type(self._empty) is int else b"".join(parts)  # type: ignore[arg-type]
        if err is not None and err.code == "OUT_OF_RANGE" and got == n:
            err = None
        return data, err

    def read_line(self) -> bytes:
        """ReadLineAsString: up to and including the next ``\\n``; ``\\r`` bytes are dropped;
        errors end the line silently (TF ignores them here)."""
        if type(self._empty) is int:
            raise TypeError("readline needs bytes; a size-only transport has none")
        out = bytearray()
        while True:
            if self._pos == self._limit:
                self._fill()
                if self._limit == 0:
                    return bytes(out)
            buf: bytes = self._buf  # type: ignore[assignment]
            hits = [
                i
                for i in (
                    buf.find(b"\n", self._pos, self._limit),
                    buf.find(b"\r", self._pos, self._limit),
                )
                if i >= 0
            ]
            if not hits:
                out += buf[self._pos : self._limit]
                self._pos = self._limit
                continue
            stop = min(hits)
            out += buf[self._pos : stop]
            self._pos = stop + 1
            if buf[stop] == 0x0A:
                out += b"\n"
                return bytes(out)

    def skip(self, k: int) -> GcsError | None:
        if k < 0:
            return InvalidArgumentError(f"Can only skip forward, not {k}")
        if self._pos + k < self._limit:
            self._pos += k
            return None
        err = self._in_skip(k - (self._limit - self._pos))
        self._pos = self._limit = 0
        if err is not None and err.code == "OUT_OF_RANGE":
            self._status = err
        return err

    def tell(self) -> int:
        return self._in_pos - (self._limit - self._pos)

    def seek(self, position: int) -> GcsError | None:
        if position < 0:
            return InvalidArgumentError(f"Seeking to a negative position: {position}")
        if position < self._in_pos - self._limit:
            self._in_pos = 0  # Reset()
            self._pos = self._limit = 0
            self._status = None
            return self.skip(position)
        if position < self.tell():
            self._pos -= self.tell() - position
            return None
        return self.skip(position - self.tell())


class GFileModel:
    """``tf.io.gfile.GFile(path, "rb")`` for reading, on a :class:`GcsFilesystemModel`.

    ``read(n=-1)``, ``seek(offset, whence=0)``, ``tell()``, ``size()``, ``readline()``;
    returns bytes (or byte counts on a size-only transport).
    """

    def __init__(
        self, fs: GcsFilesystemModel, path: str, buffer_size: int = GFILE_BUFFER_SIZE
    ) -> None:
        if buffer_size <= 0:
            raise ValueError(f"buffer_size must be > 0, got {buffer_size}")
        self._fs = fs
        self.name = path
        self._buffer_size = buffer_size
        self._stream: _BufferedInputStream | None = None

    def _preread(self) -> _BufferedInputStream:
        if self._stream is None:
            f = self._fs.open(self.name)  # NewRandomAccessFile: no request
            self._stream = _BufferedInputStream(f, self._buffer_size, self._fs._empty)
        return self._stream

    def size(self) -> int:
        """``Stat(path).length`` (through the stat cache)."""
        return self._fs.stat(self.name).length

    def tell(self) -> int:
        return self._preread().tell()

    def read(self, n: int = -1) -> Payload:
        stream = self._preread()
        length = self.size() - self.tell() if n == -1 else n
        data, err = stream.read_n(length)
        if err is not None and err.code != "OUT_OF_RANGE":
            raise err
        return data

    def readline(self) -> bytes:
        """The next line including its ``\\n`` (``\\r`` dropped, as TF does); b"" at EOF."""
        return self._preread().read_line()

    def seek(self, offset: int, whence: int = 0) -> None:
        stream = self._preread()
        if whence == 1:
            offset += self.tell()
        elif whence == 2:
            offset += self.size()
        elif whence != 0:
            raise InvalidArgumentError(
                f"Invalid whence argument: {whence}. Valid values are 0, 1, or 2."
            )
        err = stream.seek(offset)
        if err is not None:
            raise err

    def close(self) -> None:
        self._stream = None

    def __enter__(self) -> GFileModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
