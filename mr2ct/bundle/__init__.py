"""What bundle configs call: the layers every bundle shares, where a bundle lives, shared transform chains, and the
checks that refuse a bad configuration (unknown keys, impossible settings, missing paths) before any work, in one
line each."""

from __future__ import annotations

from .checks import IMAGE_SUFFIXES, check_output_dir, check_paths, check_weights, list_images
from .errors import TRACEBACK_VARIABLE, concise_errors, input_error
from .layers import (
    BUNDLES_DIR,
    WORKFLOWS,
    bundle_root,
    check_config_keys,
    complete,
    config_value,
    fill_absent,
    layer_files,
    load_config,
    shared_transforms,
)
from .settings import (
    CycleGANSettings,
    DigitVideoSettings,
    GTASettings,
    MRCTSettings,
    VideoSettings,
    parse_flag,
    settings_class,
)

__all__ = [
    "BUNDLES_DIR",
    "IMAGE_SUFFIXES",
    "TRACEBACK_VARIABLE",
    "WORKFLOWS",
    "CycleGANSettings",
    "DigitVideoSettings",
    "GTASettings",
    "MRCTSettings",
    "VideoSettings",
    "bundle_root",
    "check_config_keys",
    "check_output_dir",
    "check_paths",
    "check_weights",
    "complete",
    "concise_errors",
    "config_value",
    "fill_absent",
    "input_error",
    "layer_files",
    "list_images",
    "load_config",
    "parse_flag",
    "settings_class",
    "shared_transforms",
]
