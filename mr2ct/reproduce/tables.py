"""The comparison's tables: ``table.md`` and ``table.csv`` of one seed (mean ± sigma over held-out videos) or of
several (mean over seeds ± their spread, per-video sigma, whether every seed orders the methods alike), beside
the paper's numbers."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mr2ct.io.atomic import atomic_file, atomic_write_text
from mr2ct.reproduce.tasks import Task

__all__ = [
    "format_mean_sigma",
    "seed_orderings",
    "summarise_seeds",
    "table_decimals",
    "write_seed_tables",
    "write_tables",
]


def summarise_seeds(per_seed: dict[int, dict]) -> dict:
    """``{seed: run_comparison's results}`` -> ``{row: {"metrics": {column: {"mean", "seed_std", "sigma",
    "per_seed"}}, "iterations", "parameters", "train_seconds"}}`` with rows and columns of the first seed.

    ``mean``: the mean over seeds of each seed's mean over videos; ``seed_std``: their sample standard deviation
    (ddof 1; 0 for one seed); ``sigma``: the mean over seeds of the per-video standard deviations.
    """
    seeds = list(per_seed)
    first = per_seed[seeds[0]]
    summary: dict[str, dict] = {}
    for row, r in first.items():
        columns = {}
        for column in r["metrics"]:
            values = [per_seed[s][row]["metrics"][column] for s in seeds]
            means = np.array([float(v[0]) for v in values])
            sigmas = np.array([float(v[1]) for v in values])
            columns[column] = {
                "mean": float(means.mean()),
                "seed_std": float(means.std(ddof=1)) if len(means) > 1 else 0.0,
                "sigma": float(sigmas.mean()),
                "per_seed": dict(zip(seeds, means.tolist(), strict=True)),
            }
        entry: dict = {"metrics": columns}
        if "iterations" in r:
            entry["iterations"] = r["iterations"]
            entry["parameters"] = r["parameters"]
            entry["train_seconds"] = {s: per_seed[s][row]["train_seconds"] for s in seeds}
        summary[row] = entry
    return summary


def seed_orderings(summary: dict, column: str) -> tuple[list[str], bool]:
    """The rows in ascending order of ``column``'s mean over seeds, and whether every seed orders them alike."""
    rows = [row for row, r in summary.items() if column in r["metrics"]]
    order = sorted(rows, key=lambda row: summary[row]["metrics"][column]["mean"])
    seeds = list(summary[rows[0]]["metrics"][column]["per_seed"]) if rows else []

    def per_seed(seed: Any) -> Callable[[str], float]:
        return lambda row: summary[row]["metrics"][column]["per_seed"][seed]

    same = all(sorted(rows, key=per_seed(s)) == order for s in seeds)
    return order, same


