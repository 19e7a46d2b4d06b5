"""The exceptions that end the serving of one client connection (shared by every front module).

Invariants: both are raised only inside a connection's thread and never escape it (the
connection loop catches them and closes the connection); they carry no request data.
"""

from __future__ import annotations


class ClientGone(Exception):
    """The client closed its connection or sent garbage; stop serving it."""


class RequestTimeout(ClientGone):
    """The request (head + body) did not arrive within ``request_timeout``."""
