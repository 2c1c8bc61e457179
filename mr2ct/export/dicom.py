"""DICOM export of synthetic CT / MR volumes: one series a PACS viewer opens, one file per slice.

A translated volume ``(X, Y, Z)`` with its RAS affine (as NIfTI and :func:`mr2ct.io.readers.read_volume` give
them) becomes a CT Image Storage or MR Image Storage series:

- slices along the third array axis; in a slice, columns follow the first array axis and rows the second.
  The RAS affine is converted to DICOM's LPS (``ImagePositionPatient``, ``ImageOrientationPatient``,
  ``PixelSpacing``, ...). A DICOM slice stack is right-handed (slice normal = row direction x column direction),
  so a left-handed affine (e.g. a radiological ``LAS`` NIfTI) is written with its third axis reversed: the same
  voxels at the same places, read back in that order. Sheared (non-orthogonal) affines are refused.
- CT is stored in HU as int16 (slope 1, intercept 0 when the rounded HU fit); MR as uint16 with a rescale slope and
  intercept from the data range, so values read back within half a rescale step.
- ``ImageType`` is ``DERIVED\\SECONDARY`` and the series description, image comments and derivation description
  say the image is synthetic and not for diagnosis.
- With a DICOM source series (the image the volume was translated from), patient and study identity and the frame
  of reference are kept and the source series is referenced, so the synthetic series lands next to its source.
  ``anonymize`` removes every patient and study identity and every reference to the source instead. Without a
  source the patient is a placeholder (never the file name) unless a name and ID are given.
- Every file passes David Clunie's ``dciodvfy`` without an error (the tests run it): Patient Position (default
  ``HFS``) and Body Part Examined (default ``HEAD``, an unpaired part, so no Laterality) are set. What it still
  warns about, on purpose: MR series carry a Rescale Slope/Intercept (the MR Image IOD has no Modality LUT, but the
  intensities need it to read back; pydicom, ITK and MONAI apply it), and anonymized series have no Study Date
  and Time (needed only to build a DICOMDIR).
- The series is built in a temporary folder beside the output and renamed into place; an existing non-empty output
  folder is refused unless ``overwrite``, and then replaced only once the new series is complete.

Command line (``mr2ct export-dicom``)::

    mr2ct export-dicom sct.nii.gz --output sct_dicom --source-dicom mr_series/
    mr2ct export-dicom translated/ --output dicom/ --source-dicom mr_series_by_case/ --modality CT

With a folder INPUT, every volume ``<case>.nii.gz`` becomes ``OUTPUT/<case>/`` and its source is the DICOM series
folder ``SOURCE/<case>/``.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from monai.utils import convert_to_numpy
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)
from pydicom.valuerep import format_number_as_ds
from tqdm import tqdm

import mr2ct
from mr2ct.export.windows import CT_WINDOWS
from mr2ct.io.atomic import check_apart, replacing_folder
from mr2ct.io.readers import (
    VolumeError,
    dicom_files,
    list_volumes,
    read_volume,
    volume_stem,
)

__all__ = [
    "DEFAULT_BODY_PART",
    "DEFAULT_PATIENT_POSITION",
    "PATIENT_POSITIONS",
    "PLACEHOLDER_PATIENT_NAME",
    "export_dicom",
    "main",
    "write_dicom_series",
]

_SOP_CLASS = {"CT": CTImageStorage, "MR": MRImageStorage}
_FROM = {"CT": "an MR", "MR": "a CT"}
_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])  # RAS <-> LPS
_PATIENT_TAGS = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "PatientSize",
    "PatientWeight",
)
_STUDY_TAGS = (
    "StudyInstanceUID",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "StudyDescription",
    "ReferringPhysicianName",
)
_NOT_FOR_DIAGNOSIS = "NOT FOR DIAGNOSIS"
PLACEHOLDER_PATIENT_NAME = "ANONYMOUS^"
"""PatientName of a series without a source identity (family name ANONYMOUS, in the DICOM PN form)."""
PATIENT_POSITIONS = (
    "HFS",
    "HFP",
    "HFDR",
    "HFDL",
    "FFS",
    "FFP",
    "FFDR",
    "FFDL",
    "LFS",
    "LFP",
    "RFS",
    "RFP",
    "AFDR",
    "AFDL",
    "PFDR",
    "PFDL",
)
"""DICOM's defined terms of Patient Position (head/feet/left/right/anterior/posterior first, supine/prone/...)."""
DEFAULT_PATIENT_POSITION = "HFS"  # head first supine: how head MR and CT are acquired, unless the source says
DEFAULT_BODY_PART = "HEAD"
_ORTHOGONALITY_TOL = 1e-3  # largest |cos| between voxel axes accepted as orthogonal


