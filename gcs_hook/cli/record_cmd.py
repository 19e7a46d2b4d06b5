"""``gcs-hook record``: a trace of your own program, for ``gcs-hook tune``.

    gcs-hook record [--data DIR] [--backend embedded|container|URL] --out TRACE.json
                    [--ledger FILE.jsonl] [--min-sleep-ms MS] -- CMD [ARGS...]
    gcs-hook record --from-ledger FILE.jsonl --out TRACE.json [--data DIR] [--principal P]
    gcs-hook record --upstream https://storage.googleapis.com --out TRACE.json -- CMD [ARGS...]

The first form runs CMD against a fresh fake GCS seeded from DIR (``DIR/<bucket>/<path>``),
with the recording settings, writes the trace when CMD exits and exits with CMD's exit code.
The second converts a ledger written by ``gcs-hook serve --ledger FILE`` (object sizes from
DIR if given, else inferred from the reads). The third records a real job against real GCS
through a pass-through front; it and the limits (``--max-seconds``, ``--max-requests``) and
``--redact-names`` are in :mod:`gcs_hook.cli.record_upstream_cmd`. Bad arguments print one
line and exit 2 before anything is started or written.

What is written is made to be shared (:mod:`benchmarks.record.writer`,
:mod:`benchmarks.record.sharing`): the trace and ``--ledger`` are replaced atomically, never
through a symlink; the trace's comment names the program's base name only (``--keep-command``
keeps its arguments, without environment assignments, secret-looking values or directories).
SIGINT, SIGTERM or SIGHUP stop the program's whole process group and remove the fake's key
material and directories in every mode (exit 128 + the signal number, no trace written).
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from gcs_hook.cli.errors import fail


def _sizes_from_dir(data: str) -> dict[str, int]:
    root = Path(data)
    out = {}
    for bucket in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(p for p in bucket.rglob("*") if p.is_file()):
            out[f"{bucket.name}/{f.relative_to(bucket).as_posix()}"] = f.stat().st_size
    return out


def record(
    ctx: typer.Context,
    out: Annotated[str, typer.Option("--out", "-o", help="where to write the trace (JSON)")],
    data: Annotated[
        str | None, typer.Option("--data", help="seed directory: DIR/<bucket>/<object path>")
    ] = None,
    backend: Annotated[
        str, typer.Option("--backend", help="fake GCS: embedded, container or http://host:port")
    ] = "embedded",
    from_ledger: Annotated[
        str | None,
        typer.Option("--from-ledger", help="convert a ledger JSONL (gcs-hook serve --ledger)"),
    ] = None,
    ledger: Annotated[
        str | None, typer.Option("--ledger", help="also keep the raw ledger as JSONL here")
    ] = None,
    min_sleep_ms: Annotated[
        float, typer.Option("--min-sleep-ms", help="shortest gap recorded as a sleep op")
    ] = 1.0,
    principal: Annotated[
        str | None,
        typer.Option(
            "--principal",
            help="with --from-ledger: the program's ledger principal [default: the top reader]",
        ),
    ] = None,
    upstream: Annotated[
        str | None,
        typer.Option(
            "--upstream",
            help="record a real job: forward to this GCS (https://storage.googleapis.com)",
        ),
    ] = None,
    upstream_ca: Annotated[
        str | None, typer.Option("--upstream-ca", help="verify the upstream with this CA only")
    ] = None,
    connect_to: Annotated[
        list[str] | None,
        typer.Option("--connect-to", help="HOST=ADDR:PORT for blind tunnels (tests)"),
    ] = None,
    max_seconds: Annotated[
        str | None,
        typer.Option("--max-seconds", help="stop the program after this long, s (or 10m)"),
    ] = None,
    max_requests: Annotated[
        int | None, typer.Option("--max-requests", help="stop after N requests through the front")
    ] = None,
    redact_names: Annotated[
        bool, typer.Option("--redact-names", help="hash bucket and object names in the trace")
    ] = False,
    curl_ca: Annotated[
        str | None,
        typer.Option(
            "--curl-ca",
            help="with --upstream: what CURL_CA_BUNDLE holds: 'run' (the per-run CA alone: "
            "libcurl then verifies only the storage hosts, fast) or 'bundle' (the system CAs "
            "too, for a program running curl against other hosts) [default: run]",
        ),
    ] = None,
    curl_per_run_ca: Annotated[
        bool, typer.Option("--curl-per-run-ca", hidden=True, help="--curl-ca run (the default)")
    ] = False,
    keep_command: Annotated[
        bool,
        typer.Option(
            "--keep-command",
            help="keep the command's arguments in the trace's comment (never NAME=VALUE "
            "assignments, secret-looking option values or directories) [default: base name]",
        ),
    ] = False,
) -> None:
    """Record the GCS reads and writes of a program (CMD after --) as a trace for tune."""
    from rich.console import Console

    cmd = list(ctx.args)
    if from_ledger is None and not cmd:
        fail(
            "give the program to record after --, e.g. gcs-hook record --out t.json -- python x.py"
        )
    if from_ledger is not None and cmd:
        fail("--from-ledger converts an existing ledger; do not also give a command")
    if principal is not None and from_ledger is None:
        fail("--principal goes with --from-ledger (a recorded command is 'test-token')")
    if from_ledger is not None and not Path(from_ledger).is_file():
        fail(f"ledger file {from_ledger} does not exist")
    if data is not None and not Path(data).is_dir():
        fail(f"--data {data} is not a directory")
    if data is not None:  # before anything starts: GCS would refuse every upload into it
        from emulator.fakegcs.names import BUCKET_RULE, bucket_error

        for bucket_dir in sorted(p for p in Path(data).iterdir() if p.is_dir()):
            if bucket_error(bucket_dir.name):
                fail(f"--data {data}: {bucket_dir.name!r} is not a valid GCS bucket name: "
                     f"{BUCKET_RULE}")  # fmt: skip
    _check_output("--out", out)
    if not math.isfinite(min_sleep_ms) or min_sleep_ms < 0:
        fail(f"--min-sleep-ms must be >= 0 and finite, got {min_sleep_ms}")
    if ledger is not None:
        _check_output("--ledger", ledger)
    from gcs_hook.cli import record_upstream_cmd as rup

    parsed_upstream = rup.check_upstream(
        upstream, upstream_ca, connect_to, from_ledger,
        {"--data": data, "--backend": None if backend == "embedded" else backend},
    )  # fmt: skip
    limits = rup.check_limits(max_seconds, max_requests, redact_names)
    if (curl_ca is not None or curl_per_run_ca) and parsed_upstream is None:
        fail("--curl-ca goes with --upstream")
    if curl_ca not in (None, "run", "bundle"):
        fail(f"--curl-ca must be 'run' or 'bundle', got {curl_ca!r}")
    if curl_per_run_ca and curl_ca == "bundle":
        fail("--curl-per-run-ca contradicts --curl-ca bundle")
    limits.curl_per_run_ca = curl_ca != "bundle"
    limits.keep_command = keep_command
    console = Console(stderr=True)
    if parsed_upstream is not None or max_seconds or max_requests or redact_names:
        if from_ledger is not None:
            fail("--max-seconds, --max-requests and --redact-names go with a command")
        result, rec = (
            rup.run_upstream(cmd, parsed_upstream, limits, ledger=ledger,
                             min_sleep_s=min_sleep_ms / 1000, console=console)
            if parsed_upstream is not None
            else rup.run_fake(cmd, limits, data=data, backend=backend, ledger=ledger,
                              min_sleep_s=min_sleep_ms / 1000, console=console)
        )  # fmt: skip
        _write(out, result.trace)
        _summary(console, result, rec.requests)
        sys.stdout.flush()
        rup.finish(console, rec)
    if from_ledger is not None:
        from benchmarks.record.ledger import ledger_to_trace, load_ledger_jsonl

        try:
            records = load_ledger_jsonl(from_ledger)
        except (ValueError, OSError) as exc:
            fail(str(exc).splitlines()[0])
        from benchmarks.record.ledger import reader_principal, recording_settings_problem

        problem = recording_settings_problem(records, principal or reader_principal(records))
        if problem:
            fail(f"--from-ledger {from_ledger} was not recorded with the recording settings: "
                 f"{problem}; record it again with GCS_READ_CACHE_BLOCK_SIZE_MB=0 and "
                 "GCS_STAT_CACHE_MAX_AGE=0 in the program's environment (before it imports "
                 "TensorFlow), or use gcs-hook record -- CMD")  # fmt: skip
        sizes = _sizes_from_dir(data) if data else None
        result = ledger_to_trace(records, sizes, own=principal, min_sleep_s=min_sleep_ms / 1000)
        _write(out, result.trace)
        _summary(console, result, len(records))
        return
    from gcs_hook.cli.backend_check import check_backend

    check_backend(backend)  # a URL must answer; 'container' needs a Docker engine
    from benchmarks.record.program import record_program

    console.print(
        f"[bold]record[/bold]: {rup.program_label(cmd)} (every read is one GET while recording)"
    )
    try:
        with rup.stopped_cleanly(console):  # a stop signal: the program's group, then the fake
            rec = record_program(
                cmd, data_dir=data, backend=backend, ledger_path=ledger,
                min_sleep_s=min_sleep_ms / 1000, keep_command=keep_command,
            )  # fmt: skip
    except FileNotFoundError as exc:
        fail(f"cannot run {cmd[0]}: {exc.strerror}")
    except PermissionError as exc:
        fail(f"cannot run {cmd[0]}: {exc.strerror}")
    except ValueError as exc:
        fail(str(exc).splitlines()[0])
    except Exception as exc:  # noqa: BLE001 - the fake GCS could not start: one line
        from emulator.fakegcs.backend import BackendError

        if isinstance(exc, BackendError):
            fail(f"backend {backend} unusable: {str(exc).splitlines()[0]}")
        raise
    _write(out, rec.result.trace)
    _summary(console, rec.result, rec.requests)
    console.print(f"program exited with {rec.returncode} after {rec.seconds:.1f} s")
    sys.stdout.flush()
    raise typer.Exit(rec.returncode)


def _check_output(flag: str, path: str) -> None:
    """One line unless ``path`` can be a file we replace: its directory exists, it is not a
    directory."""
    out_dir = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(out_dir):
        fail(f"{flag}: directory {os.path.dirname(path) or '.'} does not exist")
    if os.path.isdir(path):
        fail(f"{flag} {path} is a directory")


def _write(out: str, trace: dict) -> None:
    from benchmarks.record.writer import write_trace

    try:
        write_trace(out, trace)
    except OSError as exc:
        fail(f"--out {out}: cannot write: {exc.strerror}")


def _summary(console, result, n_records: int) -> None:  # noqa: ANN001
    ops = result.trace["ops"]
    counts: dict[str, int] = {}
    for op in ops:
        counts[op["op"]] = counts.get(op["op"], 0) + 1
    console.print(
        f"trace: {len(result.trace['objects'])} objects, {len(ops)} ops "
        f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}); {result.handles} "
        f"inferred handles; {n_records} ledger records, skipped {result.skipped or 'none'}"
    )
    for client, info in sorted(result.trace.get("clients", {}).items()):
        versions = ", ".join(f"{k} {info[k]}" for k in ("fsspec", "gcsfs") if k in info)
        console.print(
            f"{client}: {info.get('files', 0)} files, {info.get('reads', 0)} reads at the file "
            f"level ({versions}); tune them with: gcs-hook tune --client {client} --workload TRACE"
        )
    from benchmarks.record.ledger import recording_warnings

    for line in recording_warnings(result, n_records):
        console.print(f"[bold yellow]gcs-hook: warning:[/bold yellow] {line}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command(
        "record", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
    )(record)
