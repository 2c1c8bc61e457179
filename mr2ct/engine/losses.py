"""Loss terms of the CycleGAN objective beyond MONAI's adversarial loss."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.losses import PatchAdversarialLoss

from mr2ct.metrics.temporal import farneback_flow, occlusion_mask
from mr2ct.networks.framewise import frames_to_volume, volume_to_frames

__all__ = [
    "ADVERSARIAL_LOSSES",
    "CHROMA_AFFINITIES",
    "MINDLoss",
    "WARP_MASKS",
    "adversarial_loss",
    "as_clips",
    "chroma_smoothness_loss",
    "clip_motion",
    "mind_descriptor",
    "temporal_const_loss",
    "temporal_warp_loss",
]

ADVERSARIAL_LOSSES = {"lsgan": "least_squares", "bce": "bce", "hinge": "hinge"}
CHROMA_AFFINITIES = ("intensity", "colour")


def adversarial_loss(kind: str = "lsgan") -> PatchAdversarialLoss:
    """MONAI ``PatchAdversarialLoss`` for ``kind``.

    ``"lsgan"`` is CycleGAN's least-squares loss (without the LeakyReLU MONAI would otherwise apply to the
    logits); ``"bce"`` is the paper's log-likelihood loss (sigmoid + binary cross-entropy); ``"hinge"``.
    """
    if kind not in ADVERSARIAL_LOSSES:
        raise ValueError(f"unknown adversarial loss {kind!r}; choose one of {', '.join(ADVERSARIAL_LOSSES)}.")
    return PatchAdversarialLoss(reduction="mean", criterion=ADVERSARIAL_LOSSES[kind], no_activation_leastsq=True)


def temporal_const_loss(frames: torch.Tensor, depth: int) -> torch.Tensor:
    """The paper's ``const`` loss (Eq. 2) on generated frames of consecutive videos.

    ``frames`` is ``(N * depth, C, H, W)``, the frames of ``N`` videos in temporal order. Returns
    ``mean over videos of sum_t mean_pixels (G(x)_t - G(x)_{t-1})^2``: Eq. 2 divided by the number of values
    per frame (``C * H * W``), so that its weight does not depend on the frame size.
    """
    if frames.ndim != 4 or len(frames) % depth:
        raise ValueError(
            f"the const loss needs the frames of whole videos in order, (N * {depth}, C, H, W); got shape"
            f" {tuple(frames.shape)} (use it with sequential frames, method 'seq_const')."
        )
    videos = frames.reshape(len(frames) // depth, depth, -1)
    return (videos[:, 1:] - videos[:, :-1]).pow(2).mean(dim=2).sum(dim=1).mean()


def as_clips(x: torch.Tensor, depth: int | None = None) -> torch.Tensor:
    """``(N, C, D, H, W)`` clips from clips (returned as they are) or from the frames of whole clips in temporal
    order, ``(N * depth, C, H, W)`` (what sequential frame-wise batches hold)."""
    if x.ndim == 5:
        return x
    if x.ndim != 4 or not depth or len(x) % depth:
        raise ValueError(
            f"expected (N, C, D, H, W) clips or the frames of whole clips in order, (N * depth, C, H, W) with depth"
            f" {depth}; got shape {tuple(x.shape)}."
        )
    return frames_to_volume(x, depth)


WARP_MASKS = ("occlusion", "photometric")


@torch.no_grad()
def clip_motion(clips: torch.Tensor, mask: str = "occlusion", alpha: float = 50.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The motion between consecutive frames of ``(N, C, D, H, W)`` clips (any value range, any channels), for
    :func:`temporal_warp_loss`.

    Each clip's channel mean is scaled to [0, 255] over the whole clip and rounded to uint8, and OpenCV's
    Farneback flow gives the forward (t -> t + 1) flow of each pair of frames (:func:`~mr2ct.metrics.temporal.
    farneback_flow`, the warping error's own flow). Which pixels of frame t count (``mask``):

    - ``"occlusion"``: the forward-backward check that Lai et al. evaluate with (:func:`~mr2ct.metrics.temporal.
      occlusion_mask`; a second, backward flow per pair), 1 where it finds the pixel visible, else 0.
    - ``"photometric"``: Lai et al.'s training mask, the weight ``exp(-alpha |I_t - I_{t+1}(x + f(x))|^2)`` of
      the input scaled to [0, 1] over the clip: the input must itself be carried onto frame t by the flow.
      Occlusions, places where the flow fails, and places where the input changes along its motion (a label or
      a colour that switches) get weight ~0, so a translation is not asked to hold what its input does not hold.
      One flow per pair: half the cost.

    Flows run on the CPU (OpenCV); the results go to ``clips``' device.

    Args:
        clips: the input clips.
        mask: ``"occlusion"`` or ``"photometric"``.
        alpha: the photometric mask's sharpness on [0, 1] frames (Lai et al.: 50).

    Returns:
        ``grids``: ``(N * (D - 1), H, W, 2)`` sampling grids for ``F.grid_sample(..., align_corners=True)`` that
        take frame t + 1 back onto frame t; ``visible``: ``(N, 1, D - 1, H, W)`` weights in [0, 1].
    """
    if mask not in WARP_MASKS:
        raise ValueError(f"unknown warp mask {mask!r}; choose one of {', '.join(WARP_MASKS)}.")
    n, _, d, h, w = clips.shape
    grey = _unit_range(clips.detach().float().mean(dim=1, keepdim=True))[:, 0]
    frames = (grey * 255).round().to(torch.uint8).cpu().numpy()
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    grids, visible = [], []
    for clip in frames:
        for t in range(d - 1):
            forward = farneback_flow(clip[t], clip[t + 1])
            if mask == "occlusion":
                visible.append(~occlusion_mask(forward, farneback_flow(clip[t + 1], clip[t])))
            x, y = xs + forward[..., 0], ys + forward[..., 1]
            grids.append(np.stack([2 * x / max(w - 1, 1) - 1, 2 * y / max(h - 1, 1) - 1], axis=-1))
    grid_tensor = torch.from_numpy(np.stack(grids)).to(clips.device)
    if mask == "occlusion":
        checked = torch.from_numpy(np.stack(visible)).reshape(n, 1, d - 1, h, w)
        return grid_tensor, checked.to(clips.device, torch.float32)
    unit = _unit_range(clips.detach().float())
    carried = _warp_back(unit, grid_tensor)
    return grid_tensor, torch.exp(-alpha * (carried - unit[:, :, :-1]).pow(2).sum(dim=1, keepdim=True))


