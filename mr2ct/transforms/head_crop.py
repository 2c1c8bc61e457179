"""Cropping a head volume from the brow to below the jaw, automatically or with a per-case box.

The paper cropped both modalities by hand "from the superciliary arches to the lower jaw" (the region that the
brain MRs and the head-and-neck CTs share). Here the crop is found from the head itself: the head foreground
(:func:`head_foreground`) gives the vertex (top of the skull), the crop starts ``top_offset_mm`` below it and
runs ``extent_mm`` down; in-plane it is the head's bounding box in that slab plus a margin, made square so that a
later resize to ``256 x 256`` keeps the aspect ratio. Cases where that fails (a tilted head, a missing vertex)
take a box from a CSV (:func:`read_crop_overrides`).

The defaults are approximate adult values, to adjust per data set: the vertex lies about 110 mm above the nasion
(head height vertex-menton about 230 mm, nasion-menton about 120 mm), so the superciliary arches sit about
95 mm below the vertex, and from there about 130 mm reach just below the chin (menton). Volumes are expected in
RAS voxel order (x: left->right, y: posterior->anterior, z: inferior->superior), e.g. after
``Orientationd(axcodes="RAS")``. Own code, not MONAI's: ``KeepLargestConnectedComponent`` needs scikit-image (not
a dependency), and ``FillHoles`` fills 3D holes only, by iterated dilation (slow on 10^7 voxels), while a head cut
open by the volume's edge needs its holes filled slice by slice; scipy's labelling does both in a few lines.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.data.utils import affine_to_spacing
from monai.transforms import Crop, Cropd
from monai.utils import convert_to_numpy
from scipy import ndimage

from mr2ct.io.readers import volume_stem

__all__ = [
    "DEFAULT_EXTENT_MM",
    "DEFAULT_MARGIN_MM",
    "DEFAULT_TOP_OFFSET_MM",
    "HeadCrop",
    "HeadCropd",
    "auto_threshold",
    "box_to_slices",
    "head_crop_box",
    "head_foreground",
    "read_crop_overrides",
    "slices_to_box",
]

logger = logging.getLogger(__name__)

DEFAULT_TOP_OFFSET_MM = 95.0  # vertex -> superciliary arches (brow), adult, approximate
DEFAULT_EXTENT_MM = 130.0  # brow -> just below the lower jaw (menton), adult, approximate
DEFAULT_MARGIN_MM = 5.0  # in-plane margin around the head
BOX_COLUMNS = ("x0", "x1", "y0", "y1", "z0", "z1")


def _as_numpy3d(volume) -> np.ndarray:
    """``(X, Y, Z)`` numpy view of a numpy array / tensor / MetaTensor, also accepting one leading channel."""
    volume = convert_to_numpy(volume, wrap_sequence=True)
    if volume.ndim == 4 and volume.shape[0] == 1:
        volume = volume[0]
    if volume.ndim != 3:
        raise ValueError(f"expected a 3D volume (X, Y, Z) or (1, X, Y, Z), got shape {volume.shape}.")
    return volume


def auto_threshold(volume) -> float:
    """A modality-agnostic foreground threshold: 10% of the robust intensity range above its low end,
    ``p2 + 0.1 * (p98 - p2)`` (the initial threshold of FSL's BET), over the voxels above the volume's minimum
    (which leaves out CT padding outside the field of view and MR zero-filling).

    It keeps the dark parts of a head (bone and air in MR) out of the mask only where they are enclosed, and
    holes are filled afterwards. For CT in HU a fixed ``-500`` is more reliable (foam head rests can sit above
    the automatic cut); :mod:`mr2ct.data.prepare_mrct` uses that.
    """
    v = _as_numpy3d(volume)
    step = max(1, round((v.size / 2e6) ** (1 / 3)))  # about 2 million voxels are plenty for percentiles
    sample = v[::step, ::step, ::step].astype(np.float32, copy=False).ravel()
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        raise ValueError("the volume has no finite voxel.")
    above = sample[sample > sample.min()]
    p2, p98 = np.percentile(above if above.size else sample, [2, 98])
    return float(p2 + 0.1 * (p98 - p2))


_IN_PLANE = np.zeros((3, 3, 3), dtype=bool)
_IN_PLANE[:, :, 1] = ndimage.generate_binary_structure(2, 1)  # 4-connectivity within each x-y slice


def _fill_holes_in_plane(mask: np.ndarray) -> np.ndarray:
    """``mask`` with every background region of each x-y slice that does not reach the slice's edge set
    (in place). One labelling of the whole volume with in-plane connectivity does every slice at once."""
    background, n = ndimage.label(~mask, structure=_IN_PLANE)
    if n:
        edges = [background[0], background[-1], background[:, 0], background[:, -1]]
        outside = np.zeros(n + 1, dtype=bool)
        outside[np.unique(np.concatenate([e.ravel() for e in edges]))] = True
        outside[0] = True  # label 0 is the mask itself
        mask |= ~outside[background]
    return mask


def head_foreground(volume, threshold: float | None = None) -> np.ndarray:
    """Head mask: voxels above ``threshold``, holes filled in every axial (x-y) slice, largest 3D component.

    Holes are filled first and slice by slice, so that a head whose layers are split by a dark one (scalp,
    skull, brain in T1 MR) is one solid component even where the volume cuts through it. The volume is
    expected in RAS voxel order (z is the slice axis).

    Args:
        volume: ``(X, Y, Z)`` (or ``(1, X, Y, Z)``) array or tensor.
        threshold: intensity cut (e.g. ``-500`` for CT in HU); default :func:`auto_threshold`.

    Returns:
        A boolean ``(X, Y, Z)`` array; all False when no voxel is above the threshold.
    """
    v = _as_numpy3d(volume)
    if threshold is None:
        threshold = auto_threshold(v)
    mask = _fill_holes_in_plane(v > threshold)
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    counts = np.bincount(labels.ravel())
    counts[0] = 0
    return labels == int(np.argmax(counts))


def head_crop_box(
    mask,
    spacing: Sequence[float],
    top_offset_mm: float = DEFAULT_TOP_OFFSET_MM,
    extent_mm: float = DEFAULT_EXTENT_MM,
    margin_mm: float = DEFAULT_MARGIN_MM,
    name: str = "volume",
) -> tuple[slice, slice, slice]:
    """The brow-to-jaw crop of a head mask in RAS voxel order, as ``(x, y, z)`` slices (ends exclusive).

    z: the vertex is the highest slice holding foreground; the crop starts ``top_offset_mm`` below the vertex's
    upper edge and spans ``extent_mm`` downwards. A volume that ends sooner gives a shorter crop (logged as a
    warning). x, y: the foreground's bounding box within the cropped slab, plus ``margin_mm`` on each side,
    grown to a square in mm around its centre, shifted (then, if need be, clipped) to lie inside the volume.

    Args:
        mask: boolean ``(X, Y, Z)`` head mask (see :func:`head_foreground`).
        spacing: voxel size in mm along x, y, z.
        top_offset_mm: distance from the top of the head to the top of the crop (the brow).
        extent_mm: height of the crop.
        margin_mm: in-plane margin around the head.
        name: what to call the volume in messages (its file, say).

    Raises:
        ValueError: no foreground, a volume that ends above the crop, or no foreground within the crop.
    """
    mask = _as_numpy3d(mask).astype(bool, copy=False)
    sx, sy, sz = (float(s) for s in spacing)
    if min(sx, sy, sz) <= 0 or extent_mm <= 0 or top_offset_mm < 0 or margin_mm < 0:
        raise ValueError(
            f"spacing and extent_mm must be > 0, top_offset_mm and margin_mm >= 0; got spacing "
            f"{tuple(spacing)}, top_offset_mm={top_offset_mm}, extent_mm={extent_mm}, "
            f"margin_mm={margin_mm}."
        )
    size_x, size_y, size_z = mask.shape
    zs = np.flatnonzero(mask.any(axis=(0, 1)))
    if zs.size == 0:
        raise ValueError(f"{name}: no head foreground (no voxel above the threshold).")
    vertex = int(zs[-1])
    if vertex == size_z - 1:
        logger.warning(
            f"{name}: the head reaches the volume's top slice; if its top is cut off, the crop sits too high."
        )
    z1 = int(round(vertex + 1 - top_offset_mm / sz))
    z0 = z1 - max(1, int(round(extent_mm / sz)))
    if z1 <= 0:
        raise ValueError(
            f"{name}: the volume ends {(vertex + 1) * sz:.0f} mm below the top of the head, above "
            f"the crop's top ({top_offset_mm:g} mm below it)."
        )
    if z0 < 0 or z1 > size_z:
        logger.warning(
            f"{name}: the volume covers {(min(z1, size_z) - max(z0, 0)) * sz:.0f} of the "
            f"{extent_mm:g} mm crop; using what exists."
        )
    z0, z1 = max(z0, 0), min(z1, size_z)
    footprint = mask[:, :, z0:z1].any(axis=2)
    xs, ys = np.flatnonzero(footprint.any(axis=1)), np.flatnonzero(footprint.any(axis=0))
    if xs.size == 0:
        raise ValueError(f"{name}: no head foreground in the crop (slices {z0}:{z1}).")
    width_mm = max((xs[-1] + 1 - xs[0]) * sx, (ys[-1] + 1 - ys[0]) * sy) + 2 * margin_mm
    x_slice, x_clipped = _centred_slice((xs[0] + xs[-1] + 1) / 2, width_mm / sx, size_x)
    y_slice, y_clipped = _centred_slice((ys[0] + ys[-1] + 1) / 2, width_mm / sy, size_y)
    if x_clipped or y_clipped:
        logger.warning(f"{name}: the volume is narrower than the {width_mm:.0f} mm square crop; it is clipped.")
    return x_slice, y_slice, slice(z0, z1)


def _centred_slice(centre: float, length: float, size: int) -> tuple[slice, bool]:
    """``round(length)`` voxels centred on ``centre`` (voxel-edge units), shifted inside ``[0, size)``; and
    whether the volume was too small for them."""
    wanted = max(1, int(round(length)))
    n = min(size, wanted)
    start = int(round(centre - n / 2))
    start = min(max(start, 0), size - n)
    return slice(start, start + n), n < wanted


def slices_to_box(slices: Sequence[slice]) -> tuple[int, int, int, int, int, int]:
    """``(x0, x1, y0, y1, z0, z1)`` of three slices."""
    return tuple(int(v) for s in slices for v in (s.start, s.stop))  # type: ignore[return-value]


def box_to_slices(box: Sequence[int], shape: Sequence[int], name: str = "volume") -> tuple[slice, slice, slice]:
    """Slices of a ``(x0, x1, y0, y1, z0, z1)`` box (ends exclusive), checked against the volume ``shape``."""
    if len(box) != 6:
        raise ValueError(f"{name}: a crop box is (x0, x1, y0, y1, z0, z1), got {tuple(box)}.")
    box = tuple(int(v) for v in box)
    for axis, size in enumerate(shape[-3:]):
        lo, hi = box[2 * axis], box[2 * axis + 1]
        if not 0 <= lo < hi <= size:
            raise ValueError(
                f"{name}: crop box {box} does not fit the volume of shape {tuple(shape[-3:])} "
                f"(need 0 <= {'xyz'[axis]}0 < {'xyz'[axis]}1 <= {size})."
            )
    return slice(box[0], box[1]), slice(box[2], box[3]), slice(box[4], box[5])


def _spacing_and_check_ras(img, name: str) -> tuple[float, float, float]:
    """Voxel size of ``img`` from its affine (1 mm without one); refuse a volume whose z axis is not superior."""
    if not isinstance(img, MetaTensor):
        return 1.0, 1.0, 1.0
    if img.pending_operations:
        raise ValueError(
            f"{name}: the volume has pending lazy operations; the head crop needs its current "
            "voxels (run it with lazy resampling off, or apply the pending operations first)."
        )
    affine = np.asarray(img.affine, dtype=np.float64)
    codes = nib.aff2axcodes(affine)
    if codes[2] != "S":
        raise ValueError(
            f"{name}: the volume's z axis points {codes[2]!r} (axes {''.join(codes)}); the head crop "
            "needs RAS voxel order: apply Orientationd(axcodes='RAS') first."
        )
    return tuple(float(s) for s in affine_to_spacing(affine, r=3))  # type: ignore[return-value]


class HeadCrop(Crop):
    """Crop a channel-first head volume ``(C, X, Y, Z)`` from the brow to below the jaw (MONAI ``Crop``, so the
    crop is recorded in the MetaTensor: the affine follows it and ``inverse`` pads it back).

    The box comes from the first channel's head foreground (:func:`head_crop_box`, spacing from the affine),
    unless a box is passed to ``__call__``.

    Args:
        threshold: foreground threshold (e.g. -500 for CT in HU); default :func:`auto_threshold`.
        top_offset_mm: vertex to the top of the crop.
        extent_mm: height of the crop.
        margin_mm: in-plane margin around the head.
        lazy: MONAI lazy execution (the box itself always needs the current voxels).
    """

    def __init__(
        self,
        threshold: float | None = None,
        top_offset_mm: float = DEFAULT_TOP_OFFSET_MM,
        extent_mm: float = DEFAULT_EXTENT_MM,
        margin_mm: float = DEFAULT_MARGIN_MM,
        lazy: bool = False,
    ):
        super().__init__(lazy=lazy)
        self.threshold, self.top_offset_mm, self.extent_mm, self.margin_mm = (
            threshold,
            top_offset_mm,
            extent_mm,
            margin_mm,
        )

    @property
    def requires_current_data(self) -> bool:
        return True

    def compute_box(self, img, name: str = "volume") -> tuple[slice, slice, slice]:
        """The automatic crop slices of ``img`` ``(C, X, Y, Z)``."""
        spacing = _spacing_and_check_ras(img, name)
        mask = head_foreground(img[0], self.threshold)
        return head_crop_box(mask, spacing, self.top_offset_mm, self.extent_mm, self.margin_mm, name=name)

    def __call__(  # type: ignore[override]  # Crop's slices argument becomes an optional box
        self,
        img: torch.Tensor,
        box: Sequence[int] | None = None,
        lazy: bool | None = None,
        name: str = "volume",
    ) -> torch.Tensor:
        """Crop ``img`` to ``box`` ``(x0, x1, y0, y1, z0, z1)`` if given, else to the automatic box."""
        slices = box_to_slices(box, img.shape, name) if box is not None else self.compute_box(img, name)
        return super().__call__(img=img, slices=slices, lazy=lazy)


class HeadCropd(Cropd):
    """Dictionary version of :class:`HeadCrop`, with per-case boxes.

    Args:
        keys: keys of the volumes to crop (each gets its own box).
        threshold, top_offset_mm, extent_mm, margin_mm: see :class:`HeadCrop`.
        override: ``{case: (x0, x1, y0, y1, z0, z1)}`` voxel boxes (ends exclusive) of the oriented, resampled
            volume, or the path of a CSV read by :func:`read_crop_overrides`; other cases are cropped
            automatically.
        case_key: key holding the case name; without it (or when absent) the case is the file name without its
            suffix, from ``meta["filename_or_obj"]``.
        box_key: the box used for ``key`` is stored at ``f"{key}_{box_key}"`` as ``(x0, x1, y0, y1, z0, z1)``;
            None stores nothing.
        allow_missing_keys: don't raise if a key is missing.
    """

    def __init__(
        self,
        keys: KeysCollection,
        threshold: float | None = None,
        top_offset_mm: float = DEFAULT_TOP_OFFSET_MM,
        extent_mm: float = DEFAULT_EXTENT_MM,
        margin_mm: float = DEFAULT_MARGIN_MM,
        override: Mapping[str, Sequence[int]] | str | Path | None = None,
        case_key: str | None = None,
        box_key: str | None = "crop_box",
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, HeadCrop(threshold, top_offset_mm, extent_mm, margin_mm), allow_missing_keys)
        self.cropper: HeadCrop
        if isinstance(override, (str, os.PathLike)):
            override = read_crop_overrides(override)
        self.override = {str(k): tuple(int(v) for v in box) for k, box in (override or {}).items()}
        self.case_key, self.box_key = case_key, box_key

    @property
    def requires_current_data(self) -> bool:
        return True

    def _case(self, d: Mapping, key: Hashable) -> tuple[str | None, str]:
        """(case name or None, name for messages) of ``d[key]``."""
        source = d[key].meta.get("filename_or_obj") if isinstance(d[key], MetaTensor) else None
        label = str(source) if source else f"data[{key!r}]"
        if self.case_key is not None and self.case_key in d:
            return str(d[self.case_key]), label
        return (volume_stem(source) if source else None), label

    def __call__(self, data: Mapping[Hashable, torch.Tensor], lazy: bool | None = None) -> dict:
        d: dict[Hashable, Any] = dict(data)
        lazy_ = self.lazy if lazy is None else lazy
        for key in self.key_iterator(d):
            case, label = self._case(d, key)
            box = self.override.get(case) if case is not None else None
            if box is not None:
                logger.info(f"{label}: using the crop box {box} given for case {case!r}.")
            slices = (
                box_to_slices(box, d[key].shape, label) if box is not None else self.cropper.compute_box(d[key], label)
            )
            if self.box_key is not None:
                d[f"{key}_{self.box_key}"] = slices_to_box(slices)
            d[key] = Crop.__call__(self.cropper, d[key], slices, lazy=lazy_)
        return d


def read_crop_overrides(csv_path: str | os.PathLike) -> dict[str, tuple[int, int, int, int, int, int]]:
    """Per-case crop boxes from a CSV with the header ``case,x0,x1,y0,y1,z0,z1`` (extra columns are ignored).

    Boxes are voxel indices (ends exclusive) of the oriented (RAS), resampled volume. Blank lines are skipped.

    Raises:
        FileNotFoundError: the CSV is missing.
        ValueError: a missing column, an empty or repeated case, a value that is not an integer, or a box with
            an end not after its start; the message names the CSV and the line.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"{csv_path}: crop CSV does not exist.")
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in ("case", *BOX_COLUMNS) if c not in header]
        if missing:
            raise ValueError(
                f"{csv_path}, line 1: missing column(s) {', '.join(missing)}; the first line must be "
                f"the header case,{','.join(BOX_COLUMNS)}."
            )
        reader.fieldnames = header
        boxes: dict[str, tuple[int, int, int, int, int, int]] = {}
        for row in reader:
            line = reader.line_num
            if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                continue
            case = (row.get("case") or "").strip()
            if not case:
                raise ValueError(f"{csv_path}, line {line}: empty case name.")
            if case in boxes:
                raise ValueError(f"{csv_path}, line {line}: case {case!r} is listed twice.")
            values = []
            for col in BOX_COLUMNS:
                text = (row.get(col) or "").strip()
                try:
                    values.append(int(text))
                except ValueError:
                    raise ValueError(f"{csv_path}, line {line}: {col}={text!r} is not an integer.") from None
            for axis in range(3):
                if not 0 <= values[2 * axis] < values[2 * axis + 1]:
                    a = "xyz"[axis]
                    raise ValueError(
                        f"{csv_path}, line {line}: need 0 <= {a}0 < {a}1, got {a}0={values[2 * axis]}, "
                        f"{a}1={values[2 * axis + 1]}."
                    )
            boxes[case] = tuple(values)  # type: ignore[assignment]
    return boxes