def _markdown_table(meta: dict, runs: str, header: list[str], rows: list[list[str]]) -> list[str]:
    """The title, the settings line (``runs``: which seeds and how many held-out videos) and the table of
    ``table.md``."""
    return [
        f"# {meta['table']}",
        "",
        f"Preset `{meta['preset']}`, {runs} ({meta['split']} split), "
        f"parameter-matched 2D models: {meta['match_params']}, torch {meta['torch']}, {meta['date']}.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def write_seed_tables(task: Task, summary: dict, meta: dict, output: Path, figure: str) -> None:
    """``table.md`` and ``table.csv`` of a run of several seeds in ``output``: per metric of ``task`` the mean over
    seeds ± their spread, the per-video sigma and the paper's number (``summary``: :func:`summarise_seeds`), the
    order of the methods and whether every seed gives it; ``figure``: the picture the table links to."""
    names = list(task.metrics)
    header = ["method"]
    for n in names:
        header += [f"{n} (ours: mean ± seed std)", f"{n} (per-video sigma)", f"{n} (paper)"]
    header += ["iterations", "parameters"]
    rows = []
    for method, r in summary.items():
        ours, paper = r["metrics"], task.paper.get(method, {})
        params = r.get("parameters")
        cells = [method]
        for n in names:
            value = ours.get(n)
            cells += [
                format_mean_sigma(None if value is None else (value["mean"], value["seed_std"])),
                "-" if value is None else f"{value['sigma']:.{table_decimals(value['mean'])}f}",
                format_mean_sigma(paper.get(n)),
            ]
        cells += [str(r.get("iterations", "-")), f"{sum(params.values()) / 1e6:.2f}M" if params else "-"]
        rows.append(cells)
    csv_header = ["method"] + [f"{n} {k}" for n in names for k in ("mean", "seed_std", "sigma", "paper")]
    csv_rows = []
    for method, r in summary.items():
        cells = [method]
        for n in names:
            value, published = r["metrics"].get(n), task.paper.get(method, {}).get(n)
            cells += ["" if value is None else value[k] for k in ("mean", "seed_std", "sigma")]
            cells.append("" if published is None else published[0])
        csv_rows.append(cells + [r.get("iterations", ""), sum(r["parameters"].values()) if "parameters" in r else ""])
    with atomic_file(output / "table.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(csv_header + ["iterations", "parameters"])
        writer.writerows(csv_rows)
    seeds = ", ".join(map(str, meta["seeds"]))
    lines = _markdown_table(
        meta,
        f"seeds {seeds}, {meta['held_out_videos']} held-out videos per seed",
        header,
        rows,
    )
    lines += [
        "",
        f"Values are the mean over seeds ({seeds}) of each seed's mean over held-out videos ± the sample standard "
        "deviation of those means over seeds (ddof 1); per-video sigma: the mean over seeds of the standard "
        "deviation over held-out videos. Each seed draws its own data split, initial weights and data order.",
        "",
        "Ascending order of the means, and whether every seed gives the same order:",
        "",
    ]
    for n in names:
        order, same = seed_orderings(summary, n)
        lines.append(
            f"- {n}: {' < '.join(order)} ({'the same in every seed' if same else 'not the same in every seed'})"
        )
    lines += ["", *task.notes, "", f"![figure of seed {meta['seeds'][0]}]({figure})"]
    atomic_write_text(output / "table.md", "\n".join(lines) + "\n")


def format_mean_sigma(value: tuple[float, float | None] | None) -> str:
    """A table cell ``mean ± sigma`` (``-`` for no value): two decimals, or as many as show two significant
    digits of a mean below 0.1, up to four (a warping error of 0.0079 is not "0.01 ± 0.00"; float noise around 0
    stays "0.0000")."""
    if value is None:
        return "-"
    mean, sigma = value
    decimals = table_decimals(mean)
    return f"{mean:.{decimals}f}" if sigma is None else f"{mean:.{decimals}f} ± {sigma:.{decimals}f}"


def table_decimals(mean: float) -> int:
    """Decimals of every table cell of a metric whose mean is ``mean``: two, or as many as show two significant
    digits of a mean below 0.1, up to four."""
    if mean != 0 and abs(mean) < 0.1 and math.isfinite(mean):
        return min(4, 1 - math.floor(math.log10(abs(mean))))
    return 2


def write_tables(task: Task, results: dict, meta: dict, output: Path) -> None:
    """``table.md`` and ``table.csv`` of one seed's run in ``output``: per method (``results``: ``run_comparison``'s)
    and metric of ``task`` the mean ± sigma over held-out videos beside the paper's number."""
    names = list(task.metrics)
    header = ["method"] + [f"{n} ({s})" for n in names for s in ("ours", "paper")] + ["iterations", "parameters"]
    rows = []
    for method, r in results.items():
        ours, paper = r["metrics"], task.paper.get(method, {})
        params = r.get("parameters")
        rows.append(
            [method]
            + [c for n in names for c in (format_mean_sigma(ours.get(n)), format_mean_sigma(paper.get(n)))]
            + [str(r.get("iterations", "-")), f"{sum(params.values()) / 1e6:.2f}M" if params else "-"]
        )
    with atomic_file(output / "table.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    lines = _markdown_table(meta, f"seed {meta['seed']}, {meta['held_out_videos']} held-out videos", header, rows)
    lines += [
        "",
        "Values are mean ± sigma over held-out videos (sigma: standard deviation over videos).",
        *task.notes,
        "",
        "![figure](figure.png)",
    ]
    atomic_write_text(output / "table.md", "\n".join(lines) + "\n")
