"""Data set builders and readers."""

from __future__ import annotations

from .datasets import SkipFailuresDataset, UnpairedDataset, load_split, paired_items
from .digit_videos import DigitVideoConfig, build_digit_videos
from .digits import bundled_mnist_path, load_digits, read_idx
from .head_phantom import TISSUES, HeadPhantomConfig, build_head_phantom, render_head
from .moving_mnist import bouncing_trajectory, build_moving_mnist, colour_palette, render_moving_digits
from .mrct import MODALITIES, mrct_inference_folder, mrct_pairs, mrct_training_items, phantom_config
from .nifti import save_volume, write_nifti_cases
from .readers import (
    VOLUME_SUFFIXES,
    VolumeError,
    check_volume,
    dicom_files,
    list_volumes,
    load_datalist,
    read_volume,
    reader_for,
    unpaired_items,
    volume_stem,
)
from .volumetric_mnist import build_volumetric_mnist, erosion_profile, render_volumes

__all__ = [
    "MODALITIES",
    "TISSUES",
    "VOLUME_SUFFIXES",
    "DigitVideoConfig",
    "HeadPhantomConfig",
    "SkipFailuresDataset",
    "UnpairedDataset",
    "VolumeError",
    "bouncing_trajectory",
    "build_digit_videos",
    "build_head_phantom",
    "build_moving_mnist",
    "build_volumetric_mnist",
    "bundled_mnist_path",
    "check_volume",
    "colour_palette",
    "dicom_files",
    "erosion_profile",
    "list_volumes",
    "load_datalist",
    "load_digits",
    "load_split",
    "mrct_inference_folder",
    "mrct_pairs",
    "mrct_training_items",
    "paired_items",
    "phantom_config",
    "read_idx",
    "read_volume",
    "reader_for",
    "render_head",
    "render_moving_digits",
    "render_volumes",
    "save_volume",
    "unpaired_items",
    "volume_stem",
    "write_nifti_cases",
]
