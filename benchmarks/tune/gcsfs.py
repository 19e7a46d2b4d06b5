"""``gcs-hook tune --client gcsfs``: which ``cache_type`` and ``block_size`` for a gcsfs reader.

The pipeline, one stage function each (:func:`run_gcsfs_tune` runs them in order):

1. :func:`gcsfs_trace` — the trace: a recorded one (``gcs-hook record`` of a gcsfs program; its
   ``clients.gcsfs`` says which fsspec/gcsfs recorded it, a mismatch with the installed ones is
   warned about), or a built-in gcsfs workload (:data:`benchmarks.workloads.gcsfs_job.WORKLOADS`)
   recorded now: the real gcsfs program run under ``record`` against a fresh fake GCS.
2. :func:`sweep` — every configuration through fsspec's own caches
   (:mod:`benchmarks.sweep.engine_fsspec`), each :func:`priced` from the price table (media and
   metadata GETs class B, the bytes egress; ``tune --prices``). Seconds come from
   ``opts.timing``: the timing flags, or ``tune --timing PROFILE``'s one-request timing.
3. :func:`choose` — the recommendation: among exact configurations within the memory budget,
   the fastest predicted; every one within 5 % of it is a near tie, and near ties go to lower
   cost, then less memory, then fewer requests.
4. :func:`measure` — for built-in workloads: the real program again with the recommended and a
   few other configurations through the front; its media requests and bytes next to the
   prediction.
5. :func:`report` — the table, ``sweep.csv``, ``summary.json``, ``gcsfs-sweep.png`` and the
   line to paste.

Invariants: the recommendation is one of the rows (or None); nothing is written outside
``out_dir``; files are written atomically (a fresh temporary file in ``out_dir``, renamed).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from benchmarks.sweep.cost import DEFAULT_PRICES, PriceTable
from benchmarks.sweep.engine_fsspec import GcsfsRow, default_grid, gcsfs_ops, label, sweep_gcsfs
from benchmarks.sweep.timing import GcsTiming
from emulator.model.fsspec_cache import FsspecCacheConfig, fsspec_versions, version_mismatch

__all__ = [
    "GcsfsOutcome",
    "GcsfsTuneOptions",
    "choose",
    "gcsfs_trace",
    "measure",
    "paste_line",
    "priced",
    "recorded_configs",
    "report",
    "run_gcsfs_tune",
    "sweep",
]

TIE_FRACTION = 0.05


@dataclass
class GcsfsTuneOptions:
    """What ``tune --client gcsfs`` was asked (validated by the CLI)."""

    memory_budget: int
    out_dir: str = "tune-out"
    workload: str | None = None  # a built-in gcsfs workload name
    trace: Any = None  # or a loaded Trace
    configs: list[FsspecCacheConfig] | None = None
    with_grid: bool = False
    quick: bool = False
    timing: GcsTiming = field(default_factory=GcsTiming)
    prices: PriceTable = DEFAULT_PRICES
    measure: bool = True
    backend: str = "embedded"


@dataclass
class GcsfsOutcome:
    rows: list[GcsfsRow]
    best: GcsfsRow | None
    note: str
    line: str
    measurements: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    paths: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def gcsfs_trace(opts: GcsfsTuneOptions, console: Any) -> tuple[Any, list[str]]:
    """Stage 1: ``(loaded trace, warnings)``."""
    from emulator.replay.trace import load_trace

    if opts.trace is not None:
        recorded = (opts.trace.clients or {}).get("gcsfs", {})
        warnings = [f"recorded with {m}: predictions are for the installed versions"
                    for m in version_mismatch(recorded)]  # fmt: skip
        return opts.trace, warnings
    from benchmarks.record.gcsfs import record_gcsfs_workload

    console.print(f"[bold]record[/bold]: gcsfs workload {opts.workload} (real gcsfs, fake GCS)")
    return load_trace(record_gcsfs_workload(opts.workload, backend=opts.backend)), []


def sweep(opts: GcsfsTuneOptions, trace: Any) -> list[GcsfsRow]:
    """Stage 2: every configuration (``--configs``, the grid, or both; without ``--configs``
    also the ones the program ran with, so its own setting is a row of the table)."""
    configs = list(opts.configs or [])
    if opts.configs is None or opts.with_grid:
        configs += [c for c in default_grid(opts.quick) if c not in configs]
    ops = gcsfs_ops(trace)
    if opts.configs is None:
        configs += [c for c in recorded_configs(ops) if c not in configs]
    return sweep_gcsfs(ops, configs, opts.timing)


def recorded_configs(ops: list[dict[str, Any]]) -> list[FsspecCacheConfig]:
    """The configurations the recorded program opened its gcsfs files with."""
    out: list[FsspecCacheConfig] = []
    for op in ops:
        if op["op"] != "open":
            continue
        rec = op.get("recorded") or {}
        ct, bs = rec.get("cache_type"), rec.get("block_size")
        if not isinstance(ct, str) or not isinstance(bs, int) or bs <= 0:
            continue
        blocks = (rec.get("cache_options") or {}).get("maxblocks")
        opts = (("maxblocks", blocks),) if isinstance(blocks, int) and blocks > 0 else ()
        cfg = FsspecCacheConfig(ct, bs, opts)
        if ct in ("blockcache", "background") and blocks == 32:
            cfg = FsspecCacheConfig(ct, bs)  # 32 is the default: the same row as the grid's
        if cfg not in out:
            out.append(cfg)
    return out


def priced(row: GcsfsRow, prices: PriceTable) -> GcsfsRow:
    """``row`` with its cost: media and metadata GETs are class B, the bytes are egress."""
    usd = prices.cost_usd(
        media=row.requests, metadata=row.metadata_requests, egress_bytes=row.bytes_fetched
    )
    return dataclasses.replace(row, cost_usd=usd)


def choose(rows: list[GcsfsRow], budget: int) -> tuple[GcsfsRow | None, str]:
    """Stage 3: the recommendation and a note on what was left out."""
    fitting = [r for r in rows if r.memory_bytes <= budget]
    pool = [r for r in fitting if r.exact and not r.errors]
    notes = []
    if any(not r.exact for r in fitting):
        notes.append("timing-dependent caches (adaptive, background) are shown, never recommended")
    if any(r.errors for r in fitting):
        notes.append("configurations whose fetches fail (errors > 0) are never recommended")
    note = "; ".join(notes)
    if not pool:
        return None, note or "no configuration fits the memory budget"
    fastest = min(r.predicted_seconds for r in pool)
    ties = [r for r in pool if r.predicted_seconds <= fastest * (1 + TIE_FRACTION)]
    best = min(ties, key=lambda r: (r.cost_usd, r.memory_bytes, r.requests, r.predicted_seconds))
    return best, note


def _size_expr(n: int) -> str:
    for unit, name in ((1 << 20, "2**20"), (1 << 10, "2**10")):
        if n % unit == 0 and n >= unit:
            return f"{n // unit} * {name}"
    return str(n)


def paste_line(best: GcsfsRow | None) -> str:
    """The line to paste into the program."""
    if best is None:
        return "# no configuration fits the memory budget"
    c = best.config
    opts = f", cache_options={dict(c.cache_options)!r}" if c.cache_options else ""
    return (
        f'fs.open(path, "rb", cache_type="{c.cache_type}", '
        f"block_size={_size_expr(c.block_size)}{opts})"
    )


def measure(
    opts: GcsfsTuneOptions, rows: list[GcsfsRow], best: GcsfsRow | None, console: Any
) -> list[dict[str, Any]]:
    """Stage 4: real runs of a built-in workload (media requests and bytes) next to the model."""
    if not opts.measure or opts.workload is None:
        return []
    from benchmarks.record.gcsfs import run_gcsfs_workload

    picks = [r for r in rows if r is best]
    for r in rows:
        if len(picks) >= 4:
            break
        wanted = r.exact and r.config.cache_type in ("none", "readahead", "bytes")
        if wanted and all(p.config.cache_type != r.config.cache_type for p in picks):
            picks.append(r)
    out = []
    for r in picks:
        real = run_gcsfs_workload(opts.workload, r.config, backend=opts.backend)
        out.append({"config": r.config.as_dict(), "predicted_requests": r.requests,
                    "real_requests": real["requests"], "predicted_bytes": r.bytes_fetched,
                    "real_bytes": real["bytes"], "exit_code": real["returncode"]})  # fmt: skip
        console.print(
            f"  measured {label(r.config)}: media requests "
            f"{r.requests} predicted / {real['requests']} real, bytes {r.bytes_fetched:,} / "
            f"{real['bytes']:,}"
        )
    return out


def _atomic_write(out_dir: str, name: str, data: bytes) -> str:
    path = os.path.join(out_dir, name)
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _csv(rows: list[GcsfsRow], best: GcsfsRow | None) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["cache_type", "block_size", "cache_options", "requests", "metadata_requests",
                "bytes_fetched", "predicted_seconds", "cost_usd", "memory_bytes", "exact",
                "recommended"])  # fmt: skip
    for r in rows:
        w.writerow([r.config.cache_type, r.config.block_size, json.dumps(dict(r.config.cache_options)),
                    r.requests, r.metadata_requests, r.bytes_fetched, f"{r.predicted_seconds:.6f}",
                    f"{r.cost_usd:.9f}", r.memory_bytes, r.exact, r is best])  # fmt: skip
    return buf.getvalue().encode()


def _plot(rows: list[GcsfsRow], best: GcsfsRow | None, path: str, budget: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [label(r.config) for r in rows]
    fig, axes = plt.subplots(2, 1, figsize=(max(8, 0.28 * len(rows)), 7), sharex=True)
    colors = ["tab:red" if r is best else ("tab:gray" if not r.exact else "tab:blue")
              for r in rows]  # fmt: skip
    axes[0].bar(range(len(rows)), [r.predicted_seconds for r in rows], color=colors)
    axes[0].set_ylabel("predicted seconds")
    axes[0].set_title("gcsfs: predicted time and media requests per configuration "
                      "(red: recommended, gray: timing-dependent)")  # fmt: skip
    axes[1].bar(range(len(rows)), [r.requests for r in rows], color=colors)
    axes[1].set_ylabel("media requests")
    for i, r in enumerate(rows):
        if r.memory_bytes > budget:
            axes[0].patches[i].set_hatch("//")
    axes[1].set_xticks(range(len(rows)), labels, rotation=90, fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    _atomic_write(os.path.dirname(path), os.path.basename(path), buf.getvalue())


def report(opts: GcsfsTuneOptions, outcome: GcsfsOutcome, console: Any) -> None:
    """Stage 5: the table on the console and the files in ``out_dir``."""
    from rich.table import Table

    table = Table(title="gcsfs sweep (model: fsspec's own caches, gcsfs's request shaping)")
    for col in ("config", "requests", "MiB fetched", "predicted s", "$/run", "memory MiB",
                "errors", "exact"):  # fmt: skip
        table.add_column(col, justify="right")
    for r in outcome.rows:
        mark = "[bold red]" if r is outcome.best else ""
        table.add_row(
            f"{mark}{label(r.config)}", str(r.requests), f"{r.bytes_fetched / 2**20:.1f}",
            f"{r.predicted_seconds:.3f}", f"{r.cost_usd:.6f}", f"{r.memory_bytes / 2**20:.1f}",
            str(r.errors), "yes" if r.exact else "no",
        )  # fmt: skip
    console.print(table)
    os.makedirs(opts.out_dir, exist_ok=True)
    out = opts.out_dir
    outcome.paths["csv"] = _atomic_write(out, "sweep.csv", _csv(outcome.rows, outcome.best))
    summary = {
        "client": "gcsfs", "versions": fsspec_versions(), "note": outcome.note,
        "prices": opts.prices.as_dict(), "timing": dataclasses.asdict(opts.timing),
        "recommended": outcome.best.as_json() if outcome.best else None, "line": outcome.line,
        "measurements": outcome.measurements,
    }  # fmt: skip
    outcome.paths["summary"] = _atomic_write(
        out, "summary.json", json.dumps(summary, indent=1).encode()
    )
    png = os.path.join(out, "gcsfs-sweep.png")
    _plot(outcome.rows, outcome.best, png, opts.memory_budget)
    outcome.paths["plot"] = png


def results_json(outcome: GcsfsOutcome) -> list[dict[str, Any]]:
    """The ``--json`` document: one object per configuration (the TF fields)."""
    return [{**r.as_json(), "recommended": r is outcome.best} for r in outcome.rows]


def run_gcsfs_tune(opts: GcsfsTuneOptions, console: Any) -> GcsfsOutcome:
    """All five stages."""
    t0 = time.monotonic()
    trace, warnings = gcsfs_trace(opts, console)
    for w in warnings:
        print(f"gcs-hook: warning: {w}", file=sys.stderr)
    if not gcsfs_ops(trace):
        raise ValueError(
            "the trace has no gcsfs reads (record a gcsfs program with gcs-hook record, "
            "or tune TF's reads without --client gcsfs)"
        )
    rows = [priced(r, opts.prices) for r in sweep(opts, trace)]
    best, note = choose(rows, opts.memory_budget)
    outcome = GcsfsOutcome(rows, best, note, paste_line(best), warnings=warnings)
    outcome.measurements = measure(opts, rows, best, console)
    report(opts, outcome, console)
    outcome.seconds = time.monotonic() - t0
    return outcome
