"""Evaluation report: metric table (mean and sigma over cases), loss curves and input/output/ground-truth panels."""

from __future__ import annotations

import csv
import datetime
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from matplotlib.figure import Figure

from mr2ct.export.panels import atomic_savefig, save_frame_panel, save_side_by_side_gif
from mr2ct.export.render import save_midplane_panel, uncertainty_sheet
from mr2ct.io.atomic import atomic_file, atomic_write_text
from mr2ct.metrics.tissue import rank_correlation, rank_correlation_sigma

__all__ = ["TranslationReport", "plot_loss_curves", "summarize_metric_details"]

logger = logging.getLogger(__name__)


def plot_loss_curves(loss_csv: str | Path, path: str | Path, smooth: int = 5) -> Path | None:
    """Plot every loss column of a :class:`~mr2ct.engine.LossCSVLogger` file against iterations (moving average)."""
    loss_csv, path = Path(loss_csv), Path(path)
    if not loss_csv.is_file():
        return None
    with open(loss_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    it = np.array([float(r["iteration"]) for r in rows])
    names = [k for k in rows[0] if k.startswith("loss_")]
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for name in names:
        y = np.array([float(r.get(name) or "nan") for r in rows])
        k = max(1, min(smooth, len(y)))
        ax.plot(it[k - 1 :], np.convolve(y, np.ones(k) / k, mode="valid"), label=name)
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"loss (moving average of {smooth} logs)")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=100)
    return path


def _mean_std_n(values: np.ndarray) -> dict[str, float]:
    defined = values[~np.isnan(values)]
    if not len(defined):
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    return {"mean": float(defined.mean()), "std": float(defined.std()), "n": int(len(defined))}


def summarize_metric_details(
    details: Mapping[str, Any],
    mse_ratios: Mapping[str, tuple[str, str]] | None = None,
    rank_correlations: Mapping[str, tuple[str, str]] | None = None,
) -> dict[str, dict[str, float]]:
    """Per-case metric values ``{name: (N, ...)}`` -> ``{name: {"mean", "std", "n"}}`` (std over cases, ddof=0;
    cases where a metric is undefined, NaN, such as a colour metric of a video without a digit, are left out of
    its mean, sigma and n).

    ``mse_ratios`` ``{name: (rmse_a, rmse_b)}`` adds ``mean(rmse_a**2) / mean(rmse_b**2)``, e.g. a model's mean
    squared error relative to a baseline's (its "std" is 0: it is one number for the whole set).
    ``rank_correlations`` ``{name: (metric_a, metric_b)}`` adds Spearman's rank correlation of the two metrics over
    the cases, e.g. whether the cases with the largest mean uncertainty have the largest MAE (one number; its "std"
    is the bootstrap standard error over the cases, :func:`~mr2ct.metrics.tissue.rank_correlation_sigma`).
    NaN values (a metric undefined for a case, e.g. bone MAE without bone) are left out of mean and std.
    """
    per_case = {
        name: torch.as_tensor(v, dtype=torch.float64).reshape(len(v), -1).mean(dim=1).numpy()
        for name, v in details.items()
    }
    out = {name: _mean_std_n(v) for name, v in per_case.items()}
    for name, (a, b) in (mse_ratios or {}).items():
        if a in per_case and b in per_case:
            ratio = float(np.mean(per_case[a] ** 2) / np.mean(per_case[b] ** 2))
            out[name] = {"mean": ratio, "std": 0.0, "n": int(len(per_case[a]))}
    for name, (a, b) in (rank_correlations or {}).items():
        if a in per_case and b in per_case:
            out[name] = {
                "mean": rank_correlation(per_case[a], per_case[b]),
                "std": rank_correlation_sigma(per_case[a], per_case[b]),
                "n": int(len(per_case[a])),
            }
    return out


