"""Reading and writing files: checked volume readers, video I/O, the NIfTI writer and atomic writes."""

from __future__ import annotations

from .atomic import building_folder, replacing_folder
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
from .video import VIDEO_SUFFIXES, VideoError, list_videos, read_frame_folder, read_video, write_video

__all__ = [
    "VIDEO_SUFFIXES",
    "VOLUME_SUFFIXES",
    "VideoError",
    "VolumeError",
    "building_folder",
    "check_volume",
    "dicom_files",
    "list_videos",
    "list_volumes",
    "load_datalist",
    "read_frame_folder",
    "read_video",
    "read_volume",
    "reader_for",
    "replacing_folder",
    "save_volume",
    "unpaired_items",
    "volume_stem",
    "write_nifti_cases",
    "write_video",
]