def _ds(value: float) -> str:
    """``value`` as a DICOM decimal string (at most 16 characters)."""
    return format_number_as_ds(float(value))


def _checked(volume, affine) -> tuple[np.ndarray, np.ndarray]:
    """The volume ``(X, Y, Z)`` and its LPS affine as float64; ``ValueError`` if either cannot be written."""
    if affine is None:
        affine = getattr(volume, "affine", None)
        if affine is None:
            raise ValueError("no affine given and the volume carries none")
    data = convert_to_numpy(volume, dtype=np.float64, wrap_sequence=True)
    if data.ndim == 4 and data.shape[0] == 1:  # channel-first (1, X, Y, Z)
        data = data[0]
    if data.ndim != 3:
        raise ValueError(f"volume is {data.ndim}D (shape {data.shape}), expected a 3D (X, Y, Z) volume")
    if data.size == 0 or max(data.shape[:2]) > 65535:
        raise ValueError(f"volume has shape {data.shape}, which DICOM slices cannot hold")
    bad = int((~np.isfinite(data)).sum())
    if bad:
        raise ValueError(f"volume holds {bad} NaN/Inf voxels")
    affine = convert_to_numpy(affine, dtype=np.float64, wrap_sequence=True)
    if affine.shape != (4, 4) or not np.isfinite(affine).all() or not np.allclose(affine[3], [0, 0, 0, 1]):
        raise ValueError(f"affine must be a finite 4x4 voxel-to-world matrix, got {affine.tolist()}")
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    if spacing.min() <= 0:
        raise ValueError(f"affine has a zero voxel size (spacing {spacing.tolist()})")
    directions = affine[:3, :3] / spacing
    cosines = np.abs(directions.T @ directions - np.eye(3)).max()
    if cosines > _ORTHOGONALITY_TOL:
        raise ValueError(
            f"affine has sheared or non-orthogonal voxel axes (largest |cos| between axes "
            f"{cosines:.3g}); DICOM slices need orthogonal axes: resample the volume first"
        )
    return data, _LPS @ affine


def _rescale(data: np.ndarray, modality: str) -> tuple[np.ndarray, float, float]:
    """Stored integers (int16 for CT, uint16 for MR), slope and intercept: ``data ~ slope * stored + intercept``.

    Integer values that fit the type are stored as they are (CT is rounded to whole HU first); otherwise the data
    range is spread over the type's range, less a step at each end so that the decimal-string rounding of slope
    and intercept cannot push a value out of it. The stored values are computed from the written (rounded) slope
    and intercept, so every value reads back within half a step.
    """
    dtype = np.int16 if modality == "CT" else np.uint16
    info = np.iinfo(dtype)
    values = np.rint(data) if modality == "CT" else data
    if np.array_equal(values, np.rint(values)) and info.min <= values.min() and values.max() <= info.max:
        return values.astype(dtype), 1.0, 0.0
    lo, hi = float(data.min()), float(data.max())
    slope = float(_ds((hi - lo) / (info.max - info.min - 2))) if hi > lo else 1.0
    intercept = float(_ds(lo - (info.min + 1) * slope))
    stored = np.clip(np.rint((data - intercept) / slope), info.min, info.max)
    return stored.astype(dtype), slope, intercept


def _check_output(output_dir: Path, overwrite: bool) -> None:
    """Refuse a file, or an existing non-empty folder unless ``overwrite`` (before any work)."""
    if output_dir.exists() and not output_dir.is_dir():
        raise FileExistsError(f"{output_dir}: is a file, expected an output folder")
    if not overwrite and output_dir.is_dir() and any(output_dir.iterdir()):
        raise FileExistsError(f"{output_dir}: already exists and is not empty (overwrite to replace it)")


