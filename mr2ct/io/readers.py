"""Reading MR / CT volumes (NIfTI, NRRD, MetaImage, DICOM series folders) with errors that name the file.

Every reader is MONAI's (``LoadImage`` with ``NibabelReader``, ``ITKReader`` or ``PydicomReader``), so the
returned :class:`monai.data.MetaTensor` carries MONAI's affine convention: RAS world coordinates (MONAI converts
the LPS geometry of ITK and DICOM to RAS), voxel axes ``(X, Y, Z)`` in file order. What is ours is the checking
around it: a missing, truncated or corrupt file, a folder with no DICOM or with several series, a 2D or 4D
image, an empty image or NaN/Inf voxels all become a :class:`VolumeError` saying ``"<path>: <what is wrong>"``,
so a data set with one bad case fails with a line a user can act on instead of a reader's stack trace.
"""

from __future__ import annotations

import json
import locale
import logging
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from monai.data import ITKReader, MetaTensor, NibabelReader, PydicomReader, load_decathlon_datalist
from monai.transforms import LoadImage
from monai.utils import MetaKeys, OptionalImportError

from mr2ct.io.volume_size import DICOM_SIZE_TAGS, SizeError, check_dicom_size, check_header_size

__all__ = [
    "VOLUME_SUFFIXES",
    "VolumeError",
    "check_volume",
    "dicom_files",
    "list_volumes",
    "load_datalist",
    "read_volume",
    "reader_for",
    "unpaired_items",
    "volume_stem",
]

logger = logging.getLogger(__name__)

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
_READER_BY_SUFFIX = {
    ".nii": "NibabelReader",
    ".nii.gz": "NibabelReader",
    ".nrrd": "ITKReader",
    ".nhdr": "ITKReader",
    ".mha": "ITKReader",
    ".mhd": "ITKReader",
}
_READERS = {"NibabelReader": NibabelReader, "ITKReader": ITKReader, "PydicomReader": PydicomReader}
_DATALIST_PATH_KEYS = ("mr", "ct", "mask", "image", "label")


class VolumeError(ValueError):
    """A volume that cannot be used, with the file and the reason: ``str(err) == f"{path}: {reason}"``.

    Args:
        path: the file or DICOM folder (or a name standing for it, such as a dictionary key).
        reason: what is wrong, in plain words.
    """

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # keep (path, reason) through pickling, e.g. out of a DataLoader worker
        return type(self), (self.path, self.reason)


def _suffix(path: Path) -> str:
    """The volume suffix of ``path`` (``.nii.gz`` counts as one), lower case; ``""`` if it has none we know."""
    name = path.name.lower()
    return next((s for s in sorted(VOLUME_SUFFIXES, key=len, reverse=True) if name.endswith(s)), "")


def volume_stem(path: str | os.PathLike) -> str:
    """File name without its volume suffix (``case1.nii.gz`` -> ``case1``); a folder's name for a folder."""
    path = Path(path)
    suffix = _suffix(path)
    return path.name[: len(path.name) - len(suffix)] if suffix else path.name


def reader_for(path: str | os.PathLike) -> str:
    """Name of the MONAI reader for ``path``: a folder is a DICOM series (``PydicomReader``), ``.nii``/``.nii.gz``
    use ``NibabelReader`` and ``.nrrd``/``.nhdr``/``.mha``/``.mhd`` use ``ITKReader``.

    Raises:
        VolumeError: for any other kind of path (a single DICOM file included: pass its series folder).
    """
    path = Path(path)
    if path.is_dir():
        return "PydicomReader"
    suffix = _suffix(path)
    if suffix:
        return _READER_BY_SUFFIX[suffix]
    if path.name.lower().endswith(".dcm"):
        raise VolumeError(path, "is a single DICOM file; pass the folder that holds the whole series")
    raise VolumeError(path, f"not a supported volume (a DICOM series folder or {', '.join(VOLUME_SUFFIXES)})")


