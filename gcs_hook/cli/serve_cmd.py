"""``gcs-hook serve`` (the emulator in the foreground) and the registration of ``env``, ``demo``
and ``doctor`` (modules :mod:`gcs_hook.cli.serve_state`, :mod:`gcs_hook.cli.demo_cmd`,
:mod:`gcs_hook.cli.doctor_cmd`).

    gcs-hook serve [--backend embedded|container|URL] [--data DIR] [--port N] [--ledger FILE]
                   [--require-auth] [--latency-ms MS] [--overhead-ms MS] [--bandwidth-mbps MB/s]
                   [--token T] [--duration S] [--state-file FILE] [--demo]
                   [--persist DIR] [--data-follow-symlinks]
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

from gcs_hook.cli.demo_cmd import DEFAULT_TEST_TOKEN, demo_cmd, run_demo
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
    if backend not in ("embedded", "container") and not backend.startswith("http://"):
        fail(f"--backend {backend!r}: use embedded, container or an http://host:port URL")
    _check_port_free(port, "front")
    _check_port_free(backend_port, "backend")
    if ledger is not None and not ledger.parent.is_dir():
        fail(f"--ledger {ledger}: directory {ledger.parent} does not exist")
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
        fail(str(exc))
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


def serve(
    backend: Annotated[
        str, typer.Option("--backend", help="embedded | container | http://host:port")
    ] = "embedded",
    data: Annotated[
        Path | None, typer.Option("--data", help="Seed DIR/<bucket>/<object path> before serving.")
    ] = None,
    port: Annotated[int, typer.Option("--port", help="Front port on 127.0.0.1 (0 = any).")] = 0,
    backend_port: Annotated[
        int, typer.Option("--backend-port", help="Embedded backend port (0 = any).")
    ] = 0,
    ledger: Annotated[
        Path | None, typer.Option("--ledger", help="Append every request as JSONL here.")
    ] = None,
    require_auth: Annotated[
        bool, typer.Option("--require-auth", help="401 for requests without a valid token.")
    ] = False,
    latency_ms: Annotated[
        float, typer.Option("--latency-ms", help="Shaping: first-byte latency per response.")
    ] = 0.0,
    overhead_ms: Annotated[
        float, typer.Option("--overhead-ms", help="Shaping: extra per-request overhead.")
    ] = 0.0,
    bandwidth_mbps: Annotated[
        float,
        typer.Option("--bandwidth-mbps", help="Shaping: MB/s (10^6 B/s) per response; 0 = no cap."),
    ] = 0.0,
    token: Annotated[
        str, typer.Option("--token", help="Value for GOOGLE_AUTH_TOKEN_FOR_TESTING.")
    ] = DEFAULT_TEST_TOKEN,
    duration: Annotated[
        float, typer.Option("--duration", help="Stop after this many seconds (0 = until Ctrl-C).")
    ] = 0.0,
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
) -> None:
    """Run fake-gcs-server + the TLS front in the foreground; print the client environment."""
    from rich.console import Console

    if duration < 0:
        fail("--duration must be >= 0")
    if not token or any(c.isspace() for c in token):
        fail("--token must be a non-empty value without whitespace")
    shaping = None
    if latency_ms or overhead_ms or bandwidth_mbps:
        from emulator.fakegcs.shaping import Shaping

        try:
            shaping = Shaping(
                first_byte_latency_s=latency_ms / 1000,
                bandwidth_bytes_per_s=bandwidth_mbps * 1e6 or None,
                per_request_overhead_s=overhead_ms / 1000,
            )
        except ValueError as exc:
            fail(f"shaping: {exc} (use --latency-ms/--overhead-ms/--bandwidth-mbps >= 0)")
    console = Console(stderr=True, highlight=False)
    path = state_file or default_state_file()
    if not demo:
        check_state_target(path)
    from emulator.fakegcs.tempdirs import remove_dead_leftovers

    with StopSignals() as signals:  # from here on, a stop signal cleans up whatever started
        emu = None
        try:
            remove_dead_leftovers()
            live_instances()  # removes state files of dead instances
            emu = _start_emulator(
                backend, data, port, backend_port, ledger, require_auth, shaping, persist,
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
            watch(emu, duration, console, signals)
            console.print(f"# stopping; {len(emu.ledger)} requests recorded")
        except StopRequested as stop:
            n = len(emu.ledger) if emu is not None else 0
            console.print(f"# stopping on {stop.name}; {n} requests recorded")
        finally:
            signals.quiet()
            if not demo:
                remove_state(path)
            if emu is not None:
                emu.close()


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("env")(env_cmd)
    app.command("demo")(demo_cmd)
    app.command("doctor")(doctor)
