"""Synthetic-CT metrics as defined by the SynthRAD2023 challenge's evaluation code (MAE, PSNR, SSIM in HU).

Inputs are 3D volumes ``(D, H, W)`` in Hounsfield units (numpy arrays or tensors) and a boolean body mask
of the real CT (usually dilated). Definitions, following the challenge:

- MAE: ``sum |CT - sCT|`` over the mask / number of mask voxels, in HU, no clipping;
- PSNR: both volumes clipped to [-1024, 3000] HU, data range 4024, on the masked voxels
  (scikit-image's ``peak_signal_noise_ratio`` on them);
- SSIM: clip to [-1024, 3000], voxels outside the mask set to -1024, shift by +1024, 3D SSIM with data range
  4024 and a 7x7x7 uniform window (scikit-image's ``structural_similarity`` defaults: K1 0.01, K2 0.03,
  sample covariance, reflect padding), then the SSIM map averaged inside the mask.
"""

from __future__ import annotations

import numpy as np
from monai.utils import convert_to_numpy
from scipy import ndimage
from scipy.ndimage import uniform_filter

__all__ = ["HU_RANGE", "SYNTHRAD_METRICS", "body_mask", "linear_fit", "mae_hu", "psnr_hu", "ssim_hu"]

HU_RANGE = (-1024.0, 3000.0)


def _prepare(ct, sct, mask) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ct, sct = (convert_to_numpy(v, dtype=np.float64, wrap_sequence=True) for v in (ct, sct))
    mask = convert_to_numpy(mask, dtype=bool, wrap_sequence=True)
    if ct.shape != sct.shape or ct.shape != mask.shape:
        raise ValueError(f"ct {ct.shape}, sct {sct.shape} and mask {mask.shape} must have the same shape.")
    if ct.ndim != 3:
        raise ValueError(f"expected 3D volumes, got {ct.ndim}D.")
    if not mask.any():
        raise ValueError("the mask is empty.")
    return ct, sct, mask


def mae_hu(ct, sct, mask) -> float:
    """Mean absolute error in HU inside ``mask`` (no clipping)."""
    ct, sct, mask = _prepare(ct, sct, mask)
    return float(np.abs(ct - sct)[mask].mean())


def psnr_hu(ct, sct, mask, hu_range: tuple[float, float] = HU_RANGE) -> float:
    """PSNR in dB of the masked voxels after clipping both volumes to ``hu_range`` (data range its width)."""
    ct, sct, mask = _prepare(ct, sct, mask)
    lo, hi = hu_range
    mse = np.mean((np.clip(ct, lo, hi)[mask] - np.clip(sct, lo, hi)[mask]) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10((hi - lo) ** 2 / mse))


def ssim_hu(ct, sct, mask, hu_range: tuple[float, float] = HU_RANGE, win_size: int = 7) -> float:
    """Mean of the 3D SSIM map inside ``mask`` (uniform ``win_size`` window), as SynthRAD2023 computes it."""
    ct, sct, mask = _prepare(ct, sct, mask)
    lo, hi = hu_range
    x, y = (np.where(mask, np.clip(v, lo, hi), lo) - lo for v in (ct, sct))
    data_range = hi - lo
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    n = win_size**3
    cov_norm = n / (n - 1)  # sample covariance, as scikit-image's default

    def mean(v: np.ndarray) -> np.ndarray:
        return uniform_filter(v, size=win_size)

    ux, uy = mean(x), mean(y)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    ssim_map = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return float(ssim_map[mask].mean())


SYNTHRAD_METRICS = {"mae": mae_hu, "psnr": psnr_hu, "ssim": ssim_hu}


def body_mask(ct, threshold: float = -500.0, dilation: int = 1) -> np.ndarray:
    """Body mask of a CT in HU when none is given: the largest component above ``threshold``, holes filled,
    dilated by ``dilation`` voxels (SynthRAD evaluates inside a dilated body outline)."""
    ct = convert_to_numpy(ct, wrap_sequence=True)
    labels, n = ndimage.label(ct > threshold)
    if n == 0:
        raise ValueError(f"no voxel above {threshold} HU: cannot derive a body mask.")
    largest = labels == (np.argmax(np.bincount(labels.ravel())[1:]) + 1)
    mask = ndimage.binary_fill_holes(largest)
    return ndimage.binary_dilation(mask, iterations=dilation) if dilation else mask


def linear_fit(source, ct, mask) -> np.ndarray:
    """The best global linear intensity map ``a * source + b`` of ``source`` onto ``ct`` (least squares inside
    ``mask``): a yardstick that any useful MR -> CT model must beat, since it cannot invert bone contrast."""
    source, ct, mask = _prepare(source, ct, mask)
    a, b = np.polyfit(source[mask], ct[mask], 1)
    return a * source + b
