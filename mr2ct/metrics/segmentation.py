"""Metrics of translated segmentation videos (the paper's Table 4 on GTA).

Colour videos are ``(N, C, D, H, W)`` tensors on [0, 255] (C = 3 for RGB); label videos are class ids
``(N, D, H, W)`` (``(N, 1, D, H, W)`` is accepted too; floats are accepted when they hold whole numbers).
Every metric returns one value per video, shape ``(N,)`` (report mean and sigma with
:func:`~mr2ct.metrics.digits.mean_and_sigma`). All are vectorised torch code, on the inputs' device.

Definitions (METRICS.md, "Segmentation (Table 4)" and "Temporal consistency"):

- decoding: every translated pixel takes the class of the nearest palette colour (Euclidean distance in
  colour space; exact ties go to the lowest class id);
- pixel accuracy: per frame, correct pixels / pixels (pixels whose true class is ``ignore_index`` left out),
  then the mean over the frames of the video (frames with no counted pixel left out; NaN if none). Without
  ``ignore_index`` every frame has H * W pixels, so this equals the fraction of correct pixels of the video;
- mean IoU (not in the paper): per class, ``|pred = c and true = c| / |pred = c or true = c|`` over all counted
  pixels of the video, averaged over the classes present in the prediction or the truth of that video;
- transition matrix: ``M[i, j]`` = number of (pixel, t) with class i at frame t and class j at frame t + 1,
  over t = 0 .. D - 2, each row divided by its sum. Rows of classes absent from frames 0 .. D - 2 are zeros
  (not identity), so a class that occurs in only one of two compared videos adds its whole row to the
  distance. Label denoising level ``l``: before counting, every frame goes through a spatial mode (majority)
  filter over the ``(2l + 1) x (2l + 1)`` window clipped to the image; a tie keeps the pixel's own class if it is
  among the most frequent, else takes the lowest tied class id. Level 0 = no filter;
- transition L2: Frobenius norm of the difference of the two videos' transition matrices;
- label flicker: METRICS.md's flicker (:func:`~mr2ct.metrics.temporal.temporal_flicker`) with "the class
  changes" (0 or 1) in place of the absolute colour difference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.handlers import IgniteMetricHandler, from_engine

from mr2ct.metrics.digits import volume_l2
from mr2ct.metrics.handlers import video_metric_handler
from mr2ct.metrics.temporal import masked_frame_change, temporal_flicker

__all__ = [
    "gta_metric_handlers",
    "DENOISE_LEVELS",
    "SEGMENTATION_METRICS",
    "decode_palette",
    "label_flicker",
    "mean_iou",
    "mode_filter",
    "pixel_accuracy",
    "segmentation_metric",
    "segmentation_metric_handler",
    "transition_l2",
    "transition_matrix",
]

DENOISE_LEVELS = (0, 1, 2)
"""Default label denoising levels of the transition-matrix table (mode filters 1x1, 3x3, 5x5)."""

SEGMENTATION_METRICS = ("pixel_accuracy", "mean_iou", "transition_l2", "label_flicker")


def _video(video: torch.Tensor, name: str = "video") -> torch.Tensor:
    if video.ndim != 5:
        raise ValueError(f"{name} must be (N, C, D, H, W), got shape {tuple(video.shape)}.")
    return video.float()


def _ids(ids: torch.Tensor, name: str, num_classes: int | None = None, ignore_index: int | None = None) -> torch.Tensor:
    """Class ids as a long ``(N, D, H, W)`` tensor, checked to lie in ``[0, num_classes)`` or be ``ignore_index``."""
    ids = torch.as_tensor(ids)
    if ids.ndim == 5 and ids.shape[1] == 1:
        ids = ids[:, 0]
    if ids.ndim != 4:
        raise ValueError(f"{name} must be (N, D, H, W) class ids, got shape {tuple(ids.shape)}.")
    if ids.is_floating_point() and bool((ids != ids.round()).any()):
        raise ValueError(f"{name} must hold whole class ids.")
    ids = ids.long()
    if num_classes is not None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}.")
        bad = (ids < 0) | (ids >= num_classes)
        if ignore_index is not None:
            bad &= ids != ignore_index
        if bool(bad.any()):
            raise ValueError(f"{name} has class ids outside [0, {num_classes}).")
    return ids


def _pair(pred_ids, true_ids, num_classes: int | None = None, ignore_index: int | None = None):
    pred = _ids(pred_ids, "pred_ids", num_classes, ignore_index)
    true = _ids(true_ids, "true_ids", num_classes, ignore_index)
    if pred.shape != true.shape:
        raise ValueError(f"pred_ids {tuple(pred.shape)} and true_ids {tuple(true.shape)} differ in shape.")
    return pred, true


def _masked_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Per-video weighted mean over all but the first dimension; NaN where the weights sum to 0."""
    total, count = (values * weights).flatten(1).sum(dim=1), weights.flatten(1).sum(dim=1)
    return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, float("nan")))


