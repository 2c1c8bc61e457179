"""Temporal-consistency metrics of translated videos (METRICS.md): flicker, tOF (TecoGAN) and the warping error
(Lai et al., 2018).

Videos are ``(N, C, D, H, W)`` tensors on [0, 255] (C = 1 grey or 3 RGB, D = frames); every function returns one
value per video, shape ``(N,)``, like the other video metrics of :mod:`mr2ct.metrics` (report mean and sigma with
:func:`~mr2ct.metrics.digits.mean_and_sigma`). Optical flow is OpenCV's Farneback flow on grey uint8 frames (no
network weights), with TecoGAN's parameters ``calcOpticalFlowFarneback(prev, cur, None, 0.5, 3, 15, 3, 5, 1.2, 0)``.
Flows are ``(H, W, 2)`` arrays of ``(dx, dy)`` in pixels: frame ``t`` pixel ``(x, y)`` moves to
``(x + dx, y + dy)`` in frame ``t + 1``.

- **Flicker** (METRICS.md): the mean absolute difference between consecutive frames (over channels and pixels;
  only pixels inside an object ``mask`` at both frames when one is given), minus the same for a reference video
  (the ground truth, or the input when it is in the same domain). 0 = as stable as the reference.
- **tOF** (Chu et al., "Learning temporal coherence via self-supervision for GAN-based video generation",
  TecoGAN, 2020; its ``metrics.py``): for each pair of consecutive frames, the Farneback flow of the output and
  of the target, the Euclidean norm of their difference per pixel, averaged over pixels; then the mean over
  the frame pairs of the video. 0 = the output moves exactly like the target. TecoGAN also crops a border (of
  at least 8 pixels, to a multiple of 32) and skips two frames at each end of its long super-resolved clips;
  on our short clips of 28-pixel frames that would leave nothing, so every pixel and frame pair is used.
- **Warping error** (Lai et al., "Learning Blind Video Temporal Consistency", ECCV 2018, Eq. 8 and their
  ``evaluate_WarpError.py``): ``E = 1 / (D - 1) * sum_t sum_i M_t(i) ||V_t(i) - W(V_{t+1})(i)||^2 / (C sum_i M_t(i))``
  on frames scaled to [0, 1], where ``W(V_{t+1})`` is frame t + 1 warped back to frame t (bilinear sampling at
  ``x + flow_{t->t+1}(x)``, border replicated) and ``M_t`` the non-occlusion mask of the forward-backward check
  of Ruder et al. (2016) as Lai et al. implement it: a pixel is occluded where
  ``|f(x) + b(x + f(x))|^2 > 0.01 (|f(x)|^2 + |b(x + f(x))|^2) + 0.5`` (``f``, ``b``: forward and backward flow),
  on a motion boundary ``|grad f|^2 > 0.01 |f|^2 + 0.002``, and, added here, where ``x + f(x)`` leaves the frame
  (no correspondence; Lai et al.'s resampler clamps it to the border). A frame pair without a non-occluded pixel
  divides by ``C * H * W``, as Lai et al. do. **The flow differs from the paper's**: Lai et al. use FlowNet2
  (downloaded weights); we use Farneback, a classical flow. As in Lai et al., whose flow and occlusion masks are
  computed on the *input* video and applied to every method's output, the flow comes from a reference video
  that carries the true motion (``flow_video``: the input or the ground truth, which share their motion in our
  paired test sets), not from the output itself: an output that flickers or drifts would otherwise explain its
  own inconsistency away with a wrong flow. The reproduction tables pass the ground truth (the target video);
  ``flow_video=None`` uses the output's own frames.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import torch
from monai.handlers import IgniteMetricHandler, from_engine

from mr2ct.metrics.handlers import video_metric_handler

__all__ = [
    "FARNEBACK_PARAMS",
    "TEMPORAL_METRICS",
    "farneback_flow",
    "grey_frames",
    "masked_frame_change",
    "occlusion_mask",
    "temporal_flicker",
    "temporal_metric_handler",
    "tof",
    "warp_back",
    "warping_error",
]

FARNEBACK_PARAMS = {
    "pyr_scale": 0.5,
    "levels": 3,
    "winsize": 15,
    "iterations": 3,
    "poly_n": 5,
    "poly_sigma": 1.2,
    "flags": 0,
}
"""TecoGAN's ``calcOpticalFlowFarneback`` parameters, used for every flow of this module."""

TEMPORAL_METRICS = ("tof", "warping_error")


