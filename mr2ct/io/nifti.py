"""NIfTI output: built data-set cases as files (so inference can be tried on a folder), and translated volumes."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np

__all__ = ["save_volume", "write_nifti_cases"]

def save_volume(volume, path: str | Path, affine=None, dtype: str = "float32") -> Path:
    """Write a ``(1, X, Y, Z)`` or ``(X, Y, Z)`` volume as NIfTI under a temporary name, then rename it.

    The affine (RAS world, as MONAI tracks it) is ``affine`` or the volume's own MetaTensor affine; qform and
    sform are both set to it (code 1, scanner). Integer ``dtype`` values are rounded and clipped to the type.
    """
    path = Path(path)
    if affine is None:
        affine = getattr(volume, "affine", None)
        if affine is None:
            raise ValueError(f"no affine given for {path} and the volume carries none.")
    data = np.asarray(volume.detach().cpu() if hasattr(volume, "detach") else volume, dtype=np.float64)
    if data.ndim == 4 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 3:
        raise ValueError(f"expected a 3D volume for {path}, got shape {data.shape}.")
    if np.issubdtype(np.dtype(dtype), np.integer):
        info = np.iinfo(dtype)
        data = np.clip(np.rint(data), info.min, info.max)
    affine = np.asarray(affine.detach().cpu() if hasattr(affine, "detach") else affine, dtype=np.float64)
    image = nib.Nifti1Image(data.astype(dtype), affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part.nii.gz")
    try:
        nib.save(image, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_nifti_cases(cases: np.ndarray, output_dir: str | Path, prefix: str, limit: int | None = None) -> Path:
    """Write ``cases`` ``(N, C, D, H, W)`` as ``<output_dir>/<prefix>_<i>.nii.gz`` (1 mm spacing, identity affine).

    Single-channel volumes are stored as ``(D, H, W)`` images, multi-channel ones as ``(D, H, W, C)``. Existing
    files are left untouched; each file is written under a temporary name and then renamed.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    n = len(cases) if limit is None else min(limit, len(cases))
    for i in range(n):
        path = output_dir / f"{prefix}_{i:04d}.nii.gz"
        if path.exists():
            continue
        vol = np.asarray(cases[i])
        data = vol[0] if vol.shape[0] == 1 else np.moveaxis(vol, 0, -1)
        tmp = output_dir / f".{path.name}.part.nii.gz"
        nib.save(nib.Nifti1Image(data, np.eye(4)), tmp)
        os.replace(tmp, path)
    return output_dir
