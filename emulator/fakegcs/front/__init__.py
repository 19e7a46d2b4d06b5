"""The front: a loopback-only HTTP proxy + TLS terminator in front of fake-gcs-server.

One listening port (``Front.url``, plain HTTP on 127.0.0.1) serves two kinds of clients:

- TensorFlow's C++ filesystem, through ``https_proxy``: it sends ``CONNECT host:443``; the front
  accepts only ``storage.googleapis.com:443`` and ``www.googleapis.com:443`` (anything else:
  403 + a ledger record), answers 200, terminates TLS itself with a per-run CA
  (:class:`emulator.fakegcs.certs.LocalCA`) and then serves HTTP/1.1 inside the tunnel.
- Python clients (gcsfs ``endpoint_url``, google-cloud-storage ``api_endpoint``,
  ``STORAGE_EMULATOR_HOST``) sending plain HTTP requests directly.

Every request (both kinds) is recorded in the :class:`emulator.fakegcs.ledger.Ledger` and then
either answered by the fake OAuth token endpoint (``/oauth2/v3/token``, ``/oauth2/v4/token``) or
forwarded to the backend over plain HTTP, keeping ``Host: storage.googleapis.com`` so XML-style
``GET /<bucket>/<object>`` works.

Modules, one job each (a request flows top to bottom):

- ``server``: :class:`Front` — the listening socket, the connection cap, limits, lifetime,
  principals;
- ``loop``: the connection loop (accepting, waiting connections, TLS handshakes, eviction);
  ``workers``: the threads that serve requests; ``heads``: junk and head-end detection;
- ``connection``: one client connection — the HTTP/1.1 loop (h11), socket I/O with its
  deadlines, ``CONNECT`` and the TLS tunnel;
- ``exchange``: one request — target parsing, classification, checks (framing, names) and
  routing (token endpoint, auth check, injected faults, forwarding);
- ``body``: the request body, received whole before forwarding (memory, then a temp file);
- ``tokens``: the token endpoint route;
- ``forward``: forwarding one request to the backend and streaming the answer back, network
  faults; ``splice``: large plain-path answers moved with ``splice(2)``;
- ``recording``: the one ledger record each request gets;
- ``errors`` (``ClientGone``, ``RequestTimeout``) and ``notices`` (one-line warnings): shared by
  the modules above, importing none of them, so the package has no import circle.

Invariants:
- Binds 127.0.0.1 only (``ValueError`` for any other host).
- Request bodies are received completely (memory up to a limit, then a 0600 temp file) before
  they are forwarded, so the backend never waits on a slow client; response bodies stream
  through one buffer of ``CHUNK`` bytes lent per request. Keep-alive is honoured on both sides.
- Waiting connections (idle, half-open, collecting a head, in a TLS handshake) are held by one
  loop thread (``loop``); a worker thread (``workers``, at most ``max_workers``) serves a
  connection only once a whole request head is in. At most ``max_connections`` are open: at
  the cap the least-progressed waiting one is evicted; 503 only when all are busy. One
  persistent backend connection per client connection.
- Every request that gets an answer gets exactly one ledger record, refusals and injected
  faults included; transfers cut short are marked ``extra["aborted"]``.
- ``Location`` headers of resumable uploads are rewritten to come back through the front
  (``https://www.googleapis.com/...`` inside a tunnel, the client's own ``http://host:port`` on
  the plain path).
- ``Authorization`` is read only to attribute a principal; it is never forwarded, stored,
  logged or shown. Tokens never appear in the ledger.
- ``shaping`` and ``require_auth`` may be changed while the front runs; each new response reads
  the current values. ``faults`` (:class:`emulator.fakegcs.faults.FaultPlan`) turns chosen
  requests into error answers or network failures.
- Limits and what a client sees past them: README, "Running the emulator".
"""

from emulator.fakegcs.front.forward import CHUNK
from emulator.fakegcs.front.server import Front

__all__ = ["CHUNK", "Front"]
