"""Display windows: which intensities a picture shows as black and white (CT in HU, MR by percentiles, networks'
outputs by their value range)."""

from __future__ import annotations

import numpy as np
import torch
from monai.utils import convert_to_numpy

__all__ = ["CT_WINDOWS", "MR_PERCENTILES", "apply_window", "percentile_window", "to_display"]

CT_WINDOWS: dict[str, tuple[float, float]] = {"brain": (40.0, 80.0), "bone": (400.0, 1800.0)}
"""CT display windows ``name: (level, width)`` in HU: brain L40 W80 and the common bone window L400 W1800."""

MR_PERCENTILES = (0.5, 99.5)
"""MR is shown between these percentiles of each volume's intensities (a window robust to outliers)."""


def apply_window(values: np.ndarray, level: float, width: float) -> np.ndarray:
    """Display grey levels in [0, 1]: ``level - width / 2`` or less is 0 (black), ``level + width / 2`` or more 1."""
    if width <= 0:
        raise ValueError(f"window width must be positive, got {width}.")
    return np.clip((np.asarray(values, dtype=np.float32) - (level - width / 2)) / width, 0.0, 1.0)


def percentile_window(volume: np.ndarray, percentiles: tuple[float, float] = MR_PERCENTILES) -> tuple[float, float]:
    """``(level, width)`` of the window spanning the given percentiles of ``volume``'s intensities."""
    lo, hi = np.percentile(np.asarray(volume, dtype=np.float32), percentiles)
    width = max(float(hi - lo), 1e-6)  # a constant volume shows black
    return float(lo) + width / 2, width


def to_display(volume: torch.Tensor | np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """``(C, D, H, W)`` with C in {1, 3} -> ``(D, H, W)`` grey or ``(D, H, W, 3)`` RGB floats in [0, 1]."""
    if isinstance(volume, torch.Tensor):
        volume = volume.float()  # numpy has no bfloat16 (mixed-precision outputs)
    v = convert_to_numpy(volume, dtype=np.float32)
    if v.ndim != 4 or v.shape[0] not in (1, 3):
        raise ValueError(f"expected a (C, D, H, W) volume with 1 or 3 channels, got shape {v.shape}.")
    lo, hi = value_range
    v = np.clip((v - lo) / (hi - lo), 0.0, 1.0)
    return v[0] if v.shape[0] == 1 else np.moveaxis(v, 0, -1)
