"""Refuse an image whose header promises more data than is sensible, before any reader allocates it.

Readers allocate the array a header announces before they find out that the file cannot fill it: a 56-byte
``.nii.gz`` whose header claims 700^3 float32 voxels took 1.8 GB before failing, and a header claiming tens of GB
would get a whole batch killed for lack of memory, which no ``try`` can catch. So the header is read first and
the promised size (voxel count times item size) is refused when it

- exceeds the limit :func:`max_volume_bytes` (the ``MR2CT_MAX_VOLUME_BYTES`` environment variable, default
  :data:`DEFAULT_MAX_VOLUME_BYTES`), or
- is more than the file can hold: its own size when stored raw, :data:`DEFLATE_RATIO` times it when
  gzip/zlib-compressed (deflate cannot expand data more than that).

:func:`check_header_size` covers NIfTI, NRRD and MetaImage files, :func:`check_dicom_size` DICOM series; the MNIST
IDX and video readers use :func:`check_size` with their own headers. They raise :class:`SizeError`, which the
readers turn into their own errors (:class:`~mr2ct.io.readers.VolumeError`, ...).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_MAX_VOLUME_BYTES",
    "DEFLATE_RATIO",
    "DICOM_SIZE_TAGS",
    "ENV_MAX_VOLUME_BYTES",
    "SizeError",
    "check_dicom_size",
    "check_header_size",
    "check_size",
    "max_volume_bytes",
]

DEFAULT_MAX_VOLUME_BYTES = 4 * 2**30
ENV_MAX_VOLUME_BYTES = "MR2CT_MAX_VOLUME_BYTES"
DEFLATE_RATIO = 1032  # the most deflate (gzip, zlib) expands: 258 bytes from a 2-bit code, plus block overhead

_NRRD_TYPES = {  # item size: NRRD's type names
    1: ("signed char", "int8", "int8_t", "uchar", "unsigned char", "uint8", "uint8_t"),
    2: (
        "short",
        "short int",
        "signed short",
        "signed short int",
        "int16",
        "int16_t",
        "ushort",
        "unsigned short",
        "unsigned short int",
        "uint16",
        "uint16_t",
    ),
    4: ("int", "signed int", "int32", "int32_t", "uint", "unsigned int", "uint32", "uint32_t", "float"),
    8: (
        "longlong",
        "long long",
        "long long int",
        "signed long long",
        "signed long long int",
        "int64",
        "int64_t",
        "ulonglong",
        "unsigned long long",
        "unsigned long long int",
        "uint64",
        "uint64_t",
        "double",
    ),
}
_NRRD_ITEM = {name: size for size, names in _NRRD_TYPES.items() for name in names}
_NRRD_RATIO = {"raw": 1.0, "gzip": DEFLATE_RATIO, "gz": DEFLATE_RATIO, "hex": 0.5}  # bzip2, text: limit only
_MET_ITEM = {
    "MET_CHAR": 1,
    "MET_UCHAR": 1,
    "MET_SHORT": 2,
    "MET_USHORT": 2,
    "MET_INT": 4,
    "MET_UINT": 4,
    "MET_LONG": 4,
    "MET_ULONG": 4,
    "MET_FLOAT": 4,
    "MET_LONG_LONG": 8,
    "MET_ULONG_LONG": 8,
    "MET_DOUBLE": 8,
}
_RAW_SYNTAXES = {
    "1.2.840.10008.1.2": 1.0,
    "1.2.840.10008.1.2.1": 1.0,
    "1.2.840.10008.1.2.2": 1.0,
    "1.2.840.10008.1.2.1.99": DEFLATE_RATIO,
}  # others are encapsulated (JPEG, RLE, ...): limit only


class SizeError(ValueError):
    """A header that promises too much: ``str(err) == f"{path}: {reason}"``, as the readers' errors say it."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{self.path}: {reason}")


def max_volume_bytes() -> int:
    """The largest image a header may promise, in bytes: ``$MR2CT_MAX_VOLUME_BYTES``, else 4 GiB."""
    value = os.environ.get(ENV_MAX_VOLUME_BYTES)
    if value is None:
        return DEFAULT_MAX_VOLUME_BYTES
    if not (value.strip().isdigit() and int(value) > 0):
        raise ValueError(f"{ENV_MAX_VOLUME_BYTES}={value!r} is not a positive number of bytes.")
    return int(value)


def check_size(
    path: str | os.PathLike, nbytes: int, available: float | None, what: str, max_bytes: int | None = None
) -> None:
    """Refuse data of ``nbytes`` (``what`` describes them) over the limit, or over ``available`` (None: unknown).

    Raises:
        SizeError: naming ``path`` and both sizes.
    """
    limit = max_volume_bytes() if max_bytes is None else max_bytes
    if nbytes > limit:
        raise SizeError(
            path,
            f"is too large to read: its header promises {what} ({nbytes} bytes), more than the "
            f"limit of {limit} bytes (set {ENV_MAX_VOLUME_BYTES} to read larger images)",
        )
    if available is not None and nbytes > available:
        raise SizeError(
            path,
            f"cannot be read: its header promises {what} ({nbytes} bytes), more than the file "
            f"can hold ({int(available)} bytes): a corrupt header or a truncated file",
        )


def check_header_size(path: str | os.PathLike, max_bytes: int | None = None) -> None:
    """Check the size a NIfTI, NRRD or MetaImage header promises (see the module docstring) without reading the
    data. A header this cannot parse is left to the reader, which reports it.

    Raises:
        SizeError: a promise over the limit or over what the file can hold, or a path that is not a regular file.
    """
    path = Path(path)
    if not path.is_file():
        raise SizeError(path, "is not a regular file (a pipe or a device?)" if path.exists() else "does not exist")
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        _check_nifti(path, max_bytes)
    elif name.endswith((".nrrd", ".nhdr")):
        _check_nrrd(path, max_bytes)
    elif name.endswith((".mha", ".mhd")):
        _check_metaimage(path, max_bytes)