class TranslationReport:
    """Evaluator handler that writes a report folder when evaluation completes.

    Writes ``report.md`` (settings, metric table, pictures), ``metrics.csv`` and ``metrics.json`` (mean and
    sigma over cases of every metric whose per-case values the evaluator kept with ``save_details=True``),
    ``cases.csv`` (the per-case values), ``loss_curves.png`` (from the training loss CSV, if given),
    ``case_<i>.png`` panels (plus one GIF) of input / translation / ground truth and ``examples.npz`` (those cases'
    ``image_<i>``, ``pred_<i>`` and ``label_<i>`` arrays, for figures that compare runs); with ``midplanes`` and an
    ``uncertainty`` map in the evaluator's items (e.g. the spread of :class:`~mr2ct.engine.AugmentationSpread`),
    also ``case_<i>_uncertainty.png``: the map and the true absolute error overlaid on the translation
    (:func:`~mr2ct.export.render.uncertainty_sheet`).

    Args:
        output_dir: the report folder.
        title: report heading.
        settings: what produced the numbers (method, preset, seed, checkpoint, iterations...), printed verbatim.
        loss_csv: the training run's loss log.
        num_cases: how many cases get a picture.
        value_range: intensity range of the evaluator's output images (for display); for ``midplanes``, a mapping
            ``{"image": range, "pred": range, "label": range}`` (e.g. MR on [-1, 1], CT in HU).
        midplanes: instead of frame panels and a GIF, picture each case by its axial, coronal and sagittal
            mid-planes, with this voxel spacing ``(slice, x, y)`` in mm (volumes such as MR/CT).
        metric_notes: ``{metric name: one-line definition}`` printed under the table.
        mse_ratios: ``{name: (rmse metric, baseline rmse metric)}`` ratios of mean squared errors to report.
        rank_correlations: ``{name: (metric, metric)}`` rank correlations over the cases to report (see
            :func:`summarize_metric_details`).
        subsets: ``{name: case indices}``: every metric is also summarised over these cases, as
            ``<metric>_<name>`` (e.g. the GTA task's slow test clips); indices past the evaluated cases are ignored.
    """

    def __init__(
        self,
        output_dir: str | Path,
        title: str = "Translation report",
        settings: Mapping | None = None,
        loss_csv: str | Path | None = None,
        num_cases: int = 4,
        value_range: tuple[float, float] | Mapping[str, tuple[float, float]] = (0, 255),
        metric_notes: Mapping[str, str] | None = None,
        mse_ratios: Mapping[str, tuple[str, str]] | None = None,
        midplanes: tuple[float, float, float] | None = None,
        subsets: Mapping[str, Sequence[int]] | None = None,
        rank_correlations: Mapping[str, tuple[str, str]] | None = None,
    ):
        self.output_dir = Path(output_dir)
        self.title = title
        self.settings = dict(settings or {})
        self.loss_csv = loss_csv
        self.num_cases = num_cases
        # a mapping for midplanes, one (low, high) pair otherwise
        self.value_range: Any = dict(value_range) if isinstance(value_range, Mapping) else tuple(value_range)
        self.midplanes = midplanes
        self.metric_notes = dict(metric_notes or {})
        self.mse_ratios = dict(mse_ratios or {})
        self.rank_correlations = dict(rank_correlations or {})
        self.subsets = {name: [int(i) for i in indices] for name, indices in (subsets or {}).items()}
        self.cases: list[dict[str, torch.Tensor]] = []
        self.case_names: list[str] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, self)

    def _reset(self, _engine: Engine) -> None:
        self.cases.clear()
        self.case_names.clear()

    def _collect(self, engine: Engine) -> None:
        output: Any = engine.state.output  # the evaluator's list of decollated items
        for item in output:
            meta = getattr(item.get("image"), "meta", {})
            self.case_names.append(str(meta.get("filename_or_obj", len(self.case_names))))
            if len(self.cases) >= self.num_cases:
                continue
            self.cases.append(
                {
                    k: torch.as_tensor(item[k]).detach().cpu()
                    for k in ("image", "pred", "label", "uncertainty")
                    if k in item
                }
            )

    def __call__(self, engine: Engine) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        details = getattr(engine.state, "metric_details", {}) or {}
        summary = summarize_metric_details(
            {**details, **self._subset_details(details)}, self.mse_ratios, self.rank_correlations
        )
        self._write_tables(summary)
        self._write_cases(details)
        with atomic_file(self.output_dir / "examples.npz") as tmp:
            arrays = {f"{k}_{i}": v.numpy() for i, case in enumerate(self.cases) for k, v in case.items()}
            np.savez_compressed(tmp, **arrays)  # type: ignore[arg-type]  # numpy's stub: names are arrays too
        pictures = []
        names = {"image": "input", "pred": "translation", "label": "ground truth"}
        for i, case in enumerate(self.cases):
            uncertainty = case.get("uncertainty")
            case = {k: v for k, v in case.items() if k != "uncertainty"}
            rows = {names[k]: v for k, v in case.items()}
            if self.midplanes is not None:
                ranges = {names[k]: self.value_range[k] for k in case}
                pictures.append(save_midplane_panel(rows, self.output_dir / f"case_{i}.png", ranges, self.midplanes))
                if uncertainty is not None:
                    pictures.append(self._uncertainty_picture(i, case, uncertainty))
                continue
            pictures.append(save_frame_panel(rows, self.output_dir / f"case_{i}.png", value_range=self.value_range))
            if i == 0:
                pictures.append(
                    save_side_by_side_gif(rows, self.output_dir / "case_0.gif", value_range=self.value_range)
                )
        curve = plot_loss_curves(self.loss_csv, self.output_dir / "loss_curves.png") if self.loss_csv else None
        self._write_markdown(summary, pictures, curve)
        logger.info(f"report written to {self.output_dir / 'report.md'}")

    def _uncertainty_picture(self, i: int, case: Mapping[str, torch.Tensor], uncertainty: torch.Tensor) -> Path:
        """``case_<i>_uncertainty.png``: the ``(1, slices, x, y)`` confidence map (and the true error, if the
        ground truth is known) overlaid on the translation."""
        ras = lambda v: np.asarray(v, dtype=np.float32)[0].transpose(1, 2, 0)  # noqa: E731  (x, y, slices)
        error = np.abs(ras(case["pred"]) - ras(case["label"])) if "label" in case else None
        dz, dx, dy = self.midplanes  # type: ignore[misc]
        return uncertainty_sheet(
            self.output_dir / f"case_{i}_uncertainty.png",
            ras(case["pred"]),
            ras(uncertainty),
            error,
            spacing=(dx, dy, dz),
            title=f"case {i}: confidence map and true error",
        )

    def _subset_details(self, details: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Per-case values of each metric restricted to each subset, named ``<metric>_<subset>``."""
        out = {}
        for subset, indices in self.subsets.items():
            for name, values in details.items():
                values = torch.as_tensor(values)
                out[f"{name}_{subset}"] = values[[i for i in indices if i < len(values)]]
        return out

    def _write_tables(self, summary: dict[str, dict[str, float]]) -> None:
        with atomic_file(self.output_dir / "metrics.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["metric", "mean", "std", "n"])
            for name, s in summary.items():
                writer.writerow([name, f"{s['mean']:.4f}", f"{s['std']:.4f}", s["n"]])
        atomic_write_text(
            self.output_dir / "metrics.json",
            json.dumps({"settings": self.settings, "metrics": summary}, indent=2, default=str),
        )

    def _write_cases(self, details: Mapping[str, Any]) -> None:
        """``cases.csv``: one row per evaluated case, one column per metric (its per-case value)."""
        per_case = {
            name: torch.as_tensor(v, dtype=torch.float64).reshape(len(v), -1).mean(dim=1).tolist()
            for name, v in details.items()
        }
        with atomic_file(self.output_dir / "cases.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["case", *per_case])
            for i, name in enumerate(self.case_names):
                writer.writerow([name, *(f"{v[i]:.4f}" if i < len(v) else "" for v in per_case.values())])

    def _write_markdown(self, summary, pictures, curve) -> None:
        lines = [
            f"# {self.title}",
            "",
            f"Written {datetime.datetime.now().isoformat(timespec='seconds')}.",
            "",
            "## Settings",
            "",
        ]
        lines += [f"- **{k}**: `{v}`" for k, v in self.settings.items()]
        lines += ["", "## Metrics (held-out cases)", "", "| metric | mean | sigma | n |", "|---|---|---|---|"]
        lines += [f"| {k} | {s['mean']:.4f} | {s['std']:.4f} | {s['n']} |" for k, s in summary.items()]
        lines += [""] + [f"- `{k}`: {v}" for k, v in self.metric_notes.items()]
        if curve is not None:
            lines += ["", "## Training losses", "", f"![loss curves]({curve.name})"]
        if pictures:
            layout = (
                "columns: input, translation, ground truth; rows: axial, coronal, sagittal mid-planes"
                if self.midplanes is not None
                else "rows: input, translation, ground truth; columns: frames"
            )
            lines += ["", f"## Cases ({layout})", ""]
            lines += [f"![{p.stem}]({p.name})" for p in pictures]
        atomic_write_text(self.output_dir / "report.md", "\n".join(lines) + "\n")