def _source_series(source: Path) -> list[Dataset] | None:
    """Headers of the DICOM series ``source`` (its folder or one of its files), or None for a volume file."""
    if not source.exists():
        raise FileNotFoundError(f"{source}: source image does not exist")
    if source.is_file() and volume_stem(source) != source.name:  # NIfTI, NRRD, MetaImage: not DICOM
        return None
    folder = source if source.is_dir() else source.parent
    files = dicom_files(folder) if source.is_dir() else [source] + [f for f in dicom_files(folder) if f != source]
    if not files:
        raise VolumeError(source, "is a folder without DICOM files (expected the source DICOM series)")
    headers: list[Dataset] = []
    for f in files:
        try:
            headers.append(pydicom.dcmread(f, stop_before_pixels=True))
        except Exception as e:  # any reader failure is a bad source
            raise VolumeError(f, f"is not a readable DICOM file ({type(e).__name__}: {e})") from e
    series = {str(h.get("SeriesInstanceUID", "")) for h in headers}
    if source.is_file():  # the series of that file
        uid = str(headers[0].get("SeriesInstanceUID", ""))
        headers = [h for h in headers if str(h.get("SeriesInstanceUID", "")) == uid]
    elif len(series) > 1:
        raise VolumeError(source, f"holds {len(series)} DICOM series; pass the folder (or a file) of one series")
    return headers


def _identity(
    ds: Dataset,
    headers: list[Dataset] | None,
    anonymize: bool,
    now: datetime.datetime,
    patient: tuple[str | None, str | None],
) -> None:
    """Patient, study, frame of reference and source references of the series (see :func:`write_dicom_series`)."""
    src = headers[0] if headers and not anonymize else None
    ds.StudyInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    pseudonym = hashlib.sha256(ds.StudyInstanceUID.encode()).hexdigest()[:8].upper()
    for tag in ("AccessionNumber", "ReferringPhysicianName", "PatientBirthDate", "PatientSex"):
        setattr(ds, tag, "")
    ds.StudyID = pseudonym
    ds.PatientName, ds.PatientID = PLACEHOLDER_PATIENT_NAME, f"ANON-{pseudonym}"
    if anonymize:
        ds.StudyDate = ds.StudyTime = ""
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = "mr2ct: identity, dates, source references removed"
        ds.LongitudinalTemporalInformationModified = "REMOVED"
        return
    ds.StudyDate, ds.StudyTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.SeriesDate = ds.ContentDate = ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.SeriesTime = ds.ContentTime = ds.InstanceCreationTime = now.strftime("%H%M%S")
    if src is not None and headers:
        for tag in (*_PATIENT_TAGS, *_STUDY_TAGS, "FrameOfReferenceUID", "PositionReferenceIndicator"):
            if tag in src:
                setattr(ds, tag, src[tag].value)

        def instances(headers: list[Dataset] = headers) -> list[Dataset]:
            items = [Dataset() for _ in headers]
            for item, h in zip(items, headers):
                item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = h.SOPClassUID, h.SOPInstanceUID
            return items

        ds.SourceImageSequence = instances()  # General Image: the images this one is derived from
        refs = Dataset()  # Common Instance Reference: the series of those images
        refs.SeriesInstanceUID = src.SeriesInstanceUID
        refs.ReferencedInstanceSequence = instances()
        ds.ReferencedSeriesSequence = [refs]
    name, patient_id = patient
    if name is not None:
        ds.PatientName = name
    if patient_id is not None:
        ds.PatientID = patient_id


def _position(ds: Dataset, headers: list[Dataset] | None, patient_position: str | None, body_part: str | None) -> None:
    """Patient Position, Body Part Examined and Laterality (General Series), which are no identity: given, else the
    source's, else head first supine and ``HEAD``; Laterality only as the source has it (a head is unpaired)."""
    src = headers[0] if headers else Dataset()
    ds.PatientPosition = patient_position or str(src.get("PatientPosition", "") or DEFAULT_PATIENT_POSITION)
    ds.BodyPartExamined = (body_part or str(src.get("BodyPartExamined", "") or DEFAULT_BODY_PART)).upper()[:16]
    if str(src.get("Laterality", "")):
        ds.Laterality = src.Laterality


