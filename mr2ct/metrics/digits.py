"""The paper's metrics for digit videos (Tables 1 and 2), a colour-flicker measure, and METRICS.md's flicker
per digit.

Videos are ``(N, C, D, H, W)`` tensors on the [0, 255] intensity scale (C = 1 grey, 3 RGB). Every function
returns one value per video, shape ``(N,)``; report the mean and, as the paper's sigma, the standard
deviation over held-out videos (see :func:`mean_and_sigma`).
"""

from __future__ import annotations

import torch
from monai.metrics import RMSEMetric

from mr2ct.metrics.temporal import temporal_flicker

__all__ = [
    "colour_flicker",
    "digit_colour_sigma",
    "digit_flicker",
    "digit_intensity_mean",
    "digit_masks",
    "mean_and_sigma",
    "shape_l2",
    "volume_l2",
]


def _check(video: torch.Tensor, name: str = "video") -> torch.Tensor:
    if video.ndim != 5:
        raise ValueError(f"{name} must be (N, C, D, H, W), got shape {tuple(video.shape)}.")
    return video.float()


def volume_l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Table 2 L2: per-video root-mean-square difference over all voxels and channels (``(N,)``).

    MONAI's ``RMSEMetric``, the same definition the bundles' evaluators use.
    """
    pred, target = _check(pred, "pred"), _check(target, "target")
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape.")
    return torch.as_tensor(RMSEMetric()(pred, target)).reshape(-1)


def digit_masks(video: torch.Tensor, threshold: float = 127.5) -> torch.Tensor:
    """Binary digit masks ``(N, D, H, W)``: voxels whose brightest channel exceeds ``threshold``."""
    return _check(video).amax(dim=1) > threshold


def shape_l2(pred: torch.Tensor, target: torch.Tensor, threshold: float = 127.5) -> torch.Tensor:
    """Table 1 shape L2: per-video L2 norm of the difference of the binary digit masks, relative to the L2 norm
    of the ground truth's mask: ``||m_pred - m_gt||_2 / ||m_gt||_2``.

    0 = the same shapes, 1 = an empty output (or as many wrong voxels as the digit has), above 1 = spurious
    shapes. The paper does not state its normalisation; its values (0.79 to 1.48) are on a scale like this.
    NaN for a ground truth without digit voxels.
    """
    gt = digit_masks(target, threshold).float()
    diff = digit_masks(pred, threshold).float() - gt
    norm = gt.flatten(1).sum(dim=1)
    error = diff.pow(2).flatten(1).sum(dim=1)
    return torch.where(norm > 0, (error / norm.clamp(min=1)).sqrt(), torch.full_like(norm, float("nan")))


def digit_intensity_mean(video: torch.Tensor, threshold: float = 127.5) -> torch.Tensor:
    """Table 1 intensity mean: mean over digit voxels (and channels) of the intensity, per video."""
    video = _check(video)
    mask = digit_masks(video, threshold)[:, None].expand_as(video)
    total = (video * mask).flatten(1).sum(dim=1)
    count = mask.flatten(1).sum(dim=1)
    return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, float("nan")))


def _per_frame_digit_colour(video: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per frame and channel: mean and std of digit pixels, and the digit pixel count, each ``(N, C, D)``."""
    video = _check(video)
    mask = digit_masks(video, threshold)[:, None].expand_as(video).float()
    count = mask.sum(dim=(3, 4))
    mean = (video * mask).sum(dim=(3, 4)) / count.clamp(min=1)
    var = ((video - mean[..., None, None]) ** 2 * mask).sum(dim=(3, 4)) / count.clamp(min=1)
    return mean, var.sqrt(), count


def digit_colour_sigma(video: torch.Tensor, threshold: float = 127.5) -> torch.Tensor:
    """Table 1 colour sigma: std of each channel over the digit pixels of a frame, averaged over channels and
    over the frames that contain a digit."""
    _, std, count = _per_frame_digit_colour(video, threshold)
    has_digit = (count[:, 0] > 0).float()  # (N, D)
    per_frame = std.mean(dim=1)
    return (per_frame * has_digit).sum(dim=1) / has_digit.sum(dim=1).clamp(min=1)


def colour_flicker(video: torch.Tensor, threshold: float = 127.5) -> torch.Tensor:
    """Colour flicker: std over time of the mean digit colour of each frame, averaged over channels.

    0 when the digit keeps one colour through the video; frames without a digit are left out.
    """
    mean, _, count = _per_frame_digit_colour(video, threshold)
    has_digit = (count[:, :1] > 0).float()  # (N, 1, D)
    n = has_digit.sum(dim=2).clamp(min=1)
    centre = (mean * has_digit).sum(dim=2) / n
    var = ((mean - centre[..., None]) ** 2 * has_digit).sum(dim=2) / n
    return var.sqrt().mean(dim=1)


def digit_flicker(pred: torch.Tensor, target: torch.Tensor, threshold: float = 127.5) -> torch.Tensor:
    """METRICS.md's flicker per object: the mean absolute change between consecutive frames of ``pred`` at the
    pixels inside the ground truth's digit at both frames (:func:`digit_masks` of ``target``), minus the same for
    ``target`` (:func:`~mr2ct.metrics.temporal.temporal_flicker`).

    0 = the translated digit changes between frames as little as the true one (a digit that keeps its colour as
    it moves), above 0 = more; an output that draws nothing there scores 0 minus the truth's change. NaN for a
    ground truth whose digit never covers a pixel in two consecutive frames.
    """
    return temporal_flicker(_check(pred, "pred"), _check(target, "target"), mask=digit_masks(target, threshold))


def mean_and_sigma(values: torch.Tensor) -> tuple[float, float]:
    """Mean and standard deviation (ddof 0) over videos, ignoring NaNs (videos without a digit)."""
    v = values[~torch.isnan(values)].double()
    if v.numel() == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(unbiased=False))
