"""Bad input: a table of faulty files for every reader, every bundle's inference on a folder of them, fuzzed
files, and the safety of the outputs (inputs untouched, no overwrite unless asked, nothing partial left behind)."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import warnings
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from monai.bundle import ConfigWorkflow
from monai.transforms import EnsureChannelFirstd
from PIL import Image

from mr2ct.bundle import load_config
from mr2ct.data import VolumeError, list_volumes, load_digits, read_idx, read_volume

from conftest import REPO
from test_readers import sitk_image, write_dicom_series

pytestmark = [
    pytest.mark.filterwarnings("ignore:builtin type .* has no __module__:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:NvImgCodecPydicomReader:UserWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning:pydicom"),
]

ARRAY = np.random.default_rng(0).integers(-100, 100, size=(6, 7, 5)).astype(np.int16)  # (z, y, x)


# ---------------------------------------------------------------------------------------------- file builders


def nifti(path: Path, data, affine=None) -> Path:
    nib.save(nib.Nifti1Image(np.asarray(data), np.eye(4) if affine is None else affine), path)
    return path


def idx_bytes(array: np.ndarray) -> bytes:
    code = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C}[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def cut(path: Path, keep: float = 0.5) -> Path:
    """Truncate ``path`` to a fraction of its bytes."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def replace_bytes(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert old in data, (path, old)
    path.write_bytes(data.replace(old, new))


def series(folder: Path, array: np.ndarray = ARRAY, uid: str = "1.2.826.0.1.3680043.2.1125.7") -> Path:
    """A 6-slice DICOM series ``slice000.dcm``... with z positions 30, 32, ... 40 mm."""
    write_dicom_series(sitk_image(array), folder, uid=uid)
    return folder


def dicom_with(edit: Callable[[Path], None]) -> Callable[[Path], Path]:
    """A builder: the standard series in ``<tmp>/series``, then ``edit(folder)``."""

    def build(tmp: Path) -> Path:
        folder = series(tmp / "series")
        edit(folder)
        return folder

    return build


def _delete_position(folder: Path) -> None:
    ds = pydicom.dcmread(folder / "slice002.dcm")
    del ds.ImagePositionPatient
    ds.save_as(folder / "slice002.dcm")


def _mixed(folder: Path) -> None:
    other = series(folder.parent / "other", ARRAY[:3], uid="1.2.826.0.1.3680043.2.1125.8")
    for f in other.iterdir():
        f.rename(folder / f"b_{f.name}")


def _degenerate(folder: Path) -> None:
    for f in folder.iterdir():
        replace_bytes(f, b"1\\0\\0\\0\\1\\0", b"0\\0\\0\\0\\0\\0")


def _itk(tmp: Path, name: str, image: sitk.Image, old: bytes = b"", new: bytes = b"") -> Path:
    """``image`` written by ITK as ``tmp/name``, then ``old`` bytes replaced by ``new`` if given."""
    sitk.WriteImage(image, str(tmp / name))
    if old:
        replace_bytes(tmp / name, old, new)
    return tmp / name


def _mhd_without_data(tmp: Path) -> Path:
    header = _itk(tmp, "a.mhd", sitk_image(ARRAY))
    for f in tmp.iterdir():
        if f != header:
            f.unlink()
    return header


def _itk_compressed(tmp: Path, name: str, old: bytes, new: bytes) -> Path:
    """``ARRAY`` written by ITK with compression (gzip NRRD, zlib MetaImage), then ``old`` header bytes replaced."""
    sitk.WriteImage(sitk_image(ARRAY), str(tmp / name), True)
    replace_bytes(tmp / name, old, new)
    return tmp / name


def _rgb() -> sitk.Image:
    return sitk.Compose([sitk_image(ARRAY.astype(np.float32))] * 3)  # ITK's Python wrapping lacks int16 vectors


def _nifti_header(tmp: Path, offset: int, value: bytes) -> Path:
    """A NIfTI file with the header bytes at ``offset`` overwritten by ``value``."""
    data = bytearray(nifti(tmp / "a.nii", ARRAY).read_bytes())
    data[offset : offset + len(value)] = value
    return write(tmp / "a.nii", bytes(data))


def _fifo(tmp: Path) -> Path:
    os.mkfifo(tmp / "pipe.nii.gz")
    return tmp / "pipe.nii.gz"


def _float_nan() -> np.ndarray:
    data = np.random.default_rng(1).random((8, 8, 6)).astype(np.float32)
    data[1, 2, 3] = np.nan
    return data


def _corrupt_deflate(data: bytes) -> bytes:
    """Gzip ``data`` whose deflate stream is broken just after the gzip header (zlib raises, not gzip)."""
    return data[:15] + b"\xff" * 8 + data[23:]


def _labels_mismatch(tmp: Path) -> Path:
    write(tmp / "img.idx", idx_bytes(np.zeros((3, 4, 4), np.uint8)))
    return write(tmp / "lab.idx", idx_bytes(np.zeros(2, np.uint8)))


def _idx(tmp: Path, data: bytes, name: str = "a.idx") -> Path:
    return write(tmp / name, data)


