"""The pass-through and limit options of ``gcs-hook record`` (see :mod:`gcs_hook.cli.record_cmd`).

    gcs-hook record --upstream https://storage.googleapis.com --out T.json
                    [--upstream-ca CA.pem] [--connect-to HOST=ADDR:PORT ...]
                    [--max-seconds D] [--max-requests N] [--redact-names] -- CMD [ARGS...]

``--upstream`` records a real job against real GCS (:mod:`benchmarks.record.upstream`);
``--upstream-ca`` and ``--connect-to`` point the front elsewhere for tests. ``--max-seconds`` /
``--max-requests`` stop the program and write the trace of what it did so far (exit 0);
``--redact-names`` hashes bucket and object names in the trace. ``--curl-ca run`` (the default)
gives ``CURL_CA_BUNDLE`` only the per-run CA: libcurl (TensorFlow) loads its bundle for every
connection, so the system CAs cost about 7 ms per request; curl commands in the job then cannot
verify other hosts, so blind tunnels are warned about, and ``--curl-ca bundle`` keeps the system
CAs. At the end the front's own time is printed. Every option is checked
before anything starts: a bad one is one line and exit 2. A stop signal while recording stops
the program's process group and removes the front's key material (exit 128 + the signal
number); :func:`stopped_cleanly` is used by every mode of ``record``.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from gcs_hook.cli.errors import fail
from gcs_hook.cli.values import option, parse_duration

#: ``--max-seconds`` upper bound (a week).
MAX_RECORD_SECONDS = 7 * 24 * 3600.0


@dataclass
class Limits:
    max_seconds: float | None
    max_requests: int | None
    redact_names: bool
    curl_per_run_ca: bool = True
    keep_command: bool = False


@contextlib.contextmanager
def stopped_cleanly(console: Any) -> Iterator[None]:
    """SIGINT/SIGTERM/SIGHUP while recording: the program is stopped, the front and every key
    and CA file removed, nothing written; ``record`` exits 128 + the signal number."""
    from gcs_hook.cli.serve_runtime import StopRequested, StopSignals

    with StopSignals() as signals:
        try:
            yield
        except StopRequested as stop:
            signals.quiet()
            name = signal.Signals(stop.signum).name
            console.print(f"record: stopped on {name}; program stopped, no trace written")
            raise typer.Exit(128 + stop.signum) from None


def check_limits(max_seconds: str | None, max_requests: int | None, redact: bool) -> Limits:
    seconds = None
    if max_seconds is not None:
        seconds = option("--max-seconds", parse_duration, max_seconds, maximum=MAX_RECORD_SECONDS)
        if seconds <= 0:
            fail(f"--max-seconds must be > 0, got {max_seconds!r}")
    if max_requests is not None and max_requests < 1:
        fail(f"--max-requests must be >= 1, got {max_requests}")
    return Limits(seconds, max_requests, redact)


def check_upstream(
    upstream: str | None,
    upstream_ca: str | None,
    connect_to: list[str] | None,
    from_ledger: Any,
    fake_options: dict[str, Any] | None = None,
) -> tuple[Any, dict[str, tuple[str, int]]] | None:
    """The parsed pass-through options, None without ``--upstream``; one-line errors.
    ``fake_options``: the fake mode's options the user gave (flag → value or None)."""
    if upstream is None:
        if upstream_ca is not None or connect_to:
            fail("--upstream-ca and --connect-to go with --upstream")
        return None
    if from_ledger is not None:
        fail("--upstream records a running program; do not also give --from-ledger")
    given = [flag for flag, value in (fake_options or {}).items() if value is not None]
    if given:
        fail(f"{given[0]} sets up the fake GCS; with --upstream the objects are the upstream's")
    if upstream_ca is not None and Path(upstream_ca).is_dir():
        fail(f"--upstream-ca {upstream_ca} is a directory; give a PEM file of CA certificates")
    if upstream_ca is not None and not Path(upstream_ca).is_file():
        fail(f"--upstream-ca {upstream_ca}: no such file")
    from emulator.fakegcs.tunnel import ConnectPolicy
    from emulator.fakegcs.upstream import UpstreamConfig

    try:
        config = UpstreamConfig.parse(upstream, upstream_ca)
        mapping = dict(ConnectPolicy.parse_connect_to(s) for s in connect_to or [])
    except ValueError as exc:
        fail(f"--upstream: {exc}" if "connect-to" not in str(exc) else str(exc))
    return config, mapping


