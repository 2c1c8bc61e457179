"""Volume readers (NIfTI, NRRD, MHA, DICOM series), their errors, datalists, and the volume check transform."""

from __future__ import annotations

import json
import logging
import os
import random

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch
from monai.data import MetaTensor

from mr2ct.io.readers import (
    VolumeError,
    check_volume,
    list_volumes,
    load_datalist,
    read_volume,
    reader_for,
    unpaired_items,
)
from mr2ct.transforms import CheckVolumed

# ITK's SWIG bindings and MONAI's optional GPU DICOM decoder warn on import; neither concerns these tests
pytestmark = [
    pytest.mark.filterwarnings("ignore:builtin type .* has no __module__:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:NvImgCodecPydicomReader:UserWarning"),
]

SPACING = (0.8, 0.9, 2.0)
ORIGIN = (-10.0, -20.0, 30.0)


def sitk_image(arr_zyx: np.ndarray, spacing=SPACING, origin=ORIGIN, direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)):
    img = sitk.GetImageFromArray(arr_zyx)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    img.SetDirection(direction)
    return img


def write_dicom_series(
    img: sitk.Image,
    folder,
    uid: str = "1.2.826.0.1.3680043.2.1125.7",
    modality: str = "CT",
    suffix: str = ".dcm",
    numbers=None,
) -> None:
    """One file per slice, with the series UID, instance number and geometry set explicitly on every slice
    (SimpleITK's plain series writer gives each slice its own series and loses the origin)."""
    os.makedirs(folder, exist_ok=True)
    d = img.GetDirection()
    orient = "\\".join(str(v) for v in (d[0], d[3], d[6], d[1], d[4], d[7]))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetImageIO("GDCMImageIO")
    for i in range(img.GetDepth()):
        s = img[:, :, i]
        for tag, value in {
            "0008|0060": modality,
            "0020|000e": uid,
            "0020|000d": uid + ".0",
            "0008|0018": f"{uid}.{i + 1}",
            "0020|0013": str((numbers or range(1, 10**6))[i]),
            "0020|0032": "\\".join(str(v) for v in img.TransformIndexToPhysicalPoint((0, 0, i))),
            "0020|0037": orient,
            "0028|1052": "0",
            "0028|1053": "1",
            "0018|0050": str(img.GetSpacing()[2]),
        }.items():
            s.SetMetaData(tag, value)
        writer.SetFileName(os.path.join(folder, f"slice{i:03d}{suffix}"))
        writer.Execute(s)


def ras_affine(img: sitk.Image) -> np.ndarray:
    """The RAS affine of a SimpleITK (LPS) image, voxel axes (x, y, z)."""
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(img.GetDirection()).reshape(3, 3) * np.asarray(img.GetSpacing())
    lps[:3, 3] = img.GetOrigin()
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


@pytest.fixture(scope="module")
def image():
    arr = np.random.default_rng(0).integers(-1000, 2000, size=(6, 7, 5)).astype(np.int16)  # (z, y, x)
    return arr, sitk_image(arr)


def test_same_voxels_and_affine_in_every_format(tmp_path, image):
    arr, img = image
    expected = np.transpose(arr, (2, 1, 0))
    nib.save(nib.Nifti1Image(expected, ras_affine(img)), tmp_path / "a.nii.gz")
    nib.save(nib.Nifti1Image(expected, ras_affine(img)), tmp_path / "b.nii")
    sitk.WriteImage(img, str(tmp_path / "a.nrrd"))
    sitk.WriteImage(img, str(tmp_path / "a.mha"))
    write_dicom_series(img, tmp_path / "series")
    paths = ["a.nii.gz", "b.nii", "a.nrrd", "a.mha", "series"]
    assert [reader_for(tmp_path / p) for p in paths] == ["NibabelReader"] * 2 + ["ITKReader"] * 2 + ["PydicomReader"]
    for p in paths:
        vol = read_volume(tmp_path / p)
        assert isinstance(vol, MetaTensor) and tuple(vol.shape) == (5, 7, 6), p
        np.testing.assert_array_equal(vol.numpy(), expected, err_msg=p)
        np.testing.assert_allclose(vol.affine.numpy(), ras_affine(img), atol=1e-4, err_msg=p)
        assert vol.meta["filename_or_obj"] == str(tmp_path / p)