def _is_dicom_file(path: Path) -> bool:
    """A regular file with the ``.dcm`` suffix or the DICOM preamble (``DICM`` at byte offset 128).

    Only regular files are opened: reading a named pipe or a device would block.
    """
    if not path.is_file():
        return False
    if path.name.lower().endswith(".dcm"):
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def dicom_files(folder: str | os.PathLike) -> list[Path]:
    """DICOM files directly inside ``folder`` (sorted; hidden files and sub-folders skipped)."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.is_file() and _is_dicom_file(p))


def _short(exc: BaseException, limit: int = 200) -> str:
    """The gist of a reader's exception: its last non-empty line (MONAI appends whole tracebacks), shortened."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    itk = [line.split("): ", 1)[-1] for line in lines if "ITK ERROR" in line]  # ITK adds a stale errno line
    nrrd = [line.split(": ", 1)[-1] for line in lines if line.startswith("[nrrd]")]  # its last line says why
    if itk and nrrd:
        itk[0] = f"{itk[0]} {nrrd[-1]}"
    if len(lines) > 1 and lines[-1].startswith("-"):  # a continuation (nibabel: "Expected 420 bytes...\n - could...")
        lines[-2:] = [" ".join(lines[-2:])]
    text = itk[0] if itk else lines[-1] if lines else type(exc).__name__
    if not lines or len(text) < 8:
        text = f"{type(exc).__name__}: {text}" if lines else text
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_volume(array, path: str | os.PathLike, *, allow_constant: bool = False, channels: int | None = None) -> None:
    """Check that ``array`` is one usable 3D volume; raise :class:`VolumeError` naming ``path`` if not.

    Args:
        array: numpy array or tensor, ``(X, Y, Z)``; or ``(C, X, Y, Z)`` when ``channels`` is given.
        path: the file the array came from (only used in the message).
        allow_constant: accept a volume whose voxels are all equal (rejected by default: nothing to learn).
        channels: expect channel-first data with exactly this many channels.

    Raises:
        VolumeError: empty (a zero-size axis), 2D (fewer than 3 spatial axes, or a spatial axis of size 1),
            more than 3 spatial axes, the wrong number of channels, NaN/Inf voxels, or (unless allowed) constant.
    """
    shape = tuple(int(s) for s in array.shape)
    if channels is not None:
        if len(shape) < 4:
            raise VolumeError(path, f"is {len(shape) - 1}D (shape {shape[1:]}), expected a 3D volume")
        if len(shape) > 4:
            raise VolumeError(path, f"is {len(shape) - 1}D (shape {shape[1:]}), expected one 3D volume")
        if shape[0] != channels:
            raise VolumeError(path, f"has {shape[0]} channels (shape {shape}), expected {channels}")
    spatial = shape[1:] if channels is not None else shape
    if not shape or 0 in shape:
        raise VolumeError(path, f"is empty (shape {shape})")
    if len(spatial) > 3:
        raise VolumeError(path, f"is {len(spatial)}D (shape {shape}), expected one 3D volume")
    if len(spatial) < 3 or min(spatial) == 1:
        raise VolumeError(path, f"is 2D (shape {shape}), expected a 3D volume")
    t = torch.as_tensor(array.as_tensor() if isinstance(array, MetaTensor) else array)
    if t.is_floating_point():
        bad = int((~torch.isfinite(t)).sum())
        if bad:
            raise VolumeError(path, f"holds {bad} NaN/Inf voxels")
    if not allow_constant and bool(t.min() == t.max()):
        raise VolumeError(path, f"is constant (every voxel is {float(t.min()):g})")


def _check_metaimage_header(path: Path) -> None:
    """Refuse a MetaImage header whose ``NDims`` is not a positive integer before ITK reads it: ITK's MetaIO hangs
    or crashes the process on a negative one (found by fuzzing), which no ``try`` can catch."""
    with open(path, "rb") as f:
        header = f.read(65536).decode("latin-1")
    for line in header.splitlines():
        key, _, value = (part.strip() for part in line.partition("="))
        if key.lower() == "ndims" and not (value.isascii() and value.isdigit() and int(value) > 0):
            raise VolumeError(path, f"has an invalid MetaImage header (NDims = {value[:20]!r})")
        if key.lower() == "elementdatafile":  # the data follow
            return


