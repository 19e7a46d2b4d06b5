"""Tune report: rich table, CSV/JSON, PNG plots, and the recommendation line to paste.

Files written by :func:`write_report` into the output directory:

- ``sweep.csv`` — one row per configuration (``PointResult.as_row``);
- ``summary.json`` — workload, timing, budget, recommendation, every row, measured runs;
- ``heatmap.png`` — three panels over the grid (x = block_size, y = max_bytes, at
  max_staleness 0): predicted epoch time, bytes fetched per epoch, requests per epoch; the
  recommended cell is outlined, cells over the memory budget are hatched;
- ``predicted_vs_measured.png`` — when measured runs exist: predicted vs measured seconds.

The recommendation is the fastest configuration whose memory column fits the budget
(:func:`benchmarks.sweep.best_under_budget`), printed as
``ConfigureGcsHook(block_cache=BlockCacheParams(block_size=..., max_bytes=..., max_staleness=...))``
(a cache-off winner is printed as ``ConfigureGcsHook()`` — TF 2.21's default is cache off, which
``BlockCacheParams`` cannot express).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from benchmarks.sweep import PointResult, best_under_budget
from benchmarks.sweep.cost import DEFAULT_PRICES, PriceTable
from benchmarks.tune.bucket_timing import cost_usd
from benchmarks.tune.hook_params import block_cache_params
from emulator.atomic_files import atomic_writer

__all__ = [
    "format_bytes",
    "heatmap_png",
    "measured_png",
    "recommendation_line",
    "rich_table",
    "write_report",
]


def format_bytes(n: float) -> str:
    """1536 → '1.5 KiB'; exact powers print without decimals ('256 MiB')."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            v = n / size
            return f"{v:.0f} {unit}" if v == int(v) else f"{v:.1f} {unit}"
    return f"{int(n)} B"


def _size_expr(n: int) -> str:
    for exp in (30, 20, 10):
        if n >= 2**exp and n % 2**exp == 0:
            return f"{n >> exp} * 2**{exp}"
    return str(n)


def recommendation_line(result: PointResult | None) -> str:
    """The Python line to paste for ``result``'s configuration."""
    if result is None:
        return "# no configuration fits the memory budget"
    c = block_cache_params(result.config)
    if c is None:
        return "ConfigureGcsHook()  # keep TF 2.21's default: block cache off"
    return (
        "ConfigureGcsHook(block_cache=BlockCacheParams("
        f"block_size={_size_expr(c.block_size)}, max_bytes={_size_expr(c.max_bytes)}, "
        f"max_staleness={c.max_staleness}))"
    )


def rich_table(
    results: Sequence[PointResult],
    *,
    best: PointResult | None,
    budget: int,
    top: int = 12,
    prices: PriceTable = DEFAULT_PRICES,
) -> Any:
    """A rich Table of the ``top`` fastest configurations fitting the budget, plus TF's default
    (``$/epoch``: operations and bytes at ``prices``)."""
    from rich.table import Table

    table = Table(title="Predicted cost per configuration (fastest first)")
    hazards = any(r.hazardous or r.stale_files for r in results)
    unseen = any(r.assumes_data_not_seen or r.tail_lag for r in results)
    cols = ["block", "max_bytes", "stale", "s/epoch", "fetched/ep", "req/ep", "$/epoch", "memory"]
    if hazards:
        cols += ["stale rd", "stale files", "torn rd", "torn files", "errors"]
    if unseen:
        cols += ["data not seen"]
    for col in cols:
        table.add_column(col, justify="right")
    by_key = {(r.config.block_size, r.config.max_bytes, r.config.max_staleness): r for r in results}

    def redundant(r: PointResult) -> bool:  # a staleness > 0 point costing the same as with 0
        base = by_key.get((r.config.block_size, r.config.max_bytes, 0))
        return r.config.max_staleness > 0 and base is not None and base.requests == r.requests

    folded = [r for r in results if r.config.max_bytes <= budget and redundant(r)]
    fitting = sorted(
        (r for r in results if r.fits(budget) and not redundant(r)),
        key=lambda r: (r.predicted_s, r.requests, r.config.max_bytes),
    )
    shown = fitting[:top]
    notes = []
    if folded:
        notes.append(
            f"{len(folded)} configuration(s) with max_staleness > 0 tie with the same cache at "
            "max_staleness 0 (same requests) and are folded into that row"
        )
    if len(fitting) > top:
        notes.append(f"{len(fitting) - top} slower configuration(s) not shown (all in sweep.csv)")
    if notes:
        table.caption = "; ".join(notes)
    default = next((r for r in results if not r.config.cache_on), None)
    if default is not None and default not in shown:
        shown.append(default)
    if best is not None and best not in shown:
        shown.append(best)
    for r in shown:
        c = r.config
        style = "bold green" if r is best else ("dim" if not c.cache_on else None)
        row = [
            format_bytes(c.block_size) if c.cache_on else "-",
            format_bytes(c.max_bytes) if c.cache_on else "cache off",
            f"{c.max_staleness}" if c.max_staleness else "0",
            f"{r.epoch_s:.2f}",
            format_bytes(r.media_bytes_fetched / max(1, r.epochs)),
            f"{r.requests_per_epoch:.0f}",
            _usd(cost_usd(r, prices) / max(1, r.epochs)),
            format_bytes(r.memory_bytes) if c.cache_on else "-",
        ]
        if hazards:
            row += [str(r.stale_reads), str(r.stale_files), str(r.torn_reads),
                    str(r.torn_files), str(r.errors)]  # fmt: skip
        if unseen:
            row.append(_not_seen(r))
        table.add_row(*row, style=style)
    return table


