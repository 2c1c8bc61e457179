"""Learning curves of the comparison: ``curves.csv`` and ``curves.png`` from the held-out evaluations of the
training checkpoints."""

from __future__ import annotations

import csv
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from mr2ct.export.panels import atomic_savefig
from mr2ct.io.atomic import atomic_file
from mr2ct.reproduce.tasks import Task

__all__ = ["curve_rows", "write_curves"]


def curve_rows(per_seed: dict[int, dict]) -> list[tuple[str, int, int, str, float]]:
    """``(method, seed, iteration, metric, value)`` of the methods' curves in ``{seed: run_comparison's results}``
    (value: the mean over held-out videos)."""
    return [
        (method, seed, iteration, column, float(value[0]))
        for seed, results in per_seed.items()
        for method, r in results.items()
        for iteration, columns in sorted(r.get("curve", {}).items())
        for column, value in columns.items()
    ]


def write_curves(task: Task, rows: Sequence[tuple[str, int, int, str, float]], output: Path, title: str) -> None:
    """``curves.csv`` (one row per method, seed, iteration and metric) and ``curves.png``: one panel per metric,
    one line per method (the mean over seeds at each iteration), shaded between the lowest and highest seed."""
    with atomic_file(output / "curves.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["method", "seed", "iteration", "metric", "value"])
        writer.writerows(rows)
    metrics = list(task.metrics)
    methods = list(dict.fromkeys(r[0] for r in rows))
    seeds = sorted({r[1] for r in rows})
    columns = min(3, len(metrics))
    lines = -(-len(metrics) // columns)
    width = max(6.4, 4.2 * columns)
    fig = Figure(figsize=(width, 3.2 * lines + 0.4))
    for k, metric in enumerate(metrics):
        ax = fig.add_subplot(lines, columns, k + 1)
        for colour, method in enumerate(methods):
            values: dict[int, list[float]] = {}
            for m, _, iteration, name, value in rows:
                if m == method and name == metric:
                    values.setdefault(iteration, []).append(value)
            steps = sorted(values)
            mean = [float(np.mean(values[i])) for i in steps]
            ax.plot(steps, mean, marker="o", markersize=3, color=f"C{colour}", label=method)
            if len(seeds) > 1:
                low, high = [min(values[i]) for i in steps], [max(values[i]) for i in steps]
                ax.fill_between(steps, low, high, color=f"C{colour}", alpha=0.2, linewidth=0)
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel("iteration", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if k == 0:
            ax.legend(fontsize=7)
    shading = " (mean over seeds; shaded: their range)" if len(seeds) > 1 else ""
    fig.suptitle(textwrap.fill(f"{task.table}: held-out set, {title}{shading}", int(width * 15)), fontsize=9)
    fig.tight_layout()
    atomic_savefig(fig, output / "curves.png", dpi=100)
