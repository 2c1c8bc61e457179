"""Write built data-set cases as NIfTI files, so inference can be tried on a folder of real files."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np

__all__ = ["write_nifti_cases"]


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
