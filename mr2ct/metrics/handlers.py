"""MONAI/Ignite wrappers so that any per-video metric of this package can run inside an evaluator."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from monai.handlers import IgniteMetricHandler
from monai.metrics import CumulativeIterationMetric

from mr2ct.metrics.synthrad import SYNTHRAD_METRICS, body_mask, linear_fit
from mr2ct.metrics.tissue import TISSUE_CLASSES, bone_dice, tissue_classes, tissue_error, voxel_rank_correlation

__all__ = [
    "MRCT_METRICS",
    "REFERENCE_KEYS",
    "TRANSLATIONS",
    "UNCERTAINTY_METRICS",
    "VideoMetric",
    "synthrad_metric_handler",
    "uncertainty_metric_handler",
    "video_metric_handler",
]

TRANSLATIONS = ("pred", "identity", "linear")


def _ignore_tissue(fn: Callable) -> Callable:
    return lambda ct, sct, mask, tissue: fn(ct, sct, mask)


MRCT_METRICS: dict[str, Callable] = {
    **{name: _ignore_tissue(fn) for name, fn in SYNTHRAD_METRICS.items()},
    **{f"mae_{t}": partial(tissue_error, name=t) for t in TISSUE_CLASSES},
    **{f"me_{t}": partial(tissue_error, name=t, signed=True) for t in TISSUE_CLASSES},
    "dice_bone": _ignore_tissue(bone_dice),
}
"""Per-case MR -> CT metrics ``fn(ct, sct, mask, tissue) -> float``: the SynthRAD ones (``mae``, ``psnr``,
``ssim``), MAE and mean error (bias) per tissue class (``mae_air``, ``me_bone``...) and ``dice_bone``."""

UNCERTAINTY_METRICS = ("mean_uncertainty", "uncertainty_voxel_spearman")
"""Per-case statistics of a confidence map, see :func:`uncertainty_metric_handler`."""


class VideoMetric(CumulativeIterationMetric):
    """A MONAI cumulative metric from a function that returns one value per video.

    Args:
        fn: ``fn(y_pred, y) -> (N,)`` when ``paired``, else ``fn(y_pred) -> (N,)``; inputs ``(N, C, D, H, W)``.
        paired: whether ``fn`` compares with the ground truth.

    ``aggregate`` returns the mean over all videos seen, ignoring NaNs (videos where the metric is undefined).
    """

    def __init__(self, fn: Callable[..., torch.Tensor], paired: bool = True):
        super().__init__()
        self.fn = fn
        self.paired = paired

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        values = self.fn(y_pred, y) if self.paired else self.fn(y_pred)
        return values.reshape(-1, 1)

    def aggregate(self) -> torch.Tensor:
        data = self.get_buffer()
        return torch.nanmean(data.float()) if isinstance(data, torch.Tensor) else torch.tensor(float("nan"))


def video_metric_handler(
    fn: Callable[..., torch.Tensor], output_transform: Callable, paired: bool = True, save_details: bool = True
) -> IgniteMetricHandler:
    """An Ignite metric handler for :class:`VideoMetric` (per-video values kept for mean and sigma reports)."""
    return IgniteMetricHandler(
        metric_fn=VideoMetric(fn, paired), output_transform=output_transform, save_details=save_details
    )


def _hu(image: torch.Tensor, window: tuple[float, float]) -> torch.Tensor:
    lo, hi = window
    return (image.float() + 1) / 2 * (hi - lo) + lo


REFERENCE_KEYS = {"mask": ("eval_mask", "mask"), "tissue": ("eval_tissue", "tissue")}
"""Where the metrics find a case's body mask and tissue map in an evaluator's output item, first name first.

An evaluator's output holds ``image``, ``label`` and ``pred``; other keys of the batch (``mask``, ``tissue``) do
not reach it, nor the metrics. The MR -> CT evaluation's postprocessing copies them to ``eval_mask`` and
``eval_tissue``, which do (MONAI keeps new keys of the postprocessing in the output)."""


def _reference_value(item, name: str):
    return next((item[key] for key in REFERENCE_KEYS[name] if key in item), None)


def _reference(item) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(ct, body mask, tissue classes)`` of an evaluated case (mask and classes derived from the CT if absent)."""
    ct = torch.as_tensor(item["label"]).float().cpu()[0]
    mask, tissue = _reference_value(item, "mask"), _reference_value(item, "tissue")
    mask = (torch.as_tensor(mask).cpu()[0] > 0.5) if mask is not None else torch.from_numpy(body_mask(ct))
    if tissue is not None:
        tissue = torch.as_tensor(tissue).cpu()[0].round().to(torch.uint8)
    else:
        tissue = torch.from_numpy(tissue_classes(ct))
    return ct, mask, tissue