def _slice_positions(folder: Path, headers: Sequence) -> np.ndarray:
    """Position of every slice along the normal of the first slice's ``ImageOrientationPatient`` (mm).

    Raises:
        VolumeError: orientation or position tags that are not 6 / 3 finite numbers, or a degenerate orientation.
    """
    try:
        orient = np.asarray(headers[0].ImageOrientationPatient, dtype=float)
        normal = np.cross(orient[:3], orient[3:]) if orient.shape == (6,) else np.zeros(3)
        position = np.array([float(np.dot(np.asarray(h.ImagePositionPatient, dtype=float), normal)) for h in headers])
    except (TypeError, ValueError) as e:  # values that are not numbers, or not 3 of them
        reason = f"has unreadable ImagePositionPatient/ImageOrientationPatient values ({_short(e)})"
        raise VolumeError(folder, reason) from None  # see read_volume
    if not np.linalg.norm(normal) > 1e-3 or not np.all(np.isfinite(position)):
        raise VolumeError(
            folder,
            f"has an invalid ImageOrientationPatient ({orient.tolist()}) or non-finite ImagePositionPatient values",
        )
    return position


def _check_dicom_series(folder: Path, files: Sequence[Path], max_bytes: int | None = None) -> str:
    """Check that ``files`` form one DICOM series with a usable slice geometry; return the reader to use.

    ``PydicomReader`` stacks every file of the folder in ``InstanceNumber`` order and takes the slice step from
    the first and last slices, so it would silently mix two series or misplace slices; this catches those cases.
    Returns ``"PydicomReader"``, or ``"ITKReader"`` (which sorts by position) when ``InstanceNumber`` is missing
    or does not increase with the slice position, so that every series reads with its slices in increasing
    position along the slice normal, as ITK orders them.
    """
    import pydicom  # noqa: PLC0415 - only needed for DICOM folders

    tags = ["SeriesInstanceUID", "InstanceNumber", "ImagePositionPatient", "ImageOrientationPatient", *DICOM_SIZE_TAGS]
    headers = []
    for f in files:
        try:
            headers.append(pydicom.dcmread(f, stop_before_pixels=True, specific_tags=tags))
        except Exception as e:  # noqa: BLE001 - any reader failure is a bad file
            raise VolumeError(f, f"is not a readable DICOM file ({_short(e)})") from None  # see read_volume
    uids = sorted({str(h.get("SeriesInstanceUID", "")) for h in headers})
    if len(uids) > 1:
        shown = ", ".join(uids[:3]) + (", ..." if len(uids) > 3 else "")
        raise VolumeError(
            folder,
            f"holds {len(uids)} DICOM series (SeriesInstanceUIDs {shown}), expected one; "
            "put each series in its own folder",
        )
    try:
        check_dicom_size(folder, files, headers, max_bytes)  # before a reader allocates what the headers promise
    except SizeError as e:
        raise VolumeError(e.path, e.reason) from None
    if len(headers) == 1:  # a single (possibly multi-frame) file: MONAI's reader handles its geometry
        return "PydicomReader"
    if any("ImagePositionPatient" not in h or "ImageOrientationPatient" not in h for h in headers):
        raise VolumeError(
            folder,
            "has slices without ImagePositionPatient/ImageOrientationPatient, so the volume's geometry is unknown",
        )
    position = _slice_positions(folder, headers)
    steps = np.diff(np.sort(position))
    if np.any(steps < 1e-3):
        raise VolumeError(
            folder,
            f"has {int(np.sum(steps < 1e-3))} slice(s) at duplicate positions (several acquisitions in one series?)",
        )
    if steps.max() - steps.min() > 0.05 * steps.mean() + 1e-3:
        raise VolumeError(
            folder, f"has uneven slice spacing ({steps.min():.3g} to {steps.max():.3g} mm): missing slices?"
        )
    try:
        numbers = [int(h.InstanceNumber) for h in headers]
    except (AttributeError, TypeError, ValueError):  # missing, empty or not a number
        logger.info(f"{folder}: slices lack a valid InstanceNumber; reading with ITKReader, which sorts by position.")
        return "ITKReader"
    by_number = position[np.argsort(numbers, kind="stable")]
    if not np.all(np.diff(by_number) > 0):  # PydicomReader stacks by InstanceNumber; ITK sorts by position
        logger.info(f"{folder}: InstanceNumber order differs from slice positions; reading with ITKReader.")
        return "ITKReader"
    return "PydicomReader"


