"""Volumetric MNIST (the paper, section 5.1): digit volumes of changing erosion, "spherical" and "sandglass".

Every slice ``t`` of a volume is the digit eroded by a level ``e(t)``:

- domain A, *sandglass*: full digit at both ends, thinnest in the middle (decay-then-rise);
- domain B, *spherical*: thin digit at both ends, full in the middle slices (rise-then-decay).

The same digit in both domains is a ground-truth pair; see :mod:`mr2ct.data.digit_videos` for the splits.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mr2ct.data.digit_videos import DigitVideoConfig, build_digit_videos

__all__ = ["build_volumetric_mnist", "erosion_profile", "erosion_stack", "render_volumes"]

# Erosion happens at 3x the MNIST resolution (84x84, the paper's frame size) where strokes are ~8 px wide,
# so levels 0..MAX_EROSION thin a stroke gradually without erasing it; frames are then resized.
EROSION_RESOLUTION = 84
MAX_EROSION = 3.0
_VERSION = 1


def erosion_profile(depth: int, kind: str, max_level: float = MAX_EROSION) -> np.ndarray:
    """Erosion level of each of ``depth`` slices: ``kind`` "sandglass" (thin middle) or "spherical" (thin ends)."""
    if depth < 1:
        raise ValueError(f"depth must be positive, got {depth}.")
    bump = np.sin(np.pi * np.arange(depth) / max(depth - 1, 1))  # 0 at both ends, 1 in the middle
    if kind == "sandglass":
        return max_level * bump
    if kind == "spherical":
        return max_level * (1.0 - bump)
    raise ValueError(f"unknown volume kind {kind!r}; choose 'sandglass' or 'spherical'.")


def erosion_stack(digits: torch.Tensor, levels: int) -> torch.Tensor:
    """``(N, 28, 28)`` digits in [0, 1] -> ``(N, levels, 84, 84)``: grey erosion by a 3x3 square, 0..levels-1 times."""
    x = F.interpolate(digits[:, None].float(), size=(EROSION_RESOLUTION,) * 2, mode="bilinear", align_corners=False)
    stack = [x]
    for _ in range(levels - 1):
        x = -F.max_pool2d(-x, kernel_size=3, stride=1, padding=1)
        stack.append(x)
    return torch.cat(stack, dim=1)


def render_volumes(digits: np.ndarray, kind: str, depth: int, size: Sequence[int]) -> np.ndarray:
    """Render digits ``(N, 28, 28)`` uint8 as volumes ``(N, 1, depth, H, W)`` uint8 of the given ``kind``.

    Fractional erosion levels blend the two nearest integer levels, so intensity changes smoothly over depth.
    """
    profile = torch.as_tensor(erosion_profile(depth, kind), dtype=torch.float32)
    lo = profile.floor().long()
    frac = (profile - lo)[None, :, None, None]
    stack = erosion_stack(torch.as_tensor(digits) / 255.0, int(MAX_EROSION) + 2)
    vol = (1 - frac) * stack[:, lo] + frac * stack[:, lo + 1]  # (N, depth, 84, 84)
    vol = F.interpolate(vol, size=tuple(size), mode="area") if tuple(size) != vol.shape[-2:] else vol
    return (vol.clamp(0, 1) * 255).round().to(torch.uint8).numpy()[:, None]


def build_volumetric_mnist(root_dir: str | Path, config: DigitVideoConfig | None = None) -> Path:
    """Build (once) and cache volumetric MNIST under ``root_dir``; return its folder.

    Domain A is "sandglass", domain B "spherical"; arrays are ``(N, 1, D, H, W)`` uint8 (see
    :func:`~mr2ct.data.digit_videos.build_digit_videos` for the splits and files). Deterministic for a seed.
    """
    config = config or DigitVideoConfig()
    kinds = {"A": "sandglass", "B": "spherical"}

    def render(digits: np.ndarray, ids: np.ndarray, domain: str) -> np.ndarray:
        return render_volumes(digits, kinds[domain], config.depth, config.size)

    name = config.folder_name(f"vmnist_v{_VERSION}")
    return build_digit_videos(root_dir, config, name, channels=1, render=render, meta={"kinds": kinds})