def _usd(v: float) -> str:
    """Dollars with the digits that matter: '$0.0042', '$1.23', '$120'."""
    if v == 0:
        return "$0"
    if v < 0.01:
        return f"${v:.2g}"
    return f"${v:.2f}" if v < 100 else f"${v:.0f}"


def _not_seen(r: PointResult) -> str:
    """The "data not seen" cell: whether the fixed trace's reads assume data this
    configuration may not show the program, and how many reloads behind a follower falls."""
    parts = []
    if r.assumes_data_not_seen:
        parts.append(f"assumed ({r.reads_not_seen} rd, {r.stale_stats} stat)")
    if r.tail_lag:
        parts.append(f"tail {r.tail_lag} behind")
    return ", ".join(parts) or "-"


def _grid(results: Sequence[PointResult], staleness: int):
    import numpy as np

    pts = [r for r in results if r.config.max_staleness == staleness and r.config.cache_on]
    blocks = sorted({r.config.block_size for r in pts})
    maxes = sorted({r.config.max_bytes for r in pts})
    off = next((r for r in results if not r.config.cache_on), None)
    rows = ([0] if off is not None else []) + maxes
    shape = (len(rows), len(blocks))
    cells = {name: np.full(shape, np.nan) for name in ("epoch_s", "bytes", "requests")}
    for r in pts:
        i, j = rows.index(r.config.max_bytes), blocks.index(r.config.block_size)
        cells["epoch_s"][i, j] = r.epoch_s
        cells["bytes"][i, j] = r.media_bytes_fetched / max(1, r.epochs)
        cells["requests"][i, j] = r.requests_per_epoch
    if off is not None:  # cache off does not depend on block_size: fill the whole row
        cells["epoch_s"][0, :] = off.epoch_s
        cells["bytes"][0, :] = off.media_bytes_fetched / max(1, off.epochs)
        cells["requests"][0, :] = off.requests_per_epoch
    return blocks, rows, cells