def test_dicom_rotated_shuffled_series(tmp_path, image):
    """Oblique geometry, file names in random order and InstanceNumbers against the slice order."""
    arr, _ = image
    c, s = np.cos(0.3), np.sin(0.3)
    img = sitk_image(arr, direction=(c, -s, 0, s, c, 0, 0, 0, 1))
    write_dicom_series(img, tmp_path / "rot", suffix="")  # no suffix: found by the DICM preamble
    names = sorted(os.listdir(tmp_path / "rot"))
    shuffled = names[:]
    random.Random(1).shuffle(shuffled)
    for a in names:
        os.rename(tmp_path / "rot" / a, tmp_path / "rot" / f"tmp_{a}")
    for a, b in zip(names, shuffled):
        os.rename(tmp_path / "rot" / f"tmp_{a}", tmp_path / "rot" / b)
    (tmp_path / "rot" / "README.txt").write_text("not a slice\n")
    write_dicom_series(img, tmp_path / "reversed", numbers=list(range(5, -1, -1)) + [0] * 10)
    for folder in ("rot", "reversed"):
        vol = read_volume(tmp_path / folder)
        np.testing.assert_array_equal(vol.numpy(), np.transpose(arr, (2, 1, 0)), err_msg=folder)
        np.testing.assert_allclose(vol.affine.numpy(), ras_affine(img), atol=1e-4, err_msg=folder)


def test_trailing_singleton_axis_is_squeezed(tmp_path):
    data = np.random.default_rng(0).random((8, 9, 4, 1)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 3.0, 1.0])), tmp_path / "s.nii.gz")
    vol = read_volume(tmp_path / "s.nii.gz")
    assert tuple(vol.shape) == (8, 9, 4)
    np.testing.assert_allclose(vol.affine.numpy(), np.diag([2.0, 2.0, 3.0, 1.0]))


def _nifti(path, data):
    nib.save(nib.Nifti1Image(np.asarray(data), np.eye(4)), path)
    return path


def test_bad_inputs_name_the_file(tmp_path, image):
    arr, img = image
    good = _nifti(tmp_path / "good.nii.gz", np.random.default_rng(0).random((10, 10, 6)).astype(np.float32))
    raw = good.read_bytes()
    (tmp_path / "truncated.nii.gz").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "text.nii").write_text("this is not a NIfTI file\n" * 20)
    sitk.WriteImage(img, str(tmp_path / "whole.mha"))
    raw = (tmp_path / "whole.mha").read_bytes()
    (tmp_path / "cut.mha").write_bytes(raw[: len(raw) - 100])
    _nifti(tmp_path / "flat.nii.gz", np.ones((10, 10), np.float32))
    _nifti(tmp_path / "slice.nii.gz", np.ones((10, 10, 1), np.float32))
    _nifti(tmp_path / "four.nii.gz", np.ones((10, 10, 6, 3), np.float32))
    nan = np.ones((10, 10, 6), np.float32)
    nan[1, 2, 3], nan[2, 2, 2] = np.nan, np.inf
    _nifti(tmp_path / "nan.nii.gz", nan)
    _nifti(tmp_path / "empty.nii.gz", np.zeros((10, 0, 6), np.float32))
    (tmp_path / "emptyfolder").mkdir()
    (tmp_path / "nodicom").mkdir()
    (tmp_path / "nodicom" / "notes.txt").write_text("x")
    write_dicom_series(img, tmp_path / "two", uid="1.2.3.1")
    write_dicom_series(sitk_image(arr[:3]), tmp_path / "other", uid="1.2.3.2")
    for f in os.listdir(tmp_path / "other"):
        os.rename(tmp_path / "other" / f, tmp_path / "two" / f"b_{f}")
    (tmp_path / "note.txt").write_text("x")
    cases = {
        "missing.nii.gz": "does not exist",
        "truncated.nii.gz": "cannot be read",
        "text.nii": "cannot be read",
        "cut.mha": "cannot be read",
        "flat.nii.gz": "is 2D (shape (10, 10))",
        "slice.nii.gz": "is 2D",
        "four.nii.gz": "is 4D (shape (10, 10, 6, 3)), expected one 3D volume",
        "nan.nii.gz": "holds 2 NaN/Inf voxels",
        "empty.nii.gz": "is empty",
        "emptyfolder": "without DICOM files",
        "nodicom": "without DICOM files",
        "two": "holds 2 DICOM series",
        "note.txt": "not a supported volume",
        "two/slice000.dcm": "single DICOM file",
    }
    for name, message in cases.items():
        with pytest.raises(VolumeError) as err:
            read_volume(tmp_path / name)
        assert str(tmp_path / name) in str(err.value), name
        assert message in str(err.value), (name, str(err.value))
        assert err.value.path == str(tmp_path / name) and err.value.reason in str(err.value)
    assert "1.2.3.1" in str(pytest.raises(VolumeError, read_volume, tmp_path / "two").value)
    read_volume(good)  # the good one still reads


