"""From raw MR and CT downloads to the MR/CT training layout (``mr/*.nii.gz``, ``ct/*.nii.gz``, a manifest).

The paper's sources are brain MRs (TCIA LGG-1p19qDeletion) and head-and-neck CTs (TCIA Head-Neck-PET-CT):
DICOM series folders, often nested ``patient/study/series``, or NIfTI / NRRD / MetaImage files. Every volume
found under a source is, per case:

1. read (:func:`mr2ct.io.readers.read_volume`: RAS affine, clear errors) and put in RAS voxel order
   (``Orientation``);
2. head-cropped from the brow to below the jaw (:mod:`mr2ct.transforms.head_crop`), or cropped to a box from the
   crop CSV; boxes are voxel indices of the volume resampled to ``spacing`` (MONAI ``Spacing``'s grid);
3. resampled to ``spacing`` within that box only: MONAI ``SpatialResample`` onto the box of ``Spacing``'s output
   grid (bilinear), which gives the voxels ``Spacing`` + ``SpatialCrop`` would, without resampling a whole
   head-and-neck scan first (a tenth of the time);
4. resized to ``size`` (MONAI ``Resize``: trilinear where it grows, area averaging where it shrinks, so no
   aliasing); the MetaTensor carries the affine
   through every step, so the written files sit where the source did in world coordinates;
5. CT stays in HU (clipped to [-1024, 3071], rounded, int16): the bundle's shared transform chain maps the CT
   window (default [-1000, 2000] HU) to [-1, 1] at load time, so HU stays HU on disk. MR is scaled to [0, 1]
   (float32) between the 0.5th and 99.5th percentiles of its head foreground, and clipped.

Each case is written to ``output_dir/<modality>/<case>.nii.gz`` (temporary name, then renamed);
``manifest.csv`` has one row per source volume (skipped ones with their reason) and ``datalist.json`` lists the
prepared files with the settings used (readable by :func:`mr2ct.io.readers.load_datalist`). Inputs are only
read; an output folder inside an input folder is refused.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import cast

import numpy as np
import torch
from monai.data import MetaTensor
from monai.data.utils import affine_to_spacing
from monai.transforms import EnsureChannelFirst, Orientation, Resize, Spacing, SpatialResample
from tqdm import tqdm

from mr2ct.io.atomic import atomic_file, atomic_write_text
from mr2ct.io.nifti import save_volume
from mr2ct.io.readers import VolumeError, list_volumes, read_volume, volume_stem
from mr2ct.transforms.head_crop import (
    DEFAULT_EXTENT_MM,
    DEFAULT_MARGIN_MM,
    DEFAULT_TOP_OFFSET_MM,
    box_to_slices,
    head_crop_box,
    head_foreground,
    read_crop_overrides,
    slices_to_box,
)

__all__ = ["CT_CLIP", "CT_THRESHOLD", "MANIFEST_COLUMNS", "find_cases", "main", "prepare_mrct"]

logger = logging.getLogger(__name__)

CT_CLIP = (-1024, 3071)  # the HU range of 12-bit CT; stored as int16
CT_THRESHOLD = -500.0  # HU between air and soft tissue: the CT head foreground
MANIFEST_COLUMNS = (
    "case",
    "modality",
    "source",
    "status",
    "reason",
    "original_shape",
    "original_spacing",
    "crop_box",
    "output",
)
_RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))


def find_cases(source: str | os.PathLike) -> list[tuple[str, Path]]:
    """``(case, path)`` for every volume under ``source`` (a volume file, or a folder searched recursively).

    A case is named after its path relative to ``source``, without the volume suffix, ``/`` replaced by ``_``
    (``P01/study/CT_series`` -> ``P01_study_CT_series``, ``sub/a.nii.gz`` -> ``sub_a``); ``source`` itself
    (a file or a single series folder) is named after its file or folder name.
    """
    source = Path(source)
    if source.is_file():
        return [(volume_stem(source), source)]
    cases = []
    for path in list_volumes(source, recursive=True):
        if path == source:
            name = source.name
        else:
            rel = path.relative_to(source)
            name = str(rel.parent / volume_stem(rel)) if not path.is_dir() else str(rel)
        cases.append((name.replace(os.sep, "_").replace("/", "_"), path))
    return cases


def _check_folders(sources: Mapping[str, Path], output_dir: Path) -> None:
    """Refuse an output folder equal to or inside an input, or one whose ``mr``/``ct`` folders hold an input."""
    out = output_dir.resolve()
    for modality, source in sources.items():
        src = source.resolve()
        if out == src or src in out.parents:
            raise ValueError(
                f"output folder {output_dir} is inside the {modality.upper()} input {source}; "
                "choose a folder outside the inputs (inputs are never modified)."
            )
        for sub in ("mr", "ct"):
            target = out / sub
            if src == target or target in src.parents:
                raise ValueError(
                    f"the {modality.upper()} input {source} lies in {target}, where outputs are "
                    "written; choose another output folder."
                )


def _fmt(values: Sequence[float], digits: int = 4) -> str:
    return "x".join(f"{float(v):.{digits}g}" for v in values)


def _full_grid(img: MetaTensor, spacing: Sequence[float]) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Affine and shape of ``Spacing(spacing)``'s output for ``img``, computed lazily (no resampling)."""
    lazy = cast(MetaTensor, Spacing(pixdim=spacing, mode="bilinear", lazy=True)(img))
    return torch.as_tensor(lazy.peek_pending_affine(), dtype=torch.float64), tuple(
        int(s) for s in lazy.peek_pending_shape()
    )


