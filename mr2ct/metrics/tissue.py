"""Synthetic-CT errors per tissue (air, soft tissue, bone), bone overlap, and how well a confidence map ranks errors.

A whole-mask MAE hides where the error is: a synthetic CT can be good in soft tissue and wrong in every bone voxel,
which is what matters for dose planning and attenuation correction. These functions split the SynthRAD-style
evaluation by tissue class, using either a class map of the case (0 air, 1 soft tissue, 2 bone; the head
phantom writes its labels as such a map) or thresholds on the real CT:

- air: CT < -400 HU; soft tissue: -400 <= CT < 300 HU; bone: CT >= 300 HU (:data:`TISSUE_THRESHOLDS_HU`).
  300 HU is the bone threshold that MR -> CT papers commonly use for bone Dice; -400 HU separates air (and
  air-filled sinuses) from fat (about -100 HU), also under the partial-volume blur of thick slices.

All errors are restricted to the body mask. Inputs are 3D volumes (numpy arrays or tensors) in HU.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats

__all__ = [
    "BONE_HU",
    "TISSUE_CLASSES",
    "TISSUE_THRESHOLDS_HU",
    "bone_dice",
    "rank_correlation",
    "rank_correlation_sigma",
    "tissue_classes",
    "tissue_error",
    "voxel_rank_correlation",
]

TISSUE_CLASSES: dict[str, int] = {"air": 0, "soft": 1, "bone": 2}
"""Tissue class values of a class map (and the ``<metric>_<class>`` names the evaluation reports)."""

TISSUE_THRESHOLDS_HU = (-400.0, 300.0)
"""Class limits on the real CT: air below the first, bone at or above the second, soft tissue between."""

BONE_HU = 300.0
"""Voxels at or above this value (HU) count as bone for :func:`bone_dice`."""


def _array(v, dtype=np.float64) -> np.ndarray:
    return np.asarray(v.detach().cpu() if isinstance(v, torch.Tensor) else v, dtype=dtype)


def tissue_classes(ct, thresholds: tuple[float, float] = TISSUE_THRESHOLDS_HU) -> np.ndarray:
    """The tissue class map (``uint8``: 0 air, 1 soft tissue, 2 bone) of a CT in HU by ``thresholds``."""
    low, high = thresholds
    if not low < high:
        raise ValueError(f"tissue thresholds must increase, got {thresholds}.")
    ct = _array(ct)
    return np.where(ct < low, 0, np.where(ct < high, 1, 2)).astype(np.uint8)


def tissue_error(ct, sct, mask, tissue, name: str, signed: bool = False) -> float:
    """Mean absolute error (``signed=False``) or mean error ``sCT - CT`` (the bias, ``signed=True``) in HU over the
    voxels of class ``name`` (``air``, ``soft`` or ``bone``, see :data:`TISSUE_CLASSES`) inside ``mask``.

    NaN when the case has no voxel of that class inside the mask (averages over cases skip it).
    """
    if name not in TISSUE_CLASSES:
        raise ValueError(f"tissue must be one of {sorted(TISSUE_CLASSES)}, got {name!r}.")
    ct, sct, tissue = _array(ct), _array(sct), _array(tissue, np.int64)
    mask = _array(mask, bool)
    if not ct.shape == sct.shape == mask.shape == tissue.shape:
        raise ValueError(
            f"ct {ct.shape}, sct {sct.shape}, mask {mask.shape} and tissue {tissue.shape} must have the same shape."
        )
    where = mask & (tissue == TISSUE_CLASSES[name])
    if not where.any():
        return float("nan")
    error = (sct - ct)[where]
    return float(error.mean() if signed else np.abs(error).mean())


def bone_dice(ct, sct, mask, threshold: float = BONE_HU) -> float:
    """Dice overlap of the bone (voxels >= ``threshold`` HU) of the synthetic and of the real CT inside ``mask``.

    1 when neither has bone there (nothing to miss), 0 when only one has.
    """
    ct, sct, mask = _array(ct), _array(sct), _array(mask, bool)
    if not ct.shape == sct.shape == mask.shape:
        raise ValueError(f"ct {ct.shape}, sct {sct.shape} and mask {mask.shape} must have the same shape.")
    real, synthetic = (ct >= threshold) & mask, (sct >= threshold) & mask
    total = int(real.sum() + synthetic.sum())
    return 1.0 if total == 0 else float(2 * (real & synthetic).sum() / total)


def rank_correlation(a, b) -> float:
    """Spearman's rank correlation of two equally long sequences; NaN if either is constant or shorter than 3."""
    a, b = _array(a).ravel(), _array(b).ravel()
    if a.shape != b.shape:
        raise ValueError(f"rank correlation needs two sequences of one length, got {a.size} and {b.size}.")
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(stats.spearmanr(a, b).statistic)


def rank_correlation_sigma(a, b, draws: int = 1000, seed: int = 0) -> float:
    """Bootstrap standard error of :func:`rank_correlation` over the pairs ``(a[i], b[i])``: the standard deviation
    of the correlation over ``draws`` resamples of the pairs with replacement (seeded; resamples whose correlation
    is undefined are left out). Over a handful of cases it is large: with 6 cases a correlation of 0.7 is often
    one swapped pair away from 0.3. NaN if fewer than 3 pairs."""
    a, b = _array(a).ravel(), _array(b).ravel()
    if a.shape != b.shape:
        raise ValueError(f"rank correlation needs two sequences of one length, got {a.size} and {b.size}.")
    if a.size < 3:
        return float("nan")
    picks = np.random.default_rng(seed).integers(0, a.size, size=(draws, a.size))
    values = np.array([rank_correlation(a[i], b[i]) for i in picks])
    values = values[~np.isnan(values)]
    return float(values.std(ddof=1)) if values.size > 1 else float("nan")


def voxel_rank_correlation(uncertainty, ct, sct, mask) -> float:
    """Spearman's rank correlation, over the voxels inside ``mask``, between a confidence map (larger = less
    trusted) and the true absolute error ``|sCT - CT|``: how well the map says where the synthetic CT is wrong."""
    uncertainty, ct, sct, mask = _array(uncertainty), _array(ct), _array(sct), _array(mask, bool)
    if not uncertainty.shape == ct.shape == sct.shape == mask.shape:
        raise ValueError(
            f"uncertainty {uncertainty.shape}, ct {ct.shape}, sct {sct.shape} and mask {mask.shape} "
            "must have the same shape."
        )
    return rank_correlation(uncertainty[mask], np.abs(sct - ct)[mask])