def _nifti_claiming(tmp: Path, name: str, shape: tuple[int, ...], dtype=np.float32) -> Path:
    """A NIfTI header alone (no data) that announces ``shape`` voxels; gzip-compressed for ``.nii.gz``."""
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    raw = header.binaryblock + bytes(4)
    return write(tmp / name, gzip.compress(raw) if name.endswith(".gz") else raw)


def _mhd_claiming(tmp: Path) -> Path:
    header = _itk(tmp, "a.mhd", sitk_image(ARRAY))
    replace_bytes(header, b"DimSize = 5 7 6", b"DimSize = 50 70 60")
    return header


def _dicom_tags(name: str, **tags) -> Callable[[Path], Path]:
    def edit(folder: Path) -> None:
        ds = pydicom.dcmread(folder / name)
        for tag, value in tags.items():
            setattr(ds, tag, value)
        ds.save_as(folder / name)

    return dicom_with(edit)


def _idx_gz_bomb(tmp: Path) -> Path:
    """50 MB of zeros as a valid gzip-compressed IDX file of about 50 kB."""
    return _idx(tmp, gzip.compress(idx_bytes(np.zeros((50, 1000, 1000), np.uint8)), compresslevel=1), "a.idx.gz")


IDX = idx_bytes(np.zeros((2, 3, 4), np.uint8))
LIMIT = 100_000  # a small max_bytes, for the files that are too large only for it
RGB_AS = {c: (lambda p, c=c: read_volume(p, channels=c)) for c in (3,)}
READ = read_volume
# name: (builder of the bad input in a temporary folder, how it is read, what the message must say)
READER_CASES: dict[str, tuple[Callable[[Path], Path], Callable, str]] = {
    # NIfTI (nibabel)
    "nii-missing": (lambda t: t / "missing.nii.gz", READ, "does not exist"),
    "nii-zero-bytes": (lambda t: write(t / "a.nii.gz", b""), READ, "cannot be read"),
    "nii.gz-truncated": (lambda t: cut(nifti(t / "a.nii.gz", ARRAY)), READ, "cannot be read"),
    "nii-truncated": (lambda t: cut(nifti(t / "a.nii", ARRAY), 0.9), READ, "cannot be read"),
    "nii-is-text": (lambda t: write(t / "a.nii", "not a NIfTI\n" * 40), READ, "cannot be read"),
    "nii.gz-gzip-of-garbage": (lambda t: write(t / "a.nii.gz", gzip.compress(b"x" * 500)), READ, "cannot be read"),
    "nii-unknown-datatype": (lambda t: _nifti_header(t, 70, b"\x4d\0"), READ, "data code 77 not recognized"),
    "nii-bad-magic": (lambda t: _nifti_header(t, 344, b"xx1\0"), READ, "Cannot work out file type"),
    "nii-data-beyond-end": (lambda t: _nifti_header(t, 108, struct.pack("<f", 1e6)), READ, "got 0 bytes from"),
    "nii-2d": (lambda t: nifti(t / "a.nii.gz", np.ones((8, 8), np.float32)), READ, "is 2D (shape (8, 8))"),
    "nii-one-slice": (lambda t: nifti(t / "a.nii.gz", np.ones((8, 8, 1), np.float32)), READ, "is 2D"),
    "nii-4d": (lambda t: nifti(t / "a.nii.gz", np.ones((8, 8, 6, 3), np.float32)), READ, "is 4D (shape (8, 8, 6, 3))"),
    "nii-5d": (lambda t: nifti(t / "a.nii.gz", np.ones((8, 8, 6, 2, 2), np.float32)), READ, "expected one 3D volume"),
    "nii-nan": (lambda t: nifti(t / "a.nii.gz", _float_nan()), READ, "holds 1 NaN/Inf voxels"),
    "nii-inf": (lambda t: nifti(t / "a.nii.gz", np.full((8, 8, 6), np.inf, np.float32)), READ, "holds 384 NaN/Inf"),
    "nii-zero-size": (lambda t: nifti(t / "a.nii.gz", np.zeros((8, 0, 6), np.float32)), READ, "is empty"),
    "nii-rgb-as-grey": (lambda t: nifti(t / "a.nii.gz", np.ones((8, 8, 6, 3), np.float32)), READ, "is 4D"),
    "nii-grey-as-rgb": (lambda t: nifti(t / "a.nii.gz", np.ones((8, 8, 6), np.float32)), RGB_AS[3], "has 1 channels"),
    "nii-2-channels-as-rgb": (
        lambda t: nifti(t / "a.nii.gz", np.ones((8, 8, 6, 2), np.float32)),
        RGB_AS[3],
        "has 2 channels",
    ),
    "nii-named-pipe": (_fifo, READ, "not a regular file"),
    "folder-named-nii": (lambda t: write(t / "a.nii.gz" / "notes.txt", "x").parent, READ, "without DICOM files"),
    "unsupported-suffix": (lambda t: write(t / "a.txt", "x"), READ, "not a supported volume"),
    "single-dicom-file": (lambda t: series(t / "s") / "slice000.dcm", READ, "single DICOM file"),
    # NRRD / MetaImage (ITK)
    "nrrd-truncated": (lambda t: cut(_itk(t, "a.nrrd", sitk_image(ARRAY)), 0.8), READ, "cannot be read"),
    "nrrd-bad-magic": (lambda t: _itk(t, "a.nrrd", sitk_image(ARRAY), b"NRRD", b"XRRD"), READ, "cannot be read"),
    "nrrd-2d": (lambda t: _itk(t, "a.nrrd", sitk.GetImageFromArray(ARRAY[0])), READ, "is 2D"),
    "nrrd-nan": (lambda t: _itk(t, "a.nrrd", sitk.GetImageFromArray(_float_nan())), READ, "NaN/Inf"),
    "mha-truncated": (lambda t: cut(_itk(t, "a.mha", sitk_image(ARRAY)), 0.8), READ, "cannot be read"),
    "mha-bad-dimsize": (
        lambda t: _itk(t, "a.mha", sitk_image(ARRAY), b"DimSize = 5 7 6", b"DimSize = 5 7 x"),
        READ,
        "cannot be read",
    ),
    "mhd-missing-raw": (_mhd_without_data, READ, "cannot be read"),
    "mha-negative-ndims": (
        lambda t: _itk(t, "a.mha", sitk_image(ARRAY), b"NDims = 3", b"NDims = -1"),
        READ,
        "invalid MetaImage header (NDims = '-1')",
    ),  # ITK hung or crashed the process on it
    "mha-rgb-as-grey": (lambda t: _itk(t, "a.mha", _rgb()), READ, "is 4D"),
    # DICOM series (pydicom headers, then PydicomReader or ITKReader)
    "dicom-missing-slice": (dicom_with(lambda f: (f / "slice002.dcm").unlink()), READ, "uneven slice spacing"),
    "dicom-duplicated-slice": (
        dicom_with(lambda f: shutil.copy(f / "slice002.dcm", f / "slice002_copy.dcm")),
        READ,
        "duplicate positions",
    ),
    "dicom-uneven-spacing": (
        dicom_with(lambda f: replace_bytes(f / "slice003.dcm", b"-10\\-20\\36", b"-10\\-20\\37")),
        READ,
        "uneven slice spacing",
    ),
    "dicom-mixed-series": (dicom_with(_mixed), READ, "holds 2 DICOM series"),
    "dicom-no-position": (dicom_with(_delete_position), READ, "without ImagePositionPatient"),
    "dicom-position-not-numbers": (
        dicom_with(lambda f: replace_bytes(f / "slice002.dcm", b"-10\\-20\\34", b"-1O\\-2O\\3x")),
        READ,
        "unreadable ImagePositionPatient",
    ),
    "dicom-degenerate-orientation": (dicom_with(_degenerate), READ, "invalid ImageOrientationPatient"),
    "dicom-truncated-pixels": (dicom_with(lambda f: cut(f / "slice004.dcm", 0.9)), READ, "cannot be read"),
    "dicom-garbage-slice": (
        dicom_with(lambda f: write(f / "junk.dcm", b"not dicom" * 30)),
        READ,
        "is not a readable DICOM file",
    ),
    "dicom-empty-folder": (lambda t: t, READ, "without DICOM files"),
    "dicom-folder-of-text": (lambda t: write(t / "notes.txt", "x").parent, READ, "without DICOM files"),
    # MNIST IDX
    "idx-missing": (lambda t: t / "a.idx", read_idx, "cannot read IDX file"),
    "idx-zero-bytes": (lambda t: _idx(t, b""), read_idx, "bad magic number"),
    "idx-wrong-magic": (lambda t: _idx(t, b"\x12\x34" + IDX[2:]), read_idx, "bad magic number"),
    "idx-unknown-type": (lambda t: _idx(t, b"\0\0\7\1" + bytes(8)), read_idx, "bad magic number"),
    "idx-truncated-header": (lambda t: _idx(t, IDX[:10]), read_idx, "truncated IDX header"),
    "idx-truncated-data": (lambda t: _idx(t, IDX[:-5]), read_idx, "(truncated?)"),
    "idx-trailing-bytes": (lambda t: _idx(t, IDX + b"xx"), read_idx, "announces shape (2, 3, 4)"),
    "idx.gz-bad-crc": (lambda t: _idx(t, gzip.compress(IDX)[:-8] + bytes(8), "a.idx.gz"), read_idx, "CRC check failed"),
    "idx.gz-bad-deflate": (
        lambda t: _idx(t, _corrupt_deflate(gzip.compress(bytes(range(256)) * 20)), "a.idx.gz"),
        read_idx,
        "Error -3 while decompressing data",
    ),  # a zlib.error: escaped before
    "idx.gz-not-gzip": (lambda t: _idx(t, IDX, "a.idx.gz"), read_idx, "cannot read IDX file"),
    "idx-images-not-3d": (
        lambda t: _idx(t, idx_bytes(np.zeros((4, 5), np.uint8))),
        load_digits,
        "expected uint8 images of shape (N, H, W)",
    ),
    "idx-labels-mismatch": (
        _labels_mismatch,
        lambda p: load_digits(p.with_name("img.idx"), p),
        "2 labels for 3 images",
    ),
    # headers that promise more than the file holds or than the limit: refused before anything is allocated
    "nii.gz-claims-700^3": (
        lambda t: _nifti_claiming(t, "a.nii.gz", (700, 700, 700)),
        READ,
        "promises 700x700x700 voxels of float32 (1372000000 bytes), more than the file can hold",
    ),
    "nii-claims-700^3": (lambda t: _nifti_claiming(t, "a.nii", (700, 700, 700)), READ, "more than the file can hold"),
    "nii.gz-claims-40-GB": (
        lambda t: _nifti_claiming(t, "a.nii.gz", (3000, 3000, 1100)),
        READ,
        "more than the limit of 4294967296 bytes (set MR2CT_MAX_VOLUME_BYTES",
    ),
    "nii-over-a-set-limit": (
        lambda t: nifti(t / "a.nii.gz", np.zeros((80, 80, 40), np.float32)),
        lambda p: read_volume(p, max_bytes=LIMIT),
        f"more than the limit of {LIMIT} bytes",
    ),
    "nrrd-claims-420-GB": (
        lambda t: _itk(t, "a.nrrd", sitk_image(ARRAY), b"sizes: 5 7 6", b"sizes: 5000 7000 6000"),
        READ,
        "promises 5000x7000x6000 voxels of short",
    ),
    "nrrd-gzip-claims-too-much": (
        lambda t: _itk_compressed(t, "a.nrrd", b"sizes: 5 7 6", b"sizes: 500 700 60"),
        READ,
        "more than the file can hold",
    ),
    "mha-claims-more-than-file": (
        lambda t: _itk(t, "a.mha", sitk_image(ARRAY), b"DimSize = 5 7 6", b"DimSize = 500 700 600"),
        READ,
        "more than the file can hold",
    ),
    "mha-compressed-claims-too-much": (
        lambda t: _itk_compressed(t, "a.mha", b"DimSize = 5 7 6", b"DimSize = 500 700 60"),
        READ,
        "more than the file can hold",
    ),
    "mhd-claims-more-than-raw": (_mhd_claiming, READ, "more than the file can hold"),
    "dicom-rows-65535": (
        _dicom_tags("slice003.dcm", Rows=65535, Columns=65535),
        READ,
        "65535x65535 x 1 samples of 16 bits (8589672450 bytes), more than the limit",
    ),
    "dicom-1000-frames": (_dicom_tags("slice003.dcm", NumberOfFrames=1000), READ, "more than the file can hold"),
    "idx.gz-claims-1-GB": (
        lambda t: _idx(
            t, gzip.compress(IDX[:4] + b"".join(n.to_bytes(4, "big") for n in (1000, 1000, 1000))), "a.idx.gz"
        ),
        read_idx,
        "more than the file can hold",
    ),
    "idx.gz-bomb": (_idx_gz_bomb, lambda p: read_idx(p, max_bytes=LIMIT), f"more than the limit of {LIMIT} bytes"),
}