def decode_palette(video_rgb: torch.Tensor, palette: torch.Tensor | np.ndarray | Sequence) -> torch.Tensor:
    """Class ids ``(N, D, H, W)`` of the palette colours nearest (Euclidean) to each pixel of ``video_rgb``.

    Args:
        video_rgb: ``(N, C, D, H, W)`` colours on [0, 255] (floats allowed, values outside the range too).
        palette: ``(K, C)`` colour of each class, on the same scale; class ``k`` is row ``k``.
    """
    video = _video(video_rgb, "video_rgb")
    palette = torch.as_tensor(palette, dtype=torch.float32, device=video.device)
    if palette.ndim != 2 or palette.shape[0] < 1 or palette.shape[1] != video.shape[1]:
        raise ValueError(f"palette must be (K, {video.shape[1]}), got shape {tuple(palette.shape)}.")
    colours = palette.T[..., None, None, None]  # (C, K, 1, 1, 1)
    dist = sum((video[:, c, None] - colours[c]) ** 2 for c in range(video.shape[1]))  # (N, K, D, H, W)
    assert isinstance(dist, torch.Tensor)  # palette.shape[1] == C >= 1 terms
    return dist.argmin(dim=1)


def pixel_accuracy(pred_ids: torch.Tensor, true_ids: torch.Tensor, ignore_index: int | None = None) -> torch.Tensor:
    """Table 4 per-frame pixel accuracy, averaged over the frames of each video (``(N,)``).

    Pixels whose true class is ``ignore_index`` are not counted; frames without counted pixels are left out
    and a video without any gets NaN. A predicted ``ignore_index`` on a counted pixel is wrong.
    """
    pred, true = _pair(pred_ids, true_ids)
    valid = torch.ones_like(true, dtype=torch.bool) if ignore_index is None else true != ignore_index
    correct = ((pred == true) & valid).sum(dim=(2, 3)).float()
    count = valid.sum(dim=(2, 3)).float()
    return _masked_mean(correct / count.clamp(min=1), (count > 0).float())


def mean_iou(
    pred_ids: torch.Tensor, true_ids: torch.Tensor, num_classes: int, ignore_index: int | None = None
) -> torch.Tensor:
    """Mean intersection over union per video (``(N,)``), over the classes present in its prediction or truth.

    Counted over all pixels of the video whose true class is not ``ignore_index``; a predicted ``ignore_index``
    there is a miss of the true class. NaN for a video with nothing to count.
    """
    pred, true = _pair(pred_ids, true_ids, num_classes, ignore_index)
    k, n = num_classes, pred.shape[0]
    valid = torch.ones_like(true, dtype=torch.bool) if ignore_index is None else true != ignore_index
    if ignore_index is not None:
        pred = torch.where(pred == ignore_index, torch.full_like(pred, k), pred)  # an extra "no class" column
    video = torch.arange(n, device=pred.device).view(n, 1, 1, 1).expand_as(pred)
    index = ((video * k + true) * (k + 1) + pred)[valid]
    confusion = torch.bincount(index, minlength=n * k * (k + 1)).view(n, k, k + 1).float()  # [video, true, pred]
    inter = confusion[:, :, :k].diagonal(dim1=1, dim2=2)
    union = confusion.sum(dim=2) + confusion[:, :, :k].sum(dim=1) - inter
    return _masked_mean(inter / union.clamp(min=1), (union > 0).float())


