"""Data set builders (the readers and writers they use live in :mod:`mr2ct.io`, re-exported here)."""

from __future__ import annotations

from mr2ct.io import video as video_io  # the bundles' configs name mr2ct.data.video_io.list_videos
from mr2ct.io.nifti import save_volume, write_nifti_cases
from mr2ct.io.readers import (
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
from mr2ct.io.video import VideoError, read_frame_folder, read_video, write_video

from .datasets import (
    CACHE_MODES,
    LoadClipd,
    SkipFailuresDataset,
    UnpairedDataset,
    cached_dataset,
    clip_items,
    clip_refs,
    load_split,
    paired_items,
)
from .digit_videos import DigitVideoConfig, build_digit_videos
from .digits import bundled_mnist_path, load_digits, read_idx
from .driving_scene import DrivingSceneConfig, build_driving_scene, render_sequence
from .gta import (
    GTAClipConfig,
    build_gta_clips,
    build_gta_validation_clips,
    export_videos,
    read_video_sequence,
    read_viper_sequence,
)
from .head_phantom import TISSUES, HeadPhantomConfig, build_head_phantom, render_head, tissue_class_map
from .moving_mnist import bouncing_trajectory, build_moving_mnist, colour_palette, render_moving_digits
from .mrct import (
    MODALITIES,
    mrct_inference_folder,
    mrct_paired_training_items,
    mrct_pairs,
    mrct_training_items,
    phantom_config,
    validation_phantom,
)
from .viper import GTA_SEQUENCES, VIPER_CLASSES, decode_labels, encode_labels
from .volumetric_mnist import build_volumetric_mnist, erosion_profile, render_volumes

__all__ = [
    "CACHE_MODES",
    "LoadClipd",
    "cached_dataset",
    "clip_items",
    "clip_refs",
    "GTA_SEQUENCES",
    "MODALITIES",
    "TISSUES",
    "VIPER_CLASSES",
    "VOLUME_SUFFIXES",
    "DigitVideoConfig",
    "DrivingSceneConfig",
    "GTAClipConfig",
    "HeadPhantomConfig",
    "SkipFailuresDataset",
    "UnpairedDataset",
    "VideoError",
    "VolumeError",
    "bouncing_trajectory",
    "build_digit_videos",
    "build_driving_scene",
    "build_gta_clips",
    "build_gta_validation_clips",
    "build_head_phantom",
    "build_moving_mnist",
    "build_volumetric_mnist",
    "bundled_mnist_path",
    "check_volume",
    "colour_palette",
    "decode_labels",
    "dicom_files",
    "encode_labels",
    "erosion_profile",
    "export_videos",
    "list_volumes",
    "load_datalist",
    "load_digits",
    "load_split",
    "mrct_inference_folder",
    "mrct_paired_training_items",
    "mrct_pairs",
    "mrct_training_items",
    "paired_items",
    "phantom_config",
    "read_frame_folder",
    "read_idx",
    "read_video",
    "read_video_sequence",
    "read_viper_sequence",
    "read_volume",
    "reader_for",
    "render_head",
    "render_moving_digits",
    "render_sequence",
    "render_volumes",
    "save_volume",
    "tissue_class_map",
    "unpaired_items",
    "validation_phantom",
    "volume_stem",
    "write_nifti_cases",
    "video_io",
    "write_video",
]