@pytest.mark.parametrize("case", sorted(READER_CASES))
def test_bad_file_gives_one_clear_error(tmp_path, case):
    build, read, message = READER_CASES[case]
    if case == "nii-named-pipe" and not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes here")
    path = build(tmp_path)
    with pytest.raises(VolumeError) as err:
        read(path)
    text = str(err.value)
    assert text.startswith(f"{err.value.path}: ") and err.value.path.startswith(str(tmp_path)), text
    assert str(path) in text or case.startswith("dicom-garbage"), text  # the garbage slice names itself
    assert message in text, text
    assert "\n" not in text and "Traceback" not in text, text


def test_a_lying_header_costs_no_memory(tmp_path):
    """The 56-byte .nii.gz claiming 700^3 voxels raised peak memory from 0.47 to 1.8 GB before it failed; now it is
    refused from its header (measured in a fresh process: peak resident memory before and after)."""
    path = _nifti_claiming(tmp_path, "a.nii.gz", (700, 700, 700))
    code = (
        "import resource, sys\nfrom mr2ct.data import VolumeError, read_volume\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n    read_volume(sys.argv[1])\nexcept VolumeError as e:\n    print(e)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, encoding="utf-8", errors="replace", timeout=300
    )
    *message, grown_mb = run.stdout.strip().splitlines()
    assert "more than the file can hold" in message[-1], run.stdout + run.stderr
    assert int(grown_mb) < 100, grown_mb