def mode_filter(ids: torch.Tensor, num_classes: int, level: int) -> torch.Tensor:
    """Per-frame spatial mode (majority) filter of size ``2 * level + 1`` of class ids ``(N, D, H, W)``.

    The window is clipped to the image; a tie keeps the pixel's own class if it is among the most frequent,
    else takes the lowest tied class id. Level 0 returns the ids unchanged.
    """
    if not isinstance(level, int) or level < 0:
        raise ValueError(f"the denoising level must be an integer >= 0, got {level!r}.")
    ids = _ids(ids, "ids", num_classes)
    if level == 0:
        return ids
    n, d, h, w = ids.shape
    one_hot = F.one_hot(ids.reshape(n * d, h, w), num_classes).permute(0, 3, 1, 2).float()  # (N * D, K, H, W)
    votes = F.avg_pool2d(one_hot, 2 * level + 1, stride=1, padding=level, divisor_override=1)
    return (votes + 0.5 * one_hot).argmax(dim=1).reshape(n, d, h, w)  # + 0.5: the own class wins ties


def transition_matrix(ids: torch.Tensor, num_classes: int, denoise: int = 0) -> torch.Tensor:
    """Row-stochastic matrices ``(N, K, K)`` of pixel class transitions from frame t to t + 1.

    ``M[n, i, j]``: of the pixels of class i in frames 0 .. D - 2 of video n (after :func:`mode_filter` at level
    ``denoise``), the fraction that have class j in the next frame. Rows of absent classes are zeros.
    """
    ids = mode_filter(ids, num_classes, denoise)
    n, d = ids.shape[:2]
    if d < 2:
        raise ValueError(f"a transition needs at least 2 frames, got {d}.")
    k = num_classes
    video = torch.arange(n, device=ids.device).view(n, 1, 1, 1)
    index = (video * k + ids[:, :-1]) * k + ids[:, 1:]
    counts = torch.bincount(index.flatten(), minlength=n * k * k).view(n, k, k).float()
    return counts / counts.sum(dim=2, keepdim=True).clamp(min=1)


def transition_l2(pred_ids: torch.Tensor, true_ids: torch.Tensor, num_classes: int, denoise: int = 0) -> torch.Tensor:
    """Frobenius distance (``(N,)``) between the transition matrices of generated and ground-truth label videos.

    See :func:`transition_matrix`; ``denoise`` is the label denoising level applied to both videos.
    """
    pred, true = _pair(pred_ids, true_ids, num_classes)
    diff = transition_matrix(pred, num_classes, denoise) - transition_matrix(true, num_classes, denoise)
    return diff.flatten(1).norm(dim=1)