@lru_cache(maxsize=1)
def _loader() -> LoadImage:
    """One ``LoadImage`` for the process (building one registers every reader); readers are given per call."""
    return LoadImage(image_only=True)


@contextmanager
def _kept_locale() -> Iterator[None]:
    """Put the process locale back if a reader changed it (ITK's GDCM switches it to "C"), after which Python
    would open text files as ASCII (torch.compile's templates, for one, would fail to load)."""
    saved = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        if locale.setlocale(locale.LC_ALL) != saved:
            locale.setlocale(locale.LC_ALL, saved)


def read_volume(path: str | os.PathLike, channels: int = 1, max_bytes: int | None = None) -> MetaTensor:
    """Read one 3D volume (NIfTI, NRRD, MetaImage file or DICOM series folder) as an ``(X, Y, Z)`` MetaTensor
    (``(X, Y, Z, C)`` for several channels).

    The reader is chosen by :func:`reader_for` and run through MONAI's ``LoadImage`` (float32 voxels, RAS
    affine in ``.affine``, the path in ``.meta["filename_or_obj"]``). A trailing singleton 4th axis is dropped.
    Constant volumes are accepted here (see :func:`check_volume`). As with ``LoadImage``, the meta data's
    ``original_channel_dim`` tells MONAI's ``EnsureChannelFirst`` where the channels are.

    Args:
        path: a volume file or a folder holding one DICOM series.
        channels: the number of channels expected; with more than one, the volume is read as ``(X, Y, Z, C)``
            (a 4D NIfTI or a vector image whose last axis holds exactly ``channels`` values, e.g. RGB videos).
        max_bytes: the most data a header may promise (default :func:`~mr2ct.io.volume_size.max_volume_bytes`);
            a header promising more, or more than the file can hold, is refused before anything is allocated.

    Raises:
        VolumeError: the file is missing, unsupported, unreadable (corrupt, truncated, not what its suffix says),
            too large for its file or the limit, a folder without DICOM files or with several series, 2D, 4D with
            several volumes, empty, holds
            NaN/Inf voxels, or has the wrong number of channels; the message names the file.
    """
    path = Path(path)
    if not path.exists():
        raise VolumeError(path, "does not exist")
    name = reader_for(path)
    kwargs = {}
    if path.is_dir():
        files = dicom_files(path)
        if not files:
            raise VolumeError(path, "is a folder without DICOM files (expected one DICOM series)")
        name = _check_dicom_series(path, files, max_bytes)
        if name == "PydicomReader":  # only the DICOM files: the reader would otherwise try every entry
            kwargs["fname_regex"] = "(?:" + "|".join(re.escape(os.path.join(str(path), f.name)) for f in files) + r")\Z"
    elif not path.is_file():
        raise VolumeError(path, "is not a regular file (a pipe or a device?)")
    else:
        if _suffix(path) in (".mha", ".mhd"):
            _check_metaimage_header(path)
        try:
            check_header_size(path, max_bytes)
        except SizeError as e:
            raise VolumeError(e.path, e.reason) from None
    try:
        reader = _READERS[name](**kwargs)
    except OptionalImportError as e:
        raise ImportError(
            f"reading {path} needs {name}'s package: pip install itk-io (ITKReader) or pydicom (PydicomReader) ({e})."
        ) from e
    try:
        with _kept_locale():
            img = _loader()(str(path), reader=reader)
    except VolumeError:
        raise
    except Exception as e:  # noqa: BLE001 - every reader failure becomes one clear error
        kind = "DICOM series" if path.is_dir() else "volume"
        # "from None": the message carries the reader's gist, so whoever reports the root cause of a chain (MONAI
        # wraps transform errors, SkipFailuresDataset unwraps them) reports ours; the reader's error stays in
        # __context__ for debugging
        raise VolumeError(path, f"cannot be read as a {kind} (corrupt or truncated?): {_short(e)}") from None
    if not isinstance(img, MetaTensor):  # track_meta disabled by the caller
        img = MetaTensor(img)
    shape = tuple(img.shape)
    if img.numel() == 0:
        header_shape = tuple(int(v) for v in img.meta.get("spatial_shape", shape))
        raise VolumeError(path, f"is empty (shape {header_shape})")
    if channels > 1:
        check_volume(img.movedim(-1, 0) if img.ndim == 4 else img[None], path, allow_constant=True, channels=channels)
        img.meta[MetaKeys.ORIGINAL_CHANNEL_DIM] = -1
    else:
        while img.ndim > 3 and img.shape[-1] == 1:  # (X, Y, Z, 1): one volume stored as 4D
            img = MetaTensor(img.as_tensor()[..., 0], meta=img.meta)  # the meta holds the affine
        if img.ndim == 4:
            raise VolumeError(
                path,
                f"is 4D (shape {shape}), expected one 3D volume ({shape[-1]} volumes or channels along the 4th axis)",
            )
        check_volume(img, path, allow_constant=True)
        img.meta[MetaKeys.ORIGINAL_CHANNEL_DIM] = "no_channel"  # the reader's -1 would move the Z axis first
    img.meta["spatial_shape"] = np.asarray(img.shape[:3])
    return img