def test_the_limit_is_configurable(tmp_path, monkeypatch):
    path = nifti(tmp_path / "a.nii.gz", np.zeros((80, 80, 40), np.float32))  # 1 MB of voxels
    assert read_volume(path).shape == (80, 80, 40)
    monkeypatch.setenv("MR2CT_MAX_VOLUME_BYTES", "1000000")
    with pytest.raises(VolumeError, match="1024000 bytes.*more than the limit of 1000000 bytes"):
        read_volume(path)
    assert read_volume(path, max_bytes=2_000_000).shape == (80, 80, 40)  # the argument wins
    monkeypatch.setenv("MR2CT_MAX_VOLUME_BYTES", "4 GB")
    with pytest.raises(ValueError, match="MR2CT_MAX_VOLUME_BYTES='4 GB' is not a positive number of bytes"):
        read_volume(path)


def test_videos_that_decode_to_too_much_are_stopped(tmp_path):
    """A small video file can decode to many GB: reading stops at the limit, with the frame it got to."""
    from mr2ct.io.video import VideoError, read_frame_folder, read_video, write_video

    frames = np.zeros((40, 64, 64, 3), np.uint8)  # 12 kB per frame
    video = write_video(tmp_path / "v.mp4", frames)
    assert video.stat().st_size < 20_000 and read_video(video).shape == (40, 64, 64, 3)
    with pytest.raises(VideoError, match=r"v.mp4: frame 8: decodes to more than 100000 bytes of frames"):
        read_video(video, max_bytes=100_000)
    (tmp_path / "frames").mkdir()
    for i in range(12):
        Image.fromarray(frames[i]).save(tmp_path / "frames" / f"{i}.png")
    with pytest.raises(VideoError, match=r"frames: frame 8: decodes to more than 100000 bytes"):
        read_frame_folder(tmp_path / "frames", max_bytes=100_000)


