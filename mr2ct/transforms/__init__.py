"""MONAI transforms of our own: volume loading and checks, the automatic head crop, video loading."""

from __future__ import annotations

from .channels import SplitChannelsd
from .checks import CheckVolumed
from .head_crop import (
    DEFAULT_EXTENT_MM,
    DEFAULT_MARGIN_MM,
    DEFAULT_TOP_OFFSET_MM,
    HeadCrop,
    HeadCropd,
    auto_threshold,
    box_to_slices,
    head_crop_box,
    head_foreground,
    read_crop_overrides,
    slices_to_box,
)
from .load import LoadVolumed
from .video import LoadVideod

__all__ = [
    "DEFAULT_EXTENT_MM",
    "DEFAULT_MARGIN_MM",
    "DEFAULT_TOP_OFFSET_MM",
    "CheckVolumed",
    "HeadCrop",
    "HeadCropd",
    "LoadVideod",
    "LoadVolumed",
    "auto_threshold",
    "box_to_slices",
    "head_crop_box",
    "head_foreground",
    "read_crop_overrides",
    "SplitChannelsd",
    "slices_to_box",
]