def test_dicom_with_a_missing_slice(tmp_path, image):
    write_dicom_series(image[1], tmp_path / "gap")
    os.remove(tmp_path / "gap" / "slice002.dcm")
    with pytest.raises(VolumeError, match="uneven slice spacing"):
        read_volume(tmp_path / "gap")


def test_check_volume():
    check_volume(np.random.rand(4, 5, 6), "a.nii")
    check_volume(torch.ones(4, 5, 6), "a.nii", allow_constant=True)
    with pytest.raises(VolumeError, match="a.nii: is constant"):
        check_volume(torch.ones(4, 5, 6), "a.nii")
    with pytest.raises(VolumeError, match="has 2 channels"):
        check_volume(np.random.rand(2, 4, 5, 6), "a.nii", channels=1)
    check_volume(np.random.rand(2, 4, 5, 6), "a.nii", channels=2)


def test_check_volumed_names_the_file():
    good = MetaTensor(torch.rand(1, 4, 5, 6), meta={"filename_or_obj": "/data/mr/a.nii.gz"})
    out = CheckVolumed(keys=["A", "B"])({"A": good, "B": torch.rand(1, 4, 5, 6)})
    assert out["A"] is good
    bad = MetaTensor(torch.rand(1, 4, 5, 6), meta={"filename_or_obj": "/data/mr/b.nii.gz"})
    bad[0, 1, 1, 1] = float("nan")
    with pytest.raises(VolumeError, match=r"^/data/mr/b.nii.gz: holds 1 NaN/Inf voxels"):
        CheckVolumed(keys="A")({"A": bad})
    with pytest.raises(VolumeError, match=r"data\['B'\]: is 2D"):
        CheckVolumed(keys="B")({"B": torch.rand(1, 4, 5, 1)})
    with pytest.raises(VolumeError, match="has 3 channels"):
        CheckVolumed(keys="A")({"A": torch.rand(3, 4, 5, 6)})