def label_flicker(
    ids: torch.Tensor, reference: torch.Tensor | None = None, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Fraction of pixels whose class changes between consecutive frames, minus that of ``reference`` ids.

    Same conventions as :func:`temporal_flicker`, with class ids ``(N, D, H, W)`` in place of colours.
    """
    ids = _ids(ids, "ids")
    if ids.shape[1] < 2:
        raise ValueError(f"flicker needs at least 2 frames, got {ids.shape[1]}.")
    flicker = masked_frame_change((ids[:, 1:] != ids[:, :-1]).float(), mask)
    if reference is None:
        return flicker
    reference = _ids(reference, "reference")
    if reference.shape != ids.shape:
        raise ValueError(f"reference {tuple(reference.shape)} and ids {tuple(ids.shape)} differ in shape.")
    return flicker - label_flicker(reference, mask=mask)


def segmentation_metric(
    name: str, palette: torch.Tensor | np.ndarray | Sequence, ignore_index: int | None = None, denoise: int = 0
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``fn(pred_rgb, label_rgb) -> (N,)``: decode both colour videos with ``palette``, then score them.

    Args:
        name: one of :data:`SEGMENTATION_METRICS`; ``label_flicker`` is the prediction's minus the truth's.
        palette: ``(K, C)`` class colours; K is the number of classes.
        ignore_index: class left out of ``pixel_accuracy`` and ``mean_iou`` (e.g. unlabeled).
        denoise: label denoising level of ``transition_l2``.
    """
    if name not in SEGMENTATION_METRICS:
        raise ValueError(f"name must be one of {SEGMENTATION_METRICS}, got {name!r}.")
    if denoise and name != "transition_l2":
        raise ValueError(f"denoise applies to transition_l2 only, got denoise={denoise} for {name!r}.")
    num_classes = len(palette)

    def fn(pred_rgb: torch.Tensor, label_rgb: torch.Tensor) -> torch.Tensor:
        pred, true = decode_palette(pred_rgb, palette), decode_palette(label_rgb, palette)
        if name == "pixel_accuracy":
            return pixel_accuracy(pred, true, ignore_index)
        if name == "mean_iou":
            return mean_iou(pred, true, num_classes, ignore_index)
        if name == "transition_l2":
            return transition_l2(pred, true, num_classes, denoise)
        return label_flicker(pred, true)

    return fn


def segmentation_metric_handler(
    name: str,
    palette: torch.Tensor | np.ndarray | Sequence,
    output_transform: Callable,
    ignore_index: int | None = None,
    denoise: int = 0,
    save_details: bool = True,
) -> IgniteMetricHandler:
    """An Ignite handler of :func:`segmentation_metric` on colour ``(pred, label)`` videos on [0, 255].

    E.g. ``segmentation_metric_handler('pixel_accuracy', palette, from_engine(['pred', 'label']))``.
    """
    return video_metric_handler(
        segmentation_metric(name, palette, ignore_index, denoise), output_transform, save_details=save_details
    )


def gta_metric_handlers(
    direction: str, domain_a: str, palette: torch.Tensor | np.ndarray | Sequence
) -> dict[str, IgniteMetricHandler]:
    """The GTA task's metrics of one translation direction, the first being the key metric (an ordered dict).

    - video -> segmentation (``b2a`` with ``domain_a="segmentation"``, the paper's Table 4): ``pixel_accuracy``,
      ``mean_iou``, ``transition_l2_d<level>`` for each of :data:`~mr2ct.metrics.segmentation.DENOISE_LEVELS`
      and ``label_flicker`` (the prediction's minus the ground truth's); colours are decoded to the nearest
      ``palette`` class.
    - segmentation -> video, and both directions of the colourisation task (``domain_a="grayscale"``): ``l2``
      (per-video RMSE to the ground truth on [0, 255]) and ``flicker`` (the output's mean absolute
      frame-to-frame change minus the ground truth's, METRICS.md).
    """
    pairs = from_engine(["pred", "label"])
    if direction == "b2a" and domain_a == "segmentation":
        handlers = {
            name: video_metric_handler(segmentation_metric(name, palette), pairs)
            for name in ("pixel_accuracy", "mean_iou")
        }
        handlers |= {
            f"transition_l2_d{level}": video_metric_handler(
                segmentation_metric("transition_l2", palette, denoise=level), pairs
            )
            for level in DENOISE_LEVELS
        }
        handlers["label_flicker"] = video_metric_handler(segmentation_metric("label_flicker", palette), pairs)
        return handlers
    return {
        "l2": video_metric_handler(volume_l2, pairs),
        "flicker": video_metric_handler(lambda pred, label: temporal_flicker(pred, reference=label), pairs),
    }
