"""MONAI/Ignite wrappers so that any per-video metric of this package can run inside an evaluator."""

from __future__ import annotations

from collections.abc import Callable

import torch
from monai.handlers import IgniteMetricHandler
from monai.metrics import CumulativeIterationMetric

from mr2ct.metrics.synthrad import SYNTHRAD_METRICS, body_mask, linear_fit

__all__ = ["TRANSLATIONS", "VideoMetric", "synthrad_metric_handler", "video_metric_handler"]

TRANSLATIONS = ("pred", "identity", "linear")


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


def video_metric_handler(fn: Callable[..., torch.Tensor], output_transform: Callable, paired: bool = True,
                         save_details: bool = True) -> IgniteMetricHandler:
    """An Ignite metric handler for :class:`VideoMetric` (per-video values kept for mean and sigma reports)."""
    return IgniteMetricHandler(metric_fn=VideoMetric(fn, paired), output_transform=output_transform,
                               save_details=save_details)


def _hu(image: torch.Tensor, window: tuple[float, float]) -> torch.Tensor:
    lo, hi = window
    return (image.float() + 1) / 2 * (hi - lo) + lo


def synthrad_metric_handler(metric: str, translation: str = "pred", ct_window: tuple[float, float] = (-1000, 2000),
                            save_details: bool = True) -> IgniteMetricHandler:
    """A SynthRAD metric (``mae``, ``psnr`` or ``ssim`` in HU inside the body mask) of an evaluator's output.

    The evaluator's decollated items hold ``image`` (the MR input on [-1, 1]), ``pred`` (the synthetic CT in HU),
    ``label`` (the real CT in HU) and optionally ``mask`` (else derived from the CT with
    :func:`~mr2ct.metrics.synthrad.body_mask`). ``translation`` picks what is scored: ``pred``, or a yardstick:
    ``identity`` (the MR itself mapped through the CT window to HU, i.e. no translation) or ``linear`` (the best
    per-case linear intensity map of the MR onto the CT, fitted on the pair: an optimistic baseline).
    """
    if metric not in SYNTHRAD_METRICS:
        raise ValueError(f"metric must be one of {sorted(SYNTHRAD_METRICS)}, got {metric!r}.")
    if translation not in TRANSLATIONS:
        raise ValueError(f"translation must be one of {TRANSLATIONS}, got {translation!r}.")
    fn = SYNTHRAD_METRICS[metric]

    def output_transform(output):
        preds, targets = [], []
        for item in output:
            ct = torch.as_tensor(item["label"]).float().cpu()[0]
            mask = (torch.as_tensor(item["mask"]).cpu()[0] > 0.5) if "mask" in item else torch.from_numpy(body_mask(ct))
            if translation == "pred":
                sct = torch.as_tensor(item["pred"]).float().cpu()[0]
            else:
                sct = _hu(torch.as_tensor(item["image"]).cpu()[0], ct_window)
                if translation == "linear":
                    sct = torch.from_numpy(linear_fit(sct, ct, mask))
            preds.append(sct[None].float())
            targets.append(torch.stack([ct, mask.float()]))
        return preds, targets

    def score(y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        values = [fn(ct, sct[0], ct_mask > 0.5) for sct, (ct, ct_mask) in zip(y_pred, y)]
        return torch.tensor(values, dtype=torch.float64)

    return IgniteMetricHandler(metric_fn=VideoMetric(score), output_transform=output_transform,
                               save_details=save_details)