def _image_tags(
    ds: Dataset, data: np.ndarray, stored: np.ndarray, lps: np.ndarray, slope: float, intercept: float
) -> None:
    """Image plane (except the per-slice position), pixel format, rescale and window tags of every slice."""
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    directions = lps[:3, :3] / spacing
    ds.ImageOrientationPatient = [_ds(v) for v in directions[:, :2].T.ravel()]
    ds.PixelSpacing = [_ds(spacing[1]), _ds(spacing[0])]  # between rows (array axis 1), between columns (axis 0)
    ds.SliceThickness = ds.SpacingBetweenSlices = _ds(spacing[2])
    ds.Rows, ds.Columns = data.shape[1], data.shape[0]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if stored.dtype == np.int16 else 0
    ds.RescaleIntercept, ds.RescaleSlope = _ds(intercept), _ds(slope)
    if ds.Modality == "CT":
        ds.RescaleType = "HU"
        ds.WindowCenter = [_ds(level) for level, _ in CT_WINDOWS.values()]
        ds.WindowWidth = [_ds(width) for _, width in CT_WINDOWS.values()]
        ds.WindowCenterWidthExplanation = [name.upper() for name in CT_WINDOWS]
        ds.KVP = ds.AcquisitionNumber = ""
    else:
        lo, hi = float(data.min()), float(data.max())
        ds.WindowCenter, ds.WindowWidth = _ds((lo + hi) / 2), _ds(max(hi - lo, 1.0))
        ds.ScanningSequence, ds.SequenceVariant, ds.MRAcquisitionType = "RM", "NONE", "3D"
        ds.ScanOptions = ds.EchoTime = ds.EchoTrainLength = ds.RepetitionTime = ""


def _dcmwrite(path: Path, ds: Dataset) -> None:
    """Write ``ds`` as a DICOM file (preamble and file meta) with pydicom 2.4 or 3.x."""
    if int(pydicom.__version__.split(".")[0]) >= 3:
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
    else:
        pydicom.dcmwrite(path, ds, write_like_original=False)


