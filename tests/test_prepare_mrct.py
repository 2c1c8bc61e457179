"""Head crop (foreground, box, transform, CSV overrides) and the MR/CT preparation script, on skull phantoms."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch
from monai.data import MetaTensor

from mr2ct.data.prepare_mrct import find_cases, main, prepare_mrct
from mr2ct.io.readers import load_datalist
from mr2ct.transforms import HeadCrop, HeadCropd, head_crop_box, head_foreground, read_crop_overrides

# ITK's SWIG bindings and MONAI's optional GPU DICOM decoder warn on import; neither concerns these tests
pytestmark = [
    pytest.mark.filterwarnings("ignore:builtin type .* has no __module__:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:NvImgCodecPydicomReader:UserWarning"),
]

CT_BRAIN, CT_SKULL, CT_SKIN, CT_MARKER = 30, 1000, 40, 3000


def phantom(shape, spacing, centre, radii_mm, modality, marker=None, seed=0) -> np.ndarray:
    """A head: an ellipsoid of skin around a 4 mm skull shell around a brain, in (x, y, z) voxel order.

    CT in HU (air -1000); MR T1-like (noisy background, bright scalp, dark skull, brain). ``marker`` is an
    ``(x, y, z)`` voxel index where a 3x3x3 block of ``CT_MARKER`` (CT) / 1000 (MR) is put.
    """
    idx = np.indices(shape, dtype=np.float32)
    r = np.sqrt(sum(((idx[i] - centre[i]) * spacing[i] / radii_mm[i]) ** 2 for i in range(3)))
    t = 4.0 / min(radii_mm)
    if modality == "ct":
        v = np.full(shape, -1000.0, np.float32)
        v[r < 1], v[r < 1 - t], v[r < 1 - 2 * t] = CT_SKIN, CT_SKULL, CT_BRAIN
    else:
        v = np.random.default_rng(seed).random(shape).astype(np.float32) * 20
        v[r < 1], v[r < 1 - t], v[r < 1 - 2 * t] = 300, 30, 600
    if marker is not None:
        x, y, z = marker
        v[x - 1 : x + 2, y - 1 : y + 2, z - 1 : z + 2] = CT_MARKER if modality == "ct" else 1000
    return v


def affine_of(spacing, origin, flip_xy=False) -> np.ndarray:
    a = np.diag([*spacing, 1.0])
    a[:3, 3] = origin
    if flip_xy:  # LPS-like voxel order: x and y run right->left and anterior->posterior
        a = a @ np.diag([-1.0, -1.0, 1.0, 1.0])
    return a


def write_dicom_series(vol_xyz: np.ndarray, affine_ras: np.ndarray, folder: Path, uid: str) -> None:
    """A CT series, one int16 slice per file, with geometry and series tags set on every slice."""
    folder.mkdir(parents=True, exist_ok=True)
    img = sitk.GetImageFromArray(np.transpose(vol_xyz, (2, 1, 0)).astype(np.int16))
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine_ras
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    img.SetSpacing(spacing.tolist())
    img.SetDirection((lps[:3, :3] / spacing).ravel().tolist())
    img.SetOrigin(lps[:3, 3].tolist())
    d = img.GetDirection()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for i in range(img.GetDepth()):
        s = img[:, :, i]
        for tag, value in {
            "0008|0060": "CT",
            "0020|000e": uid,
            "0020|000d": uid + ".1",
            "0008|0018": f"{uid}.{i + 1}",
            "0020|0013": str(i + 1),
            "0028|1052": "0",
            "0028|1053": "1",
            "0020|0032": "\\".join(str(v) for v in img.TransformIndexToPhysicalPoint((0, 0, i))),
            "0020|0037": "\\".join(str(v) for v in (d[0], d[3], d[6], d[1], d[4], d[7])),
        }.items():
            s.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"1-{i + 1:03d}.dcm"))
        writer.Execute(s)


# ---------------------------------------------------------------- head crop

SP = (1.5, 1.5, 2.0)
SHAPE = (60, 60, 50)
CENTRE = (30, 30, 20)
RADII = (30, 36, 45)  # the vertex is the highest slice with |z - 20| * 2 mm < 45 mm: slice 42


def test_head_foreground_fills_and_keeps_the_head():
    ct = phantom(SHAPE, SP, CENTRE, RADII, "ct")
    ct[ct == CT_BRAIN] = -1000  # hollow skull: the brain is a hole to fill
    ct[2:5, 2:5, 2:5] = 500  # a speck outside the head
    mask = head_foreground(ct, threshold=-500)
    idx = np.indices(SHAPE, dtype=np.float32)
    inside = sum(((idx[i] - CENTRE[i]) * SP[i] / RADII[i]) ** 2 for i in range(3)) < 0.98
    assert mask[inside].all() and not mask[2:5, 2:5, 2:5].any()
    mr = phantom(SHAPE, SP, CENTRE, RADII, "mr")  # dark skull between scalp and brain; automatic threshold
    mr_mask = head_foreground(torch.as_tensor(mr)[None])
    assert mr_mask[inside].all() and mr_mask.sum() < 1.1 * inside.sum()
    assert not head_foreground(np.zeros(SHAPE), threshold=0).any()


def test_head_crop_box_vertex_extent_square():
    mask = head_foreground(phantom(SHAPE, SP, CENTRE, RADII, "ct"), threshold=-500)
    assert np.flatnonzero(mask.any(axis=(0, 1)))[-1] == 42
    x, y, z = head_crop_box(mask, SP, top_offset_mm=10, extent_mm=30, margin_mm=5)
    assert (z.start, z.stop) == (43 - 5 - 15, 43 - 5)  # 10 mm = 5 slices below the vertex's top, 30 mm = 15 slices
    assert x.stop - x.start == y.stop - y.start  # square (isotropic in-plane)
    footprint = mask[:, :, z].any(axis=2)
    xs, ys = np.flatnonzero(footprint.any(1)), np.flatnonzero(footprint.any(0))
    side_mm = max(xs[-1] + 1 - xs[0], ys[-1] + 1 - ys[0]) * 1.5 + 10
    assert abs((x.stop - x.start) * 1.5 - side_mm) <= 1.5
    assert x.start <= xs[0] - 3 and x.stop >= xs[-1] + 4 and y.start <= ys[0] - 3 and y.stop >= ys[-1] + 4
    # anisotropic in-plane spacing: square in mm, not in voxels
    sp2 = (1.0, 2.0, 2.0)
    mask2 = head_foreground(phantom((90, 50, 50), sp2, (45, 25, 20), RADII, "ct"), threshold=-500)
    x2, y2, _ = head_crop_box(mask2, sp2, top_offset_mm=10, extent_mm=30, margin_mm=5)
    assert abs((x2.stop - x2.start) * 1.0 - (y2.stop - y2.start) * 2.0) <= 2.0


def test_head_crop_box_short_volume_and_errors(caplog):
    mask = head_foreground(phantom(SHAPE, SP, CENTRE, RADII, "ct"), threshold=-500)
    with caplog.at_level(logging.WARNING, logger="mr2ct.transforms.head_crop"):
        _, _, z = head_crop_box(mask[:, :, 30:], SP, top_offset_mm=10, extent_mm=30, name="short.nii")
    assert (z.start, z.stop) == (0, 13 - 5) and "short.nii" in caplog.text and "covers 16 of the 30 mm" in caplog.text
    with pytest.raises(ValueError, match="no head foreground"):
        head_crop_box(np.zeros(SHAPE, bool), SP)
    with pytest.raises(ValueError, match="above the crop's top"):
        head_crop_box(mask[:, :, 38:], SP, top_offset_mm=30, extent_mm=30)


def _meta_volume(vol, spacing, origin, name="/data/case7.nii.gz"):
    return MetaTensor(
        torch.as_tensor(vol)[None], affine=torch.as_tensor(affine_of(spacing, origin)), meta={"filename_or_obj": name}
    )


def test_head_cropd_auto_override_inverse(tmp_path):
    vol = phantom(SHAPE, SP, CENTRE, RADII, "ct")
    img = _meta_volume(vol, SP, (-40.0, -45.0, -30.0))
    crop = HeadCropd(keys="image", threshold=-500, top_offset_mm=10, extent_mm=30, margin_mm=5)
    out = crop({"image": img})
    x0, x1, y0, y1, z0, z1 = out["image_crop_box"]
    assert (z0, z1) == (23, 38) and x1 - x0 == y1 - y0
    assert tuple(out["image"].shape) == (1, x1 - x0, y1 - y0, 15)
    np.testing.assert_allclose(out["image"].affine[:3, 3].numpy(), [-40 + 1.5 * x0, -45 + 1.5 * y0, -30 + 2.0 * z0])
    np.testing.assert_array_equal(out["image"][0].numpy(), vol[x0:x1, y0:y1, z0:z1])
    back = crop.inverse(out)["image"]
    assert tuple(back.shape) == (1, *SHAPE)
    np.testing.assert_array_equal(back[0, x0:x1, y0:y1, z0:z1].numpy(), vol[x0:x1, y0:y1, z0:z1])
    # a per-case box: by the file's stem, from a dict or a CSV; other cases stay automatic
    box = (5, 45, 6, 46, 10, 30)
    for override in ({"case7": box}, _write_csv(tmp_path / "boxes.csv", [("case7", *box)])):
        out = HeadCropd(keys="image", override=override)({"image": img})
        assert out["image_crop_box"] == box and tuple(out["image"].shape) == (1, 40, 40, 20)
    other = HeadCropd(keys="image", threshold=-500, top_offset_mm=10, extent_mm=30, override={"case8": box})
    assert other({"image": img})["image_crop_box"][4:] == (23, 38)
    named = HeadCropd(keys="image", override={"p1": box}, case_key="case", box_key=None)({"image": img, "case": "p1"})
    assert tuple(HeadCrop()(img[:, :50], box=box).shape) == (1, 40, 40, 20)
    assert tuple(HeadCrop(threshold=-500, top_offset_mm=10, extent_mm=30)(img).shape[1:]) == (x1 - x0, y1 - y0, 15)
    assert tuple(named["image"].shape) == (1, 40, 40, 20) and "image_crop_box" not in named
    with pytest.raises(ValueError, match="does not fit the volume"):
        HeadCropd(keys="image", override={"case7": (0, 61, 0, 10, 0, 10)})({"image": img})


def test_head_cropd_needs_ras():
    img = MetaTensor(torch.zeros(1, 10, 10, 10), affine=torch.diag(torch.tensor([-1.0, -1.0, -1.0, 1.0])))
    with pytest.raises(ValueError, match="Orientationd"):
        HeadCropd(keys="image")({"image": img})


def _write_csv(path: Path, rows, header=("case", "x0", "x1", "y0", "y1", "z0", "z1")) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        if header:
            w.writerow(header)
        w.writerows(rows)
    return path


def test_read_crop_overrides(tmp_path):
    good = _write_csv(tmp_path / "good.csv", [("a", 0, 10, 1, 11, 2, 12), (), ("b", 5, 6, 5, 6, 5, 6)])
    assert read_crop_overrides(good) == {"a": (0, 10, 1, 11, 2, 12), "b": (5, 6, 5, 6, 5, 6)}
    with pytest.raises(ValueError, match=r"nohead.csv, line 1: missing column\(s\) case, x0"):
        read_crop_overrides(_write_csv(tmp_path / "nohead.csv", [("a", 0, 10, 1, 11, 2, 12)], header=None))
    short_header = ("case", "x0", "x1", "y0", "y1", "z0")
    with pytest.raises(ValueError, match="missing column.*z1"):
        read_crop_overrides(_write_csv(tmp_path / "cols.csv", [("a", 0, 1, 0, 1, 0)], header=short_header))
    rows = [("a", 0, 10, 1, 11, 2, 12), ("b", 0, 10, 1, "eleven", 2, 12)]
    with pytest.raises(ValueError, match=r"bad.csv, line 3: y1='eleven' is not an integer"):
        read_crop_overrides(_write_csv(tmp_path / "bad.csv", rows))
    with pytest.raises(ValueError, match=r"order.csv, line 2: need 0 <= z0 < z1"):
        read_crop_overrides(_write_csv(tmp_path / "order.csv", [("a", 0, 10, 1, 11, 12, 2)]))
    with pytest.raises(FileNotFoundError):
        read_crop_overrides(tmp_path / "none.csv")


# ---------------------------------------------------------------- prepare_mrct

PREP = {
    "spacing": (2.0, 2.0, 2.0),
    "size": (24, 24, 8),
    "top_offset_mm": 10.0,
    "extent_mm": 40.0,
    "margin_mm": 4.0,
    "mr_percentiles": (0.5, 100.0),
}  # 100: the MR marker, the brightest, maps to 1
P_SHAPE, P_SP, P_CENTRE, P_RADII = (48, 48, 30), (1.5, 1.5, 3.0), (24, 24, 12), (25, 30, 40)
MARKER = (24, 26, 16)  # inside the brain, within the crop


@pytest.fixture
def sources(tmp_path):
    """MR: a NIfTI with RAS voxel order and one with x/y flipped (LPS-like), plus a README; CT: a nested DICOM
    series, an MHA and a truncated NIfTI. Every volume holds a marker at MARKER; returns (mr, ct, markers)."""
    mr, ct = tmp_path / "raw_mr", tmp_path / "raw_ct"
    (mr / "site2").mkdir(parents=True)
    ct.mkdir()
    origin = (-30.0, -25.0, -40.0)
    markers = {}
    vol = phantom(P_SHAPE, P_SP, P_CENTRE, P_RADII, "mr", marker=MARKER)
    nib.save(nib.Nifti1Image(vol, affine_of(P_SP, origin)), mr / "p1.nii.gz")
    markers["mr/p1"] = affine_of(P_SP, origin) @ [*MARKER, 1]
    flipped = affine_of(P_SP, (30.0, 35.0, -40.0), flip_xy=True)
    nib.save(nib.Nifti1Image(vol[::-1, ::-1].copy(), flipped), mr / "site2" / "p2.nii.gz")
    markers["mr/site2_p2"] = flipped @ [P_SHAPE[0] - 1 - MARKER[0], P_SHAPE[1] - 1 - MARKER[1], MARKER[2], 1]
    (mr / "README.txt").write_text("downloaded from TCIA\n")
    hu = phantom(P_SHAPE, P_SP, P_CENTRE, P_RADII, "ct", marker=MARKER)
    write_dicom_series(hu, affine_of(P_SP, origin), ct / "HN-01" / "study" / "CT_series", uid="1.2.826.0.1.99.1")
    markers["ct/HN-01_study_CT_series"] = affine_of(P_SP, origin) @ [*MARKER, 1]
    img = sitk.GetImageFromArray(np.transpose(hu, (2, 1, 0)).astype(np.int16))
    img.SetSpacing(P_SP)
    img.SetOrigin((30.0, 25.0, -40.0))  # LPS origin of the RAS point (-30, -25, -40)
    img.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))
    sitk.WriteImage(img, str(ct / "hn2.mha"))
    markers["ct/hn2"] = affine_of(P_SP, origin) @ [*MARKER, 1]
    nib.save(nib.Nifti1Image(hu.astype(np.int16), affine_of(P_SP, origin)), ct / "broken.nii.gz")
    raw = (ct / "broken.nii.gz").read_bytes()
    (ct / "broken.nii.gz").write_bytes(raw[: len(raw) // 3])
    return mr, ct, markers


def _checksums(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _manifest(out: Path) -> dict[tuple[str, str], dict]:
    with open(out / "manifest.csv", newline="") as f:
        return {(r["modality"], r["case"]): r for r in csv.DictReader(f)}


def test_find_cases(sources):
    mr, ct, _ = sources
    assert [c for c, _ in find_cases(mr)] == ["p1", "site2_p2"]
    assert [c for c, _ in find_cases(ct)] == ["HN-01_study_CT_series", "broken", "hn2"]
    assert find_cases(mr / "p1.nii.gz") == [("p1", mr / "p1.nii.gz")]


def test_prepare_mrct(tmp_path, sources):
    mr, ct, markers = sources
    before = {"mr": _checksums(mr), "ct": _checksums(ct)}
    out = prepare_mrct(mr, ct, tmp_path / "prepared", **PREP)
    assert {"mr": _checksums(mr), "ct": _checksums(ct)} == before  # inputs untouched
    rows = _manifest(out)
    assert len(rows) == 5
    broken = rows["ct", "broken"]
    assert broken["status"] == "skipped" and "broken.nii.gz" in broken["reason"] and not broken["output"]
    for key, world in markers.items():
        modality, case = key.split("/")
        row = rows[modality, case]
        assert row["status"] == "ok", row
        assert row["original_shape"] == "48x48x30" and row["original_spacing"] == "1.5x1.5x3"
        assert len(row["crop_box"].split()) == 6
        img = nib.load(out / row["output"])
        data = np.asarray(img.dataobj)
        assert data.shape == PREP["size"]
        assert np.all(np.diag(img.affine)[:3] > 0)  # RAS voxel order
        if modality == "ct":
            assert data.dtype == np.int16
            assert np.all(np.abs(data[9:14, 8:13, 0:2] - CT_BRAIN) <= 1)  # HU kept (brain, away from the marker)
            weight = np.clip(data.astype(np.float64) - 1100, 0, None)  # above bone
        else:
            assert data.dtype == np.float32 and data.min() == 0 and data.max() == 1
            weight = np.clip(data.astype(np.float64) - 0.8, 0, None)
        # the marker stays at its world position, within one output voxel
        voxel_size = np.linalg.norm(img.affine[:3, :3], axis=0)
        found = img.affine @ [*(np.indices(data.shape) * weight).reshape(3, -1).sum(1) / weight.sum(), 1]
        assert np.all(np.abs(found[:3] - world[:3]) <= voxel_size), (key, found, world)
    # the datalist lists the prepared files with the settings
    datalist = load_datalist(out / "datalist.json")
    assert [Path(p).name for p in datalist["mr"]] == ["p1.nii.gz", "site2_p2.nii.gz"]
    assert len(datalist["ct"]) == 2
    assert json.loads((out / "datalist.json").read_text(encoding="utf-8"))["settings"]["ct_window"] == [-1000.0, 2000.0]
    assert not [p for p in out.rglob(".*")]  # no temporary files left


def test_prepare_keeps_outputs_and_uses_crop_csv(tmp_path, sources):
    mr, ct, _ = sources
    out = prepare_mrct(mr, ct, tmp_path / "prepared", **PREP)
    first = _manifest(out)
    stamp = os.stat(out / "mr" / "p1.nii.gz").st_mtime_ns
    prepare_mrct(mr, ct, out, **PREP)
    again = _manifest(out)
    assert os.stat(out / "mr" / "p1.nii.gz").st_mtime_ns == stamp
    assert (
        again["mr", "p1"]["reason"].startswith("kept")
        and again["mr", "p1"]["crop_box"] == first["mr", "p1"]["crop_box"]
    )
    boxes = _write_csv(tmp_path / "boxes.csv", [("mr/p1", 2, 26, 3, 27, 4, 20)])
    prepare_mrct(mr, ct, out, overrides_csv=boxes, overwrite=True, **PREP)
    redone = _manifest(out)
    assert redone["mr", "p1"]["crop_box"] == "2 26 3 27 4 20" and "CSV" in redone["mr", "p1"]["reason"]
    assert redone["mr", "site2_p2"]["crop_box"] == first["mr", "site2_p2"]["crop_box"]
    assert nib.load(out / "mr" / "p1.nii.gz").shape == PREP["size"]


def test_prepare_refuses_output_inside_input(sources):
    mr, ct, _ = sources
    for bad in (mr / "prepared", ct, ct / "HN-01"):
        with pytest.raises(ValueError, match="inside the (MR|CT) input"):
            prepare_mrct(mr, ct, bad, **PREP)
    assert not (mr / "prepared").exists()


def test_main(tmp_path, sources, capsys):
    mr, ct, _ = sources
    args = ["--spacing", "2", "2", "2", "--size", "16", "16", "6", "--top-offset-mm", "10", "--extent-mm", "40"]
    assert main(["--mr", str(mr / "p1.nii.gz"), "--ct", str(ct), "--output", str(tmp_path / "o"), *args]) == 0
    assert "prepared 3 of 4 volume(s), skipped 1" in capsys.readouterr().out
    assert nib.load(tmp_path / "o" / "ct" / "hn2.nii.gz").shape == (16, 16, 6)
    broken = ct / "broken.nii.gz"
    assert main(["--mr", str(broken), "--ct", str(broken), "--output", str(tmp_path / "none"), *args]) == 1
    assert main(["--mr", str(tmp_path / "missing"), "--ct", str(ct), "--output", str(tmp_path / "x")]) == 1
    assert "missing: MR source does not exist" in capsys.readouterr().err