def _unit_range(clips: torch.Tensor) -> torch.Tensor:
    """``(N, C, D, H, W)`` clips scaled to [0, 1] by each clip's minimum and maximum over all its values."""
    low = clips.amin(dim=(1, 2, 3, 4), keepdim=True)
    high = clips.amax(dim=(1, 2, 3, 4), keepdim=True)
    return (clips - low) / (high - low).clamp(min=1e-8)


def _warp_back(clips: torch.Tensor, grids: torch.Tensor) -> torch.Tensor:
    """Frames 1.. of ``(N, C, D, H, W)`` clips sampled along :func:`clip_motion`'s ``grids`` onto frames ..D-2:
    ``(N, C, D - 1, H, W)``."""
    following = volume_to_frames(clips[:, :, 1:])
    warped = F.grid_sample(following, grids.to(clips.dtype), padding_mode="border", align_corners=True)
    return frames_to_volume(warped, clips.shape[2] - 1)


def temporal_warp_loss(video: torch.Tensor, grids: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """Lai et al.'s short-term temporal loss ("Learning Blind Video Temporal Consistency", ECCV 2018, Eq. 4) with
    the motion of another video: the mean absolute difference between each frame t of ``video`` and its frame
    t + 1 warped back along ``grids``, weighted by ``visible`` (:func:`clip_motion` of the input clips).

    As Lai et al. train it, the flow and the visibility mask come from the *input* video, which carries the true
    motion; the translation is asked to move as its input moves, frame to frame, and to keep its colours along
    that motion. It is the training counterpart of the warping error (:func:`~mr2ct.metrics.temporal.
    warping_error`: squared differences there, as Lai et al. evaluate; L1 here, as they train, with either mask of
    :func:`clip_motion`).

    Args:
        video: ``(N, C, D, H, W)`` translated clips (differentiable).
        grids, visible: :func:`clip_motion` of the clips ``video`` was translated from.
    """
    differences = (_warp_back(video, grids) - video[:, :, :-1]).abs() * visible
    return differences.sum() / (visible.sum() * video.shape[1]).clamp(min=1e-8)


def chroma_smoothness_loss(
    source: torch.Tensor, translation: torch.Tensor, sigma: float = 0.2, affinity: str = "intensity"
) -> torch.Tensor:
    """The colourisation prior of Levin, Lischinski and Weiss ("Colorization using optimization", SIGGRAPH 2004)
    as a loss: neighbouring pixels whose *input* intensities are alike should have alike *output* colours.

    For each pair of horizontal or vertical neighbours in a frame (the last two axes), the absolute difference of
    the translation's chroma (each channel minus the mean over channels, so grey has none) is weighted by
    ``exp(-d_pq^2 / (2 sigma^2))``, with ``d_pq^2 = (I_p - I_q)^2`` on the source's mean over channels ``I``
    (``affinity="intensity"``) or the mean over channels of the source's squared steps (``"colour"``; the same for
    a grey source, but a red and a green region of one brightness stay apart): a colour change inside a flat input
    region costs its full size, one along an input edge almost nothing. Returned: the sum over the two
    axes of the mean over that axis's pairs (and channels, frames and batch).

    Translating a white digit into colour, the GAN and cycle losses say nothing about the digit having *one*
    colour (the white input does not say which); this term does, and lets the colour change where the
    input changes. A translation with one channel, or grey output, costs 0.

    Args:
        source: ``(N, C, H, W)`` frames or ``(N, C, T, H, W)`` clips, intensities in [-1, 1].
        translation: the translation of ``source``, the same shape but for its channels.
        sigma: how different two input intensities may be (in the [-1, 1] range) and still ask for one colour.
        affinity: ``"intensity"`` (Levin et al.'s grey-level weights; a white or grey input) or ``"colour"`` (a colour
            input, e.g. a video translated into a segmentation).

    Returns:
        A scalar.
    """
    if (
        source.ndim not in (4, 5)
        or source.shape[:1] + source.shape[2:] != translation.shape[:1] + translation.shape[2:]
    ):
        raise ValueError(
            f"source {tuple(source.shape)} and translation {tuple(translation.shape)} must be (N, C, [T,] H, W) "
            "images of one size."
        )
    if affinity not in CHROMA_AFFINITIES:
        raise ValueError(f"unknown affinity {affinity!r}; choose one of {', '.join(CHROMA_AFFINITIES)}.")
    guide = source.float().mean(dim=1, keepdim=True) if affinity == "intensity" else source.float()
    chroma = translation - translation.mean(dim=1, keepdim=True)
    total = translation.new_zeros(())
    for axis in (-1, -2):
        # narrow() rather than torch.diff: the same values, but its backward rounds alike with the committed runs
        n = guide.shape[axis]
        guide_step = (guide.narrow(axis, 1, n - 1) - guide.narrow(axis, 0, n - 1)) ** 2
        if affinity == "colour":
            guide_step = guide_step.mean(dim=1, keepdim=True)
        chroma_step = chroma.narrow(axis, 1, n - 1) - chroma.narrow(axis, 0, n - 1)
        weights = torch.exp(-guide_step / (2 * sigma**2))
        total = total + torch.mean(weights * chroma_step.abs())
    return total


_POOL = {2: F.avg_pool2d, 3: F.avg_pool3d}


def _shift(x: torch.Tensor, axis: int, step: int) -> torch.Tensor:
    """``x`` moved by ``step`` voxels along spatial ``axis`` (edge voxels repeated): ``out[i] = x[i + step]``."""
    dim = 2 + axis
    n = x.shape[dim]
    index = torch.arange(n, device=x.device).add_(step).clamp_(0, n - 1)
    return x.index_select(dim, index)


def _box_filter(x: torch.Tensor, size: int) -> torch.Tensor:
    """Mean over a ``size``-wide cube (square in 2D) around each voxel, edges replicated."""
    spatial_dims = x.ndim - 2
    pad = [size // 2] * (2 * spatial_dims)
    return _POOL[spatial_dims](F.pad(x, pad, mode="replicate"), size, stride=1)


def mind_descriptor(x: torch.Tensor, patch_size: int = 3, eps: float = 1e-6) -> torch.Tensor:
    """MIND, the modality independent neighbourhood descriptor (Heinrich et al., Medical Image Analysis 16(7), 2012),
    on the six-neighbourhood (3D) or four-neighbourhood (2D) of every voxel.

    For each neighbour offset ``r``, ``D(x, r)`` is the mean squared difference between the patch around ``x`` and
    the patch around ``x + r`` (a ``patch_size``-wide box); ``MIND(x, r) = exp(-D(x, r) / V(x))`` with ``V(x)`` the
    mean of ``D`` over the offsets (the local noise/contrast level), normalised so that its largest value per voxel
    is 1. It describes the local structure independently of the intensities that render it.

    Args:
        x: ``(N, C, H, W)`` or ``(N, C, D, H, W)`` images.
        patch_size: side of the patch compared (odd).
        eps: keeps ``V`` positive in flat regions.

    Returns:
        ``(N, C * 2 * spatial_dims, *spatial)`` descriptors.
    """
    spatial_dims = x.ndim - 2
    if spatial_dims not in _POOL:
        raise ValueError(f"MIND needs (N, C, H, W) or (N, C, D, H, W) images, got shape {tuple(x.shape)}.")
    x = x.float()
    distances = torch.stack(
        [_box_filter((x - _shift(x, axis, step)) ** 2, patch_size) for axis in range(spatial_dims) for step in (-1, 1)],
        dim=2,
    )  # (N, C, K, ...)
    variance = distances.mean(dim=2, keepdim=True)
    mean_variance = variance.mean(dim=tuple(range(2, variance.ndim)), keepdim=True)
    variance = torch.maximum(variance, 1e-3 * mean_variance + eps)  # flat regions: no division by ~0
    mind = torch.exp(-distances / variance)
    mind = mind / mind.amax(dim=2, keepdim=True)
    return mind.flatten(1, 2)


class MINDLoss(nn.Module):
    """Structure consistency between an image and its translation: the mean absolute difference of their MIND
    descriptors (:func:`mind_descriptor`), for 2D frames and 3D volumes alike.

    Unpaired MR -> CT translation can move or invent anatomy as long as the result looks like a CT; the cycle
    loss does not forbid it (the reverse generator can learn to undo the drift). Yang et al. ("Unpaired brain
    MR-to-CT synthesis using a structure-constrained CycleGAN", DLMIA 2018) add this term between each input and
    its translation. MIND is chosen over intensity or gradient differences because it compares each voxel's
    pattern of self-similarity, not intensities: it holds across the MR/CT contrast change (cortical bone dark in
    T1, bright in CT), where a plain L1 would pull the CT's bone towards the MR's dark values; unlike normalised
    gradient fields it also needs no edge-noise parameter per modality.

    Args:
        patch_size: side of the patches MIND compares.
        channels: ``"each"`` compares the descriptors of every channel; ``"mean"`` those of the mean over channels,
            i.e. the structure of a colour image whatever its colour (a white digit and its red translation have
            the same mean-channel structure, while the red image's flat blue channel has none).
    """

    CHANNEL_MODES = ("each", "mean")

    def __init__(self, patch_size: int = 3, channels: str = "each"):
        super().__init__()
        if patch_size < 1 or patch_size % 2 == 0:
            raise ValueError(f"patch_size must be a positive odd number, got {patch_size}.")
        if channels not in self.CHANNEL_MODES:
            raise ValueError(f"channels must be one of {self.CHANNEL_MODES}, got {channels!r}.")
        self.patch_size = patch_size
        self.channels = channels

    def forward(self, source: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
        if source.shape != translation.shape:
            raise ValueError(
                f"source {tuple(source.shape)} and translation {tuple(translation.shape)} must have one shape."
            )
        if self.channels == "mean":
            source, translation = source.mean(dim=1, keepdim=True), translation.mean(dim=1, keepdim=True)
        return torch.mean(
            torch.abs(mind_descriptor(source, self.patch_size) - mind_descriptor(translation, self.patch_size))
        )
