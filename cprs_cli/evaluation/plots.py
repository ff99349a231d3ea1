"""PNG plots for the benchmark report (matplotlib, Agg backend; nothing is shown on screen).

matplotlib is the `bench` extra; `report.write_bench_report` draws these after results.json is
written, so a missing or failing matplotlib costs a plot, never the numbers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["needle_heatmap", "scores_by_task", "speed_scaling", "stage_breakdown"]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def fmt_tokens(n: float) -> str:
    """A token count as the report's tables and the plots' axes label it (4K, 1M, 10K, 512)."""
    if n >= 1 << 20 and n % (1 << 20) == 0:  # the suite's powers of two: 1,048,576 is "1M"
        return f"{int(n) >> 20}M"
    if n >= 1024 and n % 1024 == 0 and n < 1_000_000:
        return f"{int(n) // 1024}K"
    if n >= 1_000_000:
        return f"{n / 1_000_000:g}M"
    if n >= 1000:
        return f"{n / 1000:g}K"
    return f"{n:g}"


def needle_heatmap(maps: dict[str, dict], path: Path, title: str = "Needle retention") -> Path:
    """One panel per method: context length (x) × needle depth (y), coloured by retention
    (fraction of needles whose value survives compression), like QwenLong-CPRS Figure 4.

    `maps[method] = {"lengths": [...], "depths": [...], "scores": [[score per length] per depth]}`
    with None (or NaN) where there is no data.
    """
    plt = _plt()
    methods = list(maps)
    n = max(len(methods), 1)
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols + 0.8, 3.4 * rows + 0.6), squeeze=False,
                             constrained_layout=True)
    im = None
    for k, (ax, method) in enumerate(zip(axes.flat, methods)):
        m = maps[method]
        data = np.asarray(m["scores"], dtype=float)
        im = ax.imshow(data, cmap="RdYlGn", vmin=0.0, vmax=1.0, aspect="auto", origin="upper")
        ax.set_xticks(range(len(m["lengths"])), [fmt_tokens(x) for x in m["lengths"]])
        ax.set_yticks(range(len(m["depths"])), [f"{d:.0%}" for d in m["depths"]])
        if k // cols == rows - 1 or k + cols >= n:
            ax.set_xlabel("context length (cl100k tokens)")
        if k % cols == 0:
            ax.set_ylabel("needle depth")
        ax.set_title(method)
        if data.size <= 200:
            for (i, j), v in np.ndenumerate(data):
                if not np.isnan(v):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="black")
    for ax in list(axes.flat)[len(methods):]:
        ax.axis("off")
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label="retention")
    fig.suptitle(title)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def scores_by_task(by_task: dict[str, dict[str, dict]], methods: Sequence[str], path: Path) -> Path:
    """Grouped bars: mean score per task, one bar per method."""
    plt = _plt()
    tasks = list(by_task)
    x = np.arange(len(tasks))
    width = 0.8 / max(len(methods), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(tasks) * max(len(methods), 1) * 0.45), 3.8))
    for k, method in enumerate(methods):
        vals = [by_task[t].get(method, {}).get("score", np.nan) for t in tasks]
        vals = [np.nan if v is None else v for v in vals]
        ax.bar(x + (k - (len(methods) - 1) / 2) * width, vals, width, label=method)
    ax.set_xticks(x, tasks, rotation=20)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score (string match)")
    ax.legend(fontsize=8, ncol=min(len(methods), 5), loc="upper center", bbox_to_anchor=(0.5, -0.18))
    ax.set_title("Task score at the critic's token budget")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def speed_scaling(speed_rows: list[dict], fits: dict[str, dict], path: Path) -> Path:
    """Left: seconds vs input tokens (log-log) per method, with the critic's linear fit.
    Right: peak resident memory vs input tokens."""
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    methods = sorted({r["method"] for r in speed_rows})
    for method in methods:
        rows = sorted((r for r in speed_rows if r["method"] == method and r.get("seconds") is not None),
                      key=lambda r: r["input_tokens"])
        if not rows:
            continue
        xs = [r["input_tokens"] for r in rows]
        line = ax1.plot(xs, [max(r["seconds"], 1e-4) for r in rows], marker="o", label=method)[0]
        fit = fits.get(method) or {}
        if fit.get("slope") is not None and method.startswith("cprs"):
            grid = np.linspace(min(xs), max(xs), 50)
            ax1.plot(grid, np.maximum(fit["slope"] * grid + fit["intercept"], 1e-4), ls="--",
                     color=line.get_color(), alpha=0.6)
        mem = [r.get("peak_rss_mb") for r in rows]
        if any(m is not None for m in mem):
            ax2.plot(xs, [np.nan if m is None else m for m in mem], marker="o", label=method)
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.set_xlabel("input length (cl100k tokens)")
        ax.grid(alpha=0.3, which="both")
    ax1.set_yscale("log")
    ax1.set_ylabel("seconds per document")
    ax1.set_title("Time (dashed: linear fit)")
    ax2.set_ylabel("peak RSS (MB)")
    ax2.set_title("Peak memory of the process")
    ax1.legend(fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def stage_breakdown(speed_rows: list[dict], path: Path) -> Path:
    """Stacked bars per critic and length: tokenize / critic forward / post-processing seconds."""
    plt = _plt()
    rows = [r for r in speed_rows if r.get("timings")]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.0 * len(rows) + 2), 3.6))
    labels = [f"{r['method']}\n{fmt_tokens(r['input_tokens'])}" for r in rows]
    bottom = np.zeros(len(rows))
    for stage in ("tokenize", "critic", "post"):
        vals = np.array([float(r["timings"].get(stage, 0.0)) for r in rows])
        ax.bar(range(len(rows)), vals, bottom=bottom, label=stage)
        bottom += vals
    ax.set_xticks(range(len(rows)), labels, fontsize=8)
    ax.set_ylabel("seconds")
    ax.set_title("Where the critic's time goes")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
