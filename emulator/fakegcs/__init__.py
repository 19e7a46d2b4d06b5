"""The fake GCS service: what a client (real TensorFlow, gcsfs, google-cloud-storage) talks to.

- ``backend``: fake-gcs-server launchers (embedded binary, container, external endpoint);
  ``seeding`` checks a ``--data`` tree, ``tempdirs`` owns private temp dirs and removes dead
  runs' leftovers;
- ``front``: the loopback TLS-terminating proxy + plain HTTP endpoint that records every request
  (a package: server, connection, exchange, body, tokens, forward, splice, recording);
- ``names``: GCS's naming rules, checked at the front;
- ``certs``, ``oauth``: the per-run CA and the fake OAuth token endpoint;
- ``ledger``, ``shaping``, ``faults``: request records, traffic shaping, injected failures;
- ``session``: ``GcsEmulator``, a backend and a front together.

Nothing here imports ``emulator.model`` or ``emulator.replay``.
"""

from emulator._lazy import lazy_exports

__all__ = [
    "Backend",
    "BackendError",
    "Fault",
    "FaultPlan",
    "Front",
    "GcsEmulator",
    "Ledger",
    "RequestRecord",
    "Shaping",
    "TokenIssuer",
    "make_test_credentials",
    "start_backend",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Backend": ".backend",
        "BackendError": ".backend",
        "start_backend": ".backend",
        "Fault": ".faults",
        "FaultPlan": ".faults",
        "Front": ".front",
        "GcsEmulator": ".session",
        "Ledger": ".ledger",
        "RequestRecord": ".ledger",
        "Shaping": ".shaping",
        "TokenIssuer": ".oauth",
        "make_test_credentials": ".oauth",
    },
)