def _map_box(
    slices: Sequence[slice], src_affine: torch.Tensor, dst_affine: torch.Tensor, dst_shape: Sequence[int]
) -> tuple[slice, slice, slice]:
    """The same physical box on another grid with the same axes (RAS-aligned, e.g. before/after ``Spacing``)."""
    m = np.linalg.solve(np.asarray(dst_affine, dtype=np.float64), np.asarray(src_affine, dtype=np.float64))
    out = []
    for axis, (s, size) in enumerate(zip(slices, dst_shape)):
        scale, shift = m[axis, axis], m[axis, 3]
        n = min(size, max(1, int(round((s.stop - s.start) * scale))))
        start = int(round(scale * (s.start - 0.5) + shift + 0.5))  # lower voxel edge -> first voxel
        start = min(max(start, 0), size - n)
        out.append(slice(start, start + n))
    return tuple(out)  # type: ignore[return-value]


def _resize(img: MetaTensor, size: Sequence[int]) -> MetaTensor:
    """MONAI ``Resize`` to ``size``: trilinear along the axes that grow, area (box) averaging along those that
    shrink. (``Resize(anti_aliasing=True)`` smooths with zero padding, which pulls air at the edges toward 0 HU.)"""
    current = tuple(int(s) for s in img.shape[1:])
    grown = tuple(max(c, int(s)) for c, s in zip(current, size))
    if grown != current:
        img = cast(MetaTensor, Resize(spatial_size=grown, mode="trilinear")(img))
    if grown != tuple(size):
        img = cast(MetaTensor, Resize(spatial_size=size, mode="area")(img))
    return img


