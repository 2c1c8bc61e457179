"""Reading what a review shows: a case's volume by name, volumes with RAS axes, NIfTI videos, per-case metrics."""

from __future__ import annotations

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
from monai.data import MetaTensor
from monai.transforms import Orientation

from mr2ct.io.readers import VOLUME_SUFFIXES, VolumeError, read_volume, volume_stem
from mr2ct.io.volume_size import SizeError, check_header_size

__all__ = ["find_volume", "read_clip", "read_metrics", "read_ras"]


def find_volume(folder: Path, stem: str) -> Path | None:
    """``folder/<stem><volume suffix>``, or the DICOM series folder ``folder/<stem>``; None if there is none."""
    candidates = [folder / f"{stem}{suffix}" for suffix in VOLUME_SUFFIXES] + [folder / stem]
    return next((p for p in candidates if p.exists()), None)


def read_ras(path: Path) -> tuple[np.ndarray, tuple[float, ...]]:
    """A volume's voxels with RAS axes (x right, y anterior, z superior) and its voxel size in mm."""
    image: MetaTensor = Orientation(axcodes="RAS", labels=None)(read_volume(path)[None])  # type: ignore[assignment]  # MONAI returns its input's type
    return image[0].numpy(), tuple(float(s) for s in image.pixdim)


def read_clip(path: Path) -> np.ndarray:
    """A NIfTI video as ``(C, T, H, W)``; the file holds ``(T, H, W)`` or ``(T, H, W, C)``, as the bundles write."""
    try:
        check_header_size(path)  # before nibabel allocates what the header promises
    except SizeError as e:
        raise VolumeError(e.path, e.reason) from None
    try:
        data = np.asarray(nib.load(path).dataobj, dtype=np.float32)  # type: ignore[attr-defined]  # every NIfTI has one
    except Exception as e:  # noqa: BLE001 - any reader failure is a bad file
        raise VolumeError(path, f"cannot be read as a NIfTI video ({e})") from e
    if data.ndim == 3:
        return data[None]
    if data.ndim == 4 and data.shape[-1] in (1, 3):
        return np.moveaxis(data, -1, 0)
    raise VolumeError(path, f"has shape {data.shape}, expected a (T, H, W) or (T, H, W, 3) video")


def read_metrics(path: Path) -> tuple[list[str], dict[str, dict[str, str]]]:
    """``(metric names, {case stem: {metric: value}})`` of a per-case CSV whose first column names the case."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: metrics file does not exist")
    with open(path, newline="", encoding="utf-8") as f:
        rows = [row for row in csv.reader(f) if row]
    if not rows or len(rows[0]) < 2:
        raise ValueError(f"{path}: expected a CSV with a header, a case column and metric columns")
    names = rows[0][1:]
    return names, {volume_stem(row[0]): dict(zip(names, row[1:])) for row in rows[1:]}