def run_upstream(
    cmd: list[str],
    parsed: tuple[Any, dict[str, tuple[str, int]]],
    limits: Limits,
    *,
    ledger: str | None,
    min_sleep_s: float,
    console: Any,
) -> tuple[Any, Any]:
    """Record ``cmd`` through the pass-through front; (LedgerTrace, UpstreamRecording)."""
    from benchmarks.record.upstream import record_upstream

    config, connect_to = parsed
    console.print(
        f"[bold]record[/bold] (pass-through to {config.describe()}): {program_label(cmd)}\n"
        "every read is one GET while recording; your credentials go to the upstream untouched"
    )
    try:
        with stopped_cleanly(console):
            rec = record_upstream(
                cmd, upstream=config, connect_to=connect_to, ledger_path=ledger,
                min_sleep_s=min_sleep_s, max_seconds=limits.max_seconds,
                max_requests=limits.max_requests, redact_names=limits.redact_names,
                curl_per_run_ca=limits.curl_per_run_ca, keep_command=limits.keep_command,
            )  # fmt: skip
    except FileNotFoundError as exc:
        fail(f"cannot run {cmd[0]}: {exc.strerror}")
    except OSError as exc:
        fail(f"record: {exc}")
    if rec.upstream_errors:
        console.print(
            f"[yellow]{rec.upstream_errors} requests were answered with an upstream error "
            "(passed to the program as they came; marked upstream_error in the ledger)[/]"
        )
    console.print(f"{rec.tunnels} blind tunnels (other hosts: host and byte counts only)")
    if rec.tunnels and limits.curl_per_run_ca:
        console.print(
            "[yellow]libcurl (curl, TensorFlow) trusted only the per-run CA, so it could not "
            "verify those hosts; if the program needed them, record with --curl-ca bundle[/]"
        )
    if rec.front is not None:
        console.print(rec.front.describe())
    return rec.result, rec


def finish(console: Any, rec: Any) -> None:
    """The last line and the exit code: the program's, or 0 when a limit stopped it."""
    if rec.stopped_by is not None:
        console.print(f"stopped by --{rec.stopped_by} after {rec.seconds:.1f} s; trace written")
        raise typer.Exit(0)
    console.print(f"program exited with {rec.returncode} after {rec.seconds:.1f} s")
    raise typer.Exit(rec.returncode)


def run_fake(
    cmd: list[str],
    limits: Limits,
    *,
    data: str | None,
    backend: str,
    ledger: str | None,
    min_sleep_s: float,
    console: Any,
) -> tuple[Any, Any]:
    """The fake mode with limits or name redaction; (LedgerTrace, UpstreamRecording)."""
    from benchmarks.record.upstream import record_fake_limited

    if backend not in ("embedded", "container"):
        from gcs_hook.cli.backend_check import check_backend

        check_backend(backend)
    console.print(
        f"[bold]record[/bold]: {program_label(cmd)} (every read is one GET while recording)"
    )
    try:
        with stopped_cleanly(console):
            rec = record_fake_limited(
                cmd, data_dir=data, backend=backend, ledger_path=ledger, min_sleep_s=min_sleep_s,
                max_seconds=limits.max_seconds, max_requests=limits.max_requests,
                redact_names=limits.redact_names, keep_command=limits.keep_command,
            )  # fmt: skip
    except FileNotFoundError as exc:
        fail(f"cannot run {cmd[0]}: {exc.strerror}")
    except ValueError as exc:
        fail(str(exc).splitlines()[0])
    return rec.result, rec


def program_label(cmd: list[str]) -> str:
    """The program's base name (what the trace's comment says; no assignment, no path)."""
    from benchmarks.record.sharing import program_name

    return program_name(cmd)