def _check_nifti(path: Path, max_bytes: int | None) -> None:
    import nibabel as nib  # noqa: PLC0415 - only for NIfTI

    try:
        header: Any = nib.load(path).header  # the header only: the data stay on disk
        shape, dtype = tuple(int(n) for n in header.get_data_shape()), header.get_data_dtype()
    except Exception:  # noqa: BLE001 - an unreadable header is the reader's to report
        return
    size = path.stat().st_size
    available = size * DEFLATE_RATIO if path.name.lower().endswith(".gz") else size
    check_size(
        path, math.prod(shape) * dtype.itemsize, available, f"{'x'.join(map(str, shape))} voxels of {dtype}", max_bytes
    )


def _text_header(path: Path, end: Sequence[str]) -> tuple[list[tuple[str, str]], int]:
    """``(key, value)`` lines of a text header (NRRD ``key: value``, MetaImage ``key = value``) up to a blank line
    or a line whose key is in ``end`` (included), and the header's length in bytes."""
    with open(path, "rb") as f:
        head = f.read(65536)
    fields, offset = [], 0
    for raw in head.splitlines(keepends=True):
        offset += len(raw)
        line = raw.decode("latin-1").strip()
        if not line:
            break
        key, sep, value = line.partition(": ") if ": " in line else line.partition("=")
        if sep:
            fields.append((key.strip().lower(), value.strip()))
            if key.strip().lower() in end:
                break
    return fields, offset


def _ints(text: str) -> list[int] | None:
    parts = text.split()
    return [int(p) for p in parts] if parts and all(p.isdigit() for p in parts) else None


def _check_nrrd(path: Path, max_bytes: int | None) -> None:
    fields, header = _text_header(path, ())
    values = dict(fields)
    sizes, item = _ints(values.get("sizes", "")), _NRRD_ITEM.get(" ".join(values.get("type", "").lower().split()))
    if sizes is None or item is None:
        return
    nbytes = math.prod(sizes) * item
    data_file = values.get("data file", values.get("datafile"))
    if data_file is None:
        stored: int | None = path.stat().st_size - header
    elif data_file.split()[0] != "LIST" and "%" not in data_file and len(data_file.split()) == 1:
        target = path.parent / data_file
        stored = target.stat().st_size if target.is_file() else None
    else:
        stored = None
    ratio = _NRRD_RATIO.get(values.get("encoding", "raw").lower())
    available = stored * ratio if stored is not None and ratio is not None else None
    check_size(path, nbytes, available, f"{'x'.join(map(str, sizes))} voxels of {values['type']}", max_bytes)


def _check_metaimage(path: Path, max_bytes: int | None) -> None:
    fields, header = _text_header(path, ("elementdatafile",))
    values = dict(fields)
    sizes, item = _ints(values.get("dimsize", "")), _MET_ITEM.get(values.get("elementtype", "").upper())
    channels = _ints(values.get("elementnumberofchannels", "1"))
    if sizes is None or item is None or channels is None:
        return
    nbytes = math.prod(sizes) * item * channels[0]
    data_file = values.get("elementdatafile", "LOCAL")
    if data_file.upper() == "LOCAL":
        stored: int | None = path.stat().st_size - header
    elif "%" not in data_file and data_file.split()[0].upper() != "LIST" and len(data_file.split()) == 1:
        target = path.parent / data_file
        stored = target.stat().st_size if target.is_file() else None
    else:
        stored = None
    ratio = DEFLATE_RATIO if values.get("compresseddata", "false").lower() == "true" else 1.0
    check_size(
        path,
        nbytes,
        stored * ratio if stored is not None else None,
        f"{'x'.join(map(str, sizes))} voxels of {values['elementtype']}",
        max_bytes,
    )


DICOM_SIZE_TAGS = ("Rows", "Columns", "SamplesPerPixel", "BitsAllocated", "NumberOfFrames")
"""The tags :func:`check_dicom_size` needs in each header."""


def check_dicom_size(
    folder: str | os.PathLike, files: Sequence[Path], headers: Sequence, max_bytes: int | None = None
) -> None:
    """Check the pixel data the headers of a DICOM series promise, all slices together, against the limit, and
    each file's against its size when stored uncompressed (headers read with at least :data:`DICOM_SIZE_TAGS`).

    Raises:
        SizeError: naming the folder (the limit) or the file (more than it holds).
    """
    total = 0
    for path, h in zip(files, headers):
        try:
            rows, columns, bits = int(h.Rows), int(h.Columns), int(h.BitsAllocated)
            samples, frames = int(h.get("SamplesPerPixel", 1) or 1), int(h.get("NumberOfFrames", 1) or 1)
        except (AttributeError, TypeError, ValueError):  # missing or not numbers: the reader's to report
            continue
        nbytes = math.ceil(rows * columns * samples * frames * bits / 8)
        syntax = str(getattr(getattr(h, "file_meta", None), "get", lambda *_: "")("TransferSyntaxUID", ""))
        ratio = _RAW_SYNTAXES.get(syntax)
        check_size(
            path,
            nbytes,
            path.stat().st_size * ratio if ratio else None,
            f"{frames} frame(s) of {rows}x{columns} x {samples} samples of {bits} bits",
            max_bytes,
        )
        total += nbytes
    check_size(folder, total, None, f"{len(files)} DICOM files of pixel data", max_bytes)