def test_good_inputs_read_with_the_right_layout(tmp_path):
    """A volume stored as (X, Y, Z, 1) used to keep the reader's 'channel last' tag after the squeeze, so
    ``EnsureChannelFirstd`` moved Z to the front and the MR/CT chain refused it as 'has 6 channels'."""
    single = read_volume(nifti(tmp_path / "s.nii.gz", np.random.default_rng(0).random((8, 9, 6, 1)).astype(np.float32)))
    assert EnsureChannelFirstd("i")({"i": single})["i"].shape == (1, 8, 9, 6)
    rgb = read_volume(
        nifti(tmp_path / "c.nii.gz", np.random.default_rng(0).random((8, 9, 6, 3)).astype(np.float32)), channels=3
    )
    assert EnsureChannelFirstd("i")({"i": rgb})["i"].shape == (3, 8, 9, 6)
    vector = read_volume(_itk(tmp_path, "v.mha", _rgb()), channels=3)
    assert EnsureChannelFirstd("i")({"i": vector})["i"].shape == (3, 5, 7, 6)


def test_folders_with_stray_files(tmp_path, caplog):
    nifti(tmp_path / "a.nii.gz", ARRAY)
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    (tmp_path / "scan.pdf").write_bytes(b"%PDF")
    (tmp_path / ".a.nii.gz.part.nii.gz").write_bytes(b"partial")
    os.mkfifo(tmp_path / "pipe") if hasattr(os, "mkfifo") else None
    with caplog.at_level("WARNING", logger="mr2ct.io.readers"):
        assert list_volumes(tmp_path) == [tmp_path / "a.nii.gz"]
        assert list_volumes(tmp_path, recursive=True) == [tmp_path / "a.nii.gz"]  # the pipe is not opened
    assert "notes.txt" in caplog.text and "scan.pdf" in caplog.text
    (tmp_path / "empty").mkdir()
    with pytest.raises(VolumeError, match="empty: holds no volume"):
        list_volumes(tmp_path / "empty")


# ------------------------------------------------------------------------------------- inference of each bundle

BUNDLES = {
    "mrct_cyclegan3d": ({"volume_size": [8, 32, 32], "ngf": 4, "num_res_blocks": 1, "num_workers": 0}, 1, "_synthct"),
    "vmnist_cyclegan3d": ({"depth": 8, "size": [16, 16], "ngf": 4, "num_res_blocks": 1}, 1, "_toB"),
    "mmnist_color_cyclegan3d": ({"depth": 8, "size": [16, 16], "ngf": 4, "num_res_blocks": 1}, 3, "_toB"),
}


def bundle_overrides(bundle: str, tmp: Path, **extra) -> dict:
    """Tiny settings, weights of that size in ``tmp/models`` (written once), outputs under ``tmp``."""
    configs = REPO / "bundles" / bundle / "configs"
    ov = {
        **BUNDLES[bundle][0],
        "bundle_root": str(REPO / "bundles" / bundle),
        "dataset_dir": str(tmp / "data"),
        "ckpt_dir": str(tmp / "models"),
        "output_dir": str(tmp / "out"),
        **extra,
    }
    weights = tmp / "models" / "model.pt"
    if not weights.is_file():
        parser = load_config(configs.parent.name, "inference", overrides=ov)
        weights.parent.mkdir(parents=True)
        torch.save(parser.get_parsed_content("network_def").state_dict(), weights)
    return ov


def infer(bundle: str, overrides: dict) -> SystemExit | None:
    """Run the bundle's inference in this process; the ``SystemExit`` it ends with when a volume failed."""
    configs = REPO / "bundles" / bundle / "configs"
    workflow = ConfigWorkflow(
        config_file=str(configs / "inference.json"),
        meta_file=str(configs / "metadata.json"),
        workflow_type="infer",
        run_id="inference",
        logging_file=False,
        **overrides,
    )
    workflow.initialize()
    try:
        workflow.run()
    except SystemExit as e:
        return e
    return None


def summary(out: Path) -> dict[str, dict]:
    with open(out / "summary.csv", newline="", encoding="utf-8") as f:
        return {Path(row["source"]).name: row for row in csv.DictReader(f)}


