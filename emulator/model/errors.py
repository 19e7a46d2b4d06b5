"""Errors of the GCS read-path model, named after TensorFlow's status codes.

Every error the model raises is a :class:`GcsError` whose ``code`` is the TensorFlow status code
name (``OUT_OF_RANGE``, ``NOT_FOUND``, ...), so results can be compared with real TensorFlow by
code. An error may carry ``partial``: the data TensorFlow hands back together with the error
(bytes, or an ``int`` byte count in size-only mode); it is empty for most errors. A transport
error for a media request may carry ``body_bytes``: the size of the HTTP error body the server
sent (TF reads media into an ``n``-byte buffer, so a body larger than ``n`` turns any error
status into FAILED_PRECONDITION "Received X response bytes for a n-byte buffer").

Invariant: messages never contain credentials (the model never sees any).
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AbortedError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "GcsError",
    "InternalError",
    "InvalidArgumentError",
    "NotFoundError",
    "OutOfRangeError",
    "PermissionDeniedError",
    "UnavailableError",
    "UnknownError",
    "RETRIABLE_CODES",
    "error_for_code",
    "error_for_http_status",
]


class GcsError(Exception):
    """Base class; ``code`` is a TensorFlow status code name."""

    code: ClassVar[str] = "UNKNOWN"

    def __init__(
        self, message: str = "", *, partial: bytes | int = b"", body_bytes: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.partial = partial
        self.body_bytes = body_bytes

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}: {self.message!r})"


class OutOfRangeError(GcsError):
    code = "OUT_OF_RANGE"


class NotFoundError(GcsError):
    code = "NOT_FOUND"


class InternalError(GcsError):
    code = "INTERNAL"


class AbortedError(GcsError):
    code = "ABORTED"


class PermissionDeniedError(GcsError):
    code = "PERMISSION_DENIED"


class UnavailableError(GcsError):
    code = "UNAVAILABLE"


class FailedPreconditionError(GcsError):
    code = "FAILED_PRECONDITION"


class InvalidArgumentError(GcsError):
    code = "INVALID_ARGUMENT"


class DeadlineExceededError(GcsError):
    code = "DEADLINE_EXCEEDED"


class UnknownError(GcsError):
    code = "UNKNOWN"


#: Codes TensorFlow's RetryingUtils retries (everything else is returned at once).
RETRIABLE_CODES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "UNKNOWN"})

_BY_CODE: dict[str, type[GcsError]] = {
    cls.code: cls
    for cls in (
        OutOfRangeError,
        NotFoundError,
        InternalError,
        AbortedError,
        PermissionDeniedError,
        UnavailableError,
        FailedPreconditionError,
        InvalidArgumentError,
        DeadlineExceededError,
        UnknownError,
    )
}


def error_for_code(code: str, message: str = "") -> GcsError:
    """The error instance for a TensorFlow status code name (``ValueError`` if unknown)."""
    try:
        cls = _BY_CODE[code]
    except KeyError:
        raise ValueError(f"unknown TensorFlow status code name: {code!r}") from None
    return cls(message)


def error_for_http_status(status: int, message: str = "") -> GcsError | None:
    """Map an HTTP status to the error TF's CurlHttpRequest reports; ``None`` means success.

    200/201/204/206 and 416 (TF treats 416 as a 0-byte success) are not errors.
    """
    if status in (200, 201, 204, 206, 416):
        return None
    text = message or f"HTTP status {status}"
    if status in (400, 406, 411, 414):
        return InvalidArgumentError(text)
    if status in (401, 403, 407):
        return PermissionDeniedError(text)
    if status in (404, 410):
        return NotFoundError(text)
    if status in (302, 303, 304, 307, 412, 413):
        return FailedPreconditionError(text)
    return UnavailableError(text)
