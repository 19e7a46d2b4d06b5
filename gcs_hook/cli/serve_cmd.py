"""``gcs-hook serve`` (the emulator in the foreground) and the registration of ``env``, ``demo``
and ``doctor`` (modules :mod:`gcs_hook.cli.serve_state`, :mod:`gcs_hook.cli.demo_cmd`,
:mod:`gcs_hook.cli.doctor_cmd`).

    gcs-hook serve [--backend embedded|container|URL] [--data DIR] [--port N] [--ledger FILE]
                   [--require-auth] [--latency-ms MS] [--overhead-ms MS] [--bandwidth RATE]
                   [--token T] [--duration S] [--state-file FILE] [--demo]
                   [--persist DIR] [--data-follow-symlinks] [--tls [--tls-port N]]
                   [--timing PROFILE.json]
    gcs-hook env   [--state-file FILE]
    gcs-hook demo  [--backend ...]          (same as ``serve --demo``)
    gcs-hook doctor [--json]

``serve`` runs fake-gcs-server + the front in the foreground and prints, on stdout, the
``export`` lines a TensorFlow process needs; it writes a small per-instance state file
(:mod:`gcs_hook.cli.serve_state`) so ``gcs-hook env`` can print them again; the file is
removed on exit. Objects live in memory unless ``--persist DIR``. Signals, the backend watch
and clean exits: :mod:`gcs_hook.cli.serve_runtime`.
``--demo`` seeds an object, reads it with real TensorFlow through the front (1 MiB block cache),
prints the request ledger as a table and exits.

Bad input (missing ``--data`` directory, unknown backend, port in use, no Docker engine, no
running instance for ``env``): one line on stderr, exit code 2, nothing started.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from gcs_hook.cli.demo_cmd import DEFAULT_TEST_TOKEN, run_demo
from gcs_hook.cli.doctor_cmd import doctor
from gcs_hook.cli.errors import fail
from gcs_hook.cli.serve_runtime import StopRequested, StopSignals, close_at_exit, watch
from gcs_hook.cli.serve_state import (
    check_state_target,
    default_state_file,
    env_cmd,
    export_lines,
    live_instances,
    remove_state,
    write_state,
)
from gcs_hook.cli.values import (
    deprecated_rate_mbps,
    option,
    parse_backend_spec,
    parse_duration,
    parse_port,
    parse_rate,
)


def _check_port_free(port: int, what: str) -> None:
    from emulator.fakegcs.backend import port_in_use

    try:
        in_use = bool(port) and port_in_use(port, "127.0.0.1")
    except ValueError as exc:
        fail(f"{what} {exc}")
    if in_use:
        fail(f"{what} port {port} on 127.0.0.1 is already in use")


def _start_emulator(
    backend: str,
    data: Path | None,
    port: int,
    backend_port: int,
    ledger: Path | None,
    require_auth: bool,
    shaping: Any = None,
    persist: Path | None = None,
    follow_symlinks: bool = False,
    check_stop: Any = None,
) -> Any:
    from emulator.fakegcs.backend import BackendError
    from emulator.fakegcs.session import GcsEmulator

    if data is not None and not data.is_dir():
        fail(f"--data {data}: not a directory")
    if persist is not None and backend != "embedded":
        fail("--persist needs the embedded backend")
    if persist is not None and persist.exists() and not persist.is_dir():
        fail(f"--persist {persist}: not a directory")
    if data is not None:
        from emulator.fakegcs.seeding import seed_plan

        try:
            seed_plan(data, follow_symlinks=follow_symlinks)  # checked before anything starts
        except (ValueError, OSError) as exc:
            fail(f"--data {data}: {exc}")
    _check_port_free(port, "front")
    _check_port_free(backend_port, "backend")
    if ledger is not None and not ledger.parent.is_dir():
        fail(f"--ledger {ledger}: directory {ledger.parent} does not exist")
    if ledger is not None and ledger.is_symlink():
        fail(f"--ledger {ledger} is a symbolic link; the ledger is never written through one")
    try:
        emu = GcsEmulator(
            backend, require_auth=require_auth, ledger_path=ledger, front_port=port,
            backend_port=backend_port, shaping=shaping, persist=persist,
        )  # fmt: skip
    except BackendError as exc:
        first, _, tail = str(exc).partition("\n")
        if tail:
            typer.echo(tail, err=True)
        fail(first)
    except OSError as exc:
        if persist is not None and exc.filename is not None:
            fail(f"--persist {persist}: cannot create the directory ({exc.strerror})")
        fail(exc.strerror or str(exc))
    if data is not None:
        try:
            created = emu.backend.seed_from_dir(
                data, follow_symlinks=follow_symlinks, before_each=check_stop
            )
        except (ValueError, BackendError) as exc:
            emu.close()
            fail(f"--data {data}: {exc}")
        except BaseException:  # a stop signal during seeding: leave nothing behind
            emu.close()
            raise
        typer.echo(f"# seeded {len(created)} objects from {data}", err=True)
    return emu


#: Shaping bounds at the command line: a latency or overhead longer than this is a typo, not a
#: network (every response would stall past any client's timeout).
MAX_SHAPING_DELAY_S = 60.0


def _shaping_from_flags(
    latency_ms: str, overhead_ms: str, bandwidth: str, bandwidth_mbps: float | None
) -> Any:
    """The :class:`Shaping` the flags ask for, or None; a bad value is the one-line error."""
    latency_s = option(
        "--latency-ms", parse_duration, latency_ms, unit="ms", maximum=MAX_SHAPING_DELAY_S,
        context="shaping",
    )  # fmt: skip
    overhead_s = option(
        "--overhead-ms", parse_duration, overhead_ms, unit="ms", maximum=MAX_SHAPING_DELAY_S,
        context="shaping",
    )  # fmt: skip
    rate = option("--bandwidth", parse_rate, bandwidth, context="shaping")
    if bandwidth_mbps is not None:
        if rate is not None:
            fail("shaping: give --bandwidth or the deprecated --bandwidth-mbps, not both")
        rate = deprecated_rate_mbps(bandwidth_mbps, context="shaping")
    if not (latency_s or overhead_s or rate):
        return None
    from emulator.fakegcs.shaping import Shaping

    try:
        return Shaping(
            first_byte_latency_s=latency_s,
            bandwidth_bytes_per_s=rate,
            per_request_overhead_s=overhead_s,
        )
    except ValueError as exc:
        fail(f"shaping: {exc}")


def _shaping_from_profile(path: Path, flags: Any) -> Any:
    """The :class:`Shaping` of the timing profile in ``path``; one-line error if unreadable."""
    if flags is not None:
        fail("shaping: give --timing or --latency-ms/--bandwidth/--overhead-ms, not both")
    from emulator.fakegcs.profile import TimingProfile
    from emulator.fakegcs.shaping import Shaping

    try:
        return Shaping.from_profile(TimingProfile.load(path))
    except ValueError as exc:
        fail(f"--timing: {str(exc).splitlines()[0]}")


def serve(
    backend: Annotated[
        str, typer.Option("--backend", help="embedded | container | http(s)://host:port")
    ] = "embedded",
    data: Annotated[
        Path | None, typer.Option("--data", help="Seed DIR/<bucket>/<object path> before serving.")
    ] = None,
    port: Annotated[
        str, typer.Option("--port", help="Front port on 127.0.0.1, 0-65535 (0 = any).")
    ] = "0",
    backend_port: Annotated[
        str, typer.Option("--backend-port", help="Embedded backend port, 0-65535 (0 = any).")
    ] = "0",
    ledger: Annotated[
        Path | None, typer.Option("--ledger", help="Append every request as JSONL here.")
    ] = None,
    require_auth: Annotated[
        bool, typer.Option("--require-auth", help="401 for requests without a valid token.")
    ] = False,
    latency_ms: Annotated[
        str,
        typer.Option(
            "--latency-ms", help="Shaping: first-byte latency per response, ms (or 20ms, 0.1s)."
        ),
    ] = "0",
    overhead_ms: Annotated[
        str,
        typer.Option(
            "--overhead-ms", help="Shaping: extra per-request overhead, ms (or 1ms, 0.01s)."
        ),
    ] = "0",
    bandwidth: Annotated[
        str,
        typer.Option(
            "--bandwidth", help="Shaping: rate per response, e.g. 64MiB/s or 100MB/s; 0 = no cap."
        ),
    ] = "0",
    bandwidth_mbps: Annotated[
        float | None,
        typer.Option("--bandwidth-mbps", help="Deprecated: use --bandwidth N MB/s.", hidden=True),
    ] = None,
    token: Annotated[
        str, typer.Option("--token", help="Value for GOOGLE_AUTH_TOKEN_FOR_TESTING.")
    ] = DEFAULT_TEST_TOKEN,
    duration: Annotated[
        str,
        typer.Option(
            "--duration", help="Stop after this long, s (or 500ms, 2m; 0 = until Ctrl-C)."
        ),
    ] = "0",
    state_file: Annotated[
        Path | None, typer.Option("--state-file", help="Where to record the running instance.")
    ] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Read an object with real TF, print the ledger, exit.")
    ] = False,
    persist: Annotated[
        Path | None,
        typer.Option(
            "--persist",
            help="Keep objects in files under DIR (kept after exit); default: in memory.",
        ),
    ] = None,
    data_follow_symlinks: Annotated[
        bool,
        typer.Option(
            "--data-follow-symlinks",
            help="Copy what symlinks leading outside --data point to (default: refuse them).",
        ),
    ] = False,
    tls: Annotated[
        bool,
        typer.Option("--tls", help="Also serve HTTPS directly (no CONNECT), with the front's CA."),
    ] = False,
    tls_port: Annotated[
        str, typer.Option("--tls-port", help="Port of the --tls listener, 0-65535 (0 = any).")
    ] = "0",
    timing: Annotated[
        Path | None,
        typer.Option(
            "--timing",
            help="Shaping from a timing profile (JSON): seeded lognormal latency, per-stream "
            "rate, aggregate cap, overhead. Not with --latency-ms/--bandwidth/--overhead-ms.",
        ),
    ] = None,
) -> None:
    """Run fake-gcs-server + the TLS front in the foreground; print the client environment."""
    from rich.console import Console

    backend = option("--backend", parse_backend_spec, backend)
    port_n = option("--port", parse_port, port)
    backend_port_n = option("--backend-port", parse_port, backend_port)
    duration_s = option("--duration", parse_duration, duration, unit="s")
    tls_port_n = option("--tls-port", parse_port, tls_port)
    if tls_port_n:
        _check_port_free(tls_port_n, "TLS listener")
    if not token or any(c.isspace() for c in token):
        fail("--token must be a non-empty value without whitespace")
    shaping = _shaping_from_flags(latency_ms, overhead_ms, bandwidth, bandwidth_mbps)
    if timing is not None:
        shaping = _shaping_from_profile(timing, shaping)
    console = Console(stderr=True, highlight=False)
    path = state_file or default_state_file()
    if not demo:
        check_state_target(path)
    from emulator.fakegcs.tempdirs import remove_dead_leftovers

    with StopSignals() as signals:  # from here on, a stop signal cleans up whatever started
        emu = tls_listener = None
        try:
            remove_dead_leftovers()
            live_instances()  # removes state files of dead instances
            emu = _start_emulator(
                backend, data, port_n, backend_port_n, ledger, require_auth, shaping, persist,
                data_follow_symlinks, signals.check,
            )  # fmt: skip
            signals.check()
            close_at_exit(emu)
            if demo:
                out = Console(highlight=False)
                if not out.is_terminal or out.width < 150:
                    out = Console(highlight=False, width=150)
                ok = run_demo(emu, out)
                raise typer.Exit(0 if ok else 1)
            env = emu.tf_env(test_token=token)
            write_state(path, emu, env)  # before the exports: whoever reads them can run `env`
            for line in export_lines(env):
                typer.echo(line)
            sys.stdout.flush()
            where = f"objects in {persist}" if persist is not None else "objects in memory"
            console.print(
                f"# front {emu.front.url} -> {emu.backend.kind} backend {emu.backend.endpoint} "
                f"({where}); state in {path}; Ctrl-C to stop"
            )
            if shaping is not None:
                console.print(f"# shaping: {shaping}")
            if tls:  # emulator.fakegcs.tls_listener
                tls_listener = start_tls_listener(emu, tls_port_n, console)
            watch(emu, duration_s, console, signals)
            console.print(f"# stopping; {len(emu.ledger)} requests recorded")
        except StopRequested as stop:
            n = len(emu.ledger) if emu is not None else 0
            console.print(f"# stopping on {stop.name}; {n} requests recorded")
        finally:
            signals.quiet()
            if tls_listener is not None:
                tls_listener.close()
            if not demo:
                remove_state(path)
            if emu is not None:
                emu.close()


def demo_cmd(
    backend: Annotated[
        str, typer.Option("--backend", help="embedded | container | http(s)://host:port")
    ] = "embedded",
) -> None:
    """Read an object with real TensorFlow through the front and print the ledger."""
    serve(
        backend=backend, data=None, port="0", backend_port="0", ledger=None, require_auth=False,
        latency_ms="0", overhead_ms="0", bandwidth="0", bandwidth_mbps=None,
        token=DEFAULT_TEST_TOKEN, duration="0", state_file=None, demo=True,
    )  # fmt: skip


def start_tls_listener(emu: Any, port: int, console: Any) -> Any:
    """``--tls``: HTTPS for the Google hosts on 127.0.0.1 (one line names its URL and CA)."""
    from emulator.fakegcs.tls_listener import TlsListener

    try:
        listener = TlsListener(emu.front, port)
    except OSError as exc:
        fail(str(exc))
    console.print(
        f"# tls {listener.url} (storage.googleapis.com, www.googleapis.com, localhost; "
        f"CA {listener.ca_pem})"
    )
    return listener


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("env")(env_cmd)
    app.command("demo")(demo_cmd)
    app.command("doctor")(doctor)