def test_list_volumes(tmp_path, image, caplog):
    _nifti(tmp_path / "b.nii.gz", np.ones((4, 4, 4), np.float32))
    _nifti(tmp_path / "a.nii", np.ones((4, 4, 4), np.float32))
    sitk.WriteImage(image[1], str(tmp_path / "c.mha"))
    _nifti(tmp_path / ".hidden.nii.gz", np.ones((4, 4, 4), np.float32))
    write_dicom_series(image[1], tmp_path / "d_series", suffix="")
    (tmp_path / "README.txt").write_text("x")
    (tmp_path / "empty_dir").mkdir()
    with caplog.at_level(logging.WARNING, logger="mr2ct.io.readers"):
        found = list_volumes(tmp_path)
    assert [p.name for p in found] == ["a.nii", "b.nii.gz", "c.mha", "d_series"]
    assert "README.txt" in caplog.text
    assert list_volumes(tmp_path / "d_series") == [tmp_path / "d_series"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_volumes(tmp_path / "nope")
    with pytest.raises(VolumeError, match="holds no volume"):
        list_volumes(tmp_path / "empty_dir")
    nested = tmp_path / "nested"
    write_dicom_series(image[1], nested / "P1" / "study" / "s1")
    (nested / "P2").mkdir()
    _nifti(nested / "P2" / "x.nii.gz", np.ones((4, 4, 4), np.float32))
    assert [p.relative_to(nested).as_posix() for p in list_volumes(nested, recursive=True)] == [
        "P1/study/s1",
        "P2/x.nii.gz",
    ]


def test_load_datalist_and_unpaired_items(tmp_path):
    for name in ("mr/a.nii.gz", "mr/b.nii.gz", "ct/c.nii.gz", "ct/d.nii.gz", "mask/a.nii.gz"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        _nifti(tmp_path / name, np.ones((4, 4, 4), np.float32))
    training = {
        "training": [{"mr": "mr/a.nii.gz"}, {"mr": "mr/b.nii.gz"}, {"ct": "ct/c.nii.gz"}],
        "test": [{"mr": "mr/a.nii.gz", "ct": "ct/d.nii.gz", "mask": "mask/a.nii.gz"}],
    }
    (tmp_path / "list.json").write_text(json.dumps(training))
    data = load_datalist(tmp_path / "list.json")
    assert data["mr"] == [str(tmp_path / "mr/a.nii.gz"), str(tmp_path / "mr/b.nii.gz")]
    assert data["ct"] == [str(tmp_path / "ct/c.nii.gz")]
    assert data["test"] == [
        {
            "mr": str(tmp_path / "mr/a.nii.gz"),
            "ct": str(tmp_path / "ct/d.nii.gz"),
            "mask": str(tmp_path / "mask/a.nii.gz"),
        }
    ]
    (tmp_path / "lists.json").write_text(json.dumps({"mr": ["mr/a.nii.gz"], "ct": ["ct/c.nii.gz", "ct/d.nii.gz"]}))
    a, b = unpaired_items(tmp_path / "lists.json")
    assert a == [{"A": str(tmp_path / "mr/a.nii.gz")}] and len(b) == 2
    a, b = unpaired_items(tmp_path / "mr", tmp_path / "ct")
    assert [x["A"] for x in a] == [str(tmp_path / "mr/a.nii.gz"), str(tmp_path / "mr/b.nii.gz")]
    assert [x["B"] for x in b] == [str(tmp_path / "ct/c.nii.gz"), str(tmp_path / "ct/d.nii.gz")]
    training["training"].append({"ct": "ct/missing.nii.gz"})
    (tmp_path / "bad.json").write_text(json.dumps(training))
    with pytest.raises(FileNotFoundError, match=r"bad.json: training entry 3 \(ct: ct/missing.nii.gz\)"):
        load_datalist(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="broken.json: not a valid JSON"):
        load_datalist(tmp_path / "broken.json")
    (tmp_path / "deep.json").write_text("[" * 100_000)  # was a RecursionError
    with pytest.raises(ValueError, match="deep.json: not a valid JSON datalist \\(nested too deeply\\)"):
        load_datalist(tmp_path / "deep.json")
    (tmp_path / "mronly.json").write_text(json.dumps({"mr": ["mr/a.nii.gz"]}))
    with pytest.raises(ValueError, match="no CT training volume"):
        unpaired_items(tmp_path / "mronly.json")