def _checked_video(video: torch.Tensor | np.ndarray, name: str = "video") -> torch.Tensor:
    """``video`` as a float ``(N, C, D, H, W)`` tensor of at least 2 frames, any channels, on its device."""
    video = torch.as_tensor(video)
    if video.ndim != 5:
        raise ValueError(f"{name} must be (N, C, D, H, W), got shape {tuple(video.shape)}.")
    if video.shape[2] < 2:
        raise ValueError(f"{name} needs at least 2 frames for a temporal metric, got {video.shape[2]}.")
    return video.float()


def _video(video: torch.Tensor | np.ndarray, name: str = "video") -> torch.Tensor:
    """:func:`_checked_video` of 1 (grey) or 3 (RGB) channels, on the CPU for OpenCV's optical flow."""
    video = _checked_video(video, name)
    if video.shape[1] not in (1, 3):
        raise ValueError(f"{name} must have 1 (grey) or 3 (RGB) channels, got {video.shape[1]}.")
    return video.detach().cpu()


def _same_motion_shape(a: torch.Tensor, b: torch.Tensor, names: tuple[str, str]) -> None:
    if a.shape[:1] + a.shape[2:] != b.shape[:1] + b.shape[2:]:
        raise ValueError(f"{names[0]} {tuple(a.shape)} and {names[1]} {tuple(b.shape)} differ in N, D, H or W.")


def grey_frames(video: torch.Tensor | np.ndarray) -> np.ndarray:
    """Grey uint8 frames ``(N, D, H, W)`` of a video on [0, 255] (rounded, clipped; RGB through OpenCV's
    ``COLOR_RGB2GRAY``, as TecoGAN converts its frames)."""
    video = _video(video)
    frames = video.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 4, 1).numpy()  # (N, D, H, W, C)
    if frames.shape[-1] == 1:
        return np.ascontiguousarray(frames[..., 0])
    n, d, h, w, _ = frames.shape
    grey = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames.reshape(n * d, h, w, 3)]
    return np.stack(grey).reshape(n, d, h, w)


