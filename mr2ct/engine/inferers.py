"""Whole-volume inference by sliding windows that cross-fade over their overlaps, so that no window border shows.

MONAI's ``SlidingWindowInferer`` blends overlapping windows with constant or Gaussian weights. Both suit networks
whose windows agree where they overlap. A CycleGAN generator does not: its instance normalisation sees each window's
own statistics, so two windows translate the same voxel differently. Constant weights then jump at every window
border; MONAI's Gaussian (sigma 1/8 of the window) hands over from one window to the next within about 2% of the
window (a third of a slice for a 16-slice window): the same step, moved to the middle of the overlap. Box-shaped
edges that follow no anatomy appear in the translated volume. Cross-fading with cosine tapers that span the whole
overlap turns each such step into a smooth ramp as wide as the overlap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from monai.inferers import SlidingWindowInferer
from monai.utils import ensure_tuple

__all__ = ["TaperedSlidingWindowInferer", "taper_weights"]


def taper_weights(roi_size: Sequence[int], overlap: Sequence[float] | float, floor: float = 1e-3) -> torch.Tensor:
    """Blending weights of one window: 1 in its middle, rising as ``sin^2`` over ``overlap * size`` voxels at each
    end of each axis (a Tukey window per axis; their product in several dimensions).

    Two neighbouring windows whose overlap is exactly the taper length have weights that sum to 1 there (``sin^2 +
    cos^2``), so their outputs cross-fade linearly in phase; longer overlaps (the last window of an axis, shifted to
    end at the border) still blend smoothly. ``floor`` keeps every weight positive, so that a voxel that only one
    window covers keeps that window's output; it applies per axis, so that along the volume's edges and corners
    (where every window's weight is small along one axis) the windows still cross-fade along the others.

    Args:
        roi_size: the window's spatial size.
        overlap: the share of the window that neighbouring windows overlap, per axis or for all (in [0, 1)).
        floor: the smallest weight.

    Returns:
        ``(1, 1, *roi_size)`` float weights.
    """
    roi_size = ensure_tuple(roi_size)
    overlaps = ensure_tuple(overlap) if isinstance(overlap, Sequence) else (overlap,) * len(roi_size)
    if len(overlaps) != len(roi_size) or any(not 0 <= o < 1 for o in overlaps):
        raise ValueError(f"overlap must be in [0, 1), one value or one per axis of {roi_size}, got {overlap}.")
    weights = torch.ones((), dtype=torch.float64)
    for n, o in zip(roi_size, overlaps):
        ramp = min(round(o * n), n // 2)
        axis = torch.ones(n, dtype=torch.float64)
        if ramp > 0:
            rise = torch.sin(math.pi / 2 * (torch.arange(ramp, dtype=torch.float64) + 0.5) / ramp) ** 2
            axis[:ramp] = rise
            axis[n - ramp :] = rise.flip(0)
        weights = weights[..., None] * axis.clamp_min(floor)
    return weights.float()[None, None]


class TaperedSlidingWindowInferer(SlidingWindowInferer):
    """MONAI's ``SlidingWindowInferer`` with :func:`taper_weights`: overlapping windows cross-fade over their whole
    overlap along every axis, so the output shows no step at window borders, edges and corners included.

    Args:
        roi_size: the window (the network's training volume).
        sw_batch_size: windows per forward pass.
        overlap: the share of the window that neighbouring windows overlap (0.5: every voxel away from the volume's
            borders is blended from two windows per axis).
        padding_mode: how a volume smaller than the window is padded (``"replicate"``: edge voxels repeated).
        kwargs: other arguments of ``SlidingWindowInferer`` (``progress``, ``device``, ``sw_device``...);
            ``mode`` and ``sigma_scale`` do not apply.
    """

    def __init__(
        self,
        roi_size: Sequence[int],
        sw_batch_size: int = 1,
        overlap: Sequence[float] | float = 0.5,
        padding_mode: str = "replicate",
        **kwargs,
    ):
        for key in ("mode", "sigma_scale", "cache_roi_weight_map"):
            if key in kwargs:
                raise ValueError(f"TaperedSlidingWindowInferer sets its own blending weights; {key!r} does not apply.")
        super().__init__(roi_size, sw_batch_size=sw_batch_size, overlap=overlap, padding_mode=padding_mode, **kwargs)
        self.roi_weight_map = taper_weights(roi_size, overlap)
