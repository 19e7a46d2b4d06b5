"""``gcs-hook serve``, ``env``, ``demo`` and ``doctor``.

    gcs-hook serve [--backend embedded|container|URL] [--data DIR] [--port N] [--ledger FILE]
                   [--require-auth] [--latency-ms MS] [--overhead-ms MS] [--bandwidth RATE]
                   [--token T] [--duration S] [--state-file FILE] [--demo]
    gcs-hook env   [--state-file FILE]
    gcs-hook demo  [--backend ...]          (same as ``serve --demo``)
    gcs-hook doctor [--json]

``serve`` runs fake-gcs-server + the front in the foreground and prints, on stdout, the
``export`` lines a TensorFlow process needs; it writes a small state file (0600; default
``$XDG_RUNTIME_DIR/gcs-hook/serve.json`` or ``~/.cache/gcs-hook/serve.json``, or
``$GCS_HOOK_STATE``) so ``gcs-hook env`` can print them again; the file is removed on exit.
``--demo`` seeds an object, reads it with real TensorFlow through the front (1 MiB block cache),
prints the request ledger as a table and exits.

Bad input (missing ``--data`` directory, unknown backend, port in use, no Docker engine, no
running instance for ``env``): one line on stderr, exit code 2, nothing started.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import json
import os
import shlex
import shutil
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from gcs_hook.cli.errors import fail
from gcs_hook.cli.values import (
    deprecated_rate_mbps,
    option,
    parse_backend_spec,
    parse_duration,
    parse_port,
    parse_rate,
)

DEMO_BUCKET = "gcs-hook-demo"
DEMO_OBJECT = "data/sample.bin"
DEMO_SIZE = 3_000_000
DEMO_ENV = {"GCS_READ_CACHE_BLOCK_SIZE_MB": "1", "GCS_READ_CACHE_MAX_SIZE_MB": "4"}
DEFAULT_TEST_TOKEN = "gcs-hook-fake-token"
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_EXPORT_KEYS = (
    "https_proxy",
    "HTTPS_PROXY",
    "CURL_CA_BUNDLE",
    "NO_GCE_CHECK",
    "GOOGLE_AUTH_TOKEN_FOR_TESTING",
    "STORAGE_EMULATOR_HOST",
    "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT",
)


def default_state_file() -> Path:
    """Where ``serve`` records the running instance (``$GCS_HOOK_STATE`` overrides)."""
    if os.environ.get("GCS_HOOK_STATE"):
        return Path(os.environ["GCS_HOOK_STATE"])
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) if runtime and os.path.isdir(runtime) else Path.home() / ".cache"
    return base / "gcs-hook" / "serve.json"


def export_lines(env: dict[str, str]) -> list[str]:
    """``export K=V`` lines (shell-quoted) for the variables a client process needs."""
    return [f"export {k}={shlex.quote(env[k])}" for k in _EXPORT_KEYS if k in env]


def ledger_table(records: list[Any], title: str = "request ledger") -> Any:
    """A rich Table of ledger records (no secrets are in records to begin with)."""
    from rich.table import Table

    table = Table(title=title)
    for col, justify in (
        ("seq", "right"),
        ("t ms", "right"),
        ("conn", "right"),
        ("principal", "left"),
        ("kind", "left"),
        ("method", "left"),
        ("host", "left"),
        ("path", "left"),
        ("range", "left"),
        ("status", "right"),
        ("bytes out", "right"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    t0 = records[0].t if records else 0.0
    for r in records:
        rng = f"{r.range[0]}-{r.range[1] if r.range[1] >= 0 else ''}" if r.range else ""
        table.add_row(
            str(r.seq),
            f"{(r.t - t0) * 1000:.1f}",
            str(r.conn_id),
            r.principal,
            r.kind,
            r.method,
            r.host,
            r.path if len(r.path) <= 60 else r.path[:57] + "...",
            rng,
            str(r.status),
            str(r.bytes_out),
        )
    return table


def _check_port_free(port: int, what: str) -> None:
    from emulator.fakegcs.backend import port_in_use

    if port and port_in_use(port, "127.0.0.1"):
        fail(f"{what} port {port} on 127.0.0.1 is already in use")


def _start_emulator(
    backend: str,
    data: Path | None,
    port: int,
    backend_port: int,
    ledger: Path | None,
    require_auth: bool,
    shaping: Any = None,
) -> Any:
    from emulator.fakegcs.backend import BackendError
    from emulator.fakegcs.session import GcsEmulator

    if data is not None and not data.is_dir():
        fail(f"--data {data}: not a directory")
    _check_port_free(port, "front")
    _check_port_free(backend_port, "backend")
    if ledger is not None and not ledger.parent.is_dir():
        fail(f"--ledger {ledger}: directory {ledger.parent} does not exist")
    try:
        emu = GcsEmulator(
            backend, require_auth=require_auth, ledger_path=ledger, front_port=port,
            backend_port=backend_port, shaping=shaping,
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
            created = emu.backend.seed_from_dir(data)
        except (ValueError, BackendError) as exc:
            emu.close()
            fail(f"--data {data}: {exc}")
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


def _write_state(path: Path, emu: Any, env: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "pid": os.getpid(),
        "front_url": emu.front.url,
        "backend_endpoint": emu.backend.endpoint,
        "backend_kind": emu.backend.kind,
        "env": {k: env[k] for k in _EXPORT_KEYS if k in env},
        "started": time.time(),
    }
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(state, f)
    os.replace(tmp, path)


def run_demo(emu: Any, console: Any) -> bool:
    """Read the demo object with real TensorFlow through the front; print the ledger.

    Returns True when TF returned exactly the bytes the backend holds.
    """
    from emulator.replay.tf_worker import TfWorker, TfWorkerError
    from emulator.replay.trace import object_content

    data = object_content(f"{DEMO_BUCKET}/{DEMO_OBJECT}", 1, DEMO_SIZE)
    emu.backend.create_bucket(DEMO_BUCKET)
    emu.backend.put_object(DEMO_BUCKET, DEMO_OBJECT, data)
    env = emu.tf_env(test_token=DEFAULT_TEST_TOKEN)
    env.update(DEMO_ENV)
    console.print(
        f"[bold]demo[/]: real TensorFlow reads gs://{DEMO_BUCKET}/{DEMO_OBJECT} "
        f"({DEMO_SIZE:,} bytes) at offsets 0 and 1,500,000 with a 1 MiB block cache"
    )
    mark = emu.ledger.mark()
    try:
        with TfWorker(env) as worker:
            got = worker.run(
                """