def _prepare_case(path: Path, modality: str, box: Sequence[int] | None, settings: dict) -> tuple[MetaTensor, dict]:
    """Read, orient, crop, resample, resize and normalise one volume; return it with its manifest fields."""
    img = read_volume(path)
    info = {
        "original_shape": "x".join(str(s) for s in img.shape),
        "original_spacing": _fmt(affine_to_spacing(img.affine, r=3).tolist()),
    }
    img = cast(MetaTensor, EnsureChannelFirst(channel_dim="no_channel")(img))
    img = cast(MetaTensor, Orientation(axcodes="RAS", labels=_RAS_LABELS)(img))
    full_affine, full_shape = _full_grid(img, settings["spacing"])
    notes = []
    if box is not None:
        slices = box_to_slices(box, full_shape, f"{path} (crop CSV)")
        notes.append("crop box from the CSV")
    else:
        threshold = CT_THRESHOLD if modality == "ct" else None
        mask = head_foreground(img[0], threshold)
        if mask[:, :, -1].any():
            notes.append("warning: the head reaches the top slice (top of the head cut off?)")
        own = head_crop_box(
            mask,
            affine_to_spacing(img.affine, r=3).tolist(),
            settings["top_offset_mm"],
            settings["extent_mm"],
            settings["margin_mm"],
            name=str(path),
        )
        slices = _map_box(own, img.affine, full_affine, full_shape)
        got_mm = (slices[2].stop - slices[2].start) * settings["spacing"][2]
        if got_mm < settings["extent_mm"] - settings["spacing"][2]:
            notes.append(f"volume covers {got_mm:.0f} of the {settings['extent_mm']:g} mm crop")
    info["crop_box"] = " ".join(str(v) for v in slices_to_box(slices))
    shift = torch.eye(4, dtype=torch.float64)
    shift[:3, 3] = torch.tensor([float(s.start) for s in slices], dtype=torch.float64)
    resample = SpatialResample(mode="bilinear", padding_mode="border", dtype=torch.float32)  # type: ignore[arg-type]  # torch dtypes work
    img = cast(
        MetaTensor, resample(img, dst_affine=full_affine @ shift, spatial_size=[s.stop - s.start for s in slices])
    )
    img = _resize(img, settings["size"])
    data = img.as_tensor()
    if modality == "ct":
        if float(torch.quantile(data.flatten()[:: max(1, data.numel() // 100000)], 0.01)) > -500:
            notes.append("warning: little air below -500 HU; is this CT in HU (rescale slope/intercept)?")
        data = data.clamp(*CT_CLIP).round().to(torch.int16)
    else:
        values = data[0][torch.as_tensor(head_foreground(data[0]))]
        if values.numel() < 2:
            raise VolumeError(path, "has no head foreground after cropping")
        lo, hi = (float(v) for v in np.percentile(values.numpy(), settings["mr_percentiles"]))
        if not hi > lo:
            raise VolumeError(path, f"has constant intensity in the head ({lo:g}), nothing to normalise")
        if float(data.min()) < -500:
            notes.append("warning: values below -500; is this an MR (not a CT in HU)?")
        data = ((data - lo) / (hi - lo)).clamp(0, 1).to(torch.float32)
    info["reason"] = "; ".join(notes)
    return MetaTensor(data, meta=img.meta), info  # the meta holds the affine


def _read_manifest(path: Path) -> dict[tuple[str, str], dict]:
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        return {(row.get("modality", ""), row.get("source", "")): row for row in csv.DictReader(f)}


def _write_manifest(path: Path, rows: Sequence[dict]) -> None:
    with atomic_file(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _validate(spacing, size, ct_window, mr_percentiles) -> tuple:
    spacing = tuple(float(s) for s in spacing)
    size = tuple(int(s) for s in size)
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f"spacing must be 3 positive values in mm, got {spacing}.")
    if len(size) != 3 or min(size) < 2:
        raise ValueError(f"size must be 3 integers >= 2, got {size}.")
    if len(ct_window) != 2 or not ct_window[0] < ct_window[1]:
        raise ValueError(f"ct_window must be (low, high) HU with low < high, got {tuple(ct_window)}.")
    if len(mr_percentiles) != 2 or not 0 <= mr_percentiles[0] < mr_percentiles[1] <= 100:
        raise ValueError(f"mr_percentiles must be (low, high) with 0 <= low < high <= 100, got {mr_percentiles}.")
    return spacing, size, tuple(float(v) for v in ct_window), tuple(float(v) for v in mr_percentiles)


def prepare_mrct(
    mr_source: str | os.PathLike,
    ct_source: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    size: Sequence[int] = (256, 256, 30),
    ct_window: Sequence[float] = (-1000, 2000),
    mr_percentiles: Sequence[float] = (0.5, 99.5),
    top_offset_mm: float = DEFAULT_TOP_OFFSET_MM,
    extent_mm: float = DEFAULT_EXTENT_MM,
    margin_mm: float = DEFAULT_MARGIN_MM,
    overrides_csv: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> Path:
    """Prepare raw MR and CT volumes for training; return ``output_dir``.

    Args:
        mr_source: MR volume file, or folder searched recursively (DICOM series folders, volume files).
        ct_source: CT volume file or folder, likewise.
        output_dir: where ``mr/``, ``ct/``, ``manifest.csv`` and ``datalist.json`` are written; must not be
            inside an input.
        spacing: voxel size (mm, x y z) of the grid the head is cropped on and crop boxes refer to.
        size: output shape ``(X, Y, Z)``; the paper's is 256 x 256 x 30.
        ct_window: HU window the bundle later maps to [-1, 1]; recorded in ``datalist.json`` (CT files keep HU).
        mr_percentiles: MR intensities at these percentiles of the head become 0 and 1.
        top_offset_mm: vertex to the top of the crop (the brow); see :mod:`mr2ct.transforms.head_crop`.
        extent_mm: height of the crop.
        margin_mm: in-plane margin around the head.
        overrides_csv: CSV ``case,x0,x1,y0,y1,z0,z1`` of boxes for cases the automatic crop gets wrong (a case
            may be written ``mr/<case>`` or ``ct/<case>`` to pick one modality); indices refer to the RAS volume
            resampled to ``spacing``, as the manifest's ``crop_box`` column does.
        overwrite: redo cases whose output exists (default: keep them).

    Raises:
        FileNotFoundError, VolumeError: a source is missing or holds no volume.
        ValueError: bad settings, a bad crop CSV, or an output folder inside an input.
    """
    spacing, size, ct_window, mr_percentiles = _validate(spacing, size, ct_window, mr_percentiles)
    output_dir = Path(output_dir)
    sources = {"mr": Path(mr_source), "ct": Path(ct_source)}
    for modality, source in sources.items():
        if not source.exists():
            raise FileNotFoundError(f"{source}: {modality.upper()} source does not exist.")
    _check_folders(sources, output_dir)
    overrides = read_crop_overrides(overrides_csv) if overrides_csv else {}
    settings = {
        "spacing": spacing,
        "size": size,
        "ct_window": ct_window,
        "mr_percentiles": mr_percentiles,
        "top_offset_mm": float(top_offset_mm),
        "extent_mm": float(extent_mm),
        "margin_mm": float(margin_mm),
        "overrides_csv": str(overrides_csv) if overrides_csv else None,
    }
    jobs = [(modality, case, path) for modality, source in sources.items() for case, path in find_cases(source)]
    output_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = output_dir / "manifest.csv"
    previous = _read_manifest(manifest_path)
    rows: list[dict] = []
    used: dict[tuple[str, str], str] = {}
    for modality, case, path in tqdm(jobs, desc="preparing MR/CT", unit="case"):
        out = output_dir / modality / f"{case}.nii.gz"
        row = dict.fromkeys(MANIFEST_COLUMNS, "")
        row.update(case=case, modality=modality, source=str(path), output=str(out.relative_to(output_dir)))
        if (modality, case) in used:
            row.update(
                status="skipped", reason=f"case name {case!r} is already used by {used[modality, case]}", output=""
            )
            rows.append(row)
            continue
        used[modality, case] = str(path)
        if out.exists() and not overwrite:
            old = previous.get((modality, str(path)))
            if old is not None and old.get("status") == "ok":
                row.update({k: v for k, v in old.items() if k in MANIFEST_COLUMNS})
            row.update(status="ok", reason="kept the existing output (overwrite to redo)")
            rows.append(row)
            continue
        box = overrides.get(f"{modality}/{case}", overrides.get(case))
        try:
            img, info = _prepare_case(path, modality, box, settings)
            save_volume(img, out, dtype=None)
            row.update(info, status="ok")
        except (VolumeError, ValueError) as e:  # a bad case is reported, the others go on
            row.update(status="skipped", reason=str(e), output="")
            logger.warning(f"skipped {modality.upper()} {path}: {e}")
        except Exception as e:  # noqa: BLE001 - one unexpected failure must not lose the whole batch
            row.update(status="skipped", reason=f"{path}: unexpected {type(e).__name__}: {e}", output="")
            logger.exception(f"skipped {modality.upper()} {path} after an unexpected error")
        rows.append(row)
    _write_manifest(manifest_path, rows)
    ok = {m: [r["output"] for r in rows if r["modality"] == m and r["status"] == "ok"] for m in ("mr", "ct")}
    datalist = {
        "description": "MR/CT volumes prepared by mr2ct.data.prepare_mrct (unpaired training data)",
        "settings": settings,
        "training": [{m: p} for m in ("mr", "ct") for p in ok[m]],
    }
    atomic_write_text(output_dir / "datalist.json", json.dumps(datalist, indent=2) + "\n")
    n_ok = len(ok["mr"]) + len(ok["ct"])
    logger.info(
        f"prepared {n_ok} case(s) ({len(ok['mr'])} MR, {len(ok['ct'])} CT), skipped {len(rows) - n_ok}; "
        f"see {manifest_path}"
    )
    for m in ("mr", "ct"):
        if not ok[m]:
            logger.warning(f"no {m.upper()} case was prepared: training needs both modalities.")
    return output_dir


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="prepare_mrct",
        description=(
            "Prepare raw MR and CT volumes (DICOM series folders, NIfTI, NRRD, MHA; searched recursively) for the "
            "MR/CT bundle: orient to RAS, crop the head from the brow to below the jaw, resample, resize, and write "
            "OUTPUT/mr/*.nii.gz, OUTPUT/ct/*.nii.gz (CT in HU), manifest.csv and datalist.json."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--mr", required=True, help="MR volume file or folder (DICOM series, NIfTI, NRRD, MHA)")
    p.add_argument("--ct", required=True, help="CT volume file or folder")
    p.add_argument("--output", required=True, help="output folder (outside the inputs)")
    p.add_argument(
        "--spacing",
        type=float,
        nargs=3,
        default=(1.0, 1.0, 1.0),
        metavar=("X", "Y", "Z"),
        help="voxel size in mm of the grid the crop is taken on",
    )
    p.add_argument("--size", type=int, nargs=3, default=(256, 256, 30), metavar=("X", "Y", "Z"), help="output shape")
    p.add_argument(
        "--ct-window",
        type=float,
        nargs=2,
        default=(-1000.0, 2000.0),
        metavar=("LOW", "HIGH"),
        help="CT window in HU the bundle maps to [-1, 1] (recorded; files keep HU)",
    )
    p.add_argument(
        "--mr-percentiles",
        type=float,
        nargs=2,
        default=(0.5, 99.5),
        metavar=("LOW", "HIGH"),
        help="MR head percentiles that become 0 and 1",
    )
    p.add_argument("--crop-csv", default=None, help="CSV case,x0,x1,y0,y1,z0,z1 of per-case crop boxes")
    p.add_argument(
        "--top-offset-mm",
        type=float,
        default=DEFAULT_TOP_OFFSET_MM,
        help="top of the head to the top of the crop (brow)",
    )
    p.add_argument("--extent-mm", type=float, default=DEFAULT_EXTENT_MM, help="height of the crop")
    p.add_argument("--margin-mm", type=float, default=DEFAULT_MARGIN_MM, help="in-plane margin around the head")
    p.add_argument("--overwrite", action="store_true", help="redo cases whose output exists")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of :func:`prepare_mrct`; returns 0 if at least one case was prepared, else 1."""
    args = _parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        out = prepare_mrct(
            args.mr,
            args.ct,
            args.output,
            spacing=args.spacing,
            size=args.size,
            ct_window=args.ct_window,
            mr_percentiles=args.mr_percentiles,
            top_offset_mm=args.top_offset_mm,
            extent_mm=args.extent_mm,
            margin_mm=args.margin_mm,
            overrides_csv=args.crop_csv,
            overwrite=args.overwrite,
        )
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    with open(out / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    n_ok = sum(r["status"] == "ok" for r in rows)
    print(f"prepared {n_ok} of {len(rows)} volume(s), skipped {len(rows) - n_ok}; manifest: {out / 'manifest.csv'}")
    return 0 if n_ok else 1


if __name__ == "__main__":
    sys.exit(main())
