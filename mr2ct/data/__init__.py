"""Data set builders and readers."""

from __future__ import annotations

from .datasets import UnpairedDataset, load_split, paired_items
from .digit_videos import DigitVideoConfig, build_digit_videos
from .digits import bundled_mnist_path, load_digits, read_idx
from .moving_mnist import bouncing_trajectory, build_moving_mnist, colour_palette, render_moving_digits
from .nifti import write_nifti_cases
from .volumetric_mnist import build_volumetric_mnist, erosion_profile, render_volumes

__all__ = [
    "DigitVideoConfig",
    "UnpairedDataset",
    "bouncing_trajectory",
    "build_digit_videos",
    "build_moving_mnist",
    "build_volumetric_mnist",
    "bundled_mnist_path",
    "colour_palette",
    "erosion_profile",
    "load_digits",
    "load_split",
    "paired_items",
    "read_idx",
    "render_moving_digits",
    "render_volumes",
    "write_nifti_cases",
]