def checksums(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def volume(shape, channels: int, seed: int = 0) -> np.ndarray:
    """Random intensities in [0, 255], ``(X, Y, Z)`` or ``(X, Y, Z, C)``."""
    return np.random.default_rng(seed).uniform(0, 255, (*shape, channels) if channels > 1 else shape).astype(np.float32)


def bad_folder(root: Path, bundle: str, channels: int) -> tuple[Path, list[str], dict[str, str]]:
    """A folder of two good volumes and many bad ones: (folder, good names, {bad name: expected reason})."""
    folder = root / "in"
    folder.mkdir()
    good = ["good1.nii.gz", "good2.nii", "clash.nii"]
    nifti(folder / "good1.nii.gz", volume((12, 14, 10), channels), np.diag([1.5, 1.5, 2.0, 1.0]))
    nifti(folder / "good2.nii", volume((10, 12, 9), channels, 1))
    nifti(folder / "clash.nii", volume((10, 10, 8), channels, 2))
    nifti(folder / "clash.nii.gz", volume((10, 10, 8), channels, 3))
    cut(nifti(folder / "truncated.nii.gz", volume((10, 10, 8), channels)))
    (folder / "text.nii").write_text("this is not a NIfTI file\n" * 20, encoding="utf-8")
    nifti(folder / "flat.nii.gz", np.ones((16, 16), np.float32))
    nan = volume((10, 10, 8), channels)
    nan[2, 3, 4] = np.nan
    nifti(folder / "nan.nii.gz", nan)
    nifti(folder / "constant.nii.gz", np.full((10, 10, 8, channels) if channels > 1 else (10, 10, 8), 7, np.float32))
    nifti(folder / "zero_size.nii.gz", np.zeros((10, 0, 8), np.float32))
    wrong = (10, 10, 8, 2) if channels > 1 else (10, 10, 8, 3)
    nifti(folder / "wrong_channels.nii.gz", np.random.default_rng(4).random(wrong).astype(np.float32))
    (folder / "notes.txt").write_text("not an image", encoding="utf-8")
    (folder / ".good1.nii.gz.part.nii.gz").write_bytes(b"left over by a killed writer")
    bad = {
        "truncated.nii.gz": "cannot be read",
        "text.nii": "cannot be read",
        "flat.nii.gz": "is 2D",
        "nan.nii.gz": "NaN/Inf",
        "constant.nii.gz": "is constant",
        "zero_size.nii.gz": "is empty",
        "wrong_channels.nii.gz": "has 2 channels" if channels > 1 else "is 4D",
        "clash.nii.gz": "is also the output of",
    }
    if bundle == "mrct_cyclegan3d":  # the MR/CT bundle also reads DICOM series and NRRD / MetaImage files
        write_dicom_series(sitk_image(ARRAY), folder / "gap")
        (folder / "gap" / "slice002.dcm").unlink()
        series(folder / "mixed")
        _mixed(folder / "mixed")
        shutil.rmtree(folder / "other")
        cut(_itk(folder, "cut.nrrd", sitk_image(ARRAY)), 0.8)
        bad.update({"gap": "uneven slice spacing", "mixed": "holds 2 DICOM series", "cut.nrrd": "cannot be read"})
    return folder, good, bad


@pytest.mark.parametrize("bundle", sorted(BUNDLES))
def test_inference_reports_every_bad_file_and_goes_on(tmp_path, bundle):
    _, channels, postfix = BUNDLES[bundle]
    folder, good, bad = bad_folder(tmp_path, bundle, channels)
    before = checksums(folder)
    out = tmp_path / "out"
    exit_ = infer(bundle, bundle_overrides(bundle, tmp_path, input_dir=str(folder)))
    assert exit_ is not None and f"{len(bad)} of {len(bad) + len(good)} volume(s) failed" in str(exit_), exit_
    assert checksums(folder) == before  # inputs never modified
    rows = summary(out)
    assert set(rows) == set(good) | set(bad)  # stray and hidden files are ignored, not failed
    for name in good:
        assert rows[name]["status"] == "translated", rows[name]
        written = nib.load(rows[name]["output"])
        assert written.shape == nib.load(folder / name).shape and np.isfinite(written.get_fdata()).all()
    for name, reason in bad.items():
        row = rows[name]
        assert row["status"] == "failed" and reason in row["reason"] and "\n" not in row["reason"], row
        assert row["reason"].startswith(f"{folder / name}: ") or name.startswith("clash"), row
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["summary.csv"] + [Path(rows[n]["output"]).name for n in good]
    )  # nothing for failed volumes, no temporary files
    assert all(Path(rows[n]["output"]).name.endswith(f"{postfix}.nii.gz") for n in good)