def synthrad_metric_handler(
    metric: str, translation: str = "pred", ct_window: tuple[float, float] = (-1000, 2000), save_details: bool = True
) -> IgniteMetricHandler:
    """An MR -> CT metric of an evaluator's output, one value per case (see :data:`MRCT_METRICS`).

    ``metric`` is a SynthRAD metric (``mae``, ``psnr`` or ``ssim`` in HU inside the body mask), the MAE or mean
    error of one tissue class inside the mask (``mae_air``, ``mae_soft``, ``mae_bone``, ``me_air``, ``me_soft``,
    ``me_bone``; see :mod:`mr2ct.metrics.tissue`) or ``dice_bone``. The evaluator's decollated items hold
    ``image`` (the MR input on [-1, 1]), ``pred`` (the synthetic CT in HU), ``label`` (the real CT in HU),
    optionally ``mask`` (else derived from the CT with :func:`~mr2ct.metrics.synthrad.body_mask`) and optionally
    ``tissue``, a class map (0 air, 1 soft tissue, 2 bone; else classes by thresholds on the CT,
    :func:`~mr2ct.metrics.tissue.tissue_classes`); an evaluator passes these two on as ``eval_mask`` and
    ``eval_tissue`` (:data:`REFERENCE_KEYS`). ``translation`` picks what is scored: ``pred``, or a
    yardstick: ``identity`` (the MR itself mapped through the CT window to HU, i.e. no translation) or ``linear``
    (the best per-case linear intensity map of the MR onto the CT, fitted on the pair: an optimistic baseline).
    """
    if metric not in MRCT_METRICS:
        raise ValueError(f"metric must be one of {sorted(MRCT_METRICS)}, got {metric!r}.")
    if translation not in TRANSLATIONS:
        raise ValueError(f"translation must be one of {TRANSLATIONS}, got {translation!r}.")
    fn = MRCT_METRICS[metric]

    def output_transform(output):
        preds, targets = [], []
        for item in output:
            ct, mask, tissue = _reference(item)
            if translation == "pred":
                sct = torch.as_tensor(item["pred"]).float().cpu()[0]
            else:
                sct = _hu(torch.as_tensor(item["image"]).cpu()[0], ct_window)
                if translation == "linear":
                    sct = torch.from_numpy(linear_fit(sct, ct, mask))
            preds.append(sct[None].float())
            targets.append(torch.stack([ct, mask.float(), tissue.float()]))
        return preds, targets

    def score(y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        values = [fn(ct, sct[0], ct_mask > 0.5, tissue.round().long()) for sct, (ct, ct_mask, tissue) in zip(y_pred, y)]
        return torch.tensor(values, dtype=torch.float64)

    return IgniteMetricHandler(
        metric_fn=VideoMetric(score), output_transform=output_transform, save_details=save_details
    )


def uncertainty_metric_handler(metric: str, save_details: bool = True) -> IgniteMetricHandler:
    """A per-case statistic of the confidence map ``uncertainty`` (HU, larger = less trusted) of an evaluator's items.

    ``mean_uncertainty``: its mean inside the body mask; ``uncertainty_voxel_spearman``: Spearman's rank
    correlation, over the voxels inside the mask, between the map and the true absolute error ``|pred - label|``
    (:func:`~mr2ct.metrics.tissue.voxel_rank_correlation`). Items hold ``pred``, ``label``, ``uncertainty`` and
    optionally ``mask``, as for :func:`synthrad_metric_handler`.
    """
    if metric not in UNCERTAINTY_METRICS:
        raise ValueError(f"metric must be one of {UNCERTAINTY_METRICS}, got {metric!r}.")

    def output_transform(output):
        preds, targets = [], []
        for item in output:
            if "uncertainty" not in item:
                raise KeyError(f"{metric} needs an 'uncertainty' map in the evaluator's output (uncertainty: true).")
            ct, mask, _ = _reference(item)
            sct = torch.as_tensor(item["pred"]).float().cpu()[0]
            preds.append(torch.as_tensor(item["uncertainty"]).float().cpu()[0][None])
            targets.append(torch.stack([ct, sct, mask.float()]))
        return preds, targets

    def score(y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        values = []
        for (unc,), (ct, sct, mask) in zip(y_pred, y):
            inside = mask > 0.5
            values.append(
                float(unc[inside].double().mean())
                if metric == "mean_uncertainty"
                else voxel_rank_correlation(unc, ct, sct, inside)
            )
        return torch.tensor(values, dtype=torch.float64)

    return IgniteMetricHandler(
        metric_fn=VideoMetric(score), output_transform=output_transform, save_details=save_details
    )