def heatmap_png(
    results: Sequence[PointResult],
    path: str | os.PathLike,
    *,
    best: PointResult | None,
    budget: int,
    title: str,
) -> str:
    """Write the three-panel heatmap (epoch time, bytes/epoch, requests/epoch) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import LogNorm
    from matplotlib.patches import Rectangle

    blocks, rows, cells = _grid(results, 0)
    panels = (
        ("epoch_s", "predicted epoch time (s)", lambda v: f"{v:.1f}" if v < 100 else f"{v:.0f}"),
        ("bytes", "bytes fetched per epoch", lambda v: format_bytes(v)),
        ("requests", "requests per epoch", lambda v: f"{v:.0f}"),
    )
    fig, axes = plt.subplots(
        3, 1, figsize=(3.2 + 0.85 * len(blocks), 3 * (1.3 + 0.42 * len(rows)) + 0.6)
    )
    for ax, (key, label, fmt) in zip(axes, panels, strict=True):
        data = cells[key]
        finite = data[np.isfinite(data)]
        lo = max(float(finite.min()) if finite.size else 1.0, 1e-9)
        hi = max(float(finite.max()) if finite.size else 1.0, lo * 1.0001)
        im = ax.imshow(data, cmap="viridis_r", norm=LogNorm(lo, hi), aspect="auto", origin="lower")
        ax.set_xticks(range(len(blocks)), [format_bytes(b) for b in blocks], rotation=30)
        ax.set_yticks(
            range(len(rows)), ["off (TF default)" if m == 0 else format_bytes(m) for m in rows]
        )
        ax.set_xlabel("block_size", fontsize=8)
        ax.set_ylabel("max_bytes", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_title(label, fontsize=10)
        for i in range(len(rows)):
            for j in range(len(blocks)):
                v = data[i, j]
                if np.isfinite(v):
                    light = im.norm(v) < 0.4  # viridis_r is light at the low end
                    color = "black" if light else "white"
                    ax.text(j, i, fmt(v), ha="center", va="center", fontsize=6.5, color=color)
                if rows[i] and rows[i] + blocks[j] > budget:  # the memory column
                    ax.add_patch(
                        Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="//", lw=0, alpha=0.5)
                    )
        if best is not None:
            c = best.config
            j = blocks.index(c.block_size) if c.cache_on and c.block_size in blocks else 0
            i = rows.index(c.max_bytes if c.cache_on else 0)
            if c.max_staleness == 0:
                ax.add_patch(
                    Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", lw=2.5)
                )
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.04, 1, 0.98))  # leave the top 2 % to the suptitle
    fig.text(
        0.01, 0.004,
        "max_staleness 0. Red: recommendation. Hatched: over the memory budget.\n"
        "Blank: max_bytes < block_size (BlockCacheParams refuses it). "
        "Cache off = TF 2.21 default (64 MiB read-ahead buffer per open file).",
        fontsize=7, ha="left", va="bottom",
    )  # fmt: skip
    with atomic_writer(path, text=False) as fh:  # atomic, never through a symlink
        fig.savefig(fh, dpi=110, format="png")
    plt.close(fig)
    return str(path)


def measured_png(measurements: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> str:
    """Bar chart of predicted vs measured seconds per measured configuration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [m["label"] for m in measurements]
    x = list(range(len(labels)))
    model = [m["predicted_s"] for m in measurements]
    local = [m.get("baseline_s", 0.0) for m in measurements]
    fig, ax = plt.subplots(figsize=(2.5 + 1.6 * len(labels), 4))
    ax.bar([i - 0.2 for i in x], model, 0.4, label="predicted: model (GCS time)", color="C0")
    ax.bar([i - 0.2 for i in x], local, 0.4, bottom=model, color="C0", alpha=0.35,
           label="predicted: + this machine's own cost (unshaped run)")  # fmt: skip
    ax.bar([i + 0.2 for i in x], [m["measured_s"] for m in measurements], 0.4,
           label="measured (shaped)", color="C1")  # fmt: skip
    for i, m in enumerate(measurements):
        top = max(model[i] + local[i], m["measured_s"])
        ax.text(i, top, f"{m['error_pct']:+.1f}%", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(x), labels, rotation=20, fontsize=7)
    ax.set_ylabel("seconds (all epochs)")
    ax.set_title("predicted vs measured (real TF through the shaped front)", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_ylim(0, 1.25 * max(max(model[i] + local[i], measurements[i]["measured_s"]) for i in x))
    fig.tight_layout()
    with atomic_writer(path, text=False) as fh:  # atomic, never through a symlink
        fig.savefig(fh, dpi=110, format="png")
    plt.close(fig)
    return str(path)


def write_report(
    out_dir: str | os.PathLike,
    results: Sequence[PointResult],
    *,
    budget: int,
    title: str,
    summary: Mapping[str, Any],
    measurements: Sequence[Mapping[str, Any]] = (),
    best: PointResult | None | str = "budget",
    prices: PriceTable = DEFAULT_PRICES,
) -> dict[str, str]:
    """Write CSV, JSON and PNGs into ``out_dir``; returns {kind: path}. ``best``: the
    recommended result (default: the fastest fitting the budget); every row carries
    ``cost_usd`` (all epochs, at ``prices``)."""
    os.makedirs(out_dir, exist_ok=True)
    if isinstance(best, str):
        best = best_under_budget(results, budget)
    paths = {}
    csv_path = os.path.join(out_dir, "sweep.csv")
    rows = [r.as_row() | {"cost_usd": round(cost_usd(r, prices), 8)} for r in results]
    with atomic_writer(csv_path) as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["block_size"])
        writer.writeheader()
        writer.writerows(rows)
    paths["csv"] = csv_path
    doc = dict(summary)
    doc.update(
        memory_budget=budget,
        recommendation=(best.as_row() | {"cost_usd": round(cost_usd(best, prices), 8)})
        if best
        else None,
        recommendation_line=recommendation_line(best),
        results=rows,
        measured=list(measurements),
    )
    json_path = os.path.join(out_dir, "summary.json")
    with atomic_writer(json_path) as f:
        json.dump(doc, f, indent=1)
    paths["json"] = json_path
    if results:
        paths["heatmap"] = heatmap_png(
            results, os.path.join(out_dir, "heatmap.png"), best=best, budget=budget, title=title
        )
    if measurements:
        paths["measured"] = measured_png(
            measurements, os.path.join(out_dir, "predicted_vs_measured.png")
        )
    return paths