def test_inference_exit_code_and_summary_from_the_command_line(tmp_path):
    """The same through ``python -m monai.bundle run``: exit status 1, a summary in the log (vmnist)."""
    bundle = "vmnist_cyclegan3d"
    folder, good, bad = bad_folder(tmp_path, bundle, 1)
    ov = bundle_overrides(bundle, tmp_path, input_dir=str(folder))
    configs = REPO / "bundles" / bundle / "configs"
    args = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "inference",
        "--config_file",
        str(configs / "inference.json"),
        "--logging_file",
        str(configs / "logging.conf"),
    ]
    for k, v in ov.items():
        args += [f"--{k}", json.dumps(v) if isinstance(v, list) else str(v)]
    run = subprocess.run(args, capture_output=True, encoding="utf-8", errors="replace", check=False, timeout=600)
    assert run.returncode == 1, run.stderr[-3000:]
    assert f"{len(bad)} of {len(bad) + len(good)} volume(s) failed" in run.stderr
    assert f"{len(good)} translated, 0 skipped, {len(bad)} failed" in run.stdout
    assert "notes.txt" in run.stdout  # the ignored file is named in a warning


# ------------------------------------------------------------------------------------------------ output safety


def good_folder(root: Path, channels: int) -> Path:
    folder = root / "in"
    folder.mkdir()
    nifti(folder / "a.nii.gz", volume((12, 14, 10), channels))
    nifti(folder / "b.nii.gz", volume((10, 12, 9), channels, 1))
    return folder


@pytest.mark.parametrize("bundle", sorted(BUNDLES))
def test_outputs_are_safe(tmp_path, bundle, monkeypatch):
    _, channels, postfix = BUNDLES[bundle]
    folder = good_folder(tmp_path, channels)
    before = checksums(folder)
    for inside in (folder, folder / "out"):  # refused before anything is written
        with pytest.raises(RuntimeError) as err:
            infer(bundle, bundle_overrides(bundle, tmp_path, input_dir=str(folder), output_dir=str(inside)))
        assert "inside the input folder" in str(err.value.__cause__)
    assert checksums(folder) == before and sorted(p.name for p in folder.iterdir()) == ["a.nii.gz", "b.nii.gz"]

    out = tmp_path / "out"
    ov = bundle_overrides(bundle, tmp_path, input_dir=str(folder))
    assert infer(bundle, ov) is None
    outputs = {p.name: p.read_bytes() for p in out.glob("*.nii.gz")}
    assert sorted(outputs) == [f"a{postfix}.nii.gz", f"b{postfix}.nii.gz"]
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.nii.gz")}
    for overwrite in (False, "false", "False"):  # the command line gives strings: "false" must not mean true
        assert infer(bundle, {**ov, "overwrite": overwrite}) is None
        assert {r["status"] for r in summary(out).values()} == {"skipped"}
        assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.nii.gz")} == stamps
    with pytest.raises(RuntimeError) as err:
        infer(bundle, {**ov, "overwrite": "yes"})
    assert "config key 'overwrite' must be true or false" in str(err.value.__cause__)
    assert infer(bundle, {**ov, "overwrite": "true"}) is None
    assert {r["status"] for r in summary(out).values()} == {"translated"}
    assert {p.name: p.read_bytes() for p in out.glob("*.nii.gz")} == outputs  # same weights, same result

    # a failure while writing one output leaves neither that output nor a temporary file behind
    shutil.rmtree(out)
    save = nib.save

    def failing_save(image, filename, *args, **kwargs):
        if Path(filename).name.startswith(f".b{postfix}"):
            Path(filename).write_bytes(b"half a file")
            raise OSError(28, "No space left on device")
        return save(image, filename, *args, **kwargs)

    monkeypatch.setattr(nib, "save", failing_save)
    exit_ = infer(bundle, ov)
    assert exit_ is not None and "1 of 2 volume(s) failed" in str(exit_)
    rows = summary(out)
    assert rows["a.nii.gz"]["status"] == "translated"
    assert rows["b.nii.gz"]["status"] == "failed" and "No space left on device" in rows["b.nii.gz"]["reason"]
    assert sorted(p.name for p in out.iterdir()) == [f"a{postfix}.nii.gz", "summary.csv"]
    assert checksums(folder) == before


# ----------------------------------------------------------------------------------------------------- fuzzing


def _field_starts(data: bytes, separator: bytes) -> list[int]:
    """Offsets just after ``separator`` in a text header (where NRRD / MetaImage field values start)."""
    header = data[: data.index(b"\n\n") if b"\n\n" in data else data.index(b"LOCAL\n")]
    return [i + len(separator) for i in range(len(header)) if header.startswith(separator, i)]


def _dicom_value_starts(data: bytes) -> list[int]:
    """Offsets of the values of the tags our checks and the readers rely on (explicit VR little endian)."""
    tags = [
        (0x0002, 0x0010),
        (0x0020, 0x000E),
        (0x0020, 0x0013),
        (0x0020, 0x0032),
        (0x0020, 0x0037),
        (0x0028, 0x0010),
        (0x0028, 0x0011),
        (0x0028, 0x0100),
        (0x0028, 0x0103),
        (0x0028, 0x1053),
    ]
    return [data.index(struct.pack("<HH", *tag)) + 8 for tag in tags]


