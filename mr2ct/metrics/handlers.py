"""MONAI/Ignite wrappers so that any per-video metric of this package can run inside an evaluator."""

from __future__ import annotations

from collections.abc import Callable

import torch
from monai.handlers import IgniteMetricHandler
from monai.metrics import CumulativeIterationMetric

__all__ = ["VideoMetric", "video_metric_handler"]


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
