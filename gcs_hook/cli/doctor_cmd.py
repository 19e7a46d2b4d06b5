"""``gcs-hook doctor``: what is present on this machine (no TensorFlow import, no server start)."""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Annotated, Any

import typer


def _check(name: str, ok: bool, detail: str, required: bool = True) -> dict[str, Any]:
    return {"check": name, "ok": ok, "detail": detail, "required": required}


def container_tests_case(engine_error: str | None) -> tuple[bool, str]:
    """Which case holds for the docker-marked tests under ``scripts/test.sh``: whether they run,
    and why. ``engine_error`` is :func:`emulator.fakegcs.backend.docker_engine_error`'s answer.

    They run on a reachable engine, or under ``scripts/docker-engine.sh`` when this is root with
    ``dockerd`` or ``apt-get`` (a private dockerd is started); otherwise they skip.
    """
    if engine_error is None:
        return True, "run: a Docker engine is reachable (DOCKER_HOST or the default socket)"
    if os.geteuid() == 0 and (shutil.which("dockerd") or shutil.which("apt-get")):
        how = "dockerd" if shutil.which("dockerd") else "docker.io installed with apt-get"
        return True, f"run under scripts/docker-engine.sh: a private dockerd ({how}) as root"
    return False, f"skipped: {engine_error}, and not root with dockerd or apt-get to start one"


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
    runs, detail = container_tests_case(reason)
    checks.append(_check("container tests", runs, detail, required=False))
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