def seed_files(tmp: Path) -> dict[str, tuple[bytes, list[int]]]:
    """A small valid file per format, and the offsets of its header fields (where corruption is tried)."""
    nii = nifti(tmp / "seed.nii", ARRAY.T.copy()).read_bytes()
    nrrd = _itk(tmp, "seed.nrrd", sitk_image(ARRAY)).read_bytes()
    mha = _itk(tmp, "seed.mha", sitk_image(ARRAY)).read_bytes()
    dcm = (series(tmp / "series") / "slice002.dcm").read_bytes()
    idx = idx_bytes(np.random.default_rng(0).integers(0, 255, (3, 4, 4), dtype=np.uint8))
    # NIfTI-1: sizeof_hdr, dim[0..3], datatype, bitpix, pixdim[1..3], vox_offset, scl_slope, q/sform_code, magic
    nii_fields = [0, 40, 42, 44, 46, 70, 72, 80, 84, 88, 108, 112, 252, 254, 344]
    return {
        "nii": (nii, nii_fields),
        "nrrd": (nrrd, _field_starts(nrrd, b": ")),
        "mha": (mha, _field_starts(mha, b"= ")),
        "dicom": (dcm, _dicom_value_starts(dcm)),
        "idx": (idx, list(range(16))),
    }


# fuzz target: (file name, seed format, gzip-compressed)
FUZZ_TARGETS = {
    "nii": ("a.nii", "nii", False),
    "nii.gz": ("a.nii.gz", "nii", True),
    "nrrd": ("a.nrrd", "nrrd", False),
    "mha": ("a.mha", "mha", False),
    "dicom": ("slice002.dcm", "dicom", False),
    "idx": ("a.idx", "idx", False),
    "idx.gz": ("a.idx.gz", "idx", True),
}
# values that break header fields: huge, negative, non-numeric sizes, NUL and 0xFF runs
FIELD_VALUES = (
    b"9999999999",
    b"2147483647",
    b"-1",
    b"0",
    b"nan",
    b"x",
    b"\x00\x00\x00\x00",
    b"\xff\xff\xff\xff",
    b"\x7f\xff\xff\xff",
    b" ",
    b"\n",
)


@st.composite
def mutations(draw, seed: bytes, fields: list[int]) -> bytes:
    """Random bytes, or ``seed`` truncated, with flipped bytes, or with a header field overwritten (twice as
    likely as the others: a field is where a reader trusts the file)."""
    kind = draw(st.sampled_from(("random", "truncate", "flip", "field", "field")))
    if kind == "random":
        return draw(st.binary(max_size=2048))
    if kind == "truncate":
        return seed[: draw(st.integers(0, len(seed) - 1))]
    data = bytearray(seed)
    if kind == "flip":
        for i in draw(st.lists(st.integers(0, len(seed) - 1), min_size=1, max_size=8)):
            data[i] = draw(st.integers(0, 255))
        return bytes(data)
    value, start = draw(st.sampled_from(FIELD_VALUES)), draw(st.sampled_from(fields))
    data[start : start + len(value)] = value  # overwrite in place: later fields keep their offsets
    return bytes(data)


def check_fuzzed(target: str, folder: Path, data: bytes) -> None:
    """Write ``data`` where the target's reader looks and read it: a volume/array, or a :class:`VolumeError` that
    names the file; any other exception fails the test."""
    name, _, _ = FUZZ_TARGETS[target]
    if target == "dicom":  # one bad slice in an otherwise good series
        path = folder / "series"
        shutil.rmtree(path, ignore_errors=True)
        shutil.copytree(folder.parent / "seeds" / "series", path)
        (path / name).write_bytes(data)
    else:
        path = folder / name
        path.write_bytes(data)
    try:
        out = read_idx(path) if target.startswith("idx") else read_volume(path)
    except VolumeError as e:
        assert str(e).startswith(f"{e.path}: ") and e.path.startswith(str(path)), str(e)
        return
    assert isinstance(out, np.ndarray) if target.startswith("idx") else out.ndim == 3


def fuzz(target: str, tmp: Path, profile: settings) -> None:
    """Run ``profile``'s examples of mutated files for one target."""
    (tmp / "seeds").mkdir()
    seeds = seed_files(tmp / "seeds")
    _, fmt, compress = FUZZ_TARGETS[target]
    seed, fields = seeds[fmt]
    folder = tmp / "work"
    folder.mkdir()
    check_fuzzed(target, folder, gzip.compress(seed) if compress else seed)  # warm the readers: the seed is valid

    @profile
    @given(data=mutations(seed, fields), compress_after=st.booleans())
    def run(data: bytes, compress_after: bool) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check_fuzzed(target, folder, gzip.compress(data) if compress and compress_after else data)

    run()


FAST = settings(
    max_examples=200,
    deadline=timedelta(seconds=10),
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LONG = settings(
    max_examples=5000,
    deadline=timedelta(seconds=10),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("target", sorted(FUZZ_TARGETS))
def test_fuzzed_files_fail_cleanly(tmp_path, target):
    """200 mutated files per format (fixed examples): no hang (10 s deadline per file), no error but ours."""
    fuzz(target, tmp_path, FAST)


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("target", sorted(FUZZ_TARGETS))
def test_fuzzed_files_fail_cleanly_long(tmp_path, target):
    """5000 fresh random mutations per format."""
    fuzz(target, tmp_path, LONG)
