"""Data set builders and readers."""

from __future__ import annotations

from .datasets import UnpairedDataset, load_split, paired_items
from .nifti import write_nifti_cases
from .digits import bundled_mnist_path, load_digits, read_idx
from .volumetric_mnist import VolumetricMNISTConfig, build_volumetric_mnist, erosion_profile, render_volumes

__all__ = [
    "UnpairedDataset",
    "VolumetricMNISTConfig",
    "build_volumetric_mnist",
    "bundled_mnist_path",
    "erosion_profile",
    "load_digits",
    "load_split",
    "paired_items",
    "read_idx",
    "render_volumes",
    "write_nifti_cases",
]
