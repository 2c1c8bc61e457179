"""Load a volume through :func:`mr2ct.io.readers.read_volume` inside a MONAI dictionary chain."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from pathlib import Path

from monai.config import KeysCollection
from monai.transforms import MapTransform

from mr2ct.io.readers import read_volume

__all__ = ["LoadVolumed"]


class LoadVolumed(MapTransform):
    """Replace each file name under ``keys`` by its MetaTensor, read by ``read_volume``.

    Like MONAI's ``LoadImaged(image_only=True)``, but the reader follows the path (NIfTI: nibabel, DICOM series
    folder: pydicom, NRRD/MHA: ITK) and DICOM series are checked first (one series, no duplicated or missing
    slices), so a bad file fails with ``"<file>: <what is wrong>"`` (:class:`~mr2ct.io.readers.VolumeError`).
    Follow it with ``EnsureChannelFirstd``: the meta data say where the channels are.

    Args:
        keys: keys of the file names.
        channels: channels of every volume: 1 gives ``(X, Y, Z)``, more give ``(X, Y, Z, C)`` (e.g. RGB videos).
        allow_missing_keys: don't raise if a key is missing.
    """

    def __init__(self, keys: KeysCollection, channels: int = 1, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}.")
        self.channels = channels

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = read_volume(Path(str(d[key])), channels=self.channels)
        return d