def farneback_flow(prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
    """Farneback optical flow ``(H, W, 2)`` (dx, dy) from grey uint8 frame ``prev`` to ``cur`` (TecoGAN's
    parameters, :data:`FARNEBACK_PARAMS`)."""
    prev, cur = np.ascontiguousarray(prev), np.ascontiguousarray(cur)
    return cv2.calcOpticalFlowFarneback(prev, cur, None, **FARNEBACK_PARAMS)  # type: ignore[call-overload]  # None: OpenCV allocates the flow


def _sample(image: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``image`` (H, W[, C]) sampled bilinearly at ``x + flow(x)`` (border replicated), and where that point lies
    inside the frame."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x, map_y = gx + flow[..., 0], gy + flow[..., 1]
    sampled = cv2.remap(
        np.ascontiguousarray(image, dtype=np.float32), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
    return sampled, inside


def warp_back(frame: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Frame t + 1 ``(H, W[, C])`` warped back onto frame t with the forward flow ``flow`` (t -> t + 1):
    ``out(x) = frame(x + flow(x))``, bilinear, border replicated."""
    return _sample(frame, flow)[0]


def occlusion_mask(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """Occluded pixels ``(H, W)`` bool of frame t from the forward (t -> t + 1) and backward (t + 1 -> t) flows.

    Lai et al.'s implementation of the check of Ruder et al. (2016): forward-backward inconsistency
    ``|f + b(x + f)|^2 > 0.01 (|f|^2 + |b(x + f)|^2) + 0.5``, or a motion boundary ``|grad f|^2 > 0.01 |f|^2 +
    0.002`` (forward differences), or ``x + f(x)`` outside the frame.
    """
    back, inside = _sample(backward, forward)
    inconsistent = ((forward + back) ** 2).sum(-1) > 0.01 * ((forward**2).sum(-1) + (back**2).sum(-1)) + 0.5
    du, dv = np.zeros_like(forward), np.zeros_like(forward)
    du[:, :-1] = forward[:, :-1] - forward[:, 1:]
    dv[:-1, :] = forward[:-1, :] - forward[1:, :]
    boundary = (du**2 + dv**2).sum(-1) > 0.01 * (forward**2).sum(-1) + 0.002
    return inconsistent | boundary | ~inside


def tof(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """TecoGAN's tOF per video (``(N,)``): mean over frame pairs and pixels of ``|flow(pred) - flow(target)|_2``,
    Farneback flows of the grey frames, in pixels. See the module notes."""
    pred, target = _video(pred, "pred"), _video(target, "target")
    _same_motion_shape(pred, target, ("pred", "target"))
    out, ref = grey_frames(pred), grey_frames(target)
    values = []
    for video_out, video_ref in zip(out, ref):
        diffs = [
            np.linalg.norm(
                farneback_flow(video_out[t], video_out[t + 1]) - farneback_flow(video_ref[t], video_ref[t + 1]), axis=-1
            ).mean()
            for t in range(len(video_out) - 1)
        ]
        values.append(float(np.mean(diffs)))
    return torch.tensor(values, dtype=torch.float64)


def warping_error(video: torch.Tensor, flow_video: torch.Tensor | None = None) -> torch.Tensor:
    """Lai et al.'s warping error per video (``(N,)``), frames on [0, 1], Farneback flow in place of FlowNet2.

    Args:
        video: ``(N, C, D, H, W)`` output on [0, 255]: the video whose consistency is measured.
        flow_video: ``(N, C', D, H, W)`` on [0, 255] whose motion defines the flow and the occlusion masks: the
            input or ground-truth video (Lai et al. use the input). ``None``: the output's own frames.

    0 for a video whose every frame is its predecessor moved along the flow; a global brightness change of
    ``delta`` (on [0, 1]) between two frames adds ``delta ** 2`` to that pair's term.
    """
    video = _video(video)
    flow_video = video if flow_video is None else _video(flow_video, "flow_video")
    _same_motion_shape(video, flow_video, ("video", "flow_video"))
    frames = (video / 255.0).permute(0, 2, 3, 4, 1).numpy()  # (N, D, H, W, C)
    grey = grey_frames(flow_video)
    values = []
    for clip, motion in zip(frames, grey):
        errors = []
        for t in range(len(clip) - 1):
            forward = farneback_flow(motion[t], motion[t + 1])
            backward = farneback_flow(motion[t + 1], motion[t])
            visible = ~occlusion_mask(forward, backward)
            warped = warp_back(clip[t + 1], forward).reshape(clip[t].shape)
            squared = ((warped - clip[t]) ** 2 * visible[..., None]).sum()
            count = visible.sum() * clip.shape[-1]
            errors.append(squared / (count if count > 0 else clip[t].size))
        values.append(float(np.mean(errors)))
    return torch.tensor(values, dtype=torch.float64)


def masked_frame_change(change: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Per video, the mean of ``change`` ``(N, D - 1, H, W)`` (a change between frames t and t + 1) over the pixels
    inside ``mask`` ``(N, D, H, W)`` at both frames, or over all pixels without a mask; NaN where the mask never
    holds at two frames."""
    if mask is None:
        return change.flatten(1).mean(dim=1)
    mask = torch.as_tensor(mask, device=change.device).bool()
    expected = (change.shape[0], change.shape[1] + 1, *change.shape[2:])
    if tuple(mask.shape) != expected:
        raise ValueError(f"mask must be (N, D, H, W) = {expected}, got {tuple(mask.shape)}.")
    both = (mask[:, 1:] & mask[:, :-1]).float()
    total, count = (change * both).flatten(1).sum(dim=1), both.flatten(1).sum(dim=1)
    return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, float("nan")))


def temporal_flicker(
    video: torch.Tensor, reference: torch.Tensor | None = None, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Flicker (METRICS.md): mean absolute difference between consecutive frames, minus that of ``reference``.

    Args:
        video: ``(N, C, D, H, W)`` output video on [0, 255].
        reference: ``(N, C', D, H, W)`` ground truth (or input, if of the same domain); ``None`` returns the
            output's own flicker. Channels are averaged, so C' may differ from C.
        mask: ``(N, D, H, W)`` object mask: only pixels inside it at both frames count (per-object flicker).

    0 = as stable as the reference, above 0 = more flicker. NaN where the mask never holds at two frames.
    """
    video = _checked_video(video)
    flicker = masked_frame_change((video[:, :, 1:] - video[:, :, :-1]).abs().mean(dim=1), mask)
    if reference is None:
        return flicker
    reference = _checked_video(reference, "reference")
    _same_motion_shape(reference, video, ("reference", "video"))
    return flicker - temporal_flicker(reference, mask=mask)


def _temporal_fn(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if name == "tof":
        return tof
    if name == "warping_error":
        return warping_error
    raise ValueError(f"name must be one of {TEMPORAL_METRICS}, got {name!r}.")


def temporal_metric_handler(
    name: str, output_transform: Callable = from_engine(["pred", "label"]), save_details: bool = True
) -> IgniteMetricHandler:
    """An Ignite handler of a temporal metric on an evaluator's ``(pred, label)`` videos on [0, 255].

    ``name``: ``tof`` (pred's flow against label's) or ``warping_error`` (pred warped with label's flow).
    """
    return video_metric_handler(_temporal_fn(name), output_transform, save_details=save_details)