def _volume_entries(folder: Path) -> tuple[list[Path], list[Path]]:
    """(volumes, ignored files) directly in ``folder``: volume files, DICOM series sub-folders, other files."""
    volumes, ignored = [], []
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_dir():
            if dicom_files(p):
                volumes.append(p)
        elif _suffix(p):
            volumes.append(p)
        else:
            ignored.append(p)
    return volumes, ignored


def _warn_ignored(folder: Path, ignored: Sequence[Path]) -> None:
    if ignored:
        names = ", ".join(str(p.relative_to(folder)) for p in ignored[:5]) + (", ..." if len(ignored) > 5 else "")
        logger.warning(f"{folder}: ignored {len(ignored)} file(s) that are not volumes: {names}")


def list_volumes(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Volumes in ``folder``: volume files (by suffix) and DICOM series sub-folders, sorted, hidden entries skipped.

    A folder that itself holds DICOM files is one series: ``[folder]`` is returned. Other files (``README.txt``)
    are ignored with a warning.

    Args:
        folder: the folder to list.
        recursive: walk every sub-folder (e.g. TCIA's ``patient/study/series`` layout): every folder holding
            DICOM files is a series, and volume files at any depth count.

    Raises:
        FileNotFoundError: ``folder`` does not exist or is not a folder.
        VolumeError: it holds no volume.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder}: folder does not exist"
            if not folder.exists()
            else f"{folder}: is a file, expected a folder of volumes"
        )
    if dicom_files(folder):
        return [folder]
    if not recursive:
        volumes, ignored = _volume_entries(folder)
    else:
        volumes, ignored = [], []
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            root_p = Path(root)
            paths = [root_p / f for f in sorted(files) if not f.startswith(".")]
            if any(_is_dicom_file(p) for p in paths if not _suffix(p)):
                volumes.append(root_p)
                ignored += [p for p in paths if not _suffix(p) and not _is_dicom_file(p)]
            else:
                ignored += [p for p in paths if not _suffix(p)]
            volumes += [p for p in paths if _suffix(p)]
        volumes.sort()
    _warn_ignored(folder, ignored)
    if not volumes:
        raise VolumeError(folder, f"holds no volume ({', '.join(VOLUME_SUFFIXES)} files or DICOM series folders)")
    return volumes


