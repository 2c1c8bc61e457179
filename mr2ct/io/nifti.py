"""NIfTI output: the package's one NIfTI writer, volumes carrying their affine, and built data-set cases as files."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
from monai.utils import convert_to_numpy
from numpy.typing import DTypeLike

from mr2ct.io.atomic import atomic_file

__all__ = ["save_volume", "write_nifti", "write_nifti_cases"]


def write_nifti(path: str | os.PathLike, data, affine, dtype: DTypeLike | None = None) -> Path:
    """Write ``data`` as stored (``(X, Y, Z)``, or ``(X, Y, Z, C)`` for several channels) to the NIfTI ``path``.

    The affine (RAS world, as MONAI and nibabel use it) becomes the qform and the sform (code 1, scanner), with
    millimetres as the spatial unit. ``dtype`` is the stored type (default ``data``'s own); values are rounded and
    clipped to an integer type. The file is written through :func:`~mr2ct.io.atomic.atomic_file` (a temporary
    name, then renamed), so an interrupted write leaves no partial file and any old ``path`` intact.
    """
    data = convert_to_numpy(data)
    dtype = np.dtype(data.dtype if dtype is None else dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        data = np.clip(data if np.issubdtype(data.dtype, np.integer) else np.rint(data), info.min, info.max)
    affine = convert_to_numpy(affine, dtype=np.float64)
    image = nib.Nifti1Image(data.astype(dtype, copy=False), affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    image.header.set_xyzt_units("mm")
    with atomic_file(path) as tmp:
        nib.save(image, tmp)
    return Path(path)


def save_volume(volume, path: str | os.PathLike, affine=None, dtype: DTypeLike | None = "float32") -> Path:
    """Write a ``(1, X, Y, Z)`` or ``(X, Y, Z)`` volume (array, tensor or MetaTensor) with :func:`write_nifti`.

    The affine is ``affine`` or the volume's own MetaTensor affine. ``dtype`` is the stored type (``None``: the
    volume's own); integer values are rounded and clipped to the type.
    """
    path = Path(path)
    if affine is None:
        affine = getattr(volume, "affine", None)
        if affine is None:
            raise ValueError(f"no affine given for {path} and the volume carries none.")
    data = convert_to_numpy(volume)
    if data.ndim == 4 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 3:
        raise ValueError(f"expected a 3D volume for {path}, got shape {data.shape}.")
    return write_nifti(path, data, affine, dtype)


def write_nifti_cases(cases: np.ndarray, output_dir: str | os.PathLike, prefix: str, limit: int | None = None) -> Path:
    """Write ``cases`` ``(N, C, D, H, W)`` as ``<output_dir>/<prefix>_<i>.nii.gz`` (1 mm spacing, identity affine).

    Single-channel volumes are stored as ``(D, H, W)`` images, multi-channel ones as ``(D, H, W, C)``. Existing
    files are left untouched; each is written with :func:`write_nifti`.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    n = len(cases) if limit is None else min(limit, len(cases))
    for i in range(n):
        path = output_dir / f"{prefix}_{i:04d}.nii.gz"
        if not path.exists():
            vol = np.asarray(cases[i])
            write_nifti(path, vol[0] if vol.shape[0] == 1 else np.moveaxis(vol, 0, -1), np.eye(4))
    return output_dir