f = tf.io.gfile.GFile(path, "rb")
f.seek(0); a = f.read(100)
f.seek(1_500_000); b = f.read(1000)
result = {"version": tf.__version__, "a": a, "b": b, "names": tf.io.gfile.listdir(root)}
""",
                path=f"gs://{DEMO_BUCKET}/{DEMO_OBJECT}",
                root=f"gs://{DEMO_BUCKET}/data",
            )
    except TfWorkerError as exc:
        fail(f"demo: TensorFlow failed: {exc}")
    ok = got["a"] == data[:100] and got["b"] == data[1_500_000:1_501_000]
    console.print(
        f"TensorFlow {got['version']}: listdir -> {got['names']}; bytes "
        + ("[green]match[/] the backend" if ok else "[red]DIFFER[/] from the backend")
    )
    console.print(ledger_table(emu.ledger.since(mark), title="requests TensorFlow sent"))
    return ok


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
) -> None:
    """Run fake-gcs-server + the TLS front in the foreground; print the client environment."""
    from rich.console import Console

    backend = option("--backend", parse_backend_spec, backend)
    port_n = option("--port", parse_port, port)
    backend_port_n = option("--backend-port", parse_port, backend_port)
    duration_s = option("--duration", parse_duration, duration, unit="s")
    if not token or any(c.isspace() for c in token):
        fail("--token must be a non-empty value without whitespace")
    shaping = _shaping_from_flags(latency_ms, overhead_ms, bandwidth, bandwidth_mbps)
    console = Console(stderr=True, highlight=False)
    emu = _start_emulator(backend, data, port_n, backend_port_n, ledger, require_auth, shaping)
    try:
        if demo:
            out = Console(highlight=False)
            if not out.is_terminal or out.width < 150:
                out = Console(highlight=False, width=150)
            ok = run_demo(emu, out)
            raise typer.Exit(0 if ok else 1)
        env = emu.tf_env(test_token=token)
        path = state_file or default_state_file()
        _write_state(path, emu, env)  # before the exports: whoever reads them can run `env`
        for line in export_lines(env):
            typer.echo(line)
        sys.stdout.flush()
        console.print(
            f"# front {emu.front.url} -> {emu.backend.kind} backend {emu.backend.endpoint}; "
            f"state in {path}; Ctrl-C to stop"
        )
        if shaping is not None:
            console.print(f"# shaping: {shaping}")
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in _STOP_SIGNALS}
        try:
            stop.wait(duration_s if duration_s > 0 else None)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        console.print(f"# stopping; {len(emu.ledger)} requests recorded")
    finally:
        if not demo:
            with contextlib.suppress(OSError):
                p = state_file or default_state_file()
                if p.exists() and json.loads(p.read_text()).get("pid") == os.getpid():
                    p.unlink()
        emu.close()


def _read_state(path: Path) -> dict[str, Any]:
    if not path.exists():
        fail(f"no running 'gcs-hook serve' found (no state file {path})")
    try:
        state = json.loads(path.read_text())
        pid, url, env = int(state["pid"]), str(state["front_url"]), dict(state["env"])
    except (ValueError, KeyError, TypeError, OSError):
        fail(f"state file {path} is unreadable or corrupt")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        fail(f"'gcs-hook serve' (pid {pid}) from {path} is no longer running")
    except PermissionError:
        pass
    host, _, port = url.removeprefix("http://").partition(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError:
        fail(f"'gcs-hook serve' front {url} does not answer")
    return {"pid": pid, "front_url": url, "env": env}


def env_cmd(
    state_file: Annotated[
        Path | None, typer.Option("--state-file", help="State file written by serve.")
    ] = None,
) -> None:
    """Print the export lines for an already running ``gcs-hook serve``."""
    state = _read_state(state_file or default_state_file())
    for line in export_lines(state["env"]):
        typer.echo(line)


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


def _check(name: str, ok: bool, detail: str, required: bool = True) -> dict[str, Any]:
    return {"check": name, "ok": ok, "detail": detail, "required": required}


def doctor_checks() -> list[dict[str, Any]]:
    """What is present on this machine (no TensorFlow import, no server start)."""
    from emulator.fakegcs.backend import BackendError, docker_engine_error, find_binary

    checks = [_check("python", sys.version_info >= (3, 10), sys.version.split()[0])]
    tf_version = None
    for dist in ("tensorflow", "tensorflow-cpu", "tf-nightly"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            tf_version = f"{dist} {importlib.metadata.version(dist)}"
            break
    checks.append(_check("tensorflow", tf_version is not None, tf_version or "not installed"))
    try:
        binary = find_binary()
        checks.append(_check("fake-gcs-server binary", True, binary))
    except BackendError as exc:
        checks.append(_check("fake-gcs-server binary", False, str(exc)))
    reason = docker_engine_error()
    checks.append(_check("docker engine", reason is None, reason or "reachable", required=False))
    cxx = shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
    checks.append(_check("C++ compiler", cxx is not None, cxx or "no g++/c++/clang++ on PATH"))
    header = None
    spec = importlib.util.find_spec("tensorflow")
    if spec and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            for rel in (
                "xla/tsl/platform/cloud/gcs_file_system.h",
                "tsl/platform/cloud/gcs_file_system.h",
            ):
                cand = Path(root) / "include" / rel
                if cand.exists():
                    header = str(cand)
                    break
    checks.append(
        _check("TF GCS headers", header is not None, header or "gcs_file_system.h not found")
    )
    jsoncpp = Path("/usr/include/jsoncpp/json/json.h")
    checks.append(
        _check(
            "jsoncpp headers",
            jsoncpp.exists(),
            str(jsoncpp) if jsoncpp.exists() else "missing (apt-get install libjsoncpp-dev)",
        )
    )
    return checks


def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Report what is present: TF, fake-gcs-server, Docker, compiler and headers for native ops.

    Exit code 0 when every required item is present, 1 otherwise.
    """
    checks = doctor_checks()
    if as_json:
        typer.echo(json.dumps(checks, indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="gcs-hook doctor")
        for col in ("check", "status", "detail"):
            table.add_column(col)
        for c in checks:
            status = "ok" if c["ok"] else ("MISSING" if c["required"] else "absent (optional)")
            table.add_row(c["check"], status, c["detail"])
        Console(highlight=False, width=160).print(table)
    missing = [c for c in checks if c["required"] and not c["ok"]]
    raise typer.Exit(1 if missing else 0)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("env")(env_cmd)
    app.command("demo")(demo_cmd)
    app.command("doctor")(doctor)