def _check_entries(json_path: Path, split: str, items: Iterable[dict], base: Path) -> list[dict]:
    """Every path-like value of ``items`` made absolute and checked to exist, else a clear error."""
    out = []
    for i, item in enumerate(items):
        item = dict(item)
        for key in _DATALIST_PATH_KEYS:
            if key not in item:
                continue
            value = item[key]
            if not isinstance(value, (str, os.PathLike)):
                raise ValueError(f"{json_path}: {split} entry {i} has {key}={value!r}; expected one path.")
            resolved = Path(os.path.normpath(base / value))
            if not resolved.exists():
                raise FileNotFoundError(
                    f"{json_path}: {split} entry {i} ({key}: {value}) does not exist (looked for {resolved})."
                )
            item[key] = str(resolved)
        out.append(item)
    return out


def load_datalist(path: str | os.PathLike) -> dict[str, list]:
    """Read a MONAI-style datalist JSON of MR/CT volumes; paths relative to the JSON's folder are resolved.

    Two layouts are accepted::

        {"training": [{"mr": "mr/a.nii.gz"}, {"ct": "ct/b.nii.gz"}, ...],
         "test": [{"mr": "...", "ct": "...", "mask": "..."}]}       # optional "validation" / "test" pairs
        {"mr": ["mr/a.nii.gz", ...], "ct": ["ct/b.nii.gz", ...]}

    Returns:
        ``{"mr": [path, ...], "ct": [path, ...], "validation": [dict, ...], "test": [dict, ...]}``: the unpaired
        training volumes of each modality, and the (possibly empty) lists of paired items with absolute paths.

    Raises:
        FileNotFoundError: the JSON or a file it names is missing (the message names the JSON and the entry).
        ValueError: the JSON is malformed or has neither layout.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: datalist file does not exist.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a valid JSON datalist ({e}).") from e
    except RecursionError:
        raise ValueError(f"{path}: not a valid JSON datalist (nested too deeply).") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object with a 'training' list or 'mr'/'ct' lists.")
    base = path.parent
    out: dict[str, list] = {"mr": [], "ct": [], "validation": [], "test": []}
    if "training" in data:
        items = load_decathlon_datalist(path, is_segmentation=False, data_list_key="training")
        for i, item in enumerate(_check_entries(path, "training", items, base)):
            if "mr" not in item and "ct" not in item:
                raise ValueError(f"{path}: training entry {i} ({item}) has neither 'mr' nor 'ct'.")
            for key in ("mr", "ct"):
                if key in item:
                    out[key].append(item[key])
        for split in ("validation", "test"):
            if data.get(split):
                out[split] = _check_entries(path, split, load_decathlon_datalist(path, False, split), base)
    elif "mr" in data or "ct" in data:
        for key in ("mr", "ct"):
            values = data.get(key, [])
            if not isinstance(values, list):
                raise ValueError(f"{path}: {key!r} must be a list of paths, got {type(values).__name__}.")
            out[key] = [item[key] for item in _check_entries(path, key, [{key: v} for v in values], base)]
    else:
        raise ValueError(f"{path}: expected a 'training' list or 'mr'/'ct' lists, found keys {sorted(data)}.")
    return out


def unpaired_items(mr: str | os.PathLike, ct: str | os.PathLike | None = None) -> tuple[list[dict], list[dict]]:
    """The unpaired training data of the MR/CT bundle: ``([{"A": mr_path}, ...], [{"B": ct_path}, ...])``.

    Args:
        mr: a folder of MR volumes, or a datalist JSON (see :func:`load_datalist`) when ``ct`` is None.
        ct: a folder of CT volumes.

    Raises:
        FileNotFoundError, VolumeError, ValueError: a missing folder or file, a folder without volumes, or a
            datalist without MR or without CT volumes.
    """
    if ct is None:
        if not str(mr).lower().endswith(".json"):
            raise ValueError(f"{mr}: give a datalist JSON, or both an MR and a CT folder.")
        data = load_datalist(mr)
        for key in ("mr", "ct"):
            if not data[key]:
                raise ValueError(f"{mr}: the datalist has no {key.upper()} training volume.")
        mr_paths, ct_paths = data["mr"], data["ct"]
    else:
        mr_paths, ct_paths = list_volumes(mr), list_volumes(ct)
    return [{"A": str(p)} for p in mr_paths], [{"B": str(p)} for p in ct_paths]