def write_dicom_series(
    volume,
    affine,
    output_dir: str | os.PathLike,
    *,
    modality: str = "CT",
    source: str | os.PathLike | None = None,
    anonymize: bool = False,
    series_description: str | None = None,
    series_number: int | None = None,
    patient_name: str | None = None,
    patient_id: str | None = None,
    patient_position: str | None = None,
    body_part: str | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write a synthetic ``volume`` as a DICOM series in ``output_dir``, one file per slice; return the files.

    Args:
        volume: ``(X, Y, Z)`` (or ``(1, X, Y, Z)``) array or tensor: HU for CT, any intensities for MR.
        affine: RAS voxel-to-world 4x4 (as in NIfTI; MONAI's convention); None uses the MetaTensor's own.
        output_dir: folder of the series (created; its parent too).
        modality: ``"CT"`` (CT Image Storage, int16 HU) or ``"MR"`` (MR Image Storage, uint16 and a rescale).
        source: the image the volume was translated from. A DICOM series (its folder or one of its files):
            patient and study identity and the frame of reference are kept and the series references the source
            instances. Another file (NIfTI, ...) or None: a fresh study and a placeholder patient
            (:data:`PLACEHOLDER_PATIENT_NAME`, ``PatientID`` ``ANON-`` and a random pseudonym), never a name taken
            from a file name.
        anonymize: no patient or study identity, no dates, no reference to the source; a fresh study and frame of
            reference, the placeholder patient, ``PatientIdentityRemoved``.
        series_description: default ``"SYNTHETIC CT (mr2ct) - NOT FOR DIAGNOSIS"``; a given one gets
            ``" - NOT FOR DIAGNOSIS"`` appended unless it says so.
        series_number: default the source series' number + 1000 (sorts after it), or 1000.
        patient_name, patient_id: the patient's name (DICOM form ``Family^Given``) and ID, instead of the
            source's or the placeholder (not with ``anonymize``).
        patient_position: one of :data:`PATIENT_POSITIONS`; default the source's, else ``HFS``.
        body_part: ``BodyPartExamined``; default the source's, else ``HEAD``.
        overwrite: replace an existing non-empty ``output_dir`` (only once the new series is complete).

    Raises:
        ValueError: an unknown modality or patient position, a patient name or ID with ``anonymize``, a volume
            that is not 3D or holds NaN/Inf, a sheared or invalid affine, or an output folder that is, holds or
            lies in the source.
        FileExistsError: ``output_dir`` exists and is not empty (without ``overwrite``), or is a file.
        FileNotFoundError, VolumeError: a missing or unreadable source.
    """
    modality = modality.upper()
    if modality not in _SOP_CLASS:
        raise ValueError(f"modality must be 'CT' or 'MR', got {modality!r}")
    if patient_position is not None and patient_position not in PATIENT_POSITIONS:
        raise ValueError(f"patient_position must be one of {', '.join(PATIENT_POSITIONS)}, got {patient_position!r}")
    if anonymize and (patient_name is not None or patient_id is not None):
        raise ValueError("a patient name or ID contradicts anonymize")
    data, lps = _checked(volume, affine)
    output_dir = Path(output_dir)
    _check_output(output_dir, overwrite)
    source = Path(source) if source is not None else None
    headers = _source_series(source) if source is not None else None
    if np.linalg.det(lps[:3, :3]) < 0:  # left-handed: reverse the slices (same voxels, same places)
        data = data[:, :, ::-1]
        lps = lps @ np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, -1, data.shape[2] - 1], [0, 0, 0, 1]])
    stored, slope, intercept = _rescale(data, modality)
    directions = lps[:3, :3] / np.linalg.norm(lps[:3, :3], axis=0)
    now = datetime.datetime.now()

    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = _SOP_CLASS[modality]
    ds.Modality = modality
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"] if modality == "CT" else ["DERIVED", "SECONDARY", "OTHER"]
    _identity(ds, headers, anonymize, now, (patient_name, patient_id))
    _position(ds, headers, patient_position, body_part)
    ds.SeriesInstanceUID = generate_uid()
    src_number = headers[0].get("SeriesNumber") if headers and not anonymize else None
    ds.SeriesNumber = series_number if series_number is not None else int(src_number or 0) + 1000
    description = series_description or f"SYNTHETIC {modality} (mr2ct)"
    if _NOT_FOR_DIAGNOSIS not in description[:64].upper():
        description = description[: 64 - len(_NOT_FOR_DIAGNOSIS) - 3] + f" - {_NOT_FOR_DIAGNOSIS}"
    ds.SeriesDescription = description[:64]
    text = (
        f"Synthetic {modality} computed by mr2ct {mr2ct.__version__} from {_FROM[modality]} image "
        f"(CycleGAN translation); not an acquired image. {_NOT_FOR_DIAGNOSIS}."
    )
    ds.ImageComments = ds.DerivationDescription = text
    ds.Manufacturer = ds.ManufacturerModelName = "mr2ct"
    ds.SoftwareVersions = mr2ct.__version__
    ds.BurnedInAnnotation = "NO"
    if "PositionReferenceIndicator" not in ds:
        ds.PositionReferenceIndicator = ""
    _image_tags(ds, data, stored, lps, slope, intercept)

    width = max(4, len(str(data.shape[2])))
    names = []
    with replacing_folder(output_dir, overwrite=overwrite, inputs={"source": source if headers else None}) as tmp:
        for k in range(data.shape[2]):
            position = lps[:3] @ np.array([0.0, 0.0, k, 1.0])
            sl = Dataset()
            sl.update(ds)
            sl.SOPInstanceUID = generate_uid()
            sl.InstanceNumber = k + 1
            sl.ImagePositionPatient = [_ds(v) for v in position]
            sl.SliceLocation = _ds(position @ directions[:, 2])
            sl.PixelData = np.ascontiguousarray(stored[:, :, k].T).astype(stored.dtype.newbyteorder("<")).tobytes()
            sl.file_meta = FileMetaDataset()
            sl.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
            sl.file_meta.MediaStorageSOPInstanceUID = sl.SOPInstanceUID
            sl.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            sl.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
            names.append(f"{modality}{k + 1:0{width}d}.dcm")
            _dcmwrite(tmp / names[-1], sl)
    return [output_dir / name for name in names]


def export_dicom(
    input_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    modality: str = "CT",
    source_dicom: str | os.PathLike | None = None,
    anonymize: bool = False,
    overwrite: bool = False,
    **tags: str | None,
) -> list[Path]:
    """Read a translated volume (any format :func:`~mr2ct.io.readers.read_volume` reads) and write its series.

    Args:
        input_path: the synthetic volume (NIfTI, NRRD, MetaImage, or a DICOM series folder).
        output_dir: folder of the series; must not be, hold or lie in ``input_path`` or ``source_dicom``.
        modality: ``"CT"`` or ``"MR"``: what the volume is.
        source_dicom: the DICOM series the volume was translated from (see ``source`` of
            :func:`write_dicom_series`); without it the patient is a placeholder, whatever the file is called.
        anonymize: remove patient and study identity (see :func:`write_dicom_series`).
        overwrite: replace an existing non-empty ``output_dir``.
        tags: ``patient_name``, ``patient_id``, ``patient_position``, ``body_part`` of :func:`write_dicom_series`.

    Raises:
        VolumeError: the input is missing, unreadable, not 3D, holds NaN/Inf or has a sheared affine (the message
            names it), or the source series is unreadable.
        FileExistsError, FileNotFoundError, ValueError: see :func:`write_dicom_series`.
    """
    input_path, output_dir = Path(input_path), Path(output_dir)
    check_apart(output_dir, {"input": input_path, "source": Path(source_dicom) if source_dicom is not None else None})
    volume = read_volume(input_path)
    try:
        _checked(volume, volume.affine)
    except ValueError as e:
        raise VolumeError(input_path, str(e)) from e
    return write_dicom_series(
        volume,
        volume.affine,
        output_dir,
        modality=modality,
        source=source_dicom if source_dicom is not None else input_path,
        anonymize=anonymize,
        overwrite=overwrite,
        **tags,  # type: ignore[arg-type]  # the str-valued tags of write_dicom_series
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mr2ct export-dicom",
        description=(
            "Write synthetic CT/MR volumes as DICOM series (one file per slice, marked NOT FOR DIAGNOSIS). INPUT is a "
            "volume file, or a folder of them: then each volume <case> is written to OUTPUT/<case>/ and, with "
            "--source-dicom, its source is the DICOM series folder SOURCE/<case>/."
        ),
    )
    p.add_argument("input", metavar="INPUT", help="translated volume (NIfTI, NRRD, MHA) or a folder of them")
    p.add_argument(
        "--output", required=True, metavar="DIR", help="output series folder (a folder of series for a folder INPUT)"
    )
    p.add_argument("--modality", type=str.upper, choices=sorted(_SOP_CLASS), default="CT", help="what the volumes are")
    p.add_argument(
        "--source-dicom",
        default=None,
        metavar="DIR",
        help=(
            "DICOM series folder the volume was translated from (patient, study and frame of reference are kept); "
            "for a folder INPUT, a folder holding one series folder per case, named like the volumes"
        ),
    )
    p.add_argument("--anonymize", action="store_true", help="remove patient and study identity and dates")
    p.add_argument(
        "--patient-name",
        metavar="FAMILY^GIVEN",
        help=(
            f"patient name of the series (one volume only); without it and without --source-dicom the patient is the "
            f"placeholder {PLACEHOLDER_PATIENT_NAME!r}: the file name is never taken for a patient"
        ),
    )
    p.add_argument(
        "--patient-id",
        metavar="ID",
        help=(
            "patient ID of the series (one volume only); without it and without --source-dicom a random pseudonym "
            "ANON-XXXXXXXX"
        ),
    )
    p.add_argument(
        "--patient-position",
        choices=PATIENT_POSITIONS,
        help=(
            f"Patient Position, which planning systems rely on (default: the source series', else "
            f"{DEFAULT_PATIENT_POSITION}, head first supine)"
        ),
    )
    p.add_argument(
        "--body-part",
        metavar="PART",
        help=(f"Body Part Examined (default: the source series', else {DEFAULT_BODY_PART})"),
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing non-empty output folders")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of :func:`export_dicom`; errors exit with ``mr2ct export-dicom: <file>: <problem>``."""
    args = _parser().parse_args(argv)
    input_path, output = Path(args.input), Path(args.output)
    source = Path(args.source_dicom) if args.source_dicom else None
    try:
        if not input_path.exists():
            raise FileNotFoundError(f"{input_path}: does not exist")
        if input_path.is_file() or dicom_files(input_path):  # one volume (a file or a DICOM series folder)
            jobs = [(input_path, output, source)]
        elif args.patient_name is not None or args.patient_id is not None:
            raise ValueError(f"{input_path}: --patient-name and --patient-id name one patient: give one volume")
        else:
            check_apart(output, {"input": input_path, "source": source})
            jobs = [
                (p, output / volume_stem(p), source / volume_stem(p) if source else None)
                for p in list_volumes(input_path)
                if not volume_stem(p).endswith("_uncertainty")
            ]  # confidence maps beside translations: not CTs
            for p, out, src in jobs:
                if src is not None and not (src.is_dir() and dicom_files(src)):
                    raise FileNotFoundError(f"{p}: no source DICOM series folder {src} for this volume")
                _check_output(out, args.overwrite)
        for p, out, src in tqdm(jobs, desc="export-dicom", unit="volume", disable=len(jobs) == 1):
            export_dicom(
                p,
                out,
                modality=args.modality,
                source_dicom=src,
                anonymize=args.anonymize,
                overwrite=args.overwrite,
                patient_name=args.patient_name,
                patient_id=args.patient_id,
                patient_position=args.patient_position,
                body_part=args.body_part,
            )
    except (OSError, ValueError) as e:
        raise SystemExit(f"mr2ct export-dicom: {e}") from None
    print(f"wrote {len(jobs)} DICOM series to {output}")
    return 0
